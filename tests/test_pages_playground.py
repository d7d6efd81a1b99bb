"""The Playground page (AppTest): its default, a link's set-up, the + / − buttons, features,
live settings, Regenerate (the same network), Step epoch, the losses per epoch, speed, the note on
linear models, and classroom links: any control hidden, no text, lessons, the link builder."""

import math
import time
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from backprop.config import TrainConfig
from backprop.paths import PROJECT_ROOT
from backprop.profiles import PLAYGROUND
from backprop.runs import RunStore
from studio import session
from studio.lessons import LESSONS, lesson_link


@pytest.fixture
def studio(monkeypatch):
    """The page's Studio (its own, "playground"), released after the test."""
    studio = session.Studio(store=RunStore())
    monkeypatch.setattr(session, "_cached_studio", lambda name="train": studio)
    yield studio
    studio.release()


def run(at=None, **query):
    if at is None:
        at = AppTest.from_file(str(PROJECT_ROOT / "pages/playground.py"), default_timeout=60)
        for name, value in query.items():
            at.query_params[name] = value
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def by_key(widgets, key):
    (widget,) = [w for w in widgets if w.key == key]
    return widget


def test_opens_on_the_circle_with_an_untrained_network_built(studio):
    at = run()
    assert studio.config.dataset == "circle" and studio.trainer is not None
    assert studio.trainer.network.sizes == [2, 4, 2, 1] and studio.trainer.network.activation == "tanh"
    assert by_key(at.selectbox, "pg_dataset").value == "circle"
    assert any("iteration 0" in m.value for m in at.markdown)
    by_key(at.button, "pg_step").click()
    run(at.run())
    assert studio.trainer.iteration == 1


def test_a_link_sets_data_features_network_and_seed(studio):
    at = run(dataset="spiral", digits="0,1", layers="8,8,1", activation="tanh", features="x1,x2,sinx1",
             noise="10", seed="7")
    assert by_key(at.selectbox, "pg_dataset").value == "spiral"
    assert by_key(at.checkbox, "pg_feature_sinx1").value and not by_key(at.checkbox, "pg_feature_x1sq").value
    assert studio.config.layers == [8, 8, 1] and studio.config.seed == 7 and studio.config.noise == 10
    assert studio.trainer.network.sizes[1:] == [8, 8, 1]


def test_plus_and_minus_change_layers_within_the_limits(studio):
    """A layer's units change in the graph (its − and +: tests/browser/test_playground.py and
    tests/test_playground_figures.py); the layers' own + and − are buttons."""
    at = run()
    by_key(at.button, "pg_add_layer").click()
    at = run(at.run())
    assert studio.trainer.network.sizes == [2, 4, 2, 2, 1]
    for _ in range(3):
        by_key(at.button, "pg_remove_layer").click()
        at = run(at.run())
    assert studio.trainer.network.sizes == [2, 1] and by_key(at.button, "pg_remove_layer").disabled


def test_features_set_the_input_size_and_none_is_refused(studio):
    at = run()
    by_key(at.checkbox, "pg_feature_x1x2").check()
    at = run(at.run())
    assert studio.config.features == ("x1", "x2", "x1x2")
    assert studio.trainer.network.sizes[0] == 3 and studio.data.features == ("x1", "x2", "x1x2")
    for name in ("x1", "x2", "x1x2"):
        by_key(at.checkbox, f"pg_feature_{name}").uncheck()
        at = run(at.run())
    assert any("features" in e.value for e in at.error)
    assert studio.config.features == ("x1x2",)  # the last accepted set-up is kept


def test_data_settings_draw_new_points_and_regression_trains_a_linear_output(studio):
    at = run()
    by_key(at.number_input, "pg_points").set_value(200)
    at = run(at.run())
    by_key(at.slider, "pg_train_share").set_value(70)
    at = run(at.run())
    assert len(studio.data.y_train) == 140 and len(studio.data.y_test) == 60
    by_key(at.selectbox, "pg_problem").set_value("Regression")
    at = run(at.run())
    assert studio.config.dataset == "plane" and studio.trainer.network.output == "linear"
    by_key(at.button, "pg_step").click()
    run(at.run())
    assert studio.trainer.iteration == 1 and studio.data.regression


