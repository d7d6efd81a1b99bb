"""One Studio per browser session: the set-up, the trainer and the thread that trains it.

Streamlit kills a script mid-loop when a person clicks, so training never runs in the script.
A `TrainingThread` loops `trainer.step(1)` in the background and never calls `st.*`; the page
only reads lock-protected snapshots and calls the Studio's methods from button callbacks.
The Studio lives in a session-scoped resource cache whose `on_release` stops the thread when the
browser session ends. A server-wide cap keeps a few sessions from taking every core.
"""

import dataclasses
import os
import sys
import threading
import time
import uuid
from collections import deque

import numpy as np

from backprop.config import TrainConfig, preset
from backprop.errors import InputError
from backprop.paths import studio_home
from backprop.trainer import Trainer

THREAD_PREFIX = "backprop-train-"
# Changing these needs a new network (a Reset); every other field applies at the next step.
LIVE_FIELDS = ("learning_rate", "lr_schedule", "momentum", "beta1", "beta2", "l2", "optimizer",
               "iterations", "eval_every")
DATA_FIELDS = ("dataset", "digits", "subset", "data_path", "seed", "dtype")


def max_training_threads():
    """Server-wide cap on concurrent training threads (env BACKPROP_MAX_TRAINING_THREADS, default 4)."""
    try:
        return max(1, int(os.environ.get("BACKPROP_MAX_TRAINING_THREADS", "4")))
    except ValueError:
        return 4


_slots_lock = threading.Lock()
_active_threads = set()  # names of training threads that hold a slot


def active_training_threads():
    """How many training threads run in this server process right now (all sessions)."""
    with _slots_lock:
        return len(_active_threads)


def _log_thread_count():
    """One line in the server's log per start/stop, so a test (or an operator) can count threads."""
    print(f"backprop-studio: training threads running: {len(_active_threads)}", file=sys.stderr,
          flush=True)


def _take_slot(name):
    with _slots_lock:
        limit = max_training_threads()
        if len(_active_threads) >= limit:
            raise InputError("training", f"the server is already training {limit} networks at once "
                                         "(its limit, BACKPROP_MAX_TRAINING_THREADS); wait for one "
                                         "to finish or pause it, then press Train again")
        _active_threads.add(name)
        _log_thread_count()


def _free_slot(name):
    with _slots_lock:
        _active_threads.discard(name)
        _log_thread_count()


