"""Property-based fuzz (Hypothesis) of what a link sends: the URL decoder and every setting's parser
accept or refuse any text, and refuse only with the project's own field-named InputError."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backprop.budget import check_training_memory
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.settings import SETTINGS
from studio.url_state import FIELDS, NOT_IN_LINKS, query_to_config

# Text a hostile link may carry: numbers in every spelling, lists, Markdown, paths, control characters.
TRICKY = ["", " ", "0", "-1", "1e400", "nan", "inf", "-inf", "1_000", "0x10", "4096," * 9 + "1", "9" * 400,
          "full", "all", "5,8", "5,5", ",", ",,", "1.5", "true", "../../etc/passwd", "/proc/self/environ",
          "\x00", "a\x00b", "[x](http://evil)", "![i](http://evil/i.png)", "<script>", "é", "\U0001f600",
          "1" * 10_000]
text = st.one_of(st.sampled_from(TRICKY), st.text(max_size=40),
                 st.text(alphabet=string.digits + ",.-e+ ", max_size=30),
                 st.lists(st.integers(-10, 10**7), max_size=12).map(lambda xs: ",".join(map(str, xs))),
                 st.floats(allow_nan=True, allow_infinity=True).map(repr))
names = st.one_of(st.sampled_from([*FIELDS, *NOT_IN_LINKS, "demo"]), st.text(max_size=12))
links = st.dictionaries(names, text, max_size=8)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(links)
def test_any_link_is_decoded_or_refused_with_a_named_problem(params):
    try:
        config, demo, problems = query_to_config(params)
    except InputError:
        return  # the project's own refusal, naming the field, is allowed
    assert isinstance(config, TrainConfig) and isinstance(demo, bool)
    assert config == config.validated()
    assert all(isinstance(problem, str) and problem for problem in problems)
    assert config.data_path is None  # a link never names a server path
    for name in NOT_IN_LINKS:
        if name in params:
            assert any(problem.startswith(f"{name}:") for problem in problems)


@pytest.mark.parametrize("name", list(SETTINGS))
@settings(max_examples=100, deadline=None)
@given(value=text)
def test_every_setting_parses_or_refuses_any_text_naming_itself(name, value):
    setting = SETTINGS[name]
    try:
        parsed = setting.parse(value)
    except InputError as error:
        assert error.field == name and error.message
        return
    assert isinstance(setting.encode(parsed), str)  # an accepted value can be written into a link


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([name for name, setting in SETTINGS.items() if setting.kind == "float"]),
       st.sampled_from(["10000000001.0", "1.7976931345e+308", "0.1", "1e-300"]))
def test_what_a_setting_encodes_it_parses_back(name, value):
    """`parse(encode(v)) == v`, as Setting.encode's docstring says (a link must read back what it wrote)."""
    setting = SETTINGS[name]
    try:
        parsed = setting.parse(value)
    except InputError:
        return
    assert setting.parse(setting.encode(parsed)) == parsed


def test_a_link_never_sets_up_training_over_the_memory_budget():
    """The issue's `?layers=4096,...x9,1` link: dropped with a message naming the budget."""
    config, _, problems = query_to_config({"layers": "4096," * 9 + "1"})
    assert config.layers == TrainConfig().validated().layers
    assert any("BACKPROP_MEMORY_BUDGET" in problem for problem in problems), problems


def test_the_links_default_set_up_fits_the_budget():
    config = TrainConfig().validated()
    check_training_memory([784, *config.layers], 11_272, config.dtype, 0, full_batch=True)
