"""Where trials run: a given Dask scheduler, or a LocalCluster in its own Python process.

The embedded cluster is a LocalCluster (one single-threaded worker process per core) started in
a separate Python process (`python -m backprop.sweep serve N`): Dask spawns its workers, and a
spawned worker re-imports its parent's `__main__`; under Streamlit that is the page being run,
so the app never spawns from its own process. The serving process ends when its parent does.

A sweep never changes a scheduler's configuration: a trial whose worker died is run again by
the client (see backprop.sweep.client). The embedded cluster is the sweep's own, and its
scheduler gives up on a task at the first death (allowed-failures 0), so the client decides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import uuid

from .. import paths
from ..errors import InputError
from ..setting import Setting

CONNECT_SECONDS = 8  # an unreachable scheduler is reported after this long
CLUSTER_START_SECONDS = 60
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


def _warm_up():
    from .. import data, trainer  # noqa: F401


def connect(scheduler=None, workers=None):
    """(Client, owned cluster or None): the given scheduler, or a new local cluster. The
    scheduler's configuration is left as it is."""
    from distributed import Client

    cluster = None
    if scheduler:
        address = check_address(scheduler)
    else:
        from .admission import check_workers

        cluster = LocalClusterProcess(check_workers(workers))
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
