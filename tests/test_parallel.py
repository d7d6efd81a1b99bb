"""Large batches are split into chunks computed by a thread pool: same cost and gradients as
one piece, no buffer shared between chunks, and the BLAS thread helper never raises."""

import threading

import numpy as np
import pytest

from backprop import blas_threads as blas
from backprop import parallel
from backprop.activations import ACTIVATIONS
from backprop.network import Network

N_SAMPLES = 1001  # above parallel.MIN_SAMPLES, and not a multiple of the chunk count


def task(output, dtype, n=N_SAMPLES, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 20)).astype(dtype)
    sizes = [20, 16, 8, 1] if output == "sigmoid" else [20, 16, 8, 3]
    Y = rng.integers(0, 2 if output == "sigmoid" else 3, size=n)
    return sizes, X, Y


def one_piece_and_chunked(monkeypatch, network, X, Y, l2=0.0):
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "1")
    assert parallel.chunk_bounds(len(Y)) is None
    whole = network.loss_and_gradients(X, Y, l2=l2)
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "3")
    assert len(parallel.chunk_bounds(len(Y))) > 1
    chunked = network.loss_and_gradients(X, Y, l2=l2)
    return whole, chunked


def assert_same(whole, chunked, rtol):
    (cost, grads), (chunked_cost, chunked_grads) = whole, chunked
    assert chunked_cost == pytest.approx(cost, rel=rtol)
    for (dW, db), (cdW, cdb) in zip(grads, chunked_grads, strict=True):
        assert cdW.dtype == dW.dtype and cdW.shape == dW.shape and cdb.shape == db.shape
        for a, b in ((dW, cdW), (db, cdb)):
            assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(a)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_chunked_gradients_equal_one_piece(monkeypatch, activation, output, dtype, rtol):
    sizes, X, Y = task(output, dtype)
    network = Network(sizes, activation=activation, output=output, init="he", dtype=dtype)
    whole, chunked = one_piece_and_chunked(monkeypatch, network, X, Y)
    assert_same(whole, chunked, rtol)


def test_chunked_gradients_with_l2(monkeypatch):
    sizes, X, Y = task("softmax", "float64")
    network = Network(sizes, output="softmax")
    whole, chunked = one_piece_and_chunked(monkeypatch, network, X, Y, l2=0.01)
    assert_same(whole, chunked, 1e-12)


def test_chunks_cover_the_batch_in_order_and_small_batches_stay_whole(monkeypatch):
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "2")
    assert parallel.chunk_bounds(parallel.MIN_SAMPLES - 1) is None
    for n in (parallel.MIN_SAMPLES, 11272, 100_003):
        bounds = parallel.chunk_bounds(n)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(stop == next_start for (_, stop), (next_start, _) in zip(bounds, bounds[1:], strict=False))
        assert min(stop - start for start, stop in bounds) >= parallel.MIN_CHUNK
        assert len(bounds) <= 2 * parallel.CHUNKS_PER_WORKER
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "1")
    assert parallel.chunk_bounds(100_003) is None


def test_chunks_running_together_use_separate_buffers(monkeypatch):
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "3")
    sizes, X, Y = task("softmax", "float64")
    network = Network(sizes, output="softmax")
    network.loss_and_gradients(X, Y)
    buffers = list(network._buffers.values())
    parts = {key[3] for key in network._buffers}
    assert len(parts) == len(parallel.chunk_bounds(len(Y)))
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            assert not np.shares_memory(a, b)


def test_many_threads_training_at_once_get_the_sequential_answers(monkeypatch):
    """Several trainers (as in several browser sessions) share the pool and the BLAS setting."""
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "2")
    jobs = []
    for seed, output in enumerate(["sigmoid", "softmax", "sigmoid", "softmax"]):
        sizes, X, Y = task(output, "float64", seed=seed)
        jobs.append((Network(sizes, output=output, seed=seed), X, Y))
    expected = [net.loss_and_gradients(X, Y) for net, X, Y in jobs]
    expected = [(cost, [(dW.copy(), db.copy()) for dW, db in grads]) for cost, grads in expected]
    failures = []

    def train(i):
        net, X, Y = jobs[i]
        for _ in range(5):
            cost, grads = net.loss_and_gradients(X, Y)
            same = cost == expected[i][0] and all(
                np.array_equal(dW, e_dW) and np.array_equal(db, e_db)
                for (dW, db), (e_dW, e_db) in zip(grads, expected[i][1], strict=True))
            if not same:
                failures.append(i)

    threads = [threading.Thread(target=train, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert blas.blas_threads() in (None, 1)  # the engine's workers are the parallelism now


def test_blas_helper_sets_and_reads_back_when_openblas_is_found():
    before = blas.blas_threads()
    if before is None:
        pytest.skip("this NumPy's BLAS is not an OpenBLAS that the helper can find")
    try:
        assert blas.set_blas_threads(1) == 1 and blas.blas_threads() == 1
    finally:
        blas.set_blas_threads(before)
    assert blas.blas_threads() == before and blas.blas_library()


@pytest.mark.parametrize("paths", [[], ["/nonexistent/libopenblas.so"], ["/bin/sh"]])
def test_blas_helper_answers_unknown_and_never_raises(monkeypatch, paths):
    monkeypatch.setattr(blas, "_found", None)
    monkeypatch.setattr(blas, "_loaded_openblas_paths", lambda: paths)
    assert blas.blas_threads() is None
    assert blas.set_blas_threads(1) is None
    assert blas.blas_library() is None


def test_blas_helper_survives_a_broken_library(monkeypatch):
    def broken(*args):
        raise OSError("gone")

    monkeypatch.setattr(blas, "_found", ("/x.so", broken, broken))
    assert blas.blas_threads() is None
    assert blas.set_blas_threads("two") is None


@pytest.mark.parametrize("output", ["sigmoid", "softmax"])
def test_chunked_evaluate_equals_one_piece(monkeypatch, output):
    sizes, X, Y = task(output, "float64")
    network = Network(sizes, output=output)
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "1")
    cost, accuracy = network.evaluate(X, Y)
    predicted = network.predict(X)
    monkeypatch.setenv("BACKPROP_ENGINE_THREADS", "3")
    chunked_cost, chunked_accuracy = network.evaluate(X, Y)
    assert chunked_cost == pytest.approx(cost, rel=1e-12)
    assert chunked_accuracy == accuracy == np.mean(predicted == Y)