def test_learning_rate_applies_at_the_next_step_without_a_new_network(studio):
    at = run()
    by_key(at.button, "pg_step").click()
    at = run(at.run())
    trainer = studio.trainer
    by_key(at.select_slider, "pg_learning_rate").set_value(0.3)
    at = run(at.run())
    assert studio.trainer is trainer and trainer.optimizer.learning_rate == 0.3 and trainer.iteration == 1


def test_regenerate_draws_new_points_for_the_same_network_and_the_speed_control_paces_training(studio):
    """TensorFlow Playground's Regenerate keeps the network: new points, the same weights, the same
    iteration (it used to build a fresh network)."""
    at = run()
    by_key(at.button, "pg_step").click()
    at = run(at.run())
    before = studio.data.plane_train.copy()
    params = [(W.copy(), b.copy()) for W, b in studio.trainer.network.params]
    by_key(at.button, "pg_regenerate").click()
    at = run(at.run())
    assert studio.config.seed == 2 and not (studio.data.plane_train == before).all()
    assert studio.trainer.iteration == 1 and by_key(at.number_input, "pg_seed").value == 2
    assert all(np.array_equal(W, W0) and np.array_equal(b, b0)
               for (W, b), (W0, b0) in zip(studio.trainer.network.params, params, strict=True))
    assert any("keeps its weights" in i.value for i in at.info)
    assert dict(at.query_params) == {"seed": "2"}
    by_key(at.select_slider, "pg_speed").set_value(50)
    run(at.run())
    assert studio.steps_per_second == 50


def test_xor_without_a_hidden_layer_says_why_it_cannot_learn(studio):
    at = run(dataset="xor", digits="0,1", layers="1")
    assert any("no straight line separates" in i.value for i in at.info)
    by_key(at.button, "pg_add_layer").click()
    at = run(at.run())
    assert not any("straight line" in i.value for i in at.info)


def test_a_train_page_link_is_refused_with_a_message(studio):
    at = run(dataset="mnist", digits="5,8", layers="196,1")
    assert studio.config.dataset == "circle"
    assert any("2D data sets" in w.value for w in at.warning)


def test_a_link_naming_a_data_set_opens_it_on_the_playgrounds_set_up_and_trains(studio):
    """The issue's `/playground?dataset=spiral`: the spiral with the Playground's defaults (not the
    Train page's: digits 5,8, 196 units, lr 0.1, full batches, a 1,000-step budget)."""
    at = run(dataset="spiral")
    assert not at.error and not at.warning, [e.value for e in [*at.error, *at.warning]]
    config = studio.config
    assert (config.dataset, config.layers, config.learning_rate, config.batch_size, config.activation) == (
        "spiral", [4, 2, 1], 0.03, 10, "tanh")
    assert config.init == "xavier" and config.points == 500 and config.iterations == 10**7
    assert studio.trainer.network.sizes == [2, 4, 2, 1]
    assert by_key(at.selectbox, "pg_dataset").value == "spiral"
    assert by_key(at.number_input, "pg_batch_size").value == 10
    assert by_key(at.select_slider, "pg_learning_rate").value == 0.03
    assert by_key(at.selectbox, "pg_activation").value == "tanh"
    assert dict(at.query_params) == {"dataset": "spiral"}  # only what differs from the Playground's defaults
    by_key(at.button, "pg_step").click()
    at = run(at.run())
    assert studio.trainer.iteration == 1 and math.isfinite(studio.view().costs[-1])
    by_key(at.button, "pg_train").click()
    run(at.run())
    try:
        deadline = time.monotonic() + 60
        while studio.trainer.iteration <= 1100 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert studio.trainer.iteration > 1100 and studio.running  # no 1,000-step budget
    finally:
        studio.pause()
    assert math.isfinite(studio.view().costs[-1])


