"""The Train page (and every page of the app) through Streamlit's AppTest, without a browser."""

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from studio.session import active_training_threads

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = sorted(p.name for p in (Path(APP).parent / "pages").glob("*.py"))


def open_app(**query):
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"subset": "300", **query}.items():
        at.query_params[key] = value
    return at.run()


def button(at, label):
    return next(b for b in at.button if b.label == label)


def status(at):
    return next(m.value for m in at.markdown if "iteration" in m.value)


def live_charts(at):
    """The live charts (studio.live_plot components) by key: {key: Plotly figure}."""
    charts = {}
    for element in at.get("component_instance"):
        if element.proto.component_name.endswith("live_plot"):
            key = element.proto.id.rsplit("-", 1)[1]
            charts[key] = json.loads(json.loads(element.proto.json_args)["spec"])
    return charts


def no_errors(at):
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(autouse=True)
def _stop_threads():
    # AppTests in one process share the session cache: each test starts from a fresh Studio, whatever
    # the tests before it (here or in another module) left (clearing it releases the Studio).
    st.cache_resource.clear()
    yield
    # Every test must leave no training thread behind (AppTest sessions are not released).
    assert active_training_threads() == 0


def test_train_page_renders_with_all_controls():
    at = open_app()
    no_errors(at)
    labels = [b.label for b in at.button]
    for label in ("Train", "Pause", "Step", "Step ×10", "Reset"):
        assert label in labels
    assert "iteration 0" in status(at)
    assert at.text_input(key="setup_hidden").value == "196"


def test_a_released_session_comes_back_to_its_own_studio_and_no_other_session_does():
    # Clearing the session cache is what a dropped websocket does to a session: its Studio is parked
    # (studio.session.Parking). The same session, run again, takes it back; a new session whose id
    # is the same (AppTest gives every test one id) starts afresh.
    at = open_app()
    button(at, "Step ×10").click().run()
    assert "iteration 10 ·" in status(at)
    st.cache_resource.clear()
    at.run()
    no_errors(at)
    assert "iteration 10 ·" in status(at)
    st.cache_resource.clear()
    other = open_app()
    no_errors(other)
    assert "iteration 0" in status(other)


def test_step_step10_and_reset_count_exactly():
    at = open_app()
    button(at, "Step").click().run()
    no_errors(at)
    assert "iteration 1 ·" in status(at)
    button(at, "Step ×10").click().run()
    assert "iteration 11 ·" in status(at)
    charts = live_charts(at)
    assert set(charts) == {"cost_chart", "gradient_chart", "ratio_chart", "unit_health_chart",
                           "sharpness_chart"}
    assert len(charts["cost_chart"]["data"][0]["x"]) == 11
    assert len(at.get("plotly_chart")) == 1  # the heatmap, interactive while paused
    button(at, "Reset").click().run()
    no_errors(at)
    assert "iteration 0 ·" in status(at)


def test_bad_values_show_a_message_and_keep_the_run():
    at = open_app()
    button(at, "Step").click().run()
    at.text_input(key="setup_hidden").input("64,abc").run()
    no_errors(at)
    errors = [e.value for e in at.sidebar.error]
    assert errors and "hidden layers" in errors[0] and "'abc'" in errors[0]
    at.text_input(key="setup_batch_size").set_value("64,abc")
    at.text_input(key="setup_hidden").input("64").run()
    assert any("batch_size" in e.value for e in at.sidebar.error)
    at.text_input(key="setup_batch_size").input("full").run()
    at.text_input(key="setup_l2").input("-1").run()
    assert any("l2" in e.value for e in at.sidebar.error)
    at.text_input(key="setup_l2").input("0").run()
    button(at, "Step").click().run()
    no_errors(at)
    assert "iteration 2 ·" in status(at)  # the run survived every bad value


def test_architecture_change_waits_for_reset_and_lr_applies_live():
    at = open_app()
    button(at, "Step").click().run()
    at.select_slider(key="setup_learning_rate").set_value(0.5).run()
    button(at, "Step").click().run()
    no_errors(at)
    at.text_input(key="setup_hidden").input("32,16").run()
    assert any("press **Reset**" in i.value for i in at.info)
    assert at.query_params["layers"] == "32,16,1"
    assert at.query_params["learning_rate"] == "0.5"
    button(at, "Reset").click().run()
    no_errors(at)
    assert not any("press **Reset**" in i.value for i in at.info)
    assert "iteration 0" in status(at)


def test_add_and_remove_layer_buttons_edit_the_hidden_sizes():
    at = open_app()
    button(at, "Add layer").click().run()
    assert at.text_input(key="setup_hidden").value == "196,98"
    button(at, "Remove layer").click().run()
    button(at, "Remove layer").click().run()
    assert at.text_input(key="setup_hidden").value == ""
    no_errors(at)


def test_a_link_opens_the_same_setup_and_the_demo_view():
    at = open_app(layers="392,196,98,1", learning_rate="0.5", demo="1")
    no_errors(at)
    assert at.toggle(key="demo").value is True
    assert not at.sidebar.text_input  # set-up hidden in the demo view
    at.toggle(key="demo").set_value(False).run()
    assert at.text_input(key="setup_hidden").value == "392,196,98"
    assert at.select_slider(key="setup_learning_rate").value == 0.5


