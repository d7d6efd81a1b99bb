"""Suspect labels: training images whose given label a network trained without them disagrees with.

1. **Out-of-fold probabilities.** The training set is split into K stratified folds (seeded). Each
   fold is one Dask task, trained as a sweep's trial is (`Trainer.from_config` on the worker, the data
   through the worker's data cache, one BLAS thread per worker): a network learns the other K - 1
   folds and gives class probabilities for the held-out fold only, so every image is predicted by a
   model that never saw it. The tasks run on a LocalCluster in its own process, or on any Dask
   scheduler given (backprop.sweep.cluster.connect).
2. **Confident learning.** cleanlab's `find_label_issues` (prune by noise rate) takes the given labels
   and those probabilities and returns the images whose label is likely wrong, ranked by
   self-confidence (the probability of the given label) or normalized margin.

`find_suspects` does both and returns a `Review`: each `Suspect` with its position in the source's
training split (what label edits refer to: backprop.data.label_edits), the given and suggested
labels and the model's confidence in its suggestion. `save_review` keeps the last review of a data
set under the studio home, where the Data page's gallery reads it; `backprop labels` is the CLI.

The fold model: by default the mnist10 preset's network ([256, 128, 10] ReLU, He init, Adam lr
0.006 with cosine decay, l2 1e-4, float32) trained for FOLD_ITERATIONS steps of FOLD_BATCH images
(about 4.3 epochs of 48,000); on MNIST 98.1% of the images are predicted right out of fold.
Measured in docs/benchmarks.md ("Suspect labels").
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import uuid
from datetime import datetime, timezone

import numpy as np

from .errors import InputError
from .setting import Setting

# Measured on MNIST (one fold of 48,000 images, 2 loaded cores): 800 steps of 256 are 98.1-98.2% out of
# fold, as good as 800 of 512 (98.1-98.3%) for half the work; 400 of 512: 97.7-97.9%.
FOLD_ITERATIONS = 800
FOLD_BATCH = 256
FOLDS = Setting("folds", "int", 5, "Folds", "Cross-validation folds: each image is predicted by a network "
                "trained on the other folds", low=2, high=20)
RANK_BY = Setting("rank_by", "choice", "self_confidence", "Rank by", "How suspects are ordered",
                  choices=("self_confidence", "normalized_margin"),
                  choice_help=("**self_confidence**: the probability of the given label, lowest first",
                               "**normalized_margin**: that probability minus the largest other one, "
                               "lowest first"))
TOP = Setting("top", "int", 20, "Shown", "How many suspects to print", low=0, high=1_000_000)
MAX_SUSPECTS = 5000  # a review keeps at most this many (the most suspect)
REVIEW_FORMAT = 1
DEATHS_ALLOWED = 1  # a fold whose worker died is run again this many times
POLL_SECONDS = 0.2  # how often the client looks at its folds (and at a cancel)


def fold_model(dataset="mnist", **changes):
    """The fold model's set-up: the mnist10 preset's network, trained FOLD_ITERATIONS steps, on
    every class of `dataset`; `changes` are settings laid over it."""
    from .config import preset

    base = dataclasses.replace(preset("mnist10"), dataset=dataset, digits=None, batch_size=FOLD_BATCH,
                               iterations=FOLD_ITERATIONS, eval_every=FOLD_ITERATIONS)
    return dataclasses.replace(base, **changes).validated()


# -- the folds ------------------------------------------------------------------------------
def split_folds(labels, folds, seed):
    """K arrays of positions (sorted), each class spread evenly over them (seeded)."""
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    parts = [[] for _ in range(folds)]
    offset = 0
    for label in np.unique(labels):
        positions = rng.permutation(np.flatnonzero(labels == label))
        for k in range(folds):  # the class's i-th image goes to fold (offset + i) % folds
            parts[(offset + k) % folds].append(positions[k::folds])
        offset += len(positions)
    return [np.sort(np.concatenate(part)) if part else np.zeros(0, np.int64) for part in parts]


@dataclasses.dataclass(frozen=True)
class FoldTask:
    """What a worker needs for one fold: the set-up, which positions it learns and which it predicts."""

    fold: int
    config: object  # TrainConfig
    train: np.ndarray  # positions in the task's training set
    held: np.ndarray
    path: str | None = None  # an upload's files (the worker loads the data itself)
    own_cluster: bool = False  # the workers are this review's own (a LocalCluster it started)


@dataclasses.dataclass(frozen=True)
class FoldOutcome:
    fold: int
    held: np.ndarray
    probabilities: np.ndarray  # (len(held), classes), float32
    accuracy: float  # on the held-out fold, against the given labels
    train_accuracy: float
    seconds: float
    worker: str
    cpu_seconds: float = 0.0  # the worker process's CPU time for it (wall time minus waiting for a core)


def train_fold(task, data=None):
    """Train one fold (on a Dask worker, or here) and predict its held-out images."""
    from .data.tasks import Dataset
    from .trainer import Trainer

    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "this process"
    if task.own_cluster:
        keep_freed_memory()
    if data is None:
        try:
            data = task.config.load_data(path=task.path)
        except InputError as error:  # e.g. a remote worker without a downloaded data set
            raise InputError(error.field, f"on worker {worker}: {error.message}") from None
    started, cpu = time.perf_counter(), time.process_time()
    empty = data.x_train[:0]
    learn = Dataset(f"{data.name}, fold {task.fold + 1} left out", data.x_train[task.train],
                    data.y_train[task.train], empty, data.y_train[:0], data.class_names, data.image_shape)
    trainer = Trainer.from_config(task.config, learn, history_capacity=1000)
    while trainer.iteration < task.config.iterations and trainer.diverged is None:
        trainer.step(min(100, task.config.iterations - trainer.iteration))
    if trainer.diverged is not None:
        raise InputError("learning_rate", f"fold {task.fold + 1} diverged at step "
                                          f"{trainer.diverged['iteration']}; lower the learning rate")
    held_x = data.x_train[task.held]
    probabilities = trainer.network.predict_proba(held_x).astype(np.float32)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == data.y_train[task.held]))
    train_accuracy = float(trainer.network.evaluate(trainer.x_train[:10_000], trainer.y_train[:10_000])[1])
    return FoldOutcome(task.fold, np.asarray(task.held), probabilities, accuracy, train_accuracy,
                       time.perf_counter() - started, worker, time.process_time() - cpu)


MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest
TRIM_THRESHOLD = 256 * 1024 * 1024


def keep_freed_memory():
    """Let glibc keep freed memory for the next step in this worker process (best effort, Linux).

    Dask's nanny starts its workers with MALLOC_TRIM_THRESHOLD_=65536, which turns glibc's dynamic
    mmap threshold off: every array over 128 KB (a batch, an activation, a gradient) is then mapped
    and unmapped at each step, and its pages faulted in again. A fold measured 5.8-7.0 s of CPU that
    way against 4.4-4.7 s with these thresholds. Only a review's own workers are changed (they end
    with it); a shared scheduler's are left as they are."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


