"""The sweep's journal file, checked line by line before Optuna sees a line of it.

Optuna's journal storage trusts its file: a garbage line ends in an AssertionError or a
UnicodeDecodeError, an unknown operation in `assert False`, a categorical parameter index of -1
quietly picks the last choice, and a last line cut mid-write (a crash, a full disk) is skipped when
read but has the next write appended onto it, which then fails with a JSONDecodeError. Here every
line is read with a bounded length (`MAX_LINE_BYTES`), parsed with bounded JSON, and checked against
what a sweep writes and against the sweep's own space (`SweepSpec`): operation codes, the one
study's name, trial ids, states, dates, each parameter's distribution (the spec's, exactly) and
value (an index of one of its choices, a number inside its range), the trials' fixed parameters
and the sweep's own attributes. A damaged line is an InputError("journal", "<file>, line N: why").

`CheckedJournal` is the Optuna journal backend every sweep uses: it reads through these checks as
Optuna reads (only complete lines: a line still being written by a client in another process is
left for the next read), and appends through Optuna's file backend and its lock. Before a client
writes to a journal again (`--resume`, Resume), `set_aside_torn_tail` moves a last line without its
end (a crash mid-write) to `<journal>.torn` and `remove_stale_lock` a lock no live client holds.

Lists of numbers: a sweep keeps `batch_size=30,100,10` as an Optuna categorical of numbers (30, 100,
10); a journal written before that kept its text ('30', '100', '10'). Both read; each journal keeps
to one form per setting (the first line that sets it decides), and a client that resumes an old
journal asks with the form it has (`as_recorded`), since Optuna refuses a parameter whose choices
changed within a study.

The file is bounded too: at most MAX_JOURNAL_BYTES and MAX_JOURNAL_TRIALS trial records, so what
Optuna builds from it in memory stays bounded (see backprop.sweep.admission).
"""

from __future__ import annotations

import json
import math
import os
import socket
from datetime import datetime
from pathlib import Path

from ..errors import InputError

FIELD = "journal"
MAX_LINE_BYTES = 64 * 1024  # the longest line a sweep writes is a trial's result, well under 4 kB
MAX_JOURNAL_BYTES = 32 * 10**6  # a 1,000-trial sweep writes about 3 MB
MAX_JOURNAL_TRIALS = 20_000  # trial records (asked, and asked again after a cancel or a crash)
RESUMABLE_TRIALS = MAX_JOURNAL_TRIALS // 2  # a resumed client adds at most MAX_TRIALS + requeued ones
TORN_SUFFIX = ".torn"
LOCK_SUFFIX = ".lock"  # Optuna's JournalFileSymlinkLock

# Optuna's journal operations (optuna.storages.journal._storage.JournalOperation), those a sweep writes.
CREATE_STUDY, DELETE_STUDY, SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR = 0, 1, 2, 3
CREATE_TRIAL, SET_TRIAL_PARAM, SET_TRIAL_STATE_VALUES, SET_TRIAL_INTERMEDIATE_VALUE = 4, 5, 6, 7
SET_TRIAL_USER_ATTR, SET_TRIAL_SYSTEM_ATTR = 8, 9
OPERATIONS = {CREATE_STUDY: "create study", SET_STUDY_USER_ATTR: "set a study attribute",
              SET_STUDY_SYSTEM_ATTR: "set a study system attribute", CREATE_TRIAL: "create a trial",
              SET_TRIAL_PARAM: "set a parameter", SET_TRIAL_STATE_VALUES: "set a trial's state",
              SET_TRIAL_INTERMEDIATE_VALUE: "report an intermediate value",
              SET_TRIAL_USER_ATTR: "set a trial attribute",
              SET_TRIAL_SYSTEM_ATTR: "set a trial system attribute"}
