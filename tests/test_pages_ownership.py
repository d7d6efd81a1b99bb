"""Issue 21 item 11 (runs): a run belongs to the browser session that started it. Another session reads,
compares and loads it; only the owner, or the operator with BACKPROP_ADMIN_TOKEN, renames, pins or
deletes it, and the run store refuses the others even when a disabled control is pressed."""

import dataclasses

import pytest

from backprop.config import preset
from backprop.errors import InputError
from backprop.owners import OPERATOR
from backprop.runs import RunStore
from studio import session
from studio.recorded_runs import RunRecords

MANAGE = ("compare_rename", "compare_pin", "compare_delete")


def owned_run(studio, steps=3):
    """`studio` steps a small network: its recorded run (paused, with a checkpoint)."""
    studio.step(steps)
    studio.run.flush()
    return studio.run_id


def pick(at, run_id):
    label = next(option for option in at.selectbox(key="compare_manage").options
                 if option.startswith(f"#{run_id} "))
    at.selectbox(key="compare_manage").set_value(label).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def two_sessions(use_studio):
    config = dataclasses.replace(preset("tutorial"), subset=300, eval_every=1000)
    owner = session.Studio(config=config, store=RunStore())
    other = session.Studio(config=config, store=RunStore())
    assert owner.owner != other.owner
    return owner, other


def test_another_session_reads_and_loads_a_run_but_cannot_change_it(use_studio, open_page):
    owner, other = two_sessions(use_studio)
    run_id = owned_run(owner)
    store = RunStore()
    name = store.get(run_id)["name"]

    use_studio(other)
    at = pick(open_page("pages/compare.py"), run_id)
    row = next(row for row in at.dataframe[0].value.to_dict("records") if row["id"] == run_id)
    assert row["started by"] == "another browser"
    assert all(at.button(key=key).disabled for key in MANAGE)
    assert at.text_input(key=f"compare_name_{run_id}").disabled
    assert at.checkbox(key="compare_sure").disabled
    assert any("Started by another browser" in caption.value for caption in at.caption)

    # A crafted request (AppTest, like a browser, cannot press a disabled control): the engine refuses.
    records = RunRecords(actor=other.owner)
    listed = next(run for run in records.runs() if run.id == run_id)
    for change in (lambda: records.rename(listed, "x"), lambda: records.delete(listed),
                   lambda: records.pin(listed), lambda: records.unpin(listed)):
        with pytest.raises(InputError, match="belongs to another browser") as refused:
            change()
        assert refused.value.field == "run"
    kept = store.get(run_id)
    assert (kept["name"], kept["pinned"]) == (name, False)

    # ... and loads it into its own Train page: a new run there, its own.
    at.button(key="compare_load").click().run()
    assert other.trainer is not None and other.trainer.iteration == 3
    other.step(1)
    other.run.flush()
    assert other.run_id != run_id and store.get(other.run_id)["owner"] == other.owner
    other.release()

    # The owner changes its own run on the same page.
    use_studio(owner)
    at = pick(open_page("pages/compare.py"), run_id)
    assert not any(at.button(key=key).disabled for key in ("compare_rename", "compare_pin"))
    at.text_input(key=f"compare_name_{run_id}").set_value("mine").run()
    at.button(key="compare_rename").click().run()
    assert not at.exception and store.get(run_id)["name"] == "mine"
    owner.release()
    store.delete(run_id)
    store.delete(other.run_id)


def test_a_run_resumed_after_pause_stays_its_owners(use_studio):
    owner, other = two_sessions(use_studio)
    run_id = owned_run(owner)
    owner.train()  # resumes the paused run: the same record
    owner.pause()
    owner.step(1)
    owner.run.flush()
    assert owner.run_id == run_id
    store = RunStore()
    assert store.get(run_id)["owner"] == owner.owner
    with pytest.raises(InputError, match="belongs to another browser"):
        store.rename(run_id, "resumed", actor=other.owner)
    store.rename(run_id, "resumed", actor=owner.owner)
    owner.release()
    store.delete(run_id)


def test_the_operator_token_acts_on_every_run_and_a_wrong_one_does_not(use_studio, open_page, monkeypatch):
    owner, other = two_sessions(use_studio)
    run_id = owned_run(owner)
    owner.release()
    store = RunStore()
    use_studio(other)

    monkeypatch.delenv("BACKPROP_ADMIN_TOKEN", raising=False)
    at = pick(open_page("pages/compare.py"), run_id)
    at.text_input(key="compare_operator_token").set_value("anything").run()
    assert at.button(key="compare_rename").disabled  # unset on the server: no operator over the web
    assert any("operator token" in error.value for error in at.error)

    monkeypatch.setenv("BACKPROP_ADMIN_TOKEN", "s3cret-token")
    at.text_input(key="compare_operator_token").set_value("s3cret-tokem").run()
    assert at.button(key="compare_rename").disabled and at.button(key="compare_pin").disabled
    assert any("operator token" in error.value for error in at.error)

    at.text_input(key="compare_operator_token").set_value("s3cret-token").run()
    assert not at.exception and not at.button(key="compare_rename").disabled
    assert any("Operator: you may" in caption.value for caption in at.caption)
    at.button(key="compare_pin").click().run()
    assert not at.exception and store.get(run_id)["pinned"]
    at.text_input(key=f"compare_name_{run_id}").set_value("by the operator").run()
    at.button(key="compare_rename").click().run()
    assert store.get(run_id)["name"] == "by the operator"
    at.button(key="compare_unpin").click().run()
    at.checkbox(key="compare_sure").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception and run_id not in [run["id"] for run in store.list_runs()]
    assert all("s3cret" not in element.value for element in (*at.error, *at.caption, *at.markdown))


def test_a_cli_run_is_the_operators(use_studio, open_page, monkeypatch):
    from backprop.run import Run

    cli = Run({"layers": [196, 1], "learning_rate": 0.5}, store=RunStore(), source="cli", name="from the cli")
    cli.open()
    cli.finish(metrics={})
    store = RunStore()
    assert store.get(cli.run_id)["owner"] == "cli"
    owner, _ = two_sessions(use_studio)
    use_studio(owner)
    at = pick(open_page("pages/compare.py"), cli.run_id)
    assert at.button(key="compare_rename").disabled
    assert any("Started by the operator" in caption.value for caption in at.caption)
    with pytest.raises(InputError, match="belongs to the operator"):
        store.delete(cli.run_id, actor=owner.owner)
    store.rename(cli.run_id, "renamed by the operator", actor=OPERATOR)
    store.delete(cli.run_id)  # the CLI itself (actor None) is the operator


def test_a_sessions_studios_share_its_owner_token():
    """The Studios of one browser session (Train, Playground) record their runs with one owner token,
    kept in the session's state. (AppTest gives every AppTest the same session id, so the cached
    Studios are asked for by names no other test uses.)"""
    from streamlit.testing.v1 import AppTest

    script = ("from studio.session import OWNER_KEY, get_studio\nimport streamlit as st\n"
              "st.write(get_studio('owner-a').owner, get_studio('owner-b').owner,\n"
              "         st.session_state[OWNER_KEY])\n")
    at = AppTest.from_string(script)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    first, second, kept = at.markdown[0].value.split()
    assert first.startswith("browser-") and len(first) == len("browser-") + 32 and first == second == kept
