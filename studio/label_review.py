"""The Data page's Suspect labels: find them (backprop.labels, in a background thread, on Dask), show
them as a gallery and keep a person's decisions as label edits beside the data set
(backprop.data.label_edits), then train on them.

The review is of the current set-up's data set (every class; a stratified subset when asked), and
its suspects name images by their position in the data set's training file, so the list of edits
holds whatever classes a set-up later takes. One review runs at a time on this server (each local
worker takes one of the server's training slots, BACKPROP_MAX_TRAINING_THREADS); it outlives the
browser tab that started it, and its result is kept as the data set's last review. No Streamlit here.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from backprop.budget import check_bytes
from backprop.data.label_edits import freeze, save_working, working_edits
from backprop.data.tasks import training_source
from backprop.errors import InputError
from backprop.labels import FOLDS, RANK_BY, find_suspects, fold_model, save_review, saved_review
from backprop.settings import SETTINGS
from backprop.sweep import default_workers
from backprop.threads import _free_slot, _take_slot, max_training_threads

THREAD_PREFIX = "backprop-labels-"
PER_PAGE = 24  # suspects on one page of the gallery
_lock = threading.Lock()
_jobs = {}  # data set key -> ReviewJob (the running one, or the last one, with its error)
_sources = {}  # (dataset, upload, data_path, seed) -> ReviewTarget, the last few (summing is not free)


@dataclasses.dataclass(frozen=True)
class ReviewTarget:
    """The data set of files the current set-up learns from, as its label edits know it."""

    key: str  # <dataset>-<checksum>
    dataset: str  # the setting's value: mnist, npz, ...
    title: str
    path: str | None  # an upload's files
    upload: str | None
    seed: int  # an .npz without a test split is split with it
    n_train: int
    labels: tuple  # the labels the training file has
    names: dict  # label -> class name
    image_shape: tuple | None
    source: object = dataclasses.field(repr=False, compare=False, default=None)  # TrainingSource

    def name(self, label):
        return self.names.get(int(label), str(label))


def review_target(config):
    """The ReviewTarget of a set-up's data (an InputError says why there is none: a 2D data set)."""
    from .data_files import resolve_upload

    path = str(resolve_upload(config.upload)) if config.upload and config.dataset in ("idx", "npz") \
        else config.data_path
    memo = (config.dataset, path, config.seed, _stamp(path))
    with _lock:
        known = _sources.get(memo)
    if known is not None and path is not None and memo[-1] is not None:
        return known  # a person's files, the same size and time: not read again
    if known is not None and path is None and known.source.x_train is training_source(
            config.dataset, None, config.seed).x_train:  # a named data set's arrays, kept in memory
        return known
    source = training_source(config.dataset, path, config.seed)
    labels = tuple(int(v) for v in np.unique(source.y_train))
    target = ReviewTarget(key=source.key, dataset=config.dataset, title=source.title, path=path,
                          upload=config.upload if config.dataset in ("idx", "npz") else None,
                          seed=config.seed,
                          n_train=len(source.y_train), labels=labels,
                          names={label: str(source.names(label)) for label in labels},
                          image_shape=source.image_shape, source=source)
    with _lock:
        _sources[memo] = target
        while len(_sources) > 4:
            _sources.pop(next(iter(_sources)))
    return target


def _stamp(path):
    """The size and time of a person's files (an .npz, or a folder of IDX files), None for none."""
    if path is None:
        return None
    try:
        files = [Path(path)] if Path(path).is_file() else sorted(Path(path).iterdir())
        return tuple((file.name, file.stat().st_size, file.stat().st_mtime_ns) for file in files)
    except OSError:
        return None


# -- finding suspects --------------------------------------------------------------------------
@dataclasses.dataclass
class ReviewJob:
    """A review running in a background thread (or ended: its error, or its review saved)."""

    key: str
    folds: int
    started: float = dataclasses.field(default_factory=time.monotonic)
    done: int = 0
    lines: list = dataclasses.field(default_factory=list)  # a line per fold that ended
    error: str | None = None
    review: object = None  # backprop.labels.Review, once it ended well
    thread: threading.Thread | None = None
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def running(self):
        return self.thread is not None and self.thread.is_alive()

    @property
    def fraction(self):
        return self.done / self.folds

    def text(self):
        seconds = time.monotonic() - self.started
        return f"{self.done} of {self.folds} folds trained, {seconds:.0f} s"

    def cancel(self):
        self.stop.set()

    def wait(self, timeout):
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running


def review_config(config, target, subset=None):
    """The fold model on the set-up's data set: every class (two classes as a two-class task, one
    sigmoid unit), a stratified subset of training images if given."""
    two = len(target.labels) == 2
    return fold_model(dataset=target.dataset, upload=target.upload, seed=config.seed,
                      subset=subset or None, data_path=config.data_path if target.upload is None else None,
                      digits=tuple(target.labels) if two else None,
                      layers=[*fold_model().layers[:-1], 1 if two else len(target.labels)])


