"""Issue 18, item 1: a sweep's metric, direction and target (backprop sweep --metric --direction
--target), in Optuna's own record of the study, and bad input refused before anything starts.
Item 2: the setting importance in the CLI's summary and its --json."""

import json
import time

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState
from test_sweep import SUBSET, cli, dask_cluster, tiny_base

from backprop.errors import InputError
from backprop.runs import RunStore
from backprop.sweep import Sweep, SweepSpec, create_sweep, recorded_snapshot, study_path
from backprop.sweep.space import METRICS

pytestmark = pytest.mark.timeout(180)


def plain_optuna_study(sweep_id):
    """The journal read by Optuna alone (no backprop checks)."""
    storage = JournalStorage(JournalFileBackend(str(study_path(sweep_id, create_folder=False))))
    return optuna.load_study(study_name=f"sweep-{sweep_id}", storage=storage)


def test_each_metric_has_its_natural_direction_and_a_target_is_kept():
    for metric, direction in [("test_cost", "minimize"), ("test_accuracy", "maximize"),
                              ("train_cost", "minimize"), ("train_accuracy", "maximize"),
                              ("best_test_cost", "minimize"), ("best_test_accuracy", "maximize"),
                              ("best_train_cost", "minimize"), ("best_train_accuracy", "maximize")]:
        assert METRICS[metric] == direction
        spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1"], metric=metric)
        assert (spec.metric, spec.direction, spec.target) == (metric, direction, None)
    spec = SweepSpec.build(tiny_base(), ["learning_rate=0.1,1"], metric="test_accuracy",
                           direction="maximize", target="0.9")
    again = SweepSpec.from_dict(spec.to_dict())
    assert (again.metric, again.direction, again.target) == ("test_accuracy", "maximize", 0.9)
    assert again.reached(0.95) and not again.reached(0.5) and again.better(0.6, 0.5)
    old = spec.to_dict()
    for key in ("metric", "direction", "target"):  # a sweep recorded before metrics could be chosen
        del old[key]
    assert (SweepSpec.from_dict(old).metric, SweepSpec.from_dict(old).direction) == ("test_cost", "minimize")


@pytest.mark.parametrize("changes, field, words", [
    ({"metric": "test_loss"}, "metric", "not a recorded result"),
    ({"metric": "test_cost", "direction": "maximize"}, "direction", "does not fit test_cost"),
    ({"metric": "test_accuracy", "direction": "minimize"}, "direction", "does not fit test_accuracy"),
    ({"direction": "sideways"}, "direction", "not one of minimize, maximize"),
    ({"target": "abc"}, "target", "not a number"),
    ({"target": "nan"}, "target", "not a finite number"),
    ({"metric": "test_accuracy", "target": "1.5"}, "target", "between 0 and 1"),
])
def test_a_bad_metric_direction_or_target_is_refused_naming_the_field(changes, field, words):
    with pytest.raises(InputError) as error:
        SweepSpec.build(tiny_base(), ["learning_rate=0.1,1"], **changes)
    assert error.value.field == field
    assert words in error.value.message


