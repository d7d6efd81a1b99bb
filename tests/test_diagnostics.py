"""Why training fails, measured (backprop.diagnostics): the cost watch, the one explanation and its
advice read from the set-up, and a run's diagnostics thread (off the training thread)."""

import json
import math
import threading
import time

import numpy as np
import pytest

from backprop import cli, diagnostics
from backprop.config import TrainConfig
from backprop.diagnostics import (
    CostWatch,
    Divergence,
    Evidence,
    Rise,
    Setup,
    advice_for,
    explain,
    health_reading,
    watch_rule,
)
from backprop.run import Run, divergence_text
from backprop.runs import RunStore
from backprop.stability import SharpnessPoint, Stability
from backprop.trainer import Trainer


def small(**changes):
    """The tutorial's network on 300 training images of 5 vs 8."""
    values = dict(subset=300, iterations=60, eval_every=100)
    values.update(changes)
    return TrainConfig(**values).validated()


def costs_of(config, steps):
    trainer = Trainer.from_config(config, config.load_data())
    costs = [record["cost"] for record in trainer.step(steps)]
    return np.arange(len(costs)), np.array(costs)


def fed(watch, costs, every=5):
    """Feed a watch as the diagnostics thread does (a few steps at a time); the Rises it returned."""
    rises = []
    for end in range(every, len(costs) + every, every):
        rise = watch.feed(np.arange(min(end, len(costs))), costs[:end])
        if rise is not None:
            rises.append(rise)
    return rises


# -- the cost watch --------------------------------------------------------------------------------
def test_the_watch_sees_the_tutorial_at_lr_10_rise_within_20_steps():
    iterations, costs = costs_of(small(learning_rate=10.0), 30)
    assert costs[1] > 10 * costs[0] and costs[-1] > costs[0]  # the jump, then above where it started
    (rise,) = fed(CostWatch(None), costs)
    assert rise.iteration <= 20 and rise.since == 0 and rise.reference == costs[0]
    assert rise.cost > 1.2 * costs[0] and rise.window == 5


def test_a_falling_cost_a_spike_and_noisy_batches_raise_nothing():
    steps = np.arange(3000)
    falling = 0.7 * np.exp(-steps / 400) + 0.01
    assert fed(CostWatch(None), falling) == []
    spiked = falling.copy()
    spiked[500] *= 20  # one bad step: the median of the window ignores it
    assert fed(CostWatch(None), spiked) == []
    rng = np.random.default_rng(0)
    noisy = falling * rng.lognormal(0.0, 0.6, size=len(falling))  # batches of 10: each cost wanders
    assert fed(CostWatch(10), noisy) == []
    assert watch_rule(10).window == 100 and watch_rule(512).window == 10 and watch_rule(None).window == 5


def test_a_rise_that_comes_back_down_is_recovered_and_a_reset_starts_over():
    costs = np.concatenate([np.linspace(0.7, 0.2, 50), np.full(20, 0.6), np.linspace(0.2, 0.1, 30)])
    watch = CostWatch(None)
    (rise,) = fed(watch, costs)
    assert 50 < rise.iteration < 60 and rise.reference == pytest.approx(0.2, abs=0.03)
    assert watch.rise is None and 70 <= watch.recovered < 80
    watch.reset()
    assert watch.reference is None and watch.feed([100], [5.0]) is None  # no reference before a reset


# -- the one explanation ---------------------------------------------------------------------------
def test_without_measurements_a_nan_reads_as_it_always_did():
    text = divergence_text({"iteration": 3, "layer": 2}, small(learning_rate=1e300), 2)
    assert text == ("Training diverged at iteration 3: the cost or a gradient became NaN/Inf, first in "
                    "layer 2 of 2. The parameters from before that step are kept. What to try: a smaller "
                    "learning rate (now 1e+300; e.g. 1e+299), or the adam optimizer with learning rate "
                    "0.001.")


def point(iteration, value, learning_rate=10.0):
    limit = 2.0 / learning_rate
    return SharpnessPoint(iteration, Stability(
        optimizer="sgd", measure="λ_max", value=value, limit=limit, formula="2/η",
        learning_rate=learning_rate, stable_learning_rate=learning_rate * limit / value, residual=0.0,
        samples=300, products=4, seconds=0.1, reading=""))


