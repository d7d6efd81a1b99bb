"""`backprop labels` (backprop/cli.py): bad input is named, `error: <field>: <message>`, exit code 2,
before any cluster starts; a small review end to end in a subprocess (prints the suspects and the
timing, --json holds each suspect)."""

import json
import subprocess
import sys

import pytest

from backprop.paths import PROJECT_ROOT


@pytest.mark.parametrize(("arguments", "field"), [
    (["--folds", "1"], "folds"),
    (["--folds", "five"], "folds"),
    (["--rank-by", "loudest"], "rank_by"),
    (["--top", "-3"], "top"),
    (["--workers", "0"], "workers"),
    (["--scheduler", "not an address"], "scheduler"),
    (["--dataset", "plane"], "dataset"),  # a regression: numbers, not labels
    (["--label-edits", "zz"], "label_edits"),
    (["--subset", "3"], "subset"),
])
def test_the_cli_names_bad_input_and_exits_2(arguments, field):
    done = subprocess.run([sys.executable, "-m", "backprop", "labels", "--no-save", *arguments],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {field}: "), done.stderr


def test_the_cli_prints_the_suspects_and_the_timing_and_writes_each_one(tmp_path):
    path = tmp_path / "suspects.json"
    command = [sys.executable, "-m", "backprop", "labels", "--dataset", "mnist", "--subset", "1000",
               "--folds", "2", "--iterations", "30", "--workers", "1", "--top", "5", "--no-save",
               "--json", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=280)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1,000 training images, 2 folds on a local cluster of 1 workers" in out
    assert "rank  index  given  suggested  confidence" in out and "Out-of-fold accuracy: " in out
    assert "Seconds: " in out and "for the 2 folds on 1 workers" in out and "load average" in out
    document = json.loads(path.read_text())
    assert document["folds"] == 2 and document["n_train"] == 1000 and document["seconds_in_all"] > 0
    assert len(document["suspects"]) == document["issues"]
    for suspect in document["suspects"]:
        assert {"index", "given", "suggested", "confidence"} <= set(suspect)
        assert 0 <= suspect["index"] < 60_000 and 0 <= suspect["confidence"] <= 1
        assert suspect["given"] in range(10) and suspect["suggested"] in range(10)