@dataclasses.dataclass(frozen=True)
class OutOfFold:
    """Every training image's class probabilities from the fold that left it out."""

    probabilities: np.ndarray  # (n, classes)
    fold_of: np.ndarray  # (n,): the fold that predicted each image
    outcomes: tuple  # FoldOutcome, by fold
    seconds: float
    workers: int

    def accuracy(self, labels):
        return float(np.mean(self.probabilities.argmax(axis=1) == np.asarray(labels)))


def out_of_fold(config, data, folds=5, *, path=None, send_data=False, scheduler=None, workers=None,
                seed=None, on_fold=None, cancelled=None, deadline=None):
    """OutOfFold probabilities of `data`'s training images, one Dask task per fold.

    Workers load the data from the set-up (`config`, `path` for an upload), as a sweep's trials do;
    `send_data=True` sends `data` itself instead (data only this process has, e.g. changed labels).
    `on_fold(done, total, outcome)` is called as folds end; `cancelled()` is asked every POLL_SECONDS
    (True: the tasks are cancelled and InputError("cancelled") raised); past `deadline` seconds the
    same with a timeout message. The cluster this starts is always closed."""
    from .sweep.cluster import connect, describe_error, worker_died

    folds = FOLDS.parse(folds)
    labels = np.asarray(data.y_train)
    check_task(data, folds)
    seed = config.seed if seed is None else int(seed)
    held = split_folds(labels, folds, seed)
    everything = np.arange(len(labels))
    tasks = [FoldTask(k, config, np.setdiff1d(everything, part, assume_unique=True), part,
                      str(path) if path is not None else None, own_cluster=not scheduler)
             for k, part in enumerate(held)]
    started = time.perf_counter()
    client, cluster = connect(scheduler, workers)
    run = uuid.uuid4().hex[:8]
    try:
        n_workers = len(client.scheduler_info().get("workers", {}))
        shared = client.scatter(data, broadcast=True) if send_data else None
        futures, deaths = {}, {}

        def submit(task):
            attempt = deaths.get(task.fold, 0)
            future = client.submit(train_fold, task, shared, key=f"label-fold-{run}-{task.fold}-{attempt}",
                                   pure=False)
            futures[future] = task

        for task in tasks:
            submit(task)
        outcomes = {}
        while futures:
            done = [future for future in futures if future.done()]
            if not done:
                time.sleep(POLL_SECONDS)
            for future in done:
                task = futures.pop(future)
                try:
                    outcome = future.result()
                except InputError:
                    raise
                except Exception as error:
                    if worker_died(error) and deaths.get(task.fold, 0) < DEATHS_ALLOWED:
                        deaths[task.fold] = deaths.get(task.fold, 0) + 1
                        submit(task)
                        continue
                    raise InputError("workers", f"fold {task.fold + 1} failed: {describe_error(error)}") \
                        from None
                outcomes[task.fold] = outcome
                if on_fold is not None:
                    on_fold(len(outcomes), folds, outcome)
            if futures and cancelled is not None and cancelled():
                client.cancel(list(futures))
                raise InputError("cancelled", f"stopped after {len(outcomes)} of {folds} folds")
            if futures and deadline is not None and time.perf_counter() - started > deadline:
                client.cancel(list(futures))
                raise InputError("deadline", f"{len(outcomes)} of {folds} folds ended within {deadline:g} s")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return assemble(outcomes, len(labels), data.n_classes, time.perf_counter() - started, n_workers)