@pytest.mark.parametrize("args, field", [
    (["--metric", "accuracy"], "metric"),
    (["--direction", "maximize"], "direction"),
    (["--target", "ten"], "target"),
])
def test_the_cli_refuses_bad_objective_input_with_exit_2_and_records_nothing(args, field):
    before = len(RunStore().list_sweeps())
    result = cli("sweep", "--subset", str(SUBSET), "--vary", "learning_rate=0.1,1", "--iterations", "5",
                 *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {field}: "), result.stderr
    assert "Traceback" not in result.stderr
    assert len(RunStore().list_sweeps()) == before


def test_a_maximised_accuracy_on_two_dask_workers_is_in_optunas_own_record(tmp_path):
    """CLI through `dask scheduler` + 2 `dask worker`s: the study is maximised and names its
    metric (optuna-dashboard shows it), every finished trial's value is its test accuracy, and the
    table and --json rank by it (highest first), with the setting importance."""
    out = tmp_path / "sweep.json"
    with dask_cluster(2) as (address, _):
        result = cli("sweep", "--subset", str(SUBSET), "--vary", "learning_rate=0.01,0.1,0.5,1",
                     "--iterations", "20", "--scheduler", address, "--metric", "test_accuracy",
                     "--json", str(out), "--quiet", timeout=150)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert (document["metric"], document["direction"]) == ("test_accuracy", "maximize")
    study = plain_optuna_study(document["sweep"])
    assert study.metric_names == ["test_accuracy"]
    assert study.direction == StudyDirection.MAXIMIZE
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    by_number = {t["number"]: t for t in document["trials"]}
    for trial in complete:
        assert trial.value == pytest.approx(by_number[trial.number]["test_accuracy"])
        assert trial.value == pytest.approx(by_number[trial.number]["value"])
    ranked = recorded_snapshot(document["sweep"], curves=False).best()
    assert [t.value for t in ranked] == sorted((t.value for t in ranked), reverse=True)
    assert "best #" not in result.stdout and "test acc" in result.stdout
    importance = document["importance"]
    assert importance is not None and importance["objective"] == "test accuracy"
    assert importance["evaluator"] in result.stdout and "Setting importance" in result.stdout
    assert [s["name"] for s in importance["settings"]] == ["learning_rate"]


def test_a_target_stops_asking_and_a_best_metric_is_the_best_evaluation():
    """A cost target every trial reaches: no trial is asked after the first finishes (those
    running finish), the sweep ends 'finished' saying so. best_test_cost is the lowest of each
    trial's test evaluations (eval_every 5), at most its final test cost."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(eval_every=5), ["learning_rate=0.01:1"], strategy="random", trials=12,
                           iterations=30, metric="best_test_cost", target=100)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    snapshot = sweep.run()
    finished = [t for t in snapshot.trials if t.status == "finished"]
    assert 1 <= len(snapshot.trials) <= 3 < spec.total()
    assert snapshot.status == "finished" and "target reached" in snapshot.message
    for trial in finished:
        assert trial.value <= trial.test_cost + 1e-12
        evaluations = [row["test_cost"] for row in store.history(trial.run_id)
                       if row["test_cost"] is not None]
        assert trial.value == pytest.approx(min(evaluations + [trial.test_cost]))
    assert store.get_sweep(sweep.sweep_id)["message"].startswith("target reached")


# -- item 3: pruners ------------------------------------------------------------------------------
@pytest.mark.parametrize("pruner", ["hyperband", "median"])
def test_a_pruned_trial_stops_at_the_report_that_pruned_it_with_its_intermediate_values_live(pruner):
    """Hyperband (and the median pruner) stop a learning rate of 100; the worker waits for the
    client's verdict after each report, so the pruned trial's run ends at the step of its last
    report (not up to ~280 steps later). Every trial's intermediate values are in the live
    snapshot, the pruned one's too, and the same in Optuna's own record."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(activation="relu", init="he"), ["learning_rate=0.1,0.2,0.3,100"],
                           iterations=200, pruner=pruner, seed=1)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    seen = {}

    def on_change(snapshot):
        for trial in snapshot.trials:
            if trial.status == "running" and trial.intermediate:
                seen[trial.number] = dict(trial.intermediate)
    snapshot = sweep.run(on_change=on_change)
    worst = snapshot.trials[-1]
    assert worst.params["learning_rate"] == 100.0
    assert worst.status == "pruned", [(t.number, t.status) for t in snapshot.trials]
    run = {r["id"]: r for r in store.sweep_runs(sweep.sweep_id)}[worst.run_id]
    assert run["last_iteration"] + 1 == max(worst.intermediate) < 200  # rows count from 0
    assert worst.number in seen  # live, while it ran
    study = plain_optuna_study(sweep.sweep_id)
    for trial in snapshot.trials:
        assert trial.intermediate, trial.number
        assert study.trials[trial.number].intermediate_values == pytest.approx(trial.intermediate)


