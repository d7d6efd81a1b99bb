"""The Playground's pictures as plain Plotly dict specs: what the network computes over the input plane.

Every map shows a value over the plane [-6, 6]² on one colour convention, the same on every page:
**negative blue, positive orange** (the Train page's weights: negative blue, positive red), white
for 0. A class-0 point is blue (the output's -1), a class-1 point orange (+1); a weight or a bias is
blue below 0 and orange above. Each map's legend says so.

One forward pass of a grid of points gives every map (`plane_maps`): the output (the decision
boundary, or a regression's surface), each neuron's own output, and each of the seven features.
The maps are drawn as PNG pictures (layout images placed in the axes' coordinates, the colours
computed here), not heatmaps: a picture of the 103 x 103 big map or of every neuron's small map is
a few tens of kilobytes that the browser decodes natively, where a heatmap of the same cells was
several times the bytes and plotly.js had to paint each cell (the maps refresh five times a second
while training). The network graph draws every neuron's map in one picture, so a refresh is one
Plotly.react of a few images, not a layout of many axes. The graph names its neurons as regions for
the live chart's events (hover one: the big map shows it; click a feature: it is chosen or
dropped), and its weights and biases as editable points (click one, type a value).
"""

from __future__ import annotations

import base64
import functools
import io
from dataclasses import dataclass

import numpy as np

from backprop.data.toy2d import CLASSIFICATION, FEATURES, PLANE_RADIUS, REGRESSION, feature_map, make_toy
from backprop.network import Network

from .chart_events import editable, regions
from .figures import _short, downsample, plotly_text

NEGATIVE, POSITIVE, NEUTRAL = "#0877bd", "#f59322", "#e8eaeb"  # blue below 0, orange above
COLOURS = [[0.0, NEGATIVE], [0.5, NEUTRAL], [1.0, POSITIVE]]
MAP_OPACITY = 160 / 255  # TensorFlow Playground's heatmap alpha: the points stand out on the map
DIMMED = 0.3  # an unchosen feature's map in the graph (TensorFlow Playground dims it too)
PLANE_RESOLUTION = 103  # cells per side of the big map (TensorFlow Playground: 100)
THUMB_STEP = 6  # a neuron's small map takes every sixth cell: 18 x 18 (TensorFlow Playground: 10 x 10)
THUMB = len(range(0, PLANE_RESOLUTION, THUMB_STEP))
NODE = 1.0  # a neuron's map is NODE x NODE in the graph's coordinates
CELL = NODE / THUMB
# All the small maps are one heatmap on a regular grid of cells, empty (NaN) between them: one image
# for plotly.js instead of one per neuron (measured a third less of the browser's time per redraw;
# a grid of uneven cells, which would send fewer empty cells, takes plotly.js longer still). So
# the gaps between neurons are whole cells.
COLUMN_CELLS, ROW_CELLS = 57, 24  # from one layer's column to the next; from one neuron to the next
COLUMN_GAP, ROW_GAP = COLUMN_CELLS * CELL, ROW_CELLS * CELL
MIN_COLUMNS = 4  # the network graph has room for at least this many columns
MAX_EDGE_WIDTH = 6.0
BIAS_GAP = 0.16  # a bias square sits this far left of its neuron's lower left corner
LEGEND_CLASSES = "blue −1: class 0 · orange +1: class 1"  # the big map's legend, under it
LEGEND_CLASSES_SHORT = "blue: class 0 · orange: class 1"  # at a projector's size (the bar says −1, +1)
LEGEND_VALUES = "blue: negative · orange: positive"


@dataclass(frozen=True)
class PlaneMaps:
    """Every neuron's output over a grid of the plane, rows along x2 (bottom to top), columns x1."""

    axis: np.ndarray  # (r,) grid coordinates, the same along x1 and x2
    feature_maps: dict  # each of the seven features over the grid, scaled to [-1, 1] for its picture
    hidden: list  # per hidden layer, (n_units, r, r) activations
    output: np.ndarray  # (r, r) the output as -1..1: 2p - 1 for a class, the value for a regression
    features: tuple  # the chosen features: the network's inputs, in order

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    @property
    def inputs(self) -> np.ndarray:
        """(n_features, r, r) the chosen features' maps, in the network's input order."""
        return np.stack([self.feature_maps[name] for name in self.features])


