"""Loss landscapes for the pages: one computed for a Studio's network off the script thread and
kept with its run, and what a recorded run's checkpoint keeps of its path.

A landscape job is checked against the session's memory budget before anything is allocated (with
the memory its training takes), one Studio runs at most one at a time, and it ends within a second
of Cancel, of a Reset or of the end of its browser session: `release_landscapes(studio)` (which
Studio.release calls) cancels it, and a job started from a page is tied to its browser session
too (Streamlit imported lazily: no Streamlit needed here otherwise)."""

import dataclasses
import threading
import weakref

import numpy as np

from backprop.budget import memory_budget
from backprop.checkpoint import load_checkpoint
from backprop.errors import InputError
from backprop.landscape import (
    KINDS,
    Landscape,
    LandscapeJob,
    check_landscape_memory,
    check_resolution,
    evaluation_sample,
    landscape_bytes,
    largest_batch_beside,
    pca_plane,
    random_plane,
)
from backprop.optimizers import OPTIMIZERS

CANCEL_WAIT = 1.0  # seconds release_landscapes waits for a cancelled job's thread to end


class LandscapeTask:
    """A loss landscape of a Studio's network, computed on a background thread (a LandscapeJob), so
    a page can show its progress and cancel it; once complete, `keep()` keeps it with the run it
    was computed for. Start one with `start_landscape`."""

    def __init__(self, studio, trainer, job=None):
        self._studio = studio
        self._trainer = trainer  # the run it belongs to
        self._job = job  # set by start_landscape once the plane is made (see _start)
        self._cancelled = False
        self._kept = False

    def _start(self, job):
        """Take the job; one cancelled while its plane was being made stops at once."""
        self._job = job
        if self._cancelled:
            job.cancel()

    # -- progress --------------------------------------------------------------------------
    @property
    def running(self):
        return self._job is not None and self._job.running

    @property
    def kind(self):
        return self._job.kind  # "random" or "pca"

    @property
    def resolution(self):
        return self._job.resolution  # grid points per side

    @property
    def done(self):
        return self._job.done  # grid rows computed

    @property
    def total(self):
        return self._job.total

    @property
    def error(self):
        """The exception that stopped it, or None."""
        return self._job.error

    @property
    def result(self):
        """The Landscape once finished (complete, or cancelled with NaN where not computed)."""
        return self._job.result

    def cancel(self):
        self._cancelled = True
        job = self._job
        if job is not None:
            job.cancel()

    def wait(self, timeout=None):
        """Until it has finished (or `timeout` seconds); returns whether it has."""
        return self._job is None or self._job.wait(timeout)

    # -- the run it belongs to -----------------------------------------------------------------
    def belongs_to(self, studio):
        """Whether it was computed for the network `studio` trains now (not one before a Reset or
        a newly loaded run)."""
        return studio.trainer is self._trainer

    def keep(self):
        """Keep a finished, complete landscape with its run (Studio.keep_landscape): in the run's
        history, so its checkpoint carries it to Compare. Once only, and only while the Studio still
        trains the network it was computed for; returns whether this call kept it."""
        landscape = self.result
        if self._kept or landscape is None or not landscape.complete or not self.belongs_to(self._studio):
            return False
        self._kept = True
        self._studio.keep_landscape(landscape)
        return True


# -- one job per Studio, ended with it ----------------------------------------------------------------
_tasks = weakref.WeakValueDictionary()  # id(studio) -> its LandscapeTask (the page holds the task)
_tasks_lock = threading.Lock()


def release_landscapes(studio, wait=0.0):
    """Cancel the Studio's landscape job, if one runs (its thread ends within a second), and wait up
    to `wait` seconds for that: what Studio.release (a Reset, a closed tab) calls, on Streamlit's
    event loop when a session ends, so it does not wait by default. Returns whether none runs now."""
    with _tasks_lock:
        task = _tasks.pop(id(studio), None)
    if task is None:
        return True
    task.cancel()
    return task.wait(wait)


def running_landscape(studio):
    """The Studio's landscape task while its job runs, else None."""
    task = _tasks.get(id(studio))
    return task if task is not None and task.running else None


def _register(studio, task):
    with _tasks_lock:
        _tasks[id(studio)] = task
    _end_with_browser_session(studio)


_session_watch = None


class _SessionWatch:
    """Held in a session-scoped resource: when Streamlit releases it (the browser session ended),
    the Studio's landscape job is cancelled."""

    def __init__(self, studio):
        self.studio = weakref.ref(studio)

    def release(self):
        studio = self.studio()
        if studio is not None:
            release_landscapes(studio)


def _end_with_browser_session(studio):
    """Inside a Streamlit script run, tie the Studio's landscape jobs to the browser session: its
    end (a closed tab) cancels them, like it releases the Studio itself."""
    global _session_watch
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx() is None:
            return
        if _session_watch is None:
            import streamlit as st

            @st.cache_resource(scope="session", on_release=_SessionWatch.release, show_spinner=False)
            def session_watch(_studio, studio_key):
                return _SessionWatch(_studio)
            _session_watch = session_watch
        _session_watch(studio, id(studio))
    except Exception:  # noqa: S110 (no browser session: Studio.release still ends the job)
        pass


