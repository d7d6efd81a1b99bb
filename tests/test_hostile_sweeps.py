"""Sweeps against a hostile visitor or CLI user (issue 21, items 3-6): a sweep is admitted (local
workers within the operator's limit and the server's training slots, every process within the
memory budget) before anything is recorded; a grid is never built (its points are asked one at a
time, a resume queues nothing); a refused start leaves no row behind and a row without a study
reads as no trials yet; a damaged journal is named with its file, line and what is wrong, a torn
last line is set aside and the sweep resumes; SIGTERM stops a CLI sweep like Ctrl-C.

Most tests build a sweep's journal with Optuna's ask/tell and no cluster; those that run trials
use tiny set-ups and stop every process they start (deadlines, process groups)."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from backprop.config import preset
from backprop.errors import InputError
from backprop.paths import PROJECT_ROOT
from backprop.runs import RunStore
from backprop.sweep import (
    GridOrder,
    Sweep,
    SweepSpec,
    TrialResult,
    check_journal,
    check_resume,
    check_sweep,
    create_sweep,
    grid_point,
    open_study,
    study_path,
)
from backprop.sweep.admission import CLUSTER_BYTES, WORKER_PROCESS_BYTES, trial_bytes
from backprop.sweep.journal import MAX_JOURNAL_TRIALS, MAX_LINE_BYTES
from backprop.sweep.study import study_to_run
from studio import sweep_runner

pytestmark = pytest.mark.timeout(150)
SUBSET = 200


def env(**extra):
    path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def cli(*args, timeout=90, **extra):
    return subprocess.run([sys.executable, "-m", "backprop", *args], capture_output=True, text=True,
                          env=env(**extra), cwd=PROJECT_ROOT, timeout=timeout)


def tiny_base(**changes):
    return dataclasses.replace(preset("tutorial"), subset=SUBSET, layers=[8, 1], **changes)


def values(n, scale=0.01):
    return ",".join(str(round(scale * (i + 1), 6)) for i in range(n))


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def recorded_sweep(spec, trials=2, store=None):
    """A sweep recorded with `trials` finished trials, asked and told through its journal as a
    client does (no cluster): returns (sweep id, store)."""
    store = store or RunStore()
    sweep_id = create_sweep(spec, store)
    study = open_study(sweep_id, spec)
    for number in range(trials):
        trial = study.ask({d.name: d.distribution() for d in spec.space})
        trial.report(0.6, 1)
        trial.set_user_attr("result", TrialResult("finished", test_cost=0.5 - number / 100,
                                                  test_accuracy=0.9, seconds=1.0).to_attrs())
        study.tell(trial, 0.5 - number / 100)
    store.update_sweep(sweep_id, status="cancelled")
    return sweep_id, store


def journal_lines(sweep_id):
    return study_path(sweep_id).read_bytes().split(b"\n")[:-1]


def write_journal(sweep_id, lines, end=b"\n"):
    study_path(sweep_id).write_bytes(b"\n".join(lines) + end)


def sweep_count():
    return len(RunStore().list_sweeps())


def no_traceback(result):
    assert "Traceback" not in result.stderr, result.stderr


# -- item 3: workers, slots and memory ------------------------------------------------------------------
def test_workers_past_the_operators_limit_are_refused_and_nothing_is_recorded():
    before = sweep_count()
    result = cli("sweep", "--subset", str(SUBSET), "--layers", "8,1", "--vary", "learning_rate=0.1,1",
                 "--iterations", "5", "--workers", "1000", timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: workers: at most "), result.stderr
    assert "BACKPROP_SWEEP_MAX_WORKERS" in result.stderr and "got 1000" in result.stderr
    no_traceback(result)
    limited = cli("sweep", "--subset", str(SUBSET), "--layers", "8,1", "--vary", "learning_rate=0.1,1",
                  "--iterations", "5", "--workers", "3", timeout=60, BACKPROP_SWEEP_MAX_WORKERS="2")
    assert limited.returncode == 2
    assert limited.stderr.startswith("error: workers: at most 2 local worker processes"), limited.stderr
    assert sweep_count() == before  # no row, not even a failed one


def test_a_sweep_past_the_memory_budget_is_refused_naming_workers_and_how_many_fit():
    """BACKPROP_MEMORY_BUDGET=1GB: four workers, each a process and a tutorial trial ([196, 1] on
    MNIST 5 vs 8, full batch: its training and its data), do not fit; two do."""
    before = sweep_count()
    result = cli("sweep", "--layers", "196,1", "--vary", "learning_rate=0.1,1", "--iterations", "5",
                 "--workers", "4", timeout=60, BACKPROP_MEMORY_BUDGET="1GB", BACKPROP_SWEEP_MAX_WORKERS="8")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: workers: 4 local workers with trials of up to "), result.stderr
    assert "BACKPROP_MEMORY_BUDGET" in result.stderr and "at most 2 workers fit" in result.stderr
    no_traceback(result)
    assert sweep_count() == before


def test_the_sweeps_total_counts_every_process_and_a_trial_alone_too_big_is_refused(monkeypatch):
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "1GB")
    monkeypatch.setenv("BACKPROP_SWEEP_MAX_WORKERS", "8")
    spec = SweepSpec.build(preset("tutorial"), ["layers=196,1|64,1", "optimizer=sgd,adam",
                                                "batch_size=64,full"], iterations=5)
    trial, _ = trial_bytes(spec)
    heaviest = dataclasses.replace(preset("tutorial"), layers=[196, 1], optimizer="adam", batch_size=None)
    assert trial > heaviest.validated().check_memory(784, 13_200)  # its data too
    cost = check_sweep(spec, 2)
    assert cost.total == 2 * (WORKER_PROCESS_BYTES + trial) + CLUSTER_BYTES + cost.client
    with pytest.raises(InputError) as refused:
        check_sweep(spec, 8)
    assert refused.value.field == "workers" and "at most 2 workers fit" in refused.value.message
    # Each value fits with the base, their heaviest combination ([2048, 1] on the full batch:
    # 899 MB) does not: refused by its own setting before anything starts.
    monkeypatch.setenv("BACKPROP_MEMORY_BUDGET", "700MB")
    spec = SweepSpec.build(dataclasses.replace(preset("tutorial"), batch_size=64),
                           ["layers=196,1|2048,1", "batch_size=64,full"], iterations=5)
    with pytest.raises(InputError) as combined:
        check_sweep(spec, 1)
    assert combined.value.field == "batch_size" and "BACKPROP_MEMORY_BUDGET" in combined.value.message


def test_a_page_sweep_takes_a_training_slot_per_worker_and_is_refused_past_the_cap(monkeypatch):
    from backprop import threads

    monkeypatch.setenv("BACKPROP_MAX_TRAINING_THREADS", "3")
    monkeypatch.setenv("BACKPROP_SWEEP_MAX_WORKERS", "8")
    assert sweep_runner.max_workers() == 3
    base = tiny_base()
    before = sweep_count()
    with pytest.raises(InputError) as refused:
        sweep_runner.start_new(base, ["learning_rate=0.1,1"], iterations=5, workers=4)
    assert refused.value.field == "workers" and "BACKPROP_MAX_TRAINING_THREADS" in refused.value.message
    threads._take_slot("test-training")  # a Train page trains
    try:
        with pytest.raises(InputError) as busy:
            sweep_runner.start_new(base, ["learning_rate=0.1,1"], iterations=5, workers=3)
        assert busy.value.field == "workers" and "2 are free now" in busy.value.message
    finally:
        threads._free_slot("test-training")
    assert sweep_count() == before
    assert threads.active_training_threads() == 0


def test_a_second_start_is_refused_before_anything_is_recorded_and_slots_come_back(monkeypatch):
    """Item 5: one sweep runs; another session's Start is refused and leaves no row; the running
    sweep holds one training slot per worker until it ends."""
    from backprop import threads

    monkeypatch.setenv("BACKPROP_MAX_TRAINING_THREADS", "4")
    base = tiny_base()
    sweep_id = sweep_runner.start_new(base, ["learning_rate=0.1,0.2,0.3"], iterations=3000, workers=2)
    try:
        assert threads.active_training_threads() == 2
        before = sweep_count()
        with pytest.raises(InputError) as refused:
            sweep_runner.start_new(base, ["learning_rate=0.5,1"], iterations=5, workers=1)
        assert refused.value.field == "sweep" and "BACKPROP_MAX_SWEEPS" in refused.value.message
        with pytest.raises(InputError) as again:  # the same sweep from another client
            Sweep(sweep_id, RunStore(), workers=1).run()
        assert again.value.field == "sweep" and "another client" in again.value.message
        assert sweep_count() == before
    finally:
        sweep_runner.cancel_sweep(sweep_id)
        assert sweep_runner.wait(sweep_id, 60)
    assert threads.active_training_threads() == 0
    assert RunStore().get_sweep(sweep_id)["status"] == "cancelled"


# -- item 5: a row without a study ------------------------------------------------------------------------
def test_a_sweep_row_without_a_study_reads_as_no_trials_yet(open_page, use_studio):
    from studio import session

    use_studio(session.Studio())
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1"], iterations=5)
    sweep_id = RunStore().create_sweep(spec.to_dict())  # a row left "created" (by an older version)
    assert not study_path(sweep_id).exists()
    assert sweep_runner.snapshot(sweep_id).trials == []
    assert sweep_runner.importances(sweep_id) == {}
    with pytest.raises(InputError) as no_study:
        open_study(sweep_id)
    assert no_study.value.field == "sweep" and "no trials yet" in no_study.value.message
    assert not study_path(sweep_id).exists()  # reading made no file
    at = open_page("pages/sweep.py")  # the newest sweep is shown: no traceback
    assert at.session_state["sweep_id"] == sweep_id
    assert not at.exception and not at.error


# -- item 4: the grid is never built ----------------------------------------------------------------------
def test_grid_order_is_a_permutation_chosen_by_the_seed():
    order = GridOrder([3, 4, 5], seed=7)
    points = [order.point(k) for k in range(60)]
    assert sorted(points) == sorted((a, b, c) for a in range(3) for b in range(4) for c in range(5))
    assert points == [GridOrder([3, 4, 5], seed=7).point(k) for k in range(60)]
    assert points != [GridOrder([3, 4, 5], seed=8).point(k) for k in range(60)]
    huge = GridOrder([64] * 10, seed=0)  # 64**10 points, none of them built
    assert len(huge) == 64 ** 10 and len(set(huge.point(k) for k in range(1000))) == 1000


def test_a_huge_grid_with_trials_asks_its_points_one_at_a_time():
    """Item 4: a 64^4 grid with --trials 2 (16.7 million set-ups) takes its first two points in the
    grid's stable order, and Optuna's study for it allocates a few MB (GridSampler built the
    product: 1.5 GB and a minute)."""
    space = [f"learning_rate={values(64)}", f"seed={','.join(map(str, range(64)))}",
             f"l2={values(64, 1e-5)}", f"l1={values(64, 1e-6)}"]
    spec = SweepSpec.build(tiny_base(), space, trials=2, iterations=5)
    assert (spec.grid_size(), spec.total()) == (64 ** 4, 2)
    sweep_id = create_sweep(spec, RunStore())
    tracemalloc.start()
    try:
        study = study_to_run(sweep_id, spec)
        asked = [study.ask({d.name: d.distribution() for d in spec.space}) for _ in range(2)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 30 * 10**6, f"{peak / 1e6:.0f} MB"
    assert [trial.params for trial in asked] == [grid_point(spec, 0), grid_point(spec, 1)]
    started = time.monotonic()
    with pytest.raises(InputError) as too_big:  # 64^5 without --trials: refused, counted not built
        SweepSpec.build(tiny_base(), [*space, f"batch_size={','.join(map(str, range(1, 65)))}"])
    assert too_big.value.field == "vary" and "1,073,741,824 set-ups" in too_big.value.message
    assert time.monotonic() - started < 10


def test_resuming_a_large_grid_queues_nothing_and_asks_only_untried_points():
    """Item 4: a resumed 32x32x4 grid sweep of 20 trials whose client died with 2 done and 1
    running: nothing is queued in the journal (it queued every untried point: 4,094 trials, and
    the 64^4 sweep 259k), the running one is asked again, and no point is asked twice."""
    from optuna.trial import TrialState

    space = [f"learning_rate={values(32)}", f"seed={','.join(map(str, range(32)))}", "l2=0,1e-5,1e-4,1e-3"]
    spec = SweepSpec.build(tiny_base(), space, trials=20, iterations=5)
    sweep_id, store = recorded_sweep(spec, trials=2)
    study = study_to_run(sweep_id, spec)  # a client resumes it, asks a trial and is killed
    running = study.ask({d.name: d.distribution() for d in spec.space})
    lines_before = len(journal_lines(sweep_id))
    study = study_to_run(sweep_id, spec)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.WAITING]
    assert len(journal_lines(sweep_id)) - lines_before < 10  # the requeue, a 'create study'
    asked = [study.ask({d.name: d.distribution() for d in spec.space}).params for _ in range(18)]
    done = [t.params for t in trials if t.state == TrialState.COMPLETE]
    everything = [*done, *asked]
    assert len({tuple(sorted(p.items())) for p in everything}) == 20
    assert running.params in asked  # the trial its client left running is asked again
    assert sorted(map(str, everything)) == sorted(str(grid_point(spec, k)) for k in range(20))


# -- SIGTERM -----------------------------------------------------------------------------------------
def _group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_stops_a_cli_sweep_like_ctrl_c(tmp_path):
    """SIGTERM while trials run: they are cancelled within seconds, their runs kept ('stopped'), the
    sweep ends 'cancelled' with exit 130 (as Ctrl-C), no lock is left, every process it started has
    ended, and `--resume` continues it."""
    client = subprocess.Popen(
        [sys.executable, "-m", "backprop", "sweep", "--subset", str(SUBSET), "--layers", "8,1", "--vary",
         "learning_rate=0.1,0.2,0.3", "--iterations", "200000", "--workers", "2", "--quiet"],
        env=env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        sweep_id = int(client.stdout.readline().split()[1].rstrip(":"))
        store = RunStore()
        wait_for(lambda: len([r for r in store.sweep_runs(sweep_id) if r["status"] == "running"]) == 2, 90,
                 "two running trials")
        client.send_signal(signal.SIGTERM)
        out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait()
    assert client.returncode == 130, err
    assert "Traceback" not in err
    assert store.get_sweep(sweep_id)["status"] == "cancelled"
    assert store.get_sweep(sweep_id)["message"] == "stopped by SIGTERM"
    assert {run["status"] for run in store.sweep_runs(sweep_id)} == {"stopped"}
    path = study_path(sweep_id)
    assert not os.path.lexists(str(path) + ".lock") and not os.path.exists(str(path) + ".client")
    wait_for(lambda: _group_gone(client.pid), 20, "the cluster and its workers to end")
    assert check_resume(sweep_id, store).journal_trials >= 3  # resumable: the journal is intact


def test_sigterm_while_a_sweep_starts_ends_it_at_once():
    """SIGTERM before the trials run (checking, the cluster starting): exit 130 at once, no lock, no
    process left (the old handler only set a flag the client looked at once its cluster was up)."""
    client = subprocess.Popen(
        [sys.executable, "-m", "backprop", "sweep", "--subset", str(SUBSET), "--layers", "8,1", "--vary",
         "learning_rate=0.1,0.2", "--iterations", "200000", "--workers", "2", "--quiet"],
        env=env(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        sweep_id = int(client.stdout.readline().split()[1].rstrip(":"))
        client.send_signal(signal.SIGTERM)
        out, err = client.communicate(timeout=30)
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait()
    assert client.returncode == 130, err
    assert "Traceback" not in err
    assert RunStore().get_sweep(sweep_id)["status"] == "cancelled"
    assert not os.path.lexists(str(study_path(sweep_id)) + ".lock")
    assert not os.path.exists(str(study_path(sweep_id)) + ".client")
    wait_for(lambda: _group_gone(client.pid), 30, "the cluster and its workers to end")


# -- item 6: damaged journals ---------------------------------------------------------------------------
def damaged(change):
    """A recorded 2-trial sweep whose journal `change(lines)` damaged: (sweep id, store)."""
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1", "layers=8,1|4,1"], iterations=5)
    sweep_id, store = recorded_sweep(spec)
    lines = journal_lines(sweep_id)
    write_journal(sweep_id, change(lines))
    return sweep_id, store


def param_line(lines, name):
    return next(i for i, line in enumerate(lines) if b'"op_code":5' in line and name.encode() in line)


def set_field(lines, index, **fields):
    log = json.loads(lines[index])
    log.update(fields)
    lines[index] = json.dumps(log).encode()
    return lines


DAMAGE = {
    "garbage": (lambda lines: [*lines[:3], b"this is not json", *lines[3:]], 4, "not valid JSON"),
    "bad utf-8": (lambda lines: [*lines[:3], b'{"op_code": 4, "\xff\xfe": 1}', *lines[3:]], 4,
                  "not valid JSON"),
    "unknown op": (lambda lines: set_field(lines, 2, op_code=99), 3, "op_code 99 is not an operation"),
    "delete study": (lambda lines: set_field(lines, 2, op_code=1), 3, "delete the study"),
    "index -1": (lambda lines: set_field(lines, param_line(lines, "learning_rate"), param_value_internal=-1),
                 None, "choice index -1 is outside 0..1"),
    "index 1.5": (lambda lines: set_field(lines, param_line(lines, "learning_rate"),
                                          param_value_internal=1.5), None, "choice index 1.5"),
    "other choices": (lambda lines: set_field(
        lines, param_line(lines, "layers"),
        distribution='{"name": "CategoricalDistribution", "attributes": {"choices": ["9,1", "4,1"]}}'),
        None, "is not the sweep's"),
    "no such trial": (lambda lines: set_field(lines, param_line(lines, "layers"), trial_id=7), None,
                      "trial_id 7 names no trial"),
    "bad state": (lambda lines: set_field(lines, next(i for i, x in enumerate(lines) if b'"op_code":6' in x),
                                          state=9), None, "state 9 is not a trial state"),
    "bad result": (lambda lines: set_field(lines, next(i for i, x in enumerate(lines) if b'"result"' in x),
                                           user_attr={"result": {"status": "won", "run": "x"}}), None,
                   "status 'won'"),
    "long line": (lambda lines: [*lines[:3], b'{"op_code": 8, "x": "' + b"a" * MAX_LINE_BYTES + b'"}',
                                 *lines[3:]], 4, "more than"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_journal_is_named_with_its_file_line_and_why(kind):
    change, line, words = DAMAGE[kind]
    captured = {}

    def keep(lines):
        damaged_lines = change(list(lines))
        pairs = enumerate(zip(lines, damaged_lines, strict=False))
        captured["line"] = line or next(i + 1 for i, (a, b) in pairs if a != b)
        return damaged_lines
    sweep_id, store = damaged(keep)
    where = f"{study_path(sweep_id)}, line {captured['line']}"
    for read in (lambda: sweep_runner.snapshot(sweep_id), lambda: check_resume(sweep_id, store),
                 lambda: open_study(sweep_id)):
        with pytest.raises(InputError) as refused:
            read()
        assert refused.value.field == "journal"
        assert refused.value.message.startswith(where), refused.value.message
        assert words in refused.value.message, refused.value.message
    assert sweep_runner.importances(sweep_id) == {}


def test_the_cli_and_the_page_report_a_damaged_journal_without_a_traceback(open_page, use_studio):
    from studio import session

    use_studio(session.Studio())
    sweep_id, store = damaged(lambda lines: [*lines[:3], b"\x00garbage\xff", *lines[3:]])
    size = study_path(sweep_id).stat().st_size
    result = cli("sweep", "--resume", str(sweep_id), "--workers", "1", timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: journal: {study_path(sweep_id)}, line 4: "), result.stderr
    no_traceback(result)
    assert study_path(sweep_id).stat().st_size == size  # nothing written
    assert store.get_sweep(sweep_id)["status"] == "cancelled"  # nor recorded
    at = open_page("pages/sweep.py")  # shows the newest sweep: this one
    assert at.session_state["sweep_id"] == sweep_id
    assert not at.exception
    assert any("line 4" in error.value and "journal" in error.value for error in at.error)


def test_a_journal_with_too_many_trial_records_is_refused_line_by_line():
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1"], iterations=5)
    sweep_id, _ = recorded_sweep(spec, trials=0)
    lines = journal_lines(sweep_id)
    record = json.dumps({"op_code": 4, "worker_id": "w", "study_id": 0, "datetime_start": None,
                         "state": 4, "value": None, "values": None, "user_attrs": {}, "system_attrs": {},
                         "intermediate_values": {}, "distributions": {}, "params": {}}).encode()
    write_journal(sweep_id, [*lines, *([record] * (MAX_JOURNAL_TRIALS + 1))])
    with pytest.raises(InputError) as refused:
        check_journal(study_path(sweep_id), sweep_id, spec)
    assert f"line {len(lines) + MAX_JOURNAL_TRIALS + 1}" in refused.value.message
    assert "trial records" in refused.value.message


def test_a_torn_last_line_is_set_aside_and_the_sweep_resumes_from_the_intact_part():
    """A crash mid-write leaves half a line at the end: the recorded view reads the intact part;
    the resume moves the torn bytes to <journal>.torn, cuts the journal after its last whole line
    and runs the trials left (it appended onto the broken line and failed: JSONDecodeError)."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,0.3,1"], iterations=3000)
    sweep_id = create_sweep(spec, store)
    sweep = Sweep(sweep_id, store, workers=1)
    result = {}
    thread = threading.Thread(target=lambda: result.update(snapshot=sweep.run()), daemon=True)
    thread.start()
    try:
        wait_for(lambda: sweep.snapshot().count("running") == 1, 90, "a running trial")
    finally:
        sweep.cancel()
        thread.join(60)
    assert result["snapshot"].status == "cancelled"
    path = study_path(sweep_id)
    lines = journal_lines(sweep_id)
    torn = lines[-1][: len(lines[-1]) // 2]
    with open(path, "ab") as file:
        file.write(torn)  # no end: cut mid-write
    # Read without the torn line (the cancelled trials wait to run again).
    assert len(open_study(sweep_id).get_trials(deepcopy=False)) >= 3
    assert sweep_runner.snapshot(sweep_id, store).status == "cancelled"
    check = check_resume(sweep_id, store)
    assert check.torn_bytes == len(torn)
    snapshot = Sweep(sweep_id, store, workers=1).run()
    assert snapshot.status == "finished"
    finished = sorted(t.params["learning_rate"] for t in snapshot.trials if t.status == "finished")
    assert finished == [0.1, 0.3, 1.0]
    assert open(str(path) + ".torn", "rb").read() == torn + b"\n"
    assert path.read_bytes().endswith(b"\n")
    assert check_journal(path, sweep_id, spec)[2] == 0
    assert "set aside" in snapshot.message
