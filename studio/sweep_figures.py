"""Pure figure and table builders for the Sweep page, from a backprop.sweep.SweepSnapshot (its
trials' curves are backprop.run.StepRow records, their test evaluations Evaluation records).

Each returns a Plotly figure as a dict (or None when there is nothing to draw yet), like
studio.analysis_figures, so the page only lays them out and tests read them directly. The plots of
results (history, slice, contour, intermediate values, parallel coordinates, scatter, importance)
start at the third finished trial (MIN_FINISHED) and draw what the snapshot holds, live or recorded.

Cheap at any sweep size (up to 1,000 trials): a handful of traces per figure, never one per trial,
and at most MAX_POINTS points of a trial's intermediate values. Numbers are shown as the settings
table writes them (`Setting.encode`), long floats and metrics to 3-4 significant digits, and every
text a person supplied (a sweep's name, a failed trial's reason) goes through `plotly_text`.
"""

import math
import zlib

import numpy as np

from backprop.settings import SETTINGS
from backprop.sweep.snapshot import MIN_FINISHED, OBJECTIVE, setting_importance
from studio.analysis_figures import _layout
from studio.figures import plotly_text

MAX_CURVES = 12  # cost curves drawn at once: the running trials, then the best finished ones
STATUS_ORDER = ("running", "queued", "finished", "pruned", "diverged", "failed", "cancelled")
STATUS_COLOURS = {"finished": "#1f77b4", "pruned": "#ff7f0e", "running": "#2ca02c", "queued": "#bcbd22",
                  "diverged": "#d62728", "failed": "#8c564b", "cancelled": "#7f7f7f"}
MISSING = "—"  # a table cell without a value
MAX_POINTS = 60  # intermediate values drawn per trial (evenly thinned, the last one kept)
CONTOUR_GRID = 24  # contour cells per side at most
PARALLEL_COLOURS = 8  # parallel-coordinates lines are drawn in this many colour bands
NAME_LIMIT = 80  # characters of a sweep's name in a figure's title
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
           "#b5de2b", "#fde725")
SCATTER_METRICS = ("test cost", "test accuracy", "train accuracy", "seconds", "trial")
HISTORY_AXES = {"trial": "trial number", "time": "seconds since the sweep started"}


# -- numbers as text -------------------------------------------------------------------------------
def number_text(value, digits=4):
    """3-4 significant digits: 0.0431, 1e-05, 300."""
    return MISSING if value is None else f"{value:.{digits}g}"


def setting_text(name, value):
    """A setting's value as the tables and charts show it: the settings table's own text
    (`Setting.encode`: 'full', '8,1', '0.01'), a long float to 4 significant digits (0.04312, not
    0.04311710058868549)."""
    setting = SETTINGS[name]
    text = setting.encode(value)
    if setting.kind == "float" and isinstance(value, (int, float)) and len(text) > 7:
        text = number_text(value)
    return text if text != "" else MISSING


def metric_text(column, value):
    """A result as text: accuracies as 97.6%, costs to 4 significant digits, seconds to 0.1 s."""
    if value is None:
        return MISSING
    if "accuracy" in column:
        return f"{value:.1%}"
    if column == "seconds":
        return f"{value:.1f} s"
    if column in ("trial", "iteration", "run"):
        return str(value)
    return number_text(value)


# -- the trials table and the trial picker ---------------------------------------------------------
def trials_table(snapshot, text=False):
    """One row per trial: status, the varied settings, results; running first, then by number.
    Numbers stay numbers (TABLE_FORMATS says how to show them; a missing one is None) unless `text`,
    where every cell is its text and a missing value MISSING."""
    names = [d.name for d in snapshot.space]
    numeric = {name for name in names if SETTINGS[name].kind == "float"}
    rows = []
    for trial in sorted(snapshot.trials, key=lambda t: (STATUS_ORDER.index(t.status), t.number)):
        last = trial.curve[-1] if trial.curve else None
        notes = [trial.reason] if trial.reason else []
        notes += [attempt.text(trial.number) for attempt in trial.lost]
        settings = {}
        for name in names:
            value = trial.params.get(name)
            if name in numeric and not text:
                settings[name] = float(value) if isinstance(value, (int, float)) else None
            else:
                settings[name] = setting_text(name, value) if name in trial.params else MISSING
        row = {"trial": trial.number, "status": trial.status, **settings,
               "iteration": last.iteration + 1 if last else None,
               "cost": last.cost if last else None,
               "test accuracy": trial.test_accuracy if trial.test_accuracy is not None else (
                   trial.evaluations[-1].test_accuracy if trial.evaluations else None),
               "test cost": trial.test_cost,
               "seconds": trial.seconds, "run": trial.run_id, "worker": trial.worker or "",
               "reason": "; ".join(notes)}
        if text:
            row = {key: value if key in settings or key in ("status", "worker", "reason")
                   else metric_text(key, value) for key, value in row.items()}
        rows.append(row)
    return rows