RUNNING, COMPLETE, PRUNED, FAIL, WAITING = 0, 1, 2, 3, 4  # optuna.trial.TrialState
STATES = {RUNNING: "running", COMPLETE: "complete", PRUNED: "pruned", FAIL: "failed", WAITING: "waiting"}
FINISHED = (COMPLETE, PRUNED, FAIL)
MINIMIZE, MAXIMIZE = 1, 2  # optuna.study.StudyDirection
RESULT_STATUSES = ("finished", "pruned", "failed", "diverged", "cancelled")


class JournalDamage(InputError):
    """A line of a journal that is not what a sweep writes (field "journal")."""


class _Trial:
    __slots__ = ("params", "state")

    def __init__(self, state):
        self.state = state
        self.params = set()


class JournalChecker:
    """Checks a sweep's journal one parsed line at a time, in order (it remembers the study and
    the trials so far). `spec` is the sweep's SweepSpec; `path` names the file in messages."""

    def __init__(self, sweep_id, spec, path):
        self.study_name = f"sweep-{int(sweep_id)}"
        self.path = str(path)
        self.dimensions = {d.name: d for d in spec.space}
        self.direction = MAXIMIZE if spec.direction == "maximize" else MINIMIZE
        self.direction_text = spec.direction
        self.expected = {d.name: _distribution_json(d.distribution()) for d in spec.space}
        # The forms a parameter's distribution may take in this journal, until a line decides:
        # a list of numbers as numbers (NUMBERS) or, written before they were, as text (TEXT).
        self._forms = {}
        for d in spec.space:
            forms = {NUMBERS if d.numeric else SPEC: json.loads(self.expected[d.name])}
            if d.numeric:
                forms[TEXT] = json.loads(_distribution_json(
                    _text_dimension(d).distribution()))
            self._forms[d.name] = forms
        self.has_study = False
        self.trials = []  # _Trial, by trial id (one study: ids are 0, 1, 2, ...)
        self.line = 0

    def fail(self, why):
        raise JournalDamage(FIELD, f"{self.path}, line {self.line}: {why}")

    # -- one line --------------------------------------------------------------------------
    def check(self, log):
        self.line += 1
        if not isinstance(log, dict):
            self.fail(f"a line is a JSON object, not {type(log).__name__}")
        op = log.get("op_code")
        if type(op) is not int or op not in OPERATIONS:
            if op == DELETE_STUDY:
                self.fail("op_code 1 (delete the study) is not something a sweep writes")
            self.fail(f"op_code {_short(op)} is not an operation a sweep's journal holds "
                      f"(known: {', '.join(f'{k} {v}' for k, v in OPERATIONS.items())})")
        if not isinstance(log.get("worker_id"), str):
            self.fail("worker_id is missing or not text")
        if op == CREATE_STUDY:
            self._create_study(log)
            return
        if not self.has_study:
            self.fail(f"{OPERATIONS[op]} before the study {self.study_name!r} was created")
        if op in (SET_STUDY_USER_ATTR, SET_STUDY_SYSTEM_ATTR):
            self._study_id(log)
            self._one_attribute(log, "user_attr" if op == SET_STUDY_USER_ATTR else "system_attr")
        elif op == CREATE_TRIAL:
            self._create_trial(log)
        else:
            trial = self._trial(log)
            if op == SET_TRIAL_PARAM:
                self._set_param(log, trial)
            elif op == SET_TRIAL_STATE_VALUES:
                self._set_state(log, trial)
            elif op == SET_TRIAL_INTERMEDIATE_VALUE:
                step = log.get("step")
                if type(step) is not int or step < 0:
                    self.fail(f"an intermediate value's step is a whole number >= 0, not {_short(step)}")
                value = log.get("intermediate_value")
                if not _number_or_none(value):
                    self.fail(f"an intermediate value is a number, not {_short(value)}")
            elif op == SET_TRIAL_USER_ATTR:
                key, value = self._one_attribute(log, "user_attr")
                self._user_attribute(key, value)
            else:
                key, value = self._one_attribute(log, "system_attr")
                self._system_attribute(key, value)

    def _create_study(self, log):
        # Each client that opens the study writes "create study" again (create_study with
        # load_if_exists: Optuna ignores a second one of the same name), so a resumed sweep has several.
        if log.get("study_name") != self.study_name:
            self.fail(f"the study is {_short(log.get('study_name'))}, not this sweep's {self.study_name!r}")
        if log.get("directions") != [self.direction]:
            self.fail(f"the study's directions are {_short(log.get('directions'))}, not [{self.direction}] "
                      f"({self.direction_text})")
        self.has_study = True

    def _study_id(self, log):
        if log.get("study_id") != 0 or type(log.get("study_id")) is not int:
            self.fail(f"study_id {_short(log.get('study_id'))}: the journal holds one study, id 0")

    def _one_attribute(self, log, key):
        attribute = log.get(key)
        if not isinstance(attribute, dict) or len(attribute) != 1:
            self.fail(f"{key} is an object of one attribute, not {_short(attribute)}")
        return next(iter(attribute.items()))

    def _trial(self, log):
        trial_id = log.get("trial_id")
        if type(trial_id) is not int or not 0 <= trial_id < len(self.trials):
            self.fail(f"trial_id {_short(trial_id)} names no trial created before this line "
                      f"({len(self.trials)} so far)")
        trial = self.trials[trial_id]
        if trial.state in FINISHED:
            self.fail(f"trial {trial_id} changes after it ended ({STATES[trial.state]})")
        return trial

    def _date(self, log, key, required):
        value = log.get(key)
        if value is None and not required:
            return
        if not isinstance(value, str) or len(value) > 64:
            self.fail(f"{key} is a date, not {_short(value)}")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{key} {_short(value)} is not a date")

    def _state(self, value):
        if type(value) is not int or value not in STATES:
            self.fail(f"state {_short(value)} is not a trial state ({', '.join(map(str, STATES))})")
        return value

    def _values(self, values):
        if values is not None and (not isinstance(values, list) or len(values) != 1
                                   or not _number_or_none(values[0])):
            self.fail(f"values are [one number] or null, not {_short(values)}")

    def _create_trial(self, log):
        self._study_id(log)
        if len(self.trials) >= MAX_JOURNAL_TRIALS:
            self.fail(f"more than {MAX_JOURNAL_TRIALS:,} trial records, the most a sweep's journal may hold")
        if "datetime_start" not in log:
            self.fail("a new trial has no datetime_start")
        self._date(log, "datetime_start", required=False)
        self._date(log, "datetime_complete", required=False)
        state = self._state(log.get("state", RUNNING))
        if state in FINISHED:
            self.fail(f"a trial is created {STATES[state]} (a sweep creates trials running or waiting)")
        for key in ("value", "values", "intermediate_values", "distributions", "params"):
            if log.get(key) not in (None, {}, []):
                self.fail(f"a new trial comes with {key} (a sweep sets them one at a time)")
        for key in ("user_attrs", "system_attrs"):
            attributes = log.get(key, {})
            if not isinstance(attributes, dict):
                self.fail(f"{key} is an object, not {_short(attributes)}")
            for name, value in attributes.items():
                (self._user_attribute if key == "user_attrs" else self._system_attribute)(name, value)
        self.trials.append(_Trial(state))

    def _set_param(self, log, trial):
        name = log.get("param_name")
        if name not in self.dimensions:
            self.fail(f"parameter {_short(name)} is not a setting this sweep varies "
                      f"({', '.join(self.dimensions)})")
        distribution = log.get("distribution")
        try:
            given = json.loads(distribution) if isinstance(distribution, str) else None
        except ValueError:  # (the line's own size bounds it)
            given = None
        form = next((form for form, expected in self._forms[name].items() if given == expected), None)
        if form is None:
            self.fail(f"parameter {name}'s distribution {_short(distribution)} is not the sweep's "
                      f"{self.expected_text(name)}")
        self._decide(name, form)
        if name in trial.params:
            self.fail(f"parameter {name} is set twice in one trial")
        self._internal_value(name, log.get("param_value_internal"))
        trial.params.add(name)

    def expected_text(self, name):
        """The distribution this journal expects of a parameter now, as JSON text."""
        forms = self._forms[name]
        return json.dumps(forms[TEXT]) if list(forms) == [TEXT] else self.expected[name]

    def _decide(self, name, form):
        """The first line that sets a list of numbers decides its form for the whole journal."""
        self._forms[name] = {form: self._forms[name][form]}

    def recorded_form(self, name):
        """NUMBERS or TEXT once a line decided a list of numbers' form; None before (or SPEC)."""
        forms = self._forms.get(name, {})
        return next(iter(forms)) if len(forms) == 1 and SPEC not in forms else None

    def _internal_value(self, name, value):
        """A parameter's value as Optuna keeps it: a categorical's index, a range's number."""
        dimension = self.dimensions[name]
        if type(value) not in (int, float) or not math.isfinite(value):
            self.fail(f"parameter {name}'s value {_short(value)} is not a number")
        if dimension.values is not None:
            count = len(dimension.values)
            if value != int(value) or not 0 <= value < count:
                self.fail(f"parameter {name}'s choice index {_short(value)} is outside 0..{count - 1} "
                          f"(its {count} values: {', '.join(dimension.text_form())})")
            return
        if not dimension.low <= value <= dimension.high:
            self.fail(f"parameter {name}'s value {value!r} is outside its range "
                      f"{dimension.low}:{dimension.high}")
        if dimension.setting.kind == "int" and value != int(value):
            self.fail(f"parameter {name}'s value {value!r} is not a whole number")

    def _external_value(self, name, value):
        """A fixed parameter (a trial asked again) as given to enqueue_trial: one of the choices,
        or a number inside the range."""
        dimension = self.dimensions.get(name)
        if dimension is None:
            self.fail(f"fixed parameter {_short(name)} is not a setting this sweep varies")
        if dimension.values is not None:
            forms = self._forms[name]
            form = (TEXT if isinstance(value, str) else NUMBERS) if SPEC not in forms else SPEC
            choices = dimension.text_form() if form == TEXT else dimension.choices()
            if form not in forms:
                choices = ()
            if isinstance(value, bool) or value not in choices:
                self.fail(f"fixed parameter {name}={_short(value)} is not one of its values "
                          f"({', '.join(dimension.text_form())})")
            self._decide(name, form)
            return
        self._internal_value(name, value)

    def _set_state(self, log, trial):
        state = self._state(log.get("state"))
        if "values" not in log:
            self.fail("a trial's new state comes without values")
        self._values(log.get("values"))
        if state == RUNNING:
            self._date(log, "datetime_start", required=True)
        elif state in FINISHED:
            self._date(log, "datetime_complete", required=True)
        elif state == WAITING:
            self.fail("a trial cannot go back to waiting")
        if state == COMPLETE and log.get("values") is None:
            self.fail("a complete trial has no value")
        trial.state = state

    def _user_attribute(self, key, value):
        if key == "result":
            self._result(value)
        elif key == "requeued":
            if not isinstance(value, bool):
                self.fail(f"requeued is true or false, not {_short(value)}")

    def _system_attribute(self, key, value):
        if key == "fixed_params":
            if not isinstance(value, dict):
                self.fail(f"fixed_params is an object, not {_short(value)}")
            for name, item in value.items():
                self._external_value(name, item)

    def _result(self, result):
        if not isinstance(result, dict):
            self.fail(f"a trial's result is an object, not {_short(result)}")
        if result.get("status", "failed") not in RESULT_STATUSES:
            self.fail(f"a trial's status {_short(result.get('status'))} is not one of "
                      f"{', '.join(RESULT_STATUSES)}")
        for key in ("test_cost", "test_accuracy", "train_accuracy", "train_cost", "value", "seconds"):
            if not _number_or_none(result.get(key)):
                self.fail(f"a trial's {key} is a number or null, not {_short(result.get(key))}")
        for key in ("reason", "checkpoint"):
            if result.get(key) is not None and not isinstance(result.get(key), str):
                self.fail(f"a trial's {key} is text or null, not {_short(result.get(key))}")
        if result.get("run") is not None and type(result.get("run")) is not int:
            self.fail(f"a trial's run is a run id or null, not {_short(result.get('run'))}")
        lost = result.get("lost", [])
        if not isinstance(lost, list) or not all(isinstance(item, dict) for item in lost):
            self.fail(f"a trial's lost attempts are a list of objects, not {_short(lost)}")
        for item in lost:
            for key in ("worker", "ran_again_on"):
                if item.get(key) is not None and not isinstance(item.get(key), str):
                    self.fail(f"a lost attempt's {key} is text or null, not {_short(item.get(key))}")
            if item.get("run") is not None and type(item.get("run")) is not int:
                self.fail(f"a lost attempt's run is a run id or null, not {_short(item.get('run'))}")


