"""The cost over a plane through the current weights, and the path training took over it.

After Li, Xu, Taylor, Studer and Goldstein (2018), "Visualizing the Loss Landscape of Neural Nets":

- Random plane: two random Gaussian directions, each *filter-normalised*: every filter of the
  direction (for a dense layer, a row of W: one unit's incoming weights) is scaled to the norm
  of the same filter of the weights, so a step of 1 along it changes every unit by as much as
  its own weights are large and planes of different networks can be compared. Bias directions
  are zero, as in the paper's code (`ignore='biasbn'`): the plane moves the weights only.
- PCA plane: from the snapshots of the parameters kept along the run (History.trajectory), the
  matrix M of snapshot - final weights; its top two principal directions (PCA of M, centred as
  in the paper's code) span a plane through the final weights. The path is each snapshot's
  projection onto it and ends at (0, 0), the final weights themselves.

The cost is evaluated on a fixed, seeded sample of the training set (SAMPLE_SIZE images, one
batched forward pass per grid point) with the network's own `evaluate`, so the centre of a plane
is the current cost on that sample, exactly.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS
from .budget import (
    budget_text,
    format_bytes,
    largest_fitting_batch,
    memory_budget,
    parameter_count,
)
from .errors import InputError
from .network import EVAL_BLOCK, Network
from .parallel import chunk_bounds, map_chunks, workers
from .threads import _free_slot, _take_slot, max_training_threads

SAMPLE_SIZE = 2000
MIN_RESOLUTION, MAX_RESOLUTION = 3, 51
RANDOM_SPAN = 1.0  # the random plane covers -1..1 along each direction (the paper's default)
PATH_MARGIN = 0.25  # the PCA plane extends a quarter of the path's extent beyond it
MIN_SNAPSHOTS = 3  # a plane needs two directions of spread
KINDS = ("random", "pca")


def check_resolution(value):
    """Grid points per side, a whole number from MIN_RESOLUTION to MAX_RESOLUTION."""
    try:
        number = int(value)
        if isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError("resolution", f"{value!r} is not a whole number") from None
    if not MIN_RESOLUTION <= number <= MAX_RESOLUTION:
        raise InputError("resolution", f"must be from {MIN_RESOLUTION} to {MAX_RESOLUTION} points "
                                       f"per side, got {number}")
    return number


def flatten(params):
    """[(W, b), ...] as one vector (W1, b1, W2, b2, ... in order), in the parameters' dtype."""
    return np.concatenate([part.ravel() for W, b in params for part in (W, b)])


def unflatten(vector, like):
    """A vector back into [(W, b), ...] shaped and typed like `like`."""
    expected = sum(W.size + b.size for W, b in like)
    if len(vector) != expected:
        raise InputError("direction", f"has {len(vector)} numbers, the network {expected} parameters")
    out, start = [], 0
    for W, b in like:
        pair = []
        for part in (W, b):
            pair.append(np.asarray(vector[start:start + part.size], dtype=part.dtype).reshape(part.shape))
            start += part.size
        out.append(tuple(pair))
    return out


def evaluation_sample(n_samples, size=SAMPLE_SIZE, seed=0):
    """Sorted indices of a fixed, seeded sample of the training set (all of it when smaller)."""
    if n_samples <= size:
        return np.arange(n_samples)
    return np.sort(np.random.RandomState(seed).choice(n_samples, size=size, replace=False))


def filter_normalized_direction(params, rng):
    """A random direction [(dW, db), ...]: Gaussian, each row of dW scaled to the norm of the same
    row of W (a row whose weights are all zero stays zero), db = 0."""
    direction = []
    for W, b in params:
        d = rng.standard_normal(W.shape)
        weight_norms = np.linalg.norm(W.astype(np.float64), axis=1)
        d *= (weight_norms / np.maximum(np.linalg.norm(d, axis=1), 1e-300))[:, None]
        direction.append((d.astype(W.dtype), np.zeros_like(b)))
    return direction


