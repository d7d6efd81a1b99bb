"""The runs store: runs survive restarts and crashes, and bad names get messages."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from backprop import paths
from backprop import run as run_layer
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.run import Run, run_writer
from backprop.runs import RunStore, default_name, format_runs_table


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite3")


def step_records(start, stop, eval_every=5):
    records = []
    for i in range(start, stop):
        record = {"iteration": i, "epoch": i / 10, "cost": 1.0 / (i + 1), "layers": []}
        if (i + 1) % eval_every == 0:  # as the trainer names it: by the steps done
            record.update(test_iteration=i + 1, test_cost=0.5, test_accuracy=0.9)
        records.append(record)
    return records


def test_default_path_is_the_studio_home_database():
    store = RunStore()
    assert store.path == paths.runs_database()
    assert store.path.exists()


def test_create_append_finish_and_read_back(store):
    config = TrainConfig().validated()
    run_id = store.create(config, source="cli")
    store.append_history(run_id, [{"iteration": 0, "epoch": 0.0, "cost": 0.7},
                                  {"iteration": 1, "epoch": 1.0, "cost": 0.6, "test_cost": 0.65,
                                   "test_accuracy": 0.8}])
    run = store.get(run_id)
    assert run["status"] == "running"
    assert run["source"] == "cli"
    assert run["config"] == config.to_dict()
    assert run["name"] == default_name(config.to_dict())
    assert run["last_iteration"] == 1 and run["n_history"] == 2
    assert run["last_test_accuracy"] == 0.8

    store.finish(run_id, {"test_accuracy": 0.95, "train_cost": 0.3}, checkpoint_path="/tmp/x.npz")
    run = store.get(run_id)
    assert run["status"] == "finished"
    assert run["metrics"] == {"test_accuracy": 0.95, "train_cost": 0.3}
    assert run["checkpoint_path"] == "/tmp/x.npz"
    history = store.history(run_id)
    assert [row["iteration"] for row in history] == [0, 1]
    assert history[0]["test_accuracy"] is None
    assert history[1] == {"iteration": 1, "epoch": 1.0, "cost": 0.6, "test_cost": 0.65,
                          "test_accuracy": 0.8}


def test_runs_survive_reopening_and_list_newest_first(tmp_path):
    first = RunStore(tmp_path / "r.sqlite3")
    a = first.create({"layers": [3, 1]}, name="first")
    b = first.create({"layers": [4, 1]}, name="second")
    again = RunStore(tmp_path / "r.sqlite3")
    assert [run["id"] for run in again.list_runs()] == [b, a]
    assert again.get(a)["name"] == "first"
    with sqlite3.connect(tmp_path / "r.sqlite3") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_paused_run_that_trains_on_is_running_again(store):
    run_id = store.create({"layers": [2, 1]})
    store.append_history(run_id, [{"iteration": 0, "epoch": 0.0, "cost": 0.7}])
    store.finish(run_id, {"cost": 0.7}, status="stopped")
    assert store.get(run_id)["status"] == "stopped"
    store.mark_running(run_id)
    run = store.get(run_id)
    assert run["status"] == "running"
    assert run["metrics"] == {"cost": 0.7} and run["last_iteration"] == 0
    with sqlite3.connect(store.path) as con:  # owned by this process, so a crash shows as interrupted
        assert con.execute("SELECT pid FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == os.getpid()
    with pytest.raises(InputError) as error:
        store.mark_running(run_id + 1)
    assert error.value.field == "run"


def test_rename_and_delete_with_messages(store):
    run_id = store.create({"layers": [2, 1]})
    store.rename(run_id, "  baseline  ")
    assert store.get(run_id)["name"] == "baseline"
    for bad in ("", "   ", "x" * 500):
        with pytest.raises(InputError) as error:
            store.rename(run_id, bad)
        assert error.value.field == "name"
    assert store.get(run_id)["name"] == "baseline"
    store.append_history(run_id, [{"iteration": 0, "epoch": 0, "cost": 1.0}])
    store.delete(run_id)
    assert store.list_runs() == []
    with pytest.raises(InputError) as error:
        store.get(run_id)
    assert error.value.field == "run"
    with pytest.raises(InputError):
        store.history(run_id)
    with pytest.raises(InputError):
        store.append_history(run_id, [{"iteration": 1, "cost": 1.0}])
    with sqlite3.connect(store.path) as con:  # history went with the run
        assert con.execute("SELECT COUNT(*) FROM history").fetchone()[0] == 0


def test_only_a_runs_owner_or_the_operator_changes_it(store):
    """Issue 21 item 11: a browser's run is renamed, pinned, unpinned or deleted by that browser, the
    operator (owners.OPERATOR) or this process itself (actor None); another browser is refused."""
    from backprop.owners import OPERATOR, new_browser_token

    mine, theirs = new_browser_token(), new_browser_token()
    run_id = store.create({"layers": [2, 1]}, owner=mine)
    assert store.get(run_id)["owner"] == mine
    for change in (lambda: store.rename(run_id, "taken", actor=theirs),
                   lambda: store.pin(run_id, actor=theirs), lambda: store.unpin(run_id, actor=theirs),
                   lambda: store.delete(run_id, actor=theirs)):
        with pytest.raises(InputError, match="belongs to another browser") as error:
            change()
        assert error.value.field == "run"
    assert not store.may_change(run_id, theirs) and store.may_change(run_id, mine)
    store.rename(run_id, "mine", actor=mine)
    store.pin(run_id, actor=mine)
    store.unpin(run_id, actor=OPERATOR)
    store.rename(run_id, "the operator's", actor=OPERATOR)
    assert (store.get(run_id)["name"], store.get(run_id)["pinned"]) == ("the operator's", False)
    store.delete(run_id, actor=mine)
    assert store.list_runs() == []


def test_cli_runs_and_runs_from_before_owners_are_the_operators(tmp_path):
    from backprop.owners import OPERATOR, new_browser_token

    path = tmp_path / "runs.sqlite3"
    store = RunStore(path)
    old = store.create({"layers": [2, 1]})
    with sqlite3.connect(path) as con:  # a store written by schema 3: no owner column
        con.execute("ALTER TABLE runs DROP COLUMN owner")
        con.execute("PRAGMA user_version=3")
    store = RunStore(path)
    assert store.get(old)["owner"] is None
    cli = Run({"layers": [2, 1]}, store=store, source="cli")  # as backprop train makes it
    cli.open()
    assert store.get(cli.run_id)["owner"] == "cli"
    visitor = new_browser_token()
    for run_id in (old, cli.run_id):
        with pytest.raises(InputError, match="belongs to the operator"):
            store.rename(run_id, "mine now", actor=visitor)
        store.rename(run_id, "kept", actor=OPERATOR)
    cli.finish(metrics={})
    store.delete(old)


def test_delete_removes_only_the_studios_own_checkpoint(store, tmp_path):
    own = paths.studio_home() / "checkpoints" / "run.npz"
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_bytes(b"x")
    elsewhere = tmp_path / "mine.npz"
    elsewhere.write_bytes(b"x")
    for path in (own, elsewhere):
        run_id = store.create({"layers": [1]})
        store.finish(run_id, {}, checkpoint_path=path)
        store.delete(run_id)
    assert not own.exists()
    assert elsewhere.exists()


def test_bad_values_are_named(store):
    with pytest.raises(InputError) as error:
        store.create({}, source="web")
    assert error.value.field == "source"
    run_id = store.create({})
    with pytest.raises(InputError) as error:
        store.finish(run_id, {}, status="running")
    assert error.value.field == "status"


def test_a_file_that_is_not_a_database_gives_a_message(tmp_path):
    path = tmp_path / "runs.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError) as error:
        RunStore(path)
    assert error.value.field == "runs database"
    assert "move it away" in error.value.message


def written():
    """Wait until the run writer has done what was queued before now."""
    run_writer().put(lambda: None).wait()


def test_a_run_batches_its_writes(store, monkeypatch):
    monkeypatch.setattr(run_layer, "FLUSH_SECONDS", 3600)
    run = Run(TrainConfig().validated(), store=store)
    run.open()
    run.record(step_records(0, 10))
    written()
    assert store.history(run.run_id) == []  # not yet due
    run.flush()

    def steps():
        return [row["iteration"] for row in store.history(run.run_id) if row["cost"] is not None]

    assert len(steps()) == 10
    monkeypatch.setattr(run_layer, "FLUSH_SECONDS", 0)
    run.record(step_records(10, 12))
    written()
    assert len(steps()) == 12
    # the test after step 9 (iteration 10) and step 10's cost share one row
    row = next(row for row in store.history(run.run_id) if row["iteration"] == 10)
    assert row["cost"] == 1 / 11 and row["test_accuracy"] == 0.9


def test_a_finished_run_marks_its_divergence(store, monkeypatch):
    monkeypatch.setattr(run_layer, "FLUSH_SECONDS", 3600)
    run = Run(TrainConfig().validated(), store=store)
    run.open()
    records = step_records(0, 3)
    divergence = {"iteration": 3, "layer": 2, "reason": "cost became NaN"}
    records.append({"iteration": 3, "epoch": 0.3, "cost": float("nan"), "diverged": divergence})
    run.record(records)
    run.finish(metrics={"train_cost": 0.4})
    recorded = store.get(run.run_id)
    assert recorded["status"] == "diverged"
    assert recorded["metrics"]["divergence"] == divergence
    assert [row["iteration"] for row in store.history(run.run_id)] == [0, 1, 2]


def test_a_run_thins_long_histories_but_keeps_every_evaluation(store, monkeypatch):
    monkeypatch.setattr(run_layer, "FLUSH_SECONDS", 3600)
    monkeypatch.setattr(run_layer, "MAX_ROWS", 20)
    run = Run(TrainConfig().validated(), store=store)
    run.open()
    run.record(step_records(0, 1000, eval_every=50))
    run.finish(metrics={})
    history = store.history(run.run_id)
    assert len(history) < 150
    assert history[0]["iteration"] == 0
    evaluated = [row["iteration"] for row in history if row["test_accuracy"] is not None]
    # One numbering everywhere: the test after step 49 is named iteration 50, as on the Train page.
    assert evaluated == list(range(50, 1001, 50))
    steps = [row["iteration"] for row in history]
    assert steps == sorted(steps) and max(steps) >= 990


def test_runs_table_text(store):
    assert format_runs_table([]) == "No runs recorded yet."
    run_id = store.create(TrainConfig().validated(), name="tutorial run", source="cli")
    store.append_history(run_id, [{"iteration": 99, "epoch": 99.0, "cost": 0.31,
                                   "test_accuracy": 0.96, "test_cost": 0.3}])
    store.finish(run_id, {"test_accuracy": 0.9598, "train_cost": 0.3094})
    text = format_runs_table(store.list_runs())
    header, rule, row = text.splitlines()
    assert header.split()[:3] == ["id", "name", "status"]
    assert set(rule) <= {"-", " "}
    assert "tutorial run" in row and "finished" in row and "196,1" in row
    assert " 0.1 " in row and " 100 " in row and "0.3094" in row and "0.9598" in row


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from backprop.config import TrainConfig
    from backprop.data import Dataset
    import backprop.run
    from backprop.run import Run
    from backprop.runs import RunStore
    from backprop.trainer import Trainer

    rng = np.random.RandomState(0)
    x = rng.rand(64, 6)
    y = (x[:, 0] > 0.5).astype(np.int64)
    data = Dataset("toy", x, y, x[:16], y[:16], ["a", "b"], None)
    config = TrainConfig(layers=[4, 1], eval_every=10).validated()
    trainer = Trainer.from_config(config, data)
    store = RunStore(sys.argv[1])
    backprop.run.FLUSH_SECONDS = 0.05
    run = Run(config, trainer, store=store, source="cli", name="doomed")
    run.open()
    print(run.run_id, flush=True)
    while True:
        run.record(trainer.step(5))
""")


def test_a_killed_training_process_keeps_its_flushed_history(tmp_path):
    path = tmp_path / "runs.sqlite3"
    RunStore(path)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE,
                             cwd=paths.PROJECT_ROOT, env={**os.environ, "PYTHONPATH": str(
                                 paths.PROJECT_ROOT)})
    try:
        run_id = int(child.stdout.readline())
        store = RunStore(path)
        seen = []
        deadline = time.monotonic() + 30
        while len(set(seen)) < 4 and time.monotonic() < deadline:  # several flushes observed
            last = store.get(run_id)["last_iteration"]
            if last is not None:
                seen.append(last)
            time.sleep(0.02)
        assert len(set(seen)) >= 4, "the child never flushed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    store = RunStore(path)
    run = store.get(run_id)
    assert run["name"] == "doomed"
    assert run["status"] == "interrupted"
    iterations = [row["iteration"] for row in store.history(run_id)]
    assert iterations == list(range(len(iterations)))  # nothing torn out of the middle
    assert iterations[-1] >= max(seen)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