SPEC, NUMBERS, TEXT = "spec", "numbers", "text"  # a parameter's form in a journal (see the docstring)


def _text_dimension(dimension):
    import dataclasses

    return dataclasses.replace(dimension, text_choices=True)


def as_recorded(path, sweep_id, spec):
    """The spec as the journal at `path` keeps its lists of numbers: a list the journal recorded
    as text (written before lists of numbers were kept as numbers) goes on as text, so a resumed
    client asks Optuna with the choices the study already has. The spec unchanged when it has no
    list of numbers, the journal does not exist, or it has not set them yet. The lines read are
    checked (a damaged one is the JournalDamage every reader of the journal gets)."""
    numeric = [d.name for d in spec.space if d.numeric]
    path = Path(path)
    if not numeric or not path.exists():
        return spec
    checker = JournalChecker(sweep_id, spec, path)
    undecided = set(numeric)
    for _, after, line in journal_lines(path):
        if after is None:
            raise JournalDamage(FIELD, f"{path}, line {checker.line + 1}: {line}")
        checker.check(parse_line(line, f"{path}, line {checker.line + 1}"))
        undecided = {name for name in undecided if checker.recorded_form(name) is None}
        if not undecided:
            break
    text = {name for name in numeric if checker.recorded_form(name) == TEXT}
    if not text:
        return spec
    import dataclasses

    return dataclasses.replace(spec, space=tuple(_text_dimension(d) if d.name in text else d
                                                 for d in spec.space))