def test_the_view_settings_survive_a_visit_to_another_page():
    # Streamlit drops a widget's value on a run that does not draw it: a presenter who looks at the
    # Math page and comes back must still be in the demo view, with the same chart options.
    # The demo view (projector mode) hides the chart options: they are chosen before it.
    at = open_app(layers="392,196,98,1")
    at.toggle(key="log_y").set_value(True).run()
    at.selectbox(key="heatmap_layer").set_value("W3").run()
    at.toggle(key="demo").set_value(True).run()
    at.switch_page("pages/math.py").run()
    no_errors(at)
    at.switch_page("pages/train.py").run()
    no_errors(at)
    assert at.toggle(key="demo").value is True and not at.sidebar.text_input
    at.toggle(key="demo").set_value(False).run()
    assert at.toggle(key="log_y").value is True
    assert at.selectbox(key="heatmap_layer").value == "W3"
    at.text_input(key="setup_hidden").input("64").run()
    button(at, "Reset").click().run()  # a network without a third layer: back to W1, no error
    no_errors(at)
    assert at.selectbox(key="heatmap_layer").value == "W1"


def test_a_bad_link_value_is_named_and_ignored():
    at = open_app(learning_rate="fast")
    no_errors(at)
    assert any("learning_rate" in w.value for w in at.warning)


def test_presets_fill_the_widgets():
    at = open_app()
    at.selectbox(key="setup_preset").set_value("mnist10").run()
    no_errors(at)
    assert at.text_input(key="setup_digits").value == "all"
    assert at.text_input(key="setup_hidden").value == "256,128"
    assert at.selectbox(key="setup_optimizer").value == "adam"


def test_every_page_renders_and_the_network_survives_page_switches():
    at = open_app()
    button(at, "Step").click().run()
    for page in PAGES:
        at.switch_page(f"pages/{page}").run()
        no_errors(at)
    at.switch_page("pages/train.py").run()
    assert "iteration 1 ·" in status(at)


def test_link_warnings_stay_until_dismissed():
    at = open_app(learning_rate="fast")
    button(at, "Step").click().run()
    assert any("learning_rate" in w.value for w in at.warning)  # still there after a click
    button(at, "Dismiss").click().run()
    assert not any("Ignored from the link" in w.value for w in at.warning)


def test_own_data_without_an_upload_errors_inline_and_keeps_the_run():
    at = open_app()
    button(at, "Reset").click().run()  # AppTests share one Studio: start from iteration 0
    button(at, "Step").click().run()
    at.selectbox(key="setup_dataset").set_value("npz").run()
    no_errors(at)
    # no path can be typed in the browser: own data is chosen among the uploads, by id
    assert not [w for w in at.sidebar.text_input if w.key == "setup_data_path"]
    assert any("upload" in e.value and "Data page" in e.value for e in at.sidebar.error)
    button(at, "Step").click().run()
    assert "iteration 2 ·" in status(at)


def test_the_learning_rate_schedule_applies_at_the_next_step():
    at = open_app()
    button(at, "Reset").click().run()
    button(at, "Step").click().run()
    at.selectbox(key="setup_lr_schedule").set_value("cosine").run()
    no_errors(at)
    assert at.query_params["lr_schedule"] == "cosine"
    assert not any("press **Reset**" in i.value for i in at.info)  # applies at the next step


def test_only_a_link_with_set_up_fields_replaces_the_set_up():
    """A bare link (e.g. the menu's Train entry after the Data page proposed an upload) must not
    overwrite a set-up proposed on another page; a shared link with fields does."""
    from studio.url_state import describes_setup

    assert not describes_setup({}) and not describes_setup({"demo": "1"})
    assert describes_setup({"layers": "64,1"}) and describes_setup({"dataset": "npz"})


def test_histograms_are_drawn_only_while_their_expander_is_open():
    # Charts in a closed expander are still drawn by the browser (and recomputed here) every
    # refresh: the histograms cost nothing until a person opens them.
    at = open_app()
    button(at, "Step").click().run()
    assert "histograms" in at.expander[0].label and at.session_state["histograms_open"] is False
    assert set(live_charts(at)) == {"cost_chart", "gradient_chart", "ratio_chart", "unit_health_chart",
                                    "sharpness_chart"}
    at.session_state["histograms_open"] = True
    at.run()
    no_errors(at)
    charts = live_charts(at)
    assert set(charts) == {"cost_chart", "gradient_chart", "ratio_chart", "unit_health_chart",
                           "sharpness_chart", "weight_histogram", "gradient_histogram"}
    assert charts["weight_histogram"]["layout"]["title"]["text"] == "W1: now vs at init"
    button(at, "Reset").click().run()


def test_an_upload_chosen_in_the_sidebar_sets_the_output_layer_from_its_record():
    import io

    import numpy as np

    from studio import data_files

    buffer = io.BytesIO()
    np.savez(buffer, x=np.random.RandomState(2).rand(60, 16), y=np.arange(60) % 3)
    upload = data_files.save_upload([("three.npz", buffer.getvalue())], "three classes")
    at = open_app()
    at.session_state[data_files.KNOWN_UPLOADS] = [upload.id]  # this session made it (the Data page)
    at.selectbox(key="setup_dataset").set_value("npz").run()
    at.text_input(key="setup_digits").input("all").run()
    at.selectbox(key="setup_upload").set_value(upload.id).run()
    at.text_input(key="setup_subset").input("").run()  # every one of its 51 training images
    no_errors(at)
    assert not at.sidebar.error, [e.value for e in at.sidebar.error]
    assert any("Output layer: 3 units (softmax)" in c.value for c in at.sidebar.caption)
    assert at.query_params["upload"] == upload.id and "data_path" not in at.query_params
    button(at, "Reset").click().run()  # trains on the upload's files, found by its id
    button(at, "Step").click().run()
    no_errors(at)
    assert not at.error, [e.value for e in at.error]
    assert "iteration 1 ·" in status(at)
