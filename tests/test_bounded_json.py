"""backprop.bounded_json: the scan that bounds what json.loads builds, checked against the parsed
values of random JSON, and its limits (values, depth, the memory budget) naming the field."""

import json
import random
import tracemalloc

import numpy as np
import pytest

import backprop.bounded_json as bounded_json
from backprop.bounded_json import BYTES_PER_TEXT_BYTE, BYTES_PER_VALUE, JsonScan, parse_bounded
from backprop.errors import InputError


def random_json(rng, depth=0):
    roll = rng.random()
    if depth < 6 and roll < 0.3:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 6 and roll < 0.6:
        return {f"key {i} é😀": random_json(rng, depth + 1) for i in range(rng.randint(0, 4))}
    return rng.choice([1, -2.5e300, None, True, "text", "é😀", 12345678901234567890])


def values_of(value):
    """What the scan counts: every value, keys included, and an empty array or object twice."""
    if isinstance(value, list):
        return 1 + (not value) + sum(values_of(item) for item in value)
    if isinstance(value, dict):
        return 1 + (not value) + len(value) + sum(values_of(item) for item in value.values())
    return 1


def depth_of(value):
    if isinstance(value, list):
        return 1 + max([depth_of(item) for item in value] or [0])
    if isinstance(value, dict):
        return 1 + max([depth_of(item) for item in value.values()] or [0])
    return 0


@pytest.mark.parametrize("chunk", [1 << 22, 7, 1])
def test_the_scan_counts_values_and_depth_of_random_json_in_any_chunks(monkeypatch, chunk):
    monkeypatch.setattr(bounded_json, "SCAN_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(200):
        value = random_json(rng)
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        for codes in (np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
                      np.frombuffer(text.encode("utf-32-le"), dtype="<u4")):
            scan = JsonScan("meta", "'meta'", 10**9, 10**9).feed(codes)
            assert (scan.values, scan.deepest) == (values_of(value), depth_of(value)), text
        assert parse_bounded(text.encode("utf-8"), "meta", "'meta'", 10**9, 10**9) == value


@pytest.mark.parametrize("text", [
    "[" + ",".join(["[]"] * 50_000) + "]",
    "[" + ",".join(['{"a":0}'] * 50_000) + "]",
    "{" + ",".join(f'"{i}":{i}.5' for i in range(50_000)) + "}",
    "[" + ",".join(['"\U0001F600a"'] * 50_000) + "]",
    '["\U0001F600' + "a" * 500_000 + '"]',
])
def test_what_parsing_builds_stays_under_the_estimate_checked_against_the_budget(text):
    data = text.encode("utf-8")
    scan = JsonScan("meta", "'meta'", 10**9, 10**9).feed(np.frombuffer(data, dtype=np.uint8))
    tracemalloc.start()
    try:
        json.loads(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < BYTES_PER_VALUE * scan.values + BYTES_PER_TEXT_BYTE * len(data)


@pytest.mark.parametrize("text, words", [
    ("[" * 40 + "]" * 40, ["'meta' nests arrays and objects 40 levels deep, over the limit of 32"]),
    ("[" + "0," * 2000 + "0]", ["'meta' holds more than 1,000 JSON values, the limit"]),
    ('{"s": "' + "]" * 3000 + '", "x": ' + "[" * 3000 + "]" * 3000 + "}", ["deeper than JSON can be read"]),
    ("1" * 5000, ["not valid JSON", "4300 digits"]),
    ('{"a": "\xff"}', ["not valid JSON"]),
    ("", ["not valid JSON"]),
])
def test_text_past_a_limit_or_not_json_is_refused_naming_the_field(text, words):
    data = text.encode("latin-1")
    with pytest.raises(InputError) as caught:
        parse_bounded(data, "checkpoint", "'meta'", 1000 if "0," in text else 10**6, 32)
    assert caught.value.field == "checkpoint"
    for word in words:
        assert word in caught.value.message


def test_parsing_that_would_pass_the_memory_budget_is_refused(monkeypatch):
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "1MiB")
    data = ("[" + ",".join(["[]"] * 20_000) + "]").encode()
    with pytest.raises(InputError) as caught:
        parse_bounded(data, "checkpoint", "'meta'", 10**6, 32)
    assert "parsing 'meta' (40,001 JSON values)" in caught.value.message
    assert "BACKPROP_MEMORY_BUDGET" in caught.value.message