def _distribution_json(distribution):
    from optuna.distributions import distribution_to_json

    return distribution_to_json(distribution)


def _number_or_none(value):
    return value is None or type(value) in (int, float)  # NaN and infinities: Optuna writes them


def _short(value, most=60):
    text = repr(value)
    return text if len(text) <= most else text[:most - 3] + "..."


# -- reading ----------------------------------------------------------------------------------------
def journal_lines(path, start=0, end=None):
    """(offset of a line, offset after it, its bytes) for every complete line of the file from byte
    `start` (the beginning of a line) to `end` (default: its size now); a last line without its end
    is not read (a line torn by a crash, or one still being written). Bounded: the file past
    MAX_JOURNAL_BYTES is an InputError; a line longer than MAX_LINE_BYTES ends the reading with
    (offset, None, why) and is never read whole."""
    path = Path(path)
    size = path.stat().st_size if end is None else end
    if size > MAX_JOURNAL_BYTES:
        raise JournalDamage(FIELD, f"{path} is {size:,} bytes, over the {MAX_JOURNAL_BYTES:,} a sweep's "
                                   "journal may hold")
    with open(path, "rb") as file:
        file.seek(start)
        offset = start
        while offset < size:
            line = file.readline(min(MAX_LINE_BYTES + 1, size - offset))
            if not line.endswith(b"\n"):
                if len(line) > MAX_LINE_BYTES:
                    yield offset, None, f"a line of more than {MAX_LINE_BYTES:,} bytes"
                return  # a torn (or still written) last line: left for later
            offset += len(line)
            yield offset - len(line), offset, line


