"""The studio's disk quota: what the studio home holds, kind by kind, and an oldest-first clean-up.

Anyone who can reach the page can make files: every Step or Reset ends a run with a checkpoint, a
sweep keeps one per trial, an upload stays, a crashed sweep leaves its cluster's log. So the home
(paths.studio_home()) has a quota, BACKPROP_DISK_BUDGET ("2GB", "500MiB", "2000000000"; default
2 GB), over everything in it. Past the quota a clean-up removes, oldest first, until the home is
back to LOW_WATER of it (so the next clean-up waits for a tenth of the quota to be written):

0. leftovers of processes that are gone: cluster logs whose process ended, temporary files and
   upload staging folders over an hour old, checkpoint files no run names;
1. the checkpoints of ended runs (the run keeps its history and set-up; Compare says it has no
   saved weights);
2. the histories of ended runs (the run is forgotten, as Compare's Delete does), not those
   updated in the last minute nor those of a sweep that is running;
3. uploads no running or pinned run trains on;
4. cache entries (parsed data sets: made again on their next use).

Never touched: a running run (its process alive), a pinned run (RunStore.pin: Compare runs' Pin;
pinned runs may hold at most PIN_SHARE of the quota), downloaded data sets, sweep journals.

Cheap to call often: `note_written(paths)` (a run ended, a file was written) adds those files'
sizes to a running total kept since the last walk of the home, and walks the home again only when
that total passes the quota or REWALK_SECONDS have passed (other processes write too).
"""

import contextlib
import dataclasses
import os
import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from . import paths
from .budget import UNITS, format_bytes
from .errors import InputError

DISK_VARIABLE = "BACKPROP_DISK_BUDGET"
DEFAULT_DISK_BUDGET = 2 * 10**9  # bytes (2 GB): MNIST, its cache and hundreds of runs fit well
LOW_WATER = 0.9  # a clean-up frees down to this share of the quota
PIN_SHARE = 0.5  # pinned runs may hold at most this share of the quota
HISTORY_GRACE = 60.0  # seconds: a run updated this recently keeps its history (a Step in progress)
LEFTOVER_AGE = 3600.0  # seconds: a temporary file or staging folder this old belongs to no live writer
REWALK_SECONDS = 300.0  # note_written walks the home again at least this often
RETRY_SECONDS = 30.0  # after a clean-up that could not reach its target, before the next try
UPLOADS_FOLDER = "uploads"  # under paths.datasets_dir(): one folder per upload (studio/data_files.py)
KINDS = ("checkpoints", "run store", "uploads", "sweeps", "cache", "data sets", "other")
STORE_FILES = ("runs.sqlite3", "runs.sqlite3-wal", "runs.sqlite3-shm", "runs.sqlite3-journal")
CLUSTER_LOG = re.compile(r"cluster-(\d+)-[0-9a-f]+\.log")
CHECKPOINT_FILE = re.compile(r"run-(\d+)\.npz")
ENDED = ("finished", "diverged", "stopped", "pruned", "failed", "interrupted")


# -- the quota --------------------------------------------------------------------------------------
def disk_budget():
    """Bytes the studio home may hold: BACKPROP_DISK_BUDGET if set, else DEFAULT_DISK_BUDGET."""
    text = os.environ.get(DISK_VARIABLE, "").strip()
    if not text:
        return DEFAULT_DISK_BUDGET
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]*)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        raise InputError(DISK_VARIABLE, f"{text!r} is not a size; write bytes or a number with a unit, "
                                        "e.g. 2GB, 500MiB or 2000000000")
    value = int(float(match.group(1)) * UNITS[unit])
    if value < 10 * 2**20:
        raise InputError(DISK_VARIABLE, f"{text!r} is below 10 MiB; the studio's own files (the runs "
                                        "database, MNIST's cache) need more")
    return value


def quota_text(budget):
    return f"the disk quota of {format_bytes(budget)} ({DISK_VARIABLE})"


