"""The studio's disk quota (issue 21 item 7): what the home holds by kind, an oldest-first clean-up
that never touches a running or pinned run, a cheap trigger, pins with a cap, `backprop runs --disk`."""

import dataclasses
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from backprop import disk
from backprop.config import preset
from backprop.errors import InputError
from backprop.paths import PROJECT_ROOT
from backprop.runs import RunStore

MB = 2**20


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh, empty studio home for this test, and a fresh running total."""
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(disk.DISK_VARIABLE, raising=False)
    monkeypatch.setattr(disk, "_tally", disk._Tally())
    monkeypatch.setattr(disk, "HISTORY_GRACE", 0.0)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def write(path, size=MB):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x01" * size)
    return path


def ended_run(store, size=MB, name=None, upload=None):
    config = {"layers": [4, 1], "learning_rate": 0.1, **({"upload": upload} if upload else {})}
    run_id = store.create(config, name=name)
    store.append_history(run_id, [{"iteration": i, "epoch": i / 10, "cost": 1 / (i + 1)} for i in range(50)])
    path = write(store.checkpoint_path(run_id), size)
    store.finish(run_id, {}, status="stopped", checkpoint_path=path)
    time.sleep(0.01)  # distinct ages
    return run_id


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_quota_is_parsed_like_the_memory_budget(monkeypatch):
    monkeypatch.delenv(disk.DISK_VARIABLE, raising=False)
    assert disk.disk_budget() == disk.DEFAULT_DISK_BUDGET == 2 * 10**9
    monkeypatch.setenv(disk.DISK_VARIABLE, "500MiB")
    assert disk.disk_budget() == 500 * MB
    for bad, words in (("lots", "is not a size"), ("2 parsecs", "is not a size"), ("1MB", "below 10 MiB")):
        monkeypatch.setenv(disk.DISK_VARIABLE, bad)
        with pytest.raises(InputError) as error:
            disk.disk_budget()
        assert error.value.field == disk.DISK_VARIABLE and words in error.value.message


def test_usage_counts_every_kind_of_the_home(home):
    store = RunStore()
    ended_run(store, 2 * MB)
    write(home / "datasets" / "uploads" / "0123456789ab" / "data.npz", MB)
    write(home / "datasets" / "fashion" / "train.gz", 3 * MB)
    write(home / "sweeps" / "sweep-1.journal", MB // 2)
    write(home / "cache" / "idx-abc" / "images.npy", MB)
    found = disk.usage()
    assert found.files["checkpoints"] == 1 and 2 * MB <= found.bytes["checkpoints"] < 2 * MB + 8192
    assert found.bytes["uploads"] >= MB and found.bytes["data sets"] >= 3 * MB
    assert found.bytes["sweeps"] >= MB // 2 and found.bytes["cache"] >= MB and found.bytes["run store"] > 0
    assert found.total == sum(found.bytes.values()) and found.bytes["other"] == 0


def test_clean_up_goes_oldest_first_and_never_touches_running_or_pinned_runs(home):
    store = RunStore()
    pinned = ended_run(store, name="pinned")  # the oldest of all: kept anyway
    store.pin(pinned)
    first, second, third = (ended_run(store, name=f"ended {i}") for i in range(3))
    kept_upload, old_upload = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    write(home / "datasets" / "uploads" / old_upload / "data.npz")
    write(home / "datasets" / "uploads" / kept_upload / "data.npz")
    running = ended_run(store, name="running", upload=kept_upload)
    store.mark_running(running)  # trains on in this (live) process, with the checkpoint of its last pause
    stale_log = write(home / "sweeps" / f"cluster-{dead_pid()}-abc123.log")
    live_log = write(home / "sweeps" / f"cluster-{os.getpid()}-def456.log")
    write(home / "cache" / "idx-0123" / "images.npy")

    # A quota that needs the stale log and the two oldest ended checkpoints, not the third.
    total = disk.usage().total
    budget = int((total - 3 * MB + MB // 2) / disk.LOW_WATER)
    cleanup = disk.clean_up(store, budget=budget)
    assert [(r.step, r.run_id) for r in cleanup.removed] == [(0, None), (1, first), (1, second)]
    assert not stale_log.exists() and live_log.exists()
    assert store.get(first)["checkpoint_path"] is None and store.get(first)["n_history"] == 50  # history kept
    assert not store.checkpoint_path(first).exists() and store.checkpoint_path(third).exists()
    assert cleanup.after <= disk.LOW_WATER * budget < cleanup.before

    # Nothing left to spare: everything not running or pinned goes, oldest first, step by step.
    cleanup = disk.clean_up(store, budget=1)
    steps = [r.step for r in cleanup.removed]
    assert steps == sorted(steps) and set(steps) == {1, 2, 3, 4}
    assert {run["id"] for run in store.list_runs()} == {pinned, running}
    assert store.checkpoint_path(pinned).exists() and store.checkpoint_path(running).exists()
    assert store.get(running)["status"] == "running"
    assert (home / "datasets" / "uploads" / kept_upload).exists()  # the running run trains on it
    assert not (home / "datasets" / "uploads" / old_upload).exists() and live_log.exists()
    assert not (home / "cache" / "idx-0123").exists()


def test_a_history_removed_gives_its_pages_back_to_the_disk(home):
    store = RunStore()
    runs = [ended_run(store, size=4096) for _ in range(3)]
    for run_id in runs:
        store.append_history(run_id, [{"iteration": i, "epoch": 0.0, "cost": 0.5} for i in range(50, 20_000)])
    before = disk.usage().bytes["run store"]
    disk.clean_up(store, budget=1)
    assert not store.list_runs()
    assert disk.usage().bytes["run store"] < before / 4  # VACUUM: the file shrank, not only its free pages


def test_the_trigger_walks_the_home_only_when_the_quota_may_be_passed(home, monkeypatch):
    walks = []
    real_usage = disk.usage
    monkeypatch.setattr(disk, "usage", lambda *a: walks.append(1) or real_usage(*a))
    monkeypatch.setenv(disk.DISK_VARIABLE, "20MB")
    store = RunStore()
    disk.note_written(store=store)
    assert len(walks) == 1  # the first note of a process walks once
    for run_id in range(1, 41):  # a run ending: its checkpoint and the database are noted, no walk
        disk.after_run_end(store, write(store.checkpoint_path(run_id), 100_000))
    assert len(walks) == 1
    big = write(home / "checkpoints" / "run-999.npz", 20 * MB)  # past the quota: walk, clean, walk
    cleanup = disk.note_written(big, store=store)
    assert cleanup is not None and len(walks) == 3 and not big.exists()  # an orphan file: no run has it
    assert cleanup.after <= disk.LOW_WATER * 20e6


def test_pins_may_hold_at_most_half_the_quota(home, monkeypatch):
    monkeypatch.setenv(disk.DISK_VARIABLE, "10MiB")
    store = RunStore()
    first, second = ended_run(store, 3 * MB), ended_run(store, 3 * MB)
    disk.check_pin(store, first)
    store.pin(first)
    with pytest.raises(InputError) as refused:
        disk.check_pin(store, second)
    assert refused.value.field == "pin" and "unpin another run first" in refused.value.message
    assert "BACKPROP_DISK_BUDGET" in refused.value.message
    store.unpin(first)
    assert disk.check_pin(store, second) >= 3 * MB


def test_a_database_of_schema_2_gains_the_pinned_column(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as con:
        con.executescript("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
                          "source TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, "
                          "updated REAL NOT NULL, config TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}', "
                          "checkpoint_path TEXT, host TEXT, pid INTEGER, sweep_id INTEGER, trial INTEGER); "
                          "INSERT INTO runs (name, source, status, created, updated, config) "
                          "VALUES ('old', 'cli', 'finished', 1, 1, '{}'); PRAGMA user_version=2;")
    store = RunStore(path)
    assert store.get(1)["pinned"] is False
    store.pin(1)
    assert store.get(1)["pinned"] is True and store.runs_by_age()[0]["pinned"] is True


def test_a_running_studio_run_keeps_its_checkpoint_and_history(home):
    """A Studio paused (its checkpoint written), then training in its thread: the clean-up leaves it."""
    from studio.session import Studio

    studio = Studio(config=dataclasses.replace(preset("tutorial"), subset=300, iterations=10**6),
                    store=RunStore())
    studio.step(5)
    checkpoint = RunStore().get(studio.run_id)["checkpoint_path"]
    studio.train()
    try:
        assert studio.running
        disk.clean_up(budget=1)
        assert RunStore().get(studio.run_id)["status"] == "running" and os.path.exists(checkpoint)
    finally:
        studio.release()


def test_steps_and_resets_stay_within_the_quota(home, monkeypatch):
    """A visitor's Step x10 + Reset, again and again: each Reset ends a run with its checkpoint. A run's
    end notes its files (what backprop.run.Run calls, after_run_end); past the quota the oldest go."""
    from studio.session import Studio

    store = RunStore()
    finish = store.finish

    def finish_and_note(run_id, metrics, status="finished", checkpoint_path=None):
        finish(run_id, metrics, status=status, checkpoint_path=checkpoint_path)
        disk.after_run_end(store, checkpoint_path)
    monkeypatch.setattr(store, "finish", finish_and_note)  # the hook Run._end is asked to call
    studio = Studio(config=dataclasses.replace(preset("tutorial"), subset=300), store=store)
    studio.step(10)
    studio.reset()
    one_run = disk.usage().bytes["checkpoints"]
    quota = disk.usage().total + 3 * one_run
    monkeypatch.setenv(disk.DISK_VARIABLE, str(quota))
    for _ in range(8):
        studio.step(10)
        studio.reset()
    from backprop.run import run_writer

    run_writer().put(lambda: None).wait()
    assert disk.usage().total <= quota
    kept = [run for run in store.list_runs() if run["checkpoint_path"]]
    assert 1 <= len(kept) <= 4 and len(store.list_runs()) == 9  # the newest checkpoints, every history
    assert max(run["id"] for run in kept) == max(run["id"] for run in store.list_runs())
    studio.release()


def test_backprop_runs_disk_prints_one_table_with_the_quota(home):
    store = RunStore()
    ended_run(store, 12 * MB)
    env = {**os.environ, "BACKPROP_STUDIO_HOME": str(home), "BACKPROP_DISK_BUDGET": "11MB"}
    shown = subprocess.run([sys.executable, "-m", "backprop", "runs", "--disk"], capture_output=True,
                           text=True, cwd=PROJECT_ROOT, env=env, timeout=120)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    for words in ("kind", "checkpoints", "run store", "uploads", "sweeps", "cache", "data sets", "total",
                  "Quota: 11.0 MB (BACKPROP_DISK_BUDGET)", "Over the quota: a clean-up now frees"):
        assert words in text, (words, text)
    assert store.checkpoint_path(1).exists()  # a report removes nothing
    env["BACKPROP_DISK_BUDGET"] = "plenty"
    refused = subprocess.run([sys.executable, "-m", "backprop", "runs", "--disk"], capture_output=True,
                             text=True, cwd=PROJECT_ROOT, env=env, timeout=120)
    assert refused.returncode == 2 and "error: BACKPROP_DISK_BUDGET: 'plenty' is not a size" in refused.stderr
    assert "Traceback" not in refused.stderr
