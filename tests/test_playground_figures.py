"""The Playground's figures: maps of what the network computes over the plane, its graph (every neuron,
the unchosen features dimmed, weights and bias squares to edit), the data sets' thumbnails, the
losses per epoch, and the one colour convention (negative blue, positive orange)."""

import base64
import io

import numpy as np
import pytest

from backprop.data import load_task
from backprop.data.toy2d import FEATURES, feature_map
from backprop.network import Network
from studio.figures import DIVERGING
from studio.playground_figures import (
    COLOURS,
    COLUMN_GAP,
    DIMMED,
    MAP_OPACITY,
    NEGATIVE,
    NODE,
    PLANE_RADIUS,
    PLANE_RESOLUTION,
    POSITIVE,
    THUMB,
    THUMB_STEP,
    boundary_figure,
    dataset_figure,
    linear_note,
    loss_figure,
    loss_text,
    map_of,
    network_figure,
    node_map,
    node_positions,
    parse_node_id,
    parse_resize_id,
    plane_maps,
    rgba,
)


def pixels(image):
    """A layout image's PNG as RGBA pixels, rows bottom to top (as the values it shows)."""
    from PIL import Image

    head, data = image["source"].split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))[::-1]


def image(figure, name):
    (found,) = [i for i in figure["layout"]["images"] if i["name"] == name]
    return found


def rgb(colour):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def task():
    return load_task("circle", digits=(0, 1), points=200, noise=10, features="x1,x2,x1sq", seed=3)


@pytest.fixture(scope="module")
def network():
    net = Network([3, 4, 2, 1], activation="tanh", init="xavier", seed=2)
    net.params = [(W, np.linspace(-0.5, 0.5, len(b)).reshape(b.shape)) for W, b in net.params]
    return net


@pytest.fixture(scope="module")
def maps(task, network):
    return plane_maps(network.params, "tanh", "sigmoid", task.features)


def test_the_output_map_is_the_networks_prediction_over_the_plane(task, network, maps):
    r = PLANE_RESOLUTION
    assert r >= 100  # at least TensorFlow Playground's 100 x 100
    assert maps.output.shape == (r, r) and [h.shape for h in maps.hidden] == [(4, r, r), (2, r, r)]
    assert maps.inputs.shape == (3, r, r) and np.abs(maps.inputs).max() == pytest.approx(1)
    assert set(maps.feature_maps) == set(FEATURES)  # all seven, for the graph's feature column
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


def test_one_colour_convention_negative_blue_positive_orange_like_the_train_pages():
    """The issue's finding: the Train page drew negative weights blue and the Playground positive
    ones. Now both pages draw negative values blue and positive ones warm (orange here, red there)."""
    low, high = rgb(COLOURS[0][1]), rgb(COLOURS[-1][1])
    assert COLOURS[0][1] == NEGATIVE and COLOURS[-1][1] == POSITIVE
    assert low[2] > low[0] and high[0] > high[2]  # blue below zero, orange above
    train_low, train_high = rgb(DIVERGING[0][1]), rgb(DIVERGING[-1][1])
    assert train_low[2] > train_low[0] and train_high[0] > train_high[2]  # the Train page's: the same


def test_the_big_map_is_translucent_with_a_legend_and_points_coloured_by_class(task, maps):
    figure = boundary_figure(maps, task)
    train, test = figure["data"]
    picture = image(figure, "map")
    assert picture["opacity"] == pytest.approx(160 / 255) == MAP_OPACITY  # TensorFlow Playground's alpha
    assert np.array_equal(pixels(picture), rgba(maps.output))  # the output's values, cell for cell
    half = PLANE_RADIUS / (PLANE_RESOLUTION - 1)  # cells centred on the grid's points
    assert (picture["x"], picture["y"], picture["sizex"]) == pytest.approx(
        (-PLANE_RADIUS - half, PLANE_RADIUS + half, 2 * PLANE_RADIUS + 2 * half))
    assert picture["layer"] == "below" and figure["layout"]["plot_bgcolor"] == "#ffffff"  # over white, as TF
    legend = image(figure, "legend")
    assert np.array_equal(pixels(legend)[0], rgba(np.linspace(-1, 1, 257))) and legend["xref"] == "x"
    words = [a["text"] for a in figure["layout"]["annotations"]]
    assert words == ["−1", "0", "+1", "blue −1: class 0 · orange +1: class 1"]
    colours = np.array(train["marker"]["color"])
    assert set(colours[task.y_train == 0]) == {NEGATIVE} and set(colours[task.y_train == 1]) == {POSITIVE}
    assert train["marker"]["line"]["color"] == "white" and test["marker"]["line"]["color"] == "black"
    assert len(train["x"]) == len(task.y_train) and np.allclose(train["x"], task.plane_train[:, 0])
    assert test["visible"] is False and boundary_figure(maps, task, show_test=True)["data"][1]["visible"]
    sharp = pixels(image(boundary_figure(maps, task, discretize=True), "map"))
    assert {tuple(p) for p in sharp.reshape(-1, 4)} == {tuple(p) for p in rgba(np.array([-1.0, 1.0]))}
    assert figure["layout"]["uirevision"] == "playground-boundary"
    regression = load_task("plane", digits=None, points=100)
    assert "class" not in boundary_figure(maps, regression)["layout"]["annotations"][-1]["text"]


