"""Checkpoints: a round trip keeps everything, and every kind of bad file is refused clearly."""

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from backprop.checkpoint import FORMAT_VERSION, HISTORY_ARRAYS, load_checkpoint, save_checkpoint
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


def read_meta(arrays):
    """The meta dict of raw arrays: UTF-8 bytes (version 2) or a unicode string (version 1)."""
    meta = arrays["meta"]
    return json.loads(meta.tobytes().decode("utf-8") if meta.dtype == np.uint8 else str(meta))


def write_meta(arrays, meta):
    """Put `meta` back in the form it was read from."""
    text = json.dumps(meta)
    arrays["meta"] = (np.frombuffer(text.encode("utf-8"), dtype=np.uint8) if arrays["meta"].dtype == np.uint8
                      else np.array(text))


def edit_meta(path, change):
    def edit(arrays):
        meta = read_meta(arrays)
        change(meta)
        write_meta(arrays, meta)
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

    def broken_write(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", broken_write)
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
    """Format version 2: meta as UTF-8 bytes, the weights stored, the history's records deflated;
    np.load reads every member without pickles."""
    with zipfile.ZipFile(trained[3]) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    weights = ["W1.npy", "W2.npy", "b1.npy", "b2.npy"]
    assert sorted(infos) == sorted(weights + ["meta.npy"] + [f"{name}.npy" for name in HISTORY_ARRAYS
                                                             if name.split(".")[1] not in
                                                             ("evaluations", "landscape")
                                                             and not name.endswith(("anchor", "diffs"))])
    assert all(infos[name].compress_type == zipfile.ZIP_STORED for name in weights)
    assert all(info.compress_type == zipfile.ZIP_DEFLATED for name, info in infos.items()
               if name not in weights)
    with np.load(trained[3], allow_pickle=False) as archive:
        assert archive["meta"].dtype == np.uint8 and archive["history.layers"].dtype == np.float32
        meta = json.loads(archive["meta"].tobytes())
    assert meta["version"] == FORMAT_VERSION == 2 and "iteration" not in meta["history"]


# -- issue 21: format version 2, version 1 still read, meta bounded, history arrays checked ---------
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def toy_run(steps=100):
    """A run with every record a History keeps: rows, unit health, histograms, parameter snapshots,
    test evaluations, a marker and a loss landscape (as tests/fixtures/make_checkpoint_v1.py)."""
    from backprop.data import Dataset
    from backprop.landscape import compute_landscape, random_plane
    from backprop.optimizers import make_optimizer
    from backprop.trainer import Trainer

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(60, 6))
    y = (x[:, 0] > 0.5).astype(np.int64) + (x[:, 1] > 0.5)
    data = Dataset("toy", x[:40], y[:40], x[40:], y[40:], ["0", "1", "2"], None)
    network = Network([6, 8, 4, 3], activation="tanh", output="softmax", init="xavier", seed=3)
    trainer = Trainer(network, make_optimizer("sgd", learning_rate=0.5), data, eval_every=25)
    trainer.step(steps - 30)
    trainer.change_setting("learning_rate", 0.2)
    trainer.step(30)
    landscape = compute_landscape(network, random_plane(network.params), x[:20], y[:20], 3,
                                  iteration=trainer.iteration)
    landscape.costs[0, 0] = np.nan  # as if cancelled there
    trainer.history.landscape = landscape
    config = TrainConfig(digits=None, layers=[8, 4, 3], activation="tanh", init="xavier", seed=3)
    return network, config, trainer.history


