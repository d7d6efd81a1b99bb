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


def _array(value, dtype, shape, field):
    """A saved record as an array of `dtype` and `shape`: to_dict's arrays, or what a checkpoint of
    format version 1 kept in its JSON (lists, None for NaN; the trajectory as base64 text)."""
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (TypeError, ValueError):
            raise InputError(field, "is not base64 text") from None
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if len(raw) != expected:
            raise InputError(field, f"holds {len(raw)} bytes, expected {expected} for shape {shape}")
        return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    array = np.asarray(value, dtype=dtype)
    if array.shape != tuple(shape):
        if array.size != int(np.prod(shape)):
            raise InputError(field, f"has shape {array.shape}, expected {tuple(shape)}")
        array = array.reshape(shape)  # a version 1 list of rows for an empty record: shape (0,)
    return array


def _kept_iterations(iterations, stride, field):
    """Saved iterations as a record keeps them: increasing, each a multiple of its stride (what
    halving a full record relies on)."""
    if len(iterations) and (np.any(np.diff(iterations) <= 0) or iterations[0] < 0
                            or (stride is not None and np.any(iterations % max(1, int(stride))))):
        raise InputError(field, f"keeps iterations {iterations[:8].tolist()}... that are not increasing "
                                f"multiples of its stride {stride}")
    return iterations


def _count(value, field):
    """How many records a saved column holds (len of its array or list)."""
    try:
        return len(value)
    except TypeError:
        raise InputError(field, f"is a {type(value).__name__}, not a list of records") from None


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
        """Settings as plain values, the kept histograms as arrays (copies)."""
        n = self.size
        return {"capacity": self.capacity, "stride": self.stride, "iteration": self._iteration[:n].copy(),
                "low": self._low[:n].copy(), "high": self._high[:n].copy(),
                "shares": self._shares[:n].copy()}

    @classmethod
    def from_dict(cls, data, n_hidden):
        capacity = int(data["capacity"])
        if not 2 <= capacity <= HISTOGRAM_CAPACITY:  # allocated up front: never more than a run keeps
            raise InputError("histograms", f"capacity {capacity}, expected 2 to {HISTOGRAM_CAPACITY}")
        record = cls(n_hidden, capacity, stride=1)
        m = _count(data["iteration"], "histograms")
        if m > record.capacity:
            raise InputError("histograms", f"{m} histograms, capacity {record.capacity}")
        iterations = _kept_iterations(_array(data["iteration"], np.int64, (m,), "histogram iterations"),
                                      data.get("stride"), "histograms")
        low = _array(data["low"], np.float32, (m, n_hidden), "histogram lows")
        high = _array(data["high"], np.float32, (m, n_hidden), "histogram highs")
        shares = _array(data["shares"], np.float32, (m, n_hidden, HISTOGRAM_BINS), "histogram shares")
        for it, lo, hi, sh in zip(iterations.tolist(), low, high, shares, strict=True):
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
        while len(self._iterations) >= self.capacity:  # a loop: snapshots that are all multiples of
            self.stride *= 2  # the doubled stride (not kept on every stride-th step) would stay
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
        """Settings as plain values; the snapshots as arrays: `anchor` float32 (n_params,), `diffs`
        float16 (k, n_params), both None while there are none."""
        return {"max_bytes": self.max_bytes, "max_snapshots": self.max_snapshots, "stride": self.stride,
                "n_params": self.n_params, "iterations": np.array(self._iterations, dtype=np.int64),
                "anchor": self.anchor.copy() if self.anchor is not None and self._diffs else None,
                "diffs": np.stack(self._diffs) if self._diffs else None}

    @classmethod
    def from_dict(cls, data):
        max_bytes, max_snapshots = int(data["max_bytes"]), int(data["max_snapshots"])
        if not 0 <= max_bytes <= SNAPSHOT_BYTES or not 0 <= max_snapshots <= MAX_SNAPSHOTS:
            # what it may keep as the run goes on: never more than a run of this Studio keeps
            raise InputError("trajectory", f"keeps up to {max_snapshots} snapshots in {max_bytes} bytes, "
                                           f"expected at most {MAX_SNAPSHOTS} in {SNAPSHOT_BYTES}")
        trajectory = cls(max_bytes, max_snapshots)
        trajectory.stride = None if data.get("stride") is None else max(1, int(data["stride"]))
        if data.get("n_params") is None:
            return trajectory
        trajectory._size(int(data["n_params"]))
        k = _count(data["iterations"], "trajectory")
        if k > trajectory.capacity:
            raise InputError("trajectory", f"{k} snapshots, at most {trajectory.capacity}")
        if k:
            n = trajectory.n_params
            iterations = _array(data["iterations"], np.int64, (k,), "trajectory")
            trajectory._iterations = _kept_iterations(iterations, trajectory.stride, "trajectory").tolist()
            trajectory.anchor = _array(data["anchor"], np.float32, (n,), "trajectory anchor")
            trajectory._diffs = list(_array(data["diffs"], np.float16, (k, n), "trajectory snapshots"))
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
        self.markers = []  # dicts: iteration, setting, old, new: where a setting was changed
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
        """The history as a dict: settings, markers and divergence as plain values, the numeric
        records as NumPy arrays (copies). backprop.checkpoint keeps each array as an .npz member of
        its own and the rest as JSON; from_dict reads both this and version 1's all-JSON form."""
        n = self.size
        return {"n_layers": self.n_layers, "capacity": self.capacity, "stride": self.stride,
                "total_steps": self.total_steps,
                "iteration": self._iteration[:n].copy(), "epoch": self._epoch[:n].copy(),
                "cost": self._cost[:n].copy(), "layers": self._layers[:n].copy(),
                "health": self._health[:n].copy(),  # NaN: not measured
                "histograms": self.histograms.to_dict(), "trajectory": self.trajectory.to_dict(),
                "landscape": self.landscape.to_dict() if self.landscape is not None else None,
                "evaluations": _evaluation_columns(self.evaluations), "markers": list(self.markers),
                "divergence": self.divergence}

    @classmethod
    def from_dict(cls, data):
        history = cls(int(data["n_layers"]), int(data.get("capacity", 100_000)))
        n = _count(data["iteration"], "history")
        if n > history.capacity:
            raise InputError("history", f"{n} rows, capacity {history.capacity}")
        iterations = _array(data["iteration"], np.int64, (n,), "history iterations")
        columns = {"_iteration": _kept_iterations(iterations, data.get("stride", 1), "history"),
                   "_epoch": _array(data["epoch"], np.float64, (n,), "history epochs"),
                   "_cost": _array(data["cost"], np.float64, (n,), "history costs"),
                   "_layers": _array(data["layers"], np.float32, (n, history.n_layers, len(LAYER_STATS)),
                                     "history layer statistics")}
        if data.get("health") is not None:  # saved before unit health existed: not measured
            columns["_health"] = _array(data["health"], np.float32,
                                        (n, history.n_hidden, len(HEALTH_STATS)), "history unit health")
        length = max(len(history._cost), n)
        for name in ("_iteration", "_epoch", "_cost", "_layers", "_health"):
            empty = getattr(history, name)
            full = np.full((length,) + empty.shape[1:], np.nan if name == "_health" else 0, dtype=empty.dtype)
            if name in columns:
                full[:n] = columns[name]
            setattr(history, name, full)
        history.size = n
        if data.get("histograms") is not None:
            history.histograms = HistogramRecord.from_dict(data["histograms"], history.n_hidden)
        if data.get("trajectory") is not None:
            history.trajectory = Trajectory.from_dict(data["trajectory"])
        if data.get("landscape") is not None:
            history.landscape = Landscape.from_dict(data["landscape"])
        history.stride = max(1, int(data.get("stride", 1)))
        history.total_steps = int(data.get("total_steps", history.size))
        history.evaluations = _evaluation_records(data.get("evaluations", []))
        history.markers = _records(data.get("markers", []), ("iteration", "setting", "old", "new"), "markers")
        history.divergence = data.get("divergence")
        if history.divergence is not None and not isinstance(history.divergence, dict):
            raise InputError("divergence", f"is a {type(history.divergence).__name__}, not a record")
        return history


