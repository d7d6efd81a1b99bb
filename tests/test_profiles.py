"""Page profiles (backprop/profiles.py): each page's defaults, limits and lists over the one table of
settings, and what its links mean."""

import dataclasses

import pytest

from backprop.config import TrainConfig
from backprop.data.toy2d import CLASSIFICATION, REGRESSION, TOY_DATASETS
from backprop.errors import InputError
from backprop.profiles import PLAYGROUND, PROFILES, SWEEP, TRAIN, Profile
from backprop.settings import SETTINGS


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_every_profile_has_a_valid_set_up_within_its_limits_for_each_of_its_data_sets(profile):
    for dataset in profile.datasets:
        config = profile.default_config(dataset)
        assert config.dataset == dataset and profile.check(config) == config
    assert profile.default_config().dataset == profile.default("dataset")
    assert set(profile.link_settings) <= set(profile.settings) <= set(SETTINGS)
    assert set(profile.widgets) <= set(profile.settings)


def test_the_train_and_sweep_profiles_are_the_tutorials_set_up():
    assert TRAIN.default_config() == TrainConfig().validated() == SWEEP.default_config()
    assert TRAIN.settings == tuple(SETTINGS) and TRAIN.demo
    assert TRAIN.max_units == SETTINGS["layers"].high


def test_the_playground_starts_on_tensorflow_playgrounds_set_up():
    config = PLAYGROUND.default_config()
    assert (config.dataset, config.digits, config.layers, config.activation, config.init) == (
        "circle", (0, 1), [4, 2, 1], "tanh", "xavier")
    assert (config.learning_rate, config.batch_size, config.points) == (0.03, 10, 500)
    assert config.iterations == 10**7 and config.eval_every == 25 and config.optimizer == "sgd"
    for dataset in REGRESSION:  # TensorFlow Playground draws 1,200 points for a regression
        regression = PLAYGROUND.default_config(dataset)
        assert regression.points == 1200 and regression.digits is None and regression.output == "linear"
    assert PLAYGROUND.default_config("spiral").points == 500
    assert PLAYGROUND.datasets == TOY_DATASETS
    assert PLAYGROUND.choices["learning_rate"][0] == 0.00001 and PLAYGROUND.choices["learning_rate"][-1] == 10
    assert PLAYGROUND.choices["l1"] == PLAYGROUND.choices["l2"] and PLAYGROUND.choices["l2"][0] == 0


def test_a_2d_data_sets_classes_follow_it_on_every_page():
    for profile in PROFILES.values():
        assert profile.default("digits", "spiral") == (0, 1) and profile.default("digits", "plane") is None
    assert TRAIN.default("digits", "mnist") == (5, 8) and TRAIN.default("points", "plane") == 500


@pytest.mark.parametrize("changes, field, words", [
    ({"layers": [4, 4, 4, 4, 4, 4, 4, 1]}, "layers", "at most 6 hidden layers, got 7"),
    ({"layers": [1024, 1024, 1]}, "layers", "at most 8 units per hidden layer, got 1024"),
    ({"batch_size": None}, "batch_size", "mini-batches"),
    ({"batch_size": 5001}, "batch_size", "at most 5000"),
    ({"dataset": "mnist", "digits": (5, 8), "layers": [4, 1]}, "dataset", "the 2D data sets"),
    ({"l1": 0.1, "l2": 0.01}, "l2", "one penalty at a time"),
    ({"digits": (5, 8)}, "digits", "classes 0 and 1"),
])
def test_the_playgrounds_limits_are_refused_naming_the_setting(changes, field, words):
    config = dataclasses.replace(PLAYGROUND.default_config(), **changes)
    with pytest.raises(InputError) as refused:
        PLAYGROUND.check(config)
    assert refused.value.field == field and words in refused.value.message, refused.value
    assert "the Playground" in refused.value.message or field == "digits"


def test_the_train_page_keeps_the_tables_limits():
    big = TrainConfig(layers=[1024, 1024, 1], batch_size=None).validated()
    assert TRAIN.check(big) == big
    with pytest.raises(InputError, match="at most 10 layers"):
        TRAIN.check(TrainConfig(layers=[8] * 10 + [1]))


def test_parse_reads_a_value_with_the_tables_checks_then_the_pages_limits():
    assert PLAYGROUND.parse("layers", "8,8,1") == [8, 8, 1]
    assert TRAIN.parse("layers", "1024,1024,1") == [1024, 1024, 1]
    for name, text in [("layers", "9,1"), ("layers", "x"), ("dataset", "mnist"), ("batch_size", "full"),
                       ("learning_rate", "-1")]:
        with pytest.raises(InputError) as refused:
            PLAYGROUND.parse(name, text)
        assert refused.value.field == name
    with pytest.raises(InputError) as refused:
        PLAYGROUND.parse("optimizer", "adam")
    assert refused.value.field == "optimizer" and "not a setting of this page" in refused.value.message


def test_a_key_the_page_does_not_take_gets_a_hint_and_the_pages_settings():
    message = PLAYGROUND.not_a_setting("networkShape")
    assert "layers" in message and "settings: dataset, digits" in message
    assert "learning_rate" in PLAYGROUND.not_a_setting("learningRate")
    assert "Train page" in PLAYGROUND.not_a_setting("optimizer")
    assert TRAIN.not_a_setting("nonsense").startswith("not a setting of this page; settings: dataset")


def test_the_settings_page_widgets_use_the_pages_bounds():
    assert PLAYGROUND.setting("dataset").choices == TOY_DATASETS
    batch = PLAYGROUND.setting("batch_size")
    assert batch.none_word is None and batch.high == 5000 and batch.default == 10
    assert TRAIN.setting("batch_size") == SETTINGS["batch_size"]
    assert PLAYGROUND.setting("learning_rate").default == 0.03


def test_settings_that_follow_the_data_set_follow_it_only_from_their_default():
    circle = PLAYGROUND.default_config()
    plane = PLAYGROUND.follow_dataset(circle, "plane")
    assert (plane.points, plane.digits) == (1200, None)
    assert PLAYGROUND.follow_dataset(plane, "xor").points == 500
    own = dataclasses.replace(circle, points=700)
    assert PLAYGROUND.follow_dataset(own, "plane").points == 700  # a person's own number stays
    spiral = TRAIN.follow_dataset(TRAIN.default_config(), "spiral")
    assert spiral.digits == (0, 1) and TRAIN.follow_dataset(spiral, "mnist").digits == (5, 8)
    assert TRAIN.follow_dataset(dataclasses.replace(spiral, digits=None), "mnist").digits is None
    assert set(CLASSIFICATION) <= set(PLAYGROUND.dataset_defaults)


def test_a_profile_names_only_settings_of_the_table():
    with pytest.raises(ValueError, match="networkShape"):
        Profile("bad", "a bad page", ("dataset",), defaults={"networkShape": [4, 2]})
    with pytest.raises(ValueError, match="data sets"):
        Profile("bad", "a bad page", ("dataset",), datasets=("no-such-set",))
    with pytest.raises(TypeError):
        PLAYGROUND.defaults["learning_rate"] = 1.0  # one declaration, read only
