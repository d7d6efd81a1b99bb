"""Every training run, kept in one SQLite database so runs outlive the app and the CLI.

The database (`paths.runs_database()` unless given) holds one row per run (set-up, status,
final metrics, checkpoint path) and one row per recorded step (iteration, epoch, cost and,
where evaluated, test cost and accuracy). It runs in WAL mode: a training process writes
while the app reads, and a process killed mid-write loses only its unfinished transaction.

A run's steps reach it through `backprop.run.Run`, in batches written on one writer thread,
each flush one transaction, so a crash or a closed tab loses at most a couple of seconds.
"""

import json
import math
import os
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from . import paths
from .errors import InputError
from .owners import CLI, require_change

SCHEMA_VERSION = 5  # 2: runs.sweep_id and runs.trial, the sweeps table; 3: runs.pinned; 4: runs.owner;
# 5: sweeps.owner
STATUSES = ("running", "finished", "diverged", "stopped", "pruned", "failed")
SOURCES = ("app", "cli", "sweep")
SWEEP_STATUSES = ("created", "running", "finished", "cancelled", "failed")
MAX_NAME_LENGTH = 120
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    checkpoint_path TEXT,
    host TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    iteration INTEGER NOT NULL,
    epoch REAL,
    cost REAL,
    test_cost REAL,
    test_accuracy REAL,
    PRIMARY KEY (run_id, iteration)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    spec TEXT NOT NULL,
    message TEXT,
    host TEXT,
    pid INTEGER
);
"""
# Columns added after schema 1: a store written before them gains them when it is opened.
ADDED_COLUMNS = (("runs", "sweep_id", "INTEGER"), ("runs", "trial", "INTEGER"),
                 ("runs", "pinned", "INTEGER NOT NULL DEFAULT 0"),  # 1: kept by the disk quota's clean-up
                 ("runs", "owner", "TEXT"),  # who may change it (backprop.owners); NULL: the operator's
                 ("sweeps", "owner", "TEXT"))  # who may cancel, rename or delete it; NULL: the operator's
HISTORY_FIELDS = ("iteration", "epoch", "cost", "test_cost", "test_accuracy")


def _json(value):
    """JSON text for a config or metrics dict; NumPy numbers and tuples become plain values."""
    def plain(item):
        if hasattr(item, "tolist"):
            return item.tolist()
        if hasattr(item, "to_dict"):
            return item.to_dict()
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")
    return json.dumps(value, default=plain, allow_nan=True)


def _number(value):
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def default_name(config):
    """A readable name from the set-up, e.g. 'mnist 5v8 [196, 1] sigmoid sgd lr 0.1'."""
    digits = config.get("digits")
    task = config.get("dataset", "data")
    task += f" {digits[0]}v{digits[1]}" if digits else " all"
    parts = [task, str(list(config.get("layers", []))), config.get("activation", ""),
             config.get("optimizer", ""), f"lr {config.get('learning_rate', '?')}"]
    return " ".join(str(p) for p in parts if p != "")


def check_name(name):
    if not isinstance(name, str) or not name.strip():
        raise InputError("name", "a run name cannot be empty")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InputError("name", f"at most {MAX_NAME_LENGTH} characters, got {len(name)}")
    return name


def check_owner(owner):
    """An owner token as the store keeps it (backprop.owners), or None (the operator's)."""
    if owner is not None and (not isinstance(owner, str) or not owner or len(owner) > 64):
        raise InputError("owner", "an owner is a token of at most 64 characters")
    return owner


def _alive(host, pid):
    """Whether the process that is writing a run still exists (only knowable on this host)."""
    if host != socket.gethostname() or not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """The runs database. Each method opens its own short connection, so any thread may use it."""

    def __init__(self, path=None):
        if path is None:
            self.path = paths.runs_database()  # InputError("BACKPROP_STUDIO_HOME", ...) if not writable
        else:
            self.path = Path(path)
            paths.writable_folder(self.path.parent, "runs database", "give a runs database in a folder "
                                                                     "you can write")
        try:
            with closing(self._connect()) as con:
                con.execute("PRAGMA journal_mode=WAL")
                version = con.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise InputError("runs database", f"{self.path} was written by a newer Backprop "
                                                      f"Studio (schema {version}); upgrade to read it")
                with con:
                    con.executescript(SCHEMA)
                    for table, column, kind in ADDED_COLUMNS:
                        present = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
                        if column not in present:
                            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise InputError("runs database", f"{self.path} cannot be used ({error}); move it "
                                              "away and a new one will be made") from None

    def _connect(self):
        con = sqlite3.connect(self.path, timeout=15.0, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA synchronous=NORMAL")  # in WAL: safe against a killed process
        return con

    def _transaction(self, work):
        """Run work(con) inside one BEGIN IMMEDIATE ... COMMIT."""
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                result = work(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return result

    def _require(self, con, run_id):
        row = con.execute("SELECT * FROM runs WHERE id = ?", (int(run_id),)).fetchone()
        if row is None:
            raise InputError("run", f"there is no run with id {run_id}")
        return row

    # -- writing -------------------------------------------------------------------------
    def create(self, config, source="app", name=None, sweep_id=None, trial=None, owner=None):
        """Start a run record for a set-up (a dict or TrainConfig); returns its id. A sweep's
        trial gives source "sweep", its sweep's id and its trial number. `owner` is who may change it
        (backprop.owners): the browser's token, the sweep's owner; a CLI run's is "cli"."""
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        config = json.loads(_json(dict(config)))
        if source not in SOURCES:
            raise InputError("source", f"{source!r} is not one of {', '.join(SOURCES)}")
        name = check_name(name) if name is not None else default_name(config)
        if owner is None and source == "cli":
            owner = CLI
        owner = check_owner(owner)
        now = time.time()

        def insert(con):
            cursor = con.execute(
                "INSERT INTO runs (name, source, status, created, updated, config, host, pid, sweep_id, "
                "trial, owner) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, source, now, now, _json(config), socket.gethostname(), os.getpid(),
                 None if sweep_id is None else int(sweep_id), None if trial is None else int(trial), owner))
            return cursor.lastrowid
        return self._transaction(insert)

    def append_history(self, run_id, rows):
        """Add step rows {iteration, epoch, cost, [test_cost, test_accuracy]} in one transaction.

        Rows of the same iteration are merged: a value given replaces the one recorded."""
        values = [(int(run_id), int(row["iteration"]), _number(row.get("epoch")),
                   _number(row.get("cost")), _number(row.get("test_cost")),
                   _number(row.get("test_accuracy"))) for row in rows]

        def insert(con):
            self._require(con, run_id)
            # One statement over a JSON array, not executemany: sqlite3 lets go of the interpreter
            # lock around every row's step, and beside two training threads each row then waited
            # ~1.5 ms to get it back (1,000 rows: 1.56 s against 0.05 s this way), so the writer fell
            # behind the Playground's pool for good and a Train waited minutes for its run's record.
            # A step's row and the test row of the same iteration arrive separately: merge them.
            con.execute("INSERT INTO history SELECT " + ", ".join(
                f"json_extract(value, '$[{k}]')" for k in range(6)) + " FROM json_each(?) WHERE true "
                "ON CONFLICT (run_id, iteration) "
                "DO UPDATE SET epoch = COALESCE(excluded.epoch, epoch), "
                "cost = COALESCE(excluded.cost, cost), "
                "test_cost = COALESCE(excluded.test_cost, test_cost), "
                "test_accuracy = COALESCE(excluded.test_accuracy, test_accuracy)", (json.dumps(values),))
            con.execute("UPDATE runs SET updated = ? WHERE id = ?", (time.time(), int(run_id)))
        self._transaction(insert)

    def finish(self, run_id, metrics, status="finished", checkpoint_path=None):
        """Mark a run done with its final metrics (and where its checkpoint file is)."""
        if status not in STATUSES[1:]:
            raise InputError("status", f"{status!r} is not one of {', '.join(STATUSES[1:])}")
        text = _json(dict(metrics or {}))

        def update(con):
            self._require(con, run_id)
            con.execute("UPDATE runs SET status = ?, metrics = ?, checkpoint_path = ?, updated = ? "
                        "WHERE id = ?", (status, text, str(checkpoint_path) if checkpoint_path
                                         else None, time.time(), int(run_id)))
        self._transaction(update)

    def mark_running(self, run_id):
        """A paused (stopped) run trains on: 'running' again, owned by this process."""
        def update(con):
            self._require(con, run_id)
            con.execute("UPDATE runs SET status = 'running', host = ?, pid = ?, updated = ? WHERE id = ?",
                        (socket.gethostname(), os.getpid(), time.time(), int(run_id)))
        self._transaction(update)

    def _require_change(self, con, run_id, actor):
        """The run's row, when `actor` may change it (backprop.owners.may_change; None: this process)."""
        row = self._require(con, run_id)
        require_change(row["id"], row["owner"], actor)
        return row

    def rename(self, run_id, name, actor=None):
        """A new name. `actor` (a browser's token, or owners.OPERATOR) must own the run; None: this
        process (the operator). Raises InputError("run", ...) otherwise."""
        name = check_name(name)

        def update(con):
            self._require_change(con, run_id, actor)
            con.execute("UPDATE runs SET name = ? WHERE id = ?", (name, int(run_id)))
        self._transaction(update)

    @staticmethod
    def checkpoint_folder():
        return paths.studio_home() / "checkpoints"

    def checkpoint_path(self, run_id):
        """Where a run's checkpoint is kept: the one naming scheme for every run, whoever started it."""
        return self.checkpoint_folder() / f"run-{int(run_id)}.npz"

    def delete(self, run_id, remove_checkpoint=True, actor=None):
        """Forget a run and its history; its checkpoint file goes too if the studio made it. `actor` as
        for rename."""
        def remove(con):
            row = self._require_change(con, run_id, actor)
            con.execute("DELETE FROM runs WHERE id = ?", (int(run_id),))
            return row
        row = self._transaction(remove)
        checkpoint = row["checkpoint_path"]
        if remove_checkpoint and checkpoint:
            path = Path(checkpoint)
            if path.parent.resolve() == self.checkpoint_folder().resolve():
                path.unlink(missing_ok=True)

    # -- pins and age: what the disk quota's clean-up may remove (backprop.disk) ----------------------
    def pin(self, run_id, pinned=True, actor=None):
        """Keep a run (its history and checkpoint) through every clean-up, or (pinned=False) no longer.
        `actor` as for rename."""
        def update(con):
            self._require_change(con, run_id, actor)
            con.execute("UPDATE runs SET pinned = ? WHERE id = ?", (1 if pinned else 0, int(run_id)))
        self._transaction(update)

    def unpin(self, run_id, actor=None):
        self.pin(run_id, pinned=False, actor=actor)

    def may_change(self, run_id, actor):
        """Whether `actor` may rename, delete, pin or unpin the run (raises InputError when it is gone)."""
        with closing(self._connect()) as con:
            row = self._require(con, run_id)
        try:
            require_change(row["id"], row["owner"], actor)
        except InputError:
            return False
        return True

    def forget_checkpoint(self, run_id):
        """The run no longer has a checkpoint (the clean-up removed its file); its history stays."""
        def update(con):
            self._require(con, run_id)
            con.execute("UPDATE runs SET checkpoint_path = NULL WHERE id = ?", (int(run_id),))
        self._transaction(update)

    def runs_by_age(self):
        """Every run, least recently updated first, as the clean-up needs them: id, name, status
        ('interrupted' for a running run whose process is gone), pinned, updated, checkpoint_path,
        sweep_id, the upload its set-up names (or None) and its number of history rows."""
        with closing(self._connect()) as con:
            counts = dict(con.execute("SELECT run_id, COUNT(*) FROM history GROUP BY run_id").fetchall())
            rows = con.execute("SELECT id, name, status, pinned, updated, checkpoint_path, sweep_id, host, "
                               "pid, config FROM runs ORDER BY updated, id").fetchall()
        runs = []
        for row in rows:
            status = row["status"]
            if status == "running" and not _alive(row["host"], row["pid"]):
                status = "interrupted"
            try:
                upload = json.loads(row["config"]).get("upload")
            except (ValueError, AttributeError):
                upload = None
            runs.append({"id": row["id"], "name": row["name"], "status": status,
                         "pinned": bool(row["pinned"]), "updated": row["updated"],
                         "checkpoint_path": row["checkpoint_path"], "sweep_id": row["sweep_id"],
                         "upload": upload, "n_history": counts.get(row["id"], 0)})
        return runs

    # -- reading -------------------------------------------------------------------------
    def _describe(self, row, last=None):
        run = {key: row[key] for key in ("id", "name", "source", "status", "created", "updated",
                                         "checkpoint_path", "sweep_id", "trial", "owner")}
        run["config"] = json.loads(row["config"])
        run["metrics"] = json.loads(row["metrics"])
        run["pinned"] = bool(row["pinned"])
        if run["status"] == "running" and not _alive(row["host"], row["pid"]):
            run["status"] = "interrupted"  # its process ended without finishing the run
        if last is not None:
            run.update(last)
        return run

    def _last(self, con, run_id):
        """The last recorded step and the last test evaluation of a run."""
        step = con.execute("SELECT iteration, cost, COUNT(*) OVER () AS n FROM history "
                           "WHERE run_id = ? AND cost IS NOT NULL ORDER BY iteration DESC LIMIT 1",
                           (run_id,)).fetchone()
        test = con.execute("SELECT test_accuracy, test_cost FROM history WHERE run_id = ? AND "
                           "test_accuracy IS NOT NULL ORDER BY iteration DESC LIMIT 1",
                           (run_id,)).fetchone()
        return {"n_history": step["n"] if step else 0,
                "last_iteration": step["iteration"] if step else None,
                "last_cost": step["cost"] if step else None,
                "last_test_accuracy": test["test_accuracy"] if test else None,
                "last_test_cost": test["test_cost"] if test else None}

    def list_runs(self):
        """Every run, newest first, each a dict with its config, metrics and last recorded step."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT * FROM runs ORDER BY id DESC").fetchall()
            return [self._describe(row, self._last(con, row["id"])) for row in rows]

    def get(self, run_id):
        with closing(self._connect()) as con:
            row = self._require(con, run_id)
            return self._describe(row, self._last(con, row["id"]))

    def history(self, run_id):
        """The recorded steps in order: dicts {iteration, epoch, cost, test_cost, test_accuracy}."""
        with closing(self._connect()) as con:
            self._require(con, run_id)
            rows = con.execute("SELECT iteration, epoch, cost, test_cost, test_accuracy FROM history "
                               "WHERE run_id = ? ORDER BY iteration", (int(run_id),)).fetchall()
        return [dict(row) for row in rows]

    # -- sweeps --------------------------------------------------------------------------
    def create_sweep(self, spec, name=None, owner=None):
        """Record a sweep (its spec: base set-up, space, strategy, seed, pruner); returns its id.
        `owner` is who may cancel, rename or delete it (backprop.owners): a browser's token, "cli" for
        `backprop sweep`; None: the operator's. Its trials' runs get the same owner."""
        now = time.time()
        name = check_name(name) if name is not None else "sweep " + " ".join(spec.get("vary", []))[:100]
        owner = check_owner(owner)

        def insert(con):
            return con.execute("INSERT INTO sweeps (name, status, created, updated, spec, host, pid, owner) "
                               "VALUES (?, 'created', ?, ?, ?, ?, ?, ?)",
                               (name, now, now, _json(spec), socket.gethostname(), os.getpid(),
                                owner)).lastrowid
        return self._transaction(insert)

    def _require_sweep_change(self, con, sweep_id, actor):
        """The sweep's row, when `actor` may change it (backprop.owners; None: this process)."""
        row = self._require_sweep(con, sweep_id)
        require_change(row["id"], row["owner"], actor, what="sweep")
        return row

    def check_sweep_change(self, sweep_id, actor):
        """Raise InputError("sweep", ... naming who may) unless `actor` may cancel, stop, pause, resume,
        rename or delete the sweep (backprop.owners.may_change; None: this process)."""
        with closing(self._connect()) as con:
            self._require_sweep_change(con, sweep_id, actor)

    def rename_sweep(self, sweep_id, name, actor=None):
        """A sweep's new name. `actor` as for rename (InputError("sweep") for another's sweep)."""
        name = check_name(name)

        def update(con):
            self._require_sweep_change(con, sweep_id, actor)
            con.execute("UPDATE sweeps SET name = ? WHERE id = ?", (name, int(sweep_id)))
        self._transaction(update)

    def delete_sweep(self, sweep_id, actor=None):
        """Forget a sweep that is not running, and its trials' runs (their history, and the checkpoints
        the studio made). `actor` as for rename. backprop.sweep.delete_sweep also removes its journal."""
        def remove(con):
            row = self._require_sweep_change(con, sweep_id, actor)
            if row["status"] == "running" and _alive(row["host"], row["pid"]):
                raise InputError("sweep", f"sweep #{row['id']} is running; cancel it first")
            runs = con.execute("SELECT checkpoint_path FROM runs WHERE sweep_id = ?", (row["id"],)).fetchall()
            con.execute("DELETE FROM runs WHERE sweep_id = ?", (row["id"],))
            con.execute("DELETE FROM sweeps WHERE id = ?", (row["id"],))
            return [run["checkpoint_path"] for run in runs if run["checkpoint_path"]]
        folder = self.checkpoint_folder().resolve()
        for checkpoint in self._transaction(remove):
            path = Path(checkpoint)
            if path.parent.resolve() == folder:
                path.unlink(missing_ok=True)

    def update_sweep(self, sweep_id, status, message=None):
        """A sweep's new status; 'running' also makes this process its owner (for 'interrupted')."""
        if status not in SWEEP_STATUSES:
            raise InputError("status", f"{status!r} is not one of {', '.join(SWEEP_STATUSES)}")

        def update(con):
            self._require_sweep(con, sweep_id)
            con.execute("UPDATE sweeps SET status = ?, message = ?, updated = ?, host = ?, pid = ? "
                        "WHERE id = ?", (status, message, time.time(), socket.gethostname(),
                                         os.getpid(), int(sweep_id)))
        self._transaction(update)

    def _require_sweep(self, con, sweep_id):
        try:
            number = int(sweep_id)
        except (TypeError, ValueError):
            raise InputError("sweep", f"{sweep_id!r} is not a sweep id (a whole number)") from None
        row = con.execute("SELECT * FROM sweeps WHERE id = ?", (number,)).fetchone()
        if row is None:
            raise InputError("sweep", f"there is no sweep with id {sweep_id}")
        return row

    @staticmethod
    def _describe_sweep(row):
        sweep = {key: row[key] for key in ("id", "name", "status", "created", "updated", "message", "owner")}
        sweep["spec"] = json.loads(row["spec"])
        if sweep["status"] == "running" and not _alive(row["host"], row["pid"]):
            sweep["status"] = "interrupted"  # its client ended without finishing it: resume it
        return sweep

    def get_sweep(self, sweep_id):
        with closing(self._connect()) as con:
            return self._describe_sweep(self._require_sweep(con, sweep_id))

    def list_sweeps(self):
        """Every sweep, newest first."""
        with closing(self._connect()) as con:
            return [self._describe_sweep(row) for row in
                    con.execute("SELECT * FROM sweeps ORDER BY id DESC").fetchall()]

    def sweep_runs(self, sweep_id):
        """The runs of a sweep's trials, by trial number (a trial run again has several)."""
        with closing(self._connect()) as con:
            self._require_sweep(con, sweep_id)
            rows = con.execute("SELECT * FROM runs WHERE sweep_id = ? ORDER BY trial, id",
                               (int(sweep_id),)).fetchall()
            return [self._describe(row, self._last(con, row["id"])) for row in rows]


def table_cell(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_runs_table(runs):
    """A plain-text table of runs (as from RunStore.list_runs) for `python -m backprop runs`."""
    if not runs:
        return "No runs recorded yet."
    header = ("id", "name", "status", "source", "started", "layers", "optimizer", "lr", "steps",
              "cost", "test acc")
    lines = [header]
    for run in runs:
        config, metrics = run["config"], run["metrics"]
        accuracy = metrics.get("test_accuracy", run.get("last_test_accuracy"))
        cost = metrics.get("train_cost", run.get("last_cost"))
        steps = run.get("last_iteration")
        lines.append((str(run["id"]), run["name"][:40], run["status"], run["source"],
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created"])),
                      ",".join(map(str, config.get("layers", []))), str(config.get("optimizer", "-")),
                      f"{config['learning_rate']:g}" if "learning_rate" in config else "-",
                      "-" if steps is None else str(steps + 1), table_cell(cost), table_cell(accuracy)))
    return text_table(lines)


def text_table(lines):
    """Rows of text cells (the first is the header) as aligned columns with a rule under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
            for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)