# -- what the home holds --------------------------------------------------------------------------
def _bytes_of(path):
    """Bytes a file takes on disk (its blocks, like du), or a folder's files together; 0 if gone."""
    try:
        info = os.lstat(path)
    except OSError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return _on_disk(info)
    total = 0
    for folder, _folders, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += _on_disk(os.lstat(os.path.join(folder, name)))
    return total


def _on_disk(info):
    blocks = getattr(info, "st_blocks", None)
    return blocks * 512 if blocks is not None else info.st_size


@dataclasses.dataclass(frozen=True)
class Entry:
    """One thing in the home the clean-up may remove as a whole: a file or a folder."""

    path: Path
    bytes: int
    modified: float


@dataclasses.dataclass(frozen=True)
class Usage:
    """The home walked once: bytes and files of each kind (KINDS), and the entries of each kind."""

    home: Path
    bytes: dict
    files: dict
    entries: dict  # kind -> [Entry], the top-level items of its folder

    @property
    def total(self):
        return sum(self.bytes.values())


def _kind_of(home, path):
    relative = path.relative_to(home).parts
    top = relative[0]
    if top in STORE_FILES:
        return "run store"
    if top == "checkpoints":
        return "checkpoints"
    if top == "sweeps":
        return "sweeps"
    if top == "cache":
        return "cache"
    if top == "datasets":
        return "uploads" if len(relative) > 1 and relative[1] == UPLOADS_FOLDER else "data sets"
    return "other"


def usage(home=None):
    """Walk the studio home once: a Usage."""
    home = Path(home) if home is not None else paths.studio_home()
    sizes = {kind: 0 for kind in KINDS}
    counts = {kind: 0 for kind in KINDS}
    entries = {kind: {} for kind in KINDS}
    for folder, _folders, files in os.walk(home):
        for name in files:
            path = Path(folder) / name
            try:
                info = os.lstat(path)
            except OSError:
                continue  # removed while we looked
            kind = _kind_of(home, path)
            size = _on_disk(info)
            sizes[kind] += size
            counts[kind] += 1
            relative = path.relative_to(home).parts
            depth = 3 if kind == "uploads" else 2  # datasets/uploads/<id>, checkpoints/<file>, cache/<entry>
            top = home.joinpath(*relative[:depth]) if len(relative) >= depth else path
            old = entries[kind].get(top)
            entries[kind][top] = Entry(top, (old.bytes if old else 0) + size,
                                       max(old.modified if old else 0.0, info.st_mtime))
    return Usage(home, sizes, counts, {kind: sorted(found.values(), key=lambda e: e.modified)
                                       for kind, found in entries.items()})


# -- what a clean-up would remove -------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Removal:
    """One thing the clean-up removes: `what` says it (for a report), `step` its place in the order."""

    step: int  # 0 leftovers, 1 checkpoints, 2 histories, 3 uploads, 4 cache
    kind: str  # of KINDS
    what: str
    bytes: int
    when: float  # how old (the time it was last written)
    path: Path | None = None  # a file or folder to delete
    run_id: int | None = None  # a checkpoint's run (step 1) or the run to forget (step 2)


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _store_live_bytes(store_path):
    """The runs database's bytes in use (its pages minus the free ones) and its history rows."""
    try:
        with contextlib.closing(sqlite3.connect(store_path, timeout=5)) as con:
            pages, free, size = (con.execute(f"PRAGMA {name}").fetchone()[0]
                                 for name in ("page_count", "freelist_count", "page_size"))
            rows = con.execute("SELECT COUNT(*) FROM history").fetchone()[0]
        return (pages - free) * size, rows
    except sqlite3.Error:
        return 0, 0


