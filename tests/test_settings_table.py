"""The table of settings is the one place a setting is described: walk it and check that every
setting reaches the CLI, the link and the sidebar, and that a bad value is refused naming it."""

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from backprop import cli, options
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.optimizers import OPTIMIZERS
from backprop.paths import PROJECT_ROOT
from backprop.settings import SETTINGS
from studio.controls import widget_key, widget_kind
from studio.url_state import config_to_query, query_to_config

# A set-up a setting needs around it to apply: its optimizer, its kind of data.
CONTEXT = {"points": {"dataset": "xor", "digits": None}, "noise": {"dataset": "xor", "digits": None},
           "train_share": {"dataset": "xor", "digits": None}, "features": {"dataset": "xor", "digits": None},
           "data_path": {"dataset": "npz"}, "upload": {"dataset": "npz"}}


def context(name):
    setting = SETTINGS[name]
    changes = dict(CONTEXT.get(name, {}))
    if setting.owner is not None:
        changes["optimizer"] = setting.owner
    return changes


def other_value(setting):
    """A valid value other than the default, from the declaration alone."""
    if setting.kind == "choice":
        return next(choice for choice in setting.choices if choice != setting.default)
    if setting.kind == "choice_list":
        return tuple(setting.choices[:3])
    if setting.kind == "int":
        low = setting.low if setting.low is not None else 0
        value = (setting.default or low) + 1
        return min(value, setting.high) if setting.high is not None else value
    if setting.kind == "float":
        value = (setting.default or 0.25) / 2
        return value
    if setting.kind == "int_list":
        return [32, 1]
    if setting.kind == "classes":
        return (3, 7)
    if setting.name in ("upload", "label_edits"):  # ids the server gave
        return "0123456789ab"
    return "/tmp/data.npz"


def bad_value(setting):
    return {"choice": "no-such-choice", "choice_list": "x9", "int": "1.5x", "float": "-inf", "classes": "5,5",
            "int_list": "0,0"}.get(setting.kind, "bad\x00value")


def with_value(name, value):
    return dataclasses.replace(TrainConfig(), **context(name), **{name: value})


SETTING_NAMES = list(SETTINGS)


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_setting_has_a_valid_other_value_and_a_field_named_refusal(name):
    setting = SETTINGS[name]
    config = with_value(name, other_value(setting)).validated()
    assert getattr(config, name) != setting.default
    with pytest.raises(InputError) as refused:
        with_value(name, bad_value(setting)).validated()
    assert refused.value.field == name, refused.value


@pytest.mark.parametrize("name", [name for name in SETTING_NAMES if SETTINGS[name].cli])
def test_every_cli_setting_round_trips_through_its_option(name, command_stderr):
    setting = SETTINGS[name]
    value = getattr(with_value(name, other_value(setting)).validated(), name)
    argv = ["train", f"{setting.option}={setting.encode(value)}"]
    for other, given in context(name).items():
        argv += ["--classes", "all"] if other == "digits" else [SETTINGS[other].option, str(given)]
    config = options.config_from_args(cli.build_parser().parse_args(argv))
    assert getattr(config, name) == value
    bad = ["train", f"{setting.option}={bad_value(setting)}", "--no-record"]
    assert cli.main(bad) == cli.EXIT_INPUT
    assert command_stderr().startswith(f"error: {name}:")


@pytest.mark.parametrize("name", [name for name in SETTING_NAMES if SETTINGS[name].url])
def test_every_link_setting_round_trips_through_the_url(name):
    config = with_value(name, other_value(SETTINGS[name])).validated()
    query = config_to_query(config)
    assert name in query and all(isinstance(text, str) for text in query.values())
    back, _, problems = query_to_config(query)
    assert problems == [] and back == config
    _, _, problems = query_to_config({**query, name: bad_value(SETTINGS[name])})
    assert any(problem.startswith(f"{name}:") for problem in problems), problems