def parse_line(line, where):
    """A journal line's JSON object (JournalDamage "<where>: why" for one that is not JSON). The
    line's length (at most MAX_LINE_BYTES) bounds what parsing it builds, about 3 MB at worst;
    nesting deeper than JSON can be read is refused like any other damage."""
    try:
        return json.loads(line)
    except RecursionError:
        raise JournalDamage(FIELD, f"{where}: the line nests arrays and objects too deeply") from None
    except ValueError as error:  # JSONDecodeError, bad UTF-8, an integer of over 4,300 digits
        raise JournalDamage(FIELD, f"{where}: the line is not valid JSON: {error}") from None


def check_journal(path, sweep_id, spec):
    """Read the whole journal through the checks (bounded memory: one line at a time). Returns
    (trial records, bytes of complete lines, a torn last line's bytes or 0); raises InputError
    ("journal", "<file>, line N: why") at the first damaged line."""
    checker = JournalChecker(sweep_id, spec, path)
    end = 0
    for _, after, line in journal_lines(path):
        if after is None:
            raise JournalDamage(FIELD, f"{path}, line {checker.line + 1}: {line}")
        checker.check(parse_line(line, f"{path}, line {checker.line + 1}"))
        end = after
    return len(checker.trials), end, Path(path).stat().st_size - end


