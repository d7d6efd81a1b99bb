"""Links read and written against a page's profile (studio/url_state.py): a link means the page's
set-up, a page's limits apply to links too, every key that is dropped is named, and a link a page
writes carries only what differs from that page's defaults."""

import dataclasses

import pytest

from backprop.profiles import PLAYGROUND, PROFILES, SWEEP, TRAIN
from studio.url_state import config_to_query, describes_setup, query_to_config

# Set-ups each page can have, other than its default.
SET_UPS = {
    "train": [dict(layers=[392, 196, 98, 1]), dict(dataset="spiral"), dict(dataset="plane", digits=None),
              dict(digits=None, layers=[64, 10], optimizer="adam", batch_size=64, learning_rate=0.003)],
    "playground": [dict(dataset="spiral"), dict(dataset="plane"), dict(dataset="multi-gauss", points=500),
                   dict(layers=[8, 8, 8, 8, 8, 8, 1], l1=0.003, batch_size=30, learning_rate=3.0),
                   dict(features=("x1", "x1x2", "sinx2"), activation="relu", noise=20, seed=9),
                   dict(dataset="xor", layers=[1], l2=0.1, train_share=80)],
}
SET_UPS["sweep"] = SET_UPS["train"]


@pytest.mark.parametrize("name", PROFILES)
def test_a_link_round_trips_on_each_page(name):
    profile = PROFILES[name]
    assert config_to_query(profile.default_config(), profile=profile) == {}
    for changes in SET_UPS[name]:
        config = profile.config(**changes)
        query = config_to_query(config, profile=profile)
        assert set(query) <= set(profile.link_settings) and all(isinstance(v, str) for v in query.values())
        back, demo, problems = query_to_config(query, profile)
        assert back == config and problems == [] and not demo, (changes, query, problems)


def test_the_playground_writes_only_what_differs_from_its_own_defaults():
    assert config_to_query(PLAYGROUND.config(dataset="spiral"), profile=PLAYGROUND) == {"dataset": "spiral"}
    assert config_to_query(PLAYGROUND.config(dataset="plane"), profile=PLAYGROUND) == {"dataset": "plane"}
    assert config_to_query(PLAYGROUND.config(dataset="plane", points=500), profile=PLAYGROUND) == {
        "dataset": "plane", "points": "500"}
    assert config_to_query(PLAYGROUND.config(), demo=True, profile=PLAYGROUND) == {}  # no demo view here


def test_a_playground_link_means_the_playgrounds_set_up():
    config, _, problems = query_to_config({"dataset": "spiral"}, PLAYGROUND)
    assert problems == [] and config == dataclasses.replace(PLAYGROUND.default_config(), dataset="spiral")
    assert (config.layers, config.learning_rate, config.batch_size, config.activation) == ([4, 2, 1], 0.03,
                                                                                           10, "tanh")
    assert query_to_config({"dataset": "plane"}, PLAYGROUND)[0].points == 1200


def test_the_train_page_reads_a_2d_data_set_with_its_classes():
    config, _, problems = query_to_config({"dataset": "spiral"}, TRAIN)
    assert problems == [] and config.digits == (0, 1) and config.layers == [196, 1]
    assert query_to_config({"dataset": "plane"}, TRAIN)[0].digits is None


@pytest.mark.parametrize("params, field, words", [
    ({"networkShape": "4,2"}, "networkShape", "not a setting of this page"),
    ({"learningRate": "0.3"}, "learningRate", "learning_rate here"),
    ({"layers": "1024,1024,1"}, "layers", "at most 8 units per hidden layer"),
    ({"layers": "2,2,2,2,2,2,2,1"}, "layers", "at most 6 hidden layers"),
    ({"dataset": "mnist"}, "dataset", "the 2D data sets"),
    ({"batch_size": "full"}, "batch_size", "mini-batches"),
    ({"optimizer": "adam"}, "optimizer", "not a setting of this page"),
    ({"demo": "1"}, "demo", "not a setting of this page"),
    ({"data_path": "/etc/passwd"}, "data_path", "cannot name a file on the server"),
    ({"dataset": "spiral", "digits": "5,8"}, "digits", "classes 0 and 1"),
])
def test_the_playground_refuses_what_it_does_not_take_naming_it(params, field, words):
    config, demo, problems = query_to_config(params, PLAYGROUND)
    assert any(p.startswith(f"{field}:") and words in p for p in problems), problems
    assert PLAYGROUND.check(config) == config and not demo
    assert config.layers == [4, 2, 1] and config.batch_size == 10


def test_the_rest_of_a_link_still_applies():
    config, _, problems = query_to_config({"dataset": "xor", "layers": "1024,1", "networkShape": "1",
                                           "l1": "0.01", "l2": "0.03", "noise": "15"}, PLAYGROUND)
    assert [p.split(":")[0] for p in problems] == ["layers", "networkShape", "l2"]
    assert (config.dataset, config.noise, config.l1, config.l2, config.layers) == ("xor", 15, 0.01, 0.0,
                                                                                   [4, 2, 1])


def test_an_unknown_key_on_the_train_page_is_named_and_a_demo_link_still_works():
    config, demo, problems = query_to_config({"networkShape": "4,2", "demo": "1", "layers": "64,1"}, TRAIN)
    assert demo and config.layers == [64, 1]
    assert problems == [TRAIN.not_a_setting("networkShape").join(["networkShape: ", ""])]
    assert not describes_setup({"networkShape": "4,2"}, PLAYGROUND)
    assert describes_setup({"dataset": "spiral"}, PLAYGROUND) and not describes_setup({"optimizer": "adam"},
                                                                                      PLAYGROUND)


def test_a_hostile_key_is_cut_in_the_message():
    _, _, problems = query_to_config({"x" * 5000: "1"}, SWEEP)
    assert len(problems) == 1 and len(problems[0].split(":")[0]) < 80