def table_formats(snapshot):
    """The trials table's number columns and how to show them (st.column_config.NumberColumn's
    format: printf, or 'percent'), with the missing ones left to the table's placeholder."""
    formats = {"trial": "%d", "iteration": "%d", "cost": "%.4g", "test accuracy": "percent",
               "test cost": "%.4g", "seconds": "%.1f", "run": "%d"}
    formats.update({d.name: "%.4g" for d in snapshot.space if SETTINGS[d.name].kind == "float"})
    return formats


def trial_label(trial, space):
    settings = ", ".join(f"{d.name} {setting_text(d.name, trial.params[d.name])}" for d in space
                         if d.name in trial.params)
    return f"#{trial.number} {settings}"


def trial_choices(snapshot):
    """[(label, trial number)] for the trial picker: the finished trials best first (lowest test
    cost), then the others, running first, each with its status and result."""
    best = snapshot.best()
    ranked = {t.number for t in best}
    rest = sorted((t for t in snapshot.trials if t.number not in ranked),
                  key=lambda t: (STATUS_ORDER.index(t.status), t.number))
    choices = []
    for trial in best + rest:
        result = ""
        if trial.status == "finished":
            result = (f", test accuracy {metric_text('test accuracy', trial.test_accuracy)}"
                      if trial.test_accuracy is not None else f", test cost {number_text(trial.test_cost)}")
        choices.append((f"{trial_label(trial, snapshot.space)} ({trial.status}{result})", trial.number))
    return choices


def choices_key(choices):
    """A short key that changes whenever the picker's order does (a new widget, the best first)."""
    return f"{zlib.crc32(repr([number for _, number in choices]).encode()):08x}"


# -- helpers of the result plots -------------------------------------------------------------------
def _finite(value):
    return value is not None and math.isfinite(value)


def finished_trials(snapshot):
    """The finished trials with a value of the sweep's metric (what Optuna optimised), by number."""
    return [t for t in snapshot.trials if t.status == "finished" and _finite(t.value)]


def _better_word(snapshot):
    return "lower" if snapshot.direction == "minimize" else "higher"


def varied(snapshot):
    """The space's settings that take more than one value (one panel, axis or column each)."""
    return [d for d in snapshot.space if d.values is None or len(d.values) > 1]


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(dimension, values):
    return dimension.setting.kind in ("int", "float") and all(_is_number(v) for v in values)


def _log(dimension, values):
    """A log axis: a log-scale range, or a list of a log-scale setting (a learning rate), all > 0."""
    log = dimension.log if dimension.values is None else dimension.setting.log
    return log and all(v > 0 for v in values)


def _categories(dimension, texts):
    """A setting without an order: its values in the sweep's order (then any other seen)."""
    order = [setting_text(dimension.name, v) for v in dimension.values] if dimension.values else []
    return order + sorted(set(texts) - set(order))


def _axis(dimension, values):
    """(Plotly axis settings, the values as the axis takes them) for one setting: numbers on a log
    axis for a log-scale setting, anything else (layer sizes, names, 'full') as categories."""
    if _numeric(dimension, values):
        return {"type": "log" if _log(dimension, values) else "linear"}, list(values)
    texts = [setting_text(dimension.name, v) for v in values]
    return {"type": "category", "categoryorder": "array",
            "categoryarray": _categories(dimension, texts)}, texts


def _cost_axis(costs, title=OBJECTIVE):
    """The test cost's axis: log once it spans more than a factor of 30."""
    axis = {"title": {"text": title}}
    positive = [c for c in costs if c is not None and c > 0]
    if positive and len(positive) == len([c for c in costs if c is not None]) and \
            max(positive) / min(positive) > 30:
        axis["type"] = "log"
    return axis


def _whole_numbers(values):
    """An axis of trial numbers: ticks at whole numbers only (1, 2, 5 times a power of ten apart)."""
    span = max(values, default=0) - min(values, default=0)
    raw = max(1.0, span / 8)
    magnitude = 10 ** math.floor(math.log10(raw))
    return {"tick0": 0, "dtick": next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)}