@functools.lru_cache(maxsize=4)
def _feature_maps(resolution):
    axis = np.linspace(-PLANE_RADIUS, PLANE_RADIUS, resolution)
    x1, x2 = np.meshgrid(axis, axis)
    plane = np.stack([x1.ravel(), x2.ravel()], axis=1)
    X = feature_map(plane, tuple(FEATURES))
    top = np.abs(X).max(axis=0)
    scaled = (X / np.where(top > 0, top, 1)).T.reshape(len(FEATURES), resolution, resolution)
    maps = {name: scaled[i] for i, name in enumerate(FEATURES)}
    for values in maps.values():
        values.flags.writeable = False
    return axis, plane, maps


def plane_maps(params, activation, output, features, resolution=PLANE_RESOLUTION) -> PlaneMaps:
    """Run the grid of the plane through a network with these parameters (a snapshot's)."""
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    network = Network(sizes, activation=activation, output=output, dtype=params[0][0].dtype.name)
    network.params = list(params)  # read only: forward() allocates its own arrays
    axis, plane, maps = _feature_maps(resolution)
    X = feature_map(plane, features)
    with np.errstate(all="ignore"):
        activations = network.forward(X)
    shape = (resolution, resolution)
    hidden = [A.reshape(-1, *shape) for A in activations[:-1]]
    values = output_values(activations[-1], output).reshape(shape)
    return PlaneMaps(axis, maps, hidden, values, tuple(features))


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


def _lut():
    stops = np.array([stop for stop, _ in COLOURS])
    rgb = np.array([[int(colour[i:i + 2], 16) for i in (1, 3, 5)] for _, colour in COLOURS], dtype=np.float64)
    positions = np.linspace(0, 1, 257)  # an odd number: 0 falls on the middle colour
    table = np.stack([np.interp(positions, stops, rgb[:, k]) for k in range(3)], axis=1)
    return table.round().astype(np.uint8)


LUT = _lut()  # 257 colours from -1 (blue) through 0 (white) to +1 (orange)


def rgba(values):
    """Values in [-1, 1] (rows bottom to top) as RGBA pixels on the maps' colours; NaN: transparent."""
    values = np.asarray(values, dtype=np.float64)
    gaps = ~np.isfinite(values)
    index = np.clip(np.rint((np.where(gaps, 0.0, values) + 1.0) * 128), 0, 256).astype(np.uint16)
    pixels = np.empty(values.shape + (4,), dtype=np.uint8)
    pixels[..., :3] = LUT[index]
    pixels[..., 3] = np.where(gaps, 0, 255)
    return pixels


def png_source(values):
    """The values' picture as a PNG data URI (its first row on top: the values' last row)."""
    from PIL import Image  # installed with Streamlit

    buffer = io.BytesIO()
    picture = Image.fromarray(np.ascontiguousarray(rgba(values)[::-1]), "RGBA")
    picture.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image(values, x0, y0, step, name, **extra):
    """A layout image of the values whose cell (0, 0) is centred at (x0, y0), `step` apart, in the
    axes' coordinates (rows bottom to top)."""
    rows, columns = np.shape(values)
    return {"name": name, "source": png_source(values), "xref": "x", "yref": "y", "x": x0 - step / 2,
            "y": y0 + (rows - 0.5) * step, "sizex": columns * step, "sizey": rows * step, "sizing": "stretch",
            "xanchor": "left", "yanchor": "top", "layer": "below", **extra}


@functools.lru_cache(maxsize=1)
def _legend_source():
    return png_source(np.linspace(-1, 1, 257)[None, :])


def _points(plane, targets, regression, name, outline, visible=True):
    if regression:
        colour = {"color": np.asarray(targets, dtype=np.float64), "colorscale": COLOURS, "cmin": -1,
                  "cmax": 1}
    else:
        colour = {"color": np.where(np.asarray(targets) == 1, POSITIVE, NEGATIVE)}
    return {"type": "scattergl", "mode": "markers", "name": name, "visible": visible,
            "x": np.asarray(plane[:, 0], dtype=np.float64), "y": np.asarray(plane[:, 1], dtype=np.float64),
            "marker": {**colour, "size": 6, "line": {"color": outline, "width": 1}},
            "hovertemplate": "x₁ %{x:.2f}, x₂ %{y:.2f}<extra>" + name + "</extra>"}


