"""One Studio per browser session and page kind: the set-up and the run it trains.

What is Streamlit's stays here: the session cache, the set-up the widgets propose, messages for the
page. The run itself (its trainer, background thread, record in the run store and checkpoints) is a
`backprop.run.Run`, the same one `backprop train` and the sweeps use; pages read its typed `RunView`
and call the Studio's methods from button callbacks. The Studio lives in a session-scoped resource
cache whose `on_release` pauses its run when the browser session's websocket closes; the Studio is
then parked (`Parking`) for a reconnect of the same session, and released when none comes.
"""

import dataclasses
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from backprop.budget import memory_budget, network_bytes
from backprop.config import TrainConfig, preset
from backprop.errors import InputError
from backprop.owners import new_browser_token
from backprop.run import Run, RunView
from backprop.settings import DATA, LIVE
from backprop.threads import THREAD_PREFIX, active_training_threads, max_training_threads  # noqa: F401
from backprop.trainer import Trainer

TrainingView = RunView  # what the pages draw (the name the figure builders know)


class Studio:
    """Everything one browser session trains and shows; every method is safe from any thread."""

    def __init__(self, config=None, session_id=None, store=None, owner=None, reconnect_key=None):
        self.session_id = session_id or uuid.uuid4().hex[:8]
        self.reconnect_key = reconnect_key  # what its browser session finds it by after a reconnect (Parking)
        # Who may rename or delete the runs it records (backprop.owners): its browser session's token.
        self.owner = owner or new_browser_token()
        self.config = (config or preset("tutorial")).validated()
        self.pending = None  # a valid set-up that needs a Reset (architecture/data/init changed)
        self.data = None
        self._data_key = None
        self.run = None  # the Run of the network built now
        self.message = None  # (kind, text) for the page: "info", "warning", "error", "success"
        self.stop_reason = None
        self._store = store
        self._pace = None  # steps per second, or None: full speed
        self._lock = threading.RLock()

    def _warn(self, text):
        self.message = ("warning", text)

    @property
    def trainer(self):
        return self.run.trainer if self.run is not None else None

    @property
    def initial_params(self):
        """(W, b) at initialisation: histograms "now vs at init"."""
        return self.run.initial_params if self.run is not None else None

    @property
    def run_id(self):
        """The run store's id of the run being recorded (None before it trained)."""
        return self.run.run_id if self.run is not None else None

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
        """A new network and its run from a set-up (the current one, or the pending one)."""
        with self._lock:
            config = (config or self.pending or self.config).validated()
            data = self.load_data(config)  # a bad data choice fails here, before the run is touched
            trainer = Trainer.from_config(config, data)
            self.release()
            self.config, self.pending = config, None
            self.run = Run(config, trainer, store=self._store, source="app", on_warning=self._warn,
                           thread_name=THREAD_PREFIX + self.session_id, owner=self.owner)
            self.run.on_stop = self._on_stop
            self.run.set_pace(self._pace)
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
        self._pace = None if not steps_per_second else float(steps_per_second)
        if self.run is not None:
            self.run.set_pace(self._pace)

    @property
    def steps_per_second(self):
        return self._pace

    # -- training --------------------------------------------------------------------------
    @property
    def running(self):
        return self.run is not None and self.run.running

    def train(self):
        """Start or resume the background thread (up to the iteration budget)."""
        with self._lock:
            self.ensure_built()
            self.run.start(self.config.iterations)
            self.stop_reason = None
            self.message = None

    def pause(self):
        if self.run is not None:
            self.run.stop()

    def step(self, k=1):
        """k iterations now, in the caller's thread (pauses a running thread first)."""
        with self._lock:
            self.pause()
            trainer = self.ensure_built()
            if trainer.diverged is not None:
                raise InputError("training", "this run diverged; lower the learning rate and Reset")
            records = self.run.step(k)
            if trainer.diverged is not None:
                self._on_stop("diverged")
            return records

    def restore(self, config, network_params, history=None):
        """Continue from saved parameters (a checkpoint or a recorded run): pauses first."""
        with self._lock:
            self.build(config)
            self.run.restore(network_params, history)
            self.message = ("success", f"Restored a network at iteration {self.trainer.iteration}.")

    def keep_landscape(self, landscape):
        """Keep a computed loss landscape with the run (and its checkpoint)."""
        if self.run is not None:
            self.run.keep_landscape(landscape)

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
        """The browser session ended (or a new network replaces this one): stop the thread and
        close the run's record."""
        from .landscapes import release_landscapes

        release_landscapes(self)  # a loss landscape of this network stops with it
        if self.run is not None:
            self.run.stop()
            self.run.finish("stopped")

    # -- thread callbacks ------------------------------------------------------------------
    def _on_stop(self, reason):
        """The run's thread ended (the run has been marked already): tell the person why."""
        self.stop_reason = reason
        run = self.run
        if reason == "diverged" and run is not None and run.divergence is not None:
            self.message = ("error", run.explain_divergence() + " Then press Reset.")
        elif reason == "budget":
            self.message = ("success", f"Reached the budget of {self.config.iterations} iterations.")
        elif reason.startswith("error"):
            self.message = ("error", f"Training stopped: {reason[7:]}")

    # -- reading, for the page -------------------------------------------------------------
    def view(self):
        """A consistent RunView for drawing, or None before anything is built."""
        return self.run.view() if self.run is not None else None

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


