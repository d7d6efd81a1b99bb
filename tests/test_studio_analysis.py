"""What the analysis pages (Inspect, Gradient check, Compare, Data, Math) ask `studio/` for, without
Streamlit: typed results, read from a copy of the run, and the loss landscape kept with its run."""

import dataclasses
import struct
import zlib

import numpy as np
import pytest

from backprop.checkpoint import load_checkpoint
from backprop.config import preset
from backprop.errors import InputError
from backprop.runs import RunStore
from studio import session
from studio.data_files import current_data, data_facts, sample_grid
from studio.diagnostics import unit_health_line
from studio.inspection import drawn_digit, inspect_network
from studio.landscapes import run_path, start_landscape
from studio.math_shapes import setup_shapes
from studio.network_checks import check_gradients, find_learning_rate
from studio.recorded_runs import RunRecords, load_into_studio


def stepped(subset=300, steps=5, **changes):
    """A Studio on the tutorial set-up with `subset` images, stepped `steps` times: a paused run
    recorded with its checkpoint."""
    config = dataclasses.replace(preset("tutorial"), subset=subset, eval_every=1000, **changes)
    studio = session.Studio(config=config, store=RunStore())
    studio.step(steps)
    return studio


def same_params(a, b):
    return all(np.array_equal(x, y) for pa, pb in zip(a, b, strict=True) for x, y in zip(pa, pb, strict=True))


@pytest.fixture(scope="module")
def studio():
    studio = stepped()
    yield studio
    studio.release()


# -- Inspect ---------------------------------------------------------------------------------------
def test_nothing_to_inspect_or_measure_before_a_network_is_built():
    empty = session.Studio(config=preset("tutorial"))
    assert inspect_network(empty) is None and setup_shapes(empty) is None


def test_an_inspection_is_a_copy_of_the_network_with_its_test_results(studio):
    inspection = inspect_network(studio)
    assert inspection.iteration == studio.trainer.iteration == 5
    assert inspection.network is not studio.trainer.network
    assert same_params(inspection.network.params, studio.trainer.network.params)
    assert inspection.classifies and inspection.health_condition == "saturated"
    assert inspection.class_names == ["5", "8"]
    results = inspection.test_results(worst=3)
    y = inspection.data.y_test
    assert results.total == len(y) and results.correct == int((results.predicted == y).sum())
    assert results.accuracy == results.correct / results.total
    assert len(results.worst) <= 3 and all(results.predicted[i] != y[i] for i in results.worst)
    outputs = inspection.layer_outputs(inspection.data.x_test[:1])
    assert [A.shape for A in outputs.activations] == [(196, 1), (1, 1)]
    assert outputs.probabilities.shape == (2,) and np.isclose(outputs.probabilities.sum(), 1.0)
    assert len(inspection.health_iterations) == len(inspection.unit_health)
    assert inspection.activation_records.shares.ndim == 3


