"""Turn a data source into a learning task: pick classes, order, subset, scale, dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backprop.budget import check_bytes
from backprop.errors import InputError
from backprop.paths import PROJECT_ROOT, datasets_dir

from .download import EMNIST_MANIFEST, REGISTRY, is_complete
from .download import EMNIST_VARIANTS as EMNIST_SUBSETS
from .idx import load_idx, read_manifest
from .toy2d import DEFAULT_FEATURES, TOY_DATASETS, is_regression, make_toy
from .user import load_npz

SHIPPED_MNIST = PROJECT_ROOT / "data" / "mnist"

DIGIT_NAMES = [str(d) for d in range(10)]
FASHION_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
LETTER_NAMES = ["N/A"] + [chr(ord("A") + i) for i in range(26)]  # EMNIST letters are labelled 1..26
EMNIST_VARIANTS = {f"emnist-{variant}": variant for variant in EMNIST_SUBSETS}
DATASETS = ("mnist", "fashion-mnist", *EMNIST_VARIANTS, "idx", "npz", *TOY_DATASETS)


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray  # (n_train, n_features), values in [0, 1], C-contiguous
    y_train: np.ndarray  # (n_train,) int64 in 0..n_classes-1; float targets for a regression task
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, int] | None  # None when features are not a square-or-given image
    # 2D data sets (toy2d) only: each point's plane coordinates, and the features the network sees
    plane_train: np.ndarray | None = None
    plane_test: np.ndarray | None = None
    features: tuple[str, ...] | None = None
    regression: bool = False  # targets are numbers (one output, class_names == ["target"])
    # Data sets of files only: each training sample's position in its source's training split (file
    # order), and the source's label of each class; what label edits and suspects refer to.
    source_index: np.ndarray | None = None
    source_labels: tuple[int, ...] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of its samples and targets, both splits: what keeping it loaded costs."""
        return sum(array.nbytes for array in (self.x_train, self.y_train, self.x_test, self.y_test)
                   if array is not None)


