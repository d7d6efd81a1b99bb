"""Shipped MNIST, task building, caching and a person's own IDX / .npz files."""

import gzip
import hashlib
import shutil
import struct

import mnist as python_mnist
import numpy as np
import pytest

from backprop.data import (
    SHIPPED_MNIST,
    ChecksumError,
    Dataset,
    clear_memory_cache,
    dataset_facts,
    load_idx,
    load_task,
    sample_images,
)
from backprop.data import idx as idx_module
from backprop.data import tasks as tasks_module
from backprop.data.idx import read_manifest
from backprop.errors import InputError

# The well-known MD5 sums of the uncompressed MNIST files (data/mnist/README.md).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def shipped_raw():
    return load_idx(SHIPPED_MNIST, expected=read_manifest(SHIPPED_MNIST / "SHA256SUMS"))


# --- shipped files ---------------------------------------------------------------------------


def test_shipped_files_match_manifest_and_original_md5():
    manifest = read_manifest(SHIPPED_MNIST / "SHA256SUMS")
    assert sorted(manifest) == sorted(f"{name}.gz" for name in MNIST_MD5)
    for name, md5 in MNIST_MD5.items():
        packed = (SHIPPED_MNIST / f"{name}.gz").read_bytes()
        assert hashlib.sha256(packed).hexdigest() == manifest[f"{name}.gz"]
        assert hashlib.md5(gzip.decompress(packed)).hexdigest() == md5
    readme = (SHIPPED_MNIST / "README.md").read_text()
    for credit in ("Yann LeCun", "Corinna Cortes", "Christopher J.C. Burges", "CC BY-SA 3.0"):
        assert credit in readme


def test_shipped_facts():
    raw = shipped_raw()
    assert raw.x_train.shape == (60000, 784) and raw.x_test.shape == (10000, 784)
    assert raw.image_shape == (28, 28)
    assert [(raw.y_train == d).sum() for d in (5, 8)] == [5421, 5851]
    assert [(raw.y_test == d).sum() for d in (5, 8)] == [892, 974]
    assert raw.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert raw.y_test[:5].tolist() == [7, 2, 1, 0, 4]


# --- tasks -----------------------------------------------------------------------------------


def test_tutorial_task_has_the_tutorials_order():
    ds = load_task()
    raw = shipped_raw()
    # The tutorial's recipe, computed independently: 5s then 8s in file order, one RNG for both shuffles.
    rng = np.random.RandomState(1)
    train = np.concatenate([np.where(raw.y_train == 5)[0], np.where(raw.y_train == 8)[0]])
    rng.shuffle(train)
    test = np.concatenate([np.where(raw.y_test == 5)[0], np.where(raw.y_test == 8)[0]])
    rng.shuffle(test)

    assert isinstance(ds, Dataset) and ds.name == "mnist 5 vs 8"
    assert ds.x_train.shape == (11272, 784) and ds.x_test.shape == (1866, 784)
    assert ds.class_names == ["5", "8"] and ds.n_classes == 2 and ds.n_features == 784
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float64
    assert ds.x_train.flags.c_contiguous and ds.x_test.flags.c_contiguous
    np.testing.assert_array_equal(ds.y_train, (raw.y_train[train] == 8).astype(int))
    np.testing.assert_array_equal(ds.y_test, (raw.y_test[test] == 8).astype(int))
    np.testing.assert_array_equal(ds.x_train[:50], raw.x_train[train[:50]] / 255.0)
    np.testing.assert_array_equal(ds.x_test[-50:], raw.x_test[test[-50:]] / 255.0)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


def test_all_ten_classes_in_file_order_and_float32():
    ds = load_task(digits=None, dtype="float32")
    assert ds.name == "mnist 10 classes"
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.class_names == [str(d) for d in range(10)]
    assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9] and ds.y_test[:5].tolist() == [7, 2, 1, 0, 4]


def test_subset_is_stratified_seeded_and_reproducible():
    a = load_task(subset=500, seed=3)
    b = load_task(subset=500, seed=3)
    c = load_task(subset=500, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert len(a.y_train) == 500
    full = load_task(seed=3)
    assert abs(a.y_train.mean() - full.y_train.mean()) < 0.01  # class shares kept
    assert len(a.y_test) == round(500 * 1866 / 11272)
    assert set(a.y_test.tolist()) == {0, 1}

    tiny = load_task(digits=None, subset=10)
    assert sorted(tiny.y_train.tolist()) == list(range(10))  # one per class
    assert set(tiny.y_test.tolist()) == set(range(10))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"digits": (5, 5)}, "digits"),
        ({"digits": (5, 10)}, "digits"),
        ({"digits": "58x"}, "digits"),
        ({"subset": 1}, "subset"),
        ({"subset": 11273}, "subset"),
        ({"digits": None, "subset": 9}, "subset"),
        ({"subset": 2.5}, "subset"),
        ({"dtype": "int8"}, "dtype"),
        ({"seed": -1}, "seed"),
        ({"dataset": "cifar"}, "dataset"),
        ({"dataset": "fashion-mnist"}, "dataset"),
        ({"dataset": "emnist-digits"}, "dataset"),
        ({"dataset": "npz"}, "path"),
    ],
)
def test_bad_task_arguments_name_their_field(kwargs, field):
    with pytest.raises(InputError) as info:
        load_task(**kwargs)
    assert info.value.field == field


