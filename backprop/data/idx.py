"""IDX files (the MNIST format): check them, parse them once with python-mnist, cache the result.

python-mnist builds Python lists (seconds for 70,000 images), so its output is saved as .npy files
under ``cache_dir()`` and, within a process, memoised. The cache is keyed by the SHA-256 of the
source files, so changed sources never meet a stale cache.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import math
import os
import shutil
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backprop.budget import check_bytes
from backprop.errors import InputError
from backprop.paths import cache_dir

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
CACHE_VERSION = 1
# Memory per pixel while python-mnist parses a file: the bytes read, an array("B") of them, a
# list of Python ints (8-byte pointers) and the uint8 array made from it.
PARSE_BYTES_PER_PIXEL = 11
GZIP_CHUNK = 1 << 20
SPLITS = ("train", "test")


class ChecksumError(InputError):
    """A file whose SHA-256 differs from its manifest: damaged, truncated or replaced."""


@dataclass(frozen=True)
class RawSplits:
    """Parsed IDX data as read-only uint8 arrays, shared by every task built on it."""

    x_train: np.ndarray  # (n_train, rows * cols)
    y_train: np.ndarray  # (n_train,)
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int]


def mnist_names() -> dict[str, str]:
    return {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }


def emnist_names(variant: str) -> dict[str, str]:
    """The names python-mnist's ``select_emnist(variant)`` looks for (always gzip)."""
    return {
        f"{split}_{kind}": f"emnist-{variant}-{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        for split in SPLITS
        for kind in ("images", "labels")
    }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path) -> dict[str, str]:
    """Read a ``sha256sum``-style file: ``<hex>  <name>`` per line."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file, then rename, so a crash never leaves half a file at ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def find_idx_files(
    folder: Path, names: dict[str, str], gz_only: bool = False
) -> tuple[dict[str, Path], bool]:
    """Find the four files either all gzip-compressed or all plain; python-mnist reads one kind at a time."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            "path", f"{folder} is not a folder; expected a folder holding {_expected_list(names)}"
        )
    gz = {role: folder / f"{name}.gz" for role, name in names.items()}
    if all(p.is_file() for p in gz.values()):
        return gz, True
    plain = {role: folder / name for role, name in names.items()}
    if not gz_only and all(p.is_file() for p in plain.values()):
        return plain, False
    # Report the flavour the person seems to use: .gz names if any .gz file is there, else plain names.
    chosen = gz if gz_only or any(p.is_file() for p in gz.values()) else plain
    missing = [p.name for p in chosen.values() if not p.is_file()]
    raise InputError(
        "path", f"{folder} lacks {', '.join(missing)}; expected {_expected_list(names, gz_only)}"
    )


def _expected_list(names: dict[str, str], gz_only: bool = False) -> str:
    listed = ", ".join(names.values())
    return f"{listed} (each with .gz)" if gz_only else f"{listed} (all plain or all ending in .gz)"


def read_idx_header(path: Path, kind: str) -> tuple[int, tuple[int, ...]]:
    """Check magic number and length of one IDX file; return (count, item shape).

    For .gz files the length is checked against the gzip trailer (uncompressed size mod 2**32), which
    catches truncated downloads without decompressing the whole file.
    """
    path = Path(path)
    magic_wanted, ndim = (IMAGES_MAGIC, 3) if kind == "images" else (LABELS_MAGIC, 1)
    header_len = 4 + 4 * ndim
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(header_len)
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise InputError(
            str(path), f"cannot be read as {'gzip' if path.suffix == '.gz' else 'IDX'}: {exc}"
        ) from exc
    if len(header) < header_len:
        raise InputError(
            str(path), f"is truncated: {len(header)} bytes, shorter than the {header_len}-byte IDX header"
        )
    magic, *dims = struct.unpack(f">{1 + ndim}I", header)
    if magic != magic_wanted:
        raise InputError(
            str(path),
            f"has magic number {magic}, expected {magic_wanted} for IDX {kind} "
            f"({'images: uint8, 3 dimensions' if kind == 'images' else 'labels: uint8, 1 dimension'})",
        )
    count, shape = dims[0], tuple(dims[1:])
    if kind == "images" and (0 in shape):
        raise InputError(
            str(path), f"declares images of {shape[0]}x{shape[1]} pixels; both must be at least 1"
        )
    if kind == "images":  # before anything reads the data: python-mnist builds lists of it
        check_bytes(count * math.prod(shape) * PARSE_BYTES_PER_PIXEL, str(path),
                    f"its {count:,} images of {shape[0]}x{shape[1]} pixels, once parsed,")
    wanted = idx_bytes(count, shape)
    if path.suffix == ".gz":
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            (actual,) = struct.unpack("<I", handle.read(4))
        if actual != wanted % 2**32:
            raise InputError(
                str(path),
                f"is truncated or damaged: the header promises {count} {kind} but the gzip "
                f"content holds {actual} bytes, not {wanted}",
            )
    else:
        actual = path.stat().st_size
        if actual != wanted:
            raise InputError(
                str(path),
                f"holds {actual} bytes, but its header promises {count} {kind} ({wanted} bytes)"
                f"; the file is {'truncated' if actual < wanted else 'too long'}",
            )
    return count, shape


