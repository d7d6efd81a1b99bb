"""The memory budget: what one session (a browser tab or a CLI run) may allocate.

Anyone who can reach the page can type a link or upload a file, so every size that comes from
outside (layer sizes, batch size, an archive's declared arrays, an IDX header) is turned into a
byte count here, from the sizes alone, BEFORE anything is allocated; over the budget it is refused
with an InputError naming the field and the budget.

The budget is BACKPROP_MEMORY_BUDGET ("3GB", "512MiB", "3000000000"; default 3GB): the server
trains at most BACKPROP_MAX_TRAINING_THREADS (4) networks at once, and 4 x 3 GB = 12 GB leaves
half of a 24 GB machine to the system, the browser and the server itself.
"""

import math
import os
import re

import numpy as np

from .errors import InputError
from .parallel import chunk_bounds

BUDGET_VARIABLE = "BACKPROP_MEMORY_BUDGET"
DEFAULT_BUDGET = 3 * 10**9  # bytes per session (3GB); see the module docstring
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30}
DTYPE_BYTES = {"float64": 8, "float32": 4}


def memory_budget():
    """Bytes one session may allocate: BACKPROP_MEMORY_BUDGET if set, else DEFAULT_BUDGET."""
    text = os.environ.get(BUDGET_VARIABLE, "").strip()
    return parse_bytes(text, BUDGET_VARIABLE) if text else DEFAULT_BUDGET


def parse_bytes(text, field=BUDGET_VARIABLE):
    """'3GB' -> 3_000_000_000, '512MiB' -> 536_870_912, '1e9' -> 1_000_000_000."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        raise InputError(field, f"{text!r} is not a size; write bytes or a number with a unit, "
                                "e.g. 3GB, 512MiB or 3000000000")
    value = int(float(match.group(1)) * UNITS[unit])
    if value < 2**20:
        raise InputError(field, f"{text!r} is below 1 MiB; the smallest network needs more")
    return value


def format_bytes(n_bytes):
    """A size for messages: '6.8 GB', '512.0 MB', '1,330 bytes', 'about 10^400 bytes'."""
    if n_bytes >= 10**18:  # beyond what a float divides well, and beyond any machine
        return f"about 10^{len(str(int(n_bytes))) - 1} bytes"
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n_bytes >= size:
            return f"{n_bytes / size:,.1f} {unit}"
    return f"{int(n_bytes):,} bytes"


def budget_text(budget=None):
    budget = memory_budget() if budget is None else budget
    return f"the memory budget of {format_bytes(budget)} per session ({BUDGET_VARIABLE})"


def check_bytes(n_bytes, field, what, advice=""):
    """Refuse `what` (a phrase like "the network [784, 20000, 1]") if it needs more than the budget."""
    budget = memory_budget()
    if n_bytes > budget:
        raise InputError(field, f"{what} would take {format_bytes(n_bytes)}, over {budget_text(budget)}"
                                + (f"; {advice}" if advice else ""))
    return n_bytes


# -- arrays ------------------------------------------------------------------------------------
def array_bytes(shape, dtype):
    """Bytes of an array of this shape and dtype, with Python integers (no overflow)."""
    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


def check_array(shape, dtype, field, name):
    """Refuse an array declared (e.g. in an .npy header) larger than the budget, before reading it."""
    return check_bytes(array_bytes(shape, dtype), field,
                       f"array {name} of shape {tuple(shape)} and dtype {np.dtype(dtype)}")


# -- networks and training ---------------------------------------------------------------------
def _itemsize(dtype):
    key = str(np.dtype(dtype)) if dtype in DTYPE_BYTES or isinstance(dtype, np.dtype) else dtype
    if key not in DTYPE_BYTES:
        raise InputError("dtype", f"{dtype!r} is not one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[key]


def parameter_count(sizes):
    """Entries of every W[l] (n_l, n_{l-1}) and b[l] (n_l, 1) for sizes [n_0, ..., n_L]."""
    return sum(fan_out * fan_in + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False))


def network_bytes(sizes, dtype):
    """Bytes of a network's parameters, W and b of every layer."""
    return parameter_count([int(n) for n in sizes]) * _itemsize(dtype)


