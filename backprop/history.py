"""Per-step summaries of a run, in bounded memory.

Each step keeps a handful of numbers (cost, and for every layer five gradient and weight
statistics), never tensors. Past `capacity` rows the history halves itself, keeping every
other row, and from then on keeps every 2nd (4th, ...) step: a run of 10^6 steps costs the
same memory as one of `capacity` steps, and its shape is still all there.

Beside the rows: each hidden layer's dead and saturated shares per step (backprop.health), the
layers' activation histograms every few steps (`HistogramRecord`), a thinned record of the
parameters along the run for the loss landscape's trajectory (`Trajectory`), and the last loss
landscape computed for the run. The two records halve themselves the same way.
"""

import base64

import numpy as np

from .errors import InputError
from .health import HEALTH_STATS, HISTOGRAM_BINS
from .landscape import Landscape

LAYER_STATS = ("dW_norm", "db_norm", "W_norm", "dW_mean_abs", "update_ratio")
HISTOGRAM_CAPACITY = 200  # activation histograms kept (per layer), halved past this
# The records start with a stride of the smallest power of two whose steps see at least this many
# samples (at most MAX_FIRST_STRIDE), so their cost stays a small share of a step's at any batch size
# (a step's work grows with its batch, a histogram's or a snapshot's does not): full batches of the
# tutorial's 11,272 images keep histograms every 2nd step and snapshots every 8th at first, batches
# of 512 both every 32nd. Measured (benchmarks/bench_health.py) while training on both cores, a
# snapshot of the deep preset's 404,153 parameters takes about 20 ms: 8 steps apart, under 1%.
HISTOGRAM_SAMPLES_APART = 16384
SNAPSHOT_SAMPLES_APART = 65536
MAX_FIRST_STRIDE = 32
SNAPSHOT_BYTES = 8 * 2**20  # the trajectory's parameter snapshots, as float16 differences
MAX_SNAPSHOTS = 32
MIN_SNAPSHOTS = 4  # fewer fit in SNAPSHOT_BYTES: the network is too large for a trajectory


def first_stride(samples_apart, batch_size):
    """The smallest power of two s with s * batch_size >= samples_apart, at most MAX_FIRST_STRIDE."""
    stride = 1
    while stride * max(1, int(batch_size)) < samples_apart and stride < MAX_FIRST_STRIDE:
        stride *= 2
    return stride


