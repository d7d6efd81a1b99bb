"""What a sweep asks Optuna (issue 18): lists of numbers are Optuna categoricals of numbers (ints stay
int, floats float, in the order given), so Optuna's own record and optuna-dashboard see numbers; a
journal written when they were text still opens and resumes (tests/fixtures/sweep_text_lists.journal,
written by that code); a setting that belongs to one optimizer is asked only in its trials; the local
cluster's workers start without Dask's MALLOC_TRIM_THRESHOLD_.

Tiny set-ups (MNIST 5 vs 8 on 200 images, a few steps); the trials that must run do so on a real
LocalCluster of one or two workers, with deadlines."""

import dataclasses
import json
import os
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from backprop.config import preset
from backprop.errors import InputError
from backprop.runs import RunStore
from backprop.sweep import (
    Sweep,
    SweepSpec,
    check_resume,
    create_sweep,
    open_study,
    recorded_snapshot,
    study_path,
)
from backprop.sweep.study import study_to_run
from studio import sweep_figures

pytestmark = pytest.mark.timeout(150)
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def tiny_base(**changes):
    return dataclasses.replace(preset("tutorial"), subset=200, layers=[8, 1], **changes)


def plain_optuna_study(sweep_id):
    """The journal read by Optuna alone (no backprop checks), as optuna-dashboard reads it."""
    storage = JournalStorage(JournalFileBackend(str(study_path(sweep_id, create_folder=False))))
    return optuna.load_study(study_name=f"sweep-{sweep_id}", storage=storage)


# -- 1. lists of numbers ---------------------------------------------------------------------------------
def test_lists_of_numbers_are_numbers_in_the_order_given_and_other_lists_text():
    spec = SweepSpec.build(tiny_base(), ["batch_size=30,100,10", "learning_rate=0.5,0.05,1",
                                         "layers=8,1|4,1", "activation=tanh,sigmoid", "l2=0,1e-4"])
    batch, rate, layers, activation, l2 = spec.space
    assert batch.choices() == (30, 100, 10) and all(type(v) is int for v in batch.choices())
    assert rate.choices() == (0.5, 0.05, 1.0) and all(type(v) is float for v in rate.choices())
    assert l2.choices() == (0.0, 1e-4)
    assert layers.choices() == ("8,1", "4,1") and activation.choices() == ("tanh", "sigmoid")
    assert json.loads(optuna.distributions.distribution_to_json(batch.distribution())) == {
        "name": "CategoricalDistribution", "attributes": {"choices": [30, 100, 10]}}
    full = SweepSpec.build(tiny_base(), ["batch_size=full,64"]).space[0]
    assert full.choices() == ("full", "64")  # 'full' is not a number: the table's text, as before


def test_a_sweep_records_numeric_parameters_in_optunas_own_journal():
    """On a LocalCluster: Optuna alone (what optuna-dashboard reads) sees ints and floats, with the
    list's order; the trial table and the journal's checks agree."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["batch_size=30,100,10", "learning_rate=0.5,0.05"],
                           strategy="random", trials=3, seed=1, iterations=6)
    sweep = Sweep(create_sweep(spec, store), store, workers=1)
    snapshot = sweep.run()
    assert [t.status for t in snapshot.trials] == ["finished"] * 3, [t.reason for t in snapshot.trials]
    study = plain_optuna_study(sweep.sweep_id)
    for trial in study.trials:
        assert type(trial.params["batch_size"]) is int and trial.params["batch_size"] in (30, 100, 10)
        assert type(trial.params["learning_rate"]) is float
        assert trial.distributions["batch_size"].choices == (30, 100, 10)
    assert check_resume(sweep.sweep_id, store).journal_trials == 3
    recorded = recorded_snapshot(sweep.sweep_id, store, curves=False)
    assert [t.params for t in recorded.trials] == [t.params for t in snapshot.trials]


# -- 1. a journal written when lists were text -------------------------------------------------------------
def old_sweep():
    """The fixture's sweep (2 finished trials, 1 its client left running) recorded in this store."""
    store = RunStore()
    spec = SweepSpec.from_dict(json.loads((FIXTURES / "sweep_text_lists.json").read_text()))
    sweep_id = create_sweep(spec, store)
    journal = (FIXTURES / "sweep_text_lists.journal").read_bytes()
    named = f'"study_name":"sweep-{sweep_id}"'.encode()
    study_path(sweep_id).write_bytes(journal.replace(b'"study_name":"sweep-1"', named))
    store.update_sweep(sweep_id, status="cancelled")
    return sweep_id, store, spec


