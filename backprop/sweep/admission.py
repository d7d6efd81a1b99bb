"""What a sweep may take of the machine, decided before anything is recorded or started.

A sweep on local workers runs `workers` trainings at once, each in a worker process of its own,
beside a cluster process (the Dask scheduler and the workers' nannies) and the client (the CLI's
process, or the app's server). All of it must fit the memory budget one session is granted
(backprop.budget, BACKPROP_MEMORY_BUDGET: a sweep is a session of its own, it outlives the tab
that started it):

    workers x (a worker process + the space's heaviest trial) + the cluster + the client's share

- a trial: the training the set-up needs (`config.check_memory`, at the space's largest layers,
  batch and optimizer state: `SweepSpec.heaviest_configs`) and its data set as a worker loads it;
- the client's share: its Dask client, the live trials' curves and evaluations (thinned, see
  backprop.sweep.client) and Optuna's study in memory (its journal's trial records).

On a scheduler the operator named, the trials run on that cluster's machines: only the client's
share is this machine's. The number of local workers is bounded by the operator,
BACKPROP_SWEEP_MAX_WORKERS (default: the core count; a worker is a single-threaded process, more
than one per core only queue for the CPUs). Every refusal names `workers` and the limit. The app
also counts a sweep's workers against its training cap (studio.sweep_runner).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from ..budget import BUDGET_VARIABLE, budget_text, format_bytes, memory_budget
from ..data.tasks import NAMED_SIZES, nominal_size
from ..errors import InputError
from .cluster import default_workers
from .journal import MAX_JOURNAL_TRIALS

MAX_WORKERS_VARIABLE = "BACKPROP_SWEEP_MAX_WORKERS"
# Measured with psutil (RSS), Python 3.11, NumPy, distributed 2026.8: an idle local worker after its
# warm-up imports 68 MB; the serving process (scheduler, nannies) 66 MB and multiprocessing's resource
# tracker 16 MB; the client's Dask client and its threads about 25 MB. With a margin.
WORKER_PROCESS_BYTES = 80 * 10**6
CLUSTER_BYTES = 100 * 10**6
CLIENT_BYTES = 40 * 10**6
ROW_BYTES = 180  # a StepRow or Evaluation kept in a live TrialView (172 bytes measured)
# A trial in Optuna's journal storage in memory, with ten pruner reports and its result: 3,975 bytes
# measured (tracemalloc, 1,000 trials); three times that.
JOURNAL_TRIAL_BYTES = 12_000
TEST_SHARE = 6  # a named data set's test set is a sixth of its training set (MNIST: 10,000 to 60,000)


def max_workers():
    """Local worker processes a sweep may have on this machine: BACKPROP_SWEEP_MAX_WORKERS, or
    one per core."""
    text = os.environ.get(MAX_WORKERS_VARIABLE, "").strip()
    if not text:
        return default_workers()
    if not text.isdigit() or int(text) < 1:
        raise InputError(MAX_WORKERS_VARIABLE, f"{text!r} is not a number of worker processes (1 or more)")
    return int(text)


def check_workers(value, limit=None):
    """The local workers asked for (None: one per core, within the limit), refused past `limit`
    (default max_workers()) with a message naming workers and the limit."""
    limit = max_workers() if limit is None else limit
    if value is None or (isinstance(value, str) and not value.strip()):
        return min(default_workers(), limit)
    count = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,9}\s*", value):
        count = int(value)
    if count is None:
        raise InputError("workers", f"{str(value)[:40]!r} is not a number of local worker processes")
    if count < 1:
        raise InputError("workers", f"at least 1 local worker process, got {count}")
    if count > limit:
        raise InputError("workers", f"at most {limit} local worker processes on this server (its limit, "
                                    f"{MAX_WORKERS_VARIABLE}; default one per core), got {count}")
    return count


# -- memory -----------------------------------------------------------------------------------------
def data_bytes(config, size):
    """A trial's data set in a worker's memory, from its sizes: for a named set, its files' pixels
    as read (bytes) and the chosen samples as floats (train and test); for a 2D set, every point."""
    features, n_train = size
    if config.dataset in NAMED_SIZES:
        n_all = NAMED_SIZES[config.dataset][0]
        raw = features * (n_all + math.ceil(n_all / TEST_SHARE))
        return raw + 8 * features * (n_train + math.ceil(n_train / TEST_SHARE))
    return 2 * 8 * features * max(n_train, getattr(config, "points", n_train) or n_train)


def _size(config):
    """(features, training samples) of a set-up's data: nominal, or (a person's own files, which the
    client loads and sends) as loaded. Returns (size, bytes of the loaded arrays or 0)."""
    size = nominal_size(config)
    if size is not None:
        return size, 0
    data = config.load_data()
    return (data.n_features, len(data.y_train)), data.nbytes


def trial_bytes(spec):
    """(the most one trial of the space takes on a worker, bytes of data the client sends): its
    training at the heaviest set-up (an InputError naming layers or batch_size if one alone is over
    the budget) and its data."""
    heaviest, sent = 0, 0
    for config in spec.heaviest_configs():
        size, loaded = _size(config)
        training = config.check_memory(*size)
        data = loaded if loaded else data_bytes(config, size)
        heaviest, sent = max(heaviest, training + data), max(sent, loaded)
    return heaviest, sent


def rows_per_trial(spec, running):
    """Step rows and evaluations a live TrialView keeps (running: MAX_CURVE each; ended: thinned
    to ENDED_ROWS each; see backprop.sweep.client)."""
    from .client import ENDED_ROWS, MAX_CURVE

    iterations = spec.base.iterations
    evaluations = iterations // max(1, spec.base.eval_every) + 1
    cap = MAX_CURVE if running else ENDED_ROWS
    return min(iterations + 1, cap) + min(evaluations, cap)


def client_bytes(spec, workers, journal_trials=0):
    """The client's share: its Dask client, the live trials' rows (every trial ended, and a
    trial running and one waiting per worker) and Optuna's study (the journal's trial records so
    far, `journal_trials`, and those this run adds)."""
    total = spec.total()
    in_flight = 2 * workers
    rows = total * rows_per_trial(spec, running=False) + in_flight * rows_per_trial(spec, running=True)
    records = min(MAX_JOURNAL_TRIALS, journal_trials + total + in_flight)
    return CLIENT_BYTES + ROW_BYTES * rows + JOURNAL_TRIAL_BYTES * records


@dataclass(frozen=True)
class SweepCost:
    """What a sweep was admitted with: its workers (None on a scheduler), bytes in all and per part."""

    workers: int | None
    total: int
    trial: int
    client: int

    def text(self):
        if self.workers is None:
            return f"client {format_bytes(self.client)}"
        return (f"{self.workers} workers x ({format_bytes(WORKER_PROCESS_BYTES)} + a trial of up to "
                f"{format_bytes(self.trial)}) + the cluster {format_bytes(CLUSTER_BYTES)} + the client "
                f"{format_bytes(self.client)} = {format_bytes(self.total)}")


def local_bytes(workers, trial, client):
    return workers * (WORKER_PROCESS_BYTES + trial) + CLUSTER_BYTES + client


def check_sweep(spec, workers=None, scheduler=None, journal_trials=0, worker_limit=None):
    """Refuse a sweep that would not fit: too many local workers (the operator's limit), or its
    processes past the memory budget (InputError naming workers, with how many fit). Allocates
    nothing (a person's own data files are read to learn their size). Returns a SweepCost."""
    budget = memory_budget()
    if scheduler:
        client = client_bytes(spec, 1, journal_trials)
        if client > budget:
            raise InputError("trials", f"the sweep's client would keep {format_bytes(client)} of trial "
                                       f"records, over {budget_text(budget)}; run fewer trials or iterations")
        return SweepCost(None, client, 0, client)
    count = check_workers(workers, worker_limit)
    trial, sent = trial_bytes(spec)
    client = client_bytes(spec, count, journal_trials) + sent
    total = local_bytes(count, trial, client)
    if total <= budget:
        return SweepCost(count, total, trial, client)
    fitting = 0
    while fitting < count and local_bytes(fitting + 1, trial, client_bytes(spec, fitting + 1, journal_trials)
                                          + sent) <= budget:
        fitting += 1
    what = (f"{count} local workers with trials of up to {format_bytes(trial)} each would take "
            f"{format_bytes(total)} (each worker process {format_bytes(WORKER_PROCESS_BYTES)} and its trial, "
            f"the cluster {format_bytes(CLUSTER_BYTES)}, the client {format_bytes(client)}), over "
            f"{budget_text(budget)}")
    if fitting:
        raise InputError("workers", f"{what}; at most {fitting} worker{'s' if fitting > 1 else ''} fit")
    raise InputError("workers", f"{what}; not even 1 worker fits: use smaller layers or batches, or fewer "
                                f"trials or iterations (or ask the operator for a larger {BUDGET_VARIABLE})")