def _encode(array):
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _decode(text, dtype, shape, field):
    try:
        raw = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise InputError(field, "is not base64 text") from None
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(raw) != expected:
        raise InputError(field, f"holds {len(raw)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


class HistogramRecord:
    """Each hidden layer's activation histogram (HISTOGRAM_BINS shares over [low, high]) on every
    `stride`-th step, at most `capacity` of them: full, it keeps every other and doubles the stride."""

    def __init__(self, n_hidden, capacity=HISTOGRAM_CAPACITY, stride=None):
        self.n_hidden = n_hidden
        self.capacity = max(2, int(capacity))
        self.stride = None if stride is None else max(1, int(stride))  # None: set by the first batch
        self.size = 0
        self._iteration = np.zeros(self.capacity, dtype=np.int64)
        self._low = np.zeros((self.capacity, n_hidden), dtype=np.float32)
        self._high = np.zeros((self.capacity, n_hidden), dtype=np.float32)
        self._shares = np.zeros((self.capacity, n_hidden, HISTOGRAM_BINS), dtype=np.float32)

    def wants(self, iteration, batch_size):
        """Whether a step over batch_size samples should take histograms (asked before every step)."""
        if self.stride is None:
            self.stride = first_stride(HISTOGRAM_SAMPLES_APART, batch_size)
        return self.n_hidden > 0 and iteration % self.stride == 0

    def add(self, iteration, low, high, shares):
        if self.stride is None or iteration % self.stride:
            return
        if self.size == self.capacity:
            self._halve()
            if iteration % self.stride:
                return
        i = self.size
        self._iteration[i] = iteration
        with np.errstate(over="ignore"):
            self._low[i], self._high[i], self._shares[i] = low, high, shares
        self.size += 1

    def _halve(self):
        self.stride *= 2
        keep = self._iteration[: self.size] % self.stride == 0
        n = int(keep.sum())
        for arr in (self._iteration, self._low, self._high, self._shares):
            arr[:n] = arr[: self.size][keep]
        self.size = n

    def arrays(self):
        """(iterations (m,), low (m, n_hidden), high (m, n_hidden), shares (m, n_hidden, bins))."""
        n = self.size
        return (self._iteration[:n].copy(), self._low[:n].astype(np.float64),
                self._high[:n].astype(np.float64), self._shares[:n].astype(np.float64))

    def to_dict(self):
        n = self.size
        return {"capacity": self.capacity, "stride": self.stride, "iteration": self._iteration[:n].tolist(),
                "low": self._low[:n].tolist(), "high": self._high[:n].tolist(),
                "shares": self._shares[:n].tolist()}

    @classmethod
    def from_dict(cls, data, n_hidden):
        record = cls(n_hidden, int(data["capacity"]), stride=1)
        iterations = [int(i) for i in data["iteration"]]
        if len(iterations) > record.capacity:
            raise InputError("histograms", f"{len(iterations)} histograms, capacity {record.capacity}")
        low = np.asarray(data["low"], dtype=np.float32).reshape(-1, n_hidden)
        high = np.asarray(data["high"], dtype=np.float32).reshape(-1, n_hidden)
        shares = np.asarray(data["shares"], dtype=np.float32).reshape(-1, n_hidden, HISTOGRAM_BINS)
        for it, lo, hi, sh in zip(iterations, low, high, shares, strict=True):
            record.add(it, lo, hi, sh)
        record.stride = None if data.get("stride") is None else max(1, int(data["stride"]))
        return record


class Trajectory:
    """A thinned record of the parameters along the run, for the PCA plane of the loss landscape.

    The first snapshot is kept as float32 (the anchor); each snapshot is stored as its float16
    difference from the anchor, so `max_bytes` buys twice the snapshots float32 would and the
    round-off (about 1/2000 of how far the weights moved) stays far below what the path shows.
    On every `stride`-th step the parameters before the step are kept; past `capacity` snapshots
    it keeps every other and doubles the stride. A network whose MIN_SNAPSHOTS do not fit in
    `max_bytes` keeps none (`too_large`)."""

    def __init__(self, max_bytes=SNAPSHOT_BYTES, max_snapshots=MAX_SNAPSHOTS):
        self.max_bytes = int(max_bytes)
        self.max_snapshots = int(max_snapshots)
        self.stride = None  # set by the first batch (see first_stride)
        self.n_params = None
        self.capacity = 0
        self.anchor = None  # float32 (n_params,)
        self._iterations = []
        self._diffs = []  # float16 (n_params,) each: snapshot - anchor

    @property
    def too_large(self):
        return self.n_params is not None and self.capacity < MIN_SNAPSHOTS

    def _size(self, n_params):
        self.n_params = int(n_params)
        self.capacity = min(self.max_snapshots, self.max_bytes // max(1, 2 * self.n_params))

    def wants(self, iteration, batch_size):
        if self.stride is None:
            self.stride = first_stride(SNAPSHOT_SAMPLES_APART, batch_size)
        return not self.too_large and iteration % self.stride == 0

    def add(self, iteration, params, batch_size):
        """Keep the parameters [(W, b), ...] as they are before step `iteration` over batch_size
        samples (if that step is one to keep)."""
        if not self.wants(iteration, batch_size):
            return
        if self.n_params is None:
            self._size(sum(W.size + b.size for W, b in params))
            if self.too_large:
                return
        if len(self._iterations) == self.capacity:
            self.stride *= 2
            keep = [k for k, it in enumerate(self._iterations) if it % self.stride == 0]
            self._iterations = [self._iterations[k] for k in keep]
            self._diffs = [self._diffs[k] for k in keep]
            if iteration % self.stride:
                return
        flat = np.concatenate([part.ravel() for W, b in params for part in (W, b)]).astype(np.float32)
        if self.anchor is None:
            self.anchor = flat
        diff = flat - self.anchor
        np.clip(diff, -65000.0, 65000.0, out=diff)  # float16's range; a move that far has diverged
        self._iterations.append(int(iteration))
        self._diffs.append(diff.astype(np.float16))

    def __len__(self):
        return len(self._iterations)

    def snapshots(self, before=None):
        """(iterations (k,), parameters (k, n_params) float32) of the snapshots, those taken before
        step `before` only when given."""
        keep = [k for k, it in enumerate(self._iterations) if before is None or it < before]
        if not keep:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.n_params or 0), dtype=np.float32)
        matrix = np.empty((len(keep), self.n_params), dtype=np.float32)
        for row, k in enumerate(keep):
            np.add(self.anchor, self._diffs[k], out=matrix[row])
        return np.array([self._iterations[k] for k in keep], dtype=np.int64), matrix

    def to_dict(self):
        return {"max_bytes": self.max_bytes, "max_snapshots": self.max_snapshots, "stride": self.stride,
                "n_params": self.n_params, "iterations": list(self._iterations),
                "anchor": _encode(self.anchor) if self.anchor is not None else None,
                "diffs": _encode(np.stack(self._diffs)) if self._diffs else None}

    @classmethod
    def from_dict(cls, data):
        trajectory = cls(int(data["max_bytes"]), int(data["max_snapshots"]))
        trajectory.stride = None if data.get("stride") is None else max(1, int(data["stride"]))
        if data.get("n_params") is None:
            return trajectory
        trajectory._size(int(data["n_params"]))
        iterations = [int(i) for i in data["iterations"]]
        if len(iterations) > trajectory.capacity:
            raise InputError("trajectory", f"{len(iterations)} snapshots, at most {trajectory.capacity}")
        if iterations:
            n = trajectory.n_params
            trajectory.anchor = _decode(data["anchor"], np.float32, (n,), "trajectory anchor")
            diffs = _decode(data["diffs"], np.float16, (len(iterations), n), "trajectory snapshots")
            trajectory._iterations = iterations
            trajectory._diffs = list(diffs)
        return trajectory


