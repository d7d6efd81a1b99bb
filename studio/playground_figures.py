"""The Playground's pictures as plain Plotly dict specs: what the network computes over the input plane.

Every map shows a value over the plane [-6, 6]² on TensorFlow Playground's colours: orange for -1
(class 0), white for 0, blue for +1 (class 1). One forward pass of a grid of points gives them all
(`plane_maps`): the output (the decision boundary, or a regression's surface) and each neuron's own
output. The network graph draws every neuron as a small map in one pair of axes (heatmaps placed
by x0/dx), so a refresh is one Plotly.react of a few dozen small images, not a layout of many axes.
Arrays travel as binary typed arrays (`figures.typed_array`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backprop.data.toy2d import FEATURES, PLANE_RADIUS, REGRESSION, feature_map
from backprop.network import Network

from .figures import typed_array

ORANGE, BLUE, NEUTRAL = "#f59322", "#0877bd", "#e8eaeb"
COLOURS = [[0.0, ORANGE], [0.5, NEUTRAL], [1.0, BLUE]]
PLANE_RESOLUTION = 49  # cells per side of the output map
THUMB_STEP = 3  # a neuron's small map takes every third cell: 17 x 17 (TensorFlow Playground: 10 x 10)
THUMB = len(range(0, PLANE_RESOLUTION, THUMB_STEP))
NODE = 1.0  # a neuron's map is NODE x NODE in the graph's coordinates
CELL = NODE / THUMB
# All the small maps are one heatmap on a regular grid of cells, empty (NaN) between them: one image
# for plotly.js instead of one per neuron (measured a third less of the browser's time per redraw;
# a grid of uneven cells, which would send fewer empty cells, takes plotly.js longer still). So
# the gaps between neurons are whole cells.
COLUMN_CELLS, ROW_CELLS = 54, 23  # from one layer's column to the next; from one neuron to the next
COLUMN_GAP, ROW_GAP = COLUMN_CELLS * CELL, ROW_CELLS * CELL
MIN_COLUMNS, MIN_ROWS = 4, 6  # the network graph has room for at least this many
MAX_EDGE_WIDTH = 6.0


@dataclass(frozen=True)
class PlaneMaps:
    """Every neuron's output over a grid of the plane, rows along x2 (bottom to top), columns x1."""

    axis: np.ndarray  # (r,) grid coordinates, the same along x1 and x2
    inputs: np.ndarray  # (n_features, r, r) each feature, scaled to [-1, 1] for its picture
    hidden: list  # per hidden layer, (n_units, r, r) activations
    output: np.ndarray  # (r, r) the output as -1..1: 2p - 1 for a class, the value for a regression
    features: tuple

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1


def plane_maps(params, activation, output, features, resolution=PLANE_RESOLUTION) -> PlaneMaps:
    """Run the grid of the plane through a network with these parameters (a snapshot's)."""
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    network = Network(sizes, activation=activation, output=output, dtype=params[0][0].dtype.name)
    network.params = list(params)  # read only: forward() allocates its own arrays
    axis = np.linspace(-PLANE_RADIUS, PLANE_RADIUS, resolution)
    x1, x2 = np.meshgrid(axis, axis)
    plane = np.stack([x1.ravel(), x2.ravel()], axis=1)
    X = feature_map(plane, features)
    with np.errstate(all="ignore"):
        activations = network.forward(X)
    shape = (resolution, resolution)
    top = np.abs(X).max(axis=0)
    inputs = (X / np.where(top > 0, top, 1)).T.reshape(-1, *shape)
    hidden = [A.reshape(-1, *shape) for A in activations[:-1]]
    return PlaneMaps(axis, inputs, hidden, output_values(activations[-1], output).reshape(shape),
                     tuple(features))


def output_values(A, output):
    """The output layer's activations (units x samples) as one number in [-1, 1] per sample."""
    if output == "sigmoid":
        return 2 * A[0] - 1
    if output == "softmax":  # two classes: p(1) - p(0)
        return A[1] - A[0]
    return np.clip(A[0], -1, 1)


def _map_values(values, discretize=False):
    values = np.clip(np.nan_to_num(values), -1, 1)
    return np.where(values >= 0, 1.0, -1.0) if discretize else values


def _heatmap(values, x0, y0, step, **extra):
    """A heatmap whose cell (0, 0) is centred at (x0, y0), `step` apart."""
    return {"type": "heatmap", "z": typed_array(values, "float32"), "x0": x0, "dx": step, "y0": y0,
            "dy": step, "zmin": -1, "zmax": 1, "colorscale": COLOURS, "showscale": False, **extra}


def _points(plane, targets, regression, name, outline, visible=True):
    if regression:
        colour = {"color": np.asarray(targets, dtype=np.float64), "colorscale": COLOURS, "cmin": -1,
                  "cmax": 1}
    else:
        colour = {"color": np.where(np.asarray(targets) == 1, BLUE, ORANGE)}
    return {"type": "scattergl", "mode": "markers", "name": name, "visible": visible,
            "x": np.asarray(plane[:, 0], dtype=np.float64), "y": np.asarray(plane[:, 1], dtype=np.float64),
            "marker": {**colour, "size": 7, "line": {"color": outline, "width": 1}},
            "hovertemplate": "x₁ %{x:.2f}, x₂ %{y:.2f}<extra>" + name + "</extra>"}


