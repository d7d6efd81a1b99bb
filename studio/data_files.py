"""The Data page's data: what the current set-up learns from (facts and sample images), data sets
to download with a progress bar, and a person's own files, saved under the studio home (each
upload under its own server-made id) only once `load_task` has accepted them.

An upload's id is its key: whoever has it (the browser session that uploaded it, a link carrying
`upload=<id>`) can use it, and a browser session lists only the uploads it made or was given
(`list_uploads`), never everyone's. Streamlit only for that, imported lazily; nothing else here."""

import dataclasses
import json
import os
import re
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from backprop import disk
from backprop.budget import format_bytes
from backprop.data import REGISTRY, DownloadError, dataset_facts, download, load_task, sample_images
from backprop.data.download import is_complete
from backprop.data.idx import mnist_names
from backprop.errors import InputError
from backprop.paths import datasets_dir
from backprop.settings import SETTINGS

UPLOADS_FOLDER = disk.UPLOADS_FOLDER  # under datasets_dir(): one folder per upload, named by its id
UPLOAD_ID_LENGTH = 12
UPLOAD_ID = re.compile(SETTINGS["upload"].pattern)  # the setting a link names an upload by
UPLOAD_INFO = "upload.json"  # in an upload's folder: its Upload, written by the server
KNOWN_UPLOADS = "data_uploads_known"  # in a browser session's state: the upload ids it may list
IDX_NAMES = tuple(mnist_names().values())  # train-images-idx3-ubyte, ..., t10k-labels-idx1-ubyte
IDX_HELP = ("the four MNIST-style IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (all plain or all .gz)")


