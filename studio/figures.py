"""The Train page's live views as plain Plotly dict specs (and RGB images), tested without a browser.

Plain dicts, not `go.Figure`: building a figure object every refresh costs more than the training
step on a small machine. Long histories are downsampled (first, last, and each bucket's min and
max kept) so a chart never sends more than ~1000 points, and every layout has a fixed
`uirevision` so a person's zoom survives updates.
"""

import base64
import html
import io
import math

import numpy as np

MAX_POINTS = 1000
MARKER_POINTS = 50  # up to this many points a line also shows markers (one point draws no line)
EMPTY_TEXT = "No steps yet: press <b>Train</b> or <b>Step</b>"
# Diverging, centred at 0: blue for negative, white for 0, red for positive (ColorBrewer RdBu).
DIVERGING = [[0.0, "#053061"], [0.1, "#2166ac"], [0.2, "#4393c3"], [0.3, "#92c5de"],
             [0.4, "#d1e5f0"], [0.5, "#f7f7f7"], [0.6, "#fddbc7"], [0.7, "#f4a582"],
             [0.8, "#d6604d"], [0.9, "#b2182b"], [1.0, "#67001f"]]
LAYER_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                 "#7f7f7f", "#bcbd22", "#17becf"]
GAP_COLOUR = (255, 255, 255)
HEATMAP_COLOURBAR = 80  # pixels right of the paused heatmap for its colour bar