def test_a_journal_with_text_lists_opens_and_reads_as_numbers():
    sweep_id, store, _ = old_sweep()
    assert check_resume(sweep_id, store).journal_trials == 3
    study = open_study(sweep_id)  # read only, through the checks
    assert [t.params["batch_size"] for t in study.trials] == ["100", "30", "10"]  # as it was written
    snapshot = recorded_snapshot(sweep_id, store, curves=False)
    assert [t.params for t in snapshot.trials if t.status == "finished"] == [
        {"batch_size": 100, "learning_rate": 0.05}, {"batch_size": 30, "learning_rate": 0.05}]


def test_a_journal_with_text_lists_resumes_on_a_local_cluster():
    """The client left trial 2 running: the resumed sweep asks it again and runs the 4th, in the
    journal's own form (Optuna refuses a parameter whose choices change within a study), and all
    of it reads back through the checks and through Optuna alone."""
    sweep_id, store, spec = old_sweep()
    sweep = Sweep(sweep_id, store, workers=1)
    snapshot = sweep.run()
    finished = [t for t in snapshot.trials if t.status == "finished"]
    assert len(finished) == 4, [(t.number, t.status, t.reason) for t in snapshot.trials]
    assert all(type(t.params["batch_size"]) is int for t in finished)
    study = plain_optuna_study(sweep_id)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    assert {t.distributions["batch_size"].choices for t in complete} == {("30", "100", "10")}
    assert check_resume(sweep_id, store).journal_trials == 5  # the requeued one and its new number
    assert [d.text_choices for d in sweep.spec.space] == [True, True]


def test_a_journal_may_not_mix_text_and_number_choices():
    sweep_id, store, spec = old_sweep()
    study = study_to_run(sweep_id, spec)
    new = SweepSpec.build(spec.base, [d.text for d in spec.space], "random", 4, 3)
    with pytest.raises(ValueError):  # Optuna's own refusal: the study's choices are text
        study.ask({d.name: d.distribution() for d in new.space})
    lines = study_path(sweep_id).read_bytes().split(b"\n")[:-1]
    numbers = json.loads(lines[3])
    numbers["distribution"] = json.dumps({"name": "CategoricalDistribution",
                                          "attributes": {"choices": [30, 100, 10]}})
    last = sum(1 for line in lines if json.loads(line)["op_code"] == 4) - 1  # the trial asked above
    lines.append(json.dumps({**numbers, "trial_id": last, "param_name": "batch_size"}).encode())
    study_path(sweep_id).write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(InputError) as refused:
        check_resume(sweep_id, store)
    assert refused.value.field == "journal"
    assert f"line {len(lines)}" in refused.value.message and "is not the sweep's" in refused.value.message


# -- 2. settings that belong to one optimizer --------------------------------------------------------------
def test_an_optimizers_setting_is_asked_only_in_its_trials():
    spec = SweepSpec.build(tiny_base(), ["optimizer=sgd,momentum,adam", "beta1=0.8,0.9", "momentum=0.5,0.9"],
                           strategy="random", trials=30, iterations=5)
    study = study_to_run(create_sweep(spec, RunStore()), spec)
    asked = [spec.suggest(study.ask()) for _ in range(30)]
    assert {tuple(sorted(p)) for p in asked} == {("optimizer",), ("beta1", "optimizer"),
                                                 ("momentum", "optimizer")}
    for params in asked:
        assert ("beta1" in params) == (params["optimizer"] == "adam")
        assert ("momentum" in params) == (params["optimizer"] == "momentum")
    # A grid counts such a setting only in its optimizer's set-ups: sgd, 2 momenta, 2 beta1.
    assert SweepSpec.build(tiny_base(), ["optimizer=sgd,momentum,adam", "beta1=0.8,0.9",
                                         "momentum=0.5,0.9"]).grid_size() == 5