# -- the neurons: where each is, and what it shows ---------------------------------------------
def node_id(layer, unit=None, feature=None):
    """How events and the page name a neuron: ("feature", name) for an input feature (chosen or
    not), ("node", layer, unit) for a hidden unit or the output."""
    return ("feature", feature) if layer == 0 else ("node", layer, unit)


def parse_node_id(value):
    """A node id from an event (JSON: a list), or None if it is not one."""
    if not isinstance(value, (list, tuple)):
        return None
    if len(value) == 2 and value[0] == "feature" and isinstance(value[1], str) and value[1] in FEATURES:
        return ("feature", value[1])
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:])
    if len(value) == 3 and value[0] == "node" and whole:
        return ("node", value[1], value[2])
    return None


def resize_id(layer, delta):
    """How events name a layer's + or − under its column: ("units", hidden layer from 0, +1 or -1)."""
    return ("units", layer, delta)


def parse_resize_id(value):
    """(hidden layer, delta) from an event's id, or None if it is not a layer's + or −."""
    if not isinstance(value, (list, tuple)) or len(value) != 3 or value[0] != "units":
        return None
    layer, delta = value[1], value[2]
    if isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0 and delta in (1, -1):
        return layer, delta
    return None


def node_map(maps: PlaneMaps, layer, unit):
    """The (r, r) map of one neuron: an input (layer 0, the unit-th chosen feature), a hidden unit
    or the output."""
    if layer == 0:
        return maps.feature_maps[maps.features[unit]]
    if layer == maps.n_layers:
        return maps.output
    return maps.hidden[layer - 1][unit]


def map_of(maps: PlaneMaps, shown):
    """The map of a node id (see node_id), or None when the network has no such neuron now."""
    shown = parse_node_id(shown)
    if shown is None:
        return None
    if shown[0] == "feature":
        return maps.feature_maps[shown[1]]
    layer, unit = shown[1:]
    if not 1 <= layer <= maps.n_layers:
        return None
    size = 1 if layer == maps.n_layers else maps.hidden[layer - 1].shape[0]
    return node_map(maps, layer, unit) if 0 <= unit < size else None


def node_label(features, layer, unit, n_layers):
    if layer == 0:
        return FEATURES[features[unit]][0]
    if layer == n_layers:
        return "output"
    return f"layer {layer}, unit {unit + 1}"


def label_of(maps: PlaneMaps, shown):
    shown = parse_node_id(shown)
    if shown is None:
        return "output"
    if shown[0] == "feature":
        return FEATURES[shown[1]][0] + ("" if shown[1] in maps.features else " (not chosen)")
    return node_label(maps.features, shown[1], shown[2], maps.n_layers)


@dataclass(frozen=True)
class Node:
    """One neuron's place in the graph: its layer (0 for the features), its unit (0 on top; for a
    feature, its place among the chosen ones, None when not chosen), the feature's name, and the
    mosaic cell of its map's lower left corner."""

    layer: int
    unit: int | None
    column: int
    row: int
    feature: str | None = None

    @property
    def x(self) -> float:  # the centre of its map, in the graph's coordinates
        return (self.column + (THUMB - 1) / 2) * CELL

    @property
    def y(self) -> float:
        return (self.row + (THUMB - 1) / 2) * CELL

    @property
    def id(self):
        return node_id(self.layer, self.unit, self.feature)

    @property
    def chosen(self) -> bool:
        return self.unit is not None


def node_positions(features, sizes) -> list[list[Node]]:
    """Columns left to right: the seven features (TensorFlow Playground's column: the chosen ones
    are the network's inputs, the others are drawn dimmed), the hidden layers, the output; each
    filled from the top. `sizes` are the network's (inputs first)."""
    tallest = max(len(FEATURES), *sizes[1:])
    inputs = [Node(0, features.index(name) if name in features else None, 0, (tallest - 1 - row) * ROW_CELLS,
                   name) for row, name in enumerate(FEATURES)]
    return [inputs] + [[Node(layer, unit, layer * COLUMN_CELLS, (tallest - 1 - unit) * ROW_CELLS)
                        for unit in range(count)] for layer, count in enumerate(sizes[1:], start=1)]