def test_each_measured_cause_is_named():
    setup = Setup("sigmoid", "seed", "sgd", {"learning_rate": 10.0})
    evidence = Evidence(sharpness=(point(0, 12.9), point(8, 0.12)), since=0,
                        health_before=np.array([[np.nan, 0.0]]), health_now=np.array([[np.nan, 1.0]]),
                        grad_before=np.array([0.18, 0.64]), grad_peak=np.array([5.9, 3.7]),
                        grad_peak_at=(1, 1))
    rise = Rise(iteration=8, cost=0.885, window=5, since=0, reference=0.704)
    diagnosis = explain(rise, setup, evidence)
    assert diagnosis.kind == "rising" and [c.kind for c in diagnosis.causes] == ["sharpness", "saturated",
                                                                                 "exploding"]
    text = diagnosis.text
    assert text.startswith("The cost is rising: 0.885 (the median of the last 5 steps, to iteration 8), up "
                           "from 0.704 at iteration 0.")
    assert ("λ_max 12.9 at iteration 0 > 2/η = 0.200: the stability limit for this curvature is lr < 0.16"
            in text)
    assert "layer 1: 100% of units saturated" in text and "up from 0% at iteration 0" in text
    assert "‖dW1‖ exploded from 0.180 to 5.90 (33×) by iteration 1" in text and "dW2" not in text
    assert "a smaller learning rate: below 0.16 for this curvature (now 10)" in text
    # Saturation the big steps caused (it was 0% before): no initialisation advice.
    assert "Xavier" not in text and "ReLU" not in text
    dead = Evidence(health_before=np.array([[0.01, np.nan]]), health_now=np.array([[0.91, np.nan]]), since=0)
    assert [c.kind for c in explain(Divergence(12, 2, 2), setup, dead).causes] == ["dead"]
    stable = Evidence(sharpness=(point(0, 0.1),), grad_before=np.array([1.0]), grad_peak=np.array([3.0]))
    assert explain(rise, setup, stable).causes == ()  # λ_max within its limit, gradients not exploding


def test_advice_reads_the_set_up():
    relu_he = Setup("relu", "he", "sgd", {"learning_rate": 10.0})
    tries = " ".join(advice_for(relu_he, dead=True))
    assert "He initialisation" not in tries and "leaky ReLU" in tries  # He is in use: never "try He"
    tries = " ".join(advice_for(Setup("relu", "seed", "sgd", {"learning_rate": 10.0}), dead=True,
                                from_start=True))
    assert "He initialisation (init he)" in tries
    assert "leaky ReLU" not in " ".join(advice_for(Setup("leaky_relu", "he", "sgd", {"learning_rate": 1.0}),
                                                   dead=True))
    sigmoid_xavier = Setup("sigmoid", "xavier", "sgd", {"learning_rate": 0.1})
    tries = " ".join(advice_for(sigmoid_xavier, saturated=True, from_start=True))
    assert "Xavier" not in tries and "ReLU with He initialisation" in tries
    tanh_seed = Setup("tanh", "seed", "sgd", {"learning_rate": 0.1})
    assert "Xavier initialisation" in " ".join(advice_for(tanh_seed, saturated=True, from_start=True))
    adam = Setup("relu", "he", "adam", {"learning_rate": 0.1, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8})
    assert "adam" not in " ".join(advice_for(adam, stable_learning_rate=0.01))
    momentum = Setup("sigmoid", "seed", "momentum", {"learning_rate": 1.0, "momentum": 0.9})
    assert "less momentum (now 0.9" in " ".join(advice_for(momentum, stable_learning_rate=0.2))


def test_the_health_reading_reads_the_set_up():
    relu_he = Setup("relu", "he", "sgd", {"learning_rate": 10.0})
    line = health_reading(np.array([[0.91, np.nan]]), relu_he, np.array([[0.0, np.nan]]))
    assert line.startswith("layer 1: 91% of units dead") and "He" not in line and "leaky ReLU" in line
    assert health_reading(np.array([[0.1, np.nan]]), relu_he) is None


# -- a run's diagnostics thread ---------------------------------------------------------------------
def test_relu_with_he_at_lr_10_is_explained_without_suggesting_he():
    config = small(layers=[16, 1], activation="relu", init="he", learning_rate=10.0)
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False)
    run.diagnostics.configure(watch=True)
    run.diagnostics.begin()
    for _ in range(30):
        run.record(trainer.step(1))
    assert run.diagnostics.drain()
    diagnosis = run.diagnostics.view().diagnosis
    assert diagnosis is not None and diagnosis.kind == "rising" and diagnosis.iteration < 30
    assert "dead" in {cause.kind for cause in diagnosis.causes}
    assert "He initialisation" not in diagnosis.text and "leaky ReLU" in diagnosis.text
    assert "λ_max" in diagnosis.text and "2/η = 0.200" in diagnosis.text