def check_network_memory(sizes, dtype, field="sizes"):
    """Refuse a network whose parameters alone exceed the budget (before Network() builds it:
    building one allocates its parameters twice, the initial ones and then the loaded ones)."""
    sizes = [int(n) for n in sizes]
    return check_bytes(2 * network_bytes(sizes, dtype), field, f"the network {sizes}",
                       "use fewer or smaller layers")


def training_bytes(sizes, n_samples_per_step, dtype, optimizer_state_arrays=0):
    """Bytes one training step of `n_samples_per_step` samples takes, from the engine's arrays:

    parameters: W and b now, the new ones of the step, the initial ones the Studio keeps for its
    histograms, the update (plus one scratch array, Adam), `optimizer_state_arrays` more of the
    same size (momentum 1, Adam 2) and one gradient per chunk the batch is split into
    (backprop.parallel: each chunk returns its own dW, db before they are summed);
    per sample: the input rows of a mini-batch, Z/A of every layer, dA of every hidden layer,
    a scratch array of the widest layer (activation derivatives) and the output's copy.
    """
    sizes = [int(n) for n in sizes]
    n = int(n_samples_per_step)
    itemsize = _itemsize(dtype)
    bounds = chunk_bounds(n)
    parameter_copies = 3 + 2 + int(optimizer_state_arrays) + (len(bounds) if bounds else 1)
    per_sample = sizes[0] + sum(sizes[1:]) + sum(sizes[1:-1]) + max(sizes[1:]) + sizes[-1]
    return itemsize * (parameter_copies * parameter_count(sizes) + per_sample * n)


def largest_fitting_batch(sizes, dtype, optimizer_state_arrays=0, most=None, reserve=0):
    """The largest number of samples per step whose training fits the budget, less `reserve` bytes
    kept for something else (0 if none)."""
    budget = memory_budget() - int(reserve)
    low, high = 0, int(most) if most else 2**40
    while low < high:  # training_bytes grows with n (more samples, more chunks)
        middle = (low + high + 1) // 2
        if training_bytes(sizes, middle, dtype, optimizer_state_arrays) <= budget:
            low = middle
        else:
            high = middle - 1
    return low


def check_training_memory(sizes, n_samples_per_step, dtype, optimizer_state_arrays=0, field="layers",
                          full_batch=False):
    """Refuse a set-up whose training step would exceed the budget, before anything is built.

    sizes: every layer size, input first ([n_features, *layers]); n_samples_per_step: the batch
    size, or the number of training samples for full-batch training (then pass full_batch=True:
    the message offers the largest mini-batch that fits). optimizer_state_arrays: arrays the
    optimizer keeps per parameter (sgd 0, momentum 1, adam 2). Returns the estimate in bytes.
    """
    sizes = [int(n) for n in sizes]
    needed = training_bytes(sizes, n_samples_per_step, dtype, optimizer_state_arrays)
    budget = memory_budget()
    if needed <= budget:
        return needed
    fitting = largest_fitting_batch(sizes, dtype, optimizer_state_arrays, most=n_samples_per_step)
    what = (f"training the network {sizes} ({dtype}) on "
            f"{'the full batch of ' if full_batch else 'batches of '}{int(n_samples_per_step):,} samples")
    if fitting == 0:
        advice = "even one sample per step does not fit: use fewer or smaller layers"
    else:
        suggestion = 2 ** int(math.log2(fitting))  # a round number of samples at most `fitting`
        advice = (f"use mini-batches of at most {fitting:,} samples (batch size {suggestion}, say)"
                  if full_batch else f"use a batch size of at most {fitting:,} (e.g. {suggestion})")
        if fitting < 16:
            advice += ", or fewer or smaller layers"
    raise InputError(field, f"{what} would take {format_bytes(needed)}, over {budget_text(budget)}; "
                            f"{advice}")


__all__ = ["BUDGET_VARIABLE", "DEFAULT_BUDGET", "array_bytes", "budget_text",
           "check_array", "check_bytes", "check_network_memory", "check_training_memory",
           "format_bytes", "largest_fitting_batch", "memory_budget", "network_bytes", "parameter_count",
           "parse_bytes", "training_bytes"]