def idx_bytes(count: int, shape: tuple[int, ...]) -> int:
    """The uncompressed length of an IDX file of `count` items of `shape` (header included)."""
    return 4 + 4 * (1 + len(shape)) + count * math.prod(shape)


def check_gzip_length(path: Path, wanted: int) -> None:
    """Decompress `path` in chunks, keeping none, and refuse it as soon as it holds more than
    `wanted` bytes (or at the end, fewer): the gzip trailer that read_idx_header checks holds the
    length only modulo 2**32, so a small file can still decompress to far more than it promises."""
    total = 0
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(GZIP_CHUNK):
                total += len(block)
                if total > wanted:
                    raise InputError(
                        str(path),
                        f"decompresses to more than the {wanted:,} bytes its header promises; "
                        "the file is damaged or forged",
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(str(path), f"cannot be read as gzip: {exc}") from exc
    if total != wanted:
        raise InputError(str(path), f"decompresses to {total:,} bytes, not the {wanted:,} its header "
                                    "promises; the file is truncated or damaged")


def _check_split(paths: dict[str, Path], split: str) -> tuple[int, int]:
    n_images, shape = read_idx_header(paths[f"{split}_images"], "images")
    n_labels, _ = read_idx_header(paths[f"{split}_labels"], "labels")
    if split == "train" and n_images == 0:
        raise InputError(
            str(paths["train_images"]),
            "holds 0 images; a data set needs training images (and at least two classes)",
        )
    if n_images != n_labels:
        raise InputError(
            str(paths[f"{split}_labels"]),
            f"holds {n_labels} labels but {paths[f'{split}_images'].name} holds {n_images} images; "
            "they must match",
        )
    return shape  # type: ignore[return-value]


def load_idx(
    folder: Path, emnist_variant: str | None = None, expected: dict[str, str] | None = None
) -> RawSplits:
    """Load a folder of four IDX files (MNIST names, or EMNIST names for ``emnist_variant``).

    ``expected`` maps file names to SHA-256; when given, every file must match it before anything is
    parsed (shipped and downloaded sets), and a mismatch raises ChecksumError.
    """
    names = emnist_names(emnist_variant) if emnist_variant else mnist_names()
    paths, gz = find_idx_files(Path(folder), names, gz_only=emnist_variant is not None)
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths.values())
    wanted = tuple(sorted((expected or {}).items()))
    return _load_idx_memo(str(Path(folder).resolve()), emnist_variant, gz, stamp, wanted, str(cache_dir()))


