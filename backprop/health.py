"""Unit health: how many hidden units are dead or saturated, and how activations are spread.

A ReLU (or leaky ReLU) unit is *dead* on a batch when its pre-activation Z <= 0 for every sample:
its output is flat there, no gradient reaches its weights and it stays dead. A sigmoid or tanh
unit is *saturated* on a sample when its output lies within 1% of the function's limit
(sigmoid: a < 0.01 or a > 0.99; tanh: |a| > 0.99); a unit saturated for most (> 50%) of the
batch passes almost no gradient back (g'(Z) < 0.01), so the layers before it learn slowly.
Dead is checked on every sample of the batch. Saturation is counted on up to SATURATION_SAMPLES
of them (each chunk's first ones, in proportion), which decides "more than half" to within a few
percent and keeps the cost within the 3% a step may lose to these statistics on full batches.

The trainer measures these from the activations its forward pass computes anyway: the network
hands each chunk's hidden A[1..L-1] to a `UnitHealthCounter` (no second forward pass), which
keeps a few numbers per unit and, on the steps the history asks for, a histogram of each layer's
activations on the first HISTOGRAM_SAMPLES samples.
"""

import math
from dataclasses import dataclass

import numpy as np

from .activations import DEAD_KIND, SATURATING

SATURATION_MARGIN = 0.01  # "within 1% of the limit"
MOSTLY = 0.5  # saturated for more than this share of the batch's samples
SATURATION_SAMPLES = 1024  # samples of a batch the saturation is counted on
HEALTH_STATS = ("dead_share", "saturated_share")
HISTOGRAM_BINS = 40
HISTOGRAM_SAMPLES = 64  # samples of the batch (its first ones) a histogram is taken over
READING_THRESHOLD = 0.5  # a layer "mostly" dead or saturated gets a reading


def condition_of(activation):
    """'dead', 'saturated' or None: which unhealthy state this hidden activation can show."""
    if activation in DEAD_KIND:
        return "dead"
    if activation in SATURATING:
        return "saturated"
    return None


def saturated_counts(A, activation, scratch=None):
    """Per unit (row of A), the number of samples (columns) whose output is within the margin
    of the activation's limits. Two comparisons into a reused boolean buffer, summed as bytes:
    about 5x faster than counting |A - centre| > limit - margin."""
    low, high = SATURATING[activation]
    span = high - low
    if scratch is None or scratch.shape != A.shape:
        scratch = np.empty(A.shape, dtype=bool)
    counts = np.greater(A, high - SATURATION_MARGIN * span, out=scratch).view(np.uint8).sum(
        axis=1, dtype=np.int64)
    counts += np.less(A, low + SATURATION_MARGIN * span, out=scratch).view(np.uint8).sum(
        axis=1, dtype=np.int64)
    return counts


def positive_counts(A):
    """Per unit (row of A), the number of samples with A > 0."""
    return np.greater(A, 0).view(np.uint8).sum(axis=1, dtype=np.int64)


def unit_health(hidden, activation):
    """(n_hidden, 2) array of HEALTH_STATS for hidden activations [A1, ...] (units x samples),
    NaN where a state cannot occur for this activation. The reference for UnitHealthCounter."""
    counter = UnitHealthCounter(activation)
    counter.start(hidden[0].shape[1] if hidden else 0)
    counter(0, hidden)
    return counter.finish().shares


@dataclass(frozen=True)
class ActivationHistograms:
    """One histogram per hidden layer over [low, high]: shares of values in HISTOGRAM_BINS bins."""

    low: np.ndarray  # (n_hidden,)
    high: np.ndarray  # (n_hidden,)
    shares: np.ndarray  # (n_hidden, HISTOGRAM_BINS), each row sums to 1


@dataclass(frozen=True)
class StepHealth:
    shares: np.ndarray  # (n_hidden, len(HEALTH_STATS))
    histograms: ActivationHistograms | None


def histogram(values, activation):
    """Shares of `values` in HISTOGRAM_BINS equal bins over the activation's range (its limits
    when bounded, else the values' own min..max) and that range."""
    values = np.asarray(values).ravel()
    if activation in SATURATING:
        low, high = SATURATING[activation]
    else:
        low, high = float(values.min()), float(values.max())
        if not high > low:
            low, high = low - 0.5, low + 0.5
    scaled = (values - low) * (HISTOGRAM_BINS / (high - low))
    index = np.clip(scaled.astype(np.intp), 0, HISTOGRAM_BINS - 1)
    counts = np.bincount(index, minlength=HISTOGRAM_BINS)
    return low, high, counts / max(1, values.size)