def boundary_figure(maps: PlaneMaps, data, show_test=False, discretize=False, height=480):
    """The output over the plane with the training points (white rims) and, on the toggle, the
    test points (black rims); `data` is the task's Dataset (plane_train, y_train, ...)."""
    step = float(maps.axis[1] - maps.axis[0])
    start = float(maps.axis[0])
    traces = [_heatmap(_map_values(maps.output, discretize), start, start, step, hoverinfo="skip",
                       name="output"),
              _points(data.plane_train, data.y_train, data.regression, "training points", "white")]
    if data.plane_test is not None and len(data.plane_test):
        traces.append(_points(data.plane_test, data.y_test, data.regression, "test points", "black",
                              visible=bool(show_test)))
    limit = [-PLANE_RADIUS, PLANE_RADIUS]
    layout = {"uirevision": "playground-boundary", "height": height, "showlegend": False,
              "margin": {"l": 40, "r": 10, "t": 10, "b": 30, "autoexpand": False},
              "xaxis": {"range": limit, "title": {"text": "x₁"}, "constrain": "domain"},
              "yaxis": {"range": limit, "scaleanchor": "x", "title": {"text": "x₂"}},
              "hovermode": "closest"}
    return {"data": traces, "layout": layout}


@dataclass(frozen=True)
class Node:
    """One neuron's place in the graph: its layer (0 for the inputs), its unit (0 on top), and the
    mosaic cell of its map's lower left corner."""

    layer: int
    unit: int
    column: int
    row: int

    @property
    def x(self) -> float:  # the centre of its map, in the graph's coordinates
        return (self.column + (THUMB - 1) / 2) * CELL

    @property
    def y(self) -> float:
        return (self.row + (THUMB - 1) / 2) * CELL


def node_positions(sizes) -> list[list[Node]]:
    """Columns left to right (inputs, hidden layers, output), each filled from the top
    (TensorFlow Playground's way)."""
    tallest = max(sizes)
    return [[Node(layer, unit, layer * COLUMN_CELLS, (tallest - 1 - unit) * ROW_CELLS)
             for unit in range(count)] for layer, count in enumerate(sizes)]


def node_label(features, layer, unit, n_layers):
    if layer == 0:
        return FEATURES[features[unit]][0]
    if layer == n_layers:
        return "output"
    return f"layer {layer}, unit {unit + 1}"


def node_map(maps: PlaneMaps, layer, unit):
    """The (r, r) map of one neuron: an input feature (layer 0), a hidden unit or the output."""
    if layer == 0:
        return maps.inputs[unit]
    if layer == maps.n_layers:
        return maps.output
    return maps.hidden[layer - 1][unit]


def network_figure(maps: PlaneMaps, params, selected=None, discretize=False, height=520):
    """Every neuron as a small map of its output over the plane, joined by edges coloured by their
    weight's sign (blue positive, orange negative) and as wide as its size; a dot in the middle of
    each edge shows the weight when hovered. `selected` (layer, unit) is framed."""
    sizes = [maps.inputs.shape[0]] + [W.shape[0] for W, _ in params]
    columns = node_positions(sizes)
    traces = _edge_traces(maps, params, columns)
    traces.append(_mosaic_trace(maps, columns, discretize))
    annotations = []
    for column in columns:
        head = column[0]
        if head.layer == 0:
            title = "features"
            annotations += [{"x": node.x - NODE / 2 - 0.1, "y": node.y, "xanchor": "right",
                             "text": FEATURES[maps.features[node.unit]][0], "showarrow": False}
                            for node in column]
        elif head.layer == len(params):
            title = "output"
        else:
            title = f"layer {head.layer}<br>{len(column)} unit{'s' if len(column) > 1 else ''}"
        annotations.append({"x": head.x, "y": head.y + NODE / 2 + 0.15, "yanchor": "bottom", "text": title,
                            "showarrow": False, "font": {"size": 12}})
    margin = NODE / 2 + 0.08
    shapes = [{"type": "rect", "x0": node.x - margin, "x1": node.x + margin, "y0": node.y - margin,
               "y1": node.y + margin, "line": {"color": "#333333", "width": 2}}
              for column in columns for node in column if selected == (node.layer, node.unit)]
    # Square cells, and at least the room of 4 columns of 6 neurons, so a small network's neurons
    # are drawn no larger than a big one's (centred across, from the top like the others).
    width = max(len(columns) - 1, MIN_COLUMNS - 1) * COLUMN_GAP + NODE + 1.1
    middle = (columns[0][0].x + columns[-1][0].x) / 2 - 0.35  # a little room for the features' names
    top = ((max(sizes) - 1) * ROW_CELLS + THUMB) * CELL + 0.7
    bottom = top - 0.7 - max(max(sizes), MIN_ROWS) * ROW_GAP - 0.3
    layout = {"uirevision": "playground-network", "height": height, "showlegend": False,
              "hovermode": "closest", "margin": {"l": 50, "r": 10, "t": 10, "b": 10, "autoexpand": False},
              "xaxis": {"visible": False, "range": [middle - width / 2, middle + width / 2],
                        "fixedrange": True},
              "yaxis": {"visible": False, "range": [bottom, top], "fixedrange": True, "scaleanchor": "x"},
              "annotations": annotations, "shapes": shapes}
    return {"data": traces, "layout": layout}


