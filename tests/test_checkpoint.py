"""Checkpoints: a round trip keeps everything, and every kind of bad file is refused clearly."""

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from backprop.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.history import History
from backprop.network import Network


@pytest.fixture
def trained(tmp_path):
    net = Network([6, 4, 3], activation="tanh", output="softmax", init="xavier", seed=3)
    config = TrainConfig(digits=None, layers=[4, 3], activation="tanh", init="xavier", seed=3)
    history = History(net.n_layers)
    for i in range(5):
        history.append(i, i / 10, 1.0 / (i + 1), np.full((2, 5), i, dtype=np.float32))
    history.add_marker(3, "learning_rate", 0.1, 0.05)
    return net, config, history, save_checkpoint(tmp_path / "model.npz", net, config, history)


def rewrite(path, change):
    """Load the raw arrays, let `change` edit the dict, write it back as a plain .npz."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    change(arrays)
    np.savez(path, **arrays)


def edit_meta(path, change):
    def edit(arrays):
        meta = json.loads(str(arrays["meta"]))
        change(meta)
        arrays["meta"] = np.array(json.dumps(meta))
    rewrite(path, edit)


def refused(path, *words):
    with pytest.raises(InputError) as caught:
        load_checkpoint(path)
    assert caught.value.field == "checkpoint"
    for word in words:
        assert word in caught.value.message
    return caught.value.message


def test_round_trip_keeps_parameters_config_and_history(trained):
    net, config, history, path = trained
    loaded = load_checkpoint(path)
    assert loaded.network.config() == net.config()
    for (W, b), (W2, b2) in zip(net.params, loaded.network.params, strict=True):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)
    assert loaded.config == config.validated()
    np.testing.assert_array_equal(loaded.history.costs, history.costs)
    np.testing.assert_array_equal(loaded.history.layer_stat("W_norm"), history.layer_stat("W_norm"))
    assert loaded.history.markers == history.markers
    assert loaded.meta["version"] == FORMAT_VERSION and loaded.meta["saved_at"]


def test_file_like_object_and_float32_and_bare_network(tmp_path):
    net = Network([5, 3, 1], dtype="float32", seed=7)
    path = save_checkpoint(tmp_path / "plain", net)  # .npz is added
    assert path.name == "plain.npz"
    loaded = load_checkpoint(io.BytesIO(path.read_bytes()))
    assert loaded.network.dtype == "float32" and loaded.config is None and loaded.history is None
    np.testing.assert_array_equal(loaded.network.params[0][0], net.params[0][0])
    assert loaded.network.predict(np.ones((2, 5))).tolist() == net.predict(np.ones((2, 5))).tolist()


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    net = Network([4, 2, 1])
    path = save_checkpoint(tmp_path / "model.npz", net)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        save_checkpoint(path, Network([4, 2, 1], seed=2))
    assert path.read_bytes() == before  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


def test_refuses_a_file_that_is_not_an_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("hello, I am not a zip file")
    refused(path, "notes.npz")
    refused(tmp_path / "missing.npz", "not a file")


def test_refuses_a_truncated_file(trained, tmp_path):
    path = trained[3]
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:300])
    refused(cut)


def test_refuses_a_single_npy_array(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.zeros(3))
    refused(path, "single array")


class LeavesAMark:
    """Unpickling this object calls Path.touch(mark): proof that something was unpickled."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (Path.touch, (self.mark,))


@pytest.mark.parametrize("member", ["W1", "meta"])
def test_refuses_pickled_object_arrays_without_unpickling_them(trained, tmp_path, member):
    path = trained[3]
    mark = tmp_path / "unpickled"
    bomb = np.array([LeavesAMark(mark)], dtype=object)
    pickle.loads(pickle.dumps(bomb))  # the mark works: unpickling leaves it
    assert mark.exists()
    mark.unlink()
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    arrays[member] = bomb
    np.savez(path, **arrays)  # np.savez pickles object arrays
    refused(path, "pickle")
    assert not mark.exists()


