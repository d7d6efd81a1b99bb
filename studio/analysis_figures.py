"""Plotly figures (plain dicts) and the small computations behind the Inspect, Gradient check,
Compare and Data pages. No Streamlit here, so everything is testable without a browser. Every text
a person supplied (run names, class names of an upload, recorded set-up values) goes through
`plotly_text`: Plotly renders HTML in names, titles and tick labels."""

import numpy as np

from backprop.health import HEALTH_STATS, condition_of
from studio.figures import LAYER_COLOURS, _empty_state, _mode, _series, downsample, plotly_text
from studio.figures import _layout as _live_layout

GRAY = "Greys"
MARGIN = {"l": 50, "r": 20, "t": 40, "b": 45}


def _layout(title, **extra):
    return {"title": {"text": title}, "margin": MARGIN, "height": 320, **extra}


# -- Inspect --------------------------------------------------------------------------------
def confusion_matrix(y_true, y_pred, n_classes):
    """counts[true, predicted]."""
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def confusion_figure(counts, class_names):
    names = [plotly_text(name) for name in class_names]
    text = [[str(v) for v in row] for row in counts.tolist()]
    return {"data": [{"type": "heatmap", "z": counts.tolist(), "x": names, "y": names,
                      "text": text, "texttemplate": "%{text}", "colorscale": "Blues",
                      "hovertemplate": "true %{y}, predicted %{x}: %{z}<extra></extra>"}],
            "layout": _layout("Confusion matrix (test set)",
                              xaxis={"title": {"text": "predicted"}, "type": "category"},
                              yaxis={"title": {"text": "true"}, "type": "category",
                                     "autorange": "reversed"},
                              height=max(300, 40 * len(names) + 120))}