def downsample(x, y, max_points=MAX_POINTS):
    """Indices of at most ~max_points points that keep the curve's shape: the first and last
    point and, in each of max_points/2 equal buckets, the lowest and highest finite y."""
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2 - 1)
    size = -(-(n - 2) // buckets)  # ceil: buckets cover the points between the first and last
    inner = np.full(buckets * size, np.nan)
    inner[: n - 2] = np.asarray(y, dtype=np.float64)[1:n - 1]
    inner[~np.isfinite(inner)] = np.nan
    grid = inner.reshape(buckets, size)
    has_value = ~np.isnan(grid).all(axis=1)
    lowest = np.where(np.isnan(grid), np.inf, grid).argmin(axis=1)
    highest = np.where(np.isnan(grid), -np.inf, grid).argmax(axis=1)
    starts = 1 + np.arange(buckets) * size
    empty = starts[~has_value & (starts < n - 1)]  # all NaN/Inf: keep one point to show the gap
    keep = np.concatenate([[0, n - 1], (starts + lowest)[has_value], (starts + highest)[has_value],
                           empty])
    return np.unique(keep)


def typed_array(values, dtype):
    """A numpy array as plotly.js's base64 typed-array spec: a 400x400 heatmap then travels as
    ~0.6 MB of binary instead of ~3 MB of JSON numbers, and encodes ~10x faster."""
    values = np.ascontiguousarray(values, dtype=dtype)
    spec = {"dtype": {"float32": "f4", "int16": "i2", "int32": "i4"}[values.dtype.name],
            "bdata": base64.b64encode(values.tobytes()).decode("ascii")}
    if values.ndim > 1:
        spec["shape"] = ", ".join(str(n) for n in values.shape)
    return spec


def plotly_text(text, limit=None):
    """Text a person supplied (a run's, an upload's or a sweep's name; a value from a recorded set-up)
    as Plotly shows it typed: Plotly renders a subset of HTML (<a href>, <b>, <br>, <span style>, ...)
    in trace names, legends, titles, tick labels and hover text, so a run named
    '<a href="...">click</a>' would be a live link. Cut to `limit` characters first (an entity is
    never cut in half), then < > & " ' become entities, which Plotly draws as the characters.
    Every figure builder passes such text through here."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    return html.escape(text, quote=True)


def _layout(uirevision, height, **extra):
    layout = {"uirevision": uirevision, "height": height, "margin": {"l": 60, "r": 20, "t": 40, "b": 70},
              "legend": {"orientation": "h", "y": -0.4, "yanchor": "top"}, "hovermode": "x unified"}
    layout.update(extra)
    return layout


def _mode(n_points):
    """'lines+markers' while a curve has few points: a single point has no line to draw."""
    return "lines+markers" if n_points <= MARKER_POINTS else "lines"


def _empty_state(layout, n_points, y_range):
    """Before the first step: fixed axes (not Plotly's -1..6 autorange for no data) and a hint
    in the middle. `y_range` is in axis units (log10 for log axes)."""
    if n_points:
        return layout
    layout["xaxis"] = dict(layout["xaxis"], range=[0, 10])
    layout["yaxis"] = dict(layout["yaxis"], range=y_range)
    layout["showlegend"] = False
    layout["annotations"] = [*layout.get("annotations", []),
                             {"text": EMPTY_TEXT, "xref": "paper", "yref": "paper", "x": 0.5,
                              "y": 0.8, "showarrow": False, "font": {"size": 14, "color": "#7f7f7f"}}]
    return layout


def _series(values):
    """A float array with NaN where a value is not finite (Plotly draws a gap there). Arrays, not
    lists: Plotly checks and encodes them (as binary typed arrays) several times faster, which
    matters at two redraws a second while the CPU is needed for training."""
    values = np.array(values, dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    return values


def cost_figure(view, log_y=False, height=380):
    """Train cost per iteration (trace 'train cost'), test cost and accuracy every eval_every
    iterations, setting changes as dotted vertical lines and a divergence as a red one."""
    x, y = view.iterations, view.costs
    index = downsample(x, y)
    traces = [{"type": "scatter", "mode": _mode(len(index)), "name": "train cost", "x": x[index],
               "y": _series(y[index]), "line": {"color": "#1f77b4", "width": 2}}]
    evaluations = view.evaluations
    if evaluations:
        ex = np.array([e["iteration"] for e in evaluations])
        test_cost = _series([e["test_cost"] for e in evaluations])
        keep = downsample(ex, test_cost)  # a long run has tens of thousands of tests
        traces.append({"type": "scatter", "mode": _mode(len(keep)), "name": "test cost", "x": ex[keep],
                       "y": test_cost[keep], "line": {"color": "#ff7f0e", "dash": "dash"}})
        traces.append({"type": "scatter", "mode": _mode(len(keep)), "name": "test accuracy",
                       "x": ex[keep], "y": _series([e["test_accuracy"] for e in evaluations])[keep],
                       "yaxis": "y2", "line": {"color": "#2ca02c"}})
    shapes, annotations = [], []
    for marker in view.markers[-50:]:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": marker["iteration"],
                       "x1": marker["iteration"], "y0": 0, "y1": 1,
                       "line": {"color": "#7f7f7f", "dash": "dot", "width": 1}})
        annotations.append({"x": marker["iteration"], "y": 1, "xref": "x", "yref": "paper",
                            "text": plotly_text(f"{marker['setting']} {_short(marker['old'])}"
                                                f"→{_short(marker['new'])}"),
                            "showarrow": False, "yanchor": "bottom", "font": {"size": 10}})
    if view.diverged:
        at = view.diverged["iteration"]
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0,
                       "y1": 1, "line": {"color": "#d62728", "width": 2}})
        annotations.append({"x": at, "y": 0.5, "xref": "x", "yref": "paper", "text": "diverged",
                            "showarrow": False, "font": {"color": "#d62728"}})
    # Fixed margins and the legend along the figure's bottom edge: a legend that pushes the
    # margins out makes Plotly lay the chart out twice, and this one is redrawn twice a second
    # (it took a tenth of the browser's work off). The accuracy axis only once there are tests.
    # A zoom survives refreshes, not a switch of the cost axis between linear and log units.
    layout = _layout("cost-log" if log_y else "cost", height, title={"text": "Cost per iteration"},
                     xaxis={"title": {"text": "iteration"}},
                     yaxis={"title": {"text": "cost"}, "type": "log" if log_y else "linear"},
                     margin={"l": 60, "r": 60 if evaluations else 20, "t": 40, "b": 75, "autoexpand": False},
                     legend={"orientation": "h", "x": 0, "y": 0, "yref": "container", "yanchor": "bottom"},
                     shapes=shapes, annotations=annotations)
    if evaluations:
        layout["yaxis2"] = {"title": {"text": "test accuracy"}, "overlaying": "y", "side": "right",
                            "range": [0, 1], "showgrid": False, "tickmode": "linear", "tick0": 0,
                            "dtick": 0.25, "tickformat": ".0%"}  # own ticks, not the cost axis's
    return {"data": traces, "layout": _empty_state(layout, len(x), [-2, 0] if log_y else [0, 1])}


def _short(value):
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


GRADIENT_MEASURES = {  # what the gradient chart can show: (history statistic, axis title, in words)
    "mean_abs": ("dW_mean_abs", "mean |dW|", "per weight"),
    "norm": ("dW_norm", "‖dW‖", "whole layer"),
}


def gradient_figure(view, height=380, measure="mean_abs", highlight=None):
    """Per-layer gradient size over time on a log scale, one measure at a time: mean |dW| (per
    weight, what the vanishing-gradient note compares; the default) or ‖dW‖ (the whole layer, which
    grows with the layer's number of weights, so a wide first layer sits on top even when each of
    its weights gets a tiny gradient). `highlight` (1-based) draws that layer's line thick and labels
    it, e.g. the layer the note names (`vanishing_layer`)."""
    statistic, title, words = GRADIENT_MEASURES[measure]
    x = view.iterations
    values = getattr(view, statistic)
    traces, annotations = [], []
    index = downsample(x, values[:, 0])
    mode = _mode(len(index))
    for l in range(values.shape[1]):
        colour = LAYER_COLOURS[l % len(LAYER_COLOURS)]
        picked = highlight == l + 1
        line = {"color": colour, "width": 4 if picked else (1.5 if highlight else 2)}
        name = f"layer {l + 1}" + (" (the note's)" if picked else "")
        traces.append({"type": "scatter", "mode": mode, "name": name, "x": x[index],
                       "y": _series(values[index, l]), "line": line,
                       "opacity": 1.0 if picked or not highlight else 0.6})
        if picked and len(index):
            last = float(values[index[-1], l])
            if math.isfinite(last) and last > 0:
                annotations.append({"x": float(x[index[-1]]), "y": math.log10(last), "xref": "x", "yref": "y",
                                    "text": f"layer {l + 1}", "showarrow": True, "arrowhead": 0, "ax": -30,
                                    "ay": -20, "font": {"color": colour, "size": 12}})
    layout = _layout(f"gradients-{measure}", height,
                     title={"text": f"Gradient size per layer: {title} ({words})"},
                     xaxis={"title": {"text": "iteration"}},
                     yaxis={"title": {"text": title}, "type": "log", "exponentformat": "power"},
                     annotations=annotations)
    return {"data": traces, "layout": _empty_state(layout, len(x), [-6, 0])}


def ratio_figure(view, height=380):
    """Per-layer ‖update‖ / ‖W‖: around 1e-3 is healthy; far below, the layer barely learns."""
    x, ratio = view.iterations, view.update_ratio
    traces = []
    index = downsample(x, ratio[:, 0])
    for l in range(ratio.shape[1]):
        traces.append({"type": "scatter", "mode": _mode(len(index)), "name": f"layer {l + 1}",
                       "x": x[index], "y": _series(ratio[index, l]),
                       "line": {"color": LAYER_COLOURS[l % len(LAYER_COLOURS)]}})
    shapes = [{"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": 1e-3,
               "y1": 1e-3, "line": {"color": "#7f7f7f", "dash": "dot", "width": 1}}]
    layout = _layout("ratio", height, title={"text": "Update / weight ratio per layer"},
                     xaxis={"title": {"text": "iteration"}},
                     yaxis={"title": {"text": "‖ΔW‖ / ‖W‖"}, "type": "log", "exponentformat": "power"},
                     shapes=shapes)
    return {"data": traces, "layout": _empty_state(layout, len(x), [-6, 0])}


# -- weights as images -------------------------------------------------------------------------
def tile_grid(W, image_shape, max_units=None):
    """First-layer weights as a grid of image tiles, one per hidden unit (NaN between tiles).

    Returns (grid, unit_at) where unit_at[r, c] is the unit shown at that cell (-1 in gaps)."""
    units = W.shape[0] if max_units is None else min(W.shape[0], max_units)
    h, w = image_shape
    columns = math.ceil(math.sqrt(units))
    rows = math.ceil(units / columns)
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    unit_at = np.full(grid.shape, -1, dtype=np.int64)
    for unit in range(units):
        r, c = divmod(unit, columns)
        top, left = r * (h + 1), c * (w + 1)
        grid[top:top + h, left:left + w] = W[unit].reshape(h, w)
        unit_at[top:top + h, left:left + w] = unit
    return grid, unit_at


def symmetric_limit(values):
    """The colour range ±limit that centres 0 (the largest finite |value|, at least 1e-12)."""
    values = np.asarray(values)
    finite = values[np.isfinite(values)]
    return max(float(np.abs(finite).max()) if finite.size else 0.0, 1e-12)


def _lut():
    stops = np.array([s for s, _ in DIVERGING])
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in DIVERGING], dtype=np.float64)
    positions = np.linspace(0, 1, 256)
    return np.stack([np.interp(positions, stops, rgb[:, k]) for k in range(3)], axis=1).astype(np.uint8)


LUT = _lut()


def to_rgb(matrix, limit=None, scale=1):
    """A matrix as an RGB uint8 image on the diverging scale ±limit (NaN -> white gap), each cell
    `scale` pixels wide: what st.image shows while training."""
    matrix = np.asarray(matrix, dtype=np.float64)
    limit = symmetric_limit(matrix) if limit is None else limit
    with np.errstate(invalid="ignore"):
        index = np.clip((matrix / limit + 1) * 127.5, 0, 255)
    gaps = ~np.isfinite(index)
    rgb = LUT[np.where(gaps, 0, index).astype(np.uint8)]
    rgb[gaps] = GAP_COLOUR
    if scale > 1:
        rgb = rgb.repeat(scale, axis=0).repeat(scale, axis=1)
    return rgb


def weights_image(W, image_shape, limit=None, target_pixels=560):
    """The image for one layer's weights, about target_pixels wide: tiles for an image-shaped
    first layer (square cells), else the matrix stretched to a target_pixels square, the box the
    paused heatmap fills, so the page does not jump between the two."""
    if image_shape is not None and W.shape[1] == image_shape[0] * image_shape[1]:
        matrix = tile_grid(W, image_shape)[0]
        scale = max(1, min(8, target_pixels // max(matrix.shape)))
        return to_rgb(matrix, limit, scale)
    rows = np.arange(target_pixels) * W.shape[0] // target_pixels
    columns = np.arange(target_pixels) * W.shape[1] // target_pixels
    return to_rgb(np.asarray(W)[np.ix_(rows, columns)], limit)


def image_html(rgb, width, alt=""):
    """An RGB image as an <img> with the picture inline (JPEG, as st.image would send it).

    While training the weight image changes every second. st.image sends each one as a new
    file that the browser fetches and decodes into a new element, and the box showed blank for
    a frame on most updates (measured in Chromium); an inline picture decoded at once does not."""
    from PIL import Image  # installed with Streamlit

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buffer, format="JPEG", quality=90)
    height = round(width * rgb.shape[0] / rgb.shape[1])
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<img src="data:image/jpeg;base64,{data}" width="{width}" height="{height}" '
            f'decoding="sync" alt="{html.escape(alt, quote=True)}" style="max-width: 100%; height: auto">')


def weights_heatmap(W, image_shape, name="W1", limit=None, height=520):
    """The interactive heatmap of one layer (shown when paused): hover names unit, pixel, value."""
    limit = symmetric_limit(W) if limit is None else limit
    if image_shape is not None and W.shape[1] == image_shape[0] * image_shape[1]:
        grid, unit_at = tile_grid(W, image_shape)
        h, w = image_shape
        rows, cols = np.indices(grid.shape)
        pixel = (rows % (h + 1)) * w + cols % (w + 1)
        custom = np.stack([unit_at + 1, np.where(unit_at >= 0, pixel, -1)], axis=-1)
        z, hover = grid, (f"unit %{{customdata[0]}}<br>pixel %{{customdata[1]}}<br>"
                          f"{name} = %{{z:.4g}}<extra></extra>")
        axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "constrain": "domain"}
        xaxis = dict(axis, scaleanchor="y", constraintoward="left")
        yaxis = dict(axis, autorange="reversed", constraintoward="top")
    else:
        z = W
        rows, cols = np.indices(W.shape)
        custom = np.stack([rows + 1, cols + 1], axis=-1)
        hover = f"unit %{{customdata[0]}}<br>input %{{customdata[1]}}<br>{name} = %{{z:.4g}}<extra></extra>"
        xaxis = {"showgrid": False, "showticklabels": False}  # hover names unit and input
        yaxis = {"autorange": "reversed", "showgrid": False, "showticklabels": False}
    trace = {"type": "heatmap", "z": typed_array(z, "float32"), "customdata": typed_array(custom, "int32"),
             "hovertemplate": hover,
             "colorscale": DIVERGING, "zmin": -limit, "zmax": limit, "zmid": 0,
             "colorbar": {"title": {"text": name}, "thickness": 15}}
    # No title or side margins: the plot is the same `height` square as the training image.
    layout = {"uirevision": f"heatmap-{name}", "height": height, "xaxis": xaxis, "yaxis": yaxis,
              "margin": {"l": 0, "r": HEATMAP_COLOURBAR, "t": 0, "b": 0}}
    return {"data": [trace], "layout": layout}


def histogram_figure(now, initial, name="W1", bins=60, height=280):
    """Histogram of a layer's values now against at initialisation, on shared bins (counts are
    computed here so the browser gets 2 x bins bars, not every weight)."""
    now = np.asarray(now, dtype=np.float64).ravel()
    now = now[np.isfinite(now)]
    parts = [now] + ([np.asarray(initial, dtype=np.float64).ravel()] if initial is not None else [])
    low = min(float(p.min()) for p in parts if p.size) if any(p.size for p in parts) else -1.0
    high = max(float(p.max()) for p in parts if p.size) if any(p.size for p in parts) else 1.0
    if high <= low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    centres = ((edges[:-1] + edges[1:]) / 2).tolist()
    traces = []
    for label, values, colour in (("at init", parts[1] if len(parts) > 1 else None, "#bbbbbb"),
                                  ("now", now, "#1f77b4")):
        if values is None:
            continue
        counts, _ = np.histogram(values, edges)
        traces.append({"type": "bar", "name": label, "x": centres, "y": counts.tolist(),
                       "marker": {"color": colour}, "opacity": 0.7})
    layout = _layout(f"hist-{name}", height, title={"text": f"{name}: now vs at init"},
                     barmode="overlay", bargap=0, hovermode="closest",
                     xaxis={"title": {"text": "value"}}, yaxis={"title": {"text": "count"}})
    return {"data": traces, "layout": layout}


def status_text(view):
    """The one-line status: iteration, epoch, iterations/s, elapsed, cost, accuracy."""
    if view is None:
        return "Not built yet: press Train or Step to start (iteration 0)."
    parts = [f"iteration {view.iteration}", f"epoch {view.epoch:.2f}"]
    parts.append(f"{view.iterations_per_second:.1f} it/s" if view.running else "paused")
    parts.append(f"elapsed {_duration(view.seconds)}")
    last = view.last
    if last is not None:
        parts.append(f"cost {last['cost']:.4f}")
    if view.evaluations:
        last_test = view.evaluations[-1]
        accuracy = last_test["test_accuracy"]  # NaN for a regression task: its test cost instead
        parts.append(f"test cost {last_test['test_cost']:.4f}" if accuracy is None or math.isnan(accuracy)
                     else f"test accuracy {accuracy:.2%}")
    return " · ".join(parts)


def _duration(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else \
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def vanishing_layer(view, factor=10.0):
    """(layer, ratio): the first layer, when its mean |dW| (per weight) is at least `factor` times
    smaller than the last layer's in a network of 3 or more layers; else None."""
    means = view.dW_mean_abs
    if means.shape[1] < 3 or not len(means):
        return None
    first, last = means[-1, 0], means[-1, -1]
    if not (first > 0 and last > 0) or last / first < factor:
        return None
    return 1, float(last / first)


def vanishing_note(view, measure="mean_abs"):
    """A sentence explaining the gradient chart when the first layer's gradients are far smaller
    than the last layer's (the tutorial's deep sigmoid network), else None. It names the measure it
    compares (mean |dW|, per weight) and, when the chart shows the other one (‖dW‖), why the first
    layer's line sits on top there."""
    found = vanishing_layer(view)
    if found is None:
        return None
    layer, ratio = found
    note = (f"Vanishing gradients: per weight, mean |dW{layer}| is {ratio:.0f}× smaller than the last "
            f"layer's (layer {layer} is highlighted). Each sigmoid layer multiplies the backward signal by "
            "σ'(Z) ≤ 0.25, so the first layers barely move and the cost sits near 0.69 (a coin flip) until "
            "they do. ReLU with He init, or Adam (which rescales each weight's step), shortens this plateau.")
    if measure == "norm":
        note += (" The chart shows ‖dW‖ of whole layers, which grows with a layer's number of weights: "
                 f"layer {layer}'s line can sit on top while each of its weights gets the smallest gradient; "
                 "switch to mean |dW| to compare them per weight.")
    return note