def test_a_tiny_checkpoint_declaring_a_huge_network_is_refused_before_building_it(trained):
    """The issue's 1,330-byte checkpoint: meta names [784, 20000, 20000, 1] and holds no arrays."""
    path = trained[3]
    rewrite(path, lambda arrays: [arrays.pop(key) for key in list(arrays) if key != "meta"])
    edit_meta(path, lambda meta: meta.update(config=None, history=None,
                                             network={**meta["network"], "sizes": [784, 20000, 20000, 1],
                                                      "output": "sigmoid"}))
    assert path.stat().st_size < 2000
    message = refused(path, "[784, 20000, 20000, 1]", "BACKPROP_MEMORY_BUDGET", "GB")
    assert "network" in message


def test_a_checkpoint_whose_member_declares_a_huge_array_is_refused_before_reading_it(trained):
    """A W1 header declaring 500,000 x 1024 float64 (4 GB) over a few bytes of data."""
    path = trained[3]
    data = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            if info.filename != "W1.npy":
                bomb.writestr(info.filename, source.read(info))
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                      "shape": (500_000, 1024)})
        with bomb.open("W1.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(1 << 24)
            for _ in range(4):  # 64 MB of zeros: the member does not even hold what it declares
                member.write(zeros)
    path.write_bytes(data.getvalue())
    refused(path, "W1", "declares")


def test_meta_with_a_size_of_1e400_is_refused(trained):
    path = trained[3]
    edit_meta(path, lambda meta: meta["network"].update(sizes=[6, 1e400, 3]))
    refused(path, "network description")


def test_refuses_missing_arrays(trained):
    path = trained[3]
    rewrite(path, lambda arrays: arrays.pop("b2"))
    refused(path, "missing", "b2")


def test_refuses_unexpected_arrays(trained):
    path = trained[3]
    rewrite(path, lambda arrays: arrays.update(W9=np.zeros(2)))
    refused(path, "unexpected", "W9")


def test_refuses_wrong_shapes(trained):
    path = trained[3]
    rewrite(path, lambda arrays: arrays.update(W1=np.zeros((4, 7))))
    refused(path, "W1", "shape")


def test_refuses_wrong_dtype(trained):
    path = trained[3]
    rewrite(path, lambda arrays: arrays.update(W1=arrays["W1"].astype(np.float32)))
    refused(path, "W1", "dtype")


def test_refuses_non_finite_values(trained):
    path = trained[3]

    def poison(arrays):
        arrays["b1"] = arrays["b1"].copy()
        arrays["b1"][0, 0] = np.nan
    rewrite(path, poison)
    refused(path, "b1", "NaN")


def test_refuses_missing_or_broken_meta(trained, tmp_path):
    path = trained[3]
    rewrite(path, lambda arrays: arrays.pop("meta"))
    refused(path, "meta")
    other = tmp_path / "other.npz"
    np.savez(other, meta=np.array("{not json"), W1=np.zeros((2, 2)))
    refused(other, "JSON")
    np.savez(other, meta=np.array(json.dumps({"format": "something else"})))
    refused(other, "Backprop Studio")


def test_refuses_unknown_version(trained):
    path = trained[3]
    edit_meta(path, lambda meta: meta.update(version=99))
    refused(path, "version 99")


def test_refuses_a_config_that_does_not_describe_the_arrays(trained):
    path = trained[3]
    edit_meta(path, lambda meta: meta["network"].update(sizes=[6, 5, 3]))
    refused(path, "shape")
    edit_meta(path, lambda meta: meta["network"].update(sizes=[6, 4, 3], activation="swish"))
    refused(path, "activation")


def test_refuses_a_training_config_for_other_layers(trained):
    path = trained[3]
    edit_meta(path, lambda meta: meta["config"].update(layers=[8, 3]))
    refused(path, "layers")


def test_the_saved_file_is_a_plain_zip_of_npy_files(trained):
    with zipfile.ZipFile(trained[3]) as archive:
        assert sorted(archive.namelist()) == ["W1.npy", "W2.npy", "b1.npy", "b2.npy", "meta.npy"]