def _inputs(column):
    """The chosen features' nodes, in the network's input order."""
    return sorted((node for node in column if node.chosen), key=lambda node: node.unit)


# -- the figures ---------------------------------------------------------------------------------
def _legend_bands(font):
    """Where the big map's legend goes under the plot area, in px for tick labels of `font` px: the
    tops of the bar, of its numbers and of the words, and the bottom margin that holds them all."""
    bar = font * 1.5 + 4  # under the x tick labels
    numbers = bar + 8
    words = numbers + font * 1.3 + 2
    return bar, numbers, words, round(words + (font + 1) * 1.4 + 4)


def _legend(regression, font, plot_height):
    """The big map's legend under it, along x₁: a bar from -1 to +1 and what the colours mean, placed
    in pixels (_legend_bands) for a plot area `plot_height` px tall. At a projector's size the words
    are shorter: the long ones did not fit the output's column at 1280 px."""
    bar_top, numbers_top, words_top, _ = _legend_bands(font)

    def paper(pixels):
        return -pixels / plot_height

    bar = {"name": "legend", "source": _legend_source(), "xref": "x", "yref": "paper", "x": -PLANE_RADIUS,
           "y": paper(bar_top), "sizex": 2 * PLANE_RADIUS, "sizey": 8 / plot_height, "sizing": "stretch",
           "xanchor": "left", "yanchor": "top", "layer": "above"}
    ticks = [{"x": x, "y": paper(numbers_top), "xref": "x", "yref": "paper", "text": text, "showarrow": False,
              "yanchor": "top", "font": {"size": font}}
             for x, text in ((-PLANE_RADIUS, "−1"), (0.0, "0"), (PLANE_RADIUS, "+1"))]
    text = LEGEND_VALUES if regression else LEGEND_CLASSES if font < 16 else LEGEND_CLASSES_SHORT
    words = {"x": 0.0, "y": paper(words_top), "xref": "x", "yref": "paper", "showarrow": False,
             "yanchor": "top", "text": text, "font": {"size": font + 1}, "name": "legend"}
    return bar, [*ticks, words]


def boundary_figure(maps: PlaneMaps, data, show_test=False, discretize=False, height=480, shown=None,
                    font=10):
    """The big map: the output over the plane (or, with `shown`, a neuron's or a feature's map, as
    when a person hovers it in the graph), translucent like TensorFlow Playground's so the training
    points (white rims) and, on the toggle, the test points (black rims) stand out; a legend from
    -1 to 1 under it. `data` is the task's Dataset (plane_train, y_train, ...); `font` the tick and
    legend size in px (the projector's 18 in the demo view: the legend is laid out for it)."""
    step = float(maps.axis[1] - maps.axis[0])
    start = float(maps.axis[0])
    values = map_of(maps, shown) if shown is not None else None
    title = "output" if values is None else label_of(maps, shown)
    output = values is None or parse_node_id(shown) == ("node", maps.n_layers, 0)
    values = maps.output if values is None else values
    regression = bool(data.regression)
    shown_values = _map_values(values, discretize and output)
    picture = _image(shown_values, start, start, step, "map", opacity=MAP_OPACITY)
    top, bottom = round(font * 2.2), max(_legend_bands(font)[3], 62)
    bar, words = _legend(regression, font, max(1, height - top - bottom))
    traces = [_points(data.plane_train, data.y_train, regression, "training points", "white")]
    if data.plane_test is not None and len(data.plane_test):
        traces.append(_points(data.plane_test, data.y_test, regression, "test points", "black",
                              visible=bool(show_test)))
    limit = [-PLANE_RADIUS, PLANE_RADIUS]
    layout = {"uirevision": "playground-boundary", "height": height, "showlegend": False,
              "margin": {"l": round(font * 2.6), "r": 6, "t": top, "b": bottom, "autoexpand": False},
              "title": {"text": plotly_text(title), "font": {"size": font + 3}},
              "xaxis": {"range": limit, "constrain": "domain", "tickfont": {"size": font}},
              "yaxis": {"range": limit, "scaleanchor": "x", "tickfont": {"size": font}},
              "plot_bgcolor": "#ffffff", "hovermode": "closest", "images": [picture, bar],
              "annotations": words}
    return {"data": traces, "layout": layout}