def most_confident_wrong(proba, y_true, k=8):
    """Indices of the k wrong predictions with the highest predicted probability, worst first."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = proba[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:k]]


def image_figure(image, title="", height=220):
    """A grayscale image (2-D array in [0, 1]) drawn with row 0 at the top."""
    image = np.asarray(image, dtype=np.float64)
    return {"data": [{"type": "heatmap", "z": np.round(image, 3).tolist(), "colorscale": GRAY,
                      "reversescale": True, "showscale": False, "zmin": 0, "zmax": 1,
                      "hovertemplate": "row %{y}, col %{x}: %{z}<extra></extra>"}],
            "layout": {"title": {"text": title}, "height": height, "width": height,
                       "margin": {"l": 5, "r": 5, "t": 30 if title else 5, "b": 5},
                       "xaxis": {"visible": False}, "yaxis": {"visible": False, "autorange": "reversed",
                                                              "scaleanchor": "x"}}}


def activation_figure(values, layer, n_layers):
    """One layer's activations for one sample: bars, or a square image when the layer is a square
    number of units (like 196 = 14x14), which reads better than 196 bars."""
    values = np.asarray(values, dtype=np.float64).ravel()
    side = int(round(np.sqrt(values.size)))
    title = f"Layer {layer} of {n_layers}: A[{layer}] ({values.size} units)"
    if values.size >= 16 and side * side == values.size:
        lo, hi = float(values.min()), float(values.max())
        return {"data": [{"type": "heatmap", "z": np.round(values.reshape(side, side), 4).tolist(),
                          "colorscale": "Viridis", "zmin": lo, "zmax": hi if hi > lo else lo + 1,
                          "colorbar": {"thickness": 14, "title": {"text": "activation"}},
                          "hovertemplate": "unit %{customdata}: %{z}<extra></extra>",
                          "customdata": np.arange(values.size).reshape(side, side).tolist()}],
                "layout": _layout(title + f" as a {side}x{side} grid", height=400, width=440,
                                  margin={"l": 10, "r": 10, "t": 40, "b": 10},
                                  xaxis={"visible": False, "constrain": "domain"},
                                  yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x",
                                         "constrain": "domain"})}
    return {"data": [{"type": "bar", "x": list(range(1, values.size + 1)),
                      "y": np.round(values, 4).tolist(), "marker": {"color": "#4c78a8"}}],
            "layout": _layout(title, height=260, xaxis={"title": {"text": "unit"}},
                              yaxis={"title": {"text": "activation"}})}


def probability_figure(probabilities, class_names, true_class=None):
    """Bars per class; with a true class, it is green and the others red."""
    names = [plotly_text(name) for name in class_names]
    colors = ["#e45756" if true_class is not None and i != true_class else "#54a24b"
              for i in range(len(names))]
    if true_class is None:
        colors = ["#4c78a8"] * len(names)
    title = "Output probabilities" + (" (green: the true class)" if true_class is not None else "")
    return {"data": [{"type": "bar", "x": names, "y": np.round(probabilities, 4).tolist(),
                      "marker": {"color": colors}}],
            "layout": _layout(title, height=260,
                              xaxis={"type": "category"},
                              yaxis={"range": [0, 1], "title": {"text": "probability"}})}


# -- Gradient check ----------------------------------------------------------------------
GOOD_ERROR, SUSPECT_ERROR = 1e-7, 1e-4


def verdict(error):
    if error < GOOD_ERROR:
        return "excellent"
    if error < SUSPECT_ERROR:
        return "fine (float rounding)"
    return "suspect: backprop and the numeric gradient disagree"


def relative_error_figure(layers):
    """dW's and db's relative errors per layer (studio.network_checks.LayerCheck), on a log axis."""
    names = [f"layer {row.layer}" for row in layers]
    floor = 1e-16  # an exact 0 cannot be drawn on a log axis
    traces = [{"type": "bar", "name": "dW", "x": names, "y": [max(row.dW_error, floor) for row in layers]},
              {"type": "bar", "name": "db", "x": names, "y": [max(row.db_error, floor) for row in layers]}]
    lines = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": value, "y1": value,
              "line": {"dash": "dash", "color": color}}
             for value, color in ((GOOD_ERROR, "#54a24b"), (SUSPECT_ERROR, "#e45756"))]
    return {"data": traces,
            "layout": _layout("Relative error, numeric vs backprop (lower is better)", barmode="group",
                              shapes=lines, yaxis={"type": "log", "title": {"text": "relative error"},
                                                   "exponentformat": "power"})}


def lr_finder_figure(result):
    traces = [{"type": "scatter", "mode": "lines", "name": "cost", "x": result.learning_rates,
               "y": result.costs, "line": {"color": "#bbbbbb"}},
              {"type": "scatter", "mode": "lines", "name": "smoothed cost",
               "x": result.learning_rates, "y": result.smoothed, "line": {"color": "#4c78a8"}}]
    marks = [{"type": "line", "yref": "paper", "y0": 0, "y1": 1, "x0": result.suggestion,
              "x1": result.suggestion, "line": {"dash": "dash", "color": "#54a24b"}}]
    upper = 3 * min(result.smoothed) if result.smoothed else None
    return {"data": traces,
            "layout": _layout(f"Cost against learning rate (suggested {result.suggestion:.2g})",
                              shapes=marks, xaxis={"type": "log", "title": {"text": "learning rate"}},
                              yaxis={"title": {"text": "cost"},
                                     "range": [0, max(upper, max(result.smoothed[:5]))]
                                     if upper else None})}


# -- Compare --------------------------------------------------------------------------------
def run_curves_figure(runs_with_history, metric, title):
    """One line per run: metric in ('cost', 'test_accuracy', 'test_cost') against iteration.
    `runs_with_history`: (studio.recorded_runs.RecordedRun, its history rows) pairs."""
    traces = []
    for run, history in runs_with_history:
        rows = [row for row in history if row.get(metric) is not None]
        traces.append({"type": "scatter", "mode": "lines+markers" if len(rows) < 30 else "lines",
                       "name": plotly_text(run.title, limit=50),
                       "x": [row["iteration"] for row in rows], "y": [row[metric] for row in rows]})
    return {"data": traces, "layout": _layout(title, xaxis={"title": {"text": "iteration"}},
                                              yaxis={"title": {"text": metric.replace("_", " ")}},
                                              legend={"orientation": "h", "y": -0.25})}


PARALLEL_KNOBS = (("learning_rate", "log10 learning rate"), ("n_layers", "layers"),
                  ("units", "hidden units"), ("batch_size", "batch size (0 = full)"), ("l2", "l2"))
CATEGORY_KNOBS = ("activation", "optimizer", "init")


def parallel_coordinates_figure(runs):
    """Hyperparameters against final test accuracy, one line per run (like TensorBoard HParams);
    `runs`: studio.recorded_runs.RecordedRun."""
    rows = [run for run in runs if run.final_accuracy is not None]
    if not rows:
        return None
    configs = [run.config for run in rows]
    dimensions = []
    values = {
        "learning_rate": [np.log10(c.get("learning_rate") or 1e-12) for c in configs],
        "n_layers": [len(c.get("layers", [])) for c in configs],
        "units": [sum(c.get("layers", [0])[:-1]) for c in configs],
        "batch_size": [c.get("batch_size") or 0 for c in configs],
        "l2": [c.get("l2") or 0.0 for c in configs],
    }
    for key, label in PARALLEL_KNOBS:
        dimensions.append({"label": label, "values": values[key]})
    for key in CATEGORY_KNOBS:
        names = sorted({str(c.get(key)) for c in configs})
        dimensions.append({"label": key, "values": [names.index(str(c.get(key))) for c in configs],
                           "tickvals": list(range(len(names))), "ticktext": [plotly_text(n) for n in names]})
    accuracy = [run.final_accuracy for run in rows]
    dimensions.append({"label": "test accuracy", "values": accuracy})
    return {"data": [{"type": "parcoords", "dimensions": dimensions,
                      "line": {"color": accuracy, "colorscale": "Viridis", "showscale": True}}],
            "layout": _layout("Set-ups against final test accuracy", height=380,
                              margin={"l": 70, "r": 70, "t": 70, "b": 30})}


# -- Data ----------------------------------------------------------------------------------
def class_counts_figure(class_names, train_counts, test_counts):
    names = [plotly_text(name) for name in class_names]
    return {"data": [{"type": "bar", "name": "train", "x": names, "y": list(train_counts)},
                     {"type": "bar", "name": "test", "x": names, "y": list(test_counts)}],
            "layout": _layout("Images per class", barmode="group",
                              xaxis={"type": "category", "title": {"text": "class"}},
                              yaxis={"title": {"text": "images"}})}


def mosaic(images, columns, gap=1):
    """Equal-size images laid out in a grid with a blank gap, as one array (fast to draw)."""
    images = np.asarray(images, dtype=np.float64)
    count, height, width = images.shape
    rows = -(-count // columns)
    out = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap), np.nan)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        top, left = r * (height + gap), c * (width + gap)
        out[top:top + height, left:left + width] = image
    return out


def _label(lines):
    """A tick label from a text or a tuple of lines, each escaped (plotly_text), joined by <br>."""
    return "<br>".join(plotly_text(line) for line in (lines if isinstance(lines, tuple) else (lines,)))


def mosaic_figure(images, columns, title, column_labels=None, row_labels=None):
    """Images in a grid: optional labels above the columns and left of the rows (each a text, or a
    tuple of lines shown one under the other)."""
    column_labels = None if column_labels is None else [_label(label) for label in column_labels]
    row_labels = None if row_labels is None else [_label(label) for label in row_labels]
    images = np.asarray(images, dtype=np.float64)
    _, height, width = images.shape
    grid = mosaic(images, columns)
    z = [[None if np.isnan(v) else round(float(v), 3) for v in row] for row in grid]
    axis = {"showgrid": False, "zeroline": False, "ticks": ""}
    xaxis = {**axis, "visible": column_labels is not None, "side": "top", "ticktext": column_labels,
             "tickvals": [c * (width + 1) + width / 2 for c in range(len(column_labels or []))]}
    yaxis = {**axis, "visible": row_labels is not None, "autorange": "reversed", "scaleanchor": "x",
             "ticktext": row_labels,
             "tickvals": [r * (height + 1) + height / 2 for r in range(len(row_labels or []))]}
    # The title sits at the top of the figure and the column labels (up to label_lines lines each)
    # in the margin below it, so the two never overlap.
    label_lines = max((str(label).count("<br>") + 1 for label in column_labels or []), default=0)
    top = 34 + 17 * label_lines + (6 if label_lines else 0)
    return {"data": [{"type": "heatmap", "z": z, "colorscale": GRAY, "reversescale": True,
                      "showscale": False, "hoverinfo": "skip"}],
            "layout": {"title": {"text": title, "yref": "container", "y": 1, "yanchor": "top",
                                 "pad": {"t": 8}},
                       "xaxis": xaxis, "yaxis": yaxis,
                       "height": int(max(120, grid.shape[0] * min(6.0, 900 / grid.shape[1]) + top + 10)),
                       "margin": {"l": 60 if row_labels else 5, "r": 5, "t": top, "b": 5}}}


# -- Unit health, activations over time, loss landscape -------------------------------------------
def unit_health_figure(iterations, health, activation, height=380):
    """Per hidden layer, the share of units dead (ReLU, leaky ReLU) or saturated (sigmoid, tanh) at
    each recorded step, in percent: a live chart for the Train page, beside the gradient sizes.

    `health` is History.unit_health(): (steps, hidden layers, 2) in HEALTH_STATS order."""
    condition = condition_of(activation)
    iterations = np.asarray(iterations)
    health = np.asarray(health, dtype=np.float64)
    traces = []
    if condition is not None and health.shape[1]:
        shares = 100 * health[:, :, HEALTH_STATS.index(f"{condition}_share")]
        index = downsample(iterations, shares.max(axis=1) if len(shares) else shares[:, 0])
        for l in range(shares.shape[1]):
            traces.append({"type": "scatter", "mode": _mode(len(index)), "name": f"layer {l + 1}",
                           "x": iterations[index], "y": _series(shares[index, l]),
                           "line": {"color": LAYER_COLOURS[l % len(LAYER_COLOURS)]}})
    # Short titles: the chart sits in a narrow column beside the gradient chart.
    what = {"dead": "Dead units per hidden layer", "saturated": "Saturated units per hidden layer",
            None: f"{activation} units: never dead or saturated"}[condition]
    if not health.shape[1]:
        what = "Unit health: this network has no hidden layer"
    layout = _live_layout("unit-health", height, title={"text": what},
                          xaxis={"title": {"text": "iteration"}},
                          yaxis={"title": {"text": f"% of units {condition or ''}".strip()},
                                 "range": [-2, 102]})
    if not traces:  # nothing this activation can show: fixed axes, no "press Train" hint
        layout.update(xaxis={"title": {"text": "iteration"}, "range": [0, max(10, len(iterations))]})
        return {"data": traces, "layout": layout}
    return {"data": traces, "layout": _empty_state(layout, len(iterations), [-2, 102])}


def _common_bins(low, high, bins):
    """Edges of `bins` equal bins spanning every record's [low, high]."""
    lo, hi = float(np.nanmin(low)), float(np.nanmax(high))
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return np.linspace(lo, hi, bins + 1)


