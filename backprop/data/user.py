"""A person's own data as a .npz file: check it thoroughly, because the messages are all they get."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from backprop.errors import InputError

MAX_LABEL = 255  # the same limit as IDX labels (one unsigned byte)


def load_npz(path: str | Path, seed: int = 1):
    """Return (x_train, y_train, x_test, y_test, image_shape) with x as float64 in [0, 1], y as int64.

    Expected arrays: ``x`` (n, ...) and ``y`` (n,), optionally ``x_test`` and ``y_test``. Pixel values:
    integers must lie in 0..255 and are divided by 255; floats must already lie in [0, 1] (they are
    not rescaled, since guessing a scale hides mistakes). Without test arrays, a seeded, stratified
    1/7 of each class becomes the test set (MNIST's 10,000 of 70,000).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "path", f"{path} does not exist or is not a file; expected a .npz with arrays x and y"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(str(path), f"cannot be read as a NumPy .npz file: {exc}") from exc
    for name in ("x", "y"):
        if name not in arrays:
            raise InputError(
                str(path),
                f"has no array '{name}' (found: {', '.join(sorted(arrays)) or 'none'}); "
                "expected x (n, ...) and y (n,), optionally x_test and y_test",
            )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise InputError(str(path), "has only one of x_test and y_test; give both or neither")

    x = _pixels(arrays["x"], path, "x")
    y = _labels(arrays["y"], path, "y", len(x))
    if "x_test" in arrays:
        x_test = _pixels(arrays["x_test"], path, "x_test")
        y_test = _labels(arrays["y_test"], path, "y_test", len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise InputError(
                str(path),
                f"x_test items have shape {x_test.shape[1:]} but x items have {x.shape[1:]}; they must match",
            )
    else:
        test = stratified_test_mask(y, seed)
        x, y, x_test, y_test = x[~test], y[~test], x[test], y[test]
        if len(x_test) == 0:
            raise InputError(
                str(path),
                f"holds too few items ({len(y)}) to split off a test set; add more or give x_test and y_test",
            )

    image_shape = _image_shape(x.shape[1:])
    return (x.reshape(len(x), -1), y, x_test.reshape(len(x_test), -1), y_test, image_shape)


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
    if x.ndim < 2 or len(x) == 0:
        raise InputError(
            str(path),
            f"array {name} has shape {x.shape}; expected (n, features) or (n, rows, cols) with n >= 1",
        )
    if x.dtype.kind in "ui":
        if x.min() < 0 or x.max() > 255:
            raise InputError(
                str(path),
                f"array {name} holds integers from {x.min()} to {x.max()}; integer pixels must lie in 0..255",
            )
        return x.astype(np.float64) / 255.0
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise InputError(str(path), f"array {name} holds NaN or infinite values")
        if x.min() < 0 or x.max() > 1:
            raise InputError(
                str(path),
                f"array {name} holds floats from {x.min():g} to {x.max():g}; float pixels "
                "must lie in [0, 1] (store uint8 0..255 or divide by the maximum first)",
            )
        return x.astype(np.float64)
    raise InputError(
        str(path), f"array {name} has dtype {x.dtype}; expected unsigned/signed integers or floats"
    )


def _labels(y: np.ndarray, path: Path, name: str, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise InputError(
            str(path), f"array {name} has shape {y.shape}; expected one label per item, shape ({n},)"
        )
    if len(y) != n:
        x_name = "x" if name == "y" else "x_test"
        raise InputError(
            str(path),
            f"array {name} holds {len(y)} labels but {x_name} holds {n} items; the counts must match",
        )
    if y.dtype.kind not in "ui":
        raise InputError(
            str(path), f"array {name} has dtype {y.dtype}; labels must be integers 0..{MAX_LABEL}"
        )
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