def network_figure(maps: PlaneMaps, params, shown=None, pinned=None, discretize=False, edit=True,
                   height=520, font=11, max_units=None):
    """Every neuron as a small map of its output over the plane, the seven features on the left
    (the unchosen ones dimmed, without edges), joined by edges coloured by their weight's sign
    (blue negative, orange positive) and as wide as its size, each hidden unit and the output with
    its bias as a small square at its lower left. A dot in the middle of each edge shows the weight
    when hovered; with `edit`, a click on the dot or on a bias square types a new value. `shown`
    (a node id: the map the big chart shows) is framed, `pinned` more boldly. Every neuron is a
    region for the chart's events (hover: show it large; click a feature: choose or drop it). `font`:
    the labels' size in px (the projector's 18 in the demo view, with margins to match). With
    `max_units`, each hidden column has its − and + under it, as in TensorFlow Playground (greyed
    at 1 unit and at max_units; a click is the event ("click", resize_id(layer, delta)))."""
    sizes = [len(maps.features)] + [W.shape[0] for W, _ in params]
    columns = node_positions(maps.features, sizes)
    traces = _edge_traces(maps, params, columns, edit)
    traces.append(_bias_trace(params, columns, edit))
    annotations = []
    for column in columns:
        head = column[0]
        if head.layer == 0:
            title = "features"
            annotations += [{"x": node.x - NODE / 2 - 0.1, "y": node.y, "xanchor": "right",
                             "text": FEATURES[node.feature][0], "showarrow": False,
                             "font": {"color": None if node.chosen else "#9aa0a6", "size": font + 1}}
                            for node in column]
        elif head.layer == len(params):
            title = "output"
        else:
            title = f"layer {head.layer}<br>{len(column)} unit{'s' if len(column) > 1 else ''}"
        annotations.append({"x": head.x, "y": head.y + NODE / 2 + 0.12, "yanchor": "bottom", "text": title,
                            "showarrow": False, "font": {"size": font}})
    signs = []  # (column's x, side -1 or +1, event id or None when greyed): each hidden column's − and +
    if max_units is not None:
        for column in columns[1:-1]:
            layer, count = column[0].layer - 1, len(column)
            signs += [(column[0].x, -1, resize_id(layer, -1) if count > 1 else None),
                      (column[0].x, 1, resize_id(layer, 1) if count < max_units else None)]
    margin = NODE / 2 + 0.07
    shapes = []
    for column in columns:
        for node in column:
            if node.id == _as_id(pinned) or node.id == _as_id(shown):
                shapes.append({"type": "rect", "x0": node.x - margin, "x1": node.x + margin,
                               "y0": node.y - margin, "y1": node.y + margin,
                               "line": {"color": "#333333", "width": 3 if node.id == _as_id(pinned) else 2,
                                        "dash": "solid" if node.id == _as_id(pinned) else "dot"}})
    # Square cells, and at least the room of 4 columns, so a small network's neurons are drawn no
    # larger than a big one's (centred across, from the top like the others).
    tallest = max(len(FEATURES), *sizes[1:])
    width = max(len(columns) - 1, MIN_COLUMNS - 1) * COLUMN_GAP + NODE + 1.3
    middle = (columns[0][0].x + columns[-1][0].x) / 2 - 0.45  # room for the features' names and biases
    top = ((tallest - 1) * ROW_CELLS + THUMB) * CELL + 0.6
    bottom = top - 0.6 - tallest * ROW_GAP - 0.1
    margin_top = round(font * (2.6 if font >= 16 else 1.8))  # room for the two-line column titles
    buttons = []  # (centre x, centre y, half side, event id or None), in the graph's units
    if signs:  # a row under the graph, sized in pixels: the drawing's scale is the height's
        side_px = round((font + 2) * 1.45)  # a button's square
        plot_px, span = height - margin_top - 4, top - bottom
        below = (side_px + 8) * span / (plot_px - side_px - 8)  # units that make side_px + 8 px
        unit_px = plot_px / (span + below)
        y, half = bottom - below / 2, side_px / 2 / unit_px
        buttons = [(x + side * (half + 2 / unit_px), y, half, target) for x, side, target in signs]
        for (x, y, _, target), (_, side, _) in zip(buttons, signs, strict=True):
            annotations.append({"x": x, "y": y, "text": "−" if side < 0 else "+", "showarrow": False,
                                "font": {"size": font + 2, "color": "#333333" if target else "#c0c4c8"},
                                "bordercolor": "#c0c4c8", "bgcolor": "#ffffff", "borderpad": 0,
                                "width": side_px - 2, "height": side_px - 2, "valign": "middle"})
        bottom -= below
    layout = {"uirevision": "playground-network", "height": height, "showlegend": False,
              "hovermode": "closest", "hoverdistance": 8,  # a weight's dot or a bias square: close by
              # room for the features' names on the left and the two-line column titles on top
              "margin": {"l": max(40, round(font * 3.4)), "r": 4, "t": margin_top,
                         "b": 4, "autoexpand": False},
              "xaxis": {"visible": False, "range": [middle - width / 2, middle + width / 2],
                        "fixedrange": True},
              "yaxis": {"visible": False, "range": [bottom, top], "fixedrange": True, "scaleanchor": "x"},
              "annotations": annotations, "shapes": shapes, "dragmode": False,
              "images": _mosaic_images(maps, columns, discretize)}
    boxes = [(node.x - NODE / 2, node.x + NODE / 2, node.y - NODE / 2, node.y + NODE / 2, list(node.id))
             for column in columns for node in column]
    boxes += [(x - half, x + half, y - half, y + half, list(target))
              for x, y, half, target in buttons if target]
    return {"data": traces, "layout": regions(layout, boxes)}