def test_settings_that_name_a_server_path_never_travel_in_a_link():
    config = dataclasses.replace(TrainConfig(), dataset="npz", data_path="/etc/passwd").validated()
    assert "data_path" not in config_to_query(config)


def test_optimizers_declare_their_settings_and_the_table_has_them_all():
    for name, optimizer in OPTIMIZERS.items():
        for setting in optimizer.settings:
            assert SETTINGS[setting.name].owner == name
            assert setting.name in optimizer().values()


# The upload selectbox lists what was uploaded: tests/test_pages_data.py puts an upload into the set-up.
SIDEBAR = [name for name in SETTING_NAMES if SETTINGS[name].widget and name != "upload"]
SIDEBAR_VALUE = {"dataset": "xor"}  # a data set that is here without a download
SIDEBAR_CONTEXT = {"dataset": {"digits": None}}


def set_widget(at, name, value):
    setting, key = SETTINGS[name], widget_key(name)
    kind = widget_kind(setting)
    if name == "layers":
        at.text_input(key=key).input(",".join(map(str, value[:-1]))).run()
    elif kind == "select":
        at.selectbox(key=key).set_value(value).run()
    elif kind == "multi":
        at.multiselect(key=key).set_value(list(value)).run()
    elif kind == "log_slider":
        at.select_slider(key=key).set_value(value).run()
    elif kind == "number":
        at.number_input(key=key).set_value(value).run()
    else:
        at.text_input(key=key).input(setting.encode(value)).run()


@pytest.mark.timeout(300)
def test_every_sidebar_setting_reaches_the_set_up_and_a_bad_one_is_named_under_its_widget():
    """One AppTest session walks the sidebar: each setting's widget (found by its key, drawn from
    the table) changes the set-up the page proposes, which the link then carries; a bad text
    value shows a message naming the setting under its widget."""
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.query_params["subset"] = "300"
    at.run()
    checked = []
    for name in SIDEBAR:
        setting = SETTINGS[name]
        for other, given in {**context(name), **SIDEBAR_CONTEXT.get(name, {})}.items():
            set_widget(at, other, given)
        value = SIDEBAR_VALUE.get(name) or getattr(with_value(name, other_value(setting)).validated(), name)
        set_widget(at, name, value)
        assert not at.exception, (name, [e.value for e in at.exception])
        assert not at.sidebar.error, (name, [e.value for e in at.sidebar.error])
        assert at.query_params[name] == setting.encode(value), (name, dict(at.query_params))
        if widget_kind(setting) == "text":
            at.text_input(key=widget_key(name)).input(bad_value(setting)).run()
            assert any(f"**{name}**" in error.value for error in at.sidebar.error), (
                name, [e.value for e in at.sidebar.error])
        checked.append(name)
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)  # a fresh set-up
        at.query_params["subset"] = "300"
        at.run()
    assert len(checked) == len(SIDEBAR)


def test_the_sidebars_classes_follow_a_2d_data_set_and_back():
    """Choosing the spiral after MNIST's 5,8 shows its classes 0,1 (and MNIST's again on the way
    back), as a link naming the spiral gets them (backprop.profiles: the 2D sets' classes)."""
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60)
    at.query_params["subset"] = "300"
    at.run()
    at.selectbox(key=widget_key("dataset")).set_value("spiral").run()
    assert at.text_input(key=widget_key("digits")).value == "0,1" and not at.sidebar.error
    assert at.query_params["dataset"] == "spiral" and "digits" not in at.query_params
    at.text_input(key=widget_key("digits")).input("all").run()  # a person's own choice stays
    at.selectbox(key=widget_key("dataset")).set_value("mnist").run()
    assert at.text_input(key=widget_key("digits")).value == "all"
    at.text_input(key=widget_key("digits")).input("5,8").run()
    at.selectbox(key=widget_key("dataset")).set_value("moons").run()
    at.selectbox(key=widget_key("dataset")).set_value("mnist").run()
    assert at.text_input(key=widget_key("digits")).value == "5,8" and not at.exception
