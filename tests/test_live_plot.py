"""The live chart component's Python side: the files it serves and the figure JSON it sends (the page
itself is driven in tests/browser)."""

import json

import numpy as np
import plotly
import pytest

from studio import live_plot


def test_the_served_folder_holds_the_page_and_the_installed_plotly_js(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    folder = live_plot.asset_folder()
    assert folder.is_relative_to(tmp_path)
    assert (folder / "index.html").read_bytes() == live_plot.page_html()
    assert (folder / "plotly.min.js").read_bytes() == live_plot.PLOTLY_JS.read_bytes()
    page = live_plot.page_html().decode()
    assert 'fetch("plotly.min.js")' in page and 'script.src = "plotly.min.js"' in page  # next to the page
    # kept in the app's window under its version: a newer plotly on the server is fetched anew
    assert f'"__livePlotPlotlyJs {plotly.__version__}"' in page and "{{" not in page

    # A damaged or stale copy (an interrupted copy, an edited page) is replaced on the next start.
    (folder / "index.html").write_text("old page")
    (folder / "plotly.min.js").write_bytes(b"x" * live_plot.PLOTLY_JS.stat().st_size)
    assert live_plot.asset_folder() == folder
    assert (folder / "index.html").read_bytes() == live_plot.page_html()
    assert (folder / "plotly.min.js").read_bytes() == live_plot.PLOTLY_JS.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "plotly.min.js"]  # no leftovers


def test_figure_json_is_strict_json_with_gaps_as_null_and_the_default_config():
    figure = {"data": [{"type": "scatter", "x": np.arange(3), "y": np.array([0.5, np.nan, np.inf])}],
              "layout": {"height": 300}}
    text = live_plot.figure_json(figure, {"scrollZoom": True})
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"not JSON: {name}"))
    assert parsed["data"][0]["x"] == [0, 1, 2]
    assert parsed["data"][0]["y"] == [0.5, None, None]
    assert parsed["config"] == {"displaylogo": False, "responsive": True, "scrollZoom": True}
    assert "config" not in figure  # the caller's figure is left as it was



def test_a_figure_marks_its_regions_and_its_clickable_and_editable_points_for_events():
    from studio.chart_events import clickable, editable, regions

    layout = regions({"height": 200, "meta": {"mine": 1}}, [(0, 1, 0, 1, ["node", 1, 0]), (2, 3, 0, 1, "b")])
    assert layout["meta"] == {"mine": 1, "live_plot": {"regions": [[0, 1, 0, 1, ["node", 1, 0]],
                                                                     [2, 3, 0, 1, "b"]]}}
    trace = clickable({"type": "scatter", "x": [0, 1]}, ["a", "b"])
    assert trace["meta"] == {"live_plot": "click"} and trace["customdata"] == [["a"], ["b"]]
    trace = editable({"type": "scatter", "x": [0]}, [["weight", 1, 0, 0]], [np.float32(0.5)], "weight")
    assert trace["customdata"] == [[["weight", 1, 0, 0], 0.5, "weight"]]
    assert trace["meta"]["live_plot"] == "edit"
    sent = json.loads(live_plot.figure_json({"data": [trace], "layout": layout}))
    assert sent["data"][0]["customdata"] == trace["customdata"] and sent["layout"]["meta"] == layout["meta"]


def test_the_page_listens_only_when_python_asks_for_events():
    page = live_plot.PAGE.read_text()
    assert "if (message.args.events && !events)" in page  # the Train page's charts send nothing back
    for event in ('"hover"', '"unhover"', '"click"', '"edit"'):
        assert f"event: {event}" in page
    assert "streamlit:setComponentValue" in page


def test_sessions_that_start_together_each_write_the_served_files_safely(tmp_path):
    """A class opening at once: several sessions of one server fill the folder at the same moment."""
    import threading

    content = bytes(range(256)) * 4096  # 1 MB: long enough to write for the threads to overlap
    errors = []
    for round_ in range(10):
        target = tmp_path / f"plotly-{round_}.js"
        start = threading.Barrier(6)

        def fill(target=target, start=start):
            start.wait()
            try:
                live_plot._write_if_changed(content, target)
            except OSError as error:
                errors.append(error)
        threads = [threading.Thread(target=fill) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert target.read_bytes() == content
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"plotly-{n}.js" for n in range(10)]  # no leftovers