def _as_id(value):
    return parse_node_id(value) if value is not None else None


def _mosaic_images(maps, columns, discretize):
    """Every neuron's small map in one picture, transparent between them; the unchosen features' maps
    in a second, dimmed one."""
    height = max(node.row for column in columns for node in column) + THUMB
    mosaic = np.full((height, columns[-1][0].column + THUMB), np.nan, dtype=np.float32)
    dimmed = np.full((height, THUMB), np.nan, dtype=np.float32)
    for column in columns:
        for node in column:
            if node.layer == 0:
                values = maps.feature_maps[node.feature]
                target = mosaic if node.chosen else dimmed
            else:
                values = node_map(maps, node.layer, node.unit)
                target = mosaic
            sharp = discretize and node.layer == maps.n_layers
            cells = _map_values(values[::THUMB_STEP, ::THUMB_STEP], sharp)
            target[node.row:node.row + THUMB, node.column:node.column + THUMB] = cells
    return [_image(mosaic, 0.0, 0.0, CELL, "neurons"),
            _image(dimmed, 0.0, 0.0, CELL, "unchosen features", opacity=DIMMED)]


def edge_width(w):
    return round(min(abs(w), 4.0) / 4.0 * (MAX_EDGE_WIDTH - 0.5) * 2) / 2 + 0.5


def _edge_traces(maps, params, columns, edit):
    """Edges grouped by sign and width (a handful of line traces however many edges there are),
    and one trace of hoverable (with `edit`, clickable) dots at their middles."""
    groups = {}
    middles = {"x": [], "y": [], "w": [], "text": [], "id": []}
    hint = "<br><i>click to type a new value</i>" if edit else ""
    for layer, (W, _) in enumerate(params, start=1):
        sources = _inputs(columns[0]) if layer == 1 else columns[layer - 1]
        for target in columns[layer]:
            for source in sources:
                w = float(W[target.unit, source.unit])
                width = edge_width(w)
                xs, ys = groups.setdefault((w >= 0, width), ([], []))
                x0, x1 = source.x + NODE / 2, target.x - NODE / 2
                xs += [x0, x1, None]
                ys += [source.y, target.y, None]
                middles["x"].append((x0 + x1) / 2)
                middles["y"].append((source.y + target.y) / 2)
                middles["w"].append(w)
                names = [node_label(maps.features, node.layer, node.unit, len(params))
                         for node in (source, target)]
                middles["text"].append(f"w = {w:.3f}<br>{names[0]} → {names[1]}{hint}")
                middles["id"].append(["weight", layer, target.unit, source.unit])
    traces = [{"type": "scatter", "mode": "lines", "x": xs, "y": ys, "hoverinfo": "skip", "name": "edges",
               "line": {"color": POSITIVE if positive else NEGATIVE, "width": width},
               "opacity": 0.35 + 0.65 * width / MAX_EDGE_WIDTH}
              for (positive, width), (xs, ys) in sorted(groups.items())]
    dots = {"type": "scatter", "mode": "markers", "name": "weights", "x": middles["x"],
            "y": middles["y"], "text": middles["text"], "hovertemplate": "%{text}<extra></extra>",
            "marker": {"size": 8, "color": middles["w"], "colorscale": COLOURS, "cmin": -2,
                       "cmax": 2, "line": {"color": "white", "width": 1}}}
    traces.append(editable(dots, middles["id"], middles["w"], "weight") if edit else dots)
    return traces


