"""Where trials run: a given Dask scheduler, or a LocalCluster in its own Python process.

The embedded cluster is a LocalCluster (one single-threaded worker process per core) started in
a separate Python process (`python -m backprop.sweep serve N`): Dask spawns its workers, and a
spawned worker re-imports its parent's `__main__`; under Streamlit that is the page being run,
so the app never spawns from its own process. The serving process ends when its parent does.

A sweep's LocalCluster is kept when the sweep ends (`keep_local_cluster`), idle, for the next sweep
in the same process with the same workers and memory settings (`take_local_cluster`): a second
sweep on the app's server starts in a fraction of a second instead of the seconds a new cluster
takes. At most one is kept; it is closed after KEEP_SECONDS idle (BACKPROP_SWEEP_KEEP_SECONDS, 0:
never kept), when another set-up needs a new one, and at the interpreter's exit.

A sweep never changes a scheduler's configuration: a trial whose worker died is run again by
the client (see backprop.sweep.client). The embedded cluster is the sweep's own, and its
scheduler gives up on a task at the first death (allowed-failures 0), so the client decides.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid

from .. import paths
from ..errors import InputError
from ..setting import Setting

CONNECT_SECONDS = 8  # an unreachable scheduler is reported after this long
CLUSTER_START_SECONDS = 60
KEEP_VARIABLE = "BACKPROP_SWEEP_KEEP_SECONDS"
KEEP_SECONDS = 600  # an idle LocalCluster kept for the next sweep is closed after this long
# One BLAS thread per worker process, and the engine's own batch splitting off: the workers are
# the parallelism (see backprop/blas_threads.py and backprop/parallel.py).
WORKER_ENV = {"BACKPROP_ENGINE_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}
# A sweep's workers are checked by backprop.sweep.admission.check_workers (the operator's
# BACKPROP_SWEEP_MAX_WORKERS, default the core count) before anything is recorded.
WORKERS = Setting("workers", "int", None, "Local worker processes", "Default: one per core", low=1, high=64,
                  none_word="")


def check_address(address):
    text = str(address).strip()
    if not re.fullmatch(r"(tcp://|tls://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}", text):
        raise InputError("scheduler", f"{address!r} is not a scheduler address like tcp://host:8786")
    return text if "://" in text else "tcp://" + text


def default_workers():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_died(error):
    """Whether a trial's error says its worker process died (Dask's KilledWorker)."""
    return type(error).__name__ == "KilledWorker"


def dead_worker(error):
    """The address of the worker a KilledWorker names (None when it does not say)."""
    try:
        return error.last_worker.address
    except (AttributeError, IndexError):
        return None


def describe_error(error):
    """One line for a trial's or a connection's failure."""
    if isinstance(error, InputError):
        return f"{error.field}: {error.message}"
    return f"{type(error).__name__}: {error}"


class LocalClusterProcess:
    """A LocalCluster in its own Python process (see the module docstring for why)."""

    def __init__(self, workers):
        self.workers = int(workers)
        self.key = cluster_key(workers)
        self.reused = 0  # sweeps that took it from the idle pool
        self.log_path = paths.studio_home() / "sweeps" / f"cluster-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 (the child keeps it)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "backprop.sweep", "serve", str(int(workers))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=paths.PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
                str(paths.PROJECT_ROOT), os.environ.get("PYTHONPATH")]))})
        log.close()
        line = self._first_line()
        self.address = json.loads(line)["address"]

    def _first_line(self):
        result = []
        reader = threading.Thread(target=lambda: result.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(CLUSTER_START_SECONDS)
        if not result or not result[0]:
            self.close()
            tail = self.log_path.read_text(errors="replace")[-1500:]
            raise InputError("workers", f"the local Dask cluster did not start: {tail}")
        return result[0].decode()

    @property
    def alive(self):
        return self.process.poll() is None

    def close(self):
        if self.process.poll() is None:
            try:
                self.process.stdin.close()  # the serving process closes its cluster and exits
                self.process.wait(15)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)


def serve_local_cluster(workers):
    """`python -m backprop.sweep serve N`: print the address, serve until stdin closes."""
    import logging

    import dask
    from distributed import LocalCluster

    # This cluster is the sweep's own: a task whose worker dies fails at once, and the client
    # runs the trial again itself (the same rule as on a shared scheduler).
    # Dask's default MALLOC_TRIM_THRESHOLD_ (64 kB) makes glibc give every freed large array back to
    # the system and fault it in, zeroed, again at the next step: about 30% of a worker's CPU in a
    # trial. None unsets it (distributed.nanny: a None entry is left out of the spawned environment).
    dask.config.set({"distributed.scheduler.allowed-failures": 0,
                     "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, silence_logs=logging.ERROR, env=WORKER_ENV)
    try:
        print(json.dumps({"address": cluster.scheduler_address}), flush=True)
        sys.stdin.buffer.read()  # until the client closes it, or ends (killed, interrupted)
    except (BrokenPipeError, OSError):  # the client ended while this cluster started
        pass
    finally:
        cluster.close(timeout=10)


# -- the kept cluster ------------------------------------------------------------------------------
_kept = None  # (LocalClusterProcess, the monotonic time it became idle): one idle cluster at most
_kept_lock = threading.Lock()
_closer = None  # the thread that closes the kept cluster once it has been idle keep_seconds()


def cluster_key(workers):
    """What a kept cluster must match to be reused: its workers, the memory budget and the studio's
    home (its log, the workers' data cache) and the Python path its processes were started with."""
    from ..budget import BUDGET_VARIABLE

    return (int(workers), os.environ.get(BUDGET_VARIABLE, ""), str(paths.studio_home()),
            os.environ.get("PYTHONPATH", ""))


def keep_seconds():
    text = os.environ.get(KEEP_VARIABLE, "").strip()
    try:
        return max(0.0, float(text)) if text else KEEP_SECONDS
    except ValueError:
        return KEEP_SECONDS


def _take_kept():
    """The kept cluster, out of its slot (None when none is kept)."""
    global _kept
    with _kept_lock:
        kept, _kept = _kept, None
    return kept[0] if kept is not None else None


def take_local_cluster(workers):
    """A LocalClusterProcess of `workers` workers: the kept one when it matches and still runs, else
    a new one (a kept one that does not match is closed: one idle cluster at most)."""
    kept = _take_kept()
    if kept is not None and kept.key == cluster_key(workers) and kept.alive:
        kept.reused += 1
        return kept
    if kept is not None:
        kept.close()
    return LocalClusterProcess(workers)


def keep_local_cluster(cluster):
    """Keep a sweep's cluster, idle, for the next sweep (closed after keep_seconds(); 0: now)."""
    global _kept, _closer
    seconds = keep_seconds()
    if not seconds or not cluster.alive:
        cluster.close()
        return
    with _kept_lock:
        old, _kept = _kept, (cluster, time.monotonic())
        if _closer is None:
            _closer = threading.Thread(target=_close_when_idle, name="backprop-sweep-keep", daemon=True)
            _closer.start()
    if old is not None and old[0] is not cluster:
        old[0].close()


def _close_when_idle():
    global _kept, _closer
    while True:
        time.sleep(min(5.0, max(0.5, keep_seconds() / 4)))
        with _kept_lock:
            if _kept is not None and time.monotonic() - _kept[1] < keep_seconds():
                continue  # still within its idle time
            late, _kept, _closer = _kept, None, None
        if late is not None:
            late[0].close()
        return


def kept_clusters():
    """The addresses of the idle clusters kept now (one at most)."""
    with _kept_lock:
        return [_kept[0].address] if _kept is not None else []


@atexit.register
def close_local_clusters():
    """Close the kept cluster (at the interpreter's exit; tests and benchmarks call it too)."""
    kept = _take_kept()
    if kept is not None:
        kept.close()


def _warm_up():
    from .. import data, trainer  # noqa: F401


def connect(scheduler=None, workers=None, reuse=False):
    """(Client, owned cluster or None): the given scheduler, or a new local cluster (`reuse`: the
    kept one when it fits, see take_local_cluster; give it back with keep_local_cluster). The
    scheduler's configuration is left as it is."""
    from distributed import Client

    cluster = None
    if scheduler:
        address = check_address(scheduler)
    else:
        from .admission import check_workers

        count = check_workers(workers)
        cluster = take_local_cluster(count) if reuse else LocalClusterProcess(count)
        address = cluster.address
    try:
        client = Client(address, timeout=f"{CONNECT_SECONDS}s", set_as_default=False)
    except (OSError, TimeoutError) as error:
        if cluster is not None:
            cluster.close()
        raise InputError("scheduler", f"no Dask scheduler answered at {address} within "
                                      f"{CONNECT_SECONDS} s: is `dask scheduler` running there and "
                                      f"the port open? ({error})") from None
    try:
        client.run(_warm_up)  # imports on every worker now, not in its first trial
    except Exception as error:  # e.g. a worker without this package
        client.close()
        if cluster is not None:
            cluster.close()
        raise InputError("scheduler", f"a worker at {address} cannot run trials: {describe_error(error)}; "
                                      "install Backprop Studio on every worker") from None
    return client, cluster