@dataclass(frozen=True)
class Plane:
    """A plane through `center` (the weights [(W, b), ...]) spanned by two directions shaped alike."""

    kind: str  # "random" or "pca"
    center: list
    x_direction: list
    y_direction: list
    path: np.ndarray | None = None  # (k, 2) coordinates along the run, the last (0, 0): the centre
    path_iterations: np.ndarray | None = None  # (k,) the iteration of each path point
    explained: tuple | None = None  # PCA: the share of the path's variance along each direction

    def point(self, x, y, first_layer=0):
        """The parameters at (x, y): center + x * first direction + y * second (of the layers from
        `first_layer` on, counted from 0). Python floats: a NumPy float64 would turn float32 weights
        into float64."""
        x, y, layers = float(x), float(y), slice(first_layer, None)
        return [(W + x * dW + y * eW, b + x * db + y * eb)
                for (W, b), (dW, db), (eW, eb) in zip(self.center[layers], self.x_direction[layers],
                                                     self.y_direction[layers], strict=True)]


def random_plane(params, seed=0):
    """The plane through `params` along two filter-normalised random directions (seeded)."""
    rng = np.random.RandomState(seed)
    return Plane("random", list(params), filter_normalized_direction(params, rng),
                 filter_normalized_direction(params, rng))


def pca_plane(iterations, snapshots, params, final_iteration):
    """The plane through the final weights `params` along the top two principal directions of the
    snapshots (k, n_params) minus the final weights, and the path projected onto it."""
    if len(snapshots) < MIN_SNAPSHOTS:
        raise InputError("trajectory", f"the run has kept {len(snapshots)} parameter snapshot(s) so far; "
                                       f"train more steps (a plane needs {MIN_SNAPSHOTS}; small batches "
                                       "keep one every 32 steps at first)")
    final = flatten(params)
    M = snapshots - final.astype(np.float32)  # (k, n_params), float32: up to 32 x 10^6 numbers
    centred = M - M.mean(axis=0)
    gram = (centred @ centred.T).astype(np.float64)  # (k, k): the PCA without a (P, P) matrix
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]
    if eigenvalues[1] <= 1e-12 * max(eigenvalues[0], 1e-300):
        raise InputError("trajectory", "the weights moved along a single line so far (or not at all): "
                                       "train more steps for a plane")
    directions = []
    for j in range(2):
        d = (centred.T @ eigenvectors[:, j].astype(np.float32)).astype(np.float64)
        directions.append(d / np.linalg.norm(d))
    # Exactly orthonormal despite float32 sums: Gram-Schmidt the second against the first.
    directions[1] -= (directions[1] @ directions[0]) * directions[0]
    directions[1] /= np.linalg.norm(directions[1])
    path = np.stack([M.astype(np.float64) @ d for d in directions], axis=1)
    path = np.vstack([path, [0.0, 0.0]])  # the final weights: snapshot - final = 0
    explained = tuple(float(v) for v in eigenvalues[:2] / eigenvalues.sum())
    return Plane("pca", list(params), unflatten(directions[0], params), unflatten(directions[1], params),
                 path=path, path_iterations=np.append(np.asarray(iterations, dtype=np.int64),
                                                      int(final_iteration)),
                 explained=explained)