def test_a_tensorflow_playground_key_is_named_in_a_warning(studio):
    at = run(networkShape="4,2")
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("Ignored from the link: networkShape: not a setting of this page")
    assert "layers" in warning and studio.config == PLAYGROUND.default_config()


def test_a_link_past_the_playgrounds_limits_is_refused_naming_layers(studio):
    """Issue 21: `layers=1024,1024,1` took the server from 497 to 2,461 MB."""
    at = run(layers="1024,1024,1", dataset="moons")
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("Ignored from the link: layers:") and "at most 8 units" in warning
    assert studio.config.dataset == "moons" and studio.trainer.network.sizes == [2, 4, 2, 1]


def test_a_regression_data_set_gets_1200_points_by_default(studio):
    at = run(dataset="plane")
    assert len(studio.data.y_train) + len(studio.data.y_test) == 1200 and studio.config.digits is None
    assert dict(at.query_params) == {"dataset": "plane"}
    at = run()  # the page's own problem type switch: the points follow the data set
    by_key(at.selectbox, "pg_problem").set_value("Regression")
    at = run(at.run())
    assert studio.config.dataset == "plane" and studio.config.points == 1200
    assert by_key(at.number_input, "pg_points").value == 1200
    by_key(at.selectbox, "pg_problem").set_value("Classification")
    at = run(at.run())
    assert (studio.config.dataset, studio.config.points, studio.config.digits) == ("circle", 500, (0, 1))


def test_regularisation_is_one_penalty_at_a_time(studio):
    at = run(l1="0.01", l2="0.03")
    assert studio.config.l1 == 0.01 and studio.config.l2 == 0.0
    assert any(w.value.startswith("Ignored from the link: l2:") for w in at.warning)
    assert by_key(at.selectbox, "pg_regularisation").value == "L1"
    assert by_key(at.selectbox, "pg_penalty").value == 0.01
    by_key(at.selectbox, "pg_regularisation").set_value("L2")
    run(at.run())
    assert (studio.config.l1, studio.config.l2) == (0.0, 0.01)


@pytest.fixture(scope="module")
def spiral_on_the_train_page():
    config = TrainConfig(dataset="spiral", digits=(0, 1), layers=[8, 8, 1], activation="tanh", batch_size=10,
                         learning_rate=0.03, iterations=200, eval_every=50).validated()
    studio = session.Studio(config=config, store=RunStore())
    studio.build()
    studio.step(100)
    studio.release()
    return studio


@pytest.mark.parametrize("path", ["pages/train.py", "pages/inspect.py", "pages/math.py", "pages/gradients.py",
                                  "pages/compare.py", "pages/data.py"])
def test_the_other_pages_take_a_2d_task(path, spiral_on_the_train_page, monkeypatch):
    monkeypatch.setattr(session, "_cached_studio", lambda name="train": spiral_on_the_train_page)
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for button in at.button:
        if button.label == "Run gradient check":
            button.click()
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            shown = [element.value for kind in (at.markdown, at.caption, at.success, at.info)
                     for element in kind]
            assert any("Checked at iteration" in text for text in shown), shown


def texts(at):
    return [element.value for kind in (at.markdown, at.caption, at.info, at.warning) for element in kind]


def chart(at, uirevision):
    """The figure JSON a live chart was drawn with (its component's arguments)."""
    for element in at.get("component_instance"):
        if f'\\"uirevision\\":\\"{uirevision}\\"' in element.proto.json_args:
            return element.proto.json_args
    raise AssertionError(f"no live chart {uirevision}")


