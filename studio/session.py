"""One Studio per browser session and page kind: the set-up, the trainer and its thread.

The page only reads typed snapshots (`TrainingView`) and calls the Studio's methods from button
callbacks; a `TrainingThread` (studio.threads) trains in the background and a `SessionRecorder`
(studio.recorder) keeps the run store up to date. The Studio lives in a session-scoped resource
cache whose `on_release` stops the thread when the browser session ends.
"""

import dataclasses
import tempfile
import threading
import uuid
from pathlib import Path

import numpy as np

from backprop.config import TrainConfig, preset
from backprop.errors import InputError
from backprop.settings import DATA, LIVE
from backprop.trainer import Trainer

from .recorder import SessionRecorder
from .threads import THREAD_PREFIX, TrainingThread, active_training_threads, max_training_threads  # noqa: F401


@dataclasses.dataclass(frozen=True)
class TrainingView:
    """What a page draws of a run, read at one moment under the trainer's lock. Arrays are
    copies, or arrays the trainer never changes again."""

    iteration: int  # steps done
    epoch: float
    seconds: float  # time spent training
    params: list  # [(W, b)] per layer, now
    initial_params: list | None  # [(W, b)] at initialisation
    knobs: dict  # the optimizer's settings now
    l2: float
    l1: float
    diverged: dict | None
    last: dict | None  # the last step's row (iteration, epoch, cost)
    iterations: np.ndarray  # the recorded steps' numbers
    costs: np.ndarray
    dW_norm: np.ndarray  # (steps, layers)
    dW_mean_abs: np.ndarray
    update_ratio: np.ndarray
    unit_health: np.ndarray  # (steps, hidden layers, 2): dead and saturated shares (backprop.health)
    activation: str  # the hidden layers' activation (what unit health can show)
    evaluations: list  # {iteration (steps done), test_cost, test_accuracy}
    markers: list  # {iteration, setting, old, new}
    running: bool
    iterations_per_second: float
    budget: int
    image_shape: tuple | None


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
        self.message = None  # (kind, text) for the page: "info", "warning", "error", "success"
        self.stop_reason = None
        self._lock = threading.RLock()
        self.recorder = SessionRecorder(self, warn=self._warn, store=store)
        self.runner = TrainingThread(THREAD_PREFIX + self.session_id, self._on_records, self._on_stop)

    def _warn(self, text):
        self.message = ("warning", text)

    @property
    def run_id(self):
        """The run store's id of the run being recorded (or last recorded)."""
        return self.recorder.run_id

    # -- data and building ---------------------------------------------------------------
    def load_data(self, config=None):
        """The Dataset for a set-up, loaded once per distinct data choice (settings.DATA)."""
        from .data_files import resolve_upload

        config = config or self.config
        key = tuple(getattr(config, name) for name in DATA)
        if key != self._data_key:
            self.data = config.load_data(path=resolve_upload(config.upload) if config.upload else None)
            self._data_key = key
        return self.data

    def build(self, config=None):
        """A new network and trainer from a set-up (the current one, or the pending one)."""
        with self._lock:
            config = (config or self.pending or self.config).validated()
            data = self.load_data(config)  # a bad data choice fails here, before the run is touched
            trainer = Trainer.from_config(config, data)
            self.pause()
            self.recorder.close("stopped")
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
        """Take a valid set-up from the sidebar: live settings apply at the next step, the rest
        waits for a Reset. Returns the names of the settings that wait."""
        config = config.validated()
        with self._lock:
            if self.trainer is None:  # nothing built yet: the whole set-up applies at once
                self.config, self.pending = config, None
                return []
            waiting = self.waiting_settings(config)
            self.trainer.apply_live(config)
            self.config = dataclasses.replace(self.config, **{name: getattr(config, name) for name in LIVE})
            self.pending = config if waiting else None
            return waiting

    def waiting_settings(self, config=None):
        """The settings of `config` (the pending set-up) that differ and need a Reset."""
        config = config or self.pending
        if config is None:
            return []
        return [f.name for f in dataclasses.fields(TrainConfig) if f.name not in LIVE
                and getattr(config, f.name) != getattr(self.config, f.name)]

    def set_speed(self, steps_per_second):
        """Full speed (None) or a slow-motion pace, applied at once, even while training."""
        self.runner.steps_per_second = None if not steps_per_second else float(steps_per_second)

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
            opened = self.recorder.open()
            try:
                self.runner.start(trainer, self.config.iterations)
            except InputError:  # the server's thread cap: no empty run left 'running' behind
                if opened and not trainer.iteration:
                    self.recorder.discard()
                else:
                    self.recorder.pause()
                raise
            self.recorder.mark_running()
            self.stop_reason = None
            self.message = None

    def pause(self):
        self.runner.stop(wait=True)

    def step(self, k=1):
        """k iterations now, in the caller's thread (pauses a running thread first)."""
        with self._lock:
            self.pause()
            trainer = self.ensure_built()
            if trainer.diverged is not None:
                raise InputError("training", "this run diverged; lower the learning rate and Reset")
            self.recorder.open()
            records = trainer.step(k)
            self._on_records(records)
            if trainer.diverged is not None:
                self._on_stop("diverged")
            else:
                self.recorder.pause()  # not training: a paused run with its checkpoint
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

    def restore_checkpoint(self, file, config=None):
        """Continue from a checkpoint file (checked, never unpickled): its set-up if it has one,
        else `config`, else the current one."""
        from backprop.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(file)
        self.restore(checkpoint.config or config or self.config, checkpoint.network.params,
                     checkpoint.history)

    def load_run(self, config, checkpoint_path=None, label="This run"):
        """A recorded run (Compare runs, a sweep's trial) on the Train page: its trained network when
        its checkpoint is there, else its set-up at iteration 0."""
        if checkpoint_path:
            self.restore_checkpoint(checkpoint_path, config)
        else:
            self.build(config)
            self.message = ("info", f"{label} has no saved weights: its set-up is loaded at iteration 0, "
                                    "ready to train.")

    def checkpoint_bytes(self):
        """The network now, as a checkpoint file's bytes (for a download)."""
        from backprop.checkpoint import save_checkpoint

        trainer = self.trainer
        with trainer.lock:
            network, history = trainer.network.copy(), trainer.history
        with tempfile.TemporaryDirectory() as folder:
            path = save_checkpoint(Path(folder) / "network.npz", network, config=self.config, history=history)
            return Path(path).read_bytes()

    def history_csv(self):
        """The run's history as CSV text (empty before anything is built)."""
        from backprop.history import history_csv

        trainer = self.trainer
        if trainer is None:
            return ""
        with trainer.reading():
            return history_csv(trainer.history)

    def release(self):
        """The browser session ended: stop the thread and close the run record."""
        self.pause()
        self.recorder.close("stopped")

    # -- thread callbacks ------------------------------------------------------------------
    def _on_records(self, records):
        self.recorder.add(records)

    def _on_stop(self, reason):
        self.stop_reason = reason
        trainer = self.trainer
        if reason == "diverged" and trainer is not None and trainer.diverged is not None:
            self.message = ("error", divergence_text(trainer.diverged, self.config.learning_rate))
            self.recorder.close("diverged")
        elif reason == "budget":
            self.message = ("success", f"Reached the budget of {self.config.iterations} iterations.")
            self.recorder.close("finished")
        elif reason.startswith("error"):
            self.message = ("error", f"Training stopped: {reason[7:]}")
            self.recorder.close("stopped")
        else:
            self.recorder.pause()

    # -- reading, for the page -------------------------------------------------------------
    def view(self):
        """A consistent TrainingView for drawing, or None before anything is built."""
        trainer = self.trainer
        if trainer is None:
            return None
        with trainer.reading():
            history = trainer.history
            running = self.running
            return TrainingView(
                iteration=trainer.iteration, epoch=trainer.epoch, seconds=trainer.seconds,
                params=list(trainer.network.params), initial_params=self.initial_params,
                knobs=trainer.optimizer.knobs(), l2=trainer.l2, l1=trainer.l1, diverged=trainer.diverged,
                last=history.last(), iterations=history.iterations, costs=history.costs,
                dW_norm=history.layer_stat("dW_norm"), dW_mean_abs=history.layer_stat("dW_mean_abs"),
                update_ratio=history.layer_stat("update_ratio"), unit_health=history.unit_health(),
                activation=trainer.network.activation, evaluations=list(history.evaluations),
                markers=list(history.markers), running=running,
                iterations_per_second=self.runner.iterations_per_second() if running else 0.0,
                budget=self.config.iterations, image_shape=getattr(trainer.data, "image_shape", None))

    def gradients(self, max_samples=None, params=None):
        """(dW, db) per layer for the current parameters (or `params`) on the training set (or
        its first max_samples images): for showing dW next to W."""
        trainer = self.trainer
        if trainer is None:
            return None
        with trainer.reading():
            network = trainer.network.copy()
            X, Y, penalties = trainer.x_train, trainer.y_train, trainer.penalties()
        if params is not None:
            network.set_params(params)
        if max_samples is not None:
            X, Y = X[:max_samples], Y[:max_samples]
        with np.errstate(all="ignore"):
            _, grads = network.loss_and_gradients(X, Y, **penalties)
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
    def session_studio(name):
        session = _session_id()
        return Studio(session_id=f"{session}-{name}" if session and name != "train" else session)

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


def get_studio(name="train"):
    """This browser session's Studio of that name (created on first use, released when the
    session ends): "train" for the Train page and the pages that look at its network,
    "playground" for the Playground, so each keeps its own run."""
    global _cached_studio
    if _cached_studio is None:
        _cached_studio = _make_cached_studio()
    return _cached_studio(name)