def rebin(shares, low, high, edges):
    """A histogram over equal bins on [low, high] moved onto other `edges`, its mass spread
    evenly within each bin (through the cumulative shares): records with different ranges line up."""
    own = np.linspace(low, high, len(shares) + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(shares)])
    return np.diff(np.interp(edges, own, cumulative))


def activation_histogram_figure(iterations, low, high, shares, layer, bins=60, height=320):
    """How one hidden layer's activations are spread at each recorded step: a heatmap of
    iteration x activation value, the colour the share of values (TensorBoard's histograms over
    time as one picture). Arrays from History.histograms.arrays(); `layer` counts from 0."""
    iterations = np.asarray(iterations)
    title = f"Layer {layer + 1}: activations A[{layer + 1}] over training"
    if not len(iterations):
        layout = _layout(title, height=height, xaxis={"title": {"text": "iteration"}},
                         yaxis={"title": {"text": "activation"}})
        # One empty trace: st.plotly_chart refuses a figure without data (before the first step)
        return {"data": [{"type": "scatter", "x": [], "y": [], "showlegend": False}],
                "layout": _empty_state(layout, 0, [0, 1])}
    edges = _common_bins(low[:, layer], high[:, layer], bins)
    z = np.array([rebin(shares[i, layer], low[i, layer], high[i, layer], edges)
                  for i in range(len(iterations))]).T  # (value bins, records)
    centres = (edges[:-1] + edges[1:]) / 2
    # The colours top out at the 99th percentile: ReLU's spike of zeros (often half the values)
    # would otherwise leave the rest of the distribution black.
    top = max(float(np.percentile(100 * z, 99)), 1e-9)
    return {"data": [{"type": "heatmap", "x": iterations.tolist(), "y": np.round(centres, 5).tolist(),
                      "z": np.round(100 * z, 3).tolist(), "colorscale": "Viridis", "zmin": 0, "zmax": top,
                      "colorbar": {"title": {"text": "% of values"}, "thickness": 12},
                      "hovertemplate": "iteration %{x}<br>A ≈ %{y}: %{z}% of values<extra></extra>"}],
            "layout": _layout(title, height=height, xaxis={"title": {"text": "iteration"}},
                              yaxis={"title": {"text": "activation value"}})}


