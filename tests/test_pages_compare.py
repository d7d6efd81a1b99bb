"""The Compare runs page as a visitor uses it: names shown as typed in its charts, runs pinned."""

import json

from backprop.run import Run
from backprop.runs import RunStore
from studio import session


def recorded_run(store, name, owner=None):
    """A finished run; `owner` (a Studio's owner token) may change it on Compare, None: the operator."""
    run = Run({"layers": [196, 1], "learning_rate": 0.5}, store=store, name=name, owner=owner)
    run.open()
    run.record([{"iteration": 0, "epoch": 1.0, "cost": 0.7}])
    run.finish(metrics={})
    return run.run_id


def choose(at, key, words):
    """Pick the option of a selectbox or multiselect that contains `words`; returns it."""
    widget = at.selectbox(key=key) if key == "compare_manage" else at.multiselect(key=key)
    option = next(option for option in widget.options if words in option)
    widget.set_value(option if key == "compare_manage" else [option]).run()
    return option


def test_a_run_renamed_to_a_link_shows_as_typed_in_the_compare_legend(use_studio, open_page):
    """A visitor renames a run to HTML on Compare; the overlay's legend (Plotly renders <a href> in
    trace names) carries it escaped, never as a live link."""
    studio = use_studio(session.Studio())
    store = RunStore()
    run_id = recorded_run(store, "plain name", owner=studio.owner)
    hostile = '<a href="https://evil.example/">click</a>'
    at = open_page("pages/compare.py")
    choose(at, "compare_manage", "plain name")
    at.text_input(key=f"compare_name_{run_id}").set_value(hostile).run()
    at.button(key="compare_rename").click().run()
    assert store.get(run_id)["name"] == hostile
    choose(at, "compare_runs", "evil.example")
    assert not at.exception
    spec = json.loads(next(chart.proto.spec for chart in at.get("plotly_chart")
                           if "compare_cost" in chart.proto.id))
    legend = next(trace["name"] for trace in spec["data"] if "evil.example" in trace["name"])
    assert legend == f"#{run_id} &lt;a href=&quot;https://evil.example/&quot;&gt;click&lt;/a&gt;"
    store.delete(run_id)


def test_a_run_is_pinned_and_unpinned_on_compare(use_studio, open_page, monkeypatch):
    """Issue 21 item 7: Pin keeps a run through the disk quota's clean-ups; past the pinned share the
    page says why, naming the field."""
    from backprop import disk

    studio = use_studio(session.Studio())
    store = RunStore()
    run_id = recorded_run(store, "keep me", owner=studio.owner)
    at = open_page("pages/compare.py")
    choose(at, "compare_manage", "keep me")
    at.button(key="compare_pin").click().run()
    assert not at.exception and store.get(run_id)["pinned"]
    mine = next(row for row in at.dataframe[0].value.to_dict("records") if row["id"] == run_id)
    assert mine["pinned"] is True
    at.button(key="compare_unpin").click().run()
    assert not at.exception and not store.get(run_id)["pinned"]

    monkeypatch.setattr(disk, "PIN_SHARE", 0.0)  # no room for pins at all
    at.button(key="compare_pin").click().run()
    assert not at.exception and not store.get(run_id)["pinned"]
    assert "**pin**" in at.error[0].value and "unpin another run first" in at.error[0].value
    store.delete(run_id)


def test_a_run_deleted_since_it_was_listed_has_an_empty_history():
    """Another visitor's Delete, or the disk quota's clean-up, between the list and the chart."""
    from studio.recorded_runs import RunRecords

    store = RunStore()
    run_id = recorded_run(store, "soon gone")
    records = RunRecords(store)
    listed = next(run for run in records.runs() if run.id == run_id)
    assert records.history(listed)
    store.delete(run_id)
    assert records.history(listed) == []
