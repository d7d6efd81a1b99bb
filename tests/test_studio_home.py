"""Issue 21, item 8: a studio home that cannot be created or written (BACKPROP_STUDIO_HOME naming a
file, a folder below a file, a folder this process cannot write) is an InputError naming the
variable, on the CLI (exit 2, `error: BACKPROP_STUDIO_HOME: ...`) and the Compare and Sweep pages,
never a PermissionError's or NotADirectoryError's traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backprop.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def file_home(tmp_path, monkeypatch):
    home = tmp_path / "not-a-folder"
    home.write_text("a file where the studio home should be")
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(home))
    return home


def home_message(home, why="it is a file, not a folder"):
    return (f"BACKPROP_STUDIO_HOME: {home} cannot be used: {why}; set BACKPROP_STUDIO_HOME to a folder "
            "you can write")


def test_a_run_store_in_a_home_that_is_a_file_names_the_variable(file_home, monkeypatch):
    from backprop.runs import RunStore

    with pytest.raises(InputError) as caught:
        RunStore()
    assert caught.value.field == "BACKPROP_STUDIO_HOME"
    assert str(caught.value) == home_message(file_home)
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(file_home / "below"))
    with pytest.raises(InputError) as caught:
        RunStore()
    assert str(caught.value) == home_message(file_home / "below", "not a directory")
    with pytest.raises(InputError) as caught:  # an explicit database names itself
        RunStore(file_home / "runs.sqlite3")
    assert caught.value.field == "runs database"
    assert caught.value.message == f"{file_home} cannot be used: it is a file, not a folder; give a runs " \
                                   "database in a folder you can write"


def test_a_run_store_in_a_home_it_cannot_write_names_the_variable(tmp_path, monkeypatch):
    from backprop import paths
    from backprop.runs import RunStore

    home = tmp_path / "read-only"
    home.mkdir()
    monkeypatch.setenv("BACKPROP_STUDIO_HOME", str(home))
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)  # root may write anywhere
    with pytest.raises(InputError) as caught:
        RunStore()
    assert str(caught.value) == home_message(home, "this process cannot write in it")


def test_a_home_whose_parent_cannot_be_made_says_why(tmp_path, monkeypatch):
    from backprop import paths

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked"))
    monkeypatch.setattr(paths.Path, "mkdir", refuse)
    with pytest.raises(InputError) as caught:
        paths.writable_folder(tmp_path / "locked" / "home")
    assert str(caught.value) == home_message(tmp_path / "locked" / "home",
                                             f"permission denied ({tmp_path / 'locked'})")


@pytest.mark.parametrize("command", [
    ["runs"],
    ["train", "--iterations", "2"],
    ["sweep", "--vary", "learning_rate=0.1,0.2", "--iterations", "2", "--preset", "tutorial",
     "--subset", "100"],
])
def test_the_cli_under_a_home_that_is_a_file_says_so_without_a_traceback(tmp_path, command):
    home = tmp_path / "not-a-folder"
    home.write_text("a file")
    env = {**os.environ, "BACKPROP_STUDIO_HOME": str(home), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "backprop", *command], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert home_message(home) in result.stderr, result.stderr[-3000:]
    if command[0] == "train":
        # backprop/run.py trains on without recording a run whose store cannot be opened, and says so
        assert result.returncode in (0, 2), result.stderr[-3000:]
        assert f"not recorded: {home_message(home)}" in result.stderr or result.returncode == 2
    else:
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr.startswith(f"error: {home_message(home)}"), result.stderr[-3000:]


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/sweep.py"])
def test_the_compare_and_sweep_pages_under_a_home_that_is_a_file_show_an_error(file_home, page):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / page), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(home_message(file_home) in error.value for error in at.error), [e.value for e in at.error]