def test_a_setting_change_starts_the_watch_over_from_the_change():
    config = small(layers=[16, 1], learning_rate=10.0)
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False)
    run.diagnostics.configure(watch=True)
    run.diagnostics.begin()
    run.record(trainer.step(20))
    assert run.diagnostics.drain()
    first = run.diagnostics.diagnosis
    assert first is not None and first.kind == "rising"
    # marked at iteration 20: the costs before it are no reference
    trainer.change_setting("learning_rate", 0.01)
    for _ in range(4):
        run.record(trainer.step(5))
        assert run.diagnostics.drain()
    assert run.diagnostics.diagnosis is first  # the old costs were not read again as a new rise
    assert run.diagnostics._watch.start[0] == 20


def test_measurements_run_on_the_diagnostics_thread_while_training_runs_in_its_own(monkeypatch):
    seen = []

    def watched(measure):
        def run_it(*args, **kwargs):
            seen.append((measure.__name__, threading.current_thread().name))
            return measure(*args, **kwargs)
        return run_it
    monkeypatch.setattr(diagnostics, "measure_sharpness", watched(diagnostics.measure_sharpness))
    monkeypatch.setattr(diagnostics, "measure_noise", watched(diagnostics.measure_noise))
    config = small(layers=[16, 1], learning_rate=0.5)
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False, thread_name="backprop-train-diagtest")
    run.diagnostics.configure(watch=True, sharpness_every=5, noise_every=10)
    training_threads = []
    real_step = trainer.step
    def step(k=1):
        training_threads.append(threading.current_thread().name)
        return real_step(k)
    monkeypatch.setattr(trainer, "step", step)
    run.start(40)
    deadline = time.monotonic() + 60
    while run.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.diagnostics.drain()
    assert set(training_threads) == {"backprop-train-diagtest"}
    assert {name for _, name in seen} == {"backprop-diagnostics-diagtest"}
    assert {what for what, _ in seen} == {"measure_sharpness", "measure_noise"}
    view = run.view().diagnostics
    iterations = [p.iteration for p in view.sharpness]
    assert iterations[0] == 0 and all(b - a >= 5 for a, b in zip(iterations, iterations[1:], strict=False))
    assert all(p.stability.limit == pytest.approx(2 / 0.5) and p.stability.formula == "2/η"
               for p in view.sharpness)
    assert view.noise and view.noise[0].iteration == 0 and view.noise[0].noise.batch_size == 300


def test_measuring_takes_about_a_tenth_of_the_diagnostics_threads_time(monkeypatch):
    """Whatever the cadence, a measurement of m seconds is followed by a rest of 9m: a fast run's
    measurements thin out instead of taking a core from training."""
    calls = []

    def slow_measurement(trainer, snapshot, **options):
        calls.append(time.perf_counter())
        time.sleep(0.05)
        return point(snapshot.iteration, 1.0)
    monkeypatch.setattr(diagnostics, "measure_sharpness", slow_measurement)
    config = small(layers=[16, 1], iterations=10**6)
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False)
    run.diagnostics.configure(watch=True, sharpness_every=1)
    run.start()
    time.sleep(3)
    stopped = time.perf_counter()
    run.stop()
    before_stop = [t for t in calls if t < stopped]
    gaps = np.diff(before_stop)
    assert len(before_stop) >= 3 and trainer.iteration > len(before_stop)
    assert all(gap >= 0.45 for gap in gaps[1:]), gaps  # (the first cycle measures where training began too)
    assert len(run.diagnostics.view().sharpness) == len(calls)


def test_the_training_thread_only_counts(monkeypatch):
    """note() with nothing due wakes nothing; a due step wakes the thread (and starts it if needed)."""
    config = small(layers=[16, 1])
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False)
    woken = []
    monkeypatch.setattr(run.diagnostics, "_wake", lambda: woken.append(trainer.iteration))
    run.record(trainer.step(3))  # off: never woken
    assert woken == []
    run.diagnostics._next = 10
    run.record(trainer.step(1))  # iteration 3 < 10
    assert woken == []
    run.diagnostics.watch = True
    run.diagnostics._next = 4
    run.record(trainer.step(1))
    assert woken == [5]


def test_an_idle_diagnostics_thread_ends_and_the_next_due_step_starts_another(monkeypatch):
    monkeypatch.setattr(diagnostics, "IDLE_SECONDS", 0.2)
    config = small(layers=[16, 1])
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False, thread_name="backprop-train-idletest")
    run.diagnostics.configure(watch=True)
    run.diagnostics.begin()
    run.record(trainer.step(6))
    assert run.diagnostics.drain()
    name = run.diagnostics.name

    def alive():
        return any(thread.name == name for thread in threading.enumerate())
    deadline = time.monotonic() + 10
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive()
    run.record(trainer.step(6))
    assert run.diagnostics.drain() and run.diagnostics.view().error is None


