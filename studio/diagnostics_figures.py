"""The Train page's diagnostics as plain Plotly dicts and lines of text, tested without a browser:
the sharpness against the optimizer's stability limit over time, and the readings of the last
λ_max and gradient noise scale. Inputs are a RunView's `diagnostics` (backprop.diagnostics)."""

from __future__ import annotations

import math

import numpy as np

from .figures import _empty_state, _layout, _mode

ABOVE = "#d62728"  # a measurement above its limit
BELOW = "#1f77b4"
LIMIT = "#7f7f7f"


def sharpness_figure(diagnostics, height=300, every=None):
    """λ_max (Adam: its preconditioned λ_max) at each measurement, red where it is above the
    optimizer's stability limit, and the limit itself (2/η, (2+2β)/η, Adam's), a dashed step line
    that follows a learning-rate change, on a log scale (both can span decades)."""
    points = diagnostics.sharpness if diagnostics is not None else ()
    x = np.array([p.iteration for p in points], dtype=np.int64)
    values = np.array([p.stability.value for p in points], dtype=np.float64)
    limits = np.array([p.stability.limit for p in points], dtype=np.float64)
    measure = points[-1].stability.measure if points else "λ_max"
    formula = points[-1].stability.formula if points else "2/η"
    above = values > limits
    traces = [
        {"type": "scatter", "mode": _mode(len(x)), "name": measure, "x": x,
         "y": np.where(values > 0, values, np.nan), "line": {"color": BELOW, "width": 2},
         "marker": {"color": [ABOVE if a else BELOW for a in above], "size": 7}},
        {"type": "scatter", "mode": "lines", "name": f"stability limit {formula}", "x": x, "y": limits,
         "line": {"color": LIMIT, "dash": "dash", "shape": "hv"}},
    ]
    layout = _layout("sharpness", height, title={"text": f"Sharpness {measure} against the limit {formula}"},
                     xaxis={"title": {"text": "iteration"}},
                     yaxis={"title": {"text": measure}, "type": "log", "exponentformat": "power"})
    if not len(x):
        layout = _empty_state(layout, 0, [-1, 2])
        layout["annotations"][-1]["text"] = ("Sharpness tracking is off" if every is None else
                                             f"λ_max is measured every {every} steps while training")
    return {"data": traces, "layout": layout}


def sharpness_text(diagnostics):
    """The last measurement's reading, e.g. "λ_max 52.1 > 2/η = 20.0: ... (iteration 40)", or None."""
    if diagnostics is None or not diagnostics.sharpness:
        return None
    point = diagnostics.sharpness[-1]
    return f"{point.stability.reading} (iteration {point.iteration})"


def noise_text(diagnostics):
    """The last gradient noise scale, next to the batch size: "critical batch ≈ 900; yours: 10 — ...
    (B_simple at iteration 400)", or None."""
    if diagnostics is None or not diagnostics.noise:
        return None
    point = diagnostics.noise[-1]
    b = point.noise.b_simple
    value = "∞" if not math.isfinite(b) else f"{b:,.0f}" if abs(b) >= 100 else f"{b:.2g}"
    return f"{point.noise.reading} (B_simple {value} at iteration {point.iteration})"