def _axis(low, high, count):
    """`count` coordinates from about `low` to about `high` (low <= 0 <= high) with 0.0 among them
    exactly (the centre of the plane is a grid point)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low <= 0:
        low, high = -1.0, 1.0
    below = int(round((count - 1) * -low / (high - low)))
    below = min(max(below, 1 if low < 0 else 0), count - 1 - (1 if high > 0 else 0))
    above = count - 1 - below
    step = max(-low / below if below else 0.0, high / above if above else 0.0)
    return np.arange(-below, above + 1) * step


def grid_axes(plane, resolution):
    """The x and y coordinates of a resolution x resolution grid over the plane."""
    resolution = check_resolution(resolution)
    if plane.path is None:
        axis = _axis(-RANDOM_SPAN, RANDOM_SPAN, resolution)
        return axis, axis.copy()
    axes = []
    for j in range(2):
        low, high = float(plane.path[:, j].min()), float(plane.path[:, j].max())
        margin = PATH_MARGIN * max(high - low, 1e-12)
        axes.append(_axis(low - margin, high + margin, resolution))
    return axes[0], axes[1]


@dataclass
class Landscape:
    """The cost on a grid over a plane; what the Inspect page draws and a checkpoint keeps."""

    kind: str
    iteration: int  # the iteration of the centre weights
    xs: np.ndarray
    ys: np.ndarray
    costs: np.ndarray  # (len(ys), len(xs)); NaN where not evaluated (cancelled)
    center_cost: float
    samples: int
    seconds: float
    complete: bool
    path: np.ndarray | None = None
    path_iterations: np.ndarray | None = None
    explained: tuple | None = None

    def to_dict(self):
        """Plain values, and the grid and path as arrays (float64 costs, NaN where not evaluated;
        int64 path iterations): backprop.checkpoint keeps each array as an .npz member."""
        def array(values, dtype):
            return None if values is None else np.array(values, dtype=dtype)

        return {"kind": self.kind, "iteration": int(self.iteration), "xs": array(self.xs, np.float64),
                "ys": array(self.ys, np.float64), "costs": array(self.costs, np.float64),
                "center_cost": float(self.center_cost), "samples": int(self.samples),
                "seconds": float(self.seconds), "complete": bool(self.complete),
                "path": array(self.path, np.float64),
                "path_iterations": array(self.path_iterations, np.int64),
                "explained": [float(v) for v in self.explained] if self.explained is not None else None}

    @classmethod
    def from_dict(cls, data):
        """From to_dict()'s output (e.g. a checkpoint's), or the lists a version 1 checkpoint kept
        (None for NaN), checking every shape."""
        try:
            kind = str(data["kind"])
            xs = np.asarray(data["xs"], dtype=np.float64)
            ys = np.asarray(data["ys"], dtype=np.float64)
            costs = np.asarray(data["costs"], dtype=np.float64)
            path = None if data.get("path") is None else np.asarray(data["path"], dtype=np.float64)
            path_iterations = None if data.get("path_iterations") is None else \
                np.asarray(data["path_iterations"], dtype=np.int64)
            explained = None if data.get("explained") is None else tuple(map(float, data["explained"]))
            landscape = cls(kind, int(data["iteration"]), xs, ys, costs, float(data["center_cost"]),
                            int(data["samples"]), float(data["seconds"]), bool(data["complete"]),
                            path, path_iterations, explained)
        except (KeyError, TypeError, ValueError) as error:
            raise InputError("landscape", f"is not a saved loss landscape: {error}") from None
        if kind not in KINDS or xs.ndim != 1 or ys.ndim != 1 or costs.shape != (len(ys), len(xs)) \
                or not MIN_RESOLUTION <= len(xs) <= MAX_RESOLUTION \
                or not MIN_RESOLUTION <= len(ys) <= MAX_RESOLUTION:
            raise InputError("landscape", f"has a {costs.shape} grid for {len(ys)} x {len(xs)} "
                                          f"coordinates of kind {kind!r}")
        if (path is None) != (path_iterations is None) or (path is not None and (
                path.ndim != 2 or path.shape[1] != 2 or len(path) != len(path_iterations))):
            raise InputError("landscape", "has a path whose points and iterations do not match")
        return landscape


class _Cancelled(Exception):
    """Cancel was pressed: the job stops between two groups of chunks, not after a whole point."""


def _check(cancel):
    if cancel is not None and cancel.is_set():
        raise _Cancelled


def _cost(network, X, Y, cancel=None):
    """network.evaluate(X, Y)[0] with the same blocks, chunks and sums (so exactly the same number),
    but `cancel` is looked at before each group of as many chunks as run at once: one evaluation of
    a large network takes seconds ([784, 2048, 2048, 2048, 1] on 2,000 samples: about 3 s on two
    cores), and Cancel (or a closed tab) must end the job within a second."""
    X = network.check_inputs(X)
    Y = network.check_labels(Y, X.shape[0])
    n = X.shape[0]

    def cost_sum(start, stop):
        _, Z_out = network._forward(X[start:stop], reuse=False)
        return network._cost_sum(Z_out, Y[start:stop])

    sums = []
    for block in range(0, n, EVAL_BLOCK):
        size = min(EVAL_BLOCK, n - block)
        bounds = chunk_bounds(size)
        if bounds is None:
            _check(cancel)
            sums.append(cost_sum(block, block + size))
            continue
        bounds = [(block + start, block + stop) for start, stop in bounds]
        at_once = max(1, workers())
        for first in range(0, len(bounds), at_once):
            _check(cancel)
            group = bounds[first:first + at_once]
            sums += map_chunks(lambda part, group=group: cost_sum(*group[part]), len(group))
    return sum(sums) / n


def _plane_costs(network, plane, X, Y, cancel=None):
    """cost(x, y) on the plane for the sample X, Y, batched through the first layer's linearity:
    Z1 = (W1 + x D1 + y E1) A0 + b1(x, y) = W1 A0 + x (D1 A0) + y (E1 A0) + b1(x, y), so the three
    products are computed once for the whole grid and each point costs element-wise work plus the
    later layers, which a network of the layers after the first evaluates from A1. Its chunks and
    sums are those of `network.evaluate`, so the centre's cost is the same number."""
    if network.n_layers < 2:
        def whole_network_cost(x, y):
            network.params = plane.point(x, y)
            return _cost(network, X, Y, cancel)
        return whole_network_cost
    rest = Network(network.sizes[1:], activation=network.activation, output=network.output,
                   dtype=network.dtype)
    bounds = chunk_bounds(X.shape[0]) or [(0, X.shape[0])]
    first = []
    for W in (plane.center[0][0], plane.x_direction[0][0], plane.y_direction[0][0]):
        parts = []
        for start, stop in bounds:
            _check(cancel)
            parts.append(np.matmul(W, X[start:stop].T))
        first.append(np.concatenate(parts, axis=1))
    activation = ACTIVATIONS[network.activation]

    def cost(x, y):
        Z1 = first[0] + x * first[1]
        Z1 += y * first[2]
        Z1 += plane.center[0][1] + x * plane.x_direction[0][1] + y * plane.y_direction[0][1]  # b1
        rest.params = plane.point(x, y, first_layer=1)
        return _cost(rest, activation(Z1, out=Z1).T, Y, cancel)
    return cost


