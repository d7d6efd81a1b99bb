"""The recorded runs (app and CLI) for the Compare runs page: listed, their histories, renamed,
deleted, and one loaded into a Studio. No Streamlit.

Anyone may list, read and load any run; only its owner, or the operator, may rename, delete, pin or
unpin it (backprop.owners): RunRecords acts as one actor, and the run store refuses the others."""

import dataclasses

from backprop import disk, owners
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
    owner: str | None = dataclasses.field(default=None, repr=False)  # a token: never shown

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
    """The run store of this studio home, as one actor sees it: `actor` is a browser session's owner
    token (Studio.owner), or owners.OPERATOR for a session that typed the operator token (see
    `actor_for`); by default a fresh token that owns nothing. Opening it raises an InputError when
    the database cannot be used."""

    def __init__(self, store=None, actor=None):
        self._store = store if store is not None else RunStore()
        self.actor = actor if actor is not None else owners.new_browser_token()

    @property
    def operator(self):
        """Whether this actor may change every run."""
        return self.actor == owners.OPERATOR

    def may_change(self, run):
        """Whether this actor may rename, delete, pin or unpin the run."""
        return owners.may_change(run.owner, self.actor)

    def whose(self, run):
        """"you", "another browser" or "the operator": who started the run, for this actor."""
        return owners.whose(run.owner, self.actor)

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
                                    pinned=bool(row.get("pinned")), owner=row.get("owner")))
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
        """Raises an InputError for an empty or too long name, or ("run") for another's run."""
        self._store.rename(run.id, name, actor=self.actor)

    def delete(self, run):
        """Forget a run, its history and the checkpoint the studio made for it. Raises an InputError
        ("run") for another's run."""
        self._store.delete(run.id, actor=self.actor)

    def pin(self, run):
        """Keep the run (history and checkpoint) through the disk quota's clean-ups. Raises an
        InputError ("pin") when pinned runs would hold more than their share of the quota, ("run")
        for another's run."""
        owners.require_change(run.id, run.owner, self.actor)  # before the quota's message
        disk.check_pin(self._store, run.id)
        self._store.pin(run.id, actor=self.actor)

    def unpin(self, run):
        """The run may be cleaned up again, oldest first, like any ended run. Raises an InputError
        ("run") for another's run."""
        self._store.unpin(run.id, actor=self.actor)


def actor_for(owner, operator_token=""):
    """The actor of a browser session: owners.OPERATOR when `operator_token` is BACKPROP_ADMIN_TOKEN's,
    else its owner token."""
    return owners.OPERATOR if owners.is_operator_token(operator_token) else owner


def load_into_studio(studio, run):
    """A recorded run in the Studio (for the Train page): its trained network when its checkpoint is
    there, else its set-up at iteration 0. Raises an InputError for a set-up or checkpoint this
    version cannot use."""
    studio.load_run(TrainConfig.from_dict(run.config), run.checkpoint_path, label=f"Run #{run.id}")