def _bias_trace(params, columns, edit):
    """Each hidden unit's and the output's bias as a small square at its lower left, coloured like
    the maps (TensorFlow Playground's bias squares)."""
    x, y, values, text, ids = [], [], [], [], []
    hint = "<br><i>click to type a new value</i>" if edit else ""
    for layer, (_, b) in enumerate(params, start=1):
        for node in columns[layer]:
            value = float(b[node.unit, 0])
            x.append(node.x - NODE / 2 - BIAS_GAP)
            y.append(node.y - NODE / 2 + 0.08)
            values.append(value)
            name = "output" if layer == len(params) else f"layer {layer}, unit {node.unit + 1}"
            text.append(f"bias = {value:.3f}<br>{name}{hint}")
            ids.append(["bias", layer, node.unit])
    trace = {"type": "scatter", "mode": "markers", "name": "biases", "x": x, "y": y, "text": text,
             "hovertemplate": "%{text}<extra></extra>",
             "marker": {"symbol": "square", "size": 8, "color": values, "colorscale": COLOURS, "cmin": -1,
                        "cmax": 1, "line": {"color": "#666666", "width": 1}}}
    return editable(trace, ids, values, "bias") if edit else trace


# -- the data sets' thumbnails -----------------------------------------------------------------
THUMB_POINTS = 200  # TensorFlow Playground's thumbnails: 200 points without noise
THUMBS_PER_ROW = 3
THUMB_GAP = 2.0  # between thumbnails, in the plane's units


@functools.lru_cache(maxsize=16)
def _thumbnail_points(dataset):
    toy = make_toy(dataset, points=THUMB_POINTS, noise=0, train_share=50, seed=1)
    plane = np.concatenate([toy.plane_train, toy.plane_test])
    return plane, np.concatenate([toy.target_train, toy.target_test])