def _mosaic_trace(maps, columns, discretize):
    """Every neuron's small map in one heatmap, NaN (drawn as nothing) between them."""
    height = max(node.row for column in columns for node in column) + THUMB
    mosaic = np.full((height, columns[-1][0].column + THUMB), np.nan, dtype=np.float32)
    for column in columns:
        for node in column:
            values = _map_values(node_map(maps, node.layer, node.unit),
                                 discretize and node.layer == maps.n_layers)[::THUMB_STEP, ::THUMB_STEP]
            mosaic[node.row:node.row + THUMB, node.column:node.column + THUMB] = values
    return _heatmap(mosaic, 0.0, 0.0, CELL, hoverinfo="skip", name="neurons")


def _edge_traces(maps, params, columns):
    """Edges grouped by sign and width (a handful of line traces however many edges there are),
    and one trace of hoverable dots at their middles."""
    groups = {}
    middles = {"x": [], "y": [], "w": [], "text": []}
    for layer, (W, _) in enumerate(params, start=1):
        for target in columns[layer]:
            for source in columns[layer - 1]:
                w = float(W[target.unit, source.unit])
                width = round(min(abs(w), 4.0) / 4.0 * (MAX_EDGE_WIDTH - 0.5) * 2) / 2 + 0.5
                xs, ys = groups.setdefault((w >= 0, width), ([], []))
                x0, x1 = source.x + NODE / 2, target.x - NODE / 2
                xs += [x0, x1, None]
                ys += [source.y, target.y, None]
                middles["x"].append((x0 + x1) / 2)
                middles["y"].append((source.y + target.y) / 2)
                middles["w"].append(w)
                names = [node_label(maps.features, node.layer, node.unit, len(params))
                         for node in (source, target)]
                middles["text"].append(f"w = {w:.3f}<br>{names[0]} → {names[1]}")
    traces = [{"type": "scatter", "mode": "lines", "x": xs, "y": ys, "hoverinfo": "skip", "name": "edges",
               "line": {"color": BLUE if positive else ORANGE, "width": width},
               "opacity": 0.35 + 0.65 * width / MAX_EDGE_WIDTH}
              for (positive, width), (xs, ys) in sorted(groups.items())]
    traces.append({"type": "scatter", "mode": "markers", "name": "weights", "x": middles["x"],
                   "y": middles["y"], "text": middles["text"], "hovertemplate": "%{text}<extra></extra>",
                   "marker": {"size": 7, "color": middles["w"], "colorscale": COLOURS, "cmin": -2,
                              "cmax": 2, "line": {"color": "white", "width": 1}}})
    return traces


def neuron_figure(maps: PlaneMaps, layer, unit, discretize=False, height=320):
    """One neuron's map, large."""
    step = float(maps.axis[1] - maps.axis[0])
    start = float(maps.axis[0])
    values = _map_values(node_map(maps, layer, unit), discretize and layer == maps.n_layers)
    limit = [-PLANE_RADIUS, PLANE_RADIUS]
    layout = {"uirevision": "playground-neuron", "height": height,
              "margin": {"l": 40, "r": 10, "t": 30, "b": 30, "autoexpand": False},
              "title": {"text": node_label(maps.features, layer, unit, maps.n_layers)},
              "xaxis": {"range": limit, "constrain": "domain"}, "yaxis": {"range": limit, "scaleanchor": "x"}}
    return {"data": [_heatmap(values, start, start, step, hovertemplate="x₁ %{x:.1f}, x₂ %{y:.1f}: %{z:.2f}"
                              "<extra></extra>")], "layout": layout}


LINE_ENOUGH = ("gauss", "plane")  # the data sets a straight line (or a tilted plane) fits


def linear_note(dataset, features, hidden, activation):
    """Why this network cannot fit this data set however long it trains, or None. Without a hidden
    layer (or with only linear ones) the network is a linear model of its features: on x1 and x2
    alone, its boundary is a straight line."""
    if hidden and activation != "linear":
        return None
    if dataset in LINE_ENOUGH or not set(features) <= {"x1", "x2"}:
        return None
    what = "no hidden layer" if not hidden else "only linear hidden layers"
    if dataset in REGRESSION:
        miss = "it can only fit a tilted plane, not the bumps of multi-gauss"
    else:
        miss = (f"its decision boundary is a straight line, and no straight line separates the classes "
                f"of {dataset}: it stays near 50% accuracy" if dataset == "xor" else
                f"its decision boundary is a straight line, which cannot follow the classes of {dataset}")
    return (f"With {what} the network is a linear model of x₁ and x₂: {miss}. Add a hidden layer with a "
            "nonlinear activation, or a feature such as x₁·x₂ (XOR) or x₁² and x₂² (circle).")
