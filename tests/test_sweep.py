"""Sweeps on real Dask clusters (a LocalCluster, and `dask scheduler` + `dask worker` processes) with
Optuna choosing and pruning: results equal `backprop train`'s, faults, cancel, resume, bad input.

Tiny tasks: MNIST 5 vs 8 on 200 training images, full batch, a few dozen iterations. Every test that
starts scheduler or worker processes stops them (`dask_cluster`), with deadlines."""

import contextlib
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
from backprop.run import StepRow
from backprop.runs import RunStore
from backprop.sweep import Sweep, SweepSpec, create_sweep, open_study, recorded_snapshot
from backprop.sweep.cluster import WORKER_ENV

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


def stop_processes(processes):
    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def dask_cluster(workers=2, scheduler_env=None):
    """`dask scheduler` and `workers` single-threaded `dask worker` processes (no nanny: a killed
    worker stays dead) on 127.0.0.1; yields (address, {worker address: pid}); all stopped after."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], env={**env(), **(scheduler_env or {})},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)]
    try:
        for _ in range(workers):
            processes.append(subprocess.Popen(
                ["dask", "worker", address, "--nthreads", "1", "--no-dashboard", "--no-nanny"],
                env={**env(), **WORKER_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        with Client(address, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=60)
            pids = client.run(os.getpid)
        yield address, pids
    finally:
        stop_processes(processes)


def allowed_failures(address):
    """The scheduler's allowed-failures now (how often it runs a task again whose worker died)."""
    from distributed import Client

    with Client(address, timeout="10s", set_as_default=False) as client:
        return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)


def evaluations_of(store, run_id):
    """A run's test evaluations as recorded: (iteration, test cost, test accuracy)."""
    return [(row["iteration"], row["test_cost"], row["test_accuracy"]) for row in store.history(run_id)
            if row["test_cost"] is not None]


def cli(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "backprop", *args], capture_output=True, text=True,
                          env=env(), cwd=PROJECT_ROOT, timeout=timeout)


