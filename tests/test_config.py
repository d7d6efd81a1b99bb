"""TrainConfig: validation messages name the field; presets are valid; dicts round-trip."""

import pytest

from backprop.config import PRESETS, TrainConfig, parse_digits, parse_int_list, preset
from backprop.errors import InputError


@pytest.mark.parametrize("changes, field, words", [
    ({"layers": ""}, "layers", "empty"),
    ({"layers": "0"}, "layers", "1 to"),
    ({"layers": "-3"}, "layers", "1 to"),
    ({"layers": "a,b"}, "layers", "'a'"),
    ({"layers": [196, 3]}, "layers", "end the layers with 1"),
    ({"layers": "1,1,1,1,1,1,1,1,1,1,1"}, "layers", "at most"),
    ({"digits": None, "layers": [196, 1]}, "layers", "one unit per class"),
    ({"learning_rate": 0}, "learning_rate", "positive"),
    ({"learning_rate": -1}, "learning_rate", "positive"),
    ({"learning_rate": float("nan")}, "learning_rate", "positive"),
    ({"learning_rate": "abc"}, "learning_rate", "not a number"),
    ({"iterations": 0}, "iterations", "from 1"),
    ({"iterations": 2.5}, "iterations", "whole number"),
    ({"activation": "swish"}, "activation", "sigmoid"),
    ({"init": "zeros"}, "init", "seed"),
    ({"dtype": "int8"}, "dtype", "float64"),
    ({"optimizer": "lbfgs"}, "optimizer", "adam"),
    ({"lr_schedule": "step"}, "lr_schedule", "cosine"),
    ({"momentum": 1.0}, "momentum", "[0, 1)"),
    ({"beta2": -0.1}, "beta2", "[0, 1)"),
    ({"batch_size": -5}, "batch_size", "at least 1"),
    ({"l2": -1}, "l2", ">= 0"),
    ({"l2": float("inf")}, "l2", "finite"),
    ({"seed": 2**32}, "seed", "4294967295"),
    ({"eval_every": 0}, "eval_every", "at least 1"),
    ({"subset": 1}, "subset", "at least 2"),
    ({"digits": (5, 5)}, "digits", "two different"),
    ({"digits": (5, 256)}, "digits", "0 to 255"),
    ({"digits": (-1, 3)}, "digits", "0 to 255"),
])
def test_bad_settings_name_the_field(changes, field, words):
    with pytest.raises(InputError) as caught:
        TrainConfig(**changes).validated()
    assert caught.value.field == field
    assert words in caught.value.message, caught.value.message


def test_parsers():
    assert parse_int_list("196, 1", "layers") == [196, 1]
    assert parse_int_list([392, 196], "layers") == [392, 196]
    assert parse_digits("5,8") == (5, 8) and parse_digits("all") is None and parse_digits(None) is None
    with pytest.raises(InputError):
        parse_int_list([1.5], "layers")


def test_full_batch_spellings_and_defaults():
    for spelling in (None, "", "full", "FULL"):
        assert TrainConfig(batch_size=spelling).validated().batch_size is None
    with pytest.raises(InputError, match="batch_size"):  # 0 is a slip, not a way to say "full"
        TrainConfig(batch_size=0).validated()
    config = TrainConfig().validated()
    assert config.output == "sigmoid" and TrainConfig(digits=None, layers=[10]).output == "softmax"
    assert config.optimizer_values() == {"learning_rate": 0.1}
    # every optimizer setting is a setting of the set-up now, Adam's epsilon included
    assert set(TrainConfig(optimizer="adam").optimizer_values()) == {"learning_rate", "beta1", "beta2",
                                                                    "epsilon"}


def test_presets_are_valid_and_round_trip():
    for name in PRESETS:
        config = preset(name)
        assert TrainConfig.from_dict(config.to_dict()) == config
    tutorial = preset("tutorial")
    assert (tutorial.layers, tutorial.activation, tutorial.init, tutorial.learning_rate,
            tutorial.iterations, tutorial.dtype, tutorial.batch_size, tutorial.digits) == (
        [196, 1], "sigmoid", "seed", 0.1, 1000, "float64", None, (5, 8))
    assert preset("tutorial-deep").layers == [392, 196, 98, 1]
    assert preset("mnist10").digits is None
    preset("tutorial").layers.append(5)  # a copy: the table itself is untouched
    assert preset("tutorial").layers == [196, 1]
    with pytest.raises(InputError) as caught:
        preset("imagenet")
    assert caught.value.field == "preset"


def test_from_dict_refuses_unknown_settings_and_accepts_older_dicts():
    with pytest.raises(InputError) as caught:
        TrainConfig.from_dict({"layers": [196, 1], "dropout": 0.5})
    assert caught.value.field == "config" and "dropout" in caught.value.message
    older = TrainConfig().to_dict()
    del older["lr_schedule"]  # written before the schedule existed
    assert TrainConfig.from_dict(older).lr_schedule == "constant"
