"""The run layer (backprop/run.py): one life for a run, whoever starts it."""

import threading

import pytest

from backprop import cli
from backprop.checkpoint import load_checkpoint
from backprop.config import TrainConfig
from backprop.run import Evaluation, Rows, Run, StepRow, divergence_text, rows_of
from backprop.runs import RunStore
from backprop.trainer import Trainer
from studio.session import Studio


def small(**changes):
    """A fast set-up: 300 training images of 5 vs 8, a test evaluation every 5 steps."""
    values = dict(subset=300, layers=[16, 1], iterations=20, eval_every=5)
    values.update(changes)
    return TrainConfig(**values).validated()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    return RunStore()


def trained_run(store, config, steps, **options):
    trainer = Trainer.from_config(config, config.load_data())
    run = Run(config, trainer, store=store, **options)
    run.open()
    run.record(trainer.step(steps))
    return run


def test_rows_of_keeps_steps_test_evaluations_and_a_divergence():
    records = [{"iteration": 4, "epoch": 0.5, "cost": 0.6, "test_iteration": 5, "test_cost": 0.7,
                "test_accuracy": 0.8},
               {"iteration": 5, "epoch": 0.6, "cost": float("nan"), "diverged": {"iteration": 5, "layer": 1}}]
    rows = rows_of(records)
    assert rows == Rows((StepRow(4, 0.5, 0.6),), (Evaluation(5, 0.7, 0.8),), {"iteration": 5, "layer": 1})


def test_the_cli_and_the_train_page_record_the_same_run(store):
    """The same set-up trained by `backprop train` and by the page's Studio: the same rows, test rows
    included, under the one numbering (a test evaluation after step 4 is iteration 5)."""
    config = small()
    assert cli.main(["train", "--subset", "300", "--layers", "16,1", "--iterations", "20",
                     "--eval-every", "5", "--quiet"]) == 0
    studio = Studio(config, store=store)
    studio.step(20)
    studio.release()
    page_run, cli_run = store.list_runs()[0], store.list_runs()[1]
    assert (page_run["source"], cli_run["source"]) == ("app", "cli")
    page_rows, cli_rows = store.history(page_run["id"]), store.history(cli_run["id"])
    assert page_rows == cli_rows
    assert [row["iteration"] for row in cli_rows if row["test_cost"] is not None] == [5, 10, 15, 20]
    assert cli_run["status"] == "finished" and page_run["status"] == "stopped"


def test_writes_run_on_the_writer_thread_not_the_training_thread(store, monkeypatch):
    writers = []
    original = RunStore.append_history

    def append(self, run_id, rows):
        writers.append(threading.current_thread().name)
        return original(self, run_id, rows)
    monkeypatch.setattr(RunStore, "append_history", append)
    monkeypatch.setattr("backprop.run.FLUSH_SECONDS", 0.0)  # a flush due after every step
    run = trained_run(store, small(), 6)
    run.finish()
    assert writers and set(writers) == {"backprop-run-writer"}
    assert len(store.history(run.run_id)) == 6


def test_pause_resume_finish_and_the_store_decides_the_checkpoint_path(store):
    run = trained_run(store, small(), 3)
    run.pause()
    record = store.get(run.run_id)
    assert record["status"] == "stopped"
    assert record["checkpoint_path"] == str(store.checkpoint_path(run.run_id))
    assert load_checkpoint(record["checkpoint_path"]).history.last()["iteration"] == 2
    run.resume()
    assert store.get(run.run_id)["status"] == "running"
    run.record(run.trainer.step(2))
    run.finish()
    record = store.get(run.run_id)
    assert record["status"] == "finished" and record["metrics"]["iterations"] == 5
    assert load_checkpoint(record["checkpoint_path"]).history.last()["iteration"] == 4


def test_a_run_fed_by_a_worker_keeps_its_rows_and_the_network_it_is_given(store):
    """A sweep trial's run on the client: no trainer here, the worker's rows and final network."""
    config = small()
    trainer = Trainer.from_config(config, config.load_data())
    rows = rows_of(trainer.step(10))
    run = Run(config, store=store, source="sweep", name="trial 0")
    run.open(wait=False)
    run.record_rows(rows)
    ended = threading.Event()
    run.finish("finished", {"test_cost": 0.5}, network=trainer.network, history=trainer.history,
               wait=False, on_done=ended.set)
    assert ended.wait(30)
    record = store.get(run.run_id)
    assert record["status"] == "finished" and record["checkpoint_path"].endswith(f"run-{run.run_id}.npz")
    assert [r["iteration"] for r in store.history(run.run_id) if r["test_cost"] is not None] == [5, 10]


def test_a_failed_write_is_a_warning_and_training_goes_on(store, monkeypatch):
    warnings = []

    def full_disk(self, run_id, rows):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(RunStore, "append_history", full_disk)
    run = trained_run(store, small(), 3, on_warning=warnings.append)
    run.flush()
    assert warnings and "No space left on device" in warnings[0]
    run.record(run.trainer.step(2))
    assert run.trainer.iteration == 5


def test_no_record_keeps_nothing(store):
    run = trained_run(store, small(), 3, record=False)
    run.finish()
    assert run.run_id is None and store.list_runs() == []


def test_one_divergence_explanation_for_the_cli_and_the_page(store, capsys):
    config = small(learning_rate=1e300)
    assert cli.main(["train", "--subset", "300", "--layers", "16,1", "--iterations", "5", "--lr", "1e300",
                     "--quiet", "--no-record"]) == cli.EXIT_DIVERGED
    printed = capsys.readouterr().err
    studio = Studio(config, store=store)
    studio.ensure_built()
    studio.run.diagnostics.configure(watch=True)  # the cost watch on, as the CLI's (and the Train page's)
    studio.step(5)
    kind, text = studio.message
    expected = studio.run.explain_divergence()  # backprop.diagnostics.explain, with what it measured
    assert kind == "error" and text == expected + " Then press Reset."
    assert f"error: {expected}" in printed
    assert "Measured: λ_max" in expected and "a smaller learning rate: below" in expected
    unmeasured = divergence_text(studio.trainer.diverged, config, studio.trainer.network.n_layers)
    assert expected.startswith(unmeasured.split(" What to try:")[0])
    assert "smaller learning rate (now 1e+300; e.g. 1e+299)" in unmeasured


def test_divergence_advice_reads_the_set_up():
    diverged = {"iteration": 3, "layer": 2}
    relu_he = small(activation="relu", init="he", optimizer="adam")
    assert "He initialisation" not in divergence_text(diverged, relu_he)
    assert "adam" not in divergence_text(diverged, relu_he)
    assert "He initialisation" in divergence_text(diverged, small(activation="relu"))


def test_writes_still_queued_when_the_process_ends_are_made():
    """A server stopped right after its sessions closed: their last rows and statuses are in the
    writer's queue when the interpreter exits; they are written before it does."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        code = (
            "import pathlib, time\n"
            "from backprop.run import run_writer\n"
            "def write(n):\n"
            "    time.sleep(0.2)\n"
            f"    pathlib.Path({folder!r}, str(n)).write_text('x')\n"
            "for n in range(5):\n"
            "    run_writer().put(lambda n=n: write(n))\n"
        )
        subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True,
                       timeout=120)
        assert sorted(p.name for p in Path(folder).iterdir()) == ["0", "1", "2", "3", "4"]
