"""Summaries for the app's data explorer; plain NumPy so they are cheap to test and to cache."""

from __future__ import annotations

import numpy as np

from .tasks import Dataset


def class_counts(ds: Dataset) -> dict[str, list[int]]:
    return {
        "train": np.bincount(ds.y_train, minlength=ds.n_classes).tolist(),
        "test": np.bincount(ds.y_test, minlength=ds.n_classes).tolist(),
    }


def mean_images(ds: Dataset) -> np.ndarray:
    """Mean training image per class, (n_classes, *image_shape); (n_classes, n_features) without a shape."""
    means = np.zeros((ds.n_classes, ds.n_features), dtype=np.float64)
    for c in range(ds.n_classes):
        members = ds.x_train[ds.y_train == c]
        if len(members):
            means[c] = members.mean(axis=0, dtype=np.float64)
    return means.reshape(ds.n_classes, *ds.image_shape) if ds.image_shape else means


def sample_images(
    ds: Dataset, per_class: int = 8, seed: int = 0, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` seeded random images of each class, grouped by class, for a grid."""
    x, y = (ds.x_train, ds.y_train) if split == "train" else (ds.x_test, ds.y_test)
    rng = np.random.RandomState(seed)
    picks = []
    for c in range(ds.n_classes):
        where = np.flatnonzero(y == c)
        picks.append(rng.choice(where, size=min(per_class, len(where)), replace=False))
    index = np.concatenate(picks).astype(np.int64)
    images = x[index]
    if ds.image_shape:
        images = images.reshape(len(index), *ds.image_shape)
    return images, y[index]


def dataset_facts(ds: Dataset) -> dict:
    """Everything the explorer shows at once: sizes, names, counts per class and mean images."""
    counts = class_counts(ds)
    return {
        "name": ds.name,
        "n_train": int(len(ds.y_train)),
        "n_test": int(len(ds.y_test)),
        "n_features": ds.n_features,
        "n_classes": ds.n_classes,
        "image_shape": ds.image_shape,
        "class_names": list(ds.class_names),
        "train_counts": counts["train"],
        "test_counts": counts["test"],
        "mean_images": mean_images(ds),
    }