def png_header(width, height):
    """The first bytes of a PNG: its signature and an IHDR chunk with that size."""
    ihdr = struct.pack(">II5B", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(
        ">I", zlib.crc32(b"IHDR" + ihdr))


def test_a_drawing_becomes_an_mnist_style_digit_and_a_huge_one_is_refused():
    assert drawn_digit(None, None) is None
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[60:220, 130:150] = 255  # a white stroke: a "1"
    digit = drawn_digit(png_header(280, 280), rgba)
    assert digit.shape == (28, 28) and 0 < digit.max() <= 1
    assert drawn_digit(png_header(280, 280), np.zeros((280, 280, 4), dtype=np.uint8)) is None  # nothing drawn
    with pytest.raises(InputError, match="at most 2000"):
        drawn_digit(png_header(4000, 300), rgba)


def test_inspects_health_line_names_a_mostly_dead_layer_and_reads_the_set_up():
    relu_he = dataclasses.replace(preset("tutorial"), activation="relu", init="he").validated()
    assert unit_health_line(np.zeros((0, 1, 2)), np.zeros(0), relu_he) is None
    health = np.array([[[0.1, np.nan]], [[0.9, np.nan]]])
    line = unit_health_line(health, np.array([0, 1]), relu_he, 2)
    assert "layer 1" in line and "90%" in line and "dead" in line and "He initialisation" not in line


# -- Gradient check ---------------------------------------------------------------------------------
def test_the_gradient_check_through_studio_is_typed_and_leaves_the_run_alone(studio):
    before = [(W.copy(), b.copy()) for W, b in studio.trainer.network.params]
    check = check_gradients(studio, n_samples=8, max_entries=5)
    assert check.iteration == 5 and [layer.layer for layer in check.layers] == [1, 2]
    assert all(layer.worst < 1e-7 for layer in check.layers)
    assert [layer.checked for layer in check.layers] == [5 + 5, 5 + 1]  # the output layer has one bias
    assert check.layers[0].worst == max(check.layers[0].dW_error, check.layers[0].db_error)
    assert same_params(before, studio.trainer.network.params)


def test_the_learning_rate_finder_trains_a_copy(studio):
    before = [(W.copy(), b.copy()) for W, b in studio.trainer.network.params]
    finding = find_learning_rate(studio)
    assert finding.suggestion > 0 and len(finding.learning_rates) == len(finding.costs)
    assert same_params(before, studio.trainer.network.params) and studio.trainer.iteration == 5


# -- the loss landscape ------------------------------------------------------------------------------
def test_a_landscape_through_studio_is_kept_with_its_run_and_its_checkpoint():
    studio = stepped(subset=1000, steps=70)  # three parameter snapshots by now
    task = start_landscape(studio, inspect_network(studio), "pca", resolution=5)
    assert task.wait(timeout=120) and task.error is None and not task.running
    assert (task.kind, task.resolution, task.done, task.total) == ("pca", 5, 5, 5)
    assert studio.trainer.history.landscape is None  # kept only when asked
    assert task.keep() and not task.keep()  # once
    assert studio.trainer.history.landscape is task.result
    saved = load_checkpoint(RunStore().get(studio.run_id)["checkpoint_path"])  # the paused run's, again
    assert saved.history.landscape.kind == "pca" and saved.history.landscape.costs.shape == (5, 5)
    found = run_path(RunStore().get(studio.run_id)["checkpoint_path"])
    assert found.missing is None and found.landscape.kind == "pca"
    studio.release()


def test_a_landscape_of_a_network_since_reset_or_a_cancelled_one_is_not_kept():
    studio = stepped(steps=2)
    task = start_landscape(studio, inspect_network(studio), "random", resolution=5, seed=1)
    task.wait(timeout=120)
    assert task.belongs_to(studio)
    studio.build()  # what Reset does
    assert not task.belongs_to(studio) and not task.keep()
    assert studio.trainer.history.landscape is None

    cancelled = start_landscape(studio, inspect_network(studio), "random", resolution=51)
    cancelled.cancel()
    cancelled.wait(timeout=120)
    assert not cancelled.result.complete and not cancelled.keep()
    assert studio.trainer.history.landscape is None
    studio.release()


def test_a_plane_that_cannot_be_made_is_an_input_error(studio):
    with pytest.raises(InputError, match="parameter snapshot"):
        start_landscape(studio, inspect_network(studio), "pca", resolution=5)
    with pytest.raises(InputError, match="resolution"):
        start_landscape(studio, inspect_network(studio), "random", resolution=2)


def test_a_runs_path_without_a_landscape_and_a_missing_checkpoint(tmp_path):
    studio = stepped(subset=1000, steps=70)
    found = run_path(RunStore().get(studio.run_id)["checkpoint_path"])
    assert found.landscape is None and found.missing is None
    assert found.path.shape == (len(found.iterations), 2) and len(found.costs) == len(found.iterations)
    assert tuple(found.path[-1]) == (0.0, 0.0) and found.iterations[-1] == 70
    assert run_path(tmp_path / "gone.npz").missing
    studio.release()


# -- Compare -----------------------------------------------------------------------------------------
def test_recorded_runs_are_typed_and_the_studios_own_shows_as_paused(studio):
    store = RunStore()
    other = store.create({"layers": [4, 1], "learning_rate": 0.5}, name="another", owner=studio.owner)
    store.append_history(other, [{"iteration": 0, "epoch": 1.0, "cost": 0.7}])
    store.finish(other, {"test_accuracy": 0.6})
    records = RunRecords(actor=studio.owner)  # this session's runs: it may rename and delete them
    runs = {run.id: run for run in records.runs(studio)}
    mine, theirs = runs[studio.run_id], runs[other]
    assert mine.status == "paused" and mine.steps == 5 and mine.checkpoint_path
    assert theirs.label == f"#{other} another (finished)" and theirs.final_accuracy == 0.6
    assert [row["cost"] for row in records.history(theirs)] == [0.7]
    records.rename(theirs, "renamed")
    assert next(run for run in records.runs() if run.id == other).name == "renamed"
    with pytest.raises(InputError):
        records.rename(theirs, "   ")
    records.delete(theirs)
    assert other not in [run.id for run in records.runs()]
    assert records.path.exists()


def test_a_recorded_run_loads_into_a_studio_with_its_network(studio):
    mine = next(run for run in RunRecords().runs(studio) if run.id == studio.run_id)
    other = session.Studio(config=preset("tutorial"), store=RunStore())
    load_into_studio(other, mine)
    assert other.trainer.iteration == 5
    assert same_params(other.trainer.network.params, studio.trainer.network.params)
    other.release()


# -- Data and Math -----------------------------------------------------------------------------------
def test_the_current_data_its_facts_and_a_grid_of_samples(studio):
    data = current_data(studio)
    assert data is studio.trainer.data
    facts = data_facts(data)
    assert (facts.n_train, facts.n_classes, facts.class_names, facts.image_shape) == (
        300, 2, ["5", "8"], (28, 28))
    assert sum(facts.train_counts) == 300 and facts.mean_images.shape == (2, 28, 28)
    grid = sample_grid(data, per_class=4, seed=1, split="test")
    assert grid.images.shape == (8, 28, 28) and grid.per_row == 4 and grid.row_labels == ["5", "8"]
    unbuilt = session.Studio(config=dataclasses.replace(preset("tutorial"), subset=300))
    assert len(current_data(unbuilt).y_train) == 300


def test_the_shapes_of_the_studios_set_up(studio):
    shapes = setup_shapes(studio)
    n = len(studio.trainer.y_train)
    assert (shapes.sizes, shapes.activation, shapes.n_samples, shapes.mini_batch) == (
        [784, 196, 1], "sigmoid", n, False)
    table = {row["array"]: row["shape"] for row in shapes.table}
    assert table["W[1]"] == "(196, 784)" and table["Z[1]"] == f"(196, {n:,})"
    batched = stepped(steps=1, batch_size=64)
    assert setup_shapes(batched).n_samples == 64 and setup_shapes(batched).mini_batch
    batched.release()