def held_bytes(studio):
    """Bytes a paused Studio keeps: its data arrays, and its network's parameters with their initial
    copy and the optimizer's state (the step's scratch arrays are gone once it is paused)."""
    data, trainer = studio.data, studio.trainer
    held = 0 if data is None else data.nbytes
    if trainer is not None:
        network = trainer.network
        held += (2 + trainer.optimizer.state_arrays) * network_bytes(network.sizes, network.dtype)
    return held


RECONNECT_VARIABLE = "BACKPROP_RECONNECT_SECONDS"
DEFAULT_RECONNECT_SECONDS = 60.0
# Streamlit keeps a disconnected session for its reconnect 2 minutes (MemorySessionStorage's ttl):
# after that the tab comes back as a new session, so parking longer would only hold memory.
MOST_RECONNECT_SECONDS = 120.0


def reconnect_seconds():
    """How long a Studio whose websocket closed waits, paused, for its session to reconnect
    (BACKPROP_RECONNECT_SECONDS; 0: released at once; anything not a number: the default)."""
    try:
        seconds = float(os.environ.get(RECONNECT_VARIABLE, "").strip() or DEFAULT_RECONNECT_SECONDS)
    except ValueError:
        return DEFAULT_RECONNECT_SECONDS
    if math.isnan(seconds):
        return DEFAULT_RECONNECT_SECONDS
    return min(max(seconds, 0.0), MOST_RECONNECT_SECONDS)


def _log(text):
    print(f"backprop-studio: {text}", file=sys.stderr, flush=True)


@dataclasses.dataclass(eq=False)
class _Parked:
    studio: Studio
    since: float
    paused: threading.Event = dataclasses.field(default_factory=threading.Event)
    was_running: bool = False
    held: int = 0


