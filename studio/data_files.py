"""Data sets a person adds on the Data page: downloads with a progress bar, and their own files,
saved under the studio home only once `load_task` has accepted them. No Streamlit here."""

import dataclasses
import os
import re
import shutil
import uuid
from pathlib import Path

from backprop.data import REGISTRY, load_task
from backprop.data.download import is_complete
from backprop.data.idx import mnist_names
from backprop.errors import InputError
from backprop.paths import datasets_dir

USER_FOLDER = "user"  # under datasets_dir(): one folder per uploaded data set
IDX_NAMES = tuple(mnist_names().values())  # train-images-idx3-ubyte, ..., t10k-labels-idx1-ubyte
IDX_HELP = ("the four MNIST-style IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (all plain or all .gz)")


# -- downloads ---------------------------------------------------------------------------------
def megabytes(n_bytes):
    return f"{n_bytes / 1e6:,.1f} MB"


def download_rows():
    """One row per downloadable data set: what it is, its size and whether it is here already."""
    rows = []
    for name, spec in REGISTRY.items():
        sizes = [remote.size for remote in spec.files]
        rows.append({"name": name, "description": spec.description,
                     "size": megabytes(sum(sizes)) if None not in sizes else "see description",
                     "credit and license": spec.credit,
                     "present": is_complete(spec, datasets_dir() / spec.folder, verify=False)})
    return rows


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
def user_datasets_dir():
    path = datasets_dir() / USER_FOLDER
    path.mkdir(parents=True, exist_ok=True)
    return path


def folder_name(text):
    """A safe folder name from what the person typed: letters, digits, '-', '_' and '.'."""
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
    """Check uploaded (file name, bytes) pairs with `load_task` and keep them in
    user_datasets_dir()/<name>/ only if they load. A data set saved earlier under that name is
    replaced only by a valid one. Returns {kind, path, class_names, n_train, n_test}."""
    folder = folder_name(name)
    kind = upload_kind([file_name for file_name, _ in files])
    home = user_datasets_dir()
    staging = home / f".{folder}.upload-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
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
            raise InputError(field, error.message.replace(str(staging), folder)) from None
        if data.n_classes < 2:
            raise InputError(data_path.name if kind == "npz" else "labels",
                             f"every training label is {data.class_names[0]}; a classifier needs at "
                             "least two classes")
        final = home / folder
        old = home / f".{folder}.old-{uuid.uuid4().hex[:8]}"
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)  # one rename: the folder holds the old files or the new, never half
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    path = final if kind == "idx" else final / data_path.name
    return {"kind": kind, "path": str(path), "class_names": list(data.class_names),
            "n_train": len(data.y_train), "n_test": len(data.y_test)}


def training_config(config, upload, digits):
    """The current set-up switched to an uploaded data set: `digits` (two labels) or None (all
    classes); the output layer follows (1 sigmoid unit, or one unit per class)."""
    classes = len(upload["class_names"])
    layers = [*list(config.layers)[:-1], 1 if digits is not None else classes]
    subset = config.subset if config.subset is not None and config.subset <= upload["n_train"] else None
    return dataclasses.replace(config, dataset=upload["kind"], data_path=upload["path"],
                               digits=tuple(digits) if digits is not None else None,
                               layers=layers, subset=subset).validated()
