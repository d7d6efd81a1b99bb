"""The list of sweeps (issue 18): `backprop sweeps` (a table, --json, --search) and the Sweep page's
list show the same columns from one engine function (backprop.sweep.listing.sweep_list), newest
first: id, name, status, trials done/total, the best value with its metric and direction, created,
compute time. Sweeps are recorded through Optuna's ask/tell as a client does (no cluster), each test
in a studio home of its own."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from backprop.config import preset
from backprop.errors import InputError
from backprop.paths import PROJECT_ROOT
from backprop.runs import RunStore
from backprop.sweep import SweepSpec, TrialResult, create_sweep, open_study, study_path
from backprop.sweep.listing import COLUMNS, sweep_list
from studio import session, sweep_runner

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def tiny_base(**changes):
    return dataclasses.replace(preset("tutorial"), subset=200, layers=[8, 1], **changes)


def recorded(name, vary, results, metric="test_cost", status="finished"):
    """A sweep with one trial per (state, value, seconds) in `results`, told as a client does."""
    from optuna.trial import TrialState

    store = RunStore()
    spec = SweepSpec.build(tiny_base(), vary, "random", trials=4, iterations=5, metric=metric)
    sweep_id = create_sweep(spec, store, name=name)
    study = open_study(sweep_id, spec)
    for state, value, seconds in results:
        trial = study.ask()
        spec.suggest(trial)
        status_word = {TrialState.COMPLETE: "finished", TrialState.PRUNED: "pruned"}.get(state, "failed")
        trial.set_user_attr("result", TrialResult(status_word, test_cost=value, seconds=seconds,
                                                  value=value if state == TrialState.COMPLETE else None
                                                  ).to_attrs())
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    store.update_sweep(sweep_id, status=status)
    return sweep_id


@pytest.fixture
def three(home):
    from optuna.trial import TrialState

    done = TrialState.COMPLETE
    a = recorded("alpha rates", ["learning_rate=0.1,1"], [(done, 0.5, 10.0), (done, 0.25, 20.0),
                                                          (TrialState.PRUNED, None, 5.0)])
    b = recorded("beta accuracy", ["batch_size=16,32"], [(done, 0.75, 70.0), (done, 0.9, 60.0)],
                 metric="test_accuracy", status="cancelled")
    c = create_sweep(SweepSpec.build(tiny_base(), ["seed=1,2"]), RunStore(), name="gamma no trials")
    return a, b, c


def test_the_list_is_newest_first_with_done_total_best_and_compute_time(three):
    a, b, c = three
    listed = sweep_list()
    assert [s.id for s in listed] == [c, b, a]
    gamma, beta, alpha = listed
    assert (alpha.name, alpha.status, alpha.done, alpha.total) == ("alpha rates", "finished", 3, 4)
    assert (alpha.best, alpha.metric, alpha.direction, alpha.compute_seconds) == (0.25, "test_cost",
                                                                                  "minimize", 35.0)
    assert (beta.best, beta.metric, beta.direction, beta.done) == (0.9, "test_accuracy", "maximize", 2)
    assert (gamma.done, gamma.total, gamma.best, gamma.compute_seconds) == (0, 2, None, 0.0)
    row = alpha.row()
    assert list(row) == list(COLUMNS)
    assert (row["trials"], row["best"], row["compute"]) == ("3/4", "test cost 0.25 (min)", "35.0 s")
    assert beta.row()["best"] == "test accuracy 0.9 (max)" and beta.row()["compute"] == "2 min 10 s"


def test_search_by_a_part_of_the_name_or_the_id(three):
    a, b, c = three
    assert [s.id for s in sweep_list(search="ALPHA")] == [a]
    assert [s.id for s in sweep_list(search=f"#{b}")] == [b]
    assert [s.id for s in sweep_list(search=str(c))] == [c]
    assert sweep_list(search="no such sweep") == []
    with pytest.raises(InputError) as refused:
        sweep_list(search="x" * 201)
    assert refused.value.field == "search" and "at most 200" in refused.value.message


def test_a_damaged_journal_is_a_note_on_its_sweep_not_an_error(three):
    a, b, c = three
    path = study_path(a)
    lines = path.read_bytes().split(b"\n")
    lines.insert(3, b"not json")
    path.write_bytes(b"\n".join(lines))
    alpha = next(s for s in sweep_list() if s.id == a)
    assert alpha.done is None and alpha.row()["trials"] == "?/4"
    assert alpha.note.startswith(f"journal: {path}, line 4") and "not valid JSON" in alpha.note
    assert next(s for s in sweep_list() if s.id == b).done == 2


def cli(*args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                     os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "backprop", *args], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=60)


def test_backprop_sweeps_prints_the_list_as_a_table_or_json(three):
    a, b, c = three
    table = cli("sweeps")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == list(COLUMNS)
    assert [line.split()[0] for line in lines[2:]] == [str(c), str(b), str(a)]
    assert "test cost 0.25 (min)" in lines[4] and "3/4" in lines[4] and "35.0 s" in lines[4]
    document = json.loads(cli("sweeps", "--json").stdout)
    assert [item["id"] for item in document] == [c, b, a]
    assert document[2] == {**document[2], "done": 3, "total": 4, "best": 0.25, "metric": "test_cost",
                           "direction": "minimize", "compute_seconds": 35.0, "note": None}
    assert document[2]["created"].endswith("+00:00")
    found = cli("sweeps", "--search", "beta", "--json")
    assert [item["id"] for item in json.loads(found.stdout)] == [b]
    assert cli("sweeps", "--search", "zzz").stdout.strip() == "No sweep matches 'zzz'."
    refused = cli("sweeps", "--search", "x" * 300)
    assert refused.returncode == 2 and refused.stderr.startswith("error: search: at most 200")
    assert "Traceback" not in refused.stderr


def test_the_sweep_page_lists_the_same_rows_and_searches(three, open_page, use_studio):
    a, b, c = three
    use_studio(session.Studio())
    at = open_page("pages/sweep.py")
    assert not at.exception, [e.value for e in at.exception]
    shown = at.table[0].value
    assert list(shown.columns) == list(COLUMNS)
    expected = sweep_runner.sweep_rows(sweep_list())
    assert shown.astype(str).to_dict("records") == [{k: str(v) for k, v in row.items()} for row in expected]
    at.text_input(key="sweep_search").input("beta")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert list(at.table[0].value["id"]) == [b]
    assert at.session_state["sweep_id"] == b  # the picker lists the matching sweeps
    at.text_input(key="sweep_search").input("x" * 300)
    at.run()
    assert any("search" in error.value and "at most 200" in error.value for error in at.error)
    assert not at.exception
