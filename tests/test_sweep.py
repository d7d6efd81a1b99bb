"""Sweeps on real Dask clusters (a LocalCluster, and `dask scheduler` + `dask worker` processes) with
Optuna choosing and pruning: results equal `backprop train`'s, faults, cancel, resume, bad input.

Tiny tasks: MNIST 5 vs 8 on 200 training images, full batch, a few dozen iterations."""

import dataclasses
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from optuna.trial import TrialState

from backprop.config import preset
from backprop.errors import InputError
from backprop.paths import PROJECT_ROOT
from backprop.runs import RunStore
from backprop.sweep import Sweep, SweepSpec, create_sweep, open_study, recorded_snapshot

pytestmark = pytest.mark.timeout(120)
SUBSET = 200


def env():
    """This process's environment (with the test session's studio home) for the processes it starts."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                      os.environ.get("PYTHONPATH")]))}


def tiny_base(**changes):
    return dataclasses.replace(preset("tutorial"), subset=SUBSET, **changes)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_in_thread(sweep):
    result = {}

    def target():
        try:
            result["snapshot"] = sweep.run()
        except BaseException as error:  # reported by the test
            result["error"] = error
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def cli(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "backprop", *args], capture_output=True, text=True,
                          env=env(), cwd=PROJECT_ROOT, timeout=timeout)


def test_grid_sweep_gives_the_grid_and_the_same_results_as_backprop_train(tmp_path):
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1", "layers=8,1|4,1"], iterations=30)
    sweep_id = create_sweep(spec, store)
    snapshot = Sweep(sweep_id, store, workers=2).run()

    assert snapshot.status == "finished"
    assert sorted((t.params["learning_rate"], tuple(t.params["layers"])) for t in snapshot.trials) == \
        [(0.1, (4, 1)), (0.1, (8, 1)), (1.0, (4, 1)), (1.0, (8, 1))]
    assert all(t.status == "finished" for t in snapshot.trials)
    # Each set-up trained by the CLI, all at once: the same numbers to the last bit.
    commands = {}
    for trial in snapshot.trials:
        out = tmp_path / f"{trial.number}.json"
        commands[trial.number] = (out, subprocess.Popen(
            [sys.executable, "-m", "backprop", "train", "--subset", str(SUBSET), "--iterations", "30",
             "--lr", str(trial.params["learning_rate"]),
             "--layers", ",".join(map(str, trial.params["layers"])),
             "--json", str(out), "--no-record", "--quiet"], env=env(), cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL))
    for trial in snapshot.trials:
        out, process = commands[trial.number]
        assert process.wait(90) == 0
        document = json.loads(out.read_text())
        assert document["test_accuracy"] == trial.test_accuracy
        assert document["train_accuracy"] == trial.train_accuracy
    runs = store.sweep_runs(sweep_id)
    assert sorted(run["trial"] for run in runs) == [0, 1, 2, 3]
    assert {run["source"] for run in runs} == {"sweep"} and {run["status"] for run in runs} == {"finished"}
    assert all(run["checkpoint_path"] for run in runs)
    assert store.get_sweep(sweep_id)["status"] == "finished"
    # As recorded (what a page shows after a restart): the same trials, results and runs.
    recorded = recorded_snapshot(sweep_id, store)
    assert [(t.number, t.status, t.test_accuracy, t.run_id, t.params) for t in recorded.trials] == \
        [(t.number, t.status, t.test_accuracy, t.run_id, t.params) for t in snapshot.trials]
    assert len(recorded.trials[0].curve) == 30 and recorded.best_so_far


def test_sweep_through_a_dask_scheduler_and_two_dask_workers(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], env=env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        for _ in range(2):
            processes.append(subprocess.Popen(
                ["dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny"], env=env(),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        out = tmp_path / "sweep.json"
        result = cli("sweep", "--subset", str(SUBSET), "--vary", "learning_rate=0.1,0.5,1",
                     "--iterations", "20", "--scheduler", address, "--json", str(out))
        assert result.returncode == 0, result.stderr
        assert f"scheduler {address}" in result.stdout
        document = json.loads(out.read_text())
        assert sorted(float(t["params"]["learning_rate"]) for t in document["trials"]) == [0.1, 0.5, 1.0]
        assert {t["status"] for t in document["trials"]} == {"finished"}
        assert "trial" in result.stdout and "test acc" in result.stdout  # the table of the best
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_killed_worker_loses_only_its_trial_which_runs_again():
    from distributed import Client

    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,0.2,0.3"], iterations=400)
    sweep = Sweep(create_sweep(spec, store), store, workers=2)
    thread, result = start_in_thread(sweep)
    running = wait_for(lambda: [t for t in sweep.snapshot().trials if t.status == "running"
                                and len(t.curve) > 20], 60, "a running trial")[0]
    with Client(sweep.address, timeout="5s", set_as_default=False) as client:
        pids = client.run(os.getpid)
    os.kill(pids[running.worker], signal.SIGKILL)
    thread.join(100)
    assert "error" not in result, result.get("error")
    snapshot = result["snapshot"]
    assert snapshot.status == "finished"
    assert [t.status for t in snapshot.trials] == ["finished"] * 3
    runs = store.sweep_runs(sweep.sweep_id)
    assert sorted(run["trial"] for run in runs if run["status"] == "finished") == [0, 1, 2]
    lost = [run for run in runs if run["status"] == "failed"]
    assert [run["trial"] for run in lost] == [running.number]
    assert "worker died" in lost[0]["metrics"]["error"]


def test_a_trial_whose_worker_dies_twice_is_marked_failed_with_the_reason():
    from distributed import Client

    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1"], iterations=100_000)
    sweep = Sweep(create_sweep(spec, store), store, workers=2)
    thread, result = start_in_thread(sweep)
    with Client(wait_for(lambda: sweep.address, 60, "the cluster"), timeout="5s",
                set_as_default=False) as client:
        killed = set()
        for attempt in range(2):
            def running_elsewhere():
                return [t for t in sweep.snapshot().trials
                        if t.status == "running" and t.worker not in killed and t.curve]
            trial = wait_for(running_elsewhere, 60, f"attempt {attempt + 1}")[0]
            killed.add(trial.worker)
            os.kill(client.run(os.getpid)[trial.worker], signal.SIGKILL)
    thread.join(60)
    assert "error" not in result, result.get("error")
    (trial,) = result["snapshot"].trials
    assert trial.status == "failed"
    assert "worker process died twice" in trial.reason
    assert result["snapshot"].status == "finished"


def test_data_only_the_client_has_is_sent_to_the_workers(tmp_path):
    import numpy as np

    rng = np.random.RandomState(0)
    x = rng.rand(120, 4)
    y = (x[:, 0] > 0.5).astype(int)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    base = dataclasses.replace(preset("tutorial"), dataset="npz", data_path=str(path), digits=(0, 1),
                               layers=[3, 1])
    store = RunStore()
    spec = SweepSpec.build(base, ["learning_rate=0.5,1"], iterations=20)
    snapshot = Sweep(create_sweep(spec, store), store, workers=2).run()
    assert [t.status for t in snapshot.trials] == ["finished", "finished"]


def test_a_worker_without_the_data_set_fails_the_trial_naming_what_is_missing():
    store = RunStore()
    base = dataclasses.replace(preset("tutorial"), dataset="fashion-mnist")  # never downloaded in tests
    spec = SweepSpec.build(base, ["learning_rate=0.1"], iterations=5)
    snapshot = Sweep(create_sweep(spec, store), store, workers=1).run()
    (trial,) = snapshot.trials
    assert trial.status == "failed"
    assert trial.reason.startswith("dataset: on worker tcp://127.0.0.1:")
    assert "fashion-mnist is not downloaded" in trial.reason


def test_cancel_stops_every_running_trial_within_two_seconds():
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,0.2,0.3"], iterations=200_000)
    sweep = Sweep(create_sweep(spec, store), store, workers=2)
    thread, result = start_in_thread(sweep)
    wait_for(lambda: sweep.snapshot().count("running") == 2, 60, "two running trials")
    asked = time.monotonic()
    sweep.cancel()
    wait_for(lambda: sweep.snapshot().count("running") == 0, 2.0, "every trial stopped")
    assert time.monotonic() - asked < 2.0
    thread.join(30)
    assert result["snapshot"].status == "cancelled"
    assert store.get_sweep(sweep.sweep_id)["status"] == "cancelled"
    assert {run["status"] for run in store.sweep_runs(sweep.sweep_id)} == {"stopped"}
    # The cancelled trials wait in the study, to run first when the sweep is resumed.
    trials = result["snapshot"].trials
    cancelled = sorted(t.params["learning_rate"] for t in trials if t.status == "cancelled")
    assert len(cancelled) == 3  # two running, one waiting at the scheduler
    waiting = open_study(sweep.sweep_id).get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert sorted(float(t.system_attrs["fixed_params"]["learning_rate"]) for t in waiting) == cancelled


def test_resume_after_the_client_process_is_killed(tmp_path):
    store = RunStore()
    client = subprocess.Popen(
        [sys.executable, "-m", "backprop", "sweep", "--subset", str(SUBSET), "--vary",
         "learning_rate=0.1,0.2,0.3,0.4", "--iterations", "300", "--workers", "2"],
        env=env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True)
    try:
        first = client.stdout.readline()
        sweep_id = int(first.split()[1].rstrip(":"))

        def one_finished():
            try:
                trials = open_study(sweep_id).get_trials(deepcopy=False)
            except Exception:
                return False
            return any(t.state.name == "COMPLETE" for t in trials) and any(
                t.state.name == "RUNNING" for t in trials)
        wait_for(one_finished, 90, "a finished and a running trial")
    finally:
        os.killpg(client.pid, signal.SIGKILL)  # the client, its cluster process and the workers
        client.wait()
    kept = {run["trial"]: run["id"] for run in store.sweep_runs(sweep_id) if run["status"] == "finished"}
    assert kept
    assert store.get_sweep(sweep_id)["status"] == "interrupted"
    result = cli("sweep", "--resume", str(sweep_id), "--workers", "2", timeout=100)
    assert result.returncode == 0, result.stderr
    finished = {run["trial"]: run["id"] for run in store.sweep_runs(sweep_id) if run["status"] == "finished"}
    assert len(finished) == 4
    params = {float(t.params["learning_rate"]) for t in open_study(sweep_id).get_trials(deepcopy=False)
              if t.state.name == "COMPLETE"}
    assert params == {0.1, 0.2, 0.3, 0.4}
    assert all(finished[trial] == run_id for trial, run_id in kept.items())  # finished trials kept
    assert store.get_sweep(sweep_id)["status"] == "finished"


def test_the_median_pruner_stops_a_learning_rate_of_100_early():
    store = RunStore()
    # Grid seed 5 puts lr=100 last, and one worker runs the trials one after another, so the
    # pruner has the others' test costs to compare with.
    spec = SweepSpec.build(tiny_base(activation="relu", init="he"), ["learning_rate=0.1,0.2,0.3,100"],
                           iterations=200, pruner="median", seed=5)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    snapshot = sweep.run()
    assert [t.params["learning_rate"] for t in snapshot.trials] == [0.1, 0.2, 0.3, 100.0]
    worst = snapshot.trials[-1]
    assert worst.status == "pruned"
    assert [t.status for t in snapshot.trials[:3]] == ["finished"] * 3
    run = next(r for r in store.sweep_runs(sweep.sweep_id) if r["id"] == worst.run_id)
    assert run["status"] == "pruned" and run["last_iteration"] < 100


def test_an_unreachable_scheduler_is_reported_within_ten_seconds():
    port = free_port()  # nothing listens there
    started = time.monotonic()
    result = cli("sweep", "--subset", str(SUBSET), "--vary", "learning_rate=0.1,1", "--iterations", "5",
                 "--scheduler", f"tcp://127.0.0.1:{port}")
    assert result.returncode == 2
    assert f"error: scheduler: no Dask scheduler answered at tcp://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 10 + 3  # + the interpreter's start and imports


@pytest.mark.parametrize("vary, field, words", [
    (["colour=red"], "vary", "not a setting"),
    (["iterations=10,20"], "iterations", "cannot vary"),
    (["learning_rate=0.1,-1"], "learning_rate", "-1"),
    (["learning_rate="], "learning_rate", "no values"),
    (["learning_rate=0.1,,1"], "learning_rate", "empty value"),
    (["layers=8,1|8,3"], "layers", "end the layers with 1"),
    (["activation=sigmoid,swish"], "activation", "swish"),
    (["learning_rate=1e-3:1"], "learning_rate", "grid needs a list"),
    (["learning_rate=0.1", "learning_rate=1"], "learning_rate", "varied twice"),
    ([], "vary", "at least one"),
])
def test_a_bad_space_is_refused_naming_the_field(vary, field, words):
    with pytest.raises(InputError) as error:
        SweepSpec.build(tiny_base(), vary)
    assert error.value.field == field
    assert words in error.value.message


def test_the_cli_refuses_a_bad_space_before_anything_starts():
    before = len(RunStore().list_sweeps())
    result = cli("sweep", "--vary", "learning_rate=0.1,abc", timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("error: learning_rate: ")
    assert len(RunStore().list_sweeps()) == before


def test_ranges_for_random_and_tpe():
    spec = SweepSpec.build(tiny_base(), ["learning_rate=1e-3:1", "batch_size=16:64:linear"],
                           strategy="tpe", trials=5)
    rate, batch = spec.space
    assert (rate.low, rate.high, rate.log) == (1e-3, 1.0, True)  # the setting's log scale
    assert (batch.low, batch.high, batch.log) == (16, 64, False)
    assert spec.total() == 5
    assert spec.trial_config({"learning_rate": 0.01, "batch_size": 32}).batch_size == 32


def test_a_run_store_from_before_sweeps_opens_and_gains_the_sweep_columns(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as con:
        con.executescript("""
            CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, source TEXT NOT NULL,
                status TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, config TEXT NOT NULL,
                metrics TEXT NOT NULL DEFAULT '{}', checkpoint_path TEXT, host TEXT, pid INTEGER);
            CREATE TABLE history (run_id INTEGER NOT NULL, iteration INTEGER NOT NULL, epoch REAL,
                cost REAL, test_cost REAL, test_accuracy REAL, PRIMARY KEY (run_id, iteration)) WITHOUT ROWID;
            INSERT INTO runs (name, source, status, created, updated, config) VALUES
                ('old run', 'cli', 'finished', 1.0, 1.0, '{"layers": [196, 1]}');
            PRAGMA user_version=1;
        """)
    store = RunStore(path)
    (run,) = store.list_runs()
    assert run["name"] == "old run" and run["sweep_id"] is None
    sweep_id = store.create_sweep({"vary": ["learning_rate=0.1"]})
    store.create({"layers": [8, 1]}, source="sweep", sweep_id=sweep_id, trial=0)
    assert [r["trial"] for r in store.sweep_runs(sweep_id)] == [0]


def test_a_2d_playground_task_as_the_base_set_up_from_the_cli(tmp_path):
    out = tmp_path / "spiral.json"
    result = cli("sweep", "--dataset", "spiral", "--layers", "8,1", "--activation", "tanh",
                 "--iterations", "40", "--vary", "learning_rate=0.1,1", "--workers", "2", "--json", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert [t["status"] for t in document["trials"]] == ["finished", "finished"]
    runs = RunStore().sweep_runs(document["sweep"])
    assert {run["config"]["dataset"] for run in runs} == {"spiral"}


def test_figures_of_a_sweep_with_and_without_accuracies():
    from backprop.sweep import SweepSnapshot, TrialView
    from studio import sweep_figures

    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1", "layers=8,1|4,1"])
    finished = TrialView(0, {"learning_rate": 0.1, "layers": [8, 1]}, "finished", 1, 0.3, 0.9, 0.92, 1.0,
                         curve=[(0, 0.7), (1, 0.5)], ended_at=1.0)
    running = TrialView(1, {"learning_rate": 1.0, "layers": [4, 1]}, "running", 2, curve=[(0, 0.7)])
    snapshot = SweepSnapshot(1, "running", 4, [finished, running], 2.0, [(1.0, 0.3, 0.9)], None, spec.space)
    rows = sweep_figures.trials_table(snapshot)
    assert [row["status"] for row in rows] == ["running", "finished"]
    assert rows[1]["layers"] == "8,1" and rows[1]["test accuracy"] == 0.9
    parallel = sweep_figures.parallel_coordinates_figure(snapshot)["data"][0]
    assert [d["label"] for d in parallel["dimensions"]] == ["log10 learning_rate", "layers", "test accuracy"]
    assert len(sweep_figures.cost_curves_figure(snapshot)["data"]) == 2
    assert sweep_figures.best_so_far_figure(snapshot)["data"][0]["y"] == [0.9, 0.9]
    # A regression task has no accuracy: the charts show the test cost.
    no_accuracy = dataclasses.replace(finished, test_accuracy=None)
    snapshot = dataclasses.replace(snapshot, trials=[no_accuracy], best_so_far=[(1.0, 0.3, None)])
    last_axis = sweep_figures.parallel_coordinates_figure(snapshot)["data"][0]["dimensions"][-1]
    assert last_axis["label"] == "test cost"
    assert sweep_figures.best_so_far_figure(snapshot)["data"][0]["y"] == [0.3, 0.3]
    assert sweep_figures.importance_figure({}) is None


def test_a_space_over_the_memory_budget_is_refused_before_anything_starts():
    base = preset("tutorial")
    with pytest.raises(InputError) as refused:
        SweepSpec.build(base, ["layers=196,1|4096,4096,4096,4096,4096,4096,4096,4096,4096,1"])
    assert refused.value.field == "layers" and "BACKPROP_MEMORY_BUDGET" in refused.value.message
