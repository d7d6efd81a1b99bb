"""The Playground's figures: maps of what the network computes over the plane, and its graph."""

import base64

import numpy as np
import pytest

from backprop.data import load_task
from backprop.data.toy2d import feature_map
from backprop.network import Network
from studio.playground_figures import (
    PLANE_RESOLUTION,
    THUMB,
    THUMB_STEP,
    boundary_figure,
    linear_note,
    network_figure,
    neuron_figure,
    node_map,
    node_positions,
    plane_maps,
)


def decoded(z):
    values = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.float32)
    return values.reshape([int(n) for n in z["shape"].split(",")])


@pytest.fixture(scope="module")
def task():
    return load_task("circle", digits=(0, 1), points=200, noise=10, features="x1,x2,x1sq", seed=3)


@pytest.fixture(scope="module")
def network():
    return Network([3, 4, 2, 1], activation="tanh", init="xavier", seed=2)


def test_the_output_map_is_the_networks_prediction_over_the_plane(task, network):
    maps = plane_maps(network.params, "tanh", "sigmoid", task.features)
    r = PLANE_RESOLUTION
    assert maps.output.shape == (r, r) and [h.shape for h in maps.hidden] == [(4, r, r), (2, r, r)]
    assert maps.inputs.shape == (3, r, r) and np.abs(maps.inputs).max() == pytest.approx(1)
    x1, x2 = np.meshgrid(maps.axis, maps.axis)
    X = feature_map(np.stack([x1.ravel(), x2.ravel()], 1), task.features)
    assert np.array_equal((maps.output.ravel() > 0).astype(int), network.predict(X))
    assert np.allclose(maps.hidden[0][1].ravel(), network.forward(X)[0][1])


def test_softmax_and_linear_outputs_map_to_minus_one_to_one(task):
    softmax = Network([3, 2], output="softmax", seed=1)
    maps = plane_maps(softmax.params, "tanh", "softmax", task.features)
    assert np.abs(maps.output).max() <= 1
    linear = Network([3, 1], output="linear", seed=1)
    linear.params = [(linear.params[0][0] * 10, linear.params[0][1])]
    assert np.abs(plane_maps(linear.params, "tanh", "linear", task.features).output).max() == 1


def test_boundary_figure_shows_the_map_the_points_and_test_points_on_a_toggle(task, network):
    maps = plane_maps(network.params, "tanh", "sigmoid", task.features)
    figure = boundary_figure(maps, task)
    heatmap, train, test = figure["data"]
    assert np.allclose(decoded(heatmap["z"]), maps.output, atol=1e-6)
    assert len(train["x"]) == len(task.y_train) and np.allclose(train["x"], task.plane_train[:, 0])
    assert test["visible"] is False and boundary_figure(maps, task, show_test=True)["data"][2]["visible"]
    sharp = decoded(boundary_figure(maps, task, discretize=True)["data"][0]["z"])
    assert set(np.unique(sharp)) <= {-1.0, 1.0}
    assert figure["layout"]["uirevision"] == "playground-boundary"


def test_network_figure_draws_every_neuron_and_shows_every_weight_on_hover(task, network):
    maps = plane_maps(network.params, "tanh", "sigmoid", task.features)
    figure = network_figure(maps, network.params, selected=(1, 2))
    (mosaic,) = [t for t in figure["data"] if t["type"] == "heatmap"]  # every neuron's map: one image
    cells = decoded(mosaic["z"])
    columns = node_positions([3, 4, 2, 1])
    assert [len(column) for column in columns] == [3, 4, 2, 1]
    for column in columns:
        for node in column:
            shown = cells[node.row:node.row + THUMB, node.column:node.column + THUMB]
            assert np.allclose(shown, node_map(maps, node.layer, node.unit)[::THUMB_STEP, ::THUMB_STEP],
                               atol=1e-6)
            # its centre in the graph's coordinates is the middle of its cells
            assert mosaic["x0"] + (node.column + (THUMB - 1) / 2) * mosaic["dx"] == pytest.approx(node.x)
            assert mosaic["y0"] + (node.row + (THUMB - 1) / 2) * mosaic["dy"] == pytest.approx(node.y)
    assert np.isnan(cells).sum() == cells.size - 10 * THUMB * THUMB  # nothing drawn between neurons
    assert columns[1][0].y > columns[1][1].y and columns[1][0].y == columns[0][0].y  # from the top
    (weights,) = [t for t in figure["data"] if t.get("name") == "weights"]
    assert len(weights["text"]) == 3 * 4 + 4 * 2 + 2 * 1
    W1 = network.params[0][0]
    assert f"w = {W1[2, 0]:.3f}<br>x₁ → layer 1, unit 3" in weights["text"]
    assert "x₁²" in [a["text"] for a in figure["layout"]["annotations"]]
    (frame,) = figure["layout"]["shapes"]
    selected = columns[1][2]
    assert frame["x0"] < selected.x < frame["x1"] and frame["y0"] < selected.y < frame["y1"]
    edges = [t for t in figure["data"] if t.get("name") == "edges"]
    assert sum(len(t["x"]) for t in edges) == 3 * 22
    assert {t["line"]["color"] for t in edges} <= {"#0877bd", "#f59322"}


def test_neuron_figure_is_one_map_large(task, network):
    maps = plane_maps(network.params, "tanh", "sigmoid", task.features)
    figure = neuron_figure(maps, 2, 1)
    assert figure["layout"]["title"]["text"] == "layer 2, unit 2"
    assert np.allclose(decoded(figure["data"][0]["z"]), maps.hidden[1][1], atol=1e-6)
    assert neuron_figure(maps, 0, 2)["layout"]["title"]["text"] == "x₁²"


def test_linear_note_says_why_a_linear_model_cannot_fit():
    note = linear_note("xor", ("x1", "x2"), [], "tanh")
    assert "no straight line separates" in note and "50%" in note
    assert "straight line" in linear_note("spiral", ["x1"], [4], "linear")
    assert linear_note("xor", ("x1", "x2"), [2], "tanh") is None  # a hidden layer can
    assert linear_note("xor", ("x1", "x2", "x1x2"), [], "tanh") is None  # x1·x2 makes XOR linear
    assert linear_note("gauss", ("x1", "x2"), [], "tanh") is None  # a line is enough