def load_task(
    dataset: str = "mnist",
    digits: tuple[int, int] | None = (5, 8),
    subset: int | None = None,
    seed: int = 1,
    dtype: str = "float64",
    path: str | None = None,
    points: int = 500,
    noise: float = 0,
    train_share: int = 50,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    label_edits: str | None = None,
) -> Dataset:
    """Load a classification task.

    ``digits=(a, b)`` gives a binary task (label 0 for a, 1 for b) in the order of the original
    tutorial: indices of a then b in file order, shuffled by ``RandomState(seed)``, the same generator
    then shuffling the test indices. With ``digits=None`` all classes are kept in file order, labels
    renumbered 0..k-1 in ascending order of the original label. ``subset=N`` keeps a seeded, stratified
    N training items (at least one per class) and a proportional, stratified part of the test set.
    The 2D data sets (backprop.data.toy2d) draw ``points`` points with ``noise`` percent noise,
    ``train_share`` percent of them for training, and give the network the chosen ``features``;
    other data sets ignore these four. ``label_edits`` names a frozen list of label edits of this data
    set (backprop.data.label_edits): its excluded training images are left out and its relabelled
    ones take their new label before anything else is chosen; the 2D data sets ignore it.
    """
    if dtype not in ("float64", "float32"):
        raise InputError("dtype", f"{dtype!r} is not supported; use 'float64' or 'float32'")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise InputError("seed", f"{seed!r} is not allowed; use an integer in 0..2**32-1")
    if dataset in TOY_DATASETS:
        return _toy_task(dataset, digits, subset, seed, dtype, points, noise, train_share, features)
    x_train, y_train, x_test, y_test, image_shape, names, title = _source(dataset, path, seed)
    kept = None  # every training image, unless label edits exclude some
    if label_edits is not None:
        from .label_edits import frozen_edits, source_key

        y_train, kept = frozen_edits(label_edits, source_key(dataset, x_train, y_train)).apply(y_train)
        title = f"{title}, label edits {label_edits}"

    present = sorted(set(np.unique(y_train if kept is None else y_train[kept]).tolist()))
    if digits is not None:
        a, b = _check_digits(digits, present, set(np.unique(y_test).tolist()), dataset)
        rng = np.random.RandomState(seed)
        of_a, of_b = (y_train == a), (y_train == b)
        if kept is not None:
            of_a, of_b = of_a & kept, of_b & kept
        train_idx = np.concatenate([np.flatnonzero(of_a), np.flatnonzero(of_b)])
        rng.shuffle(train_idx)
        test_idx = np.concatenate([np.flatnonzero(y_test == a), np.flatnonzero(y_test == b)])
        rng.shuffle(test_idx)
        new_train = (y_train[train_idx] == b).astype(np.int64)
        new_test = (y_test[test_idx] == b).astype(np.int64)
        class_names = [names(a), names(b)]
        source_labels = (a, b)
        title = f"{title} {names(a)} vs {names(b)}"
    else:
        train_idx = np.arange(len(y_train)) if kept is None else np.flatnonzero(kept)
        keep = np.isin(y_test, present)  # a test label never seen in training cannot be learned
        test_idx = np.flatnonzero(keep)
        new_train = np.searchsorted(present, y_train[train_idx]).astype(np.int64)
        new_test = np.searchsorted(present, y_test[test_idx]).astype(np.int64)
        class_names = [names(label) for label in present]
        source_labels = tuple(present)
        title = f"{title} {len(present)} classes"

    if subset is not None:
        n_classes = len(class_names)
        if not isinstance(subset, (int, np.integer)) or isinstance(subset, bool):
            raise InputError("subset", f"{subset!r} is not a whole number of training images")
        if not n_classes <= subset <= len(new_train):
            raise InputError(
                "subset",
                f"{subset} is out of range; this task allows {n_classes} (one per class) "
                f"to {len(new_train)} training images",
            )
        rng = np.random.RandomState(seed)
        keep_train = stratified_pick(new_train, subset, n_classes, rng)
        n_test = min(len(new_test), max(n_classes, round(subset * len(new_test) / len(new_train))))
        keep_test = stratified_pick(new_test, n_test, n_classes, rng)
        train_idx, new_train = train_idx[keep_train], new_train[keep_train]
        test_idx, new_test = test_idx[keep_test], new_test[keep_test]
        title = f"{title}, subset {subset}"

    n_features = math.prod(x_train.shape[1:])
    check_bytes((len(train_idx) + len(test_idx)) * n_features * np.dtype(dtype).itemsize, "dataset",
                f"{title} as {dtype} ({len(train_idx):,} + {len(test_idx):,} images of {n_features:,} "
                "features)", "choose a subset, two classes or float32")
    return Dataset(
        name=title,
        x_train=_scale(x_train, train_idx, dtype),
        y_train=new_train,
        x_test=_scale(x_test, test_idx, dtype),
        y_test=new_test,
        class_names=class_names,
        image_shape=image_shape,
        source_index=train_idx,
        source_labels=tuple(int(label) for label in source_labels),
    )


@dataclass(frozen=True)
class TrainingSource:
    """A data set of files' training split as its source gives it: what label edits refer to."""

    dataset: str
    x_train: np.ndarray  # as stored (uint8 pixels, or floats in [0, 1]), (n, ...) ; never changed
    y_train: np.ndarray  # the source's labels
    image_shape: tuple[int, int] | None
    names: object  # label -> class name
    title: str

    @property
    def key(self) -> str:
        """`<dataset>-<checksum>` (backprop.data.label_edits.source_key)."""
        from .label_edits import source_key

        return source_key(self.dataset, self.x_train, self.y_train)


