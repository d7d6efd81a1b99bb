"""Where Backprop Studio keeps files that outlive a process: caches, downloads, runs.

Everything lives under one folder so that a user (or a test) can move it with one variable,
BACKPROP_STUDIO_HOME; otherwise the XDG data folder is used.
"""

import os
import tempfile
from pathlib import Path

from .errors import InputError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOME_VARIABLE = "BACKPROP_STUDIO_HOME"
HOME_ADVICE = f"set {HOME_VARIABLE} to a folder you can write"


def studio_home() -> Path:
    explicit = os.environ.get(HOME_VARIABLE)
    if explicit:
        home = Path(explicit).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
        home = Path(base) / "backprop-studio"
    return _made(home)


def _made(folder: Path) -> Path:
    """Create `folder` if it can be. A read-only studio home (e.g. an empty, read-only data folder)
    still serves what it holds: only writing into it fails, and the writers say so."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    return folder


_private_cache = None


def cache_dir() -> Path:
    """studio_home()/cache, or, when that cannot be written, a private temporary folder for this
    process: caches only save time, so a read-only home must not stop the app."""
    global _private_cache
    path = _made(studio_home() / "cache")
    if path.is_dir() and os.access(path, os.W_OK | os.X_OK):
        return path
    if _private_cache is None or not _private_cache.is_dir():
        _private_cache = Path(tempfile.mkdtemp(prefix="backprop-studio-cache-"))
    return _private_cache


def datasets_dir() -> Path:
    return _made(studio_home() / "datasets")


def writable_folder(folder, field=HOME_VARIABLE, advice=HOME_ADVICE) -> Path:
    """`folder`, created if need be, once this process can write in it; else
    InputError(field, "<folder> cannot be used: <why>; <advice>"), never an OSError's traceback."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        why = "it is a file, not a folder"
    except OSError as error:  # PermissionError, NotADirectoryError (a file on the way), read-only, ...
        why = (error.strerror or str(error)).lower()
        if error.filename is not None and Path(error.filename) != folder:
            why += f" ({error.filename})"
    else:
        if os.access(folder, os.W_OK | os.X_OK):
            return folder
        why = "this process cannot write in it"
    raise InputError(field, f"{folder} cannot be used: {why}; {advice}")


def runs_database() -> Path:
    """The runs database's path in the studio home, which must be writable (InputError naming
    BACKPROP_STUDIO_HOME otherwise)."""
    return writable_folder(studio_home()) / "runs.sqlite3"
