"""Label edits: a person's corrections to a data set's training labels, kept beside the data set and
never written into its files.

A data set's identity is its name and a checksum of its training images and labels as its source
gives them (`source_key`: `mnist-3a1f0c9d2b7e`), so an edit always refers to the same image, whatever
classes, subset or order a set-up then takes from it. An edit names an image by its position in
that training split (file order) and either excludes it or gives it another of the source's labels.

Under the studio home, `label-edits/<key>.json` is the working list the Data page edits, and
`label-edits/<key>/<id>.json` a frozen copy that training uses: `id` is the first 12 hexadecimal
digits of the SHA-256 of the copy's content, and the setting `label_edits` names it. A set-up that
names an id therefore always gets the same labels (a recorded run, a link), and a list edited later
gets a new id (so every cache keyed by the set-up's data settings loads the data again).
`load_task(..., label_edits=id)` applies the copy (`apply`); without an id nothing changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from backprop.errors import InputError
from backprop.paths import studio_home, writable_folder

FOLDER = "label-edits"  # under the studio home
FORMAT = 1
ID_LENGTH = 12
EDITS_ID = re.compile(f"[0-9a-f]{{{ID_LENGTH}}}")
KEY = re.compile(r"[a-z0-9][a-z0-9-]{0,40}-[0-9a-f]{12}")  # <dataset>-<checksum>
MAX_FILE_BYTES = 32 * 1024 * 1024  # a list of edits for a few million images at most
_write_lock = threading.Lock()  # two sessions saving the same list: one after the other


def edits_dir() -> Path:
    return studio_home() / FOLDER


def source_key(dataset: str, x_train: np.ndarray, y_train: np.ndarray) -> str:
    """`<dataset>-<checksum>`: the data set's name and the SHA-256 (first 12 digits) of its training
    images and labels as the source gives them (shapes, dtypes and bytes). The same arrays (a data
    set's loader keeps them in memory) are summed once: the last few are remembered."""
    with _memo_lock:
        for arrays, key in _memo:
            if arrays[0] is x_train and arrays[1] is y_train and key.startswith(f"{dataset}-"):
                return key
    digest = hashlib.sha256()
    for array in (x_train, y_train):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    key = f"{dataset}-{digest.hexdigest()[:12]}"
    if not x_train.flags.writeable and not y_train.flags.writeable:  # cannot change under the memo
        with _memo_lock:
            _memo.insert(0, ((x_train, y_train), key))
            del _memo[MEMO_SIZE:]
    return key


MEMO_SIZE = 4
_memo = []  # ((x_train, y_train), key), newest first
_memo_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class LabelEdits:
    """The edits of one data set: excluded positions, and position -> new label (the source's own
    labels, e.g. the digit 7). A position is either excluded or relabelled, never both."""

    key: str
    n_train: int  # the training split's size (every position is below it)
    labels: tuple = ()  # the labels the source's training split has (what a relabel may give)
    excluded: frozenset = frozenset()
    relabelled: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not KEY.fullmatch(str(self.key)):
            raise InputError("label_edits", f"{str(self.key)[:60]!r} is not a data set key")
        object.__setattr__(self, "excluded", frozenset(int(i) for i in self.excluded))
        object.__setattr__(self, "relabelled", {int(i): int(v) for i, v in self.relabelled.items()})
        object.__setattr__(self, "labels", tuple(int(v) for v in self.labels))
        for index in [*self.excluded, *self.relabelled]:
            if not 0 <= index < self.n_train:
                raise InputError("label_edits", f"image {index} is not in the training set "
                                                f"(0 to {self.n_train - 1})")
        both = self.excluded & set(self.relabelled)
        if both:
            raise InputError("label_edits", f"image {min(both)} is both excluded and relabelled")
        wrong = sorted(set(self.relabelled.values()) - set(self.labels))
        if wrong:
            raise InputError("label_edits", f"{wrong[0]} is not a label of this data set "
                                            f"({', '.join(map(str, self.labels))})")

    def __len__(self):
        return len(self.excluded) + len(self.relabelled)

    # -- editing (each returns a new value) ------------------------------------------------
    def exclude(self, index):
        index = int(index)
        return dataclasses.replace(self, excluded=self.excluded | {index},
                                   relabelled={i: v for i, v in self.relabelled.items() if i != index})

    def relabel(self, index, label, given=None):
        """`index` gets `label`; giving it back its `given` label forgets the edit."""
        index, label = int(index), int(label)
        relabelled = {i: v for i, v in self.relabelled.items() if i != index}
        if label != given:
            relabelled[index] = label
        return dataclasses.replace(self, excluded=self.excluded - {index}, relabelled=relabelled)

    def restore(self, index):
        index = int(index)
        return dataclasses.replace(self, excluded=self.excluded - {index},
                                   relabelled={i: v for i, v in self.relabelled.items() if i != index})

    def status(self, index):
        """("kept", None), ("excluded", None) or ("relabelled", label) for a position."""
        index = int(index)
        if index in self.excluded:
            return "excluded", None
        if index in self.relabelled:
            return "relabelled", self.relabelled[index]
        return "kept", None

    # -- what training makes of them -------------------------------------------------------
    def apply(self, y_train: np.ndarray):
        """(labels, keep): a copy of the source's training labels with the relabels applied, and a
        boolean mask that is False for excluded images. The source's arrays are never changed."""
        if len(y_train) != self.n_train:
            raise InputError("label_edits", f"the edits are for {self.n_train:,} training images, the data "
                                            f"set has {len(y_train):,}")
        labels = np.array(y_train, copy=True)
        if self.relabelled:
            positions = np.fromiter(self.relabelled, dtype=np.int64, count=len(self.relabelled))
            labels[positions] = np.fromiter(self.relabelled.values(), dtype=np.int64,
                                            count=len(self.relabelled)).astype(labels.dtype)
        keep = np.ones(len(labels), dtype=bool)
        if self.excluded:
            keep[np.fromiter(self.excluded, dtype=np.int64, count=len(self.excluded))] = False
        return labels, keep

    # -- JSON --------------------------------------------------------------------------------
    def content(self):
        """What the list says, in a canonical form (its id is taken from this)."""
        return {"format": FORMAT, "key": self.key, "n_train": self.n_train, "labels": list(self.labels),
                "excluded": sorted(self.excluded),
                "relabelled": [[i, self.relabelled[i]] for i in sorted(self.relabelled)]}

    def edits_id(self):
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]

    @classmethod
    def from_content(cls, content, where):
        try:
            if content.get("format") != FORMAT:
                raise ValueError(f"format {content.get('format')!r}, expected {FORMAT}")
            return cls(key=content["key"], n_train=int(content["n_train"]), labels=tuple(content["labels"]),
                       excluded=frozenset(content["excluded"]),
                       relabelled={int(i): int(v) for i, v in content["relabelled"]})
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise InputError("label_edits", f"{where} is damaged ({error}); delete it and edit again") \
                from None