# -- starting one ---------------------------------------------------------------------------------
def check_landscape_fits(studio, inspection, kind, resolution):
    """Refuse (InputError "landscape") a job past the session's memory budget: the job's own memory
    (backprop.landscape.landscape_bytes) beside what the Studio's training takes, with what would
    fit (the random plane, a smaller batch size). Returns the job's bytes."""
    network, data = inspection.network, inspection.data
    sizes, dtype = list(network.sizes), network.dtype
    n_train = len(data.y_train)
    config = studio.config
    try:
        training = config.check_memory(sizes[0], n_train)
    except InputError:  # the budget shrank since it was built: the training takes all of it
        training = memory_budget()
    snapshots = len(inspection.snapshots) if kind == "pca" else 0
    samples = len(evaluation_sample(n_train))
    needed = landscape_bytes(sizes, dtype, kind, samples, snapshots)
    advice = ""
    if list(config.layers) == sizes[1:]:
        state = OPTIMIZERS[config.optimizer].state_arrays
        batch = largest_batch_beside(sizes, dtype, state, n_train, needed)
        now = n_train if config.batch_size is None else config.batch_size
        if 0 < batch < now:
            advice = f"with a batch size of at most {batch:,} (set it, then Reset) both fit"
    return check_landscape_memory(sizes, dtype, kind, resolution, samples, snapshots, beside=training,
                                  advice=advice)


def start_landscape(studio, inspection, kind, resolution, seed=0):
    """Start computing the cost over a plane through the inspected network's weights: "random"
    (two filter-normalised random directions drawn with `seed`) or "pca" (over the path training
    took), on `resolution` x `resolution` points. Returns the LandscapeTask; raises an InputError
    when that plane cannot be made (too few snapshots, too many parameters, a bad resolution) or
    would not fit the memory budget (checked before any plane is made). A job the Studio still
    runs is cancelled first."""
    resolution = check_resolution(resolution)
    if kind not in KINDS:
        raise InputError("plane", f"{kind!r} is not one of {', '.join(KINDS)}")
    network = inspection.network
    if kind == "pca" and inspection.trajectory_too_large:
        raise InputError("trajectory", f"This network has too many parameters "
                                       f"({network.n_parameters():,}) to keep its path.")
    check_landscape_fits(studio, inspection, kind, resolution)
    release_landscapes(studio, CANCEL_WAIT)  # its memory and thread slot are free before the next starts
    task = LandscapeTask(studio, inspection.trainer)
    _register(studio, task)  # before any thread exists: a release from now on (a closed tab) cancels it
    if kind == "pca":
        if inspection.trajectory_too_large:
            raise InputError("trajectory", f"This network has too many parameters "
                                           f"({network.n_parameters():,}) to keep its path.")
        plane = pca_plane(inspection.snapshot_iterations, inspection.snapshots, network.params,
                          inspection.iteration)
    else:
        plane = random_plane(network.params, seed=int(seed))
    data = inspection.data
    index = evaluation_sample(len(data.y_train))
    if task._cancelled:  # released (a Reset, a closed tab) while the plane was made
        raise InputError("landscape", "cancelled before it started: the network was reset or the page closed")
    task._start(LandscapeJob(network, plane, data.x_train[index], data.y_train[index], resolution,
                             inspection.iteration))
    return task


@dataclasses.dataclass(frozen=True)
class RunPath:
    """What a recorded run's checkpoint keeps of its path: its last loss landscape, else its path
    in the PCA plane of its parameter snapshots with the cost at each point, else why there is
    none (`missing`)."""

    landscape: Landscape | None = None
    iterations: np.ndarray | None = None  # (k,) the iteration of each point of the path
    path: np.ndarray | None = None  # (k, 2) coordinates in the PCA plane
    costs: np.ndarray | None = None  # (k,) the recorded cost nearest each point
    missing: str | None = None  # a sentence saying why there is no path


def run_path(checkpoint_path):
    """The RunPath of a run whose checkpoint is at `checkpoint_path`."""
    try:
        checkpoint = load_checkpoint(checkpoint_path)
    except InputError as error:
        return RunPath(missing=error.message)
    history = checkpoint.history
    if history is None:
        return RunPath(missing="its checkpoint has no history")
    if history.landscape is not None:
        return RunPath(landscape=history.landscape)
    last = history.last()
    final_iteration = last["iteration"] + 1 if last else 0
    iterations, snapshots = history.trajectory.snapshots(before=final_iteration)
    try:
        plane = pca_plane(iterations, snapshots, checkpoint.network.params, final_iteration)
    except InputError as error:
        return RunPath(missing=error.message)
    kept, costs = history.iterations, history.costs
    nearest = np.clip(np.searchsorted(kept, plane.path_iterations), 0, len(kept) - 1)
    return RunPath(iterations=plane.path_iterations, path=plane.path, costs=costs[nearest])