class UnitHealthCounter:
    """Collects one batch's per-unit numbers from each chunk of the forward pass, then the shares.
    `start(n_samples)` must be told the whole batch's size before the chunks arrive.

    Called by the network as `counter(part, hidden)` from its chunk workers (threads), each part
    with its own slot, so no lock is needed. Per unit it keeps the largest output (dead: the
    largest is <= 0, i.e. Z <= 0 for every sample) or the count of saturated samples."""

    def __init__(self, activation):
        self.activation = activation
        self.condition = condition_of(activation)
        self._parts = {}
        self._scratch = {}  # part -> layer -> boolean buffer
        self._ones = {}  # (samples, dtype) -> a vector of ones
        self._n_samples = 0
        self._histogram = False
        self._histograms = None

    def start(self, n_samples, histogram=False):
        """Before a step over n_samples samples; `histogram` also takes the layer histograms."""
        self._parts.clear()
        self._n_samples = int(n_samples)
        self._histogram = histogram
        self._histograms = None
        return self

    def __call__(self, part, hidden):
        if self.activation == "relu" and hidden:  # A >= 0: a row sums to 0 only when all samples are 0
            ones = self._ones_for(hidden[0].shape[1], hidden[0].dtype)
            self._parts[part] = [A @ ones for A in hidden]  # a BLAS sum: 10x faster than A.max(axis=1)
        elif self.condition == "dead":  # leaky ReLU: the samples with A > 0 (Z > 0), per unit
            self._parts[part] = [positive_counts(A) for A in hidden]
        elif self.condition == "saturated":
            scratch = self._scratch.setdefault(part, {})
            numbers = []
            for l, A in enumerate(hidden):
                share = min(1.0, SATURATION_SAMPLES / max(1, self._n_samples))
                A = A[:, :max(1, math.ceil(A.shape[1] * share))]  # this chunk's part of the sample
                buffer = scratch.get(l)
                if buffer is None or buffer.shape != A.shape:
                    if len(scratch) > 32:  # many batch shapes seen: start over
                        scratch.clear()
                    buffer = scratch[l] = np.empty(A.shape, dtype=bool)
                numbers.append((saturated_counts(A, self.activation, buffer), A.shape[1]))
            self._parts[part] = numbers
        else:  # nothing to count, but the layers are there
            self._parts[part] = [None] * len(hidden)
        if self._histogram and part == 0 and hidden:
            ranges_and_shares = [histogram(A[:, :HISTOGRAM_SAMPLES], self.activation) for A in hidden]
            low, high, shares = zip(*ranges_and_shares, strict=True)
            self._histograms = ActivationHistograms(np.array(low), np.array(high),
                                                    np.array(shares, dtype=np.float32))

    def _ones_for(self, n, dtype):
        ones = self._ones.get((n, dtype))
        if ones is None:
            if len(self._ones) > 64:  # many batch shapes seen: start over
                self._ones.clear()
            ones = self._ones[(n, dtype)] = np.ones(n, dtype=dtype)
        return ones

    def finish(self):
        """The batch's StepHealth, from every part seen since start()."""
        parts = [self._parts[p] for p in sorted(self._parts)]
        n_hidden = len(parts[0]) if parts else 0
        shares = np.full((n_hidden, len(HEALTH_STATS)), np.nan)
        if parts and self.condition == "dead":
            for l in range(n_hidden):
                alive = parts[0][l] if len(parts) == 1 else np.add.reduce([numbers[l] for numbers in parts])
                shares[l, 0] = 1.0 - np.count_nonzero(alive > 0) / alive.size  # sums or counts, each >= 0
        elif parts and self.condition == "saturated":
            for l in range(n_hidden):
                if len(parts) == 1:  # a batch in one piece (every small run's step): nothing to add up
                    counts, counted = parts[0][l]
                else:
                    counts = np.add.reduce([numbers[l][0] for numbers in parts])
                    counted = sum(numbers[l][1] for numbers in parts)
                shares[l, 1] = np.count_nonzero(counts > MOSTLY * counted) / counts.size
        return StepHealth(shares, self._histograms)


def health_reading(shares, threshold=READING_THRESHOLD):
    """One line for the worst hidden layer that is mostly dead or saturated, else None.

    `shares` is (n_hidden, 2) in HEALTH_STATS order (NaN where a state cannot occur), e.g. the
    last row of History.unit_health()."""
    shares = np.asarray(shares, dtype=np.float64)
    if shares.size == 0:
        return None
    worst = np.where(np.isnan(shares), -1.0, shares)
    layer, column = np.unravel_index(int(np.argmax(worst)), worst.shape)
    share = worst[layer, column]
    if share <= threshold:
        return None
    if HEALTH_STATS[column] == "dead_share":
        return (f"layer {layer + 1}: {share:.0%} of units dead (zero for every sample) — they no longer "
                "learn; try a smaller learning rate, He initialisation, or leaky ReLU")
    return (f"layer {layer + 1}: {share:.0%} of units saturated — gradients through them vanish; "
            "try a smaller learning rate, Xavier/He initialisation, or ReLU")
