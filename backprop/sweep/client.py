"""The client side of a sweep: `Sweep` owns the Optuna study, asks it for trials, hands each to
Dask as one task (backprop.sweep.trial), and tells Optuna the result (ask-and-tell).

Every attempt at a trial is one run in the run store (`backprop.run.Run`, source "sweep"): opened
when the worker says it started, fed the worker's rows, and finished with the worker's network as
its checkpoint. A run is complete in the store before Optuna hears of its trial, so a client
killed in between leaves a trial that is asked again, never an ended trial without its run.

A trial whose worker died (killed, out of memory) is run once more, by the client (a shared
scheduler's configuration is never changed); the lost attempt's run is marked failed naming the
worker, and the snapshot lists it (`TrialView.lost`), so the CLI and the app say what happened.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..run import Run
from ..settings import DATA
from .cluster import connect, dead_worker, describe_error, keep_local_cluster, worker_died
from .journal import (
    LOCK_SUFFIX,
    RESUMABLE_TRIALS,
    TORN_SUFFIX,
    ClientLock,
    check_journal,
    remove_stale_lock,
    set_aside_torn_tail,
)
from .snapshot import SweepSnapshot, TrialView, attach_runs, view_of
from .space import SweepSpec
from .study import (
    REQUEUED,
    RESULT,
    TrialResult,
    as_journaled,
    finite,
    study_path,
    study_to_run,
    sync_journal,
)
from .trial import LostAttempt, Progress, Started, TrialTask, run_trial

MAX_CURVE = 4000  # a running trial's live cost curve (and evaluations) keeps every 2nd point past this
ENDED_ROWS = 1000  # an ended trial's live curve and evaluations are thinned to about this many
DEATHS_ALLOWED = 1  # a trial whose worker died is run again this many times
# Cancel: trials still running this long after they were told to stop (a step longer than that, a worker
# that hangs) are given up: their tasks cancelled, their runs marked stopped, their trials asked again
# on a resume like every cancelled trial.
CANCEL_GRACE_SECONDS = 3.0


@dataclass
class _Attempt:
    """The attempt at a trial running now: its id on the worker, the worker, and its run."""

    id: str
    worker: str
    run: Run


@dataclass
class _Lost:
    """An attempt whose worker died (its run is marked failed), and where the trial ran next."""

    worker: str | None
    run: Run | None
    ran_again_on: str | None = None

    def view(self):
        return LostAttempt(self.worker, self.run.run_id if self.run is not None else None, self.ran_again_on)


@dataclass(frozen=True)
class _Ended:
    """A trial whose run is written; Optuna is told next (see Sweep._tell)."""

    number: int
    trial: object  # optuna Trial
    state: object  # optuna TrialState
    value: float | None
    result: TrialResult
    run: Run | None


@dataclass(frozen=True)
class ResumeCheck:
    """A recorded sweep that may be resumed: its spec, its journal's trial records, and the bytes
    of a torn last line (set aside when its client starts)."""

    sweep_id: int
    spec: SweepSpec
    journal_trials: int = 0
    torn_bytes: int = 0


def check_resume(sweep_id, store):
    """Everything a resume needs, checked before anything changes (InputError naming the field):
    the sweep exists, its spec is still valid, and its journal is intact, read line by line
    (backprop.sweep.journal; a last line cut mid-write is only noted here) and small enough to go on."""
    record = store.get_sweep(sweep_id)
    sweep_id = int(record["id"])
    if record["status"] == "running":
        raise InputError("sweep", f"sweep {sweep_id} is running (its client is alive); cancel it there, "
                                  "or wait")
    spec = SweepSpec.from_dict(record["spec"])
    path = study_path(sweep_id, create_folder=False)
    if not path.exists():
        return ResumeCheck(sweep_id, spec)
    trials, _, torn = check_journal(path, sweep_id, spec)
    if trials >= RESUMABLE_TRIALS:
        raise InputError("journal", f"{path} holds {trials:,} trial records; a sweep is resumed while it "
                                    f"holds fewer than {RESUMABLE_TRIALS:,} (start a new sweep)")
    return ResumeCheck(sweep_id, spec, trials, torn)


def thinned(rows, most=ENDED_ROWS):
    """Every k-th row (and the last) so that at most about `most` stay: what the client keeps of an
    ended trial (its run in the store keeps them all); see backprop.sweep.admission."""
    if len(rows) <= most:
        return rows
    step = -(-len(rows) // most)
    kept = rows[::step]
    return kept if kept[-1] is rows[-1] else [*kept, rows[-1]]


def create_sweep(spec, store=None, name=None, owner=None):
    """Record a new sweep (space, strategy, seed) and return its id; nothing runs yet. `owner` (a
    browser's token, "cli" for `backprop sweep`, None: the operator's) owns it and its trials' runs."""
    from ..runs import RunStore

    store = store or RunStore()
    return store.create_sweep(spec.to_dict(), name=name, owner=owner)