def test_a_nan_is_explained_with_what_was_measured():
    config = small(layers=[16, 1], learning_rate=1e300)
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, record=False)
    run.diagnostics.configure(watch=True)
    run.step(5)
    assert run.status == "diverged"
    text = run.explain_divergence()
    assert text.startswith("Training diverged at iteration 0: the cost or a gradient became NaN/Inf")
    assert "Measured: λ_max" in text and "at iteration 0 > 2/η" in text and "smaller learning rate" in text
    assert run.diagnostics.view().diagnosis.kind == "nan"


def test_the_run_store_keeps_the_explanation(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    store = RunStore()
    config = small(layers=[16, 1], learning_rate=10.0)
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, store=store)
    run.diagnostics.configure(watch=True, sharpness_every=10)
    run.open()
    run.diagnostics.begin()
    run.record(trainer.step(20))
    run.diagnostics.drain()
    run.finish()
    metrics = store.get(run.run_id)["metrics"]
    assert metrics["diagnosis"]["kind"] == "rising" and "The cost is rising" in metrics["diagnosis"]["text"]
    assert metrics["sharpness"]["formula"] == "2/η" and metrics["sharpness"]["limit"] == pytest.approx(0.2)


# -- the command line -------------------------------------------------------------------------------
def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_track_sharpness_writes_points_against_2_over_eta(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, _, err = run_cli(capsys, "train", "--subset", "300", "--layers", "16,1", "--iterations", "30",
                           "--lr", "0.5", "--track-sharpness", "5", "--track-noise", "10", "--no-record",
                           "--json", str(report))
    assert code == 0, err
    document = json.loads(report.read_text())
    points = document["sharpness"]
    assert document["sharpness_every"] == 5 and len(points) >= 2 and points[0]["iteration"] == 0
    assert all(p["limit"] == pytest.approx(2 / 0.5) and p["formula"] == "2/η" and p["measure"] == "λ_max"
               for p in points)
    assert all(b["iteration"] - a["iteration"] >= 5 for a, b in zip(points, points[1:], strict=False))
    assert all(p["verdict"] in ("stable", "edge", "unstable") and p["value"] > 0 for p in points)
    assert document["noise_scale"] and document["noise_scale"][0]["batch_size"] == 300
    assert document["diagnosis"] is None and "warning" not in err


def test_track_sharpness_with_momentum_judges_against_its_own_limit(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, _, err = run_cli(capsys, "train", "--subset", "300", "--layers", "16,1", "--iterations", "6",
                           "--optimizer", "momentum", "--momentum", "0.5", "--lr", "0.1",
                           "--track-sharpness", "5", "--no-record", "--json", str(report))
    assert code == 0, err
    points = json.loads(report.read_text())["sharpness"]
    assert points and all(p["formula"] == "(2+2β)/η" and p["limit"] == pytest.approx(3.0 / 0.1)
                          for p in points)


def test_a_rising_cost_is_a_warning_once_on_stderr_and_in_the_json(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, _, err = run_cli(capsys, "train", "--subset", "300", "--iterations", "40", "--lr", "10",
                           "--no-record", "--json", str(report))
    assert code == 0, err
    assert err.count("warning: The cost is rising") == 1
    assert "2/η = 0.200: the stability limit for this curvature is lr <" in err
    document = json.loads(report.read_text())
    assert document["diagnosis"]["kind"] == "rising"
    assert f"warning: {document['diagnosis']['text']}" in err
    assert document["sharpness"] == [] and document["sharpness_every"] is None


def test_bad_cadences_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--track-sharpness", "0"])
    assert stop.value.code == 2
    assert "--track-sharpness: must be a whole number of steps from 1, got '0'" in capsys.readouterr().err


def test_tracking_is_off_by_default_and_leaves_the_costs_alone(capsys, tmp_path):
    plain, tracked = tmp_path / "plain.json", tmp_path / "tracked.json"
    common = ("train", "--subset", "300", "--layers", "16,1", "--iterations", "25", "--no-record")
    assert run_cli(capsys, *common, "--json", str(plain))[0] == 0
    tracking = ("--track-sharpness", "3", "--track-noise", "5")
    assert run_cli(capsys, *common, *tracking, "--json", str(tracked))[0] == 0
    plain, tracked = json.loads(plain.read_text()), json.loads(tracked.read_text())
    assert plain["sharpness"] == [] and plain["noise_scale"] == [] and tracked["sharpness"]
    assert plain["history"] == tracked["history"]  # measured off the training thread, from copies
    assert math.isfinite(tracked["sharpness"][0]["value"])