def test_missing_download_says_what_to_run():
    with pytest.raises(InputError, match="python -m backprop data download fashion-mnist"):
        load_task("fashion-mnist")


def test_facts_and_samples():
    ds = load_task()
    facts = dataset_facts(ds)
    assert facts["train_counts"] == [5421, 5851] and facts["test_counts"] == [892, 974]
    assert facts["mean_images"].shape == (2, 28, 28)
    np.testing.assert_allclose(facts["mean_images"][1].ravel(), ds.x_train[ds.y_train == 1].mean(axis=0))
    images, labels = sample_images(ds, per_class=4, seed=0)
    again, _ = sample_images(ds, per_class=4, seed=0)
    assert images.shape == (8, 28, 28) and labels.tolist() == [0] * 4 + [1] * 4
    np.testing.assert_array_equal(images, again)


# --- cache -----------------------------------------------------------------------------------


def test_second_load_uses_cache_not_python_mnist(monkeypatch):
    shipped_raw()  # make sure the cache exists
    clear_memory_cache()

    def refuse(*args, **kwargs):
        raise AssertionError("python-mnist was called although the cache should hold the data")

    monkeypatch.setattr(python_mnist, "MNIST", refuse)
    raw = shipped_raw()
    assert raw.x_train.shape == (60000, 784) and not raw.x_train.flags.writeable
    assert shipped_raw() is raw  # memoised in-process


def test_damaged_cache_is_detected_and_rebuilt(monkeypatch):
    shipped_raw()
    key = next(d for d in idx_module.cache_dir().iterdir()  # the cache folder is shared: other entries too
               if (d / "labels.npy").exists() and (d / "labels.npy").stat().st_size == 10128)
    data = bytearray((key / "images.npy").read_bytes())
    data[-1] ^= 0xFF
    (key / "images.npy").write_bytes(bytes(data))
    clear_memory_cache()
    calls = []
    real = python_mnist.MNIST
    monkeypatch.setattr(python_mnist, "MNIST", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.warns(UserWarning, match="damaged"):
        raw = shipped_raw()
    assert len(calls) == 1  # only the damaged (test) split was parsed again
    assert raw.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert (
        hashlib.md5(raw.x_test.tobytes()).hexdigest()
        == hashlib.md5(
            gzip.decompress((SHIPPED_MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())[16:]
        ).hexdigest()
    )


def test_damaged_shipped_file_is_reported(tmp_path, monkeypatch):
    copy = tmp_path / "mnist"
    shutil.copytree(SHIPPED_MNIST, copy)
    target = copy / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))
    monkeypatch.setattr(tasks_module, "SHIPPED_MNIST", copy)
    with pytest.raises(ChecksumError) as info:
        load_task()
    assert "t10k-labels-idx1-ubyte.gz" in info.value.field and "SHA-256" in info.value.message


# --- a person's IDX folder -------------------------------------------------------------------


def write_idx(path, array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 2051 if array.ndim == 3 else 2049
    data = struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def make_idx_folder(folder, gz=False, n_train=30, n_test=12, shape=(4, 5)):
    folder.mkdir(exist_ok=True)
    rng = np.random.RandomState(0)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", rng.randint(0, 256, (n, *shape)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n) % 3)
    return folder


@pytest.mark.parametrize("gz", [False, True])
def test_user_idx_folder_loads(tmp_path, gz):
    folder = make_idx_folder(tmp_path / "mine", gz=gz)
    ds = load_task("idx", digits=None, path=str(folder))
    assert ds.x_train.shape == (30, 20) and ds.x_test.shape == (12, 20)
    assert ds.image_shape == (4, 5) and ds.class_names == ["0", "1", "2"]
    binary = load_task("idx", digits=(2, 0), path=str(folder))
    assert binary.class_names == ["2", "0"] and len(binary.y_train) == 20


def corrupt_magic(folder):
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(30), magic=2051 + 7)


def corrupt_count(folder):
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(11))


def corrupt_truncate(folder):
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])


def corrupt_header(folder):
    (folder / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")


def corrupt_size(folder):
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((12, 5, 5)))


