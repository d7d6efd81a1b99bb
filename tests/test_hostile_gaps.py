"""What issue 11 found untested: the default cap of 4 training threads (and what a refused Train
leaves in the run store), the dW toggle, a link's refused values shown as typed (no live Markdown),
a null byte in the data path. AppTest and the Studio directly; the browser parts are in
tests/browser/test_hostile.py."""

import base64
import json
import re

import numpy as np
import pytest

from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.runs import RunStore
from studio.session import Studio, active_training_threads
from tests.test_app_train import _stop_threads, button, no_errors, open_app  # noqa: F401 (autouse fixture)


def small(**changes):
    return TrainConfig(**{"subset": 300, "layers": [16, 1], "iterations": 100_000, **changes}).validated()


def test_the_default_cap_is_4_training_threads_and_a_refused_train_leaves_no_run(tmp_path, monkeypatch):
    monkeypatch.delenv("BACKPROP_MAX_TRAINING_THREADS", raising=False)
    store = RunStore(tmp_path / "runs.sqlite")
    studios = [Studio(small(seed=seed), store=store) for seed in range(1, 6)]
    try:
        for studio in studios[:4]:
            studio.train()
        assert active_training_threads() == 4
        with pytest.raises(InputError) as error:
            studios[4].train()
        assert error.value.field == "training" and "4" in error.value.message
        assert not studios[4].running
        statuses = [run["status"] for run in store.list_runs()]
        assert statuses.count("running") == 4 and len(statuses) == 4, statuses  # no empty "running" run
    finally:
        for studio in studios:
            studio.release()


def heatmap(at):
    """(caption, z values) of the paused weights view."""
    caption = next(c.value for c in at.caption if re.match(r"\*\*d?W\d", c.value))
    chart = next(c for c in at.get("plotly_chart") if "weights_heatmap" in c.proto.id)
    z = json.loads(chart.proto.spec)["data"][0]["z"]
    if isinstance(z, dict):  # plotly's typed array: {"dtype": "f8", "bdata": base64, "shape": "r, c"}
        values = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])
        return caption, values.reshape([int(n) for n in str(z.get("shape", len(values))).split(",")])
    return caption, np.array(z, dtype=float)


def test_the_dw_toggle_shows_the_gradient_on_the_same_view():
    at = open_app()
    button(at, "Step ×10").click().run()
    no_errors(at)
    caption, W = heatmap(at)
    assert caption.startswith("**W1**")
    at.toggle(key="show_dW").set_value(True).run()
    no_errors(at)
    caption, dW = heatmap(at)
    assert caption.startswith("**dW1**") and dW.shape == W.shape
    # the tiles (NaN between them) now show the gradients, much smaller than the weights
    assert not np.allclose(dW, W, equal_nan=True) and 0 < np.nanmax(np.abs(dW)) < np.nanmax(np.abs(W))
    at.toggle(key="show_dW").set_value(False).run()
    assert heatmap(at)[0].startswith("**W1**")


def test_markdown_in_a_refused_link_value_is_shown_as_typed():
    at = open_app(layers="[click](http://evil.example)", activation="![x](http://evil.example/x.png)")
    no_errors(at)
    warnings = " ".join(w.value for w in at.warning)
    assert "evil" in warnings
    assert "](http" not in warnings  # escaped: no live link or image
    assert "http://" not in warnings


def test_a_null_byte_or_a_path_in_a_link_is_a_message():
    for query in ({"dataset": "npz", "upload": "/tmp/a\x00b.npz"}, {"dataset": "npz", "upload": "../../etc"},
                  {"dataset": "npz", "data_path": "/etc/passwd"}):
        at = open_app(**query)
        no_errors(at)
        shown = " ".join(w.value for w in at.warning)
        field = "upload" if "upload" in query else "data_path"
        assert f"Ignored from the link: {field}" in shown.replace("\\", ""), shown
    # a typed path in the browser: there is no widget for one
    at = open_app()
    at.selectbox(key="setup_dataset").set_value("npz").run()
    no_errors(at)
    assert not [w for w in at.sidebar.text_input if w.key == "setup_data_path"]
