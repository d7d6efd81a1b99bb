"""The recorded runs (app and CLI) for the Compare runs page: listed, their histories, renamed,
deleted, and one loaded into a Studio. No Streamlit."""

import dataclasses

from backprop import disk
from backprop.config import TrainConfig
from backprop.errors import InputError
from backprop.runs import RunStore


@dataclasses.dataclass(frozen=True)
class RecordedRun:
    """One run of the run store."""

    id: int
    name: str
    status: str  # running, stopped, finished, diverged, interrupted; "paused" for a Studio's own
    source: str  # "app", "cli", "sweep"
    config: dict  # its set-up as recorded (TrainConfig.to_dict)
    metrics: dict  # what it ended with (cost, test accuracy ...)
    last_iteration: int | None  # the last recorded step's, None before any
    last_test_accuracy: float | None  # the last test evaluation's
    checkpoint_path: str | None  # its trained network, when it saved one
    pinned: bool = False  # kept by every clean-up of the disk quota (backprop.disk)

    @property
    def title(self):
        """'#id name'."""
        return f"#{self.id} {self.name}"

    @property
    def label(self):
        """'#id name (status)': what a list of runs shows."""
        return f"{self.title} ({self.status})"

    @property
    def steps(self):
        return self.last_iteration + 1 if self.last_iteration is not None else 0

    @property
    def final_accuracy(self):
        """Its test accuracy at the end, else at its last evaluation, else None."""
        accuracy = self.metrics.get("test_accuracy")
        return accuracy if accuracy is not None else self.last_test_accuracy


class RunRecords:
    """The run store of this studio home. Opening it raises an InputError when the database cannot
    be used."""

    def __init__(self, store=None):
        self._store = store if store is not None else RunStore()

    @property
    def path(self):
        """Where the runs are kept."""
        return self._store.path

    def runs(self, studio=None):
        """Every run, newest first. The Studio's own run, when no thread trains it (paused, or only
        Stepped), can go on from the Train page: "paused" says so better than "running" or "stopped"."""
        runs = []
        for row in self._store.list_runs():
            status = row["status"]
            if studio is not None and row["id"] == studio.run_id and status in ("running", "stopped") \
                    and not studio.running:
                status = "paused"
            runs.append(RecordedRun(id=row["id"], name=row["name"], status=status, source=row["source"],
                                    config=row["config"], metrics=row["metrics"],
                                    last_iteration=row.get("last_iteration"),
                                    last_test_accuracy=row.get("last_test_accuracy"),
                                    checkpoint_path=row["checkpoint_path"],
                                    pinned=bool(row.get("pinned"))))
        return runs

    def history(self, run):
        """A run's recorded steps in order: the run store's rows {iteration, epoch, cost, test_cost,
        test_accuracy} (None where not measured); none for a run deleted since it was listed (by
        another visitor, or by the disk quota's clean-up)."""
        try:
            return self._store.history(run.id)
        except InputError:
            return []

    def rename(self, run, name):
        """Raises an InputError for an empty or too long name."""
        self._store.rename(run.id, name)

    def delete(self, run):
        """Forget a run, its history and the checkpoint the studio made for it."""
        self._store.delete(run.id)

    def pin(self, run):
        """Keep the run (history and checkpoint) through the disk quota's clean-ups. Raises an
        InputError ("pin") when pinned runs would hold more than their share of the quota."""
        disk.check_pin(self._store, run.id)
        self._store.pin(run.id)

    def unpin(self, run):
        """The run may be cleaned up again, oldest first, like any ended run."""
        self._store.unpin(run.id)


def load_into_studio(studio, run):
    """A recorded run in the Studio (for the Train page): its trained network when its checkpoint is
    there, else its set-up at iteration 0. Raises an InputError for a set-up or checkpoint this
    version cannot use."""
    studio.load_run(TrainConfig.from_dict(run.config), run.checkpoint_path, label=f"Run #{run.id}")