def corrupt_missing(folder):
    (folder / "t10k-images-idx3-ubyte").unlink()


@pytest.mark.parametrize(
    "damage, words",
    [
        (corrupt_magic, ["train-labels-idx1-ubyte", "magic number 2058", "expected 2049"]),
        (corrupt_count, ["t10k-labels-idx1-ubyte", "11 labels", "12 images"]),
        (corrupt_truncate, ["train-images-idx3-ubyte", "truncated"]),
        (corrupt_header, ["t10k-labels-idx1-ubyte", "truncated"]),
        (corrupt_size, ["training images are (4, 5)", "test images are (5, 5)"]),
        (corrupt_missing, ["lacks t10k-images-idx3-ubyte"]),
    ],
)
def test_user_idx_folder_problems_are_named(tmp_path, damage, words):
    folder = make_idx_folder(tmp_path / "mine")
    damage(folder)
    with pytest.raises(InputError) as info:
        load_task("idx", digits=None, path=str(folder))
    text = str(info.value)
    for word in words:
        assert word in text


def test_truncated_gzip_idx_is_named(tmp_path):
    folder = make_idx_folder(tmp_path / "mine", gz=True)
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(InputError, match="train-images-idx3-ubyte.gz.*(truncated|cannot be read)"):
        load_task("idx", digits=None, path=str(folder))


def test_digits_absent_from_user_labels(tmp_path):
    folder = make_idx_folder(tmp_path / "mine")
    with pytest.raises(InputError, match="5 does not occur.*0, 1, 2") as info:
        load_task("idx", path=str(folder))
    assert info.value.field == "digits"


# --- a person's .npz -------------------------------------------------------------------------


def test_npz_with_and_without_test_arrays(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (70, 6, 6)).astype(np.uint8)
    y = np.arange(70) % 2
    np.savez(tmp_path / "split.npz", x=x, y=y)
    ds = load_task("npz", digits=None, path=str(tmp_path / "split.npz"))
    assert ds.x_test.shape == (10, 36) and ds.x_train.shape == (60, 36)  # 1/7 of each class
    assert np.bincount(ds.y_test).tolist() == [5, 5]
    assert ds.image_shape == (6, 6)
    assert ds.x_train.max() <= 1.0 and ds.x_train.dtype == np.float64
    again = load_task("npz", digits=None, path=str(tmp_path / "split.npz"))
    np.testing.assert_array_equal(ds.x_test, again.x_test)

    flat = rng.rand(20, 7)
    np.savez(tmp_path / "given.npz", x=flat, y=np.arange(20) % 4, x_test=flat[:8], y_test=np.arange(8) % 4)
    ds = load_task("npz", digits=(3, 1), path=str(tmp_path / "given.npz"), dtype="float32")
    assert ds.image_shape is None and ds.n_features == 7 and ds.x_test.shape == (4, 7)
    assert ds.class_names == ["3", "1"] and ds.x_train.dtype == np.float32


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"x": np.zeros((4, 9))}, ["no array 'y'"]),
        ({"x": np.zeros((4, 9)), "y": np.zeros(3, int)}, ["3 labels", "4 items"]),
        ({"x": np.zeros((4, 9)), "y": np.array([0, 1, -1, 0])}, ["labels from -1"]),
        ({"x": np.zeros((4, 9)), "y": np.array([0, 1, 256, 0])}, ["to 256", "0..255"]),
        ({"x": np.zeros((4, 9)), "y": np.zeros(4)}, ["dtype float64", "integers"]),
        ({"x": np.full((4, 9), 2.0), "y": np.zeros(4, int)}, ["floats from 2 to 2", "[0, 1]"]),
        ({"x": np.full((4, 9), 300), "y": np.zeros(4, int)}, ["0..255"]),
        ({"x": np.zeros(4), "y": np.zeros(4, int)}, ["shape (4,)"]),
        ({"x": np.zeros((4, 9)), "y": np.zeros(4, int), "x_test": np.zeros((2, 9))}, ["only one of"]),
        (
            {
                "x": np.zeros((4, 9)),
                "y": np.zeros(4, int),
                "x_test": np.zeros((2, 8)),
                "y_test": np.zeros(2, int),
            },
            ["x_test items have shape (8,)"],
        ),
    ],
)
def test_npz_problems_are_named(tmp_path, arrays, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError) as info:
        load_task("npz", digits=None, path=str(path))
    assert "bad.npz" in info.value.field
    for word in words:
        assert word in info.value.message


def test_npz_that_is_not_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz.*cannot be read"):
        load_task("npz", digits=None, path=str(path))
    with pytest.raises(InputError, match="does not exist"):
        load_task("npz", digits=None, path=str(tmp_path / "absent.npz"))