class TrainingThread:
    """Start/pause control for one background loop of `trainer.step(1)`.

    A thread lives only while training runs: Pause (or the budget, or a divergence) ends it, so a
    paused session costs no thread. `on_records(records)` is called after every step, in the
    thread, and `on_stop(reason)` once when the loop ends.
    """

    def __init__(self, name, on_records, on_stop):
        self.name = name
        self.on_records = on_records
        self.on_stop = on_stop
        self._run = threading.Event()
        self._thread = None
        self._rates = deque(maxlen=64)  # (time, iteration) samples for iterations/s
        self.started_at = None

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self, trainer, budget):
        if self.running:
            return
        _take_slot(self.name)
        self._run.set()
        self._rates.clear()
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, args=(trainer, budget), name=self.name,
                                        daemon=True)
        self._thread.start()

    def stop(self, wait=True):
        """Ask the loop to end after its current step; with wait, until it has."""
        self._run.clear()
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def iterations_per_second(self):
        """Recent wall-clock rate (what a person sees), over the last few seconds."""
        samples = list(self._rates)
        if len(samples) < 2:
            return 0.0
        (t0, i0), (t1, i1) = samples[0], samples[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0

    def _loop(self, trainer, budget):
        reason = "paused"
        try:
            self._rates.append((time.perf_counter(), trainer.iteration))
            while self._run.is_set():
                if trainer.iteration >= budget:
                    reason = "budget"
                    break
                records = trainer.step(1)
                now = time.perf_counter()
                if not self._rates or now - self._rates[-1][0] > 0.1:
                    self._rates.append((now, trainer.iteration))
                self.on_records(records)
                if trainer.diverged is not None:
                    reason = "diverged"
                    break
        except Exception as error:  # never die silently: the page shows what happened
            reason = f"error: {error}"
        finally:
            self._run.clear()
            _free_slot(self.name)
            self.on_stop(reason)


class Studio:
    """Everything one browser session trains and shows; every method is safe from any thread."""

    def __init__(self, config=None, session_id=None, store=None):
        self.session_id = session_id or uuid.uuid4().hex[:8]
        self.config = (config or preset("tutorial")).validated()
        self.pending = None  # a valid set-up that needs a Reset (architecture/data/init changed)
        self.data = None
        self._data_key = None
        self.trainer = None
        self.initial_params = None  # (W, b) at initialisation: histograms "now vs at init"
        self.run_id = None
        self._store = store
        self._recorder = None
        self._run_stopped = False  # the open run is marked stopped (paused); Train marks it running
        self._saved = None  # (run_id, iteration) of the last checkpoint written for a run
        self.message = None  # (kind, text) for the page: "info", "warning", "error", "success"
        self.stop_reason = None
        self._lock = threading.RLock()
        self.runner = TrainingThread(THREAD_PREFIX + self.session_id, self._on_records, self._on_stop)

    # -- data and building ---------------------------------------------------------------
    def load_data(self, config=None):
        """The Dataset for a set-up, loaded once per distinct data choice."""
        from backprop.data import load_task

        config = config or self.config
        key = tuple(getattr(config, name) for name in DATA_FIELDS)
        if key != self._data_key:
            self.data = load_task(dataset=config.dataset, digits=config.digits, subset=config.subset,
                                  seed=config.seed, dtype=config.dtype, path=config.data_path)
            self._data_key = key
        return self.data

    def build(self, config=None):
        """A new network and trainer from a set-up (the current one, or the pending one)."""
        with self._lock:
            config = (config or self.pending or self.config).validated()
            data = self.load_data(config)  # a bad data choice fails here, before the run is touched
            trainer = Trainer.from_config(config, data)
            self.pause()
            self._close_run("stopped")
            self.config, self.pending, self.trainer = config, None, trainer
            self.initial_params = list(trainer.network.params)
            self.stop_reason = None
            return trainer

    def ensure_built(self):
        return self.trainer if self.trainer is not None else self.build()

    def reset(self):
        """Back to iteration 0 with the pending set-up if there is one, else the current one."""
        self.build()
        self.message = ("info", "Reset: a fresh network at iteration 0.")

    # -- set-up changes --------------------------------------------------------------------
    def propose(self, config):
        """Take a valid set-up from the sidebar: live knobs apply at the next step, the rest waits
        for a Reset. Returns the names of the fields that wait."""
        config = config.validated()
        with self._lock:
            if self.trainer is None:  # nothing built yet: the whole set-up applies at once
                self.config, self.pending = config, None
                return []
            waiting = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in LIVE_FIELDS
                       and getattr(config, f.name) != getattr(self.config, f.name)]
            self._apply_live(self.trainer, config)
            live = {name: getattr(config, name) for name in LIVE_FIELDS}
            self.config = dataclasses.replace(self.config, **live)
            self.pending = config if waiting else None
            return waiting

    def _apply_live(self, trainer, config):
        with trainer.lock:
            if config.optimizer != trainer.optimizer.name:
                trainer.set_optimizer(config.optimizer, **config.optimizer_knobs())
            else:
                for name, value in config.optimizer_knobs().items():
                    trainer.set_knob(name, value)
            trainer.set_knob("l2", config.l2)
            trainer.eval_every = config.eval_every
            trainer.set_schedule(config.lr_schedule, config.iterations)  # a cosine decays over the budget

    # -- training --------------------------------------------------------------------------
    @property
    def running(self):
        return self.runner.running

    def train(self):
        """Start or resume the background thread (up to the iteration budget)."""
        with self._lock:
            trainer = self.ensure_built()
            if trainer.diverged is not None:
                raise InputError("training", "this run diverged; lower the learning rate and press "
                                             "Reset to start again")
            if trainer.iteration >= self.config.iterations:
                raise InputError("iterations", f"the budget of {self.config.iterations} iterations is "
                                               "reached; raise it to train on")
            self._open_run()
            self._mark_running()
            self.stop_reason = None
            self.message = None
            self.runner.start(trainer, self.config.iterations)

    def pause(self):
        self.runner.stop(wait=True)

    def step(self, k=1):
        """k iterations now, in the caller's thread (pauses a running thread first)."""
        with self._lock:
            self.pause()
            trainer = self.ensure_built()
            if trainer.diverged is not None:
                raise InputError("training", "this run diverged; lower the learning rate and Reset")
            self._open_run()
            records = trainer.step(k)
            self._on_records(records)
            if trainer.diverged is not None:
                self._on_stop("diverged")
            else:
                self._flush_run(status="stopped")  # not training: a paused run with its checkpoint
            return records

    def restore(self, config, network_params, history=None):
        """Continue from saved parameters (a checkpoint or a recorded run): pauses first."""
        with self._lock:
            self.build(config)
            self.trainer.network.set_params(network_params)
            if history is not None and history.n_layers == self.trainer.network.n_layers:
                self.trainer.history = history
                last = history.last()
                if last is not None:
                    self.trainer.iteration = last["iteration"] + 1
                    self.trainer.samples_seen = int(round(last["epoch"] * len(self.trainer.x_train)))
            self.message = ("success", f"Restored a network at iteration {self.trainer.iteration}.")

    def release(self):
        """The browser session ended: stop the thread and close the run record."""
        self.pause()
        self._close_run("stopped")

    # -- thread callbacks ------------------------------------------------------------------
    def _on_records(self, records):
        recorder = self._recorder
        if recorder is not None:
            try:
                recorder.add(records)
            except Exception as error:  # a full disk must not stop training
                self._recorder = None
                self.message = ("warning", f"Run history is no longer recorded: {error}")

    def _on_stop(self, reason):
        self.stop_reason = reason
        trainer = self.trainer
        if reason == "diverged" and trainer is not None and trainer.diverged is not None:
            self.message = ("error", divergence_text(trainer.diverged, self.config.learning_rate))
            self._close_run("diverged")
        elif reason == "budget":
            self.message = ("success", f"Reached the budget of {self.config.iterations} iterations.")
            self._close_run("finished")
        elif reason.startswith("error"):
            self.message = ("error", f"Training stopped: {reason[7:]}")
            self._close_run("stopped")
        else:
            self._flush_run(status="stopped")

    # -- run records -----------------------------------------------------------------------
    def _runs(self):
        if self._store is None:
            from backprop.runs import RunStore

            self._store = RunStore()
        return self._store

    def _open_run(self):
        if self._recorder is not None:
            return
        try:
            from backprop.runs import RunRecorder

            store = self._runs()
            self.run_id = store.create(self.config.to_dict(), source="app")
            self._recorder = RunRecorder(store, self.run_id)
            self._run_stopped = False
            if self.trainer is not None and self.trainer.iteration:
                self._recorder.add([{**row, "layers": None} for row in self.trainer.history.rows()])
        except Exception as error:  # recording is a convenience; training goes on without it
            self._recorder = None
            self.message = ("warning", f"This run is not recorded: {error}")

    def _metrics(self):
        trainer = self.trainer
        if trainer is None:
            return {}
        last = trainer.history.last() or {}
        metrics = {"iterations": trainer.iteration, "cost": last.get("cost")}
        if trainer.history.evaluations:
            metrics.update({k: v for k, v in trainer.history.evaluations[-1].items()
                            if k != "iteration"})
        return metrics

    def _mark_running(self):
        """Train after a Pause goes on in the same run: it is 'running' again."""
        recorder = self._recorder
        if recorder is None or not self._run_stopped:
            return
        try:
            recorder.store.mark_running(recorder.run_id)
            self._run_stopped = False
        except Exception as error:
            self.message = ("warning", f"Run history could not be saved: {error}")

    def _save_checkpoint(self, run_id):
        """The trained network of a run, as studio_home()/checkpoints/run-<id>.npz, so Compare can
        load it back; written again only when the run has trained since. Returns the path."""
        from backprop.checkpoint import save_checkpoint

        trainer = self.trainer
        path = studio_home() / "checkpoints" / f"run-{run_id}.npz"
        if trainer is None:
            return None
        with trainer.lock:  # the thread has stopped (or is this one): nothing changes meanwhile
            if self._saved != (run_id, trainer.iteration) or not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(path, trainer.network, config=self.config, history=trainer.history)
                self._saved = (run_id, trainer.iteration)
        return str(path)

    def _flush_run(self, status=None):
        recorder = self._recorder
        if recorder is None:
            return
        try:
            recorder.flush()
            if status is not None:  # paused: mark it stopped; training on keeps the same run
                recorder.store.finish(recorder.run_id, self._metrics(), status=status,
                                      checkpoint_path=self._save_checkpoint(recorder.run_id))
                self._run_stopped = True
        except Exception as error:
            self.message = ("warning", f"Run history could not be saved: {error}")

    def _close_run(self, status):
        recorder, self._recorder = self._recorder, None
        if recorder is None or recorder.closed:
            return
        try:
            recorder.close(self._metrics(), status=status,
                           checkpoint_path=self._save_checkpoint(recorder.run_id))
        except Exception as error:
            self.message = ("warning", f"Run history could not be saved: {error}")

    # -- reading, for the page -------------------------------------------------------------
    def view(self):
        """A consistent snapshot for drawing; arrays are copies (or never mutated)."""
        trainer = self.trainer
        if trainer is None:
            return None
        with trainer.reading():
            snap = trainer.snapshot()
            history = trainer.history
            snap.update(iterations=history.iterations, costs=history.costs,
                        dW_norm=history.layer_stat("dW_norm"),
                        dW_mean_abs=history.layer_stat("dW_mean_abs"),
                        update_ratio=history.layer_stat("update_ratio"),
                        evaluations=list(history.evaluations), markers=list(history.markers))
        snap["running"] = self.running
        snap["iterations_per_second"] = self.runner.iterations_per_second() if snap["running"] else 0.0
        snap["budget"] = self.config.iterations
        snap["image_shape"] = getattr(trainer.data, "image_shape", None)
        snap["initial_params"] = self.initial_params
        return snap

    def gradients(self, max_samples=None, params=None):
        """(dW, db) per layer for the current parameters (or `params`) on the training set (or
        its first max_samples images): for showing dW next to W."""
        trainer = self.trainer
        if trainer is None:
            return None
        with trainer.reading():
            network = trainer.network.copy()
            X, Y, l2 = trainer.x_train, trainer.y_train, trainer.l2
        if params is not None:
            network.set_params(params)
        if max_samples is not None:
            X, Y = X[:max_samples], Y[:max_samples]
        with np.errstate(all="ignore"):
            _, grads = network.loss_and_gradients(X, Y, l2=l2)
        return grads

    def initial_gradients(self, max_samples=None):
        """The gradients at initialisation (computed once per build)."""
        key = (id(self.initial_params), max_samples)
        if getattr(self, "_initial_gradients_key", None) != key:
            self._initial_gradients = self.gradients(max_samples, params=self.initial_params)
            self._initial_gradients_key = key
        return self._initial_gradients