def test_the_big_map_shows_a_hovered_neuron_or_feature(task, maps):
    figure = boundary_figure(maps, task, shown=["node", 1, 2])
    assert np.array_equal(pixels(image(figure, "map")), rgba(maps.hidden[0][2]))
    assert figure["layout"]["title"]["text"] == "layer 1, unit 3"
    figure = boundary_figure(maps, task, shown=["feature", "sinx2"])  # not chosen: shown all the same
    assert np.array_equal(pixels(image(figure, "map")), rgba(maps.feature_maps["sinx2"]))
    assert figure["layout"]["title"]["text"] == "sin x₂ (not chosen)"
    gone = boundary_figure(maps, task, shown=["node", 1, 9])  # a unit the network no longer has
    assert gone["layout"]["title"]["text"] == "output"
    assert map_of(maps, ["node", 3, 0]) is maps.output and map_of(maps, "nonsense") is None
    assert parse_node_id(["feature", "x9"]) is None and parse_node_id(["node", 1, True]) is None


def test_colours_run_from_blue_through_white_to_orange_and_gaps_are_transparent():
    table = rgba(np.array([-1.0, 0.0, 1.0, np.nan]))
    assert [tuple(int(v) for v in p) for p in table[:3]] == [
        (8, 119, 189, 255), (232, 234, 235, 255), (245, 147, 34, 255)]  # NEGATIVE, NEUTRAL, POSITIVE
    assert table[3, 3] == 0


def test_network_figure_draws_every_neuron_and_the_unchosen_features_dimmed(task, network, maps):
    figure = network_figure(maps, network.params, shown=("node", 1, 2), pinned=("node", 3, 0))
    assert not [t for t in figure["data"] if t["type"] == "heatmap"]  # pictures, not heatmaps
    mosaic, dimmed = image(figure, "neurons"), image(figure, "unchosen features")  # two pictures in all
    cells, faded = pixels(mosaic), pixels(dimmed)
    assert dimmed["opacity"] == DIMMED and "opacity" not in mosaic
    columns = node_positions(maps.features, [3, 4, 2, 1])
    assert [len(column) for column in columns] == [7, 4, 2, 1]  # all seven features, TF's column
    for column in columns:
        for node in column:
            values = (maps.feature_maps[node.feature] if node.layer == 0
                      else node_map(maps, node.layer, node.unit))
            where = cells if node.layer > 0 or node.chosen else faded
            shown = where[node.row:node.row + THUMB, node.column:node.column + THUMB]
            assert np.array_equal(shown, rgba(values[::THUMB_STEP, ::THUMB_STEP]))
            # its centre in the graph's coordinates is the middle of its cells
            cell = mosaic["sizex"] / cells.shape[1]
            assert mosaic["x"] + (node.column + THUMB / 2) * cell == pytest.approx(node.x)
            assert mosaic["y"] - mosaic["sizey"] + (node.row + THUMB / 2) * cell == pytest.approx(node.y)
    assert (cells[..., 3] == 0).sum() == cells[..., 0].size - 10 * THUMB * THUMB  # 3 features, 7 units
    assert (faded[..., 3] == 0).sum() == faded[..., 0].size - 4 * THUMB * THUMB  # the 4 unchosen
    assert [node.unit for node in columns[0]] == [0, 1, 2, None, None, None, None]
    assert columns[1][0].y > columns[1][1].y and columns[1][0].y == columns[0][0].y  # from the top
    labels = {a["text"]: a for a in figure["layout"]["annotations"]}
    assert labels["sin x₁"]["font"]["color"] == "#9aa0a6" and labels["x₁²"]["font"]["color"] is None
    # a frame for the neuron the big map shows, a bolder one for the pinned one
    frames = figure["layout"]["shapes"]
    assert sorted(f["line"]["width"] for f in frames) == [2, 3]
    (dotted,) = [f for f in frames if f["line"]["dash"] == "dot"]
    assert dotted["x0"] < columns[1][2].x < dotted["x1"] and dotted["y0"] < columns[1][2].y < dotted["y1"]
    # every neuron (and every feature, chosen or not) is a region for the chart's hover and click events
    regions = figure["layout"]["meta"]["live_plot"]["regions"]
    assert len(regions) == 7 + 4 + 2 + 1
    assert ["feature", "x1x2"] in [r[4] for r in regions] and ["node", 2, 1] in [r[4] for r in regions]
    x0, x1, y0, y1, _ = next(r for r in regions if r[4] == ["node", 1, 0])
    assert x0 < columns[1][0].x < x1 and y0 < columns[1][0].y < y1 and x1 - x0 == pytest.approx(1.0)