def test_step_epoch_and_the_losses_per_epoch_in_tensorflow_playgrounds_words(studio):
    at = run()
    assert any(t.startswith("**Test loss 0.6") and "Training loss 0.6" in t for t in texts(at))
    by_key(at.button, "pg_step_epoch").click()
    at = run(at.run())
    assert studio.trainer.iteration == 25 and studio.trainer.epoch == 1.0  # 250 points, batches of 10
    by_key(at.button, "pg_step").click()
    at = run(at.run())
    by_key(at.button, "pg_step_epoch").click()  # to the end of the epoch: 24 steps
    at = run(at.run())
    assert studio.trainer.iteration == 50
    trainer = studio.trainer
    train = trainer.network.evaluate(trainer.x_train, trainer.y_train)[0]
    test = trainer.network.evaluate(trainer.x_test, trainer.y_test)[0]
    assert f"**Test loss {test:.3f}**  \nTraining loss {train:.3f}" in texts(at)
    assert trainer.epoch_observer.rows[-1][:2] == (50, 2.0) and len(trainer.epoch_observer.rows) == 3
    loss = chart(at, "playground-loss")
    assert "training loss" in loss and "test loss" in loss


def test_a_new_hidden_layer_has_two_units(studio):
    at = run(layers="8,8,1")
    by_key(at.button, "pg_add_layer").click()
    run(at.run())
    assert studio.trainer.network.sizes == [2, 8, 8, 2, 1]


# Each control a link may hide, and how to find it on the page.
CONTROLS = {
    "train": ("button", "pg_train"), "step": ("button", "pg_step"), "step_epoch": ("button", "pg_step_epoch"),
    "reset": ("button", "pg_reset"), "learning_rate": ("select_slider", "pg_learning_rate"),
    "activation": ("selectbox", "pg_activation"), "regularisation": ("selectbox", "pg_regularisation"),
    "regularisation_rate": ("selectbox", "pg_penalty"), "problem": ("selectbox", "pg_problem"),
    "batch_size": ("number_input", "pg_batch_size"), "speed": ("select_slider", "pg_speed"),
    "dataset": ("selectbox", "pg_dataset"), "train_share": ("slider", "pg_train_share"),
    "noise": ("slider", "pg_noise"), "points": ("number_input", "pg_points"),
    "seed": ("number_input", "pg_seed"),
    "regenerate": ("button", "pg_regenerate"), "features": ("checkbox", "pg_feature_x1"),
    "layers": ("button", "pg_add_layer"), "show_test": ("toggle", "pg_show_test"),
    "discretize": ("toggle", "pg_discretize"),
}


def present(at, control):
    kind, key = CONTROLS[control]
    return any(widget.key == key for widget in getattr(at, kind))


def test_every_control_shows_and_a_link_can_hide_each_one(studio):
    assert set(CONTROLS) | {"edit", "builder"} == set(PLAYGROUND.hidable)
    at = run()
    assert all(present(at, control) for control in CONTROLS)
    assert [e.label for e in at.expander] == ["Lessons and classroom links"]
    assert '\\"live_plot\\":\\"edit\\"' in chart(at, "playground-network")
    for control in CONTROLS:
        at = run(**{f"{control}_hide": "1"})
        assert not present(at, control), control
        assert all(present(at, other) for other in CONTROLS if other != control), control
        assert not at.expander, control  # a link that hides a control hides the link builder too
        assert dict(at.query_params) == {f"{control}_hide": "1"}  # the link keeps saying so
    at = run(edit_hide="1")
    assert '\\"live_plot\\":\\"edit\\"' not in chart(at, "playground-network")
    assert "type a new value" not in " ".join(texts(at))


def test_a_hidden_controls_setting_still_applies_and_survives_other_changes(studio):
    at = run(learning_rate="0.3", learning_rate_hide="1", features="x1,x2,x1x2", features_hide="1",
             noise="20", noise_hide="1")
    assert (studio.config.learning_rate, studio.config.features, studio.config.noise) == (
        0.3, ("x1", "x2", "x1x2"), 20)
    by_key(at.selectbox, "pg_activation").set_value("relu")  # read_widgets: the hidden ones kept
    at = run(at.run())
    by_key(at.button, "pg_step").click()
    at = run(at.run())
    config = studio.config
    assert (config.activation, config.learning_rate, config.features, config.noise) == (
        "relu", 0.3, ("x1", "x2", "x1x2"), 20)
    assert studio.trainer.network.sizes[0] == 3 and studio.trainer.iteration == 1
    assert dict(at.query_params) == {"features": "x1,x2,x1x2", "noise": "20", "activation": "relu",
                                     "learning_rate": "0.3", "learning_rate_hide": "1", "noise_hide": "1",
                                     "features_hide": "1"}


