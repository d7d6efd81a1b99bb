"""Small 2D data sets that train in seconds (the problems of TensorFlow Playground, plus two moons).

Points lie in the plane [-6, 6]²; each set is drawn from `numpy.random.default_rng(seed)`, so one
seed always gives the same points. Classification labels are 0 and 1; regression targets lie in
about [-1, 1]. `noise` is a percentage (0-50, or up to 80 as TensorFlow Playground allows from a
link) that blurs the classes the way each problem allows:
a jittered position decides the label (circle, XOR, plane, multi-Gaussian), the points themselves
are jittered (spiral, moons), or the clusters widen (Gaussian). The network sees *features* of a
point (any of x1, x2, x1², x2², x1·x2, sin x1, sin x2), so the input layer's size is the number
of features chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backprop.errors import InputError

PLANE_RADIUS = 6.0  # points and the pictures of the plane span [-6, 6] on both axes
CLASSIFICATION = {
    "circle": "a disc of one class inside a ring of the other",
    "xor": "the four quadrants, opposite ones alike (exclusive or)",
    "gauss": "two Gaussian clusters",
    "spiral": "two interleaved spiral arms",
    "moons": "two interlocking half circles",
}
REGRESSION = {
    "plane": "a tilted plane: the target rises with x1 + x2",
    "multi-gauss": "six Gaussian bumps, alternately up and down",
}
TOY_DATASETS = (*CLASSIFICATION, *REGRESSION)
# Feature name -> (label, function of the plane coordinates x1, x2). Names are safe in a link.
FEATURES = {
    "x1": ("x₁", lambda x1, x2: x1),
    "x2": ("x₂", lambda x1, x2: x2),
    "x1sq": ("x₁²", lambda x1, x2: x1 * x1),
    "x2sq": ("x₂²", lambda x1, x2: x2 * x2),
    "x1x2": ("x₁·x₂", lambda x1, x2: x1 * x2),
    "sinx1": ("sin x₁", lambda x1, x2: np.sin(x1)),
    "sinx2": ("sin x₂", lambda x1, x2: np.sin(x2)),
}
DEFAULT_FEATURES = ("x1", "x2")
MIN_POINTS, MAX_POINTS = 10, 5000
MAX_NOISE = 80  # TensorFlow Playground takes up to 80 from a link (its slider widens to it)
NOISE_SLIDER = 50  # ... and its slider's usual end
MIN_TRAIN_SHARE, MAX_TRAIN_SHARE = 10, 90


@dataclass(frozen=True)
class ToySet:
    """One drawn 2D problem, split into training and test points."""

    plane_train: np.ndarray  # (n_train, 2) the points' coordinates x1, x2
    target_train: np.ndarray  # (n_train,) int64 labels 0/1, or float targets for regression
    plane_test: np.ndarray
    target_test: np.ndarray
    features: tuple[str, ...]

    @property
    def x_train(self) -> np.ndarray:
        return feature_map(self.plane_train, self.features)

    @property
    def x_test(self) -> np.ndarray:
        return feature_map(self.plane_test, self.features)


def is_regression(dataset: str) -> bool:
    return dataset in REGRESSION


def check_features(features) -> tuple[str, ...]:
    """A tuple of feature names in the table's order; accepts 'x1,x2' or a sequence."""
    if isinstance(features, str):
        features = [part.strip() for part in features.split(",") if part.strip()]
    try:
        chosen = set(features)
    except TypeError:
        raise InputError("features", f"{features!r} is not a list of feature names") from None
    unknown = sorted(map(str, chosen - set(FEATURES)))
    if unknown:
        raise InputError("features", f"{', '.join(unknown)} unknown; choose from {', '.join(FEATURES)}")
    if not chosen:
        raise InputError("features", f"choose at least one of {', '.join(FEATURES)}")
    return tuple(name for name in FEATURES if name in chosen)


def feature_map(plane: np.ndarray, features) -> np.ndarray:
    """(n, len(features)) inputs for the network from (n, 2) plane coordinates."""
    x1, x2 = plane[:, 0], plane[:, 1]
    columns = [FEATURES[name][1](x1, x2) for name in check_features(features)]
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=plane.dtype)


def _whole(value, field, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float)) or value != int(value):
        raise InputError(field, f"{value!r} is not a whole number from {low} to {high}")
    if not low <= value <= high:
        raise InputError(field, f"must be from {low} to {high}, got {value}")
    return int(value)