def assemble(outcomes, n, n_classes, seconds=0.0, workers=1):
    """The folds' held-out probabilities put back in the training set's order; every image is
    predicted exactly once."""
    probabilities = np.full((n, n_classes), np.nan, dtype=np.float32)
    fold_of = np.full(n, -1, dtype=np.int64)
    for fold, outcome in sorted(outcomes.items()):
        if np.any(fold_of[outcome.held] >= 0):
            raise ValueError(f"fold {fold} predicts images another fold predicted")
        probabilities[outcome.held] = outcome.probabilities
        fold_of[outcome.held] = fold
    if np.any(fold_of < 0):
        raise ValueError(f"{int(np.sum(fold_of < 0))} images were predicted by no fold")
    return OutOfFold(probabilities, fold_of, tuple(outcomes[k] for k in sorted(outcomes)), seconds, workers)


def check_task(data, folds):
    """A classification task with enough images of each class for the folds."""
    if data.regression:
        raise InputError("dataset", f"{data.name} is a regression: its targets are numbers, not labels")
    counts = np.bincount(np.asarray(data.y_train), minlength=data.n_classes)
    if data.n_classes < 2 or np.count_nonzero(counts) < 2:
        raise InputError("dataset", f"{data.name} has fewer than two classes in its training set")
    if counts.min() < folds:
        scarce = int(np.argmin(counts))
        raise InputError("folds", f"class {data.class_names[scarce]} has {int(counts[scarce])} training "
                                  f"images, fewer than the {folds} folds; use fewer folds or more data")


# -- confident learning -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Suspect:
    """An image whose label looks wrong: `index` is its position in the source's training split
    (file order; what label edits name), `position` in the task's; labels are the task's classes."""

    index: int
    position: int
    given: int
    suggested: int
    confidence: float  # the out-of-fold probability of the suggested label
    given_probability: float
    quality: float  # the ranking's score (self-confidence or normalized margin): lower is worse


