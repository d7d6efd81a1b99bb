"""Label edits (backprop.data.label_edits): kept beside the data set, honoured by load_task and so by
training when the set-up names them (the setting label_edits), and never a change to the data set's
files; an id is checked against the data set it was made for."""

import hashlib
import json

import numpy as np
import pytest

from backprop.config import TrainConfig
from backprop.data import load_task
from backprop.data.label_edits import (
    LabelEdits,
    freeze,
    frozen_edits,
    save_working,
    source_key,
    working_edits,
    working_path,
)
from backprop.data.tasks import SHIPPED_MNIST, training_source
from backprop.errors import InputError


def file_digests():
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(SHIPPED_MNIST.iterdir())}


def test_edits_apply_to_training_and_never_change_the_data_files():
    before = file_digests()
    source = training_source("mnist")
    y = source.y_train
    fives, eights, threes = (np.flatnonzero(y == d) for d in (5, 8, 3))
    edits = LabelEdits(key=source.key, n_train=len(y), labels=tuple(range(10)))
    edits = edits.exclude(fives[0]).exclude(eights[1]).relabel(threes[0], 5).relabel(fives[2], 8)
    save_working(edits)
    assert working_edits(source.key, len(y), range(10)) == edits
    edits_id = freeze(edits)
    plain = load_task("mnist", digits=(5, 8))
    edited = TrainConfig(label_edits=edits_id).validated().load_data()  # the tutorial's 5 vs 8
    assert len(edited.y_train) == len(plain.y_train) - 2 + 1
    where = {int(index): position for position, index in enumerate(edited.source_index)}
    assert fives[0] not in where and eights[1] not in where  # excluded
    assert edited.y_train[where[threes[0]]] == 0  # a 3 relabelled 5: class 0 of 5 vs 8
    assert edited.y_train[where[fives[2]]] == 1  # a 5 relabelled 8
    assert f"label edits {edits_id}" in edited.name
    every = load_task("mnist", digits=None, label_edits=edits_id)
    assert len(every.y_train) == len(y) - 2
    assert every.y_train[np.searchsorted(every.source_index, threes[0])] == 5
    # The data set's files, the parsed arrays and a set-up without edits are all as they were.
    assert file_digests() == before
    assert np.array_equal(training_source("mnist").y_train, y)
    again = load_task("mnist", digits=(5, 8))
    assert np.array_equal(again.y_train, plain.y_train) and np.array_equal(again.x_train, plain.x_train)
    assert source_key("mnist", source.x_train, source.y_train) == source.key


def test_an_edits_id_is_checked_against_the_data_set():
    source = training_source("mnist")
    with pytest.raises(InputError) as error:
        load_task("mnist", label_edits="0123456789ab")
    assert error.value.field == "label_edits" and "no label edits 0123456789ab" in error.value.message
    edits = LabelEdits(key="fashion-mnist-00000000abcd", n_train=3, labels=(0, 1)).exclude(1)
    other = freeze(edits)
    with pytest.raises(InputError) as error:
        frozen_edits(other, source.key)
    assert "are for the data set fashion-mnist-00000000abcd" in error.value.message
    with pytest.raises(InputError, match="label_edits"):
        TrainConfig(label_edits="../../etc").validated()
    with pytest.raises(InputError, match="is not a label of this data set"):
        LabelEdits(key=source.key, n_train=10, labels=(0, 1)).relabel(3, 7)
    with pytest.raises(InputError, match="not in the training set"):
        LabelEdits(key=source.key, n_train=10, labels=(0, 1)).exclude(10)


def test_a_damaged_list_of_edits_is_named():
    key = "npz-0123456789ab"
    path = working_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": 1, "key": key, "n_train": 5, "labels": [0, 1], "excluded": "x",
                                "relabelled": []}))
    with pytest.raises(InputError) as error:
        working_edits(key, 5, (0, 1))
    assert error.value.field == "label_edits" and "damaged" in error.value.message
    path.unlink()
    assert len(working_edits(key, 5, (0, 1))) == 0