def test_text_free_shows_no_captions_or_notes(studio):
    at = run(dataset="xor", layers="1")
    assert any("no straight line" in i.value for i in at.info) and at.caption
    at = run(dataset="xor", layers="1", text_hide="1", lesson="xor")
    assert not at.info and not at.caption and not at.expander
    assert not any("Lesson" in t for t in texts(at))
    assert dict(at.query_params) == {"dataset": "xor", "layers": "1", "lesson": "xor", "text_hide": "1"}


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_link_opens_its_set_up_with_its_lines(studio, name):
    lesson = LESSONS[name]
    at = run(**dict(parse_qsl(urlsplit(lesson_link(lesson)).query)))
    assert not at.warning and not at.error, texts(at)
    assert studio.config == lesson.config() and studio.trainer.network.sizes[1:] == lesson.config().layers
    shown = " ".join(texts(at))
    assert f"**Lesson: {lesson.title}**" in shown and all(line in shown for line in lesson.lines)
    assert dict(at.query_params) == dict(parse_qsl(urlsplit(lesson_link(lesson)).query))
    by_key(at.button, "pg_close_lesson").click()
    at = run(at.run())
    assert "Lesson:" not in " ".join(texts(at)) and "lesson" not in dict(at.query_params)
    assert studio.config == lesson.config()  # the set-up stays


def test_a_lesson_alone_in_a_link_sets_its_set_up(studio):
    at = run(lesson="vanishing-gradients")
    assert studio.config == LESSONS["vanishing-gradients"].config()
    assert by_key(at.selectbox, "pg_activation").value == "sigmoid"
    assert dict(at.query_params) == {"layers": "8,8,8,8,8,8,1", "activation": "sigmoid",
                                     "lesson": "vanishing-gradients"}


def test_the_link_builder_writes_a_link_that_round_trips(studio):
    at = run(dataset="spiral", layers="8,8,1")
    for control in ("noise", "learning_rate", "builder"):
        by_key(at.checkbox, f"pg_class_show_{control}").uncheck()
    by_key(at.checkbox, "pg_class_text_free").check()
    at = run(at.run())
    (code,) = [c.value for c in at.code]
    assert code.startswith("playground?") and "noise_hide=1" in code and "text_hide=1" in code
    params = dict(parse_qsl(urlsplit(code).query))
    assert params == {"dataset": "spiral", "layers": "8,8,1", "text_hide": "1", "learning_rate_hide": "1",
                      "noise_hide": "1", "builder_hide": "1"}  # the set-up as it is now, and the choices
    config = studio.config
    student = run(**params)  # a student opens it
    assert studio.config == config and not present(student, "noise") and not present(student, "learning_rate")
    assert not student.expander and not student.caption and dict(student.query_params) == params

    by_key(at.selectbox, "pg_class_lesson").set_value("xor")  # with a lesson: the lesson's set-up
    at = run(at.run())
    (code,) = [c.value for c in at.code]
    assert dict(parse_qsl(urlsplit(code).query)) == {
        "dataset": "xor", "layers": "1", "lesson": "xor", "text_hide": "1", "learning_rate_hide": "1",
        "noise_hide": "1", "builder_hide": "1"}


def test_a_link_may_ask_for_noise_up_to_80_and_the_slider_widens_to_it(studio):
    at = run(noise="80", dataset="xor")
    assert not at.warning and studio.config.noise == 80
    noise = by_key(at.slider, "pg_noise")
    assert (noise.value, noise.max) == (80, 80)
    at = run(noise="85")  # past TensorFlow Playground's 80: named, and the slider back to 0-50
    assert any(w.value.startswith("Ignored from the link: noise:") for w in at.warning)
    assert by_key(at.slider, "pg_noise").max == 50