def rank_suspects(labels, probabilities, rank_by="self_confidence", source_index=None):
    """cleanlab's label issues (prune by noise rate), most suspect first, as Suspects."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    rank_by = RANK_BY.parse(rank_by)
    labels = np.asarray(labels, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    ranked = find_label_issues(labels, probabilities, return_indices_ranked_by=rank_by, n_jobs=1)
    scores = get_label_quality_scores(labels, probabilities, method=rank_by)
    suggested = probabilities.argmax(axis=1)
    index = np.arange(len(labels)) if source_index is None else np.asarray(source_index)
    return [Suspect(int(index[p]), int(p), int(labels[p]), int(suggested[p]),
                    float(probabilities[p, suggested[p]]), float(probabilities[p, labels[p]]),
                    float(scores[p])) for p in ranked]


@dataclasses.dataclass(frozen=True)
class Review:
    """The suspects of one data set, and how they were found."""

    dataset: str  # the task's name (data.name)
    class_names: tuple
    source_labels: tuple | None  # the source's label of each class (None: not a data set of files)
    suspects: tuple  # Suspect, most suspect first
    issues: int  # how many cleanlab found (suspects keeps at most MAX_SUSPECTS)
    n_train: int
    folds: int
    rank_by: str
    accuracy: float  # out of fold, against the given labels
    fold_accuracies: tuple
    seconds: float
    workers: int
    config: dict  # the fold model's set-up
    load_average: float | None = None  # the machine's 1-minute load when it ended
    cpu_seconds: float = 0.0  # the folds' CPU time on their workers, all together
    key: str | None = None  # the data set's identity (backprop.data.label_edits), for files
    made_at: str = ""

    def source_label(self, label):
        return self.source_labels[label] if self.source_labels is not None else label

    def to_dict(self):
        document = dataclasses.asdict(self)
        document["format"] = REVIEW_FORMAT
        document["suspects"] = [dataclasses.asdict(s) for s in self.suspects]
        return document

    @classmethod
    def from_dict(cls, document):
        if document.get("format") != REVIEW_FORMAT:
            raise ValueError(f"format {document.get('format')!r}, expected {REVIEW_FORMAT}")
        values = {field.name: document[field.name] for field in dataclasses.fields(cls)
                  if field.name in document}
        values["suspects"] = tuple(Suspect(**s) for s in document["suspects"][:MAX_SUSPECTS])
        for name in ("class_names", "fold_accuracies"):
            values[name] = tuple(values[name])
        if values.get("source_labels") is not None:
            values["source_labels"] = tuple(int(v) for v in values["source_labels"])
        return cls(**values)


def find_suspects(config, *, data=None, path=None, folds=5, rank_by="self_confidence", scheduler=None,
                  workers=None, seed=None, key=None, send_data=None, on_fold=None, cancelled=None,
                  deadline=None):
    """Out-of-fold probabilities of the set-up's training images (`config`, `path` for an upload;
    or `data`, sent to the workers) and cleanlab's ranking of them: a Review."""
    if data is None:
        data = config.load_data(path=path)
        send_data = bool(send_data)
    elif send_data is None:
        send_data = True
    rank_by = RANK_BY.parse(rank_by)
    if config.layers[-1] != config.fit_output(data.n_classes).layers[-1]:
        config = config.fit_output(data.n_classes).validated()
    oof = out_of_fold(config, data, folds, path=path, send_data=send_data, scheduler=scheduler,
                      workers=workers, seed=seed, on_fold=on_fold, cancelled=cancelled, deadline=deadline)
    suspects = rank_suspects(data.y_train, oof.probabilities, rank_by, data.source_index)
    return Review(dataset=data.name, class_names=tuple(str(n) for n in data.class_names),
                  source_labels=data.source_labels, suspects=tuple(suspects[:MAX_SUSPECTS]),
                  issues=len(suspects), n_train=len(data.y_train), folds=FOLDS.parse(folds), rank_by=rank_by,
                  accuracy=oof.accuracy(data.y_train),
                  fold_accuracies=tuple(o.accuracy for o in oof.outcomes), seconds=oof.seconds,
                  workers=oof.workers, config=config.to_dict(), load_average=load_average(),
                  cpu_seconds=sum(o.cpu_seconds for o in oof.outcomes), key=key,
                  made_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# -- a data set's last review -----------------------------------------------------------------
def review_path(key):
    from .data.label_edits import KEY, edits_dir

    if not KEY.fullmatch(str(key)):
        raise InputError("label_edits", f"{str(key)[:60]!r} is not a data set key")
    return edits_dir() / f"{key}.review.json"


def save_review(review):
    """Keep a review as its data set's last one (for the Data page); needs its key."""
    from .data.idx import write_atomic
    from .paths import writable_folder

    path = review_path(review.key)
    writable_folder(path.parent, field="label_edits")
    try:
        write_atomic(path, json.dumps(review.to_dict(), allow_nan=False, default=_plain).encode())
    except OSError as error:
        raise InputError("label_edits", f"cannot write {path}: {error.strerror or error}") from None
    return path


def _plain(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def saved_review(key):
    """The last review of a data set, or None (none yet, or unreadable: made again)."""
    from .data.label_edits import MAX_FILE_BYTES

    path = review_path(key)
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        return Review.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def suspect_rows(review, count=None):
    """Plain rows for --json and tables: index, given, suggested, confidence (the source's labels)."""
    rows = []
    for suspect in review.suspects[:count]:
        rows.append({"index": suspect.index, "given": review.source_label(suspect.given),
                     "suggested": review.source_label(suspect.suggested),
                     "confidence": round(suspect.confidence, 6),
                     "given_probability": round(suspect.given_probability, 6),
                     "quality": round(suspect.quality, 6), "position": suspect.position})
    return rows


def finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None