def test_grid_sweep_gives_the_grid_and_the_same_results_and_test_rows_as_backprop_train(tmp_path):
    """Seam 3: a trial's run records the test evaluations `backprop train` records for the same
    set-up (the same iterations, the same values), at the user's eval_every."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(eval_every=10), ["learning_rate=0.1,1", "layers=8,1|4,1"], iterations=40)
    sweep_id = create_sweep(spec, store)
    snapshot = Sweep(sweep_id, store, workers=2).run()

    assert snapshot.status == "finished"
    assert sorted((t.params["learning_rate"], tuple(t.params["layers"])) for t in snapshot.trials) == \
        [(0.1, (4, 1)), (0.1, (8, 1)), (1.0, (4, 1)), (1.0, (8, 1))]
    assert all(t.status == "finished" for t in snapshot.trials)
    # Each set-up trained (and recorded) by the CLI, all at once: the same numbers to the last bit.
    # With a worker's engine threading (one thread): by default the CLI sums a test set of 512 or
    # more in parallel chunks, whose test cost can differ from one piece's in the last bits.
    commands = {}
    for trial in snapshot.trials:
        out = tmp_path / f"{trial.number}.json"
        commands[trial.number] = (out, subprocess.Popen(
            [sys.executable, "-m", "backprop", "train", "--subset", str(SUBSET), "--iterations", "40",
             "--eval-every", "10", "--lr", str(trial.params["learning_rate"]),
             "--layers", ",".join(map(str, trial.params["layers"])),
             "--name", f"probe {sweep_id} {trial.number}", "--json", str(out), "--quiet"],
            env={**env(), **WORKER_ENV}, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL))
    probes = {}
    for trial in snapshot.trials:
        out, process = commands[trial.number]
        assert process.wait(90) == 0
        document = json.loads(out.read_text())
        assert document["test_accuracy"] == trial.test_accuracy
        assert document["train_accuracy"] == trial.train_accuracy
        probes[trial.number] = next(run for run in store.list_runs()
                                    if run["name"] == f"probe {sweep_id} {trial.number}")
    runs = store.sweep_runs(sweep_id)
    assert sorted(run["trial"] for run in runs) == [0, 1, 2, 3]
    assert {run["source"] for run in runs} == {"sweep"} and {run["status"] for run in runs} == {"finished"}
    for run in runs:
        expected = evaluations_of(store, probes[run["trial"]]["id"])
        assert [row[0] for row in expected] == [10, 20, 30, 40]
        assert evaluations_of(store, run["id"]) == expected
        assert run["config"]["eval_every"] == 10
        # The one naming scheme of the run layer (RunStore.checkpoint_path), not a sweep's own.
        assert run["checkpoint_path"] == str(store.checkpoint_path(run["id"]))
        assert os.path.exists(run["checkpoint_path"])
    assert store.get_sweep(sweep_id)["status"] == "finished"
    # As recorded (what a page shows after a restart): the same trials, results, runs and test rows.
    recorded = recorded_snapshot(sweep_id, store)
    def seen(trials):
        return [(t.number, t.status, t.test_accuracy, t.run_id, t.params, t.checkpoint) for t in trials]
    assert seen(recorded.trials) == seen(snapshot.trials)
    assert [t.evaluations for t in recorded.trials] == [t.evaluations for t in snapshot.trials]
    assert len(recorded.trials[0].curve) == 40 and recorded.best_so_far


def test_sweep_through_a_dask_scheduler_and_two_dask_workers(tmp_path):
    with dask_cluster(2) as (address, _):
        before = allowed_failures(address)
        out = tmp_path / "sweep.json"
        result = cli("sweep", "--subset", str(SUBSET), "--vary", "learning_rate=0.1,0.5,1",
                     "--iterations", "20", "--scheduler", address, "--json", str(out))
        assert result.returncode == 0, result.stderr
        assert f"scheduler {address}" in result.stdout
        document = json.loads(out.read_text())
        assert sorted(float(t["params"]["learning_rate"]) for t in document["trials"]) == [0.1, 0.5, 1.0]
        assert {t["status"] for t in document["trials"]} == {"finished"}
        assert "trial" in result.stdout and "test acc" in result.stdout  # the table of the best
        # Seam 6: the shared scheduler's configuration is as the sweep found it.
        assert allowed_failures(address) == before == 3


def test_a_shared_scheduler_keeps_its_configuration_and_the_client_runs_a_lost_trial_again():
    """Seam 6: a sweep through a shared scheduler never changes its allowed-failures (here 0: the
    scheduler itself runs nothing again); the client submits a trial whose worker died once more."""
    from backprop.sweep import LostAttempt

    store = RunStore()
    with dask_cluster(2, {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}) as (address, pids):
        assert allowed_failures(address) == 0
        spec = SweepSpec.build(tiny_base(layers=[8, 1]), ["learning_rate=0.1"], iterations=100_000)
        sweep = Sweep(create_sweep(spec, store), store, scheduler=address)
        thread, result = start_in_thread(sweep)
        try:
            first = wait_for(lambda: [t for t in sweep.snapshot().trials
                                      if t.status == "running" and t.curve], 60, "the trial running")[0]
            os.kill(pids[first.worker], signal.SIGKILL)
            again = wait_for(lambda: [t for t in sweep.snapshot().trials if t.status == "running"
                                      and t.worker != first.worker and t.curve], 60, "the trial run again")[0]
        finally:
            sweep.cancel()
            thread.join(60)
        assert not thread.is_alive() and "error" not in result, result.get("error")
        assert allowed_failures(address) == 0  # as it was: nothing to restore
    (trial,) = result["snapshot"].trials
    assert trial.status == "cancelled"
    lost_run = next(run for run in store.sweep_runs(sweep.sweep_id) if run["status"] == "failed")
    assert trial.lost == [LostAttempt(first.worker, lost_run["id"], again.worker)]
    assert f"worker {first.worker} died" in lost_run["metrics"]["error"]
    runs = store.sweep_runs(sweep.sweep_id)
    assert [(run["trial"], run["status"]) for run in runs] == [(0, "failed"), (0, "stopped")]
    assert trial.run_id == runs[1]["id"] != lost_run["id"]  # the attempt run again is its own run


def test_a_worker_killed_mid_trial_is_counted_and_reported_by_the_cli(tmp_path):
    """Seam 7: the CLI's summary, its table and --json report an attempt lost to a worker that died
    (here the scheduler ran it again itself, as its default configuration says), and the lost
    attempt's run says what happened."""
    from distributed import Client

    store = RunStore()
    out = tmp_path / "sweep.json"
    with dask_cluster(2) as (address, pids):
        client = subprocess.Popen(
            [sys.executable, "-m", "backprop", "sweep", "--subset", str(SUBSET), "--layers", "8,1",
             "--vary", "learning_rate=0.1", "--iterations", "100000", "--scheduler", address,
             "--json", str(out), "--quiet"], env=env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            sweep_id = int(client.stdout.readline().split()[1].rstrip(":"))

            def runs(status):
                return [run for run in store.sweep_runs(sweep_id) if run["status"] == status]
            wait_for(lambda: runs("running"), 60, "the trial's run")
            with Client(address, timeout="10s", set_as_default=False) as observer:
                (killed,) = [worker for worker, keys in observer.processing().items() if keys]
            os.kill(pids[killed], signal.SIGKILL)
            wait_for(lambda: runs("failed") and runs("running"), 60, "the trial run again")
            client.send_signal(signal.SIGTERM)  # the sweep is cancelled: it ends and reports
            stdout, stderr = client.communicate(timeout=60)
        finally:
            stop_processes([client])
    assert client.returncode == 130, stderr  # stopped by SIGTERM, as by Ctrl-C (it reports first)
    (other,) = [worker for worker in pids if worker != killed]
    assert f"trial 0: worker {killed} died; ran again on {other}" in stdout
    assert "1 attempt lost to a worker that died" in stdout
    document = json.loads(out.read_text())
    (lost_run,) = runs("failed")
    assert document["lost_attempts"] == 1
    assert document["trials"][0]["lost_attempts"] == [
        {"worker": killed, "run": lost_run["id"], "ran_again_on": other,
         "text": f"trial 0: worker {killed} died; ran again on {other}"}]
    assert f"worker {killed} died" in lost_run["metrics"]["error"]
    assert document["trials"][0]["run"] not in (None, lost_run["id"])  # the attempt run again: its own run


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
    assert f"worker {running.worker} died" in lost[0]["metrics"]["error"]
    (attempt,) = snapshot.trials[running.number].lost
    assert (attempt.worker, attempt.run_id) == (running.worker, lost[0]["id"])
    assert attempt.ran_again_on is not None


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
    """Seam 4 too: after `--resume`, the trials kept from before keep their runs and checkpoints in
    the CLI's table, in --json and in the snapshot the app shows."""
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
        client.stdout.close()
    kept = {run["trial"]: run for run in store.sweep_runs(sweep_id) if run["status"] == "finished"}
    assert kept
    assert store.get_sweep(sweep_id)["status"] == "interrupted"
    out = tmp_path / "resumed.json"
    result = cli("sweep", "--resume", str(sweep_id), "--workers", "2", "--json", str(out), timeout=100)
    assert result.returncode == 0, result.stderr
    finished = {run["trial"]: run["id"] for run in store.sweep_runs(sweep_id) if run["status"] == "finished"}
    assert len(finished) == 4
    params = {float(t.params["learning_rate"]) for t in open_study(sweep_id).get_trials(deepcopy=False)
              if t.state.name == "COMPLETE"}
    assert params == {0.1, 0.2, 0.3, 0.4}
    assert all(finished[trial] == run["id"] for trial, run in kept.items())  # finished trials kept
    assert store.get_sweep(sweep_id)["status"] == "finished"
    # The kept trials' runs and checkpoints, everywhere: the table, --json, the recorded snapshot.
    table = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines()
             if line.split() and line.split()[0].isdigit()}
    document = {t["number"]: t for t in json.loads(out.read_text())["trials"]}
    recorded = {t.number: t for t in recorded_snapshot(sweep_id, store).trials}
    for trial, run in kept.items():
        assert table[str(trial)] == f"#{run['id']}"
        assert (document[trial]["run"], document[trial]["checkpoint"]) == (run["id"], run["checkpoint_path"])
        assert (recorded[trial].run_id, recorded[trial].checkpoint) == (run["id"], run["checkpoint_path"])
        assert os.path.exists(run["checkpoint_path"])
    assert all(t["run"] is not None and t["checkpoint"] for t in document.values())