def _contour_levels(costs, levels=25):
    """25 levels from the lowest cost to the 90th percentile: far from the centre a cost can be 100x
    the centre's and would squeeze every interesting level into one band."""
    finite = costs[np.isfinite(costs)]
    spec = {"coloring": "heatmap", "showlines": True}
    if finite.size:
        low, high = float(finite.min()), float(np.percentile(finite, 90))
        if high > low:
            spec.update(start=low, end=high, size=(high - low) / levels)
    return spec


def landscape_figure(landscape, run_label=None, height=460):
    """Contours of the cost over a plane (backprop.landscape.Landscape), the centre (the weights
    now) as a star and, on the PCA plane, the path training took, from its start to the centre.
    With `run_label` (a recorded run's, e.g. '#3 my run') the title names the run and its plane."""
    if landscape.kind == "pca":
        explained = landscape.explained or (float("nan"), float("nan"))
        axes = [f"PCA direction {j + 1} ({share:.1%} of the path's variance)"
                for j, share in enumerate(explained)]
    else:
        axes = ["random direction 1 (filter-normalised)", "random direction 2 (filter-normalised)"]
    costs = np.where(np.isfinite(landscape.costs), landscape.costs, np.nan)
    traces = [{"type": "contour", "x": landscape.xs.tolist(), "y": landscape.ys.tolist(),
               "z": [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in costs],
               "colorscale": "Viridis", "contours": _contour_levels(costs), "name": "cost",
               "colorbar": {"title": {"text": "cost"}, "thickness": 12},
               "hovertemplate": "(%{x:.3g}, %{y:.3g}): cost %{z:.5g}<extra></extra>"}]
    if landscape.path is not None:
        traces.append({"type": "scatter", "mode": "lines+markers", "name": "path taken",
                       "x": landscape.path[:, 0].tolist(), "y": landscape.path[:, 1].tolist(),
                       "customdata": landscape.path_iterations.tolist(),
                       "line": {"color": "#ffffff", "width": 2},
                       "marker": {"color": "#e45756", "size": 6, "line": {"color": "#ffffff", "width": 1}},
                       "hovertemplate": "iteration %{customdata}<extra>path</extra>"})
    traces.append({"type": "scatter", "mode": "markers", "name": f"now (iteration {landscape.iteration})",
                   "x": [0.0], "y": [0.0], "marker": {"symbol": "star", "size": 16, "color": "#ffd700",
                                                      "line": {"color": "#000000", "width": 1}},
                   "hovertemplate": f"the weights now: cost {landscape.center_cost:.5g}<extra></extra>"})
    state = "" if landscape.complete else " (cancelled: part of the grid)"
    if run_label is not None:
        title = f"{plotly_text(run_label, limit=40)}: {landscape.kind} plane"
    else:
        title = ("Cost around the weights now, random filter-normalised plane"
                 if landscape.kind == "random" else "Cost over the plane of the path taken (PCA)")
    return {"data": traces,
            "layout": _layout(title + state, height=height, showlegend=True,
                              legend={"orientation": "h", "y": -0.18, "yanchor": "top"},
                              margin={"l": 60, "r": 20, "t": 50, "b": 90},
                              xaxis={"title": {"text": axes[0]}}, yaxis={"title": {"text": axes[1]}})}


def path_figure(run_label, iterations, path, costs, height=380):
    """A run's path in its own PCA plane, coloured by the cost at each point (for Compare, when
    no landscape was computed for the run)."""
    run_label = plotly_text(run_label, limit=40)
    return {"data": [{"type": "scatter", "mode": "lines+markers", "name": run_label,
                      "x": path[:, 0].tolist(), "y": path[:, 1].tolist(),
                      "customdata": np.stack([iterations, costs], axis=1).tolist(),
                      "marker": {"color": costs.tolist(), "colorscale": "Viridis", "size": 8,
                                 "colorbar": {"title": {"text": "cost"}, "thickness": 12}},
                      "line": {"color": "#999999"},
                      "hovertemplate": "iteration %{customdata[0]}: cost %{customdata[1]:.4g}"
                                       "<extra></extra>"}],
            "layout": _layout(f"{run_label}: path in its PCA plane", height=height,
                              xaxis={"title": {"text": "PCA direction 1"}},
                              yaxis={"title": {"text": "PCA direction 2"}})}