@pytest.mark.parametrize("base, vary, words", [
    ({}, ["beta1=0.8,0.9"], "beta1 belongs"),
    ({}, ["optimizer=sgd,momentum", "beta2=0.9,0.99"], "vary optimizer with adam"),
    ({"optimizer": "adam"}, ["momentum=0.5,0.9"], "start from --optimizer momentum"),
])
def test_an_optimizers_setting_no_trial_would_use_is_refused_naming_it(base, vary, words):
    with pytest.raises(InputError) as refused:
        SweepSpec.build(tiny_base(**base), vary)
    name = vary[-1].partition("=")[0]
    assert refused.value.field == name
    assert "belongs to the" in refused.value.message
    assert words.replace(f"{name} belongs", "belongs") in refused.value.message
    assert SweepSpec.build(tiny_base(optimizer="adam"), ["beta1=0.8,0.9"]).grid_size() == 2


def test_a_grid_over_optimizers_gives_beta1_only_to_adam_on_a_local_cluster():
    """Each distinct set-up once (sgd once, not once per beta1), beta1 only in Adam's trials, in
    the live and the recorded view, Optuna's own record and the trial table (empty for sgd)."""
    store = RunStore()
    spec = SweepSpec.build(tiny_base(), ["optimizer=sgd,adam", "beta1=0.8,0.9"], iterations=6)
    assert spec.total() == 3
    sweep = Sweep(create_sweep(spec, store), store, workers=2)
    snapshot = sweep.run()
    assert [t.status for t in snapshot.trials] == ["finished"] * 3, [t.reason for t in snapshot.trials]
    assert sorted(map(str, (t.params for t in snapshot.trials))) == sorted(map(str, [
        {"optimizer": "sgd"}, {"optimizer": "adam", "beta1": 0.8}, {"optimizer": "adam", "beta1": 0.9}]))
    recorded = recorded_snapshot(sweep.sweep_id, store, curves=False)
    assert [t.params for t in recorded.trials] == [t.params for t in snapshot.trials]
    for trial in plain_optuna_study(sweep.sweep_id).trials:
        assert ("beta1" in trial.params) == (trial.params["optimizer"] == "adam")
    for table, missing in ((sweep_figures.trials_table(recorded), None),
                           (sweep_figures.trials_table(recorded, text=True), sweep_figures.MISSING)):
        for row in table:
            assert (row["beta1"] == missing) == (row["optimizer"] == "sgd"), row
    for trial in snapshot.trials:  # the run of each trial trained with its optimizer and beta1
        config = store.get(trial.run_id)["config"]
        assert config["optimizer"] == trial.params["optimizer"]
        if "beta1" in trial.params:
            assert config["beta1"] == trial.params["beta1"]


# -- 4. the local cluster's workers ------------------------------------------------------------------------
def test_local_workers_start_without_dasks_malloc_trim_threshold(monkeypatch):
    """Dask's default MALLOC_TRIM_THRESHOLD_=65536 made glibc hand every large array back and fault
    it in again, zeroed, at each step (~30% of a worker's CPU); the sweep's cluster leaves it out."""
    from backprop.sweep.cluster import connect

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    client, cluster = connect(workers=1)
    try:
        seen = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                   os.environ.get("OMP_NUM_THREADS")))
    finally:
        client.close()
        cluster.close()
    assert list(seen.values()) == [(None, "1")]