# -- the current set-up's data -------------------------------------------------------------------
def current_data(studio):
    """The Dataset the Studio's network learns from, else the one its set-up names (loaded once;
    an InputError says why it cannot be)."""
    trainer = studio.trainer
    return trainer.data if trainer is not None else studio.load_data()


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What the Data page shows of a data set at once."""

    name: str
    n_train: int
    n_test: int
    n_features: int
    n_classes: int
    image_shape: tuple | None  # None: the features are not images
    class_names: list
    train_counts: list  # images per class
    test_counts: list
    mean_images: object  # (classes, *image_shape): the average training image of each class


def data_facts(data):
    """The DataFacts of a Dataset: sizes, class names, images per class and the mean images."""
    return DataFacts(**dataset_facts(data))


@dataclasses.dataclass(frozen=True)
class SampleGrid:
    """Seeded random images of a data set, grouped by class (a class a row when every class has
    enough of them)."""

    images: object  # (n, *image_shape)
    per_row: int
    row_labels: list | None  # the class of each row, or None when some class has too few images


def sample_grid(data, per_class, seed, split):
    """Up to `per_class` random images (drawn with `seed`) of each class of the "train" or "test" split."""
    images, labels = sample_images(data, per_class=per_class, seed=seed, split=split)
    names = [str(name) for name in data.class_names]
    rows = [names[label] for label in labels[::per_class]] if len(labels) == per_class * len(names) else None
    return SampleGrid(images, per_class, rows)


# -- downloads ---------------------------------------------------------------------------------
def megabytes(n_bytes):
    return f"{n_bytes / 1e6:,.1f} MB"


@dataclasses.dataclass(frozen=True)
class DownloadRow:
    """A data set that can be downloaded: what it is, its size and whether it is here already."""

    name: str
    description: str
    size: str
    credit: str  # credit and license
    present: bool


def download_rows():
    """A DownloadRow per downloadable data set."""
    rows = []
    for name, spec in REGISTRY.items():
        sizes = [remote.size for remote in spec.files]
        rows.append(DownloadRow(name=name, description=spec.description,
                                size=megabytes(sum(sizes)) if None not in sizes else "see description",
                                credit=spec.credit,
                                present=is_complete(spec, datasets_dir() / spec.folder, verify=False)))
    return rows


@dataclasses.dataclass(frozen=True)
class Notice:
    """A message for the page: kind "success" or "error", and its Markdown text."""

    kind: str
    text: str


def download_dataset(name, show):
    """Download a data set of the registry and check it, drawing its progress with
    `show(fraction, text)` (see DownloadProgress); the Notice says how it went."""
    progress = DownloadProgress(name, show)
    try:
        folder = download(name, progress=progress, log=progress.log)
    except DownloadError as error:
        attempts = "\n".join(f"- `{url}`: {reason}" for url, reason in error.attempts)
        return Notice("error", f"Could not download **{error.file_name}**: every mirror failed.\n\n{attempts}"
                               "\n\nWithout internet access, copy the files by hand into "
                               f"`{datasets_dir() / name}`.")
    except InputError as error:
        return Notice("error", f"**{error.field}**: {error.message}")
    return Notice("success", f"{name} is downloaded and verified in `{folder}`. Choose it as the data set on "
                             "the Train page.")


class DownloadProgress:
    """Turns `download()`'s callbacks into one fraction for a whole data set: `log` says which file
    is being fetched, `progress(done, total)` how far it is. `show(fraction, text)` draws it."""

    def __init__(self, name, show):
        self.files = REGISTRY[name].files
        self.show = show
        self.current = 0  # index in self.files of the file being fetched
        self.lines = []  # what download() told, for the page to show
        self._shown = -1.0

    def log(self, line):
        self.lines.append(line)
        file_name = line.split(":", 1)[0]
        for index, remote in enumerate(self.files):
            if remote.name == file_name:
                self.current = index

    def __call__(self, done, total):
        remote = self.files[self.current]
        size = remote.size or total
        sizes = [f.size for f in self.files]
        if None in sizes or size is None:  # sizes unknown: the fraction of this file alone
            fraction = done / size if size else 0.0
        else:
            fraction = (sum(sizes[:self.current]) + done) / sum(sizes)
        if 0 < done and done != size and fraction - self._shown < 0.005:
            return  # a redraw per 64 KB block would flood the browser
        self._shown = fraction
        of = f" of {megabytes(size)}" if size else ""
        self.show(min(max(fraction, 0.0), 1.0),
                  f"{remote.name} (file {self.current + 1} of {len(self.files)}): {megabytes(done)}{of}")


# -- a person's own files ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Upload:
    """A data set a person uploaded, kept under uploads_dir()/<id>/ with its description."""

    id: str  # made by the server (UPLOAD_ID): two people uploading "digits.npz" get two ids
    name: str  # what the person called it
    kind: str  # "npz" or "idx"
    file: str  # the .npz file's name in the folder; "" for IDX (the folder itself)
    class_names: tuple[str, ...]
    n_train: int
    n_test: int
    saved_at: str

    @property
    def path(self):
        folder = uploads_dir() / self.id
        return folder / self.file if self.file else folder

    def label(self):
        """What a selectbox shows: the name, the kind and the id (names may repeat)."""
        return f"{self.name} ({self.kind}, {self.n_train:,} training images, id {self.id})"


def uploads_dir():
    """Where uploads are kept (it may not exist yet, or be read-only: see save_upload)."""
    return datasets_dir() / UPLOADS_FOLDER


def folder_name(text):
    """A safe name from what the person typed: letters, digits, '-', '_' and '.'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text or "").strip()).strip(".-")[:60]
    if not name:
        raise InputError("name", "give the data set a name (letters, digits, '-', '_' or '.')")
    return name


def idx_name(file_name):
    """The MNIST name an uploaded IDX file stands for (e.g. 'train-images.idx3-ubyte.gz' ->
    'train-images-idx3-ubyte'), or None when the name is not one of the four."""
    stem = file_name[:-3] if file_name.endswith(".gz") else file_name
    stem = stem.lower().replace(".", "-").replace("_", "-").replace("test-", "t10k-")
    return stem if stem in IDX_NAMES else None