def assert_same_history(mine, theirs):
    for name in ("iterations", "epochs", "costs"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))
    for name in ("dW_norm", "db_norm", "W_norm", "dW_mean_abs", "update_ratio"):
        np.testing.assert_array_equal(mine.layer_stat(name), theirs.layer_stat(name))
    np.testing.assert_array_equal(mine.unit_health(), theirs.unit_health())
    for a, b in zip(mine.histograms.arrays(), theirs.histograms.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(mine.trajectory.snapshots(), theirs.trajectory.snapshots(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (mine.trajectory.stride, mine.trajectory.capacity) == (theirs.trajectory.stride,
                                                                  theirs.trajectory.capacity)
    for name in ("xs", "ys", "costs", "path"):
        np.testing.assert_array_equal(getattr(mine.landscape, name), getattr(theirs.landscape, name))
    assert mine.landscape.center_cost == theirs.landscape.center_cost
    assert mine.evaluations == theirs.evaluations and mine.markers == theirs.markers
    assert (mine.stride, mine.total_steps, mine.capacity, mine.divergence) == \
        (theirs.stride, theirs.total_steps, theirs.capacity, theirs.divergence)


def test_every_record_of_a_run_survives_a_round_trip(tmp_path):
    network, config, history = toy_run()
    assert len(history.trajectory) >= 3 and history.histograms.size and history.evaluations
    loaded = load_checkpoint(save_checkpoint(tmp_path / "run.npz", network, config, history))
    assert_same_history(loaded.history, history)
    assert all(isinstance(value, int) for record in loaded.history.evaluations
               for key, value in record.items() if key == "iteration")


def test_a_checkpoint_of_format_version_1_still_loads(tmp_path):
    """tests/fixtures/checkpoint_v1.npz was written by the code of format version 1 (meta a NumPy
    unicode string, the whole History in its JSON, the trajectory as base64); checkpoint_v1.json is
    what that code read back from it."""
    with np.load(FIXTURES / "checkpoint_v1.npz", allow_pickle=False) as archive:
        assert archive["meta"].dtype.kind == "U" and read_meta(archive)["version"] == 1
    expected = json.loads((FIXTURES / "checkpoint_v1.json").read_text())
    loaded = load_checkpoint(FIXTURES / "checkpoint_v1.npz")
    history = loaded.history
    assert loaded.meta["version"] == 1 and loaded.network.sizes == [6, 8, 4, 3]
    for (W, b), (W_old, b_old) in zip(loaded.network.params, expected["params"], strict=True):
        np.testing.assert_array_equal(W, W_old)
        np.testing.assert_array_equal(b, b_old)
    np.testing.assert_array_equal(history.costs, expected["costs"])
    np.testing.assert_array_equal(history.iterations, expected["iterations"])
    np.testing.assert_array_equal(history.layer_stat("dW_norm"), expected["dW_norm"])
    np.testing.assert_array_equal(history.unit_health(), expected["health"])
    iterations, snapshots = history.trajectory.snapshots()
    np.testing.assert_array_equal(iterations, expected["trajectory_iterations"])
    np.testing.assert_array_equal(snapshots, np.array(expected["snapshots"], dtype=np.float32))
    hist_iterations, _, _, shares = history.histograms.arrays()
    np.testing.assert_array_equal(hist_iterations, expected["histogram_iterations"])
    np.testing.assert_array_equal(shares, expected["shares"])
    np.testing.assert_array_equal(history.landscape.costs, expected["landscape_costs"])
    assert history.evaluations == expected["evaluations"] and history.markers == expected["markers"]
    assert history.total_steps == expected["total_steps"]
    # saved again it is version 2, smaller, and the same run
    again = load_checkpoint(save_checkpoint(tmp_path / "v2.npz", loaded.network, loaded.config, history))
    assert again.meta["version"] == 2
    assert_same_history(again.history, history)
    assert (tmp_path / "v2.npz").stat().st_size < (FIXTURES / "checkpoint_v1.npz").stat().st_size


def test_history_arrays_are_kept_as_arrays_not_text(tmp_path):
    """Issue 21, item 7: version 1 kept the history in meta as JSON in 4-byte characters (36.5 MB
    for the tutorial's 1.2 MB of weights). Now meta is a few kB, and the file holds little more
    than the weights and the history's own arrays."""
    network = Network([200, 100, 1], seed=1)
    history = History(network.n_layers)
    for i in range(5000):
        history.append(i, i / 100, 1 / (i + 1), np.full((2, 5), i, dtype=np.float32), np.full((1, 2), 0.5))
    rng = np.random.default_rng(0)
    params = network.params
    for i in range(5000):  # a trajectory of parameters that wander
        if history.trajectory.wants(i, 20_000):
            params = [(W + rng.normal(0, 0.01, W.shape), b) for W, b in params]
        history.trajectory.add(i, params, batch_size=20_000)
    assert 16 <= len(history.trajectory) <= 32
    path = save_checkpoint(tmp_path / "big.npz", network, history=history)
    with zipfile.ZipFile(path) as archive:
        meta_size = archive.getinfo("meta.npy").file_size
        diffs = archive.getinfo("history.trajectory.diffs.npy")
    assert meta_size < 4000
    weights = sum(W.nbytes + b.nbytes for W, b in network.params)
    trajectory = 2 * history.trajectory.n_params * len(history.trajectory)  # float16 differences
    assert diffs.file_size == trajectory + 128  # the .npy header
    assert path.stat().st_size < weights + trajectory + 300_000  # the rows: 5000 x 72 bytes, deflated
    loaded = load_checkpoint(path).history
    np.testing.assert_array_equal(loaded.trajectory.snapshots()[1], history.trajectory.snapshots()[1])
    np.testing.assert_array_equal(loaded.costs, history.costs)


def test_meta_over_its_size_limit_is_refused_from_its_header(trained, monkeypatch):
    import backprop.checkpoint as checkpoint

    path = trained[3]
    message = refused_with(path, lambda arrays: arrays.update(meta=np.zeros(checkpoint.MAX_META_BYTES + 1,
                                                                            dtype=np.uint8)))
    assert "'meta'" in message and "over the limit of 4.2 MB" in message
    # version 1's unicode meta has a limit of its own, in characters
    monkeypatch.setattr(checkpoint, "LEGACY_MAX_META_CHARS", 1000)
    message = refused_with(path, lambda arrays: arrays.update(meta=np.array("x" * 1001)))
    assert "'meta' is 1,001 characters" in message and "limit of 1,000" in message


def refused_with(path, change, *words):
    rewrite(path, change)
    return refused(path, *words)


def junk_meta(n_lists):
    return json.dumps({"format": "backprop-studio-checkpoint", "version": 2,
                       "junk": [[] for _ in range(n_lists)]}, separators=(",", ":"))


@pytest.mark.parametrize("form", ["bytes", "unicode"])
def test_meta_holding_too_many_values_is_refused_before_it_is_parsed(trained, monkeypatch, form):
    """Issue 21, item 1: `{"junk":[[],[],...]}` parses into objects worth 26 bytes per byte of text."""
    import json as json_module

    import backprop.checkpoint as checkpoint

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed")
    text = junk_meta(600_000)
    monkeypatch.setattr(json_module, "loads", no_parsing)
    monkeypatch.setattr(checkpoint, "LEGACY_MAX_META_VALUES", 500_000)  # 16 million: see test_hostile_round3
    meta = np.frombuffer(text.encode(), dtype=np.uint8) if form == "bytes" else np.array(text)
    refused_with(trained[3], lambda arrays: arrays.update(meta=meta),
                 "'meta' holds more than 500,000 JSON values, the limit")


def test_meta_nested_too_deeply_is_refused(trained):
    text = '{"format": "backprop-studio-checkpoint", "version": 2, "x": ' + "[" * 40 + "]" * 40 + "}"
    message = refused_with(trained[3], lambda arrays: arrays.update(
        meta=np.frombuffer(text.encode(), dtype=np.uint8)), "'meta'", "41 levels deep", "limit of 32")
    assert message
    hidden = '{"format": "backprop-studio-checkpoint", "version": 2, "s": "' + "]" * 5000 + '", "x": ' + \
             "[" * 5000 + "]" * 5000 + "}"  # the string's brackets hide the depth from the scan
    meta = np.frombuffer(hidden.encode(), dtype=np.uint8)
    refused_with(trained[3], lambda arrays: arrays.update(meta=meta), "'meta'", "deeper")


def test_meta_that_is_not_utf8_json_or_says_the_other_version_is_refused(trained):
    path = trained[3]
    edit_meta(path, lambda meta: meta.update(version=1))
    refused(path, "format version 1")
    refused_with(path, lambda arrays: arrays.update(meta=np.frombuffer(b'{"a": "\xff"}', dtype=np.uint8)),
                 "'meta' is not valid JSON")
    refused_with(path, lambda arrays: arrays.update(meta=np.frombuffer(b"1" * 5000, dtype=np.uint8)),
                 "'meta' is not valid JSON")
    refused_with(path, lambda arrays: arrays.update(meta=np.zeros((2, 2), dtype=np.uint8)), "'meta' must be")


def test_history_arrays_in_a_version_1_file_are_unexpected(trained):
    path = trained[3]

    def as_version_1(arrays):
        meta = read_meta(arrays)
        meta["version"] = 1
        arrays["meta"] = np.array(json.dumps(meta))
    refused_with(path, as_version_1, "unexpected arrays", "history.iteration")


def test_history_arrays_are_checked_against_the_network_before_they_are_read(tmp_path, monkeypatch):
    network, config, history = toy_run()
    path = save_checkpoint(tmp_path / "run.npz", network, config, history)
    reads = []
    original_read = load_checkpoint.__globals__["NpzArchive"].read

    def counting_read(self, name):
        reads.append(name)
        return original_read(self, name)
    monkeypatch.setattr(load_checkpoint.__globals__["NpzArchive"], "read", counting_read)

    def check(change, *words):
        saved = path.read_bytes()
        rewrite(path, change)
        reads.clear()
        refused(path, *words)
        assert reads == ["meta"]  # refused from the headers: no weight or history array was read
        path.write_bytes(saved)

    n_params = sum(W.size + b.size for W, b in network.params)
    check(lambda arrays: arrays.update({"history.trajectory.anchor": np.zeros(n_params + 1, np.float32)}),
          "history.trajectory.anchor", f"{n_params} (parameters)")
    check(lambda arrays: arrays.update({"history.trajectory.diffs": arrays["history.trajectory.diffs"]
                                        .astype(np.float32)}), "history.trajectory.diffs", "dtype float32")
    check(lambda arrays: arrays.update({"history.cost": np.zeros(3)}), "history.cost", "rows",
          "history.epoch")
    check(lambda arrays: arrays.update({"history.trajectory.iterations": np.zeros(40, np.int64),
                                        "history.trajectory.diffs": np.zeros((40, n_params), np.float16)}),
          "40 snapshots", "limit of 32")
    check(lambda arrays: arrays.update({"history.landscape.costs": np.zeros((60, 3))}), "60 grid rows")
    check(lambda arrays: arrays.update({"history.layers": np.zeros((100, 9, 5), np.float32)}),
          "history.layers", "(layers)")

    def no_landscape(arrays):
        meta = read_meta(arrays)
        meta["history"]["landscape"] = None
        write_meta(arrays, meta)
    check(no_landscape, "history.landscape", "no history.landscape")

    def rows_over_capacity(arrays):
        meta = read_meta(arrays)
        meta["history"]["capacity"] = 50
        write_meta(arrays, meta)
    check(rows_over_capacity, "history.cost", "100 rows", "limit of 50")


@pytest.mark.parametrize("change, words", [
    (lambda history: history.update(n_layers=10**9), ["history has 1000000000 layers"]),
    (lambda history: history.update(capacity=10**12), ["capacity 1000000000000"]),
    (lambda history: history.update(capacity=1e400), ["capacity inf"]),
    (lambda history: history["histograms"].update(capacity=10**9), ["histograms", "capacity 1000000000"]),
    (lambda history: history["trajectory"].update(max_bytes=10**15), ["trajectory", "snapshots"]),
    (lambda history: history.update(stride=1e400), ["history is invalid"]),
    (lambda history: history.update(markers=[{"iteration": "x"}]), ["markers"]),
    (lambda history: history.update(markers="abc"), ["markers"]),
    (lambda history: history.update(divergence=[1, 2]), ["divergence"]),
    (lambda history: history.update(histograms=[1, 2]), ["no history.histograms"]),
])
def test_a_hostile_history_description_is_refused_before_it_allocates(tmp_path, change, words):
    """A History built from meta allocates by its layers and capacities: all are checked first."""
    network, config, history = toy_run()
    path = save_checkpoint(tmp_path / "run.npz", network, config, history)
    edit_meta(path, lambda meta: change(meta["history"]))
    refused(path, *words)