def divergence_text(diverged, learning_rate):
    return (f"Training diverged at iteration {diverged['iteration']}: the cost or a gradient became "
            f"NaN/Inf, first in layer {diverged['layer']}. The parameters from before that step are "
            f"kept. Try a smaller learning rate (now {learning_rate:g}; e.g. {learning_rate / 10:g}), "
            "then press Reset.")


def _release_studio(studio):
    studio.release()


def _session_id():
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is not None:
            return ctx.session_id.replace("-", "")[:8]
    except Exception:
        pass
    return None


def _make_cached_studio():
    import streamlit as st

    @st.cache_resource(scope="session", on_release=_release_studio, show_spinner=False)
    def session_studio():
        return Studio(session_id=_session_id())

    return session_studio


_cached_studio = None


def route_through_app():
    """Make a link straight to a page (e.g. /compare) run through app.py's navigation.

    Streamlit treats a `pages/` folder as an old-style multipage app until some script calls
    st.navigation, so on a freshly started server such a link would run the page alone, without
    app.py's menu and layout. Leave that mode and run again, this time through app.py.
    Every page calls this first.
    """
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def get_studio():
    """This browser session's Studio (created on first use, released when the session ends)."""
    global _cached_studio
    if _cached_studio is None:
        _cached_studio = _make_cached_studio()
    return _cached_studio()
