"""The analysis pages render with a trained network and with none, without exceptions."""

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from backprop.checkpoint import load_checkpoint
from backprop.config import preset
from backprop.paths import PROJECT_ROOT
from backprop.run import Run
from backprop.runs import RunStore
from studio import session

PAGES = ["pages/inspect.py", "pages/math.py", "pages/gradients.py", "pages/compare.py", "pages/data.py"]


@pytest.fixture(scope="module")
def trained():
    config = dataclasses.replace(preset("tutorial"), subset=300, iterations=20, eval_every=5)
    studio = session.Studio(config=config, store=RunStore())
    studio.build()
    studio.step(10)
    studio.release()
    return studio


def run(path, **kwargs):
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
    at.run(**kwargs)
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("path", ["pages/inspect.py", "pages/gradients.py"])
def test_pages_without_a_network_say_train_first(path, use_studio):
    use_studio(session.Studio(config=preset("tutorial")))
    at = run(path)
    assert "Train page first" in at.info[0].value


def test_math_page_without_a_network_shows_equations_and_trace(use_studio):
    use_studio(session.Studio(config=preset("tutorial")))
    at = run("pages/math.py")
    assert "Train page" in at.info[0].value
    assert len(at.latex) > 10


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders_with_a_trained_network(path, use_studio, trained):
    use_studio(trained)
    run(path)


def test_inspect_shows_accuracy_and_follows_the_chosen_image(use_studio, trained):
    use_studio(trained)
    at = run("pages/inspect.py")
    assert at.metric[0].label == "Test accuracy"
    at.number_input(key="inspect_index").set_value(3).run()
    assert not at.exception
    assert any("True class" in m.value for m in at.markdown)


def test_math_page_lists_the_current_shapes(use_studio, trained):
    use_studio(trained)
    at = run("pages/math.py")
    table = at.dataframe[0].value
    shapes = dict(zip(table["array"], table["shape"], strict=True))
    n = len(trained.trainer.y_train)
    assert shapes["W[1]"] == "(196, 784)"
    assert shapes["Z[1]"] == f"(196, {n:,})"
    assert shapes["dW[1]"] == "(196, 784)"


def test_gradient_check_and_lr_finder_buttons(use_studio, trained):
    use_studio(trained)
    at = run("pages/gradients.py")
    at.number_input(key="gradcheck_entries").set_value(5).run()
    at.button(key="gradcheck_run").click().run()
    assert not at.exception
    assert all(v == "excellent" for v in at.dataframe[0].value["verdict"])
    at.button(key="lr_finder_run").click().run()
    assert not at.exception
    assert "Suggested learning rate" in at.success[0].value


def test_compare_renames_with_messages_and_deletes(use_studio, trained):
    use_studio(trained)
    store = RunStore()
    recorded = Run({"layers": [196, 1], "learning_rate": 0.5}, store=store, name="to rename",
                   owner=trained.owner)  # this session's: it may rename and delete it
    recorded.open()
    recorded.record([{"iteration": 0, "epoch": 1.0, "cost": 0.7, "test_accuracy": 0.6}])
    recorded.finish(metrics={"test_accuracy": 0.6})
    run_id = recorded.run_id
    at = run("pages/compare.py")
    label = next(option for option in at.selectbox(key="compare_manage").options if "to rename" in option)
    at.selectbox(key="compare_manage").set_value(label).run()
    at.text_input(key=f"compare_name_{run_id}").set_value("   ").run()
    at.button(key="compare_rename").click().run()
    assert not at.exception and "name" in at.error[0].value
    assert store.get(run_id)["name"] == "to rename"
    at.text_input(key=f"compare_name_{run_id}").set_value("renamed").run()
    at.button(key="compare_rename").click().run()
    assert store.get(run_id)["name"] == "renamed"
    label = next(option for option in at.selectbox(key="compare_manage").options if "renamed" in option)
    at.selectbox(key="compare_manage").set_value(label).run()
    at.checkbox(key="compare_sure").check().run()
    at.button(key="compare_delete").click().run()
    assert not at.exception
    assert run_id not in [r["id"] for r in store.list_runs()]


def test_compare_shows_a_stepped_run_as_paused_and_explains_a_missing_accuracy(use_studio, tmp_path):
    config = dataclasses.replace(preset("tutorial"), subset=300, eval_every=1000)
    studio = use_studio(session.Studio(config=config, store=RunStore()))
    studio.step(3)  # recorded, but no thread trains it and no test evaluation yet
    at = run("pages/compare.py")
    mine = next(row for row in at.dataframe[0].value.to_dict("records") if row["id"] == studio.run_id)
    assert mine["status"] == "paused"
    name = RunStore().get(studio.run_id)["name"]
    at.multiselect(key="compare_runs").set_value([f"#{studio.run_id} {name} (paused)"]).run()
    assert not at.exception
    assert any("No test accuracy yet" in info.value for info in at.info)
    studio.release()


