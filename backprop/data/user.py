"""A person's own data as a .npz file: check it thoroughly, because the messages are all they get."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from backprop.budget import check_bytes
from backprop.errors import InputError
from backprop.npz import Member, NpzArchive

MAX_LABEL = 255  # the same limit as IDX labels (one unsigned byte)


def load_npz(path: str | Path, seed: int = 1):
    """Return (x_train, y_train, x_test, y_test, image_shape): x as uint8 0..255 (integer pixels)
    or floats in [0, 1], as stored (load_task scales and converts them); y as int64.

    Expected arrays: ``x`` (n, ...) and ``y`` (n,), optionally ``x_test`` and ``y_test``. Pixel values:
    integers must lie in 0..255; floats must already lie in [0, 1] (they are not rescaled, since
    guessing a scale hides mistakes). Without test arrays, a seeded, stratified 1/7 of each class
    becomes the test set (MNIST's 10,000 of 70,000). The archive is read member by member: the
    arrays' declared shapes, dtypes and sizes are checked (and against the memory budget) before
    any of them is read.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "path", f"{path} does not exist or is not a file; expected a .npz with arrays x and y"
        )
    with NpzArchive(path, str(path), "the file") as archive:
        members = archive.members
        for name in ("x", "y"):
            if name not in members:
                raise InputError(
                    str(path),
                    f"has no array '{name}' (found: {', '.join(sorted(members)) or 'none'}); "
                    "expected x (n, ...) and y (n,), optionally x_test and y_test",
                )
        if ("x_test" in members) != ("y_test" in members):
            raise InputError(str(path), "has only one of x_test and y_test; give both or neither")
        splits = [("x", "y")] + ([("x_test", "y_test")] if "x_test" in members else [])
        for x_name, y_name in splits:
            _check_declared(members[x_name], members[y_name], path)
        if "x_test" in members and members["x_test"].shape[1:] != members["x"].shape[1:]:
            raise InputError(
                str(path),
                f"x_test items have shape {members['x_test'].shape[1:]} but x items have "
                f"{members['x'].shape[1:]}; they must match",
            )
        # What load_task makes of them: the stored pixels, a copy when a test set is split off,
        # and the scaled float64 images.
        pixels = [members[x_name] for x_name, _ in splits]
        check_bytes(sum(2 * m.nbytes + 8 * math.prod(m.shape) for m in pixels), str(path),
                    " and ".join(f"{m.name} of shape {m.shape}" for m in pixels) + ", as training data,")
        x = _pixels(archive.read("x"), path, "x")
        y = _labels(archive.read("y"), path, "y")
        if "x_test" in members:
            x_test = _pixels(archive.read("x_test"), path, "x_test")
            y_test = _labels(archive.read("y_test"), path, "y_test")
    if "x_test" not in members:
        test = stratified_test_mask(y, seed)
        x, y, x_test, y_test = x[~test], y[~test], x[test], y[test]
        if len(x_test) == 0:
            raise InputError(
                str(path),
                f"holds too few items ({len(y)}) to split off a test set; add more or give x_test and y_test",
            )

    image_shape = _image_shape(x.shape[1:])
    return (x.reshape(len(x), -1), y, x_test.reshape(len(x_test), -1), y_test, image_shape)


def _check_declared(x: Member, y: Member, path: Path) -> None:
    """Shapes and dtypes as the headers declare them, before reading the arrays."""
    if len(x.shape) < 2 or x.shape[0] == 0:
        raise InputError(
            str(path),
            f"array {x.name} has shape {x.shape}; expected (n, features) or (n, rows, cols) with n >= 1",
        )
    if x.dtype.kind not in "uif":
        raise InputError(
            str(path), f"array {x.name} has dtype {x.dtype}; expected unsigned/signed integers or floats"
        )
    if len(y.shape) != 1:
        raise InputError(
            str(path),
            f"array {y.name} has shape {y.shape}; expected one label per item, shape ({x.shape[0]},)",
        )
    if y.shape[0] != x.shape[0]:
        raise InputError(
            str(path),
            f"array {y.name} holds {y.shape[0]} labels but {x.name} holds {x.shape[0]} items; "
            "the counts must match",
        )
    if y.dtype.kind not in "ui":
        raise InputError(
            str(path), f"array {y.name} has dtype {y.dtype}; labels must be integers 0..{MAX_LABEL}"
        )


def stratified_test_mask(y: np.ndarray, seed: int, fraction: float = 1 / 7) -> np.ndarray:
    """Mark round(fraction * count) items of each class (seeded), keeping file order elsewhere."""
    rng = np.random.RandomState(seed)
    mask = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        k = int(round(len(where) * fraction))
        if k:
            mask[rng.choice(where, size=k, replace=False)] = True
    return mask


def _pixels(x: np.ndarray, path: Path, name: str) -> np.ndarray:
    """Check the values of pixels whose shape and dtype _check_declared accepted."""
    if x.dtype.kind in "ui":
        if x.min() < 0 or x.max() > 255:
            raise InputError(
                str(path),
                f"array {name} holds integers from {x.min()} to {x.max()}; integer pixels must lie in 0..255",
            )
        return x.astype(np.uint8, copy=False)  # load_task divides by 255
    if not np.all(np.isfinite(x)):
        raise InputError(str(path), f"array {name} holds NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise InputError(
            str(path),
            f"array {name} holds floats from {x.min():g} to {x.max():g}; float pixels "
            "must lie in [0, 1] (store uint8 0..255 or divide by the maximum first)",
        )
    return x


def _labels(y: np.ndarray, path: Path, name: str) -> np.ndarray:
    """Check the values of labels whose shape and dtype _check_declared accepted."""
    if y.min() < 0 or y.max() > MAX_LABEL:
        raise InputError(
            str(path),
            f"array {name} holds labels from {y.min()} to {y.max()}; labels must lie in 0..{MAX_LABEL}",
        )
    return y.astype(np.int64)


def _image_shape(item_shape: tuple[int, ...]) -> tuple[int, int] | None:
    if len(item_shape) == 2:
        return (int(item_shape[0]), int(item_shape[1]))
    if len(item_shape) == 1:
        side = int(round(item_shape[0] ** 0.5))
        return (side, side) if side * side == item_shape[0] else None
    return None