def candidates(store, found, now=None):
    """Every Removal the clean-up may make, in its order (module docstring), and the bytes pinned
    runs hold."""
    now = time.time() if now is None else now
    home = found.home
    checkpoints = (home / "checkpoints").resolve()
    runs = store.runs_by_age()
    by_id = {run["id"]: run for run in runs}
    own_store = Path(store.path).resolve() == (home / "runs.sqlite3").resolve()
    running_sweeps = set()
    with contextlib.suppress(Exception):
        running_sweeps = {sweep["id"] for sweep in store.list_sweeps() if sweep["status"] == "running"}
    kept_uploads = {run["upload"] for run in runs if run["upload"] and (run["pinned"] or run["status"]
                                                                        not in ENDED)}
    sizes = {entry.path.resolve(): entry.bytes for entry in found.entries["checkpoints"]}
    out = []

    # 0. leftovers of processes that are gone
    for entry in found.entries["sweeps"]:
        match = CLUSTER_LOG.fullmatch(entry.path.name)
        if match and not _alive(match.group(1)):
            out.append(Removal(0, "sweeps", f"cluster log of ended process {match.group(1)}", entry.bytes,
                               entry.modified, path=entry.path))
    for kind in ("checkpoints", "cache", "uploads"):
        for entry in found.entries[kind]:
            name = entry.path.name
            stale = now - entry.modified > LEFTOVER_AGE
            if stale and name.startswith(".") and (name.endswith(".tmp") or name.endswith(".upload")):
                out.append(Removal(0, kind, f"unfinished write {name}", entry.bytes, entry.modified,
                                   path=entry.path))
            match = CHECKPOINT_FILE.fullmatch(name) if kind == "checkpoints" else None
            orphan = match and own_store and int(match.group(1)) not in by_id
            if orphan and now - entry.modified > HISTORY_GRACE:
                out.append(Removal(0, kind, f"checkpoint of deleted run {match.group(1)}", entry.bytes,
                                   entry.modified, path=entry.path))

    # 1. checkpoints of ended runs, 2. their histories
    live, rows = _store_live_bytes(store.path)
    per_row = live / rows if rows else 0.0
    for run in runs:
        if run["pinned"] or run["status"] not in ENDED or not run["checkpoint_path"]:
            continue
        path = Path(run["checkpoint_path"])
        if path.parent.resolve() != checkpoints or not path.exists():
            continue  # written elsewhere (`backprop train --save`): not the studio's to remove
        out.append(Removal(1, "checkpoints", f"checkpoint of run {run['id']} ({run['status']})",
                           sizes.get(path.resolve(), _bytes_of(path)), run["updated"], path=path,
                           run_id=run["id"]))
    for run in runs:
        if run["pinned"] or run["status"] not in ENDED or now - run["updated"] < HISTORY_GRACE \
                or run["sweep_id"] in running_sweeps:
            continue
        out.append(Removal(2, "run store", f"history of run {run['id']} ({run['n_history']:,} steps)",
                           int(run["n_history"] * per_row), run["updated"], run_id=run["id"]))

    # 3. uploads nothing running or pinned trains on, 4. cache entries
    for entry in found.entries["uploads"]:
        if entry.path.name.startswith(".") or entry.path.name in kept_uploads:
            continue
        out.append(Removal(3, "uploads", f"upload {entry.path.name}", entry.bytes, entry.modified,
                           path=entry.path))
    for entry in found.entries["cache"]:
        if entry.path.name.startswith("idx-"):  # parsed data sets; made again on their next use
            out.append(Removal(4, "cache", f"cache entry {entry.path.name}", entry.bytes, entry.modified,
                               path=entry.path))
    return sorted(out, key=lambda removal: (removal.step, removal.when))


def plan(removals, total, target):
    """The removals, in order, that bring `total` bytes down to `target` (none when it is already)."""
    chosen, left = [], total
    for removal in removals:
        if left <= target:
            break
        chosen.append(removal)
        left -= removal.bytes
    return chosen


# -- a report ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DiskReport:
    """What the studio home holds against its quota: per kind its bytes and files, what a clean-up
    may remove of it (everything not running or pinned) and what one would remove now."""

    home: Path
    budget: int
    total: int
    rows: tuple  # (kind, files, bytes, bytes clean-up may free) per kind of KINDS
    freeable: int  # everything clean-up may remove
    would_free: int  # what a clean-up now removes (nothing while under the quota)
    pinned_runs: int

    @property
    def share(self):
        return self.total / self.budget