def start_review(config, folds=5, rank_by="self_confidence", subset=None, scheduler=None, workers=None):
    """Start a review of the set-up's data set in the background; returns its ReviewJob. Refused
    (InputError) while another review runs, or when the local workers' training slots or memory
    are not free."""
    target = review_target(config)
    folds, rank_by = FOLDS.parse(folds), RANK_BY.parse(rank_by)
    subset = SETTINGS["subset"].parse(subset) if subset else None
    fold_config = review_config(config, target, subset)
    workers = None if scheduler else int(workers or min(default_workers(), max_training_threads()))
    if workers is not None:  # each local worker holds the data and a fold's copy of it
        features = int(np.prod(target.source.x_train.shape[1:]))
        images = subset or target.n_train
        check_bytes(workers * 2 * images * features * 4, "workers",
                    f"{workers} workers holding {images:,} images", "choose a subset or fewer workers")
    with _lock:
        running = [job for job in _jobs.values() if job.running]
        if running:
            raise InputError("labels", f"a review of {running[0].key} is running on this server; wait for it "
                                       "or cancel it (one at a time)")
        slots = []
        try:
            for _ in range(workers or 0):
                slots.append(f"{THREAD_PREFIX}slot-{uuid.uuid4().hex[:8]}")
                _take_slot(slots[-1])
        except InputError:
            for name in slots[:-1]:
                _free_slot(name)
            raise InputError("workers", f"{workers} local workers need {workers} of the server's training "
                                        "slots (BACKPROP_MAX_TRAINING_THREADS), and they are taken now: wait "
                                        "for a training to end") from None
        job = ReviewJob(target.key, folds)
        job.thread = threading.Thread(target=_run, name=THREAD_PREFIX + target.key, daemon=True, args=(
            job, fold_config, target, rank_by, scheduler, workers, slots))
        _jobs[target.key] = job
        job.thread.start()
    return job


def _run(job, config, target, rank_by, scheduler, workers, slots):
    def fold_ended(done, total, outcome):
        job.done = done
        job.lines.append(f"Fold {outcome.fold + 1}: {outcome.accuracy:.2%} of its held-out images right, "
                         f"{outcome.seconds:.0f} s on {outcome.worker}")

    try:
        review = find_suspects(config, path=target.path, folds=job.folds, rank_by=rank_by,
                               scheduler=scheduler, workers=workers, key=target.key, on_fold=fold_ended,
                               cancelled=job.stop.is_set)
        save_review(review)
        job.review = review
    except InputError as error:
        job.error = f"**{error.field}**: {error.message}"
    except Exception as error:  # shown on the page rather than lost in a thread
        job.error = f"**labels**: {type(error).__name__}: {error}"
    finally:
        for name in slots:
            _free_slot(name)


def review_job(key):
    """The running or last ReviewJob of a data set on this server, or None."""
    with _lock:
        return _jobs.get(key)


def last_review(target):
    """The data set's last review (made here or by `backprop labels`), or None."""
    return saved_review(target.key)


# -- the gallery and the edits --------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class GalleryItem:
    rank: int  # 1: the most suspect
    index: int  # position in the training file
    image: np.ndarray | None  # (rows, cols) uint8, or None when the features are not an image
    given: int  # the file's label
    suggested: int
    confidence: float  # the out-of-fold probability of the suggested label
    status: str  # "kept", "excluded" or "relabelled"
    new_label: int | None  # for "relabelled"
    caption: str


def edits_of(target):
    """The data set's working list of edits (empty when none were made)."""
    return working_edits(target.key, target.n_train, target.labels)


def gallery(target, review, edits, page=0, per_page=PER_PAGE, hide_edited=False):
    """(items of one page, pages): the review's suspects with their images and decisions."""
    suspects = list(enumerate(review.suspects, start=1))
    if hide_edited:
        suspects = [(rank, s) for rank, s in suspects if edits.status(s.index)[0] == "kept"]
    pages = max(1, -(-len(suspects) // per_page))
    page = min(max(0, int(page)), pages - 1)
    items = []
    for rank, suspect in suspects[page * per_page:(page + 1) * per_page]:
        given, suggested = review.source_label(suspect.given), review.source_label(suspect.suggested)
        status, new_label = edits.status(suspect.index)
        caption = (f"#{rank} · image {suspect.index}: given **{target.name(given)}**, suggested "
                   f"**{target.name(suggested)}** ({suspect.confidence:.0%})")
        items.append(GalleryItem(rank, suspect.index, image_of(target, suspect.index), given, suggested,
                                 suspect.confidence, status, new_label, caption))
    return items, pages


def image_of(target, index):
    """A training image as (rows, cols) uint8, from the data set's own file."""
    if target.image_shape is None:
        return None
    pixels = np.asarray(target.source.x_train[int(index)]).reshape(target.image_shape)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8)
    return pixels


def _checked(target, review, index):
    if review.key != target.key or int(index) not in {s.index for s in review.suspects}:
        raise InputError("labels", f"image {index} is not a suspect of this data set's review")
    return int(index)


def exclude(target, review, index):
    """Leave an image out of training (kept in the data set's list of edits)."""
    edits = edits_of(target).exclude(_checked(target, review, index))
    save_working(edits)
    return edits


def relabel(target, review, index, label):
    """Give an image another of the data set's labels (its given label again: no edit)."""
    index = _checked(target, review, index)
    label = int(label)
    if label not in target.labels:
        raise InputError("labels", f"{label} is not a label of {target.title}")
    given = int(target.source.y_train[index])
    edits = edits_of(target).relabel(index, label, given=given)
    save_working(edits)
    return edits


def restore(target, review, index):
    """Forget the edit of an image."""
    edits = edits_of(target).restore(_checked(target, review, index))
    save_working(edits)
    return edits


def clear_edits(target):
    edits = dataclasses.replace(edits_of(target), excluded=frozenset(), relabelled={})
    save_working(edits)
    return edits


def edits_summary(edits):
    return f"{len(edits.excluded):,} excluded, {len(edits.relabelled):,} relabelled"


def train_with_edits(studio, target, use=True):
    """Freeze the data set's list of edits and train the current set-up on it from a fresh network
    (use=False: on the labels as given). Returns the edits id (None: no edits)."""
    edits_id = freeze(edits_of(target)) if use else None
    config = dataclasses.replace(studio.pending or studio.config, label_edits=edits_id)
    studio.propose(config)
    studio.reset()
    studio.train()
    return edits_id