class Parking:
    """Studios of browser sessions whose websocket closed, kept for a reconnect.

    Streamlit ends a session's resources when its websocket closes, whether the tab closed or the
    connection dropped (a busy server, a sleeping laptop, a Wi-Fi change) and the tab reconnects with
    the same session a moment later. Under load 27-30, 3 of 16 Playground tabs lost their websocket
    and came back to a new network at iteration 0 (benchmarks/bench_load.py --playground 16). So a
    closing session's run pauses at once (its training slot is free again as before) and its Studio
    waits here, keyed by its session (Streamlit's session id with the session's owner token) and
    its name: the reconnecting session takes it, and its other Studios, back and its run goes on;
    after `reconnect_seconds()` it is released like before. Parked Studios together keep at most
    one session's memory budget: past it, the oldest are released first.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._parked = {}  # key -> _Parked, oldest first

    def park(self, key, studio):
        """Called on Streamlit's event loop: the pausing (which waits for the run's current step)
        happens in a thread of its own."""
        seconds = reconnect_seconds()
        if key is None or seconds <= 0:
            _release_now(studio)
            return
        entry = _Parked(studio, time.monotonic())
        with self._lock:
            replaced = self._parked.pop(key, None)
            self._parked[key] = entry
        if replaced is not None and replaced.studio is not studio:  # never left paused and unreleased
            threading.Thread(target=self._release_when_paused, args=(replaced,), daemon=True,
                             name=f"backprop-release-{replaced.studio.session_id}").start()
        _log(f"session {studio.session_id} ended: its run pauses, its Studio waits {seconds:g} s for a "
             "reconnect")
        threading.Thread(target=self._pause, args=(key, entry, seconds), daemon=True,
                         name=f"backprop-park-{studio.session_id}").start()

    def _pause(self, key, entry, seconds):
        try:
            entry.was_running = entry.studio.running
            entry.studio.pause()
            entry.held = held_bytes(entry.studio)
        finally:
            entry.paused.set()
        for older in self._over_budget():
            _log(f"session {older.studio.session_id}: parked Studios are over the memory budget; the "
                 "oldest is released")
            older.studio.release()
        timer = threading.Timer(seconds, self._expire, args=(key, entry))
        timer.name, timer.daemon = f"backprop-park-{entry.studio.session_id}", True
        timer.start()

    def _over_budget(self):
        """The oldest parked Studios (never the newest) while all together keep more than the budget."""
        with self._lock:
            entries = list(self._parked.items())
            total, budget, dropped = sum(entry.held for _, entry in entries), memory_budget(), []
            for key, entry in entries[:-1]:
                if total <= budget:
                    break
                del self._parked[key]
                total -= entry.held
                dropped.append(entry)
        return dropped

    def _expire(self, key, entry):
        with self._lock:
            if self._parked.get(key) is not entry:
                return  # taken back, or released for the budget
            del self._parked[key]
        _log(f"session {entry.studio.session_id}: no reconnect; its Studio is released")
        entry.studio.release()

    def reclaim(self, key):
        """The Studio parked under `key` (its run training again if it was), or None."""
        with self._lock:
            entry = self._parked.pop(key, None) if key is not None else None
        if entry is None:
            return None
        entry.paused.wait(timeout=60)
        studio, away = entry.studio, time.monotonic() - entry.since
        _log(f"session {studio.session_id} reconnected after {away:.1f} s: its Studio is back")
        if entry.was_running:
            try:
                studio.train()
                studio.message = ("info", f"The connection dropped for {away:.0f} s; training paused "
                                          "meanwhile and goes on.")
            except InputError as error:
                studio.message = ("warning", f"The connection dropped for {away:.0f} s and training "
                                             f"paused; it could not start again: {error}")
        return studio

    @staticmethod
    def _release_when_paused(entry):
        entry.paused.wait(timeout=60)
        entry.studio.release()

    def names(self, session):
        """The names of the Studios parked for a session (the first part of their keys)."""
        with self._lock:
            return [name for parked_session, name in self._parked if parked_session == session]

    def __len__(self):
        with self._lock:
            return len(self._parked)

    def release_all(self):
        """Release every parked Studio now (tests; a server shutting down)."""
        with self._lock:
            entries, self._parked = list(self._parked.values()), {}
        for entry in entries:
            self._release_when_paused(entry)


PARKING = Parking()


def _release_now(studio):
    """Release a Studio in a thread of its own. Streamlit calls on_release on its event loop, and a
    release waits for the run's record (its checkpoint) to be written: 16 Playground tabs closing at
    once held the server's other sessions for tens of seconds and left 14 runs training a minute
    later (benchmarks/bench_load.py --playground 16)."""
    _log(f"session {studio.session_id} ended: its Studio is released")
    threading.Thread(target=studio.release, name=f"backprop-release-{studio.session_id}", daemon=True).start()


def _release_studio(studio):
    """The browser session's websocket closed (its tab closed, or the connection dropped)."""
    PARKING.park(studio.reconnect_key, studio)


def _session_id():
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is not None:
            return ctx.session_id.replace("-", "")[:8]
    except Exception:
        pass
    return None


def _reconnect_key(name):
    """(the session, Studio name): what a reconnecting session finds its Studio by. The session is
    Streamlit's session id with this session's owner token, which lives in its session state: a
    reconnect keeps both, and a session id used again by another session (AppTest gives every test
    the same one) does not find the Studio of the one before."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return (f"{ctx.session_id} {owner_token()}", name) if ctx is not None else None
    except Exception:
        return None


OWNER_KEY = "backprop_owner_token"


def owner_token():
    """This browser session's owner token (backprop.owners): made on first use, kept in its session
    state. Streamlit's session is one tab, so each tab (and a reloaded tab) is its own owner; the
    token never leaves the server."""
    import streamlit as st

    if OWNER_KEY not in st.session_state:
        st.session_state[OWNER_KEY] = new_browser_token()
    return st.session_state[OWNER_KEY]


def _make_cached_studio():
    import streamlit as st

    @st.cache_resource(scope="session", on_release=_release_studio, show_spinner=False)
    def session_studio(name):
        key = _reconnect_key(name)
        studio = PARKING.reclaim(key)
        if studio is None:
            session = _session_id()
            studio = Studio(session_id=f"{session}-{name}" if session and name != "train" else session,
                            owner=owner_token(), reconnect_key=key)
        return studio

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
    studio = _cached_studio(name)
    key = studio.reconnect_key
    if key is not None and len(PARKING):  # a reconnected session takes its other pages' Studios back too
        for other in PARKING.names(key[0]):
            _cached_studio(other)
    return studio