def set_aside_torn_tail(path):
    """A journal whose last line was cut mid-write: move those bytes to <journal>.torn (appended)
    and cut the journal after its last complete line. Returns a note saying so, or None. Only a
    client about to write the journal calls this (no other client writes it then)."""
    path = Path(path)
    if not path.exists():
        return None
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb+") as file:
        back = min(size, MAX_LINE_BYTES + 1)
        file.seek(size - back)
        tail = file.read(back)
        if tail.endswith(b"\n"):
            return None
        cut = tail.rfind(b"\n")
        keep = size - back + cut + 1 if cut >= 0 else (0 if size < MAX_LINE_BYTES + 1 else None)
        if keep is None:
            raise JournalDamage(FIELD, f"{path}: its last line has no end within {MAX_LINE_BYTES:,} bytes")
        torn = tail[len(tail) - (size - keep):]
        with open(str(path) + TORN_SUFFIX, "ab") as aside:
            aside.write(torn + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        file.truncate(keep)
        file.flush()
        os.fsync(file.fileno())
    lines = "a line" if keep == 0 else "its last line"
    return (f"{path}: {lines} was cut mid-write ({len(torn):,} bytes, a crash or a full disk); set aside in "
            f"{path}{TORN_SUFFIX}, the sweep goes on from the intact part")


def remove_stale_lock(path):
    """Optuna's lock file beside a journal that no client writes now (a client killed while it
    wrote): removed, so the next write does not wait for Optuna's 30 s grace period. True if removed."""
    lock = Path(str(path) + LOCK_SUFFIX)
    if lock.is_symlink() or lock.exists():
        lock.unlink(missing_ok=True)
        return True
    return False


# -- the backend Optuna uses ------------------------------------------------------------------------
def _base_backend():
    from optuna.storages.journal import BaseJournalBackend

    return BaseJournalBackend


class CheckedJournal:
    """An Optuna journal backend over the sweep's file whose every line is checked as it is read
    (see the module docstring). Made by `checked_journal` (Optuna imported lazily)."""

    def __init__(self, path, sweep_id, spec, create=False):
        from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(str(self.path))
        self._lock = JournalFileSymlinkLock(str(self.path))  # Optuna's own lock over its journal files
        self._file = JournalFileBackend(str(self.path), lock_obj=self._lock)  # creates the file
        self._unsynced = False
        self._sweep_id, self._spec = sweep_id, spec
        self._reset()

    def _reset(self):
        self._checker = JournalChecker(self._sweep_id, self._spec, self.path)
        self._next = (0, 0)  # (lines read and checked, the byte offset after them)

    def read_logs(self, log_number_from):
        """The lines from `log_number_from` on, each checked (Optuna reads on from where it was,
        or from 0 when a storage is made)."""
        if log_number_from == 0:
            self._reset()
        number, offset = self._next
        if log_number_from != number:
            raise JournalDamage(FIELD, f"{self.path}: asked to read from line {log_number_from + 1}, "
                                       f"not line {number + 1}")
        for _, after, line in journal_lines(self.path, offset):
            where = f"{self.path}, line {number + 1}"
            if after is None:
                raise JournalDamage(FIELD, f"{where}: {line}")
            log = parse_line(line, where)
            self._checker.check(log)
            number += 1
            self._next = (number, after)
            yield log

    def append_logs(self, logs):
        """Append under Optuna's file lock, as its JournalFileBackend does, but without its fsync per
        write (an ask and a tell were five fsyncs a trial): the line is in the file for every reader
        at once, and survives the client's process ending; `sync()` makes the lines written so far
        durable on disk, once per turn of the client's loop (a power loss before it can lose them, or
        tear the last line, which the checks already handle)."""
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode("utf-8")
        self._lock.acquire()
        try:
            with open(self.path, "ab") as file:
                file.write(text)
        finally:
            self._lock.release()
        self._unsynced = True

    def sync(self):
        """fsync the lines appended since the last sync (nothing when there are none)."""
        if self._unsynced:
            self._unsynced = False
            descriptor = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)