def make_toy(dataset: str, points: int = 500, noise: float = 0, train_share: float = 50,
             features=DEFAULT_FEATURES, seed: int = 1) -> ToySet:
    """Draw `points` points of a problem and split them, `train_share` percent for training."""
    if dataset not in TOY_DATASETS:
        raise InputError("dataset", f"{dataset!r} is not a 2D data set; "
                                    f"choose one of {', '.join(TOY_DATASETS)}")
    points = _whole(points, "points", MIN_POINTS, MAX_POINTS)
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.number)) \
            or not 0 <= noise <= MAX_NOISE:
        raise InputError("noise", f"{noise!r} is not allowed; use a percentage from 0 to {MAX_NOISE}")
    train_share = _whole(train_share, "train_share", MIN_TRAIN_SHARE, MAX_TRAIN_SHARE)
    features = check_features(features)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise InputError("seed", f"{seed!r} is not allowed; use an integer in 0..2**32-1")
    rng = np.random.default_rng(int(seed))
    plane, target = _GENERATORS[dataset](rng, points, float(noise) / 100.0)
    order = rng.permutation(points)
    n_train = points * train_share // 100  # TensorFlow Playground's split: floor(n * share / 100)
    train, test = order[:n_train], order[n_train:]
    return ToySet(plane[train], target[train], plane[test], target[test], features)


# -- the problems (each: rng, number of points, noise as a fraction 0-0.5 -> plane, target) ------

def _uniform(rng, n, radius=PLANE_RADIUS):
    return rng.uniform(-radius, radius, size=(n, 2))


def _halves(n):
    first = (n + 1) // 2
    return first, n - first


def _circle(rng, n, noise):
    radius = 5.0
    inner, outer = _halves(n)
    r = np.concatenate([rng.uniform(0, radius * 0.5, inner), rng.uniform(radius * 0.7, radius, outer)])
    angle = rng.uniform(0, 2 * np.pi, n)
    plane = np.stack([r * np.sin(angle), r * np.cos(angle)], axis=1)
    seen = plane + _uniform(rng, n, radius) * noise  # the label of a jittered position
    return plane, (np.hypot(seen[:, 0], seen[:, 1]) < radius * 0.5).astype(np.int64)


def _xor(rng, n, noise):
    plane = _uniform(rng, n, 5.0)
    plane += np.where(plane > 0, 0.3, -0.3)  # keep points off the axes, where the label flips
    seen = plane + _uniform(rng, n, 5.0) * noise
    return plane, (seen[:, 0] * seen[:, 1] >= 0).astype(np.int64)


def _gauss(rng, n, noise):
    positive, negative = _halves(n)
    spread = np.sqrt(0.5 + 3.5 * noise / 0.5)  # variance 0.5 without noise, 4 at 50%
    centres = np.concatenate([np.full((positive, 2), 2.0), np.full((negative, 2), -2.0)])
    plane = centres + rng.normal(0, spread, size=(n, 2))
    return plane, np.concatenate([np.ones(positive), np.zeros(negative)]).astype(np.int64)


def _spiral(rng, n, noise):
    parts = []
    for label, count in zip((1, 0), _halves(n), strict=True):
        t = np.arange(count) / count
        angle = 1.75 * 2 * np.pi * t + (0 if label else np.pi)
        arm = np.stack([5 * t * np.sin(angle), 5 * t * np.cos(angle)], axis=1)
        parts.append((arm + rng.uniform(-1, 1, size=(count, 2)) * noise, np.full(count, label)))
    return np.concatenate([p for p, _ in parts]), np.concatenate([y for _, y in parts]).astype(np.int64)


def _moons(rng, n, noise):
    upper, lower = _halves(n)
    a = rng.uniform(0, np.pi, upper)
    b = rng.uniform(0, np.pi, lower)
    # The classic two moons (x in [-1, 2], y in [-0.5, 1]) centred on the origin and scaled by 3.5.
    moon_upper = np.stack([np.cos(a), np.sin(a)], axis=1)
    moon_lower = np.stack([1 - np.cos(b), 0.5 - np.sin(b)], axis=1)
    plane = (np.concatenate([moon_upper, moon_lower]) - [0.5, 0.25]) * 3.5
    plane += rng.normal(0, 2.0 * noise, size=(n, 2))
    return plane, np.concatenate([np.ones(upper), np.zeros(lower)]).astype(np.int64)


def _plane(rng, n, noise):
    plane = _uniform(rng, n)
    seen = plane + _uniform(rng, n) * noise
    return plane, (seen[:, 0] + seen[:, 1]) / 10.0


BUMPS = np.array([[-4, 2.5, 1], [0, 2.5, -1], [4, 2.5, 1], [-4, -2.5, -1], [0, -2.5, 1], [4, -2.5, -1]])


def _multi_gauss(rng, n, noise):
    plane = _uniform(rng, n)
    seen = plane + _uniform(rng, n) * noise
    distance = np.hypot(seen[:, None, 0] - BUMPS[:, 0], seen[:, None, 1] - BUMPS[:, 1])
    height = BUMPS[:, 2] * np.clip(1 - distance / 2, 0, 1)  # (n, 6): each bump's signed height
    strongest = np.abs(height).argmax(axis=1)
    return plane, height[np.arange(n), strongest]


_GENERATORS = {"circle": _circle, "xor": _xor, "gauss": _gauss, "spiral": _spiral, "moons": _moons,
               "plane": _plane, "multi-gauss": _multi_gauss}