EVALUATION_COLUMNS = {"iteration": np.int64, "test_cost": np.float64, "test_accuracy": np.float64}


def _evaluation_columns(evaluations):
    """The test evaluations as one array per key when they are all the trainer's records
    (iteration, test_cost, test_accuracy: numbers), else as they are."""
    plain = (int, float, np.integer, np.floating)
    if evaluations and all(record.keys() == EVALUATION_COLUMNS.keys()
                           and all(isinstance(value, plain) for value in record.values())
                           for record in evaluations):
        return {key: np.array([record[key] for record in evaluations], dtype=dtype)
                for key, dtype in EVALUATION_COLUMNS.items()}
    return list(evaluations)


def _records(saved, keys, field):
    """A saved list of records (dicts with at least `keys`, iteration a whole number), checked."""
    if not isinstance(saved, list):
        raise InputError(field, f"is a {type(saved).__name__}, not a list of records")
    for record in saved:
        if not isinstance(record, dict) or any(key not in record for key in keys) \
                or isinstance(record["iteration"], bool) \
                or not isinstance(record["iteration"], (int, np.integer)):
            raise InputError(field, f"holds {str(record)[:80]!r}, not a record with {', '.join(keys)}")
    return list(saved)


def _evaluation_records(saved):
    """_evaluation_columns reversed: a list of dicts (version 1 saved that list as it is)."""
    if not isinstance(saved, dict):
        return _records(saved, tuple(EVALUATION_COLUMNS), "evaluations")
    n = _count(saved["iteration"], "evaluations")
    columns = [_array(saved[key], dtype, (n,), "evaluations").tolist()
               for key, dtype in EVALUATION_COLUMNS.items()]
    return [dict(zip(EVALUATION_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)]


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
