"""Where Backprop Studio keeps files that outlive a process: caches, downloads, runs.

Everything lives under one folder so that a user (or a test) can move it with one variable,
BACKPROP_STUDIO_HOME; otherwise the XDG data folder is used.
"""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def studio_home() -> Path:
    explicit = os.environ.get("BACKPROP_STUDIO_HOME")
    if explicit:
        home = Path(explicit).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        home = Path(base) / "backprop-studio"
    home.mkdir(parents=True, exist_ok=True)
    return home


def cache_dir() -> Path:
    path = studio_home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def datasets_dir() -> Path:
    path = studio_home() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_database() -> Path:
    return studio_home() / "runs.sqlite3"
