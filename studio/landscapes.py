"""Loss landscapes for the pages: one computed for a Studio's network off the script thread and
kept with its run, and what a recorded run's checkpoint keeps of its path. No Streamlit."""

import dataclasses

import numpy as np

from backprop.checkpoint import load_checkpoint
from backprop.errors import InputError
from backprop.landscape import Landscape, LandscapeJob, evaluation_sample, pca_plane, random_plane


class LandscapeTask:
    """A loss landscape of a Studio's network, computed on a background thread (a LandscapeJob), so
    a page can show its progress and cancel it; once complete, `keep()` keeps it with the run it
    was computed for. Start one with `start_landscape`."""

    def __init__(self, studio, trainer, job):
        self._studio = studio
        self._trainer = trainer  # the run it belongs to
        self._job = job
        self._kept = False

    # -- progress --------------------------------------------------------------------------
    @property
    def running(self):
        return self._job.running

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
        self._job.cancel()

    def wait(self, timeout=None):
        """Until it has finished (or `timeout` seconds); returns whether it has."""
        return self._job.wait(timeout)

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


def start_landscape(studio, inspection, kind, resolution, seed=0):
    """Start computing the cost over a plane through the inspected network's weights: "random"
    (two filter-normalised random directions drawn with `seed`) or "pca" (over the path training
    took), on `resolution` x `resolution` points. Returns the LandscapeTask; raises an InputError
    when that plane cannot be made (too few snapshots, too many parameters, a bad resolution)."""
    network = inspection.network
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
    job = LandscapeJob(network, plane, data.x_train[index], data.y_train[index], resolution,
                       inspection.iteration)
    return LandscapeTask(studio, inspection.trainer, job)


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