def compute_landscape(network, plane, X, Y, resolution, iteration=0, progress=None, cancel=None):
    """The cost of `network` (its architecture; the weights come from the plane) over a grid on
    `plane`, evaluated on X, Y (a fixed sample, see evaluation_sample).

    progress(done, total) is called after each row of the grid; `cancel` (a threading.Event) is
    looked at before each point and within one (see _cost): once set, the landscape comes back
    with complete=False and NaN where nothing was evaluated (the centre's cost too, when it was
    cancelled before that)."""
    xs, ys = grid_axes(plane, resolution)
    twin = network.copy()
    X = twin.check_inputs(X)
    Y = twin.check_labels(Y, X.shape[0])
    started = time.perf_counter()
    costs = np.full((len(ys), len(xs)), np.nan)
    twin.params = list(plane.center)
    center_cost, complete = float("nan"), True
    try:
        center_cost = float(_cost(twin, X, Y, cancel))
        cost_at = _plane_costs(twin, plane, X, Y, cancel)
        with np.errstate(all="ignore"):  # far from the centre a cost may overflow: drawn as a gap
            for row, y in enumerate(ys):
                for column, x in enumerate(xs):
                    _check(cancel)
                    costs[row, column] = cost_at(float(x), float(y))  # Python floats keep float32 float32
                if progress is not None:
                    progress(row + 1, len(ys))
    except _Cancelled:
        complete = False
    costs[~np.isfinite(costs)] = np.nan
    return Landscape(plane.kind, int(iteration), xs, ys, costs, center_cost, int(X.shape[0]),
                     time.perf_counter() - started, complete, plane.path, plane.path_iterations,
                     plane.explained)


# -- memory: what a job allocates, checked before anything is --------------------------------------
def landscape_bytes(sizes, dtype, kind="random", samples=SAMPLE_SIZE, n_snapshots=0):
    """Bytes a landscape job of the network `sizes` ([n_0, ..., n_L]) takes at its peak, from the
    sizes alone (measured: [784, 2048, 2048, 2048, 1] float64 peaks at 619 MB with the centre, this
    says 776 MB):

    parameter copies (P parameters): the centre (the inspected copy the plane keeps), two
    directions, the job's own copy and, while the job starts, the copy compute_landscape makes
    (2P: Network() initialises one set, then takes the other); per point, the later layers' old and
    new parameters and two temporaries of the largest layer (W + x dW + y eW); the evaluation
    block: per sample, the first layer's three products, Z1 and a temporary, and every later
    layer's output; the sample of inputs (float64, and its copy in the network's dtype). The PCA
    plane adds its snapshot matrix twice in float32 and once in float64 (k x P) and two float64
    directions, while the plane is made."""
    sizes = [int(n) for n in sizes]
    itemsize = np.dtype(dtype).itemsize
    P = parameter_count(sizes)
    P_rest = parameter_count(sizes[1:]) if len(sizes) > 2 else P
    largest = max(fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False))
    n = min(int(samples), SAMPLE_SIZE)
    evaluation = n * (5 * sizes[1] + sum(sizes[2:]))
    parameters = 4 * P + max(2 * P, 2 * P_rest + 2 * largest + evaluation)
    total = itemsize * parameters + n * sizes[0] * (8 + itemsize)
    if kind == "pca":
        total += 16 * int(n_snapshots) * P + 16 * P
    return total