# -- files -------------------------------------------------------------------------------
def working_path(key):
    return edits_dir() / f"{key}.json"


def frozen_path(key, edits_id):
    return edits_dir() / key / f"{edits_id}.json"


def _read(path, where):
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError("label_edits", f"{where} is larger than {MAX_FILE_BYTES // 2**20} MB")
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError("label_edits", f"{where} cannot be read ({error})") from None
    return LabelEdits.from_content(content, where)


def _write(path, edits, extra=None):
    from .idx import write_atomic

    writable_folder(path.parent, field="label_edits")
    document = {**edits.content(), **(extra or {})}
    with _write_lock:
        try:
            write_atomic(path, json.dumps(document).encode())
        except OSError as error:
            raise InputError("label_edits", f"cannot write {path}: {error.strerror or error}") from None


def working_edits(key, n_train, labels):
    """The working list of a data set (empty when none was saved)."""
    path = working_path(key)
    if not path.is_file():
        return LabelEdits(key=key, n_train=n_train, labels=tuple(labels))
    edits = _read(path, f"the label edits of {key}")
    if edits.key != key or edits.n_train != n_train:
        raise InputError("label_edits", f"the label edits of {key} are for another data set; delete {path}")
    return edits


def save_working(edits):
    _write(working_path(edits.key), edits,
           {"updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def freeze(edits):
    """Keep a copy of the list that training can name; returns its id (None for no edits)."""
    if not len(edits):
        return None
    edits_id = edits.edits_id()
    path = frozen_path(edits.key, edits_id)
    if not path.is_file():
        _write(path, edits)
    return edits_id


def frozen_edits(edits_id, key):
    """The frozen list `edits_id` of the data set `key`; an InputError says why there is none."""
    if not isinstance(edits_id, str) or not EDITS_ID.fullmatch(edits_id):
        raise InputError("label_edits", f"{str(edits_id)[:40]!r} is not a label edits id ({ID_LENGTH} "
                                        "hexadecimal digits, as the Data page gives them)")
    path = frozen_path(key, edits_id)
    if not path.is_file():
        elsewhere = sorted(p.parent.name for p in edits_dir().glob(f"*/{edits_id}.json"))
        if elsewhere:
            raise InputError("label_edits", f"the label edits {edits_id} are for the data set "
                                            f"{elsewhere[0]}, not {key}; clear the setting or choose that "
                                            "data set")
        raise InputError("label_edits", f"there are no label edits {edits_id} on this server (for {key}); "
                                        "make them on the Data page under Suspect labels")
    edits = _read(path, f"the label edits {edits_id}")
    if edits.key != key or edits.edits_id() != edits_id:
        raise InputError("label_edits", f"the label edits {edits_id} are damaged; delete {path}")
    return edits