def test_each_hidden_layer_has_its_minus_and_plus_under_its_column(task, network, maps):
    # network: [3, 4, 2, 1]; at most 4 units, so layer 1's + is greyed and has no region
    figure = network_figure(maps, network.params, max_units=4)
    columns = node_positions(maps.features, [3, 4, 2, 1])
    regions = {tuple(r[4]): r for r in figure["layout"]["meta"]["live_plot"]["regions"]}
    assert ("units", 0, 1) not in regions and ("units", 0, -1) in regions
    assert ("units", 1, 1) in regions and ("units", 1, -1) in regions
    for (_, layer, delta) in [key for key in regions if key[0] == "units"]:
        x0, x1, y0, y1, _ = regions[("units", layer, delta)]
        column = columns[layer + 1]
        assert 0 < ((x0 + x1) / 2 - column[0].x) * delta < COLUMN_GAP / 2  # under its own column
        assert y1 < min(node.y for node in column) - NODE / 2  # below its neurons
        assert figure["layout"]["yaxis"]["range"][0] < y0  # inside the chart
    signs = [a for a in figure["layout"]["annotations"] if a["text"] in ("−", "+")]
    assert len(signs) == 4 and sum(a["font"]["color"] == "#c0c4c8" for a in signs) == 1
    assert parse_resize_id(["units", 1, -1]) == (1, -1)
    assert parse_resize_id(["units", -1, 1]) is None and parse_resize_id(["units", 0, 2]) is None
    assert parse_resize_id(["node", 1, 0]) is None
    assert "meta" not in network_figure(maps, network.params)["layout"] or not [
        r for r in network_figure(maps, network.params)["layout"]["meta"]["live_plot"]["regions"]
        if r[4][0] == "units"]  # without max_units (a link hid the layers' controls): none