def delete_sweep(sweep_id, store=None, actor=None):
    """Forget a recorded sweep that no client runs: its row, its trials' runs and checkpoints, its
    journal. `actor` (a browser's token, owners.OPERATOR; None: this process) must own it
    (InputError("sweep") naming who may); a sweep a live client runs is refused (cancel it first)."""
    from ..runs import RunStore

    store = store or RunStore()
    store.check_sweep_change(sweep_id, actor)  # before the client lock's message
    journal = study_path(sweep_id, create_folder=False)
    claim = ClientLock(journal, int(sweep_id))
    try:
        claim.acquire()
    except InputError:
        raise InputError("sweep", f"sweep #{int(sweep_id)} is running; cancel it first") from None
    try:
        store.delete_sweep(sweep_id, actor=actor)
        for suffix in ("", TORN_SUFFIX, LOCK_SUFFIX):
            Path(str(journal) + suffix).unlink(missing_ok=True)
    finally:
        claim.release()


class Sweep:
    """Runs one recorded sweep to its end (a new one, or a resumed one). `run()` blocks; the app
    calls it from a thread and reads `snapshot()`; `cancel()` from any thread."""

    def __init__(self, sweep_id, store=None, scheduler=None, workers=None):
        from ..runs import RunStore

        self.store = store or RunStore()
        self.sweep_id = int(sweep_id)
        record = self.store.get_sweep(self.sweep_id)
        self.spec = SweepSpec.from_dict(record["spec"])
        self.owner = record.get("owner")  # its trials' runs are its owner's (backprop.owners)
        self.scheduler, self.workers = scheduler, workers
        self.address = None  # the scheduler's, once connected
        self.connect_seconds = None  # from run() to the client connected (the cluster's start-up)
        self.cluster_reused = False  # whether the local cluster was one kept from an earlier sweep
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._paused = threading.Event()  # no new trials until resumed; running ones go on
        self._stop_asking = threading.Event()  # Stop: no new trials, the sweep ends when running ones do
        self._ended = threading.Event()  # a trial's future is done, or its run is written (or: cancel)
        self._over = threading.Event()  # the final status is written (the cluster may still be closing)
        self._cancel_told = None  # when the workers were told to stop (monotonic seconds), on a cancel
        self._started = time.monotonic()
        self._status = "starting"
        self._message = None
        self._views = {}  # number -> TrialView
        self._best = []
        self._asked = {}  # number -> optuna Trial, until told
        self._configs = {}  # number -> its TrainConfig
        self._attempts = {}  # number -> _Attempt running now
        self._lost = {}  # number -> [_Lost]
        self._in_flight = {}  # Dask future -> trial number
        self._again = {}  # number -> times the client submitted it again
        self._to_tell = collections.deque()  # _Ended, appended by the run writer's thread
        self._finishing = 0  # trials ended whose results Optuna has not heard yet
        self._writes = []  # Events of run writes queued (waited for before the sweep returns)
        self._pruned = set()
        self._reported = {}  # number -> last step reported to Optuna
        self._stopping = set()
        self._heard = {}  # str(trial number) -> the last pruner's report the client heard (its step)
        self._heard_changed = False
        self._cancel_message = None
        self._claim = None  # the ClientLock, while this client runs the sweep

    # -- reading (any thread) ----------------------------------------------------------------------
    def snapshot(self):
        with self._lock:
            trials = []
            for number, view in sorted(self._views.items()):
                attempt = self._attempts.get(number)
                lost = self._lost.get(number)
                trials.append(dataclasses.replace(
                    view, curve=list(view.curve), evaluations=list(view.evaluations),
                    params=dict(view.params), intermediate=dict(view.intermediate),
                    run_id=attempt.run.run_id if attempt is not None else view.run_id,
                    lost=[item.view() for item in lost] if lost else list(view.lost)))
            return SweepSnapshot(self.sweep_id, self._status, self.spec.total(), trials,
                                 time.monotonic() - self._started, list(self._best), self._message,
                                 self.spec.space, self.spec.metric, self.spec.direction)

    def cancel(self, why=None):
        """Stop every running trial and ask no more; `why` (e.g. "stopped by SIGTERM") becomes the
        sweep's message. Returns at once (a signal handler calls it): the client's loop wakes, tells
        the workers (a Dask Event their trials read at every step) and writes 'cancelled' to the run
        store before it waits for them; `wait_over()` waits for the trials' runs and the final status."""
        if why:
            self._cancel_message = why
        self._cancel.set()
        self._ended.set()  # wake the loop now

    def wait_over(self, timeout=None):
        """Wait until the sweep's final status is written (its trials ended and their runs marked; its
        cluster may still be closing). True once it is."""
        return self._over.wait(timeout)

    @property
    def over(self):
        """Whether the final status is written (run() may still be closing the cluster)."""
        return self._over.is_set()

    def pause(self):
        """Ask no new trials (running ones finish); resume() asks again."""
        if self._status in ("starting", "running"):
            self._paused.set()
            self._set_status("paused", "paused: no new trials until resumed; running ones finish")

    def resume(self):
        """Ask trials again after pause()."""
        if self._paused.is_set():
            self._paused.clear()
            with self._lock:
                if self._status == "paused":
                    self._status, self._message = "running", None

    def stop(self):
        """Ask no new trials; the running ones finish, then the sweep ends (finished, resumable)."""
        self._stop_asking.set()
        self._paused.clear()
        self._set_status(self._status if self._status != "paused" else "running",
                         "stopping: running trials finish, no new ones")

    @property
    def paused(self):
        return self._paused.is_set()

    @property
    def status(self):
        return self._status

    # -- the loop ------------------------------------------------------------------------------
    def claim(self):
        """Become the one client of this sweep (its journal's ClientLock) before anything is
        written: another live client is an InputError("sweep"). run() claims if not yet claimed."""
        if self._claim is None:
            self._claim = ClientLock(study_path(self.sweep_id), self.sweep_id).acquire()
        return self

    def release(self):
        """Give up a claim without running (a start refused after claim())."""
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def run(self, on_change=None):
        """Run the sweep to its end; returns the final snapshot. on_change(snapshot) after events.
        Another client running this sweep is an InputError("sweep") before anything is written."""
        self.claim()
        try:
            try:
                self._run(on_change)
            except KeyboardInterrupt:
                self._set_status("cancelled")
                self.store.update_sweep(self.sweep_id, status="cancelled",
                                        message="interrupted (Ctrl-C or SIGTERM)")
                raise
            except BaseException as error:
                self._set_status("failed", describe_error(error))
                self.store.update_sweep(self.sweep_id, status="failed", message=describe_error(error))
                raise
        finally:
            self._over.set()
            self.release()
        return self.snapshot()

    def _set_status(self, status, message=None):
        with self._lock:
            self._status = status
            if message is not None:
                self._message = message

    def _warn(self, text):
        self._set_status(self._status, text)

    def _run(self, on_change):
        from distributed import Event, Queue, Variable

        # This client alone writes the journal now (its ClientLock): a last line torn by a crash is
        # set aside and Optuna's lock left by a killed client removed before the first write.
        note = set_aside_torn_tail(study_path(self.sweep_id))
        remove_stale_lock(study_path(self.sweep_id))
        self.store.update_sweep(self.sweep_id, status="running", message=note)
        if note:
            self._set_status(self._status, note)
        self.study = self._load_study()
        sync_journal(self.study)  # a resumed study's requeued trials
        if self._remaining(0) <= 0 and not self._cancel.is_set():  # a resumed sweep with nothing left
            self._set_status("finished")
            self.store.update_sweep(self.sweep_id, status="finished")
            if on_change:
                on_change(self.snapshot())
            return
        client, cluster = connect(self.scheduler, self.workers, reuse=True)
        self.address = client.scheduler.address
        self.connect_seconds = time.monotonic() - self._started  # cluster start-up and connection
        self.cluster_reused = bool(cluster is not None and cluster.reused)
        self._gave_up = False  # trials given up after a cancel may still run: the cluster is not kept
        self._client = client
        self._channel = f"backprop-sweep-{self.sweep_id}-{uuid.uuid4().hex[:8]}"
        self._scattered = {}
        self._progress = Queue(self._channel + "-progress", client=client)
        self._stop = Variable(self._channel + "-stop", client=client)
        self._stop.set({"all": False, "trials": [], "heard": {}})
        self._cancel_event = Event(self._channel + "-cancel", client=client)
        self._set_status("paused" if self._paused.is_set() else "running")
        try:
            try:
                self._loop(client, on_change)
            finally:
                with self._lock:
                    running, self._attempts = list(self._attempts.values()), {}
                for attempt in running:
                    self._track(attempt.run.finish("stopped", {}, checkpoint=False, wait=False))
                for event in self._writes:
                    event.wait()
                self._tell()  # what ended before an interruption is kept
                sync_journal(self.study)
            self._record_end(on_change)  # before the cluster closes: for a cancel's caller, it is over
        finally:
            self._forget_channels()
            client.close()
            if cluster is not None and not self._gave_up and self._status in ("finished", "cancelled"):
                keep_local_cluster(cluster)  # for the next sweep of this process (see cluster.py)
            elif cluster is not None:
                cluster.close()  # its workers' processes end (a second or more; longer under load)

    def _forget_channels(self):
        """The scheduler forgets this sweep's stop Variable and Queue (a kept cluster serves other
        sweeps)."""
        for forget in (self._stop.delete, self._progress.close):
            try:
                forget()
            except Exception:  # noqa: BLE001 (a scheduler gone: nothing to forget)
                pass

    def _loop(self, client, on_change):
        """Hand out trials and hear from them until the sweep ends: all done, stopped, or cancelled."""
        capacity, capacity_checked = 1, 0.0
        while True:
            done = [f for f in self._in_flight if f.done()]
            self._drain()  # after looking at the futures: a done trial's rows are all in the queue
            for future in done:
                self._finish(future, self._in_flight.pop(future))
            self._tell()
            busy = len(self._in_flight) + self._finishing
            if self._cancel.is_set():
                self._cancel_trials()
                if not busy:
                    break
            else:
                if time.monotonic() - capacity_checked > 1.0:
                    capacity = max(0, sum(client.nthreads().values()))
                    capacity_checked = time.monotonic()
                # A trial more per worker waits at the scheduler, so a worker that finishes one
                # starts the next at once (TPE: one in all, so it learns from more results).
                ahead = 1 if self.spec.strategy == "tpe" else capacity
                reached = self._target_reached()
                stopping = self._stop_asking.is_set()
                asking = not (reached or stopping or self._paused.is_set())
                # A trial whose run is being written still holds its place (its result may reach
                # the target: a fast trial's next ones are not asked before it is heard).
                while busy < capacity + ahead and self._remaining(busy) > 0 and asking:
                    self._submit(self._ask())
                    busy += 1
                if not busy and (self._remaining(0) <= 0 or reached or stopping):
                    break
                if capacity == 0 and not self._in_flight:
                    self._set_status(self._status, "waiting for workers to join the scheduler")
            sync_journal(self.study)  # this turn's asks and tells: one fsync
            # Wake when a trial ends (its future's callback) or on a cancel, else drain progress every
            # 0.1 s (0.03 s with a pruner: a worker waits for the verdict on each report).
            self._ended.wait(0.1 if self.spec.pruner == "none" else 0.03)
            self._ended.clear()
            if on_change:
                on_change(self.snapshot())

    def _cancel_trials(self):
        """On a cancel: at once, tell every trial to stop (the cancel Event their steps read, and the stop
        flag for those not started) and write 'cancelled' to the run store; trials still running
        CANCEL_GRACE_SECONDS later are given up (their tasks cancelled; _finish marks them cancelled)."""
        if self._cancel_told is None:
            self._cancel_told = time.monotonic()
            self._cancel_event.set()
            self._stop_trials(all_trials=True)
            self.store.update_sweep(self.sweep_id, status="cancelled", message=self._cancel_message)
        elif self._in_flight and time.monotonic() - self._cancel_told > CANCEL_GRACE_SECONDS:
            late = [future for future in self._in_flight if not future.done()]
            if late:
                self._gave_up = True
                self._client.cancel(late)
            self._cancel_told = math.inf  # once

    def _record_end(self, on_change):
        """The sweep's final status and message, in the snapshot and the run store."""
        status = "cancelled" if self._cancel.is_set() else "finished"
        message = self._cancel_message if status == "cancelled" else None
        if status == "finished" and self._stop_asking.is_set() and self._remaining(0) > 0:
            message = (f"stopped: {self._remaining(0)} trials not run "
                       f"(continue with backprop sweep --resume {self.sweep_id})")
        elif status == "finished" and self._target_reached():
            message = (f"target reached: {self.spec.metric_label} {self._best_value():.6g} "
                       f"(target {self.spec.target:g})")
        self._set_status(status, message)
        self.store.update_sweep(self.sweep_id, status=status, message=message)
        self._over.set()
        if on_change:
            on_change(self.snapshot())

    def _load_study(self):
        self.spec = as_journaled(self.sweep_id, self.spec)  # an old journal's lists of numbers: as text
        study = study_to_run(self.sweep_id, self.spec)
        views = [view_of(self.spec, frozen) for frozen in study.get_trials(deepcopy=False)]
        views = [view for view in views if view is not None]
        attach_runs(views, self.store, self.sweep_id)  # a sweep recorded before the journal kept runs
        self._views = {view.number: view for view in views}
        return study

    def _best_value(self):
        """The best metric value of the finished trials (None before one)."""
        with self._lock:
            values = [view.value for view in self._views.values()
                      if view.status == "finished" and view.value is not None]
        if not values:
            return None
        return min(values) if self.spec.direction == "minimize" else max(values)

    def _target_reached(self):
        """Whether the best finished trial reached the --target (then no new trial is asked)."""
        return self.spec.target is not None and self.spec.reached(self._best_value())

    def _remaining(self, in_flight):
        done = sum(1 for view in self._views.values() if view.status not in ("queued", "running"))
        return self.spec.total() - done - in_flight

    def _track(self, event):
        if event is not None:
            if len(self._writes) > 64:
                self._writes = [e for e in self._writes if not e.is_set()]
            self._writes.append(event)

    # -- asking and submitting ---------------------------------------------------------------------
    def _ask(self):
        trial = self.study.ask()
        params = self.spec.suggest(trial)  # a setting of another optimizer than the trial's: not asked
        with self._lock:
            self._asked[trial.number] = trial
            self._configs[trial.number] = self.spec.trial_config(trial.params)
            self._views[trial.number] = TrialView(trial.number, params)
        return trial.number

    def _submit(self, number):
        """Hand a trial to Dask (again, with a new key, after its worker died)."""
        config = self._configs[number]
        data = None
        if config.dataset in ("idx", "npz"):  # only the client has these files: send them once
            key = tuple(repr(getattr(config, name)) for name in DATA)
            if key not in self._scattered:
                self._scattered[key] = self._client.scatter(config.load_data())
            data = self._scattered[key]
        task = TrialTask(number, config, self._channel + "-progress", self._channel + "-stop",
                         report_every=self.spec.report_every, metric=self.spec.metric,
                         cancel_channel=self._channel + "-cancel")
        again = self._again.get(number, 0)
        key = f"{self._channel}-trial-{number}" + (f"-again-{again}" if again else "")
        future = self._client.submit(run_trial, task, data, key=key, pure=False)
        self._in_flight[future] = number
        future.add_done_callback(lambda _: self._ended.set())

    # -- what the workers say ------------------------------------------------------------------
    def _drain(self):
        for message in self._progress.get(batch=True):
            if isinstance(message, Started):
                self._on_started(message)
            elif isinstance(message, Progress):
                self._on_progress(message)
        if self._heard_changed:  # the workers waiting on a verdict go on (or stop, if pruned)
            self._heard_changed = False
            self._publish_stop()

    def _on_started(self, message):
        number = message.number
        current = self._attempts.get(number)
        if current is not None and current.id == message.attempt:
            return
        if current is not None:
            self._lose(number, current.worker, current.run)  # the scheduler ran it again itself
        run = Run(self._configs[number], store=self.store, source="sweep", sweep_id=self.sweep_id,
                  trial=number, name=f"sweep {self.sweep_id} trial {number}", on_warning=self._warn,
                  owner=self.owner)
        run.open(wait=False)
        with self._lock:
            self._attempts[number] = _Attempt(message.attempt, message.worker, run)
            lost = self._lost.get(number)
            if lost and lost[-1].ran_again_on is None:
                lost[-1].ran_again_on = message.worker
            view = self._views[number]
            view.status, view.worker = "running", message.worker
            view.curve, view.evaluations = [], []

    def _on_progress(self, message):
        number = message.number
        attempt = self._attempts.get(number)
        if attempt is None or attempt.id != message.attempt:
            return  # from an attempt whose worker died
        attempt.run.record_rows(message.rows)
        with self._lock:
            view = self._views[number]
            view.curve.extend(message.rows.steps)
            if len(view.curve) > MAX_CURVE:
                view.curve = view.curve[::2]
            view.evaluations.extend(message.rows.evaluations)
            if len(view.evaluations) > MAX_CURVE:
                view.evaluations = view.evaluations[::2]
        if self.spec.pruner == "none" or not message.reports:
            return
        trial = self._asked[number]
        for report in message.reports:
            if report.step <= self._reported.get(number, 0):
                continue  # an attempt run again reports the same steps
            self._reported[number] = report.step
            trial.report(report.value, report.step)
            with self._lock:
                view.intermediate[report.step] = report.value  # live, pruned trials' too
            if number not in self._pruned and trial.should_prune():
                self._pruned.add(number)
                self._stopping.add(number)
        self._heard[str(number)] = message.reports[-1].step
        self._heard_changed = True

    def _stop_trials(self, numbers=(), all_trials=False):
        wanted = set(numbers) | self._stopping
        if all_trials and "all" in self._stopping:
            return
        if all_trials:
            self._stopping.add("all")
        self._stopping |= wanted
        self._publish_stop()

    def _publish_stop(self):
        """The stop variable the workers read: stop all, the trials to stop, and the last pruner's
        report heard of each trial (a worker waits for it after each report)."""
        self._stop.set({"all": "all" in self._stopping,
                        "trials": sorted(n for n in self._stopping if n != "all"),
                        "heard": dict(self._heard)})

    # -- a worker that died ----------------------------------------------------------------------
    def _lose(self, number, worker, run, again=True):
        """An attempt whose worker died: its run says so, and the trial keeps it as a lost attempt."""
        reason = f"worker {worker or '(unknown)'} died while it ran trial {number} (killed, or out of memory)"
        reason += "; the trial was run again" if again else "; the sweep was cancelled"
        if run is not None:
            self._track(run.finish("failed", {"error": reason}, checkpoint=False, wait=False))
        with self._lock:
            self._lost.setdefault(number, []).append(_Lost(worker, run))

    def _after_death(self, number, attempt, error):
        """A trial whose worker died: (True, None) when it runs again (once), else (False, why)."""
        worker = attempt.worker if attempt is not None else dead_worker(error)
        run = attempt.run if attempt is not None else None
        earlier = self._lost.get(number, [])
        deaths = max(len(earlier) + 1, getattr(error, "allowed_failures", 0) + 1)
        if self._cancel.is_set():
            self._lose(number, worker, run, again=False)
            return False, None
        if deaths <= DEATHS_ALLOWED:
            self._lose(number, worker, run)
            self._again[number] = self._again.get(number, 0) + 1
            with self._lock:
                view = self._views[number]
                view.status, view.worker = "queued", None
            self._submit(number)
            return True, None
        workers = ", then ".join(item.worker or "(unknown)" for item in [*earlier, _Lost(worker, None)])
        times = "twice" if deaths == 2 else f"{deaths} times"
        return False, (f"its worker process died {times} while running it (killed, or out of memory): "
                       f"{workers}")

    # -- a trial ends ------------------------------------------------------------------------------
    def _finish(self, future, number):
        from optuna.trial import TrialState

        reason, outcome, died = None, None, False
        try:
            if future.cancelled():  # given up after a cancel (CANCEL_GRACE_SECONDS): its run is stopped
                died = True
                reason = (f"still running {CANCEL_GRACE_SECONDS:g} s after the sweep was cancelled: "
                          "given up")
            else:
                outcome = future.result()
                self._last_words(outcome)
        except Exception as error:
            with self._lock:
                attempt = self._attempts.pop(number, None)
            if worker_died(error):
                died = True
                again, reason = self._after_death(number, attempt, error)
                if again:
                    return
                if reason is None:  # lost while the sweep was cancelled
                    attempt = None
            else:
                reason = describe_error(error)
        else:
            with self._lock:
                attempt = self._attempts.pop(number, None)
        trial = self._asked.pop(number)
        if outcome is None and died and self._cancel.is_set():  # lost or given up during a cancel
            state, status, run_status = TrialState.FAIL, "cancelled", "stopped"
        elif outcome is None:
            state, status, run_status = TrialState.FAIL, "failed", "failed"
        elif outcome.status == "finished":
            state, status, run_status = TrialState.COMPLETE, "finished", "finished"
        elif outcome.status == "diverged":
            state, status, run_status = TrialState.FAIL, "diverged", "diverged"
            reason = outcome.divergence["reason"] if outcome.divergence else "diverged"
        elif number in self._pruned:
            state, status, run_status = TrialState.PRUNED, "pruned", "pruned"
        else:  # cancelled: asked again when the sweep is resumed
            state, status, run_status = TrialState.FAIL, "cancelled", "stopped"
        if outcome is not None:
            result = TrialResult(status, reason if status in ("diverged", "failed") else None,
                                 finite(outcome.test_cost), finite(outcome.test_accuracy),
                                 finite(outcome.train_accuracy), finite(outcome.seconds),
                                 train_cost=finite(outcome.train_cost),
                                 value=finite(outcome.value) if status == "finished" else None)
            metrics = outcome.metrics()
        else:
            result, metrics = TrialResult(status, reason), {"error": reason}
        value = outcome.value if status == "finished" else None
        run = attempt.run if attempt is not None else None
        self._finishing += 1

        def told():
            self._to_tell.append(_Ended(number, trial, state, value, result, run))
            self._ended.set()
        if run is None:
            told()
            return
        keep = status == "finished" and outcome.network is not None
        self._track(run.finish(run_status, metrics, network=outcome.network if keep else None,
                               history=outcome.history if keep else None, checkpoint=keep, wait=False,
                               on_done=told))

    def _last_words(self, outcome):
        """What a trial's result carries beside its figures: the run opened now if no Started came (a
        short trial sends none), and the rows and pruner's reports no Progress carried."""
        if outcome.worker is None:  # stopped before it trained
            return
        self._on_started(Started(outcome.number, outcome.attempt, outcome.worker))
        if outcome.rows is not None or outcome.reports:
            from ..run import Rows

            self._on_progress(Progress(outcome.number, outcome.attempt,
                                       outcome.rows if outcome.rows is not None else Rows((), ()),
                                       tuple(outcome.reports)))

    def _tell(self):
        """Tell Optuna the trials whose runs are written (see _finish)."""
        from optuna.trial import TrialState

        while self._to_tell:
            ended = self._to_tell.popleft()
            self._finishing -= 1
            result = ended.result
            run_id = ended.run.run_id if ended.run is not None else None
            checkpoint = None
            if result.status == "finished" and run_id is not None:
                path = self.store.checkpoint_path(run_id)
                checkpoint = str(path) if path.exists() else None
            with self._lock:
                lost = tuple(item.view() for item in self._lost.get(ended.number, ()))
            result = dataclasses.replace(result, run_id=run_id, checkpoint=checkpoint, lost=lost)
            ended.trial.set_user_attr(RESULT, result.to_attrs())  # one journal write per trial
            if result.status == "cancelled":
                ended.trial.set_user_attr(REQUEUED, True)
            if ended.state == TrialState.COMPLETE:
                self.study.tell(ended.trial, ended.value)
            else:
                self.study.tell(ended.trial, state=ended.state)
            if result.status == "cancelled":
                self.study.enqueue_trial(ended.trial.params, skip_if_exists=False)
            self._record_result(ended.number, result)

    def _record_result(self, number, result):
        with self._lock:
            view = self._views[number]
            view.status, view.reason = result.status, result.reason
            view.test_cost, view.test_accuracy = result.test_cost, result.test_accuracy
            view.train_accuracy, view.seconds = result.train_accuracy, result.seconds
            view.train_cost, view.metric_value = result.train_cost, result.value
            view.run_id, view.checkpoint, view.lost = result.run_id, result.checkpoint, list(result.lost)
            self._lost.pop(number, None)
            view.curve, view.evaluations = thinned(view.curve), thinned(view.evaluations)
            view.ended_at = time.monotonic() - self._started
            if result.status == "finished" and view.value is not None and (
                    self.spec.better(view.value, self._best[-1][1] if self._best else None)):
                self._best.append((view.ended_at, view.value, view.test_accuracy))
