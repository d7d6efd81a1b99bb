"""Sweeps' start-up and per-trial cost (issue 18, speed): what is behaviour, not timing. The timing
targets (30 ms a trial, 2 s start-up) are benchmarks/bench_sweep.py --per-trial's, never a test's.

- A sweep's LocalCluster is kept when it ends and the next sweep of this process with the same
  workers takes it (same scheduler address, its start-up recorded); another worker count gets a
  new cluster and the kept one is closed; close_local_clusters() closes what is kept.
- A trial returns what the client needs: its rows and figures, the worker and attempt (a short
  trial sends no Started: the client opens its run from the result), and its network only when
  the client keeps it (a finished trial), never for a stopped one.
- The journal is written without an fsync per line, and synced by the client.
"""

import dataclasses
import uuid

import pytest

from backprop.config import preset
from backprop.runs import RunStore
from backprop.sweep import Sweep, SweepSpec, create_sweep
from backprop.sweep import cluster as sweep_cluster

SUBSET = 300


def tiny_base(**changes):
    return dataclasses.replace(preset("tutorial"), subset=SUBSET, **changes)


@pytest.fixture
def no_kept_cluster():
    sweep_cluster.close_local_clusters()
    yield
    sweep_cluster.close_local_clusters()


def test_a_second_sweep_reuses_the_kept_local_cluster(no_kept_cluster):
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,0.2"], iterations=5)
    first = Sweep(create_sweep(spec, store), store, workers=1)
    assert first.run().status == "finished"
    assert not first.cluster_reused and first.connect_seconds > 0
    assert sweep_cluster.kept_clusters() == [first.address]  # idle, kept for the next sweep
    second = Sweep(create_sweep(spec, store), store, workers=1)
    snapshot = second.run()
    assert snapshot.status == "finished" and [t.status for t in snapshot.trials] == ["finished"] * 2
    assert second.address == first.address and second.cluster_reused
    assert second.connect_seconds is not None and second.connect_seconds > 0
    # Another worker count needs another cluster: the kept one is closed, not kept beside it.
    third = Sweep(create_sweep(spec, store), store, workers=2)
    assert third.run().status == "finished"
    assert third.address != first.address and not third.cluster_reused
    assert sweep_cluster.kept_clusters() == [third.address]
    sweep_cluster.close_local_clusters()
    assert sweep_cluster.kept_clusters() == []


def test_a_cluster_is_not_kept_when_keeping_is_off(no_kept_cluster, monkeypatch):
    monkeypatch.setenv(sweep_cluster.KEEP_VARIABLE, "0")
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1"], iterations=3)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    assert sweep.run().status == "finished"
    assert sweep_cluster.kept_clusters() == []


def test_a_trial_returns_its_rows_and_its_network_only_when_kept(no_kept_cluster):
    from distributed import Variable

    from backprop.sweep.trial import Started, TrialTask, run_trial

    client, cluster = sweep_cluster.connect(workers=1, reuse=True)
    try:
        channel = f"test-{uuid.uuid4().hex[:8]}"
        Variable(channel + "-stop", client=client).set({"all": False, "trials": [7], "heard": {}})
        config = tiny_base(learning_rate=0.1, iterations=3).validated()
        task = TrialTask(3, config, channel + "-progress", channel + "-stop",
                         cancel_channel=channel + "-cancel")
        from distributed import Queue

        progress = Queue(channel + "-progress", client=client)
        finished = client.submit(run_trial, task, pure=False).result()
        assert finished.status == "finished" and finished.network is not None
        assert finished.worker and finished.attempt
        # Rows not sent yet come back in the result: all of them when the 3 steps took less than
        # REPORT_SECONDS (no Progress), the rest after a Progress on a busy machine.
        sent = progress.get(batch=True)
        rows = [row for m in sent if not isinstance(m, Started) for row in m.rows.steps]
        rows += list(finished.rows.steps) if finished.rows else []
        assert [row.iteration for row in rows] == [0, 1, 2]
        # A trial the client stops (as the pruner does): its rows, no network.
        long = dataclasses.replace(task, number=7, config=tiny_base(learning_rate=0.1,
                                                                    iterations=1_000_000).validated())
        stopped = client.submit(run_trial, long, pure=False).result()
        assert stopped.status == "stopped" and stopped.network is None and stopped.history is None
        sent = progress.get(batch=True)
        assert isinstance(sent[0], Started) and sent[0].number == 7  # a longer trial says it started
        assert sum(len(m.rows.steps) for m in sent[1:]) + len(stopped.rows.steps if stopped.rows else ()) \
            == stopped.iterations
    finally:
        client.close()
        sweep_cluster.keep_local_cluster(cluster)


def test_a_short_trials_run_is_opened_from_its_result_with_every_row(no_kept_cluster):
    """20-step trials send no Started and no Progress: each trial's run still has all its rows, the
    worker it ran on, and its checkpoint."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(eval_every=5), ["learning_rate=0.05:0.5"], strategy="random",
                           trials=4, iterations=20)
    snapshot = Sweep(create_sweep(spec, store), store, workers=1).run()
    assert [t.status for t in snapshot.trials] == ["finished"] * 4
    for trial in snapshot.trials:
        assert trial.worker and trial.checkpoint
        rows = store.history(trial.run_id)
        assert [row["iteration"] for row in rows if row.get("cost") is not None] == list(range(20))
        assert [row["iteration"] for row in rows if row["test_cost"] is not None] == [5, 10, 15, 20]


def test_the_journal_is_appended_without_an_fsync_per_line_and_synced_once(tmp_path, monkeypatch):
    import os

    from backprop.sweep import journal

    calls = []
    real = os.fsync
    monkeypatch.setattr(journal.os, "fsync", lambda fd: calls.append(fd) or real(fd))
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,0.2"], iterations=3)
    backend = journal.checked_journal(tmp_path / "sweep-1.journal", 1, spec, create=True)
    backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "sweep-1", "directions": [1]}])
    assert calls == [] and (tmp_path / "sweep-1.journal").read_text().count("\n") == 1
    backend.sync()
    backend.sync()  # nothing new: no second fsync
    assert len(calls) == 1