def test_edges_are_coloured_by_sign_and_each_weight_and_bias_can_be_typed(task, network, maps):
    figure = network_figure(maps, network.params)
    edges = [t for t in figure["data"] if t.get("name") == "edges"]
    assert sum(len(t["x"]) for t in edges) == 3 * (3 * 4 + 4 * 2 + 2 * 1)  # none from unchosen features
    (weights,) = [t for t in figure["data"] if t.get("name") == "weights"]
    W1 = network.params[0][0]
    assert f"w = {W1[2, 0]:.3f}<br>x₁ → layer 1, unit 3" in weights["text"][2 * 3]
    assert weights["meta"] == {"live_plot": "edit"}
    ids = [row[0] for row in weights["customdata"]]
    values = [row[1] for row in weights["customdata"]]
    assert ids[2 * 3 + 0] == ["weight", 1, 2, 0] and values[2 * 3] == pytest.approx(W1[2, 0])
    columns = node_positions(maps.features, [3, 4, 2, 1])
    expected = {}
    for layer, (W, _) in enumerate(network.params, start=1):
        sources = [node for node in columns[layer - 1] if node.unit is not None]
        for target in columns[layer]:
            for source in sources:
                end = tuple(round(v, 9) for v in (source.x + 0.5, source.y, target.x - 0.5, target.y))
                expected[end] = NEGATIVE if W[target.unit, source.unit] < 0 else POSITIVE
    drawn = {}
    for trace in edges:  # each edge: blue for a negative weight, orange for a positive one
        for i in range(0, len(trace["x"]), 3):
            (x0, x1), (y0, y1) = trace["x"][i:i + 2], trace["y"][i:i + 2]
            drawn[(round(x0, 9), round(y0, 9), round(x1, 9), round(y1, 9))] = trace["line"]["color"]
    assert drawn == expected and set(drawn.values()) == {NEGATIVE, POSITIVE}
    (biases,) = [t for t in figure["data"] if t.get("name") == "biases"]
    assert biases["marker"]["symbol"] == "square" and len(biases["x"]) == 4 + 2 + 1
    assert biases["marker"]["color"] == pytest.approx([b for _, bs in network.params for b in bs.ravel()])
    assert biases["marker"]["colorscale"] == COLOURS and biases["marker"]["cmin"] == -1
    assert biases["customdata"][0] == [["bias", 1, 0], pytest.approx(-0.5), "bias"]
    assert biases["meta"] == {"live_plot": "edit"}
    assert biases["x"][0] < node_positions(maps.features, [3, 4, 2, 1])[1][0].x - 0.5  # left of its neuron
    fixed = network_figure(maps, network.params, edit=False)  # editing hidden by a link
    assert not any("meta" in t for t in fixed["data"]) and "click" not in str(fixed["data"])
    assert [i["name"] for i in fixed["layout"]["images"]] == ["neurons", "unchosen features"]


def test_data_set_thumbnails_are_clickable_regions_with_the_chosen_one_framed():
    figure = dataset_figure(False, "spiral")
    regions = figure["layout"]["meta"]["live_plot"]["regions"]
    assert [r[4] for r in regions] == ["circle", "xor", "gauss", "spiral", "moons"]
    assert [t["name"] for t in figure["data"]] == ["circle", "xor", "gauss", "spiral", "moons"]
    assert all(len(t["x"]) == 200 for t in figure["data"])  # TensorFlow Playground's 200 points
    widths = [s["line"]["width"] for s in figure["layout"]["shapes"]]
    assert widths == [1, 1, 1, 3, 1]
    assert [r[4] for r in dataset_figure(True, "plane")["layout"]["meta"]["live_plot"]["regions"]] == [
        "plane", "multi-gauss"]
    assert "meta" not in dataset_figure(False, "xor", clickable_sets=False)["layout"]


def test_losses_per_epoch_with_changes_marked_at_their_epoch():
    rows = [(0, 0.0, 0.70, 0.71), (25, 1.0, 0.60, 0.62), (50, 2.0, 0.40, 0.45), (75, 3.0, 0.30, 0.36)]
    markers = [{"iteration": 30, "setting": "learning_rate", "old": 0.03, "new": 0.3},
               {"iteration": 50, "setting": "W1[2,1]", "old": 0.1234, "new": 1.5}]
    figure = loss_figure(rows, markers)
    train, test = figure["data"]
    assert (train["name"], test["name"]) == ("training loss", "test loss")
    assert list(train["x"]) == [0, 1, 2, 3] and list(test["y"]) == [0.71, 0.62, 0.45, 0.36]
    assert [s["x0"] for s in figure["layout"]["shapes"]] == [pytest.approx(1.2), 2.0]
    assert [a["text"] for a in figure["layout"]["annotations"]] == [
        "learning_rate 0.03→0.3", "W1[2,1] 0.1234→1.5"]
    assert loss_figure([])["data"][0]["x"].size == 0
    assert loss_text(0.0984, 0.12345) == ("Test loss 0.123", "Training loss 0.098")  # TF's wording
    assert loss_text(0.1, float("nan"))[0] == "Test loss —"


def test_linear_note_says_why_a_linear_model_cannot_fit():
    note = linear_note("xor", ("x1", "x2"), [], "tanh")
    assert "no straight line separates" in note and "50%" in note
    assert "straight line" in linear_note("spiral", ["x1"], [4], "linear")
    assert linear_note("xor", ("x1", "x2"), [2], "tanh") is None  # a hidden layer can
    assert linear_note("xor", ("x1", "x2", "x1x2"), [], "tanh") is None  # x1·x2 makes XOR linear
    assert linear_note("gauss", ("x1", "x2"), [], "tanh") is None  # a line is enough