def _default_store(store):
    if store is not None:
        return store
    from .runs import RunStore

    return RunStore()


def report(store=None):
    """A DiskReport of the studio home (one walk)."""
    store = _default_store(store)
    budget = disk_budget()
    found = usage()
    removals = candidates(store, found)
    freeable = {kind: 0 for kind in KINDS}
    for removal in removals:
        freeable[removal.kind] += removal.bytes
    total = found.total
    would = plan(removals, total, int(LOW_WATER * budget)) if total > budget else []
    rows = tuple((kind, found.files[kind], found.bytes[kind], freeable[kind]) for kind in KINDS
                 if found.files[kind] or kind != "other")
    pinned = sum(1 for run in store.runs_by_age() if run["pinned"])
    return DiskReport(found.home, budget, total, rows, sum(freeable.values()),
                      sum(removal.bytes for removal in would), pinned)


def format_report(disk):
    """`backprop runs --disk`: one table of kinds, then the quota and what a clean-up would free."""
    from .runs import text_table

    lines = [("kind", "files", "size", "clean-up may free")]
    for kind, files, size, freeable in disk.rows:
        lines.append((kind, f"{files:,}", format_bytes(size), format_bytes(freeable) if freeable else "-"))
    lines.append(("total", f"{sum(row[1] for row in disk.rows):,}", format_bytes(disk.total),
                  format_bytes(disk.freeable) if disk.freeable else "-"))
    text = [text_table(lines), "",
            f"Studio home: {disk.home}",
            f"Quota: {format_bytes(disk.budget)} ({DISK_VARIABLE}); in use: {disk.share:.0%}."]
    if disk.total > disk.budget:
        text.append(f"Over the quota: a clean-up now frees {format_bytes(disk.would_free)}, oldest first, "
                    f"down to {LOW_WATER:.0%} of the quota.")
    else:
        text.append(f"A clean-up starts past the quota and frees, oldest first, down to {LOW_WATER:.0%} "
                    "of it; now it would free nothing.")
    text.append(f"Pinned runs (kept by every clean-up): {disk.pinned_runs}.")
    return "\n".join(text)


# -- cleaning up ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Cleanup:
    """What one clean-up did: bytes before and after (walked), and what it removed."""

    before: int
    after: int
    removed: tuple  # Removal

    @property
    def freed(self):
        return max(0, self.before - self.after)


_clean_lock = threading.Lock()


def _remove(store, removal):
    if removal.step == 2:
        store.delete(removal.run_id)  # its rows, and its checkpoint file if one is left
    elif removal.path is not None and removal.path.is_dir() and not removal.path.is_symlink():
        shutil.rmtree(removal.path, ignore_errors=True)
    elif removal.path is not None:
        removal.path.unlink(missing_ok=True)
        if removal.run_id is not None:
            store.forget_checkpoint(removal.run_id)


def _compact(store_path):
    """Give the disk back the pages of deleted rows (SQLite reuses them otherwise, but keeps the
    file's size) when they are a quarter of the file; then empty the write-ahead log."""
    with contextlib.suppress(sqlite3.Error), \
            contextlib.closing(sqlite3.connect(store_path, timeout=15, isolation_level=None)) as con:
        pages, free = (con.execute(f"PRAGMA {name}").fetchone()[0]
                       for name in ("page_count", "freelist_count"))
        if free and free >= pages / 4:
            con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def clean_up(store=None, budget=None, wait=True):
    """Past the quota, remove (in the module docstring's order, oldest first) down to LOW_WATER of
    it; under it, nothing. Returns a Cleanup, or None when another clean-up runs and wait=False."""
    if not _clean_lock.acquire(blocking=wait):
        return None
    try:
        store = _default_store(store)
        budget = disk_budget() if budget is None else int(budget)
        found = usage()
        before, removed = found.total, []
        if found.total > budget:
            for removal in plan(candidates(store, found), found.total, int(LOW_WATER * budget)):
                try:
                    _remove(store, removal)
                except (OSError, InputError):
                    continue  # gone already (another process cleaned it), or cannot be removed
                removed.append(removal)
            if any(removal.step == 2 for removal in removed):
                _compact(store.path)
            if removed:
                found = usage()
        _tally.reset(found, budget)
        return Cleanup(before, found.total, tuple(removed))
    finally:
        _clean_lock.release()


