"""Figure builders: plain JSON-able dicts with the right numbers in them."""

import dataclasses
import json

import numpy as np
import plotly.graph_objects as go

from backprop.lr_finder import LRFinderResult
from studio import analysis_figures as figures
from studio.network_checks import LayerCheck
from studio.recorded_runs import RecordedRun


def valid(figure):
    json.dumps(figure)  # plain data only
    go.Figure(figure)  # Plotly accepts every property
    return figure


def test_confusion_matrix_and_figure():
    counts = figures.confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 2, 0], 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    figure = valid(figures.confusion_figure(counts, ["a", "b", "c"]))
    assert figure["data"][0]["z"] == counts.tolist()


def test_most_confident_wrong_orders_by_confidence():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95]])
    y = np.array([1, 1, 0, 0])
    assert figures.most_confident_wrong(proba, y, k=5).tolist() == [3, 0, 2]
    assert figures.most_confident_wrong(proba, y, k=1).tolist() == [3]


def test_activation_figure_bars_or_square_grid():
    bars = valid(figures.activation_figure(np.arange(10) / 10, 1, 2))
    assert bars["data"][0]["type"] == "bar" and len(bars["data"][0]["y"]) == 10
    grid = valid(figures.activation_figure(np.linspace(0, 1, 196), 1, 2))
    assert grid["data"][0]["type"] == "heatmap" and np.shape(grid["data"][0]["z"]) == (14, 14)
    valid(figures.probability_figure(np.array([0.3, 0.7]), ["5", "8"], true_class=1))
    valid(figures.image_figure(np.zeros((28, 28)), "x"))


def test_relative_error_verdicts_and_chart():
    report = [LayerCheck(1, dW_error=1e-9, db_error=0.0, checked=10),
              LayerCheck(2, dW_error=1e-2, db_error=1e-6, checked=4)]
    figure = valid(figures.relative_error_figure(report))
    assert figure["data"][1]["y"][0] == 1e-16  # exact zero drawn at the floor of the log axis
    assert figures.verdict(1e-9) == "excellent"
    assert figures.verdict(1e-6).startswith("fine")
    assert figures.verdict(1e-2).startswith("suspect")


def test_run_overlays_and_parallel_coordinates():
    runs = [RecordedRun(id=i, name=f"r{i}", status="finished", source="app",
                        metrics={"test_accuracy": 0.5 + i / 10} if i else {}, last_iteration=1,
                        last_test_accuracy=0.4 if i == 0 else None, checkpoint_path=None,
                        config={"layers": [8, 1], "learning_rate": 10.0 ** -i, "activation": "relu",
                                "optimizer": "adam" if i else "sgd", "init": "he", "batch_size": None,
                                "l2": 0})
            for i in range(3)]
    history = [{"iteration": 0, "cost": 0.7, "test_accuracy": None},
               {"iteration": 1, "cost": 0.6, "test_accuracy": 0.8}]
    figure = valid(figures.run_curves_figure([(runs[0], history)], "test_accuracy", "t"))
    assert figure["data"][0]["x"] == [1] and figure["data"][0]["name"] == "#0 r0"
    parallel = valid(figures.parallel_coordinates_figure(runs))
    dimensions = {d["label"]: d for d in parallel["data"][0]["dimensions"]}
    assert dimensions["test accuracy"]["values"] == [0.4, 0.6, 0.7]
    assert dimensions["optimizer"]["ticktext"] == ["adam", "sgd"]
    assert dimensions["log10 learning rate"]["values"] == [0.0, -1.0, -2.0]
    assert figures.parallel_coordinates_figure([dataclasses.replace(runs[1], metrics={})]) is None


def test_lr_finder_and_data_figures():
    result = LRFinderResult([1e-3, 1e-2, 1e-1], [0.7, 0.5, 0.9], [0.7, 0.6, 0.7], 1e-3, None, 1e-2, "x")
    valid(figures.lr_finder_figure(result))
    valid(figures.class_counts_figure(["a", "b"], [3, 4], [1, 2]))
    grid = figures.mosaic(np.ones((5, 2, 3)), columns=2)
    assert grid.shape == (3 * 3 - 1, 2 * 4 - 1)
    assert np.isnan(grid[2, 0]) and np.isnan(grid[-1, -1]) and grid[0, 0] == 1
    figure = valid(figures.mosaic_figure(np.ones((4, 2, 2)), 2, "t", column_labels=["a", "b"],
                                         row_labels=["x", "y"]))
    assert figure["layout"]["xaxis"]["ticktext"] == ["a", "b"]


HOSTILE = '<a href="https://evil.example/">click</a><img src=x onerror=alert(1)>'


def strings(value):
    """Every text in a figure dict (names, titles, tick labels, hover templates)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings(item)


def test_a_name_a_person_typed_never_reaches_plotly_as_html():
    """Plotly renders <a href>, <b>, <span style> ... in legends, titles, ticks and hover text: a run
    renamed to a link must show as typed, escaped once by plotly_text in every builder."""
    from backprop.landscape import Landscape
    from studio.figures import plotly_text

    run = RecordedRun(id=7, name=HOSTILE, status="finished", source="app", metrics={"test_accuracy": 0.9},
                      last_iteration=1, last_test_accuracy=0.9, checkpoint_path=None,
                      config={"layers": [8, 1], "learning_rate": 0.1, "activation": HOSTILE,
                              "optimizer": "sgd", "init": "he"})
    history = [{"iteration": 0, "cost": 0.7, "test_accuracy": 0.5}]
    landscape = Landscape("random", 3, np.arange(3.0), np.arange(3.0), np.ones((3, 3)), 1.0, 10, 0.1, True)
    path = np.zeros((3, 2))
    built = [figures.run_curves_figure([(run, history)], "cost", "t"),
             figures.parallel_coordinates_figure([run]),
             figures.landscape_figure(landscape, run_label=run.title),
             figures.path_figure(run.title, np.arange(3), path, np.ones(3)),
             figures.confusion_figure(np.eye(2, dtype=int), [HOSTILE, "b"]),
             figures.probability_figure(np.array([0.5, 0.5]), [HOSTILE, "b"]),
             figures.class_counts_figure([HOSTILE, "b"], [1, 2], [1, 2]),
             figures.mosaic_figure(np.ones((2, 2, 2)), 2, "t", column_labels=[(HOSTILE, "x"), "y"],
                                   row_labels=[HOSTILE])]
    for figure in built:
        texts = list(strings(valid(figure)))
        assert not any("<a " in text or "<img" in text for text in texts), texts
    assert figures.run_curves_figure([(run, history)], "cost", "t")["data"][0]["name"] == \
        plotly_text(f"#7 {HOSTILE}"[:50])
    assert plotly_text(HOSTILE).startswith("&lt;a href=&quot;")
    assert plotly_text("a&b<", limit=2) == "a&amp;"  # cut first: never half an entity
    two_lines = figures.mosaic_figure(np.ones((1, 2, 2)), 1, "t", column_labels=[("a<b", "c")])
    assert two_lines["layout"]["xaxis"]["ticktext"] == ["a&lt;b<br>c"]  # our line break stays one