# -- item 4: pause, resume, stop --------------------------------------------------------------------
def test_pause_resume_and_stop_on_a_dask_scheduler_with_two_workers_keep_every_finished_trial():
    """Pause: no new trial is asked while paused (the running ones finish); Resume asks again and
    the sweep runs to its end with every trial finished, each in Optuna's own record. Stop: the
    running trials finish, no new one starts, and the sweep ends finished, saying how many were
    not run."""
    from test_sweep import start_in_thread, wait_for

    store = RunStore()
    with dask_cluster(2) as (address, _):
        spec = SweepSpec.build(tiny_base(), ["learning_rate=0.05,0.1,0.2,0.3,0.5,0.8"], iterations=150)
        sweep = Sweep(create_sweep(spec, store), store, scheduler=address)
        thread, result = start_in_thread(sweep)
        wait_for(lambda: sweep.snapshot().count("running") >= 1, 60, "a running trial")
        sweep.pause()
        assert sweep.snapshot().status == "paused"
        asked = len(sweep.snapshot().trials)
        wait_for(lambda: sweep.snapshot().count("running") == 0 and sweep.snapshot().count("queued") == 0,
                 90, "the running trials to finish while paused")
        time.sleep(1.0)
        paused = sweep.snapshot()
        assert len(paused.trials) == asked and paused.done == asked < 6  # nothing new while paused
        sweep.resume()
        thread.join(150)
        assert not thread.is_alive() and "error" not in result, result
        snapshot = result["snapshot"]
        assert snapshot.status == "finished" and [t.status for t in snapshot.trials] == ["finished"] * 6
        complete = [t for t in plain_optuna_study(sweep.sweep_id).trials if t.state == TrialState.COMPLETE]
        assert sorted(t.number for t in complete) == [t.number for t in snapshot.trials]

        spec = SweepSpec.build(tiny_base(), ["learning_rate=0.05,0.1,0.2,0.3,0.5,0.8"], iterations=150)
        sweep = Sweep(create_sweep(spec, store), store, scheduler=address)
        thread, result = start_in_thread(sweep)
        wait_for(lambda: sweep.snapshot().count("running") >= 1, 60, "a running trial")
        sweep.stop()
        thread.join(90)
        assert not thread.is_alive() and "error" not in result, result
        snapshot = result["snapshot"]
        assert snapshot.status == "finished" and snapshot.message.startswith("stopped: ")
        assert {t.status for t in snapshot.trials} == {"finished"} and len(snapshot.trials) < 6
        assert store.get_sweep(sweep.sweep_id)["message"].startswith("stopped: ")


# -- item 5 (part): ranges with a step, :int ----------------------------------------------------
def test_a_range_with_a_step_or_int_and_bad_steps_named_by_setting():
    from optuna.distributions import FloatDistribution, IntDistribution

    spec = SweepSpec.build(tiny_base(), ["batch_size=16:512:16", "learning_rate=0.1:1:0.1", "l2=0:3:int"],
                           strategy="random", trials=4)
    batch, rate, l2 = spec.space
    assert batch.distribution() == IntDistribution(16, 512, step=16)
    assert rate.distribution() == FloatDistribution(0.1, 1.0, step=0.1)  # a step: linear
    assert l2.distribution() == IntDistribution(0, 3)
    assert SweepSpec.from_dict(spec.to_dict()).space == spec.space
    for vary, words in [("batch_size=16:500:16", "does not divide"),
                        ("learning_rate=0.1:1:0.1:log", "linear"), ("batch_size=16:64:2.5", "whole"),
                        ("l2=0.5:2:int", "whole ends"), ("learning_rate=0.1:1:abc", "not a step")]:
        with pytest.raises(InputError) as error:
            SweepSpec.build(tiny_base(), [vary], strategy="random")
        assert error.value.field == vary.split("=")[0] and words in error.value.message, error.value.message


def test_a_stepped_sweep_records_numbers_on_its_steps_in_optunas_own_record():
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["batch_size=16:64:16", "learning_rate=0.1:0.5:0.1"],
                           strategy="random", trials=4, iterations=10)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    snapshot = sweep.run()
    assert [t.status for t in snapshot.trials] == ["finished"] * 4
    for trial in plain_optuna_study(sweep.sweep_id).trials:
        batch, rate = trial.params["batch_size"], trial.params["learning_rate"]
        assert type(batch) is int and batch in (16, 32, 48, 64)
        assert isinstance(rate, float) and round(rate * 10) == pytest.approx(rate * 10)
        assert trial.value is not None
    from backprop.sweep import check_resume
    assert check_resume(sweep.sweep_id, store).journal_trials == 4  # the journal's checks accept it
