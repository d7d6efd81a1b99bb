"""The list of sweeps: what `backprop sweeps` prints and the Sweep page lists, from one function
(`sweep_list`), newest first: each sweep's id, name, status, trials done of its total, best value of
its metric (named, with its direction), when it was created and the compute time its trials took.

The numbers come from the sweep's journal, read line by line through its checks
(backprop.sweep.journal) without building an Optuna study, and kept per version of the file, so a
list of many sweeps reads each journal once until it changes. A journal that cannot be read (damaged)
gives that sweep a note naming the file, the line and why, never an error for the whole list.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from ..errors import InputError
from .journal import (
    COMPLETE,
    CREATE_TRIAL,
    FINISHED,
    RUNNING,
    SET_TRIAL_STATE_VALUES,
    SET_TRIAL_USER_ATTR,
    JournalChecker,
    journal_lines,
    parse_line,
)
from .space import SweepSpec, metric_label

MAX_SEARCH = 200  # characters of a search
COLUMNS = ("id", "name", "status", "trials", "best", "created", "compute")  # the CLI's and the page's


@dataclass(frozen=True)
class SweepSummary:
    """One recorded sweep as the list shows it."""

    id: int
    name: str
    status: str  # created, running, finished, cancelled, failed, interrupted (its client died)
    done: int | None  # trials ended (finished, pruned, failed, diverged); None: its journal is unreadable
    total: int | None  # trials it runs (None: its recorded spec no longer reads)
    best: float | None  # the best value of its metric among finished trials
    metric: str
    direction: str  # minimize or maximize
    created: float  # seconds since the epoch
    compute_seconds: float | None  # the trials' training time, summed over every attempt recorded
    note: str | None = None  # why the numbers are missing

    def best_text(self):
        """'test cost 0.3094 (min)', or '' before a trial finished."""
        if self.best is None:
            return ""
        return f"{metric_label(self.metric)} {self.best:.6g} ({self.direction[:3]})"

    def trials_text(self):
        return f"{'?' if self.done is None else self.done}/{'?' if self.total is None else self.total}"

    def created_text(self):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))

    def row(self):
        """The list's cells as text, by COLUMNS (a note, when there is one, after them)."""
        row = {"id": self.id, "name": self.name, "status": self.status, "trials": self.trials_text(),
               "best": self.best_text(), "created": self.created_text(),
               "compute": duration_text(self.compute_seconds)}
        if self.note:
            row["note"] = self.note
        return row

    def to_dict(self):
        """For --json: numbers as numbers, the creation time as ISO 8601 (UTC)."""
        from datetime import datetime, timezone

        return {"id": self.id, "name": self.name, "status": self.status, "done": self.done,
                "total": self.total, "best": self.best, "metric": self.metric, "direction": self.direction,
                "created": datetime.fromtimestamp(self.created, timezone.utc).isoformat(timespec="seconds"),
                "compute_seconds": self.compute_seconds, "note": self.note}