def upload_kind(file_names):
    """'npz' for one .npz file, 'idx' for the four IDX files; otherwise an InputError that says why."""
    if not file_names:
        raise InputError("upload", "choose a .npz file (arrays x, y[, x_test, y_test]) or " + IDX_HELP)
    npz = [name for name in file_names if name.lower().endswith(".npz")]
    if npz:
        if len(file_names) > 1:
            raise InputError("upload", f"upload one .npz file on its own, got {', '.join(file_names)}")
        return "npz"
    roles = {}
    for name in file_names:
        role = idx_name(name)
        if role is None:
            raise InputError(name, "is neither a .npz file nor one of " + IDX_HELP)
        if role in roles:
            raise InputError(name, f"stands for {role}, like {roles[role]}; upload each IDX file once")
        roles[role] = name
    missing = [name for name in IDX_NAMES if name not in roles]
    if missing:
        raise InputError("upload", f"{', '.join(missing)} missing; upload all four IDX files together")
    if len({name.endswith(".gz") for name in file_names}) > 1:
        raise InputError("upload", "some IDX files end in .gz and some do not; upload all four plain "
                                   "or all four gzip-compressed")
    return "idx"


def save_upload(files, name):
    """Check uploaded (file name, bytes) pairs with `load_task` and keep them, only if they load,
    in uploads_dir()/<new id>/: every upload gets its own folder, so nobody's upload replaces
    another's, whatever the names. Returns the Upload."""
    label = folder_name(name)
    kind = upload_kind([file_name for file_name, _ in files])
    home = uploads_dir()
    upload_id = uuid.uuid4().hex[:UPLOAD_ID_LENGTH]
    staging = home / f".{upload_id}.upload"
    try:
        staging.mkdir(parents=True)
    except OSError as error:
        raise InputError("upload", f"this server cannot keep uploads: {home} cannot be written "
                                   f"({error.strerror or error}); ask the person running it") from None
    try:
        for file_name, content in files:
            if kind == "idx":
                target = idx_name(file_name) + (".gz" if file_name.endswith(".gz") else "")
            else:
                target = folder_name(Path(file_name).stem) + ".npz"
            (staging / target).write_bytes(content)
        data_path = staging if kind == "idx" else next(staging.glob("*.npz"))
        try:
            data = load_task(kind, digits=None, path=str(data_path))
        except InputError as error:  # name the uploaded file, not the staging folder
            field = Path(error.field).name if error.field.startswith(str(staging)) else error.field
            raise InputError(field, error.message.replace(str(staging), label)) from None
        if data.n_classes < 2:
            raise InputError(data_path.name if kind == "npz" else "labels",
                             f"every training label is {data.class_names[0]}; a classifier needs at "
                             "least two classes")
        upload = Upload(id=upload_id, name=label, kind=kind, file=data_path.name if kind == "npz" else "",
                        class_names=tuple(data.class_names), n_train=len(data.y_train),
                        n_test=len(data.y_test),
                        saved_at=datetime.now(timezone.utc).isoformat(timespec="microseconds"))
        (staging / UPLOAD_INFO).write_text(json.dumps(dataclasses.asdict(upload)))
        os.replace(staging, home / upload_id)  # one rename: the folder is complete or absent
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    remember_upload(upload_id)
    disk.note_written(home / upload_id)  # past the disk quota, the oldest files go
    return upload


def get_upload(upload_id):
    """The Upload of an id that a link or a selectbox gave; only an id of the server's own format
    naming a folder under uploads_dir() is accepted, never a path."""
    if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
        raise InputError("upload", f"{str(upload_id)[:40]!r} is not an upload id ({UPLOAD_ID_LENGTH} "
                                   "hexadecimal digits, as the Data page gives them)")
    try:
        info = json.loads((uploads_dir() / upload_id / UPLOAD_INFO).read_text())
        upload = Upload(**{**info, "class_names": tuple(info["class_names"])})
    except FileNotFoundError:
        raise InputError("upload", f"there is no uploaded data set {upload_id} on this server; "
                                   "upload it on the Data page") from None
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise InputError("upload", f"the uploaded data set {upload_id} is damaged ({error}); "
                                   "upload it again") from None
    if upload.id != upload_id or upload.kind not in ("npz", "idx") or "/" in upload.file:
        raise InputError("upload", f"the uploaded data set {upload_id} is damaged; upload it again")
    remember_upload(upload_id)  # this browser session was given its id (a link, a recorded run)
    return upload