def checked_journal(path, sweep_id, spec, create=False):
    """A CheckedJournal (an optuna BaseJournalBackend subclass, made when optuna is imported)."""
    global _CheckedJournalClass
    if _CheckedJournalClass is None:
        _CheckedJournalClass = type("CheckedJournal", (CheckedJournal, _base_backend()), {})
    return _CheckedJournalClass(path, sweep_id, spec, create=create)


_CheckedJournalClass = None


# -- the one client that writes a journal --------------------------------------------------------
CLIENT_SUFFIX = ".client"


def _alive(host, pid):
    if host != socket.gethostname():
        return True  # another machine's process: assume it lives
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, OverflowError):
        return True
    return True


class ClientLock:
    """`<journal>.client`, made exclusively (O_EXCL) by the client that runs a sweep and removed
    when it ends: a second client of the same sweep (a Resume on the page while the CLI runs it)
    is refused before it writes anything, and a lock whose process is gone (killed) is taken over."""

    def __init__(self, journal_path, sweep_id):
        self.path = Path(str(journal_path) + CLIENT_SUFFIX)
        self.sweep_id = sweep_id
        self.held = False

    def owner(self):
        """(host, pid) of the client holding it, or None."""
        try:
            host, _, pid = self.path.read_text()[:300].partition(" ")
            return host, int(pid)
        except (OSError, ValueError):
            return None

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is not None and _alive(*owner):
                    raise InputError("sweep", f"sweep {self.sweep_id} is being run by another client "
                                              f"(process {owner[1]} on {owner[0]}); cancel it there, or "
                                              "wait for it") from None
                self.path.unlink(missing_ok=True)  # its client was killed: take it over
                continue
            with os.fdopen(fd, "w") as file:
                file.write(f"{socket.gethostname()} {os.getpid()}")
            self.held = True
            return self
        raise InputError("sweep", f"sweep {self.sweep_id}: another client took it as this one started")

    def release(self):
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
