"""Pure figure and table builders for the Sweep page, from a backprop.sweep.SweepSnapshot (its
trials' curves are backprop.run.StepRow records, their test evaluations Evaluation records).

Each returns a Plotly figure as a dict (or None when there is nothing to draw yet), like
studio.analysis_figures, so the page only lays them out and tests read them directly.
"""

import math

from backprop.settings import SETTINGS
from studio.analysis_figures import _layout

MAX_CURVES = 12  # cost curves drawn at once: the running trials, then the best finished ones
STATUS_ORDER = ("running", "queued", "finished", "pruned", "diverged", "failed", "cancelled")


def _encode(name, value):
    return SETTINGS[name].encode(value)


def trials_table(snapshot):
    """One row per trial: status, the varied settings, results; running first, then by number."""
    names = [d.name for d in snapshot.space]
    rows = []
    for trial in sorted(snapshot.trials, key=lambda t: (STATUS_ORDER.index(t.status), t.number)):
        last = trial.curve[-1] if trial.curve else None
        notes = [trial.reason] if trial.reason else []
        notes += [attempt.text(trial.number) for attempt in trial.lost]
        rows.append({"trial": trial.number, "status": trial.status,
                     **{name: _encode(name, trial.params[name]) if name in trial.params else ""
                        for name in names},
                     "iteration": last.iteration + 1 if last else None,
                     "cost": last.cost if last else None,
                     "test accuracy": trial.test_accuracy if trial.test_accuracy is not None else (
                         trial.evaluations[-1].test_accuracy if trial.evaluations else None),
                     "test cost": trial.test_cost,
                     "seconds": trial.seconds, "run": trial.run_id, "worker": trial.worker or "",
                     "reason": "; ".join(notes)})
    return rows


def trial_label(trial, space):
    settings = ", ".join(f"{d.name} {_encode(d.name, trial.params[d.name])}" for d in space
                         if d.name in trial.params)
    return f"#{trial.number} {settings}"


def cost_curves_figure(snapshot):
    """Training cost per iteration of the running trials (streaming in) and the best finished."""
    running = [t for t in snapshot.trials if t.status == "running" and t.curve]
    best = [t for t in snapshot.best() if t.curve]
    chosen = (running + [t for t in best if t not in running])[:MAX_CURVES]
    if not chosen:
        return None
    data = []
    for trial in chosen:
        data.append({"type": "scattergl", "mode": "lines", "name": trial_label(trial, snapshot.space),
                     "x": [row.iteration for row in trial.curve],
                     "y": [row.cost if row.cost is not None and math.isfinite(row.cost) else None
                           for row in trial.curve],
                     "line": {"dash": "solid" if trial.status == "running" else "dot"}})
    return {"data": data, "layout": _layout("Training cost: running trials (solid) and the best (dotted)",
                                            xaxis={"title": {"text": "iteration"}},
                                            yaxis={"title": {"text": "cost"}, "type": "log"},
                                            legend={"orientation": "h", "y": -0.25})}


def _dimension(name, values):
    """A parcoords axis for one varied setting: numbers as they are (log10 on a log setting),
    anything else (layer sizes, names) as categories."""
    setting = SETTINGS[name]
    numeric = setting.kind in ("int", "float") and all(isinstance(v, (int, float)) for v in values)
    if numeric and setting.log and all(v > 0 for v in values):
        return {"label": f"log10 {name}", "values": [math.log10(v) for v in values]}
    if numeric:
        return {"label": name, "values": list(values)}
    texts = [_encode(name, v) for v in values]
    names = sorted(set(texts), key=lambda t: (len(t), t))
    return {"label": name, "values": [names.index(t) for t in texts], "tickvals": list(range(len(names))),
            "ticktext": names}


def _result(trials):
    """(label, values per trial, axis format): test accuracy, or test cost for a task without classes."""
    if all(t.test_accuracy is not None for t in trials):
        return "test accuracy", [t.test_accuracy for t in trials], ".1%"
    return "test cost", [t.test_cost for t in trials], ""


def parallel_coordinates_figure(snapshot):
    """Each finished trial's settings against its final test accuracy (None before the first)."""
    done = [t for t in snapshot.trials if t.status == "finished" and t.test_cost is not None]
    if not done:
        return None
    dimensions = [_dimension(d.name, [t.params[d.name] for t in done]) for d in snapshot.space]
    label, values, _ = _result(done)
    dimensions.append({"label": label, "values": values})
    return {"data": [{"type": "parcoords", "dimensions": dimensions,
                      "line": {"color": values, "colorscale": "Viridis", "showscale": True,
                               "reversescale": label == "test cost"}}],
            "layout": _layout(f"Settings against final {label}", height=380,
                              margin={"l": 70, "r": 70, "t": 70, "b": 30})}


def best_so_far_figure(snapshot):
    """The best trial so far (lowest final test cost): its test accuracy (or cost) against time."""
    if not snapshot.best_so_far:
        return None
    points = snapshot.best_so_far + [(max(snapshot.elapsed, snapshot.best_so_far[-1][0]),
                                      *snapshot.best_so_far[-1][1:])]
    with_accuracy = all(point[2] is not None for point in points)
    label = "test accuracy" if with_accuracy else "test cost"
    values = [point[2] if with_accuracy else point[1] for point in points]
    axis = {"title": {"text": label}}
    if with_accuracy:
        axis.update(tickformat=".1%", range=[min(values) - 0.02, min(1.0, max(values) + 0.02)])
    return {"data": [{"type": "scatter", "mode": "lines+markers", "line": {"shape": "hv"},
                      "x": [point[0] for point in points], "y": values, "name": "best so far"}],
            "layout": _layout("Best so far", xaxis={"title": {"text": "seconds since the sweep started"}},
                              yaxis=axis)}


def importance_figure(importances):
    """Optuna's parameter importances as bars (None until it can tell)."""
    if not importances:
        return None
    names = list(importances)[::-1]
    return {"data": [{"type": "bar", "orientation": "h", "x": [importances[n] for n in names], "y": names}],
            "layout": _layout("Parameter importance (Optuna, fANOVA)",
                              xaxis={"title": {"text": "importance"}},
                              height=max(200, 60 + 40 * len(names)))}