class History:
    def __init__(self, n_layers, capacity=100_000):
        self.n_layers = n_layers
        self.n_hidden = max(0, n_layers - 1)
        self.capacity = max(2, int(capacity))
        self.stride = 1  # keep one step in every `stride`
        self.size = 0
        self.total_steps = 0
        start = min(1024, self.capacity)
        self._iteration = np.zeros(start, dtype=np.int64)
        self._epoch = np.zeros(start, dtype=np.float64)
        self._cost = np.zeros(start, dtype=np.float64)
        self._layers = np.zeros((start, n_layers, len(LAYER_STATS)), dtype=np.float32)
        self._health = np.full((start, self.n_hidden, len(HEALTH_STATS)), np.nan, dtype=np.float32)
        self.histograms = HistogramRecord(self.n_hidden)
        self.trajectory = Trajectory()
        self.landscape = None  # the last Landscape computed for this run (backprop.landscape)
        self.evaluations = []  # dicts: iteration, test_cost, test_accuracy (bounded the same way)
        self.markers = []  # dicts: iteration, setting, old, new: where a knob was changed
        self.divergence = None

    def append(self, iteration, epoch, cost, layer_stats, health=None):
        """One step's row; `health` is the hidden layers' (n_hidden, 2) HEALTH_STATS, if measured."""
        self.total_steps += 1
        if iteration % self.stride:
            return
        if self.size == len(self._cost):
            if self.size >= self.capacity:
                self._halve()
                if iteration % self.stride:
                    return
            else:
                self._grow()
        i = self.size
        self._iteration[i] = iteration
        self._epoch[i] = epoch
        self._cost[i] = cost
        with np.errstate(over="ignore"):  # a statistic beyond float32's range is kept as inf
            self._layers[i] = layer_stats
        self._health[i] = np.nan if health is None else health
        self.size += 1

    def add_evaluation(self, record):
        self.evaluations.append(record)
        if len(self.evaluations) > self.capacity:
            self.evaluations = self.evaluations[::2]

    def add_marker(self, iteration, setting, old, new):
        self.markers.append({"iteration": iteration, "setting": setting, "old": old, "new": new})
        if len(self.markers) > 10_000:
            del self.markers[:5_000]

    def _grow(self):
        new = min(self.capacity, 2 * len(self._cost))
        for name in ("_iteration", "_epoch", "_cost", "_layers", "_health"):
            old = getattr(self, name)
            grown = np.zeros((new,) + old.shape[1:], dtype=old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def _halve(self):
        self.stride *= 2
        keep = self._iteration[: self.size] % self.stride == 0
        n = int(keep.sum())
        for name in ("_iteration", "_epoch", "_cost", "_layers", "_health"):
            arr = getattr(self, name)
            arr[:n] = arr[: self.size][keep]
        self.size = n

    # -- reading -------------------------------------------------------------------------
    @property
    def iterations(self):
        return self._iteration[: self.size].copy()

    @property
    def epochs(self):
        return self._epoch[: self.size].copy()

    @property
    def costs(self):
        return self._cost[: self.size].copy()

    def layer_stat(self, name):
        """(n_rows, n_layers) array of one statistic from LAYER_STATS."""
        return self._layers[: self.size, :, LAYER_STATS.index(name)].astype(np.float64)

    def unit_health(self):
        """(n_rows, n_hidden, 2) HEALTH_STATS per kept step; NaN where not measured or not possible."""
        return self._health[: self.size].astype(np.float64)

    def last(self):
        if not self.size:
            return None
        i = self.size - 1
        return {"iteration": int(self._iteration[i]), "epoch": float(self._epoch[i]),
                "cost": float(self._cost[i])}

    def rows(self):
        """One dict per kept step: for CSV and JSON export."""
        out = []
        for i in range(self.size):
            row = {"iteration": int(self._iteration[i]), "epoch": float(self._epoch[i]),
                   "cost": float(self._cost[i])}
            for l in range(self.n_layers):
                for k, name in enumerate(LAYER_STATS):
                    row[f"layer{l + 1}_{name}"] = float(self._layers[i, l, k])
            out.append(row)
        return out

    def to_dict(self):
        return {"n_layers": self.n_layers, "capacity": self.capacity, "stride": self.stride,
                "total_steps": self.total_steps,
                "iteration": self.iterations.tolist(), "epoch": self.epochs.tolist(),
                "cost": self.costs.tolist(),
                "layers": self._layers[: self.size].tolist(),
                # NaN (not measured) as None: JSON has no NaN
                "health": np.where(np.isnan(self._health[: self.size]), None,
                                   self._health[: self.size]).tolist(),
                "histograms": self.histograms.to_dict(), "trajectory": self.trajectory.to_dict(),
                "landscape": self.landscape.to_dict() if self.landscape is not None else None,
                "evaluations": self.evaluations, "markers": self.markers,
                "divergence": self.divergence}

    @classmethod
    def from_dict(cls, data):
        history = cls(int(data["n_layers"]), int(data.get("capacity", 100_000)))
        layers = np.asarray(data["layers"], dtype=np.float32).reshape(-1, history.n_layers,
                                                                        len(LAYER_STATS))
        if data.get("health") is not None:  # saved before unit health existed: not measured
            health = np.asarray(data["health"], dtype=np.float32).reshape(-1, history.n_hidden,
                                                                           len(HEALTH_STATS))
        else:
            health = [None] * len(layers)
        for it, ep, cost, stats, shares in zip(data["iteration"], data["epoch"], data["cost"], layers,
                                               health, strict=True):
            history.append(int(it), float(ep), float(cost), stats, shares)
        if data.get("histograms") is not None:
            history.histograms = HistogramRecord.from_dict(data["histograms"], history.n_hidden)
        if data.get("trajectory") is not None:
            history.trajectory = Trajectory.from_dict(data["trajectory"])
        if data.get("landscape") is not None:
            history.landscape = Landscape.from_dict(data["landscape"])
        history.stride = int(data.get("stride", 1))
        history.total_steps = int(data.get("total_steps", history.size))
        history.evaluations = list(data.get("evaluations", []))
        history.markers = list(data.get("markers", []))
        history.divergence = data.get("divergence")
        return history


def history_csv(history):
    """The kept steps as CSV text, one row per step, with the test evaluation named by the same
    iteration in its row (a row of its own when no step of that iteration was kept)."""
    import csv
    import io

    steps = history.rows()
    rows = {row["iteration"]: row for row in steps}
    for evaluation in history.evaluations:
        row = rows.setdefault(evaluation["iteration"], {"iteration": evaluation["iteration"]})
        row.update(test_cost=evaluation["test_cost"], test_accuracy=evaluation["test_accuracy"])
    if not rows:
        return ""
    out = io.StringIO()
    columns = [*(steps[0] if steps else {"iteration": 0}), "test_cost", "test_accuracy"]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for iteration in sorted(rows):
        writer.writerow(rows[iteration])
    return out.getvalue()