def training_source(dataset: str, path: str | None = None, seed: int = 1) -> TrainingSource:
    """The training split of a data set of files (not a 2D data set, which is drawn anew)."""
    if dataset in TOY_DATASETS:
        raise InputError("dataset", f"{dataset} is drawn anew from its settings; label edits and suspect "
                                    "labels need a data set of files (MNIST, a download, an upload)")
    x_train, y_train, _, _, image_shape, names, title = _source(dataset, path, seed)
    return TrainingSource(dataset, x_train, y_train, image_shape, names, title)


def stratified_pick(y: np.ndarray, total: int, n_classes: int, rng: np.random.RandomState) -> np.ndarray:
    """Positions of ``total`` items, each class in proportion (at least 1 when present), kept in order."""
    counts = np.bincount(y, minlength=n_classes)
    share = counts / counts.sum() * total
    take = np.minimum(counts, np.maximum(np.floor(share).astype(int), (counts > 0).astype(int)))
    while take.sum() < total:  # hand out what rounding left, largest remainder first
        room = np.where(take < counts, share - take, -np.inf)
        take[int(np.argmax(room))] += 1
    while take.sum() > total:  # the "at least 1" rule overshot: trim the biggest classes
        take[int(np.argmax(np.where(take > 1, take, -1)))] -= 1
    chosen = [rng.choice(np.flatnonzero(y == c), size=int(take[c]), replace=False) for c in range(n_classes)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _check_digits(digits, present: list[int], present_test: set[int], dataset: str) -> tuple[int, int]:
    allowed = f"labels present in {dataset}: {', '.join(map(str, present))}"
    try:
        a, b = (int(d) for d in digits)
    except (TypeError, ValueError):
        raise InputError(
            "digits",
            f"{digits!r} is not a pair of two labels; use e.g. (5, 8) or None for all classes ({allowed})",
        ) from None
    if a == b:
        raise InputError("digits", f"({a}, {b}) names the same label twice; the two labels must differ")
    for d in (a, b):
        if d not in present:
            raise InputError("digits", f"{d} does not occur in the training set ({allowed})")
        if d not in present_test:
            raise InputError("digits", f"{d} does not occur in the test set of {dataset}")
    return a, b


def _scale(x: np.ndarray, index: np.ndarray, dtype: str) -> np.ndarray:
    picked = x[index]  # fancy indexing copies, so the result is C-contiguous and writable
    if picked.dtype == np.uint8:
        if dtype == "float64":
            return picked / 255.0  # exactly the tutorial's images / 255.
        return np.divide(picked, np.float32(255), dtype=np.float32)
    return np.ascontiguousarray(picked, dtype=dtype)


def _source(dataset: str, path: str | None, seed: int):
    """Return raw arrays, image shape, a label -> name function and a title for ``dataset``."""
    if dataset == "mnist":
        raw = load_idx(SHIPPED_MNIST, expected=read_manifest(SHIPPED_MNIST / "SHA256SUMS"))
        return _idx_parts(raw, lambda d: DIGIT_NAMES[d], "mnist")
    if dataset == "fashion-mnist":
        spec = REGISTRY["fashion-mnist"]
        folder = _downloaded(spec, dataset)
        raw = load_idx(folder, expected={f.name: f.sha256 for f in spec.files})
        return _idx_parts(raw, lambda d: FASHION_NAMES[d], "fashion-mnist")
    if dataset in EMNIST_VARIANTS:
        variant = EMNIST_VARIANTS[dataset]
        folder = _downloaded(REGISTRY["emnist"], dataset)
        manifest = read_manifest(folder / EMNIST_MANIFEST)
        raw = load_idx(
            folder,
            emnist_variant=variant,
            expected={k: v for k, v in manifest.items() if k.startswith(f"emnist-{variant}-")},
        )
        names = (lambda d: LETTER_NAMES[d]) if variant == "letters" else (lambda d: DIGIT_NAMES[d])
        return _idx_parts(raw, names, dataset)
    if dataset in ("idx", "npz"):
        if not path:
            raise InputError(
                "path",
                f"dataset {dataset!r} needs a path: "
                f"{'a folder of four IDX files' if dataset == 'idx' else 'a .npz file'}",
            )
        if dataset == "idx":
            return _idx_parts(load_idx(Path(path)), str, f"idx {Path(path).name}")
        x_train, y_train, x_test, y_test, shape = load_npz(path, seed=seed)
        return x_train, y_train, x_test, y_test, shape, str, f"npz {Path(path).name}"
    raise InputError("dataset", f"{dataset!r} is unknown; choose one of {', '.join(DATASETS)}")


def _toy_task(dataset, digits, subset, seed, dtype, points, noise, train_share, features) -> Dataset:
    """A 2D data set as a task: its classes 0 and 1 (``digits`` (0, 1), (1, 0) or None), or its
    regression target (``digits`` None)."""
    if subset is not None:
        raise InputError("subset", f"{dataset} is drawn anew: set its number of points instead of a subset")
    toy = make_toy(dataset, points=points, noise=noise, train_share=train_share, features=features,
                   seed=seed)
    y_train, y_test = toy.target_train, toy.target_test
    if is_regression(dataset):
        if digits is not None:
            raise InputError("digits", f"{dataset} is a regression data set without classes; use 'all'")
        class_names, title = ["target"], f"{dataset} (regression)"
        y_train, y_test = y_train.astype(dtype), y_test.astype(dtype)
    elif digits is None:
        class_names, title = ["0", "1"], f"{dataset} 2 classes"
    else:
        a, b = _check_digits(digits, [0, 1], {0, 1}, dataset)
        y_train, y_test = (y_train == b).astype(np.int64), (y_test == b).astype(np.int64)
        class_names, title = [str(a), str(b)], f"{dataset} {a} vs {b}"
    return Dataset(
        name=f"{title}, {len(y_train) + len(y_test)} points, noise {noise}%",
        x_train=toy.x_train.astype(dtype),
        y_train=y_train,
        x_test=toy.x_test.astype(dtype),
        y_test=y_test,
        class_names=class_names,
        image_shape=None,
        plane_train=toy.plane_train,
        plane_test=toy.plane_test,
        features=toy.features,
        regression=is_regression(dataset),
    )


def _downloaded(spec, dataset: str) -> Path:
    folder = datasets_dir() / spec.folder
    if not is_complete(spec, folder, verify=False):
        raise InputError(
            "dataset",
            f"{dataset} is not downloaded yet (looked in {folder}); "
            f"run `python -m backprop data download {spec.name}` first",
        )
    return folder


def _idx_parts(raw, names, title):
    return raw.x_train, raw.y_train, raw.x_test, raw.y_test, raw.image_shape, names, title


# Images per training set and classes of the named data sets: what a set-up will load, known before
# loading it (a link's set-up is checked against the memory budget with it).
NAMED_SIZES = {"mnist": (60_000, 10), "fashion-mnist": (60_000, 10), "emnist-digits": (240_000, 10),
               "emnist-mnist": (60_000, 10), "emnist-letters": (124_800, 26)}


def nominal_size(config) -> tuple[int, int] | None:
    """(features, training samples) a set-up's data will have, about (a little over for two
    classes), without loading them; None for a person's own files (known only once read)."""
    if config.dataset in TOY_DATASETS:
        from .toy2d import check_features

        return len(check_features(config.features)), max(1, config.points * config.train_share // 100)
    if config.dataset not in NAMED_SIZES:
        return None
    n_train, n_classes = NAMED_SIZES[config.dataset]
    if config.digits is not None:
        n_train = int(n_train * 2 / n_classes * 1.1)  # classes are about equally common
    if config.subset is not None:
        n_train = min(n_train, config.subset)
    return 28 * 28, n_train


def nominal_classes(dataset: str) -> int:
    """Classes of a named data set (2 for a 2D classification set, 1 target for a regression one),
    known without loading it; 10 for a person's own data until it is read."""
    if dataset in TOY_DATASETS:
        return 1 if is_regression(dataset) else 2
    return NAMED_SIZES.get(dataset, (0, 10))[1]