def resolve_upload(upload_id):
    """The path of an uploaded data set's files (its .npz, or its folder of IDX files)."""
    return get_upload(upload_id).path


def _browser_session():
    """Streamlit, inside a script run of a browser session; None outside one (the CLI, a test)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx() is None:
            return None
        import streamlit as st

        return st
    except Exception:
        return None


def remember_upload(upload_id):
    """This browser session may list the upload from now on (it made it, or was given its id)."""
    st = _browser_session()
    if st is not None:
        known = st.session_state.setdefault(KNOWN_UPLOADS, [])
        if upload_id not in known:
            known.append(upload_id)


def session_upload_ids():
    """The upload ids this browser session made or was given: remembered ones and the one its page's
    link names (`?upload=<id>`); none outside a browser session."""
    st = _browser_session()
    if st is None:
        return []
    ids = list(st.session_state.get(KNOWN_UPLOADS, []))
    try:
        linked = st.query_params.get("upload")
    except Exception:
        linked = None
    if isinstance(linked, str) and UPLOAD_ID.fullmatch(linked) and linked not in ids:
        ids.append(linked)
    return ids


def list_uploads(ids=None):
    """The uploads this browser session made or was given (`session_upload_ids`), or those of `ids`,
    newest first (for a selectbox); one that is gone (cleaned up) or damaged is left out. Nobody
    is shown another person's uploads: an upload's id is its key."""
    uploads = []
    for upload_id in session_upload_ids() if ids is None else ids:
        try:
            uploads.append(get_upload(upload_id))
        except InputError:
            continue  # removed by the disk quota's clean-up, or damaged: not offered
    return sorted(uploads, key=lambda upload: (upload.saved_at, upload.id), reverse=True)


def training_config(config, upload, digits):
    """The current set-up switched to an uploaded data set: `digits` (two labels) or None (all
    classes); the output layer follows (1 sigmoid unit, or one unit per class)."""
    subset = config.subset if config.subset is not None and config.subset <= upload.n_train else None
    config = dataclasses.replace(config, dataset=upload.kind, data_path=None, upload=upload.id,
                                 digits=tuple(digits) if digits is not None else None, subset=subset)
    return config.fit_output(2 if digits is not None else len(upload.class_names)).validated()


# -- the disk ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DiskUse:
    """What the studio keeps on disk, for the Data page: a row per kind and a sentence on the quota."""

    rows: list  # {"kind", "files", "size", "clean-up may free"}
    summary: str
    over: bool  # past the quota (a clean-up is due)


DISK_USE_SECONDS = 10.0  # a Data page run within this long of the last shows the same walk
_disk_use = (0.0, None)


def disk_use():
    """The studio home against its disk quota (backprop.disk): one walk at most every
    DISK_USE_SECONDS, whoever asks. Past the quota it is cleaned up first."""
    global _disk_use
    at, shown = _disk_use
    if shown is not None and time.monotonic() - at < DISK_USE_SECONDS:
        return shown
    disk.note_written()  # cleans up when due (cheap otherwise)
    report = disk.report()
    rows = [{"kind": kind, "files": files, "size": format_bytes(size),
             "clean-up may free": format_bytes(freeable) if freeable else "-"}
            for kind, files, size, freeable in report.rows]
    summary = (f"{format_bytes(report.total)} of the disk quota of {format_bytes(report.budget)} "
               f"({report.share:.0%}, {disk.DISK_VARIABLE}). Past the quota the oldest files go first, "
               f"down to {disk.LOW_WATER:.0%} of it: leftovers of ended processes, then checkpoints of ended "
               "runs, their histories, uploads and cached data. Running and pinned runs (Pin on Compare "
               f"runs; {report.pinned_runs} now) are kept.")
    shown = DiskUse(rows, summary, report.total > report.budget)
    _disk_use = (time.monotonic(), shown)
    return shown