def test_inspect_shows_unit_health_and_activations_over_training(use_studio, trained):
    use_studio(trained)
    at = run("pages/inspect.py")
    assert "Unit health and activations over training" in [h.value for h in at.subheader]
    keys = {chart.proto.id for chart in at.get("plotly_chart")}
    assert any("inspect_unit_health" in key for key in keys), keys
    assert any("inspect_activation_histograms" in key for key in keys), keys
    assert any("No layer is mostly saturated" in caption.value for caption in at.caption)


def stepped_studio(use_studio, subset, steps):
    """This session's Studio on the tutorial set-up with `subset` images, stepped `steps` times (a
    paused run, saved with its checkpoint)."""
    config = dataclasses.replace(preset("tutorial"), subset=subset, eval_every=1000)
    studio = use_studio(session.Studio(config=config, store=RunStore()))
    studio.step(steps)
    return studio


def start_landscape(at=None, resolution=None, kind=None):
    """The Inspect page (run again, or `at`) with its Compute landscape button pressed: (at, job)."""
    at = at or run("pages/inspect.py")
    if resolution is not None:
        at.select_slider(key="landscape_resolution").set_value(resolution)
    if kind is not None:
        at.radio(key="landscape_kind").set_value(kind)
    at.button(key="landscape_compute").click().run()
    assert not at.exception
    return at, (at.session_state["landscape_job"] if "landscape_job" in at.session_state else None)


def compare_own_run(studio):
    """The Compare page with this session's run chosen: its chart keys."""
    at = run("pages/compare.py")
    label = next(option for option in at.multiselect(key="compare_runs").options
                 if option.startswith(f"#{studio.run_id} "))
    at.multiselect(key="compare_runs").set_value([label]).run()
    assert not at.exception
    assert "Paths over the loss landscape" in [h.value for h in at.subheader]
    return {chart.proto.id for chart in at.get("plotly_chart")}


def test_the_landscape_is_computed_in_the_background_drawn_and_kept_with_the_run(use_studio):
    studio = stepped_studio(use_studio, 1000, 70)  # batches of ~860 images: a snapshot every 32 steps
    at, job = start_landscape(resolution=5)
    assert job.wait(timeout=120) and job.error is None
    at.run()
    assert not at.exception
    landscape = studio.trainer.history.landscape
    assert landscape is job.result and landscape.kind == "random" and landscape.complete
    assert landscape.costs.shape == (5, 5) and landscape.costs[2, 2] == landscape.center_cost
    assert any("(the star)" in caption.value for caption in at.caption)

    at, job = start_landscape(at, kind="pca")
    assert job.wait(timeout=120) and job.error is None
    at.run()
    assert studio.trainer.history.landscape.kind == "pca"
    assert tuple(studio.trainer.history.landscape.path[-1]) == (0.0, 0.0)
    studio.release()


def test_a_kept_landscape_reaches_the_runs_checkpoint_and_compare(use_studio):
    """Needs the recorder to write a paused run's checkpoint again once a landscape was kept after
    its last save (studio/recorder.py: the saved-key includes the history's landscape)."""
    studio = stepped_studio(use_studio, 1000, 70)
    at, job = start_landscape(resolution=5, kind="pca")
    assert job.wait(timeout=120)
    at.run()
    saved = load_checkpoint(RunStore().get(studio.run_id)["checkpoint_path"])  # the paused run's, again
    assert saved.history.landscape is not None and saved.history.landscape.kind == "pca"
    keys = compare_own_run(studio)
    assert any(f"compare_landscape_{studio.run_id}" in key for key in keys), keys
    studio.release()


def test_the_pca_landscape_asks_for_more_steps_when_the_run_is_too_short(use_studio, trained):
    use_studio(trained)
    at, job = start_landscape(kind="pca")
    assert job is None and any("parameter snapshot" in warning.value for warning in at.warning)


def test_compare_shows_a_saved_run_path(use_studio):
    studio = stepped_studio(use_studio, 1000, 70)  # three snapshots by now
    keys = compare_own_run(studio)
    assert any(f"compare_path_{studio.run_id}" in key for key in keys), keys
    studio.release()


def test_a_landscape_of_a_network_since_reset_is_dropped_not_kept_with_the_new_run(use_studio):
    studio = stepped_studio(use_studio, 300, 2)
    at, job = start_landscape(resolution=5)
    job.wait(timeout=120)
    studio.build()  # what Reset does: a new network and run
    studio.step(1)
    at.run()
    assert not at.exception
    assert at.session_state["landscape_job"] is None and studio.trainer.history.landscape is None
    assert not any("(the star)" in caption.value for caption in at.caption)
    studio.release()


def test_a_cancelled_landscape_is_shown_but_not_kept_with_the_run(use_studio):
    studio = stepped_studio(use_studio, 300, 2)
    at, job = start_landscape()
    job.cancel()
    job.wait(timeout=120)
    at.run()
    assert not at.exception and not job.result.complete
    assert any("Cancelled" in caption.value and "of 625 points" in caption.value for caption in at.caption)
    assert studio.trainer.history.landscape is None
    studio.release()