def check_landscape_memory(sizes, dtype, kind, resolution, samples=SAMPLE_SIZE, n_snapshots=0, beside=0,
                           beside_what="its training", advice=""):
    """Refuse a landscape job whose memory (landscape_bytes), with `beside` bytes the session holds
    already (`beside_what`: its training), is past the memory budget, before any plane is made;
    the message names the plane and resolution and what would fit. Returns the job's bytes."""
    needed = landscape_bytes(sizes, dtype, kind, samples, n_snapshots)
    budget = memory_budget()
    if needed + beside <= budget:
        return needed
    plane = "PCA plane" if kind == "pca" else "random plane"
    what = (f"the loss landscape on the {plane} at {int(resolution)} x {int(resolution)} points of the "
            f"network {[int(n) for n in sizes]} ({dtype}) would take {format_bytes(needed)}")
    if beside:
        what += f" beside the {format_bytes(beside)} {beside_what} takes: {format_bytes(needed + beside)}"
    if kind == "pca" and landscape_bytes(sizes, dtype, "random", samples) + beside <= budget:
        advice = "the random plane fits (" + format_bytes(landscape_bytes(sizes, dtype, "random", samples)) \
            + ")" + (f"; {advice}" if advice else "")
    elif needed > budget:
        advice = "even on its own it does not fit: inspect a network with fewer or smaller layers"
    resolution_note = "its resolution sets its time, not its memory"
    raise InputError("landscape", f"{what}, over {budget_text(budget)}; "
                                  + (f"{advice}; " if advice else "") + resolution_note)


def largest_batch_beside(sizes, dtype, optimizer_state_arrays, n_train, needed):
    """The largest batch size whose training (its step, or the evaluation block, whichever is
    larger) leaves `needed` bytes of the memory budget free; 0 if none does."""
    floor = min(int(n_train), EVAL_BLOCK)  # an evaluation of the test set takes this many samples
    largest = largest_fitting_batch(sizes, dtype, optimizer_state_arrays, most=n_train, reserve=needed)
    return largest if largest >= floor else 0


class LandscapeJob:
    """compute_landscape on a background thread, so a page can show its progress and cancel it.

    `done`/`total` count grid rows; `result` is the Landscape once finished (complete or
    cancelled), `error` the InputError or other exception that stopped it. The thread takes one of
    the server's training slots (backprop.threads: it works the cores like training does), so
    BACKPROP_MAX_TRAINING_THREADS caps landscapes and training together; none free, an InputError."""

    def __init__(self, network, plane, X, Y, resolution, iteration=0):
        self.resolution = check_resolution(resolution)
        self.kind = plane.kind
        self.iteration = int(iteration)
        self.done, self.total = 0, self.resolution
        self.result = None
        self.error = None
        self._cancel = threading.Event()
        self._slot = f"backprop-landscape-{id(self):x}"
        try:
            _take_slot(self._slot)
        except InputError:
            raise InputError("landscape", f"the server already runs {max_training_threads()} training or "
                                          "landscape jobs at once (its limit, BACKPROP_MAX_TRAINING_"
                                          "THREADS); wait for one to end, then compute it again") from None
        try:
            self._thread = threading.Thread(target=self._run, args=(network.copy(), plane, X, Y),
                                            name="backprop-landscape", daemon=True)
            self._thread.start()
        except BaseException:
            _free_slot(self._slot)
            raise

    def _run(self, network, plane, X, Y):
        try:
            self.result = compute_landscape(network, plane, X, Y, self.resolution, self.iteration,
                                            progress=self._progress, cancel=self._cancel)
        except Exception as error:  # reported on the page, never lost in a thread
            self.error = error
        finally:
            _free_slot(self._slot)

    def _progress(self, done, total):
        self.done, self.total = done, total

    @property
    def running(self):
        return self._thread.is_alive()

    def cancel(self):
        self._cancel.set()

    def wait(self, timeout=None):
        self._thread.join(timeout)
        return not self.running