def test_a_resumed_sweep_keeps_its_ended_trials_runs():
    """Seam 4, in one process: a Sweep that continues a recorded one shows the runs and checkpoints
    of the trials that ended before (it asks nothing again)."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(layers=[8, 1]), ["learning_rate=0.1,1"], iterations=10)
    sweep_id = create_sweep(spec, store)
    before = Sweep(sweep_id, store, workers=1).run()
    after = Sweep(sweep_id, store, workers=1).run()
    assert [(t.number, t.status, t.run_id) for t in after.trials] == \
        [(t.number, t.status, t.run_id) for t in before.trials]
    assert all(t.run_id is not None for t in after.trials)
    assert [t.checkpoint for t in after.trials] == [t.checkpoint for t in before.trials]
    assert all(os.path.exists(t.checkpoint) for t in after.trials)
    assert len(store.sweep_runs(sweep_id)) == 2


def test_the_median_pruner_stops_a_learning_rate_of_100_early():
    """Seam 5 too: the pruner hears a test cost every 20 steps (the sweep's own cadence), while
    each trial's set-up and run keep the user's eval_every (100): test rows at 100 and 200 only."""
    store = RunStore()
    # Grid seed 1 puts lr=100 last (GridOrder), and one worker runs the trials one after another,
    # so the pruner has the others' test costs to compare with.
    spec = SweepSpec.build(tiny_base(activation="relu", init="he"), ["learning_rate=0.1,0.2,0.3,100"],
                           iterations=200, pruner="median", seed=1)
    assert (spec.base.eval_every, spec.report_every) == (100, 20)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    snapshot = sweep.run()
    assert [t.params["learning_rate"] for t in snapshot.trials] == [0.1, 0.2, 0.3, 100.0]
    worst = snapshot.trials[-1]
    assert worst.status == "pruned"
    assert [t.status for t in snapshot.trials[:3]] == ["finished"] * 3
    runs = {run["id"]: run for run in store.sweep_runs(sweep.sweep_id)}
    run = runs[worst.run_id]
    assert run["status"] == "pruned" and run["last_iteration"] < 100
    for trial in snapshot.trials[:3]:
        assert runs[trial.run_id]["config"]["eval_every"] == 100
        assert [row[0] for row in evaluations_of(store, trial.run_id)] == [100, 200]


def test_a_sweep_keeps_the_users_eval_every():
    """Seam 5: the base's eval_every is the user's, in the spec, in every trial's set-up and in
    what is recorded; the pruner's cadence is the sweep's own and reaches no set-up."""
    base = tiny_base(eval_every=7)
    for pruner in ("none", "median"):
        spec = SweepSpec.build(base, ["learning_rate=0.1,1"], iterations=300, pruner=pruner)
        assert spec.base.eval_every == 7
        assert spec.trial_config({"learning_rate": "1.0"}).eval_every == 7
        assert SweepSpec.from_dict(spec.to_dict()).base.eval_every == 7
        assert spec.report_every == (30 if pruner == "median" else None)
    assert SweepSpec.build(base, ["learning_rate=0.1"], iterations=5).base.eval_every == 7


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
    from backprop.sweep import LostAttempt, SweepSnapshot, TrialView
    from studio import sweep_figures

    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1", "layers=8,1|4,1"])
    finished = TrialView(0, {"learning_rate": 0.1, "layers": [8, 1]}, "finished", 1, 0.3, 0.9, 0.92, 1.0,
                         curve=[StepRow(0, 0.0, 0.7), StepRow(1, 1.0, 0.5)], ended_at=1.0)
    running = TrialView(1, {"learning_rate": 1.0, "layers": [4, 1]}, "running", 2,
                        curve=[StepRow(0, 0.0, 0.7)], lost=[LostAttempt("tcp://a:1", 3, "tcp://b:2")])
    snapshot = SweepSnapshot(1, "running", 4, [finished, running], 2.0, [(1.0, 0.3, 0.9)], None, spec.space)
    rows = sweep_figures.trials_table(snapshot)
    assert [row["status"] for row in rows] == ["running", "finished"]
    assert rows[1]["layers"] == "8,1" and rows[1]["test accuracy"] == 0.9
    assert (rows[0]["iteration"], rows[0]["cost"]) == (1, 0.7)
    assert rows[0]["reason"] == "trial 1: worker tcp://a:1 died; ran again on tcp://b:2"
    assert len(sweep_figures.cost_curves_figure(snapshot)["data"]) == 2
    assert sweep_figures.parallel_coordinates_figure(snapshot) is None  # from the third finished trial
    # Three finished: settings at their real values; a regression task (no accuracy) shows the test cost.
    more = [dataclasses.replace(finished, number=n, params={"learning_rate": rate, "layers": layers},
                                test_cost=cost) for n, rate, layers, cost in
            [(0, 0.1, [8, 1], 0.3), (2, 1.0, [8, 1], 0.5), (3, 1.0, [4, 1], 0.4)]]
    snapshot = dataclasses.replace(snapshot, trials=[*more, running])
    parallel = sweep_figures.parallel_coordinates_figure(snapshot)["layout"]["annotations"]
    assert [a["text"] for a in parallel if a["name"].startswith("axis")] == [
        "learning_rate", "layers", "test accuracy"]
    assert [a["text"] for a in parallel if a["name"] == "tick learning_rate"] == ["0.1", "0.2", "0.5", "1"]
    assert sweep_figures.history_figure(snapshot)["data"][1]["y"] == [0.3, 0.3, 0.3]
    no_accuracy = [dataclasses.replace(t, test_accuracy=None) for t in more]
    snapshot = dataclasses.replace(snapshot, trials=no_accuracy)
    parallel = sweep_figures.parallel_coordinates_figure(snapshot)["layout"]["annotations"]
    assert [a["text"] for a in parallel if a["name"].startswith("axis")][-1] == "test cost"
    assert sweep_figures.importance_figure(None) is None


def test_a_space_over_the_memory_budget_is_refused_before_anything_starts():
    base = preset("tutorial")
    with pytest.raises(InputError) as refused:
        SweepSpec.build(base, ["layers=196,1|4096,4096,4096,4096,4096,4096,4096,4096,4096,1"])
    assert refused.value.field == "layers" and "BACKPROP_MEMORY_BUDGET" in refused.value.message
