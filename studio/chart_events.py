"""What a live chart (studio/live_plot.py with events=True) sends back, marked in a plain figure
dict: no Streamlit here, so the figure builders stay pure.

- **regions** (`layout.meta.live_plot.regions`: boxes [x0, x1, y0, y1, id] in data coordinates): the
  pointer entering one is the event {"event": "hover", "id": id}, leaving it (or the chart)
  {"event": "unhover", "id": id}, a click or a tap on it {"event": "click", "id": id};
- **clickable points** (a trace with meta.live_plot "click"): a click on point i is
  {"event": "click", "id": ids[i]};
- **editable points** (a trace with meta.live_plot "edit"): a click on point i opens a box at the
  point holding values[i]; a number typed there and Enter is {"event": "edit", "id": ids[i],
  "value": number} (Escape closes the box).

Every event also has "seq", a number that grows, so the same event twice is two changes of the
component's value. Ids are JSON values (lists come back as lists).
"""


def regions(layout: dict, boxes) -> dict:
    """The layout with these regions: (x0, x1, y0, y1, id) boxes in data coordinates."""
    meta = dict(layout.get("meta") or {})
    meta["live_plot"] = {**meta.get("live_plot", {}), "regions": [list(box) for box in boxes]}
    return {**layout, "meta": meta}


def clickable(trace: dict, ids) -> dict:
    """A trace whose points are clicked: a click on point i is the event ("click", ids[i])."""
    return {**trace, "meta": {"live_plot": "click"}, "customdata": [[i] for i in ids]}


def editable(trace: dict, ids, values, label: str) -> dict:
    """A trace whose points hold a number a person may type anew (see the module's docstring)."""
    return {**trace, "meta": {"live_plot": "edit"},
            "customdata": [[i, float(v), label] for i, v in zip(ids, values, strict=True)]}
