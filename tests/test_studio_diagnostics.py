"""What the Train page asks of its run's diagnostics (studio.diagnostics) and draws of them
(studio.diagnostics_figures), checked without a browser."""

import dataclasses

import numpy as np
import pytest

from backprop.config import TrainConfig
from backprop.diagnostics import DiagnosticsView, NoisePoint
from backprop.noise_scale import NoiseScale
from backprop.stability import SharpnessPoint, Stability
from studio import diagnostics as diagnosis
from studio.diagnostics_figures import noise_text, sharpness_figure, sharpness_text
from studio.session import Studio


def small(**changes):
    values = dict(subset=300, layers=[16, 1], iterations=100, eval_every=100)
    values.update(changes)
    return TrainConfig(**values).validated()


def studio_at(config, store):
    studio = Studio(config, store=store)
    studio.ensure_built()
    diagnosis.configure(studio, None, None)  # the cost watch, as the Train page has it (λ_max off: faster)
    return studio


@pytest.fixture
def store(tmp_path, monkeypatch):
    from backprop.runs import RunStore

    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    return RunStore()


def test_a_rising_cost_is_an_error_banner_until_a_setting_changes(store):
    studio = studio_at(small(learning_rate=10.0), store)
    assert diagnosis.banner(studio) is None
    studio.step(10)
    studio.step(10)
    assert studio.run.diagnostics.drain()
    shown = diagnosis.banner(studio)
    assert shown.kind == "error" and shown.text.startswith("**Diverging.** The cost is rising")
    assert "2/η = 0.200" in shown.text  # λ_max measured where the cost started, above the limit
    assert "stability limit for this curvature is lr \\<" in shown.text  # Markdown-escaped: shown as typed
    studio.propose(dataclasses.replace(studio.config, learning_rate=0.01))  # a person acts on it
    studio.step(1)
    shown = diagnosis.banner(studio)
    assert shown.kind == "warning"
    assert shown.text.startswith("**Before learning_rate changed at iteration 20:**")


def test_a_nan_banner_takes_over_the_studios_message(store):
    studio = studio_at(small(learning_rate=1e300), store)
    studio.step(5)
    assert studio.message[0] == "error"
    shown = diagnosis.banner(studio)
    assert shown.kind == "error" and shown.text.startswith("**Diverged.** Training diverged at iteration 0")
    assert shown.text.endswith("Then press Reset.") and studio.message is None  # said once, at the top


def test_configure_reaches_a_run_built_later_and_changes_only_what_changed(store):
    studio = Studio(small(), store=store)
    diagnosis.configure(studio)  # nothing built yet: nothing to configure
    studio.ensure_built()
    diagnosis.configure(studio)
    run_diagnostics = studio.run.diagnostics
    assert (run_diagnostics.watch, run_diagnostics.sharpness_every, run_diagnostics.noise_every) == (
        True, diagnosis.DEFAULT_SHARPNESS_EVERY, diagnosis.DEFAULT_NOISE_EVERY)
    assert run_diagnostics.configure(watch=True, sharpness_every=20, noise_every=100) is False
    assert diagnosis.every_label(None) == "off" and diagnosis.every_label(20) == "every 20 steps"


def stability(value, limit=20.0, learning_rate=0.1):
    return Stability(optimizer="sgd", measure="λ_max", value=value, limit=limit, formula="2/η",
                     learning_rate=learning_rate, stable_learning_rate=learning_rate * limit / value,
                     residual=0.0, samples=1000, products=4, seconds=0.1, reading=f"λ_max {value} reading")


def test_the_sharpness_chart_marks_what_is_above_its_limit():
    view = DiagnosticsView(sharpness=(SharpnessPoint(0, stability(5.0)), SharpnessPoint(20, stability(30.0)),
                                      SharpnessPoint(40, stability(30.0, limit=40.0, learning_rate=0.05))))
    figure = sharpness_figure(view)
    measured, limit = figure["data"]
    assert list(measured["x"]) == [0, 20, 40] and list(measured["y"]) == [5.0, 30.0, 30.0]
    assert measured["marker"]["color"] == ["#1f77b4", "#d62728", "#1f77b4"]
    assert list(limit["y"]) == [20.0, 20.0, 40.0] and limit["line"]["shape"] == "hv"  # a changed lr, a step
    assert figure["layout"]["yaxis"]["type"] == "log" and "2/η" in figure["layout"]["title"]["text"]
    assert sharpness_text(view) == "λ_max 30.0 reading (iteration 40)"
    empty = sharpness_figure(DiagnosticsView(), every=20)
    assert empty["data"][0]["x"].size == 0
    assert empty["layout"]["annotations"][-1]["text"] == "λ_max is measured every 20 steps while training"
    assert sharpness_figure(None)["layout"]["annotations"][-1]["text"] == "Sharpness tracking is off"


def test_the_noise_scale_is_read_next_to_the_batch_size():
    noise = NoiseScale(b_simple=897.0, trace_sigma=1.0, gradient_sq=1.0, batch_gradient_sq=1.0,
                       mean_example_sq=1.0, samples=4096, batch_size=10, seconds=0.1,
                       reading="critical batch ≈ 900; yours: 10 — below it")
    text = noise_text(DiagnosticsView(noise=(NoisePoint(400, noise),)))
    assert text == "critical batch ≈ 900; yours: 10 — below it (B_simple 897 at iteration 400)"
    assert noise_text(DiagnosticsView()) is None and noise_text(None) is None


def test_the_health_line_reads_the_set_up(store):
    studio = Studio(small(activation="relu", init="he", learning_rate=10.0), store=store)
    studio.step(30)
    view = studio.view()
    assert view.unit_health[-1, 0, 0] > 0.5
    line = diagnosis.health_line(view, studio.config)
    assert "of units dead" in line and "He initialisation" not in line and "leaky ReLU" in line
    healthy = dataclasses.replace(view, unit_health=np.zeros((3, 1, 2)))
    assert diagnosis.health_line(healthy, studio.config) is None
