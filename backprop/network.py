"""The N-layer network of the tutorial, in its notation.

W[l] has shape (n_l, n_{l-1}) and b[l] has shape (n_l, 1); inside, samples are columns
(A0 = X.T), while callers pass X as (n_samples, n_features) and Y as (n_samples,) labels.
The output layer's dZ = A - Y is computed directly (sigmoid + binary cross-entropy, or
softmax + categorical cross-entropy), so no log(0) and no division by A or 1 - A happen.
A linear output with squared error, J = 1/(2n) Σ (A - Y)², has the same dZ = (A - Y)/n; its Y are
numbers (n_samples,) for one output unit, (n_samples, n_units) for more (regression).
"""

import numpy as np

from .activations import ACTIVATIONS, BACKWARD, sigmoid, softmax
from .errors import InputError
from .parallel import chunk_bounds, map_chunks

EVAL_BLOCK = 8192  # samples per forward pass when evaluating (what the memory budget counts for it)
OUTPUTS = ("sigmoid", "softmax", "linear")
INITS = {
    "seed": "LeCun normal, randn / sqrt(fan_in) from NumPy's legacy seeded RNG (the tutorial's)",
    "xavier": "Xavier/Glorot uniform, limit sqrt(6 / (fan_in + fan_out))",
    "he": "He normal, randn * sqrt(2 / fan_in)",
}
DTYPES = ("float64", "float32")


def check_choice(field, value, allowed):
    if value not in allowed:
        raise InputError(field, f"{value!r} is not one of {', '.join(map(str, allowed))}")
    return value


def check_sizes(sizes):
    """The full list of layer sizes, input first, e.g. [784, 196, 1]."""
    try:
        sizes = [int(s) for s in sizes]
    except (TypeError, ValueError):
        raise InputError("sizes", f"{sizes!r} must be a list of whole numbers, input first") from None
    if len(sizes) < 2:
        raise InputError("sizes", "needs the input size and at least one layer, e.g. [784, 196, 1]")
    if any(s < 1 for s in sizes):
        raise InputError("sizes", f"every size must be at least 1, got {sizes}")
    return sizes


