"""The memory budget (backprop.budget): sizes turned into bytes before anything is allocated, the
estimate checked against what a training step really allocates, and messages that name the field,
the budget and what would fit."""

import tracemalloc

import numpy as np
import pytest

from backprop.budget import (
    array_bytes,
    check_network_memory,
    check_training_memory,
    format_bytes,
    largest_fitting_batch,
    memory_budget,
    network_bytes,
    parse_bytes,
    training_bytes,
)
from backprop.config import preset
from backprop.data.tasks import Dataset
from backprop.errors import InputError
from backprop.network import Network
from backprop.optimizers import make_optimizer
from backprop.trainer import Trainer

ATTACK = [784, *[4096] * 9, 1]  # the issue's ?layers=4096,...,4096,1 link
STATE_ARRAYS = {"sgd": 0, "momentum": 1, "adam": 2}  # arrays per parameter each optimizer keeps


@pytest.mark.parametrize("text, expected", [("3GB", 3 * 10**9), ("512MiB", 512 * 2**20), ("2 gib", 2 * 2**30),
                                            ("1e9", 10**9), ("3000000000", 3 * 10**9), ("1.5GB", 15 * 10**8)])
def test_budget_sizes_are_read_in_common_spellings(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "-3GB", "3 parsecs", "", "1KB", "GB"])
def test_a_bad_budget_names_the_variable(text):
    with pytest.raises(InputError) as error:
        parse_bytes(text)
    assert error.value.field == "BACKPROP_MEMORY_BUDGET"


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "4GiB")
    assert memory_budget() == 4 * 2**30
    monkeypatch.delenv("BACKPROP_MEMORY_BUDGET")
    assert memory_budget() == 3 * 10**9


def test_sizes_are_counted_exactly_and_without_overflow():
    assert network_bytes([784, 196, 1], "float64") == (784 * 196 + 196 + 196 + 1) * 8
    assert network_bytes([784, 196, 1], "float32") == (784 * 196 + 196 + 196 + 1) * 4
    assert array_bytes((640_000, 784), "uint8") == 501_760_000
    assert array_bytes((2**40, 2**40), "<f8") == 2**83  # Python integers: no wrap-around
    assert format_bytes(6_700_000_000) == "6.7 GB" and format_bytes(1330) == "1.3 kB"
    assert format_bytes(10**400) == "about 10^400 bytes"


def test_a_network_too_large_is_refused_naming_the_field_and_the_budget():
    with pytest.raises(InputError) as error:
        check_network_memory([784, 20000, 20000, 1], "float64", field="checkpoint")
    assert error.value.field == "checkpoint"
    assert "[784, 20000, 20000, 1]" in error.value.message and "BACKPROP_MEMORY_BUDGET" in error.value.message


@pytest.mark.parametrize("name, n_samples, state", [("tutorial", 11_272, 0), ("tutorial-deep", 11_272, 0),
                                                    ("mnist10", 512, 2)])
def test_the_presets_fit_the_default_budget(monkeypatch, name, n_samples, state):
    monkeypatch.delenv("BACKPROP_MEMORY_BUDGET", raising=False)
    config = preset(name).validated()
    assert check_training_memory([784, *config.layers], n_samples, config.dtype, state) < memory_budget() / 4


def test_full_mnist_full_batch_fits_the_default_budget(monkeypatch):
    monkeypatch.delenv("BACKPROP_MEMORY_BUDGET", raising=False)
    check_training_memory([784, 256, 128, 10], 60_000, "float64", 2, full_batch=True)


def test_the_link_attack_is_refused_even_with_one_sample_per_step(monkeypatch):
    monkeypatch.delenv("BACKPROP_MEMORY_BUDGET", raising=False)
    with pytest.raises(InputError) as error:
        check_training_memory(ATTACK, 11_272, "float64", 0, field="layers", full_batch=True)
    assert error.value.field == "layers"
    message = error.value.message
    assert "3.0 GB" in message and "BACKPROP_MEMORY_BUDGET" in message
    assert "even one sample per step does not fit" in message and "fewer or smaller layers" in message
    assert largest_fitting_batch(ATTACK, "float64") == 0


def test_a_full_batch_over_the_budget_is_offered_a_mini_batch_that_fits(monkeypatch):
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "1GB")
    sizes = [784, 2048, 2048, 10]
    with pytest.raises(InputError) as error:
        check_training_memory(sizes, 60_000, "float32", 2, field="batch_size", full_batch=True)
    message = error.value.message
    assert error.value.field == "batch_size"
    assert "full batch of 60,000" in message and "mini-batches" in message
    fitting = largest_fitting_batch(sizes, "float32", 2, most=60_000)
    assert 0 < fitting < 60_000 and f"{fitting:,}" in message
    assert check_training_memory(sizes, fitting, "float32", 2) <= memory_budget()
    with pytest.raises(InputError):
        check_training_memory(sizes, fitting + 1, "float32", 2)


def test_the_estimate_grows_with_every_input():
    base = training_bytes([784, 196, 1], 1000, "float64", 0)
    assert training_bytes([784, 196, 1], 2000, "float64", 0) > base
    assert training_bytes([784, 392, 1], 1000, "float64", 0) > base
    assert training_bytes([784, 196, 1], 1000, "float64", 2) > base
    assert training_bytes([784, 196, 1], 1000, "float32", 0) < base


@pytest.mark.parametrize("sizes, n_samples, optimizer, dtype, batch_size", [
    ([784, 64, 32, 1], 4096, "adam", "float64", None),
    ([784, 512, 512, 10], 1024, "sgd", "float32", None),
    ([100, 1000, 1000, 1], 3000, "momentum", "float64", 600),
])
def test_the_estimate_bounds_what_a_training_step_allocates(sizes, n_samples, optimizer, dtype, batch_size):
    """tracemalloc sees NumPy's allocations: three steps of a real Trainer (data made before) stay
    under the estimate, and the estimate is not wildly above them (at most 4x)."""
    rng = np.random.RandomState(0)
    classes = 2 if sizes[-1] == 1 else sizes[-1]
    data = Dataset("random", rng.rand(n_samples, sizes[0]).astype(dtype), rng.randint(0, classes, n_samples),
                   rng.rand(10, sizes[0]).astype(dtype), rng.randint(0, classes, 10),
                   [str(c) for c in range(classes)], None)
    tracemalloc.start()
    try:
        network = Network(sizes, activation="relu", output="sigmoid" if classes == 2 else "softmax",
                          dtype=dtype)
        Trainer(network, make_optimizer(optimizer), data, batch_size=batch_size).step(3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = training_bytes(sizes, batch_size or n_samples, dtype, STATE_ARRAYS[optimizer])
    assert peak <= estimate <= 4 * peak