class _Tally:
    """The home's bytes since its last walk, plus the files noted since (no walk per note)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.total = None
        self.walked = 0.0
        self.known = {}  # path -> bytes, of the files noted since the walk and the walk's entries
        self.retry_after = 0.0

    def reset(self, found, budget):
        """After a walk (and clean-up): its total, and a pause before the next try if the home is
        still past the quota (everything left is running, pinned or kept)."""
        with self.lock:
            self.total = found.total
            self.walked = time.monotonic()
            self.known = {str(entry.path): entry.bytes for entries in found.entries.values()
                          for entry in entries}
            self.retry_after = 0.0 if found.total <= budget else time.monotonic() + RETRY_SECONDS

    def add(self, written):
        """Take the new sizes of the files written; returns whether a walk (and clean-up) is due."""
        with self.lock:
            now = time.monotonic()
            if self.total is None or now - self.walked > REWALK_SECONDS:
                return now >= self.retry_after
            for path in written:
                size = _bytes_of(path)
                self.total += size - self.known.get(path, 0)
                self.known[path] = size
            return self.total > disk_budget() and now >= self.retry_after


_tally = _Tally()


def note_written(*written, store=None):
    """A run ended or a file was written (`written`: its paths): keep the home within its quota.
    Cheap: the files' sizes are added to the total of the last walk; the home is walked (and
    cleaned up) only past the quota or every REWALK_SECONDS. Never raises: a clean-up that fails
    leaves the files as they are. Returns the Cleanup when one ran, else None."""
    try:
        if _tally.add([str(path) for path in written if path]):
            return clean_up(store, wait=False)
    except Exception:  # noqa: S110 (keeping the quota must never stop a run or an upload)
        pass
    return None


def after_run_end(store, checkpoint_path=None):
    """What a run calls once it ended or paused (backprop.run.Run): its checkpoint and the runs
    database were written."""
    database = Path(store.path)
    return note_written(checkpoint_path, database, database.with_name(database.name + "-wal"), store=store)


# -- pins -------------------------------------------------------------------------------------------
def check_pin(store, run_id):
    """Refuse (InputError "pin") a pin that would let pinned runs hold more than PIN_SHARE of the
    quota: pins are kept by every clean-up, so without a limit a visitor could pin the disk full.
    Returns the bytes the run holds (its checkpoint file and about its share of the database)."""
    limit = int(PIN_SHARE * disk_budget())
    runs = {run["id"]: run for run in store.runs_by_age()}
    if int(run_id) not in runs:
        raise InputError("run", f"there is no run with id {run_id}")
    live, rows = _store_live_bytes(store.path)

    def holds(run):
        size = int(run["n_history"] * live / rows) if rows else 0
        return size + (_bytes_of(run["checkpoint_path"]) if run["checkpoint_path"] else 0)
    pinned = sum(holds(run) for run in runs.values() if run["pinned"] and run["id"] != int(run_id))
    this = holds(runs[int(run_id)])
    if pinned + this > limit:
        raise InputError("pin", f"run {run_id} holds {format_bytes(this)} and the pinned runs "
                                f"{format_bytes(pinned)}; together over the {format_bytes(limit)} pinned "
                                f"runs may hold ({PIN_SHARE:.0%} of {quota_text(disk_budget())}): unpin "
                                "another run first")
    return this