@functools.lru_cache(maxsize=8)
def _load_idx_memo(folder, emnist_variant, gz, stamp, wanted, cache_root) -> RawSplits:
    names = emnist_names(emnist_variant) if emnist_variant else mnist_names()
    paths = {role: Path(folder) / (name + (".gz" if gz else "")) for role, name in names.items()}
    hashes = {role: sha256_file(p) for role, p in paths.items()}
    expected = dict(wanted)
    for role, path in paths.items():
        if expected and expected.get(path.name) != hashes[role]:
            raise ChecksumError(
                str(path),
                f"SHA-256 is {hashes[role]}, the manifest says {expected.get(path.name, '(no entry)')}: "
                "the file is damaged or was replaced; restore it "
                "(shipped MNIST: `git checkout -- data/mnist/`; "
                "a download: delete it and run `python -m backprop data download NAME` again)",
            )
    arrays = {}
    shapes = {}
    for split in SPLITS:
        shapes[split] = _check_split(paths, split)
        key_source = {
            "version": CACHE_VERSION,
            "emnist": emnist_variant,
            "split": split,
            "images": hashes[f"{split}_images"],
            "labels": hashes[f"{split}_labels"],
        }
        key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:24]
        split_dir = Path(cache_root) / f"idx-{key}"
        cached = _read_cache(split_dir)
        if cached is None:
            cached = _parse(Path(folder), emnist_variant, gz, split, shapes[split])
            _write_cache(split_dir, *cached)
        arrays[split] = cached
    if shapes["train"] != shapes["test"]:
        raise InputError(
            str(folder),
            f"training images are {shapes['train']} pixels but test images are "
            f"{shapes['test']}; both splits need the same size",
        )
    (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    return RawSplits(x_train, y_train, x_test, y_test, tuple(shapes["train"]))


def clear_memory_cache() -> None:
    """Forget in-process results (tests, or after files changed under the same name and time)."""
    _load_idx_memo.cache_clear()


def _parse(
    folder: Path, emnist_variant: str | None, gz: bool, split: str, shape
) -> tuple[np.ndarray, np.ndarray]:
    from mnist import MNIST  # imported late: only the first, uncached load needs it

    if gz:  # python-mnist reads each file whole: first make sure none holds more than it says
        names = emnist_names(emnist_variant) if emnist_variant else mnist_names()
        for kind in ("images", "labels"):
            path = Path(folder) / f"{names[f'{split}_{kind}']}.gz"
            count, item_shape = read_idx_header(path, kind)
            check_gzip_length(path, idx_bytes(count, item_shape))
    reader = MNIST(str(folder), gz=gz)
    if emnist_variant:
        reader.select_emnist(emnist_variant)  # also un-mirrors EMNIST's transposed images
    try:
        images, labels = reader.load_training() if split == "train" else reader.load_testing()
    except (ValueError, OSError, EOFError, struct.error) as exc:
        raise InputError(str(folder), f"python-mnist could not read the {split} files: {exc}") from exc
    n_pixels = int(shape[0]) * int(shape[1])
    x = np.array(images, dtype=np.uint8).reshape(len(images), n_pixels)
    y = np.array(labels, dtype=np.uint8)
    return x, y


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npy_from_bytes(data: bytes) -> np.ndarray:
    """A read-only array viewing ``data``: no copy after the read that was needed for the checksum."""
    buffer = io.BytesIO(data)
    version = np.lib.format.read_magic(buffer)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buffer)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buffer)
    if fortran or dtype != np.uint8:
        raise ValueError("unexpected array layout")
    count = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=buffer.tell()).reshape(shape)


def _write_cache(split_dir: Path, x: np.ndarray, y: np.ndarray) -> None:
    split_dir.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, array in (("images", x), ("labels", y)):
        data = _npy_bytes(array)
        sums[name] = hashlib.sha256(data).hexdigest()
        write_atomic(split_dir / f"{name}.npy", data)
    # The index is written last: a cache folder without it is incomplete and is simply rebuilt.
    write_atomic(split_dir / "index.json", json.dumps({"version": CACHE_VERSION, "sha256": sums}).encode())


def _read_cache(split_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    index = split_dir / "index.json"
    if not index.is_file():
        return None
    try:
        sums = json.loads(index.read_text())["sha256"]
        arrays = []
        for name in ("images", "labels"):
            data = (split_dir / f"{name}.npy").read_bytes()
            if hashlib.sha256(data).hexdigest() != sums[name]:
                raise ValueError(f"{name}.npy does not match its checksum")
            arrays.append(_npy_from_bytes(data))
        x, y = arrays
        if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
            raise ValueError("cached arrays have inconsistent shapes")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"cache {split_dir} is damaged ({exc}); parsing the IDX files again", stacklevel=4)
        shutil.rmtree(split_dir, ignore_errors=True)
        return None
    return x, y