def initial_parameters(sizes, init, seed, dtype):
    rng = np.random.RandomState(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        if init == "seed":
            W = rng.randn(fan_out, fan_in) / np.sqrt(fan_in)
        elif init == "xavier":
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            W = rng.uniform(-limit, limit, size=(fan_out, fan_in))
        else:  # he
            W = rng.randn(fan_out, fan_in) * np.sqrt(2.0 / fan_in)
        params.append((W.astype(dtype), np.zeros((fan_out, 1), dtype=dtype)))
    return params


class Network:
    # Called as activation_observer(part, [A1, ..., A(L-1)]) with each chunk's hidden activations
    # during loss_and_gradients, while they are at hand (the trainer's unit health, backprop.health).
    activation_observer = None

    def __init__(self, sizes, activation="sigmoid", output="sigmoid", init="seed", seed=1,
                 dtype="float64"):
        self.sizes = check_sizes(sizes)
        self.activation = check_choice("activation", activation, tuple(ACTIVATIONS))
        self.output = check_choice("output", output, OUTPUTS)
        self.init = check_choice("init", init, tuple(INITS))
        self.dtype = check_choice("dtype", str(np.dtype(dtype)) if dtype in DTYPES else dtype, DTYPES)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
            raise InputError("seed", f"{seed!r} must be a whole number from 0 to 4294967295")
        self.seed = int(seed)
        if output == "sigmoid" and self.sizes[-1] != 1:
            raise InputError("sizes", f"a sigmoid output has 1 unit, got {self.sizes[-1]}")
        if output == "softmax" and self.sizes[-1] < 2:
            raise InputError("sizes", "a softmax output needs at least 2 units (one per class)")
        self.params = initial_parameters(self.sizes, self.init, self.seed, self.dtype)
        self._buffers = {}

    # -- description -------------------------------------------------------------------
    @property
    def n_layers(self):
        return len(self.params)

    @property
    def n_classes(self):
        return 2 if self.output == "sigmoid" else self.sizes[-1]

    def config(self):
        return {"sizes": self.sizes, "activation": self.activation, "output": self.output,
                "init": self.init, "seed": self.seed, "dtype": self.dtype}

    def n_parameters(self):
        return sum(W.size + b.size for W, b in self.params)

    def copy(self):
        twin = Network(**self.config())
        twin.set_params(self.params)
        return twin

    def set_params(self, params):
        """Replace every (W, b) after checking shapes; the arrays are copied into this dtype."""
        if len(params) != self.n_layers:
            raise InputError("params", f"expected {self.n_layers} layers, got {len(params)}")
        new = []
        for l, ((W, b), (W_new, b_new)) in enumerate(zip(self.params, params, strict=True), start=1):
            if np.shape(W_new) != W.shape or np.shape(b_new) != b.shape:
                raise InputError("params", f"layer {l}: expected W{W.shape} and b{b.shape}, "
                                           f"got W{np.shape(W_new)} and b{np.shape(b_new)}")
            new.append((np.array(W_new, dtype=self.dtype), np.array(b_new, dtype=self.dtype)))
        self.params = new

    # -- checks on data ----------------------------------------------------------------
    def check_inputs(self, X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.sizes[0]:
            raise InputError("X", f"must have shape (n_samples, {self.sizes[0]}), got {X.shape}")
        if X.shape[0] == 0:
            raise InputError("X", "has no samples")
        return X if X.dtype == self.dtype else X.astype(self.dtype)

    def check_labels(self, Y, n_samples):
        if self.output == "linear":
            return self._check_targets(Y, n_samples)
        Y = np.asarray(Y)
        if Y.ndim != 1 or Y.shape[0] != n_samples:
            raise InputError("Y", f"must have shape ({n_samples},) to match X, got {Y.shape}")
        if Y.size and (not np.issubdtype(Y.dtype, np.integer)):
            if not np.all(np.mod(Y, 1) == 0):
                raise InputError("Y", "labels must be whole numbers")
            Y = Y.astype(np.int64)
        if Y.size and (Y.min() < 0 or Y.max() >= self.n_classes):
            raise InputError("Y", f"labels must lie in 0..{self.n_classes - 1} for this output, "
                                  f"got {Y.min()}..{Y.max()}")
        return Y

    def _check_targets(self, Y, n_samples):
        """Regression targets: finite numbers, (n,) for one output unit or (n, n_units)."""
        shape = (n_samples,) if self.sizes[-1] == 1 else (n_samples, self.sizes[-1])
        try:
            Y = np.asarray(Y, dtype=self.dtype)
        except (TypeError, ValueError):
            raise InputError("Y", "regression targets must be numbers") from None
        if Y.shape != shape:
            raise InputError("Y", f"must have shape {shape} to match X and the output, got {Y.shape}")
        if not np.isfinite(Y).all():
            raise InputError("Y", "regression targets must be finite numbers (no NaN or Inf)")
        return Y

    # -- the math ----------------------------------------------------------------------
    def _buffer(self, name, l, shape, part=0):
        """A reusable array; `part` keeps chunks that run at the same time on separate buffers."""
        key = (name, l, shape, part)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 256:  # many batch sizes seen: start over
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(shape, dtype=self.dtype)
        return buf

    def _forward(self, X, reuse, part=0):
        """Activations A1..AL (samples as columns) and the output layer's Z."""
        A = X.T  # A0: a transposed view, no copy
        activations = []
        act = ACTIVATIONS[self.activation]
        n = X.shape[0]
        for l, (W, b) in enumerate(self.params, start=1):
            out = self._buffer("Z", l, (W.shape[0], n), part) if reuse else None
            Z = np.matmul(W, A, out=out)
            Z += b
            if l < self.n_layers:
                A = act(Z, out=Z)
                activations.append(A)
        if self.output == "sigmoid":
            Z_out = Z.copy()  # one row: cheap, and the cost needs Z after sigmoid overwrites it
            activations.append(sigmoid(Z, out=Z))
        elif self.output == "linear":
            Z_out = Z  # A = Z; the cost is taken before backpropagation turns this buffer into dZ
            activations.append(Z)
        else:
            Z_out = Z
            activations.append(softmax(Z))
        return activations, Z_out

    def _cost_sum(self, Z, Y):
        """Summed cross-entropy over the samples, from the output logits Z, without log(0); or
        half the summed squared error of a linear output."""
        if self.output == "linear":
            error = Z - Y.T
            return 0.5 * float(np.vdot(error, error))
        if self.output == "sigmoid":
            z = Z[0]
            # -[y log s(z) + (1-y) log(1-s(z))] = log(1 + e^z) - y z, and log(1+e^z) = logaddexp(0, z)
            return float(np.logaddexp(0.0, z).sum() - z @ Y.astype(z.dtype))
        top = Z.max(axis=0)
        log_sum = np.log(np.exp(Z - top).sum(axis=0)) + top
        return float((log_sum - Z[Y, np.arange(Y.shape[0])]).sum())

    def loss_and_gradients(self, X, Y, l2=0.0, l1=0.0):
        """Cost J and [(dW, db)] per layer; l2 adds l2/2 * sum ||W||^2 to J (and l2 * W to dW),
        l1 adds l1 * sum |W| (and l1 * sign(W), 0 where W is 0). Biases are not penalised.

        A large batch is split into chunks computed in parallel (backprop.parallel); each chunk
        scales by the whole batch's n, so the chunks' sums are the batch's cost and gradients.
        """
        X = self.check_inputs(X)
        Y = self.check_labels(Y, X.shape[0])
        n = X.shape[0]
        bounds = chunk_bounds(n)
        if bounds is None:
            cost_sum, grads = self._chunk_loss_and_gradients(X, Y, n, 0)
        else:
            def chunk(part):
                start, stop = bounds[part]
                return self._chunk_loss_and_gradients(X[start:stop], Y[start:stop], n, part)

            results = map_chunks(chunk, len(bounds))
            cost_sum, grads = results[0]
            for more_cost, more_grads in results[1:]:  # in chunk order: the same sums every run
                cost_sum += more_cost
                for (dW, db), (more_dW, more_db) in zip(grads, more_grads, strict=True):
                    dW += more_dW
                    db += more_db
        cost = cost_sum / n
        if l2:
            cost += 0.5 * l2 * sum(float(np.vdot(W, W)) for W, _ in self.params)
            for (dW, _), (W, _) in zip(grads, self.params, strict=True):
                dW += l2 * W
        if l1:
            cost += l1 * sum(float(np.abs(W).sum()) for W, _ in self.params)
            for (dW, _), (W, _) in zip(grads, self.params, strict=True):
                dW += l1 * np.sign(W)
        return cost, grads

    def _chunk_loss_and_gradients(self, X, Y, n, part):
        """Summed cost and gradients (each already divided by the batch's n) for these samples."""
        activations, Z_out = self._forward(X, reuse=True, part=part)
        if self.activation_observer is not None:
            self.activation_observer(part, activations[:-1])
        cost_sum = self._cost_sum(Z_out, Y)
        return cost_sum, self._backward(X, Y, activations, n, part)

    def _backward(self, X, Y, activations, n, part):
        A_out = activations[-1]
        dZ = A_out  # reuse the output buffer: dZ = (A - Y) / n
        if self.output == "sigmoid":
            dZ -= Y
        elif self.output == "linear":
            dZ -= Y.T
        else:
            dZ[Y, np.arange(Y.shape[0])] -= 1.0
        dZ /= n
        backward = BACKWARD[self.activation]
        grads = [None] * self.n_layers
        for l in range(self.n_layers, 0, -1):
            W = self.params[l - 1][0]
            A_prev = activations[l - 2] if l > 1 else X.T
            dW = dZ @ A_prev.T
            db = dZ.sum(axis=1, keepdims=True)
            grads[l - 1] = (dW, db)
            if l > 1:
                dA = np.matmul(W.T, dZ, out=self._buffer("dA", l - 1, A_prev.shape, part))
                dZ = backward(A_prev, dA)
        return grads

    # -- using the network -------------------------------------------------------------
    def forward(self, X):
        """Every layer's activation A1..AL for X, each (n_l, n_samples): for looking inside."""
        X = self.check_inputs(X)
        activations, _ = self._forward(X, reuse=False)
        return activations

    def predict_proba(self, X):
        """(n_samples, n_classes) class probabilities."""
        if self.output == "linear":
            raise InputError("output", "a linear (regression) output gives numbers, not class "
                                       "probabilities; use predict")
        A = self.forward(X)[-1]
        if self.output == "sigmoid":
            return np.stack([1.0 - A[0], A[0]], axis=1)
        return A.T.copy()

    def predict(self, X):
        """Class labels, or a linear output's numbers ((n,) for one unit, else (n, n_units))."""
        A = self.forward(X)[-1]
        if self.output == "linear":
            return A[0].copy() if A.shape[0] == 1 else A.T.copy()
        if self.output == "sigmoid":
            return (A[0] > 0.5).astype(np.int64)
        return A.argmax(axis=0)

    def evaluate(self, X, Y):
        """(cost, accuracy) on a data set, without touching gradients; large sets in chunks.
        A regression has no accuracy: NaN."""
        X = self.check_inputs(X)
        Y = self.check_labels(Y, X.shape[0])
        n = X.shape[0]

        def cost_and_correct(start, stop):
            activations, Z_out = self._forward(X[start:stop], reuse=False)
            A = activations[-1]
            if self.output == "linear":
                return self._cost_sum(Z_out, Y[start:stop]), 0
            predicted = (A[0] > 0.5).astype(np.int64) if self.output == "sigmoid" else A.argmax(axis=0)
            return self._cost_sum(Z_out, Y[start:stop]), int(np.count_nonzero(predicted == Y[start:stop]))

        results = []
        for block in range(0, n, EVAL_BLOCK):  # memory of one block at a time, whatever n is
            size = min(EVAL_BLOCK, n - block)
            bounds = chunk_bounds(size)
            if bounds is None:
                results.append(cost_and_correct(block, block + size))
            else:
                results += map_chunks(lambda part, block=block, bounds=bounds: cost_and_correct(
                    block + bounds[part][0], block + bounds[part][1]), len(bounds))
        accuracy = float("nan") if self.output == "linear" else sum(k for _, k in results) / n
        return sum(c for c, _ in results) / n, accuracy
