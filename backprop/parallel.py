"""Data-parallel gradients for large batches: the batch's samples are split into chunks that a
small shared thread pool works through, each chunk's matrix products on a single BLAS thread.

Why not leave it to OpenBLAS's own threads? They split every matrix product statically into equal
parts and wait for the slowest, so when a browser or the app server takes part of one core the
whole product waits for the slowed half. Here each worker takes the next chunk when it is free
(4 chunks per worker), so a slowed core simply does fewer chunks. NumPy releases the GIL in
matrix products and in the large element-wise loops, so threads are enough.

Small batches (under MIN_SAMPLES) are not split: the hand-over would cost more than it saves.
Once a process has split a batch, OpenBLAS stays single-threaded in it (see map_chunks).
BACKPROP_ENGINE_THREADS=1 turns splitting off, leaving OpenBLAS its own threads (the engine as
it was, for comparisons); another number sets the pool size (default: the CPUs this process may
use).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

from .blas_threads import set_blas_threads

MIN_SAMPLES = 512  # batches smaller than this run as one piece
MIN_CHUNK = 128  # no chunk smaller than this: the matrix products stay efficient
CHUNKS_PER_WORKER = 4  # enough for a free worker to take over a slowed one's share

_lock = threading.Lock()
_pool = None


def workers():
    """Threads for one batch: BACKPROP_ENGINE_THREADS, else the CPUs this process may run on."""
    setting = os.environ.get("BACKPROP_ENGINE_THREADS", "").strip()
    if setting.isdigit() and int(setting) >= 1:
        return int(setting)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def chunk_bounds(n_samples):
    """[(start, stop), ...] to split a batch into, or None to compute it in one piece."""
    if n_samples < MIN_SAMPLES:  # first: a small batch (every step of a Playground run) asks nothing more
        return None
    count = workers()  # an environment read and a system call: 4.6% of a class's training pool
    if count < 2:
        return None
    chunks = max(2, min(CHUNKS_PER_WORKER * count, n_samples // MIN_CHUNK))
    edges = [round(i * n_samples / chunks) for i in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def map_chunks(work, n_chunks):
    """[work(0), ..., work(n_chunks - 1)] computed by the pool, in order.

    The first call makes OpenBLAS single-threaded for the rest of the process: our workers are
    the parallelism now. Switching back after each call would cost more than it saves, because
    OpenBLAS's idle threads keep spinning for a while on the cores our workers need.
    """
    global _pool
    with _lock:
        if _pool is None:
            set_blas_threads(1)
            _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="backprop-chunk")
        pool = _pool
    return list(pool.map(work, range(n_chunks)))


def _forget_pool_in_child():
    """A forked child has none of the parent's threads: start a fresh pool there when needed."""
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)
