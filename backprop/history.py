"""Per-step summaries of a run, in bounded memory.

Each step keeps a handful of numbers (cost, and for every layer five gradient and weight
statistics), never tensors. Past `capacity` rows the history halves itself, keeping every
other row, and from then on keeps every 2nd (4th, ...) step: a run of 10^6 steps costs the
same memory as one of `capacity` steps, and its shape is still all there.
"""

import numpy as np

LAYER_STATS = ("dW_norm", "db_norm", "W_norm", "dW_mean_abs", "update_ratio")


class History:
    def __init__(self, n_layers, capacity=100_000):
        self.n_layers = n_layers
        self.capacity = max(2, int(capacity))
        self.stride = 1  # keep one step in every `stride`
        self.size = 0
        self.total_steps = 0
        start = min(1024, self.capacity)
        self._iteration = np.zeros(start, dtype=np.int64)
        self._epoch = np.zeros(start, dtype=np.float64)
        self._cost = np.zeros(start, dtype=np.float64)
        self._layers = np.zeros((start, n_layers, len(LAYER_STATS)), dtype=np.float32)
        self.evaluations = []  # dicts: iteration, test_cost, test_accuracy (bounded the same way)
        self.markers = []  # dicts: iteration, setting, old, new: where a knob was changed
        self.divergence = None

    def append(self, iteration, epoch, cost, layer_stats):
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
        for name in ("_iteration", "_epoch", "_cost", "_layers"):
            old = getattr(self, name)
            grown = np.zeros((new,) + old.shape[1:], dtype=old.dtype)
            grown[: self.size] = old[: self.size]
            setattr(self, name, grown)

    def _halve(self):
        self.stride *= 2
        keep = self._iteration[: self.size] % self.stride == 0
        n = int(keep.sum())
        for name in ("_iteration", "_epoch", "_cost", "_layers"):
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
                "evaluations": self.evaluations, "markers": self.markers,
                "divergence": self.divergence}

    @classmethod
    def from_dict(cls, data):
        history = cls(int(data["n_layers"]), int(data.get("capacity", 100_000)))
        layers = np.asarray(data["layers"], dtype=np.float32).reshape(-1, history.n_layers,
                                                                        len(LAYER_STATS))
        for it, ep, cost, stats in zip(data["iteration"], data["epoch"], data["cost"], layers, strict=True):
            history.append(int(it), float(ep), float(cost), stats)
        history.stride = int(data.get("stride", 1))
        history.total_steps = int(data.get("total_steps", history.size))
        history.evaluations = list(data.get("evaluations", []))
        history.markers = list(data.get("markers", []))
        history.divergence = data.get("divergence")
        return history