def dataset_figure(regression, chosen, clickable_sets=True, height=170):
    """The data sets of the problem type as clickable thumbnails (TensorFlow Playground's), the
    chosen one framed: a click on one is the event ("click", name)."""
    names = list(REGRESSION if regression else CLASSIFICATION)
    size = 2 * PLANE_RADIUS
    traces, shapes, annotations, boxes = [], [], [], []
    for i, name in enumerate(names):
        row, col = divmod(i, THUMBS_PER_ROW)
        x0, y0 = col * (size + THUMB_GAP), -row * (size + THUMB_GAP + 2.0)
        plane, target = _thumbnail_points(name)
        colour = ({"color": np.clip(target, -1, 1), "colorscale": COLOURS, "cmin": -1, "cmax": 1}
                  if regression else {"color": np.where(target == 1, POSITIVE, NEGATIVE).tolist()})
        traces.append({"type": "scatter", "mode": "markers", "name": name, "hoverinfo": "skip",
                       "x": plane[:, 0] + x0 + PLANE_RADIUS, "y": plane[:, 1] + y0 + PLANE_RADIUS,
                       "marker": {**colour, "size": 3}})
        frame = name == chosen
        shapes.append({"type": "rect", "x0": x0, "x1": x0 + size, "y0": y0, "y1": y0 + size, "layer": "below",
                       "fillcolor": "#ffffff", "line": {"color": "#333333" if frame else "#c8c8c8",
                                                         "width": 3 if frame else 1}})
        annotations.append({"x": x0 + size / 2, "y": y0, "yanchor": "top", "text": name, "showarrow": False,
                            "font": {"size": 10, "color": "#333333" if frame else "#777777"}})
        boxes.append((x0, x0 + size, y0, y0 + size, name))
    rows = -(-len(names) // THUMBS_PER_ROW)
    width = THUMBS_PER_ROW * size + (THUMBS_PER_ROW - 1) * THUMB_GAP
    layout = {"uirevision": "playground-datasets", "height": height, "showlegend": False,
              "margin": {"l": 2, "r": 2, "t": 2, "b": 2, "autoexpand": False}, "hovermode": False,
              "xaxis": {"visible": False, "range": [-0.5, width + 0.5], "fixedrange": True},
              "yaxis": {"visible": False, "range": [-(rows - 1) * (size + THUMB_GAP + 2.0) - 2.2, size + 0.5],
                        "fixedrange": True, "scaleanchor": "x"},
              "shapes": shapes, "annotations": annotations, "dragmode": False}
    return {"data": traces, "layout": regions(layout, boxes) if clickable_sets else layout}


# -- the losses per epoch ----------------------------------------------------------------------
LOSS_COLOURS = {"training loss": "#777777", "test loss": "#111111"}  # TensorFlow Playground's
MARKERS_SHOWN = 30  # the last changes marked on the loss chart


def loss_figure(rows, markers=(), height=200):
    """Training and test loss at the end of each epoch (TensorFlow Playground's chart; `rows`:
    (iteration, epoch, training loss, test loss)), with each change made meanwhile (a setting, a
    weight typed in, new points) as a dotted line at the epoch it happened in."""
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    epochs = rows[:, 1]
    traces = []
    index = downsample(epochs, rows[:, 2]) if len(rows) else np.arange(0)
    for column, name in ((2, "training loss"), (3, "test loss")):
        values = rows[index, column]
        values = np.where(np.isfinite(values), values, np.nan)
        traces.append({"type": "scatter", "mode": "lines" if len(index) > 50 else "lines+markers",
                       "name": name, "x": epochs[index], "y": values, "marker": {"size": 4},
                       "line": {"color": LOSS_COLOURS[name], "width": 1.5},
                       "hovertemplate": "epoch %{x:.0f}: %{y:.3f}<extra>" + name + "</extra>"})
    shapes, annotations = [], []
    if len(rows):
        for i, marker in enumerate(list(markers)[-MARKERS_SHOWN:]):
            at = float(np.interp(marker["iteration"], rows[:, 0], epochs))
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1,
                           "line": {"color": "#7f7f7f", "dash": "dot", "width": 1}})
            # inside the plot, left-aligned at the line, stepping down so that changes close together
            # do not print over each other
            annotations.append({"x": at, "y": 1 - 0.13 * (i % 4), "xref": "x", "yref": "paper",
                                "showarrow": False, "xanchor": "left", "yanchor": "top", "font": {"size": 9},
                                "bgcolor": "rgba(255, 255, 255, 0.7)",
                                "text": plotly_text(f"{marker['setting']} {_short(marker['old'])}"
                                                    f"→{_short(marker['new'])}", 40)})
    layout = {"uirevision": "playground-loss", "height": height, "showlegend": True,
              "margin": {"l": 40, "r": 6, "t": 6, "b": 44, "autoexpand": False},
              "xaxis": {"rangemode": "tozero", "tickfont": {"size": 10}},
              "yaxis": {"rangemode": "tozero", "tickformat": ".2f", "tickfont": {"size": 10},
                        "title": {"text": "loss per epoch", "font": {"size": 11}, "standoff": 2}},
              "legend": {"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom",
                         "font": {"size": 10}},
              "shapes": shapes, "annotations": annotations, "hovermode": "x"}
    if not len(rows):
        layout["xaxis"]["range"], layout["yaxis"]["range"] = [0, 10], [0, 1]
    return {"data": traces, "layout": layout}


def loss_text(train, test):
    """TensorFlow Playground's wording, three decimals."""
    def number(value):
        return f"{value:.3f}" if value is not None and np.isfinite(value) else "—"
    return f"Test loss {number(test)}", f"Training loss {number(train)}"


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