def duration_text(seconds):
    """'' for None; '42.0 s', '3 min 12 s', '2 h 05 min'."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def check_search(search):
    """The search text, stripped ('' for none); InputError("search") past MAX_SEARCH characters."""
    text = "" if search is None else str(search).strip()
    if len(text) > MAX_SEARCH:
        raise InputError("search", f"at most {MAX_SEARCH} characters, got {len(text)}")
    if "\x00" in text:
        raise InputError("search", "contains a null byte")
    return text


def matches(record, search):
    """Whether a sweep's record matches a search: its id ('12' or '#12') or a part of its name
    (any case)."""
    if not search:
        return True
    word = search.lower()
    return word in str(record["name"]).lower() or word.lstrip("#") == str(record["id"])


def sweep_list(store=None, search=None):
    """Every recorded sweep (those matching `search`: see `matches`), newest first, as
    SweepSummary. InputError("search") for a search past MAX_SEARCH characters."""
    from ..runs import RunStore

    search = check_search(search)
    store = store or RunStore()
    records = [record for record in store.list_sweeps() if matches(record, search)]
    records.sort(key=lambda record: (record["created"], record["id"]), reverse=True)
    return [summary_of(record) for record in records]


def summary_of(record):
    """A sweep's SweepSummary from its run-store record and its journal."""
    from .study import study_path

    spec_data = record["spec"] if isinstance(record["spec"], dict) else {}
    metric = spec_data.get("metric") or "test_cost"
    direction = spec_data.get("direction") or "minimize"
    base = dict(id=int(record["id"]), name=record["name"], status=record["status"], metric=metric,
                direction=direction, created=float(record["created"]))
    try:
        spec = SweepSpec.from_dict(spec_data)
    except (InputError, KeyError, TypeError, ValueError) as error:
        why = f"{error.field}: {error.message}" if isinstance(error, InputError) else "its spec is incomplete"
        return SweepSummary(**base, done=None, total=None, best=None, compute_seconds=None,
                            note=f"recorded set-up no longer valid ({why})")
    base.update(metric=spec.metric, direction=spec.direction, total=spec.total())
    path = study_path(base["id"], create_folder=False)
    try:
        done, best, seconds = journal_numbers(path, base["id"], spec)
    except InputError as error:
        return SweepSummary(**base, done=None, best=None, compute_seconds=None,
                            note=f"{error.field}: {error.message}")
    return SweepSummary(**base, done=done, best=best, compute_seconds=seconds)


_cache_lock = threading.Lock()
_cache = {}  # (path, sweep id) -> ((inode, size, mtime), its numbers)
MAX_CACHED = 256


def journal_numbers(path, sweep_id, spec):
    """(trials ended, the best value of the metric, the trials' seconds summed) from a sweep's
    journal, read through its checks (InputError "journal" naming the line of a damaged one);
    (0, None, 0.0) without a journal. A trial asked again (cancelled, or left running by a client
    that ended) counts under its new number, as the snapshot counts it."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return 0, None, 0.0
    version = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    key = (str(path), int(sweep_id))
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    checker = JournalChecker(sweep_id, spec, path)
    trials = []  # per trial id: [state, value, result, requeued]
    for _, after, line in journal_lines(path, end=stat.st_size):
        if after is None:
            checker.line += 1
            checker.fail(line)
        log = parse_line(line, f"{path}, line {checker.line + 1}")
        checker.check(log)
        op = log["op_code"]
        if op == CREATE_TRIAL:
            trials.append([log.get("state", RUNNING), None, None, False])
        elif op == SET_TRIAL_STATE_VALUES:
            trial = trials[log["trial_id"]]
            trial[0] = log["state"]
            trial[1] = (log.get("values") or [None])[0]
        elif op == SET_TRIAL_USER_ATTR:
            (name, value), = log["user_attr"].items()
            if name == "result":
                trials[log["trial_id"]][2] = value
            elif name == "requeued":
                trials[log["trial_id"]][3] = bool(value)
    done, best, seconds = 0, None, 0.0
    sign = 1 if spec.direction == "minimize" else -1
    for state, value, result, requeued in trials:
        result = result or {}
        if isinstance(result.get("seconds"), (int, float)):
            seconds += result["seconds"]  # an attempt cancelled and asked again took its time too
        if requeued or state not in FINISHED:
            continue
        done += 1
        if state == COMPLETE:
            value = result.get("value") if result.get("value") is not None else value
            finite = isinstance(value, (int, float)) and math.isfinite(value)
            if finite and (best is None or sign * value < sign * best):
                best = float(value)
    numbers = (done, best, seconds)
    with _cache_lock:
        if len(_cache) >= MAX_CACHED:
            _cache.clear()
        _cache[key] = (version, numbers)
    return numbers


def format_sweeps_table(summaries):
    """A plain-text table of SweepSummary (newest first, as given) for `backprop sweeps`."""
    from ..runs import text_table

    if not summaries:
        return "No sweeps recorded yet."
    lines = [COLUMNS]
    notes = []
    for summary in summaries:
        row = summary.row()
        lines.append(tuple(str(row[column])[:40] if column == "name" else str(row[column])
                           for column in COLUMNS))
        if summary.note:
            notes.append(f"sweep {summary.id}: {summary.note}")
    return "\n".join([text_table(lines), *notes])
