"""Classroom links (issue 19): any Playground control hidden by a link (`<control>_hide=1`, TensorFlow
Playground's `*_hide`), a text-free mode (`text_hide=1`), guided lessons (`lesson=<name>`), and the
link builder's links, each of which round-trips: set-up and classroom -> link -> the same again."""

import itertools
from urllib.parse import parse_qsl, urlsplit

import pytest

from backprop.profiles import PLAYGROUND, TRAIN
from studio.lessons import LESSONS, lesson_link
from studio.url_state import Classroom, classroom_from_query, classroom_link, config_to_query, query_to_config

SET_UPS = [PLAYGROUND.default_config(), PLAYGROUND.config(dataset="spiral", layers=[8, 8, 1], noise=80),
           PLAYGROUND.config(dataset="plane", l1=0.003, features=("x1sq", "x2sq"), seed=7)]
CLASSROOMS = [Classroom(), Classroom(frozenset({"learning_rate", "features", "builder"})),
              Classroom(frozenset(PLAYGROUND.hidable), True, "xor"), Classroom(text_hidden=True),
              Classroom(lesson="vanishing-gradients")]


def read(link):
    params = dict(parse_qsl(urlsplit(link).query))
    config, _, problems = query_to_config(params, PLAYGROUND)
    room, more = classroom_from_query(params, PLAYGROUND)
    return config, room, problems + more


@pytest.mark.parametrize("config, room", list(itertools.product(SET_UPS, CLASSROOMS)))
def test_every_classroom_link_round_trips(config, room):
    link = classroom_link(config, room, PLAYGROUND, "http://localhost:8501/playground")
    assert link.startswith("http://localhost:8501/playground")
    assert read(link) == (config, room, [])


def test_every_control_of_the_playground_can_be_hidden_by_name():
    assert {"learning_rate", "activation", "regularisation", "regularisation_rate", "problem", "dataset",
            "train_share", "noise", "batch_size", "layers", "features", "show_test", "discretize", "train",
            "step", "step_epoch", "reset", "regenerate", "points", "seed", "speed", "edit", "builder"} == set(
        PLAYGROUND.hidable)
    query = config_to_query(PLAYGROUND.default_config(), profile=PLAYGROUND,
                            classroom=Classroom(frozenset({"noise", "discretize"}), True, "xor"))
    assert query == {"lesson": "xor", "text_hide": "1", "noise_hide": "1", "discretize_hide": "1"}
    room, problems = classroom_from_query({"noise_hide": "true", "seed_hide": "0", "learning_rate": "0.3"},
                                          PLAYGROUND)
    assert room == Classroom(frozenset({"noise"})) and problems == []
    assert room.shows("seed") and not room.shows("noise") and room.text


def test_a_bad_classroom_key_is_named_and_the_rest_applies():
    params = {"noise_hide": "perhaps", "colour_hide": "1", "lesson": "calculus", "text_hide": "1",
              "seed": "3"}
    room, problems = classroom_from_query(params, PLAYGROUND)
    assert room == Classroom(text_hidden=True)
    assert problems == ["noise_hide: 'perhaps' is not 1 (hide) or 0 (show)",
                        "lesson: 'calculus' is not a lesson; lessons: " + ", ".join(LESSONS)]
    config, _, setup_problems = query_to_config(params, PLAYGROUND)
    assert config.seed == 3 and len(setup_problems) == 1
    assert setup_problems[0].startswith("colour_hide: not a control this page can hide; it hides train, ")


def test_the_train_page_takes_no_classroom_keys():
    _, _, problems = query_to_config({"noise_hide": "1", "lesson": "xor"}, TRAIN)
    assert [p.split(":")[0] for p in problems] == ["noise_hide", "lesson"]
    room = Classroom(frozenset({"noise"}), True, "xor")
    assert config_to_query(TRAIN.default_config(), classroom=room) == {}


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_is_one_link_that_sets_the_page_up(name):
    lesson = LESSONS[name]
    assert 3 <= len(lesson.lines) <= 5 and all(len(line) < 250 for line in lesson.lines)
    link = lesson_link(lesson)
    assert link.startswith("playground?") and f"lesson={name}" in link
    config, room, problems = read(link)
    assert config == lesson.config() and room.lesson == name and problems == []
    assert config != PLAYGROUND.default_config()


def test_the_lessons_set_ups_are_the_ones_they_teach():
    xor, circle, rate, deep = (LESSONS[n].config() for n in ("xor", "circle-features", "learning-rate",
                                                               "vanishing-gradients"))
    assert (xor.dataset, xor.layers, xor.features) == ("xor", [1], ("x1", "x2"))  # no hidden layer
    assert (circle.dataset, circle.layers, circle.features) == ("circle", [1], ("x1sq", "x2sq"))
    assert rate.learning_rate == 3.0 and rate.layers == [4, 2, 1]
    assert (deep.activation, deep.layers) == ("sigmoid", [8] * 6 + [1])
