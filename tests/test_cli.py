"""The command line: presets and overrides, outputs (--json, --save, run store), and errors."""

import io
import json

import pytest

from backprop import cli
from backprop.checkpoint import load_checkpoint
from backprop.runs import RunStore
from backprop.trainer import Trainer

SMALL = ["train", "--subset", "300", "--iterations", "12", "--no-record"]


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, field", [
    (["--layers", ""], "layers"),
    (["--layers", "0"], "layers"),
    (["--layers", "-3"], "layers"),
    (["--layers", "a,b"], "layers"),
    (["--layers", "196,3"], "layers"),
    (["--lr", "0"], "learning_rate"),
    (["--lr", "-1"], "learning_rate"),
    (["--lr", "nan"], "learning_rate"),
    (["--lr", "fast"], "learning_rate"),
    (["--iterations", "0"], "iterations"),
    (["--iterations", "1.5"], "iterations"),
    (["--activation", "swish"], "activation"),
    (["--init", "zeros"], "init"),
    (["--optimizer", "rmsprop"], "optimizer"),
    (["--momentum", "1"], "momentum"),
    (["--batch-size", "-4"], "batch_size"),
    (["--batch-size", "many"], "batch_size"),
    (["--l2", "-0.1"], "l2"),
    (["--seed", "-1"], "seed"),
    (["--dtype", "float16"], "dtype"),
    (["--digits", "5,12"], "digits"),
    (["--digits", "5,5"], "digits"),
    (["--subset", "1"], "subset"),
    (["--eval-every", "0"], "eval_every"),
    (["--lr-schedule", "step"], "lr_schedule"),
    (["--dataset", "npz"], "path"),
    (["--classes", "all", "--layers", "64,7"], "layers"),
])
def test_bad_input_is_one_line_naming_the_field(capsys, argv, field):
    code, out, err = run(capsys, "train", "--no-record", *argv)
    assert code == 2
    assert err.startswith(f"error: {field}: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out


def test_argparse_errors_exit_2_without_traceback(command_stderr):
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--no-such-option"])
    assert stop.value.code == 2
    assert command_stderr().startswith("error: unrecognized arguments")
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--digits", "5,8", "--classes", "all"])
    assert stop.value.code == 2


def test_train_prints_costs_every_100_and_writes_json_and_checkpoint(capsys, tmp_path):
    report, model = tmp_path / "out" / "run.json", tmp_path / "model.npz"
    code, out, err = run(capsys, "train", "--subset", "300", "--iterations", "101", "--no-record",
                         "--json", str(report), "--save", str(model))
    assert code == 0, err
    cost_lines = [line for line in out.splitlines() if line.startswith("Cost after iteration")]
    assert [line.split(":")[0] for line in cost_lines] == [
        "Cost after iteration 0", "Cost after iteration 100"]
    document = json.loads(report.read_text())
    assert [row["iteration"] for row in document["history"]] == list(range(101))
    assert repr(document["history"][100]["cost"]) == cost_lines[1].split(": ")[1]  # full precision
    assert set(document) >= {"config", "history", "train_accuracy", "test_accuracy", "seconds"}
    assert f"Train accuracy: {document['train_accuracy']!r}" in out
    assert f"Test accuracy: {document['test_accuracy']!r}" in out
    assert document["config"]["layers"] == [196, 1] and document["config"]["subset"] == 300
    assert 0 < document["seconds"] < 600 and document["status"] == "finished"
    checkpoint = load_checkpoint(model)
    assert checkpoint.config.subset == 300 and checkpoint.history.total_steps == 101
    assert checkpoint.network.sizes == [784, 196, 1]


def test_options_override_the_preset(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, _, err = run(capsys, "train", "--preset", "tutorial-deep", "--layers", "16,8,1",
                       "--activation", "tanh", "--init", "xavier", "--optimizer", "momentum",
                       "--momentum", "0.5", "--lr", "0.05", "--batch-size", "64", "--l2", "0.001",
                       "--seed", "4", "--dtype", "float32", "--digits", "3,7", "--subset", "200",
                       "--iterations", "7", "--eval-every", "3", "--no-record", "--json", str(report))
    assert code == 0, err
    config = json.loads(report.read_text())["config"]
    assert config == {**config, "layers": [16, 8, 1], "activation": "tanh", "init": "xavier",
                      "optimizer": "momentum", "momentum": 0.5, "learning_rate": 0.05,
                      "batch_size": 64, "l2": 0.001, "seed": 4, "dtype": "float32",
                      "digits": [3, 7], "subset": 200, "iterations": 7, "eval_every": 3}


def test_all_classes_sets_the_output_layer_from_the_task(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, _, err = run(capsys, "train", "--classes", "all", "--subset", "300", "--iterations", "3",
                       "--batch-size", "full", "--no-record", "--json", str(report))
    assert code == 0, err
    assert json.loads(report.read_text())["config"]["layers"] == [196, 10]


def test_runs_are_recorded_and_listed(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    code, _, err = run(capsys, "train", "--subset", "300", "--iterations", "5", "--name", "cli check")
    assert code == 0, err
    (recorded,) = RunStore().list_runs()
    assert recorded["name"] == "cli check" and recorded["source"] == "cli"
    assert recorded["status"] == "finished" and recorded["metrics"]["iterations"] == 5
    code, out, _ = run(capsys, "runs")
    assert code == 0 and "cli check" in out and "finished" in out
    code, _, _ = run(capsys, *SMALL)
    assert len(RunStore().list_runs()) == 1  # --no-record


@pytest.mark.parametrize("option", ["--save", "--json"])
def test_a_failed_save_or_json_leaves_the_finished_run_finished(capsys, tmp_path, monkeypatch, option):
    """Issue 11: an output that cannot be written is an error, but the run it follows did finish."""
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "train", "--subset", "300", "--iterations", "3", option,
                       str(blocker / "out.npz"))
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert str(blocker) in err
    (recorded,) = RunStore().list_runs()
    assert recorded["status"] == "finished" and recorded["metrics"]["iterations"] == 3


def test_divergence_names_the_layer_and_exits_non_zero(capsys, tmp_path):
    report = tmp_path / "run.json"
    code, out, err = run(capsys, "train", "--subset", "300", "--iterations", "50",
                         "--lr", "1e300", "--no-record", "--json", str(report))
    assert code == 1
    assert "diverged at iteration" in err and "first in layer" in err and "smaller learning rate" in err
    assert "Traceback" not in err
    document = json.loads(report.read_text())
    assert document["status"] == "diverged" and document["diverged"]["layer"] >= 1


def test_ctrl_c_stops_cleanly_and_still_writes_outputs(capsys, tmp_path, monkeypatch):
    real_one_step = Trainer._one_step

    def interrupted(self):
        if self.iteration == 30:
            raise KeyboardInterrupt  # as if Ctrl-C came in the middle of a step
        return real_one_step(self)
    monkeypatch.setattr(Trainer, "_one_step", interrupted)
    report, model = tmp_path / "run.json", tmp_path / "model.npz"
    code, out, err = run(capsys, "train", "--subset", "300", "--iterations", "500", "--no-record",
                         "--json", str(report), "--save", str(model))
    assert code == 130
    assert "Stopped by Ctrl-C after 30 of 500 iterations" in err
    document = json.loads(report.read_text())
    assert document["status"] == "stopped" and len(document["history"]) == 30
    assert load_checkpoint(model).history.total_steps == 30
    assert "Train accuracy" in out


def test_progress_bar_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    quiet, shown = io.StringIO(), Terminal()
    for stream in (quiet, shown):
        bar = cli.Progress(10, stream=stream)
        bar.update(5, 0.25, force=True)
        bar.clear()
    assert quiet.getvalue() == ""
    assert "5/10" in shown.getvalue() and "#" * 15 in shown.getvalue()


def test_data_subcommand_is_dispatched(monkeypatch):
    seen = []
    monkeypatch.setattr("backprop.data_cli.data_command", lambda argv: seen.append(argv) or 0)
    assert cli.main(["data", "list", "--x"]) == 0
    assert seen == [["list", "--x"]]


def test_module_entry_point_runs(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "backprop", "train", "--lr", "-1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: learning_rate: must be a positive finite number " \
                                    "(e.g. 0.1), got -1.0"
    assert result.stdout == ""  # refused before any data was loaded or anything trained


def test_a_2d_data_set_needs_no_classes_and_regression_reports_its_cost(capsys):
    code, out, err = run(capsys, "train", "--no-record", "--quiet", "--dataset", "spiral", "--layers", "8,1",
                         "--iterations", "3")
    assert code == 0 and "Test accuracy: " in out, err
    code, out, err = run(capsys, "train", "--no-record", "--quiet", "--dataset", "plane", "--layers", "4,1",
                         "--iterations", "3")
    assert code == 0 and "Train cost: " in out and "accuracy" not in out, (out, err)