def trial_text(trial, space):
    """A trial's tooltip: number, status, settings, results (escaped)."""
    lines = [f"#{trial.number} {trial.status}"]
    lines += [f"{d.name} {setting_text(d.name, trial.params[d.name])}" for d in space
              if d.name in trial.params]
    results = [f"test cost {number_text(trial.test_cost)}" if trial.test_cost is not None else "",
               f"test accuracy {metric_text('test accuracy', trial.test_accuracy)}"
               if trial.test_accuracy is not None else ""]
    lines.append(" · ".join(r for r in results if r))
    if trial.reason:
        lines.append(trial.reason)
    return "<br>".join(plotly_text(line, 200) for line in lines if line)


def _title(text, name=None):
    return text + (f" · {plotly_text(name, NAME_LIMIT)}" if name else "")


def _result(trials):
    """(label, values per trial, axis format): test accuracy, or test cost for a task without classes."""
    if all(t.test_accuracy is not None for t in trials):
        return "test accuracy", [t.test_accuracy for t in trials], ".1%"
    return "test cost", [t.test_cost for t in trials], ""


def _grid_axes(count, columns=3, gap_x=0.07, gap_y=0.2):
    """Domains of `count` panels in rows of `columns`: [(x domain, y domain)], top row first."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    width = (1 - gap_x * (columns - 1)) / columns
    height = (1 - gap_y * (rows - 1)) / rows
    cells = []
    for i in range(count):
        row, column = divmod(i, columns)
        x0 = column * (width + gap_x)
        y1 = 1 - row * (height + gap_y)
        cells.append(([round(x0, 4), round(x0 + width, 4)], [round(y1 - height, 4), round(y1, 4)]))
    return cells, rows


def for_chart(figure):
    """The figure for st.plotly_chart: its traces' lists as NumPy arrays (numbers, or texts without
    gaps), which Plotly checks at once instead of item by item (twice as fast at 1,000 trials) and
    sends numbers as binary. The builders return plain lists, which tests read."""
    if figure is None:
        return None
    for trace in figure["data"]:
        for owner, key in [(trace, "x"), (trace, "y"), (trace, "text"), (trace.get("marker") or {}, "color")]:
            values = owner.get(key)
            if isinstance(values, list) and values:
                array = np.asarray(values)
                if array.dtype.kind in "fiuU":
                    owner[key] = array
    return figure


# -- training cost curves --------------------------------------------------------------------------
def cost_curves_figure(snapshot):
    """Training cost per iteration of the running trials (streaming in) and the best finished."""
    running = [t for t in snapshot.trials if t.status == "running" and t.curve]
    best = [t for t in snapshot.best() if t.curve]
    chosen = (running + [t for t in best if t not in running])[:MAX_CURVES]
    if not chosen:
        return None
    data = []
    for trial in chosen:
        data.append({"type": "scattergl", "mode": "lines",
                     "name": plotly_text(trial_label(trial, snapshot.space)),
                     "x": [row.iteration for row in trial.curve],
                     "y": [row.cost if row.cost is not None and math.isfinite(row.cost) else None
                           for row in trial.curve],
                     "line": {"dash": "solid" if trial.status == "running" else "dot"}})
    return {"data": data, "layout": _layout("Training cost: running trials (solid) and the best (dotted)",
                                            xaxis={"title": {"text": "iteration"}},
                                            yaxis={"title": {"text": "cost"}, "type": "log"},
                                            legend={"orientation": "h", "y": -0.25},
                                            uirevision="sweep-curves")}


# -- optimisation history --------------------------------------------------------------------------
def history_figure(snapshot, x="trial", name=None):
    """Each finished trial's test cost and the best so far, against trial number or time
    (x='time': seconds since the sweep started); None before MIN_FINISHED finished trials."""
    done = finished_trials(snapshot)
    if x == "time":
        done = [t for t in done if t.ended_at is not None]
    if len(done) < MIN_FINISHED:
        return None
    done.sort(key=(lambda t: (t.ended_at, t.number)) if x == "time" else (lambda t: t.number))
    xs = [t.ended_at if x == "time" else t.number for t in done]
    costs = [t.value for t in done]
    accumulate = np.minimum if snapshot.direction == "minimize" else np.maximum
    best = accumulate.accumulate(np.asarray(costs)).tolist()
    texts = [trial_text(t, snapshot.space) for t in done]
    data = [{"type": "scatter", "mode": "markers", "name": "trial", "x": xs, "y": costs,
             "marker": {"color": STATUS_COLOURS["finished"], "opacity": 0.6, "size": 7},
             "text": texts, "hovertemplate": "%{text}<extra></extra>"},
            {"type": "scatter", "mode": "lines", "name": "best so far", "x": xs, "y": best,
             "line": {"shape": "hv", "color": "#d62728", "width": 2},
             "hovertemplate": "best so far %{y:.4g}<extra></extra>"}]
    return {"data": data, "layout": _layout(
        _title(f"Optimisation history: {snapshot.metric_label} ({_better_word(snapshot)} is better)", name),
        xaxis={"title": {"text": HISTORY_AXES.get(x, x)}, **(_whole_numbers(xs) if x == "trial" else {})},
        yaxis=_cost_axis(costs, snapshot.metric_label),
        legend={"orientation": "h", "y": -0.25}, uirevision="sweep-history")}


# -- slice -----------------------------------------------------------------------------------------
def slice_figure(snapshot):
    """One panel per varied setting: each finished trial's value of it against its test cost
    (log axis for a log-scale setting, categories for one without an order), coloured by trial
    number; None before MIN_FINISHED finished trials."""
    done = finished_trials(snapshot)
    dimensions = varied(snapshot)
    if len(done) < MIN_FINISHED or not dimensions:
        return None
    cells, rows = _grid_axes(len(dimensions))
    costs = [t.value for t in done]
    results = {t.number: f" · {snapshot.metric_label} {number_text(t.value)}" + (
        f" · test accuracy {metric_text('test accuracy', t.test_accuracy)}" if t.test_accuracy is not None
        else "") for t in done}
    cost_axis = _cost_axis(costs, snapshot.metric_label)
    data, layout = [], _layout(f"Slice: {snapshot.metric_label} against each setting (darker: later trials)",
                               height=60 + 280 * rows, showlegend=False, uirevision="sweep-slice")
    for i, (dimension, (x_domain, y_domain)) in enumerate(zip(dimensions, cells, strict=True)):
        suffix = "" if i == 0 else str(i + 1)
        points = [t for t in done if dimension.name in t.params]
        axis, xs = _axis(dimension, [t.params.get(dimension.name) for t in points])
        data.append({"type": "scatter", "mode": "markers", "x": xs, "y": [t.value for t in points],
                     "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "name": dimension.name,
                     "marker": {"color": [t.number for t in points], "colorscale": "Blues", "size": 7,
                                "cmin": 0, "cmax": max(1, snapshot.total - 1), "showscale": i == 0,
                                "colorbar": {"title": {"text": "trial"}, "thickness": 12},
                                "line": {"width": 0.5, "color": "#555"}},
                     "text": [plotly_text(f"#{t.number} {dimension.name} "
                                          f"{setting_text(dimension.name, t.params[dimension.name])}"
                                          f"{results[t.number]}") for t in points],
                     "hovertemplate": "%{text}<extra></extra>"})
        layout[f"xaxis{suffix}"] = {**axis, "domain": x_domain, "anchor": f"y{suffix}",
                                    "title": {"text": plotly_text(dimension.name)}}
        y_axis = {**cost_axis, "domain": y_domain, "anchor": f"x{suffix}"}
        if i:
            y_axis["matches"] = "y"
        if i % 3:
            y_axis["title"] = {"text": ""}
        layout[f"yaxis{suffix}"] = y_axis
    return {"data": data, "layout": layout}


# -- contour ---------------------------------------------------------------------------------------
def _coordinates(dimension, values):
    """(numbers to interpolate on, back to the axis's values, axis settings) for one setting."""
    if _numeric(dimension, values):
        if _log(dimension, values):
            return (np.log10(np.asarray(values, dtype=float)), (lambda u: (10.0 ** u).tolist()),
                    {"type": "log"})
        return np.asarray(values, dtype=float), (lambda u: u.tolist()), {"type": "linear"}
    texts = [setting_text(dimension.name, v) for v in values]
    names = _categories(dimension, texts)
    index = {name: i for i, name in enumerate(names)}
    used = sorted({index[t] for t in texts})
    return (np.asarray([index[t] for t in texts], dtype=float), (lambda u: u.tolist()),
            {"type": "linear", "tickvals": used, "ticktext": [plotly_text(names[i]) for i in used]})


def _grid(coordinates, categorical):
    unique = np.unique(coordinates)
    if categorical or len(unique) <= CONTOUR_GRID:
        return unique
    return np.linspace(unique[0], unique[-1], CONTOUR_GRID)


def contour_figure(snapshot, x_name, y_name):
    """The test cost over two settings: interpolated (inverse distance, on the axes' own scales)
    between the finished trials, which are drawn as dots; None before MIN_FINISHED finished trials,
    for one setting twice, or while either has taken a single value."""
    by_name = {d.name: d for d in snapshot.space}
    if x_name == y_name or x_name not in by_name or y_name not in by_name:
        return None
    dx, dy = by_name[x_name], by_name[y_name]
    done = [t for t in finished_trials(snapshot) if x_name in t.params and y_name in t.params]
    if len(done) < MIN_FINISHED:
        return None
    u, to_x, x_axis = _coordinates(dx, [t.params[x_name] for t in done])
    v, to_y, y_axis = _coordinates(dy, [t.params[y_name] for t in done])
    if np.ptp(u) == 0 or np.ptp(v) == 0:
        return None
    costs = np.asarray([t.value for t in done], dtype=float)
    gu, gv = _grid(u, "tickvals" in x_axis), _grid(v, "tickvals" in y_axis)
    # Inverse squared distance on the axes' scales, each stretched to [0, 1]; a cell on a trial
    # (a grid's point) takes its trials' mean.
    du = (gu[None, :, None] - u[None, None, :]) / np.ptp(u)
    dv = (gv[:, None, None] - v[None, None, :]) / np.ptp(v)
    distance = du ** 2 + dv ** 2
    on = distance < 1e-12
    weights = np.where(on.any(axis=2, keepdims=True), on.astype(float), 1.0 / np.maximum(distance, 1e-12))
    z = (weights @ costs) / weights.sum(axis=2)
    data = [{"type": "contour", "x": to_x(gu), "y": to_y(gv), "z": z.tolist(), "colorscale": "Blues",
             "reversescale": snapshot.direction == "minimize", "ncontours": 12,
             "line": {"smoothing": 0.85, "width": 0.5},
             "colorbar": {"title": {"text": snapshot.metric_label}, "thickness": 12},
             "hovertemplate": f"{plotly_text(x_name)} %{{x}}<br>{plotly_text(y_name)} %{{y}}<br>"
                              f"{snapshot.metric_label} %{{z:.4g}} (interpolated)<extra></extra>"},
            {"type": "scatter", "mode": "markers", "x": to_x(u), "y": to_y(v), "name": "trials",
             "marker": {"color": "#111", "size": 6, "line": {"width": 1, "color": "white"}},
             "text": [trial_text(t, snapshot.space) for t in done],
             "hovertemplate": "%{text}<extra></extra>"}]
    return {"data": data, "layout": _layout(
        f"Contour: {snapshot.metric_label} over two settings (interpolated between the trials, the dots)",
        xaxis={**x_axis, "title": {"text": plotly_text(x_name)}},
        yaxis={**y_axis, "title": {"text": plotly_text(y_name)}}, height=420, showlegend=False,
        uirevision="sweep-contour")}


# -- intermediate values ---------------------------------------------------------------------------
def _series(trial):
    """A trial's test cost as it trained: its test evaluations, else what the pruner was told."""
    points = [(e.iteration, e.test_cost) for e in trial.evaluations if _finite(e.test_cost)]
    if not points:
        points = [(step, value) for step, value in sorted(trial.intermediate.items()) if _finite(value)]
    if len(points) > MAX_POINTS:
        keep = np.unique(np.linspace(0, len(points) - 1, MAX_POINTS).round().astype(int))
        points = [points[i] for i in keep]
    return points


def intermediate_figure(snapshot):
    """Every trial's test cost at each evaluation (or pruner report) as it trained, pruned trials
    included, coloured by state: one trace per state; None before any has one."""
    groups = {}
    for trial in snapshot.trials:
        points = _series(trial)
        if points:
            groups.setdefault(trial.status, []).append((trial, points))
    if not groups:
        return None
    data, costs = [], []
    for status in ("finished", "cancelled", "failed", "diverged", "queued", "pruned", "running"):
        if status not in groups:
            continue
        xs, ys, texts = [], [], []
        for trial, points in groups[status]:
            label = plotly_text(f"#{trial.number} {status}")
            xs += [p[0] for p in points] + [math.nan]  # a gap between trials
            ys += [p[1] for p in points] + [math.nan]
            texts += [label] * len(points) + [""]
            costs += [p[1] for p in points]
        data.append({"type": "scatter", "mode": "lines", "name": f"{status} ({len(groups[status])})",
                     "x": np.asarray(xs, dtype=float), "y": np.asarray(ys, dtype=float), "text": texts,
                     "connectgaps": False,
                     "line": {"color": STATUS_COLOURS[status], "width": 1.2},
                     "opacity": 0.8, "hovertemplate": "%{text}<br>iteration %{x}<br>test cost %{y:.4g}"
                                                      "<extra></extra>"})
    return {"data": data, "layout": _layout(
        "Intermediate values: each trial's test cost as it trained, by state",
        xaxis={"title": {"text": "iteration"}}, yaxis=_cost_axis(costs),
        legend={"orientation": "h", "y": -0.25}, height=360, uirevision="sweep-intermediate")}


# -- parallel coordinates --------------------------------------------------------------------------
def _nice_ticks(low, high, count=5):
    """Round numbers from low to high (about `count`)."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.ceil(low / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(int((high - start) / step + 1e-9) + 1)]


def log_ticks(low, high):
    """Real values for a log axis from 10**low to 10**high: the powers of ten (three or more),
    else 1-2-5 steps, else its ends (0.001, 0.01, ...; never their log10)."""
    decades = [10.0 ** k for k in range(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1)]
    if len(decades) >= 3:
        return decades[::math.ceil(len(decades) / 8)]
    steps = [m * 10.0 ** k for k in range(math.floor(low) - 1, math.ceil(high) + 1) for m in (1, 2, 5)
             if low - 1e-9 <= math.log10(m * 10.0 ** k) <= high + 1e-9]
    return steps if len(steps) >= 2 else [10.0 ** low, 10.0 ** high]


def _parallel_axis(dimension, values):
    """(each value's place on the axis from 0 to 1, [(place, tick text)]) for one setting."""
    if _numeric(dimension, values):
        log = _log(dimension, values)
        numbers = np.log10(np.asarray(values, dtype=float)) if log else np.asarray(values, dtype=float)
        low, high = float(numbers.min()), float(numbers.max())
        span = high - low
        places = (numbers - low) / span if span else np.full(len(numbers), 0.5)
        ticks = log_ticks(low, high) if log else _nice_ticks(low, high)
        to_place = (lambda t: (math.log10(t) - low) / span) if log else (lambda t: (t - low) / span)
        if not span:
            return places.tolist(), [(0.5, number_text(values[0]))]
        return places.tolist(), [(to_place(t), number_text(t, 3)) for t in ticks]
    texts = [setting_text(dimension.name, v) for v in values]
    names = [n for n in _categories(dimension, texts) if n in set(texts)]
    index = {name: i for i, name in enumerate(names)}
    last = max(1, len(names) - 1)
    places = [index[t] / last if len(names) > 1 else 0.5 for t in texts]
    every = math.ceil(len(names) / 12)
    return places, [(i / last if len(names) > 1 else 0.5, name) for i, name in enumerate(names)][::every]


def parallel_coordinates_figure(snapshot):
    """Each finished trial as a line across its varied settings and its final test accuracy (or
    cost), coloured by it, with the pruned trials in grey; axes labelled at real values (0.001,
    0.01 on a log axis), a tooltip at each point. None before MIN_FINISHED finished trials."""
    done = finished_trials(snapshot)
    if len(done) < MIN_FINISHED:
        return None
    label, values, number_format = _result(done)
    pruned = [t for t in snapshot.trials if t.status == "pruned" and
              _finite(t.test_accuracy if label == "test accuracy" else t.test_cost)]
    dimensions = [d for d in varied(snapshot) if all(d.name in t.params for t in done + pruned)]
    trials = done + pruned
    columns, shapes, annotations = [], [], []
    axes = [(d.name, [t.params[d.name] for t in trials], d) for d in dimensions]
    result_values = [t.test_accuracy if label == "test accuracy" else t.test_cost for t in trials]
    for i, (name, column_values, dimension) in enumerate(axes + [(label, result_values, None)]):
        if dimension is None:
            numbers = np.asarray(column_values, dtype=float)
            low, high = float(numbers.min()), float(numbers.max())
            span = high - low
            places = ((numbers - low) / span).tolist() if span else [0.5] * len(numbers)
            ticks = [((t - low) / span, f"{t:.1%}" if number_format else number_text(t, 3))
                     for t in _nice_ticks(low, high)] if span else [(0.5, metric_text(label, low))]
        else:
            places, ticks = _parallel_axis(dimension, column_values)
        columns.append(places)
        shapes.append({"type": "line", "x0": i, "x1": i, "y0": 0, "y1": 1, "xref": "x", "yref": "y",
                       "line": {"color": "#444", "width": 1}})
        annotations.append({"x": i, "y": 1.04, "xref": "x", "yref": "y", "text": plotly_text(name),
                            "showarrow": False, "yanchor": "bottom", "name": f"axis {name}",
                            "font": {"size": 12}})
        annotations += [{"x": i, "y": place, "xref": "x", "yref": "y", "text": plotly_text(text),
                         "showarrow": False, "xanchor": "right", "xshift": -4, "name": f"tick {name}",
                         "font": {"size": 10, "color": "#333"}, "bgcolor": "rgba(255,255,255,0.85)"}
                        for place, text in ticks if -1e-9 <= place <= 1 + 1e-9]
    places = np.asarray(columns).T  # one row per trial
    axis_x = list(range(len(columns)))
    colour = np.asarray(values[:len(done)], dtype=float)
    low, high = float(colour.min()), float(colour.max())
    good = colour if label == "test accuracy" else -colour  # yellow is better either way
    bands = np.zeros(len(done), dtype=int) if high == low else np.minimum(
        ((good - good.min()) / np.ptp(good) * PARALLEL_COLOURS).astype(int), PARALLEL_COLOURS - 1)
    data = []
    for band in range(PARALLEL_COLOURS):
        rows = np.flatnonzero(bands == band)
        if not len(rows):
            continue
        colour_at = VIRIDIS[round(band * (len(VIRIDIS) - 1) / max(1, PARALLEL_COLOURS - 1))]
        data.append(_polylines(places[rows], axis_x, {"color": colour_at, "width": 1.5}, showlegend=False))
    if pruned:
        data.append(_polylines(places[len(done):], axis_x, {"color": "#aaaaaa", "width": 1, "dash": "dot"},
                               name=f"pruned ({len(pruned)})", showlegend=True))
    # The tooltips: a marker where each finished trial crosses each axis; the whole trial at its
    # result, its number, that axis's value and its result at the others.
    texts = []
    names = [name for name, _, _ in axes]
    for trial, result in zip(done, values, strict=True):
        short = f" · {label} {metric_text(label, result)}"
        texts += [plotly_text(f"#{trial.number} {name} {setting_text(name, trial.params[name])}{short}")
                  for name in names]
        texts.append(trial_text(trial, snapshot.space))
    data.append({"type": "scatter", "mode": "markers", "name": "finished",
                 "x": [x for _ in done for x in axis_x], "y": places[:len(done)].reshape(-1).tolist(),
                 "text": texts,
                 "marker": {"size": 6, "color": [c for c in colour.tolist() for _ in axis_x],
                            "colorscale": "Viridis", "reversescale": label != "test accuracy",
                            "colorbar": {"title": {"text": label}, "thickness": 12,
                                         "tickformat": number_format or ".3g"}},
                 "hovertemplate": "%{text}<extra></extra>", "showlegend": False})
    return {"data": data, "layout": _layout(
        f"Parallel coordinates: settings against final {label}" + (" (pruned: grey)" if pruned else ""),
        height=420, margin={"l": 70, "r": 30, "t": 80, "b": 30}, shapes=shapes, annotations=annotations,
        xaxis={"visible": False, "range": [-0.45, len(columns) - 0.6]},
        yaxis={"visible": False, "range": [-0.05, 1.12]},
        legend={"orientation": "h", "y": -0.05}, hovermode="closest", uirevision="sweep-parallel")}


def _polylines(places, axis_x, line, name=None, showlegend=False):
    """One trace of many trials' lines, each ended by a gap (NaN): NumPy arrays, which Plotly sends
    as binary and checks at once (lists of a thousand lines cost it a tenth of a second)."""
    rows = len(places)
    xs = np.tile(np.append(np.asarray(axis_x, dtype=float), np.nan), rows)
    ys = np.hstack([places, np.full((rows, 1), np.nan)]).reshape(-1)
    return {"type": "scatter", "mode": "lines", "x": xs, "y": ys, "line": line, "hoverinfo": "skip",
            "connectgaps": False, "name": name or "", "showlegend": showlegend, "opacity": 0.7}


# -- scatter of any two columns --------------------------------------------------------------------
def scatter_columns(snapshot):
    """What the scatter plot can put on an axis: the varied settings, then the results."""
    names = [d.name for d in varied(snapshot)]
    metrics = [m for m in SCATTER_METRICS if m not in ("test accuracy", "train accuracy")
               or any(getattr(t, m.replace(" ", "_")) is not None for t in snapshot.trials)]
    return names + metrics


def _column_value(trial, column):
    if column in SCATTER_METRICS:
        return trial.number if column == "trial" else getattr(trial, column.replace(" ", "_"))
    return trial.params.get(column)


def _column_axis(snapshot, column, values):
    dimension = next((d for d in snapshot.space if d.name == column), None)
    if dimension is not None:
        axis, values = _axis(dimension, values)
        return axis, values
    axis = {"tickformat": ".1%"} if "accuracy" in column else {}
    if column == "trial":
        axis = _whole_numbers(values)
    if column == "test cost":
        axis = {k: v for k, v in _cost_axis(values).items() if k != "title"}
    return axis, values


def scatter_figure(snapshot, x_column, y_column):
    """Any two columns (settings, test cost, accuracies, seconds, trial number) of the trials that
    have both, coloured by state; None while fewer than MIN_FINISHED trials finished."""
    if len(finished_trials(snapshot)) < MIN_FINISHED:
        return None
    columns = scatter_columns(snapshot)
    if x_column not in columns or y_column not in columns:
        return None
    settings = {d.name for d in snapshot.space}

    def has(trial, column):
        value = _column_value(trial, column)
        if column in settings:
            return column in trial.params
        return value is not None and _finite(float(value))

    shown = [t for t in snapshot.trials if has(t, x_column) and has(t, y_column)]
    if not shown:
        return None
    x_axis, xs = _column_axis(snapshot, x_column, [_column_value(t, x_column) for t in shown])
    y_axis, ys = _column_axis(snapshot, y_column, [_column_value(t, y_column) for t in shown])
    data = []
    for status in STATUS_ORDER:
        rows = [i for i, t in enumerate(shown) if t.status == status]
        if rows:
            data.append({"type": "scatter", "mode": "markers", "name": f"{status} ({len(rows)})",
                         "x": [xs[i] for i in rows], "y": [ys[i] for i in rows],
                         "marker": {"color": STATUS_COLOURS[status], "size": 7, "opacity": 0.75},
                         "text": [trial_text(shown[i], snapshot.space) for i in rows],
                         "hovertemplate": "%{text}<extra></extra>"})
    return {"data": data, "layout": _layout(
        f"{plotly_text(y_column)} against {plotly_text(x_column)}",
        xaxis={**x_axis, "title": {"text": plotly_text(x_column)}},
        yaxis={**y_axis, "title": {"text": plotly_text(y_column)}}, height=380,
        legend={"orientation": "h", "y": -0.25}, uirevision="sweep-scatter")}


# -- importance ------------------------------------------------------------------------------------
def importance(snapshot):
    """backprop.sweep.setting_importance: an Importance (None before it can tell)."""
    return setting_importance(snapshot)


def importance_epoch(finished):
    """When to compute importances again: at every finished trial up to 100, then every 2%."""
    return finished if finished <= 100 else finished - finished % max(1, finished // 50)


def importance_figure(result, name=None):
    """Each setting's share of the test cost's variation by the evaluator that computed it (named
    in the title), with the direction of its effect: ↑ the test cost rises as the setting rises,
    ↓ it falls (Spearman's rho beside the bar). None without a result."""
    if not result or not result.settings:
        return None
    items = list(result.settings)[::-1]  # the most important at the top
    colours = {"↑": "#d62728", "↓": "#1f77b4", "": "#7f7f7f"}
    hover = [plotly_text(f"{item.name}: {item.importance:.1%} of the importance; test cost "
                         + ({"↑": "rises", "↓": "falls"}[item.direction] + " as it rises"
                            if item.direction else "shows no direction")
                         + (f" (Spearman's rho {item.correlation:+.2f})"
                            if item.correlation is not None else ""))
             for item in items]
    version = f", Optuna {result.optuna_version}" if result.optuna_version else ""
    data = [{"type": "bar", "orientation": "h", "x": [item.importance for item in items],
             "y": [plotly_text(item.name) for item in items],
             "text": [item.correlation_text() or "no direction" for item in items], "textposition": "outside",
             "marker": {"color": [colours[item.direction] for item in items]}, "hovertext": hover,
             "hovertemplate": "%{hovertext}<extra></extra>", "cliponaxis": False}]
    return {"data": data, "layout": _layout(
        _title(f"Setting importance: {plotly_text(result.evaluator)}{version}, "
               f"{result.trials} finished trials", name),
        xaxis={"title": {"text": "share of importance · ↑/↓: test cost rises/falls with the setting "
                                 "(Spearman's rho)"},
               "tickformat": ".0%", "range": [0, min(1.0, max(i.importance for i in items) * 1.3 + 0.05)]},
        height=max(220, 90 + 40 * len(items)), margin={"l": 110, "r": 40, "t": 50, "b": 50},
        uirevision="sweep-importance")}
