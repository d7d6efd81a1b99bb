"""Saving and loading a trained network as one plain `.npz` file, never a pickle.

Format version 2 (written since issue 21), one .npy member per array:

- `meta`: the JSON text (UTF-8, a uint8 array) of the format, version, network config, TrainConfig
  and what of the History is not an array (settings, markers, divergence);
- `W1`, `b1`, ..., `WL`, `bL`: the parameters, stored as they are;
- `history.<record>`: each numeric record of the History (HISTORY_ARRAYS: the per-step rows, test
  evaluations, activation histograms, the trajectory's parameter snapshots as float16 differences,
  a kept loss landscape's grid and path), deflated.

Version 1 kept everything but the parameters in `meta`, a NumPy unicode string (4 bytes a
character) with the trajectory as base64: 36 MB for the tutorial's 1.2 MB of weights. It still loads.

Loading uses allow_pickle=False and checks everything before anything large is built: `meta`'s size
from its header, then its JSON's values and nesting before parsing it (backprop.bounded_json), then
every array's header against the network and history `meta` describes, and the whole against the
memory budget. A damaged or foreign file is refused with a clear message naming "checkpoint".
"""

import io
import json
import os
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .bounded_json import SCAN_CHUNK, JsonScan, parse_bounded
from .budget import check_bytes, check_network_memory, format_bytes, network_bytes, parameter_count
from .config import TrainConfig
from .errors import InputError
from .health import HEALTH_STATS, HISTOGRAM_BINS
from .history import HISTOGRAM_CAPACITY, LAYER_STATS, MAX_SNAPSHOTS, History
from .landscape import MAX_RESOLUTION
from .network import DTYPES, Network, check_choice, check_sizes
from .npz import NpzArchive

FORMAT = "backprop-studio-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# meta (version 2): a few kB for a run's set-up, plus up to 10,000 markers (about 80 bytes and 9
# JSON values each). Parsing at the limits builds at most about 80 MB (backprop.bounded_json).
MAX_META_BYTES = 4 * 2**20
MAX_META_VALUES = 500_000
MAX_META_DEPTH = 32  # a checkpoint's meta nests 5 levels (version 1's histogram shares: 6)
# meta (version 1): a full History in JSON. 100,000 rows of a 5-layer network with its base64
# trajectory reach about 100 million characters and 6 million values. It is scanned as it is read
# (a few MB at a time) and kept as UTF-8 only as far as it stays within these limits.
LEGACY_MAX_META_CHARS = 128 * 2**20
LEGACY_MAX_META_VALUES = 16_000_000
# A loaded History keeps growing to its capacity as training goes on: at most what a run keeps.
MAX_HISTORY_CAPACITY = 100_000

# Every array a History may add to a checkpoint: its dtype and shape. A shape's names are sizes
# that the arrays naming them share: "layers", "hidden" and "parameters" come from the network,
# the others are bounded by HISTORY_SIZE_LIMITS.
HISTORY_ARRAYS = {
    "history.iteration": ("int64", ("rows",)),
    "history.epoch": ("float64", ("rows",)),
    "history.cost": ("float64", ("rows",)),
    "history.layers": ("float32", ("rows", "layers", len(LAYER_STATS))),
    "history.health": ("float32", ("rows", "hidden", len(HEALTH_STATS))),
    "history.evaluations.iteration": ("int64", ("evaluations",)),
    "history.evaluations.test_cost": ("float64", ("evaluations",)),
    "history.evaluations.test_accuracy": ("float64", ("evaluations",)),
    "history.histograms.iteration": ("int64", ("histograms",)),
    "history.histograms.low": ("float32", ("histograms", "hidden")),
    "history.histograms.high": ("float32", ("histograms", "hidden")),
    "history.histograms.shares": ("float32", ("histograms", "hidden", HISTOGRAM_BINS)),
    "history.trajectory.iterations": ("int64", ("snapshots",)),
    "history.trajectory.anchor": ("float32", ("parameters",)),
    "history.trajectory.diffs": ("float16", ("snapshots", "parameters")),
    "history.landscape.xs": ("float64", ("grid columns",)),
    "history.landscape.ys": ("float64", ("grid rows",)),
    "history.landscape.costs": ("float64", ("grid rows", "grid columns")),
    "history.landscape.path": ("float64", ("path points", 2)),
    "history.landscape.path_iterations": ("int64", ("path points",)),
}
HISTORY_SIZE_LIMITS = {"rows": MAX_HISTORY_CAPACITY, "evaluations": MAX_HISTORY_CAPACITY,
                       "histograms": HISTOGRAM_CAPACITY, "snapshots": MAX_SNAPSHOTS,
                       "grid columns": MAX_RESOLUTION, "grid rows": MAX_RESOLUTION,
                       "path points": MAX_SNAPSHOTS + 1}


@dataclass
class Checkpoint:
    network: Network
    config: TrainConfig | None = None
    history: History | None = None
    meta: dict = field(default_factory=dict)  # format, version, saved_at, network config


def save_checkpoint(path, network, config=None, history=None):
    """Write the network (and optionally its TrainConfig and History) to `path` atomically.

    The data goes to a temporary file in the same folder, then os.replace() renames it, so the
    final name never holds a half-written file, even if the process dies mid-write.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    history_arrays = {}
    meta = _without_arrays({
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "network": network.config(),
        "config": config.to_dict() if config is not None else None,
        "history": history.to_dict() if history is not None else None,
    }, (), history_arrays)
    text = json.dumps(meta, default=_json_default, allow_nan=True).encode("utf-8")
    if len(text) > MAX_META_BYTES:  # never write a file load_checkpoint would refuse
        raise InputError("checkpoint", f"the set-up and notes of this run take {format_bytes(len(text))} "
                                       f"as JSON, over the {format_bytes(MAX_META_BYTES)} a checkpoint holds")
    members = {"meta": (np.frombuffer(text, dtype=np.uint8), True)}
    for l, (W, b) in enumerate(network.params, start=1):
        members[f"W{l}"] = (W, False)  # float weights barely deflate (4%): stored as they are
        members[f"b{l}"] = (b, False)
    members.update((name, (array, True)) for name, array in history_arrays.items())
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise InputError("checkpoint", f"cannot write to {folder}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as out:
            _write_npz(out, members)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


def _without_arrays(value, where, arrays):
    """`value` (nested dicts) without its NumPy arrays, which go to `arrays` named by their path
    ("history.trajectory.diffs"), each as the dtype HISTORY_ARRAYS gives it."""
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        if isinstance(item, np.ndarray):
            name = ".".join((*where, key))
            if name not in HISTORY_ARRAYS:  # a record added to History without a place here
                raise TypeError(f"the array {name} has no place in a checkpoint (HISTORY_ARRAYS)")
            arrays[name] = np.ascontiguousarray(item, dtype=HISTORY_ARRAYS[name][0])
        else:
            kept[key] = _without_arrays(item, (*where, key), arrays)
    return kept


def _write_npz(out, members):
    """An .npz (a zip of .npy files, what np.load reads) of members name -> (array, deflate)."""
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(out, "w", allowZip64=True) as archive:
        for name, (array, deflate) in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _refuse(message):
    return InputError("checkpoint", message)


def load_checkpoint(source):
    """Read a checkpoint from a path or a binary file-like object (e.g. an upload).

    The archive is read member by member (backprop.npz): `meta` is bounded before it is parsed, and
    every array's declared shape and dtype are checked against the memory budget and against the
    network and history `meta` describes, and that network's size against the budget, before any
    weight or history array is read or any Network is built.
    Raises InputError("checkpoint", ...) for anything that is not a valid checkpoint.
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, Path)) else "upload")
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise _refuse(f"{source} is not a file")
    if hasattr(source, "read") and not hasattr(source, "seek"):
        source = io.BytesIO(source.read())
    with NpzArchive(source, "checkpoint", name) as archive:
        meta = _read_meta(archive)
        net_config = meta.get("network")
        if not isinstance(net_config, dict):
            raise _refuse("'meta' has no network description")
        sizes, dtype = _declared_network(net_config)
        expected = {}
        for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=False), start=1):
            expected[f"W{l}"] = (fan_out, fan_in)
            expected[f"b{l}"] = (fan_out, 1)
        arrays = {key: member for key, member in archive.members.items() if key != "meta"}
        missing = [key for key in expected if key not in arrays]
        if missing:
            raise _refuse(f"missing arrays {', '.join(missing)} for sizes {sizes}")
        history_members = {key: member for key, member in arrays.items()
                           if key in HISTORY_ARRAYS and meta["version"] >= 2}
        extra = sorted(set(arrays) - set(expected) - set(history_members))
        if extra:
            raise _refuse(f"unexpected arrays {', '.join(extra)} for sizes {sizes}")
        for key, shape in expected.items():
            if arrays[key].shape != shape:
                raise _refuse(f"{key} has shape {arrays[key].shape}, expected {shape} for sizes {sizes}")
            if str(arrays[key].dtype) != dtype:
                raise _refuse(f"{key} has dtype {arrays[key].dtype}, expected {dtype}")
        _check_history(meta, history_members, sizes, dtype)
        params = []
        for l in range(1, len(sizes)):
            pair = []
            for key in (f"W{l}", f"b{l}"):
                value = archive.read(key)
                if not np.all(np.isfinite(value)):
                    raise _refuse(f"{key} contains NaN or infinite values")
                pair.append(value)
            params.append(tuple(pair))
        for key in history_members:
            *parents, last = key.split(".")
            node = meta
            for part in parents:
                node = node[part]
            node[last] = archive.read(key)
    try:
        network = Network(**net_config)
    except (InputError, TypeError) as error:
        raise _refuse(f"the network description is invalid: {error}") from None
    network.set_params(params)
    return _with_setup(meta, network)


def _read_meta(archive):
    """`meta` parsed, refused from its header when it is too long, and before parsing when its JSON
    holds too many values or nests too deeply (what parsing builds: backprop.bounded_json)."""
    member = archive.members.get("meta")
    if member is None:
        raise _refuse("no 'meta' entry: this .npz was not written by Backprop Studio")
    if member.dtype == np.uint8 and len(member.shape) == 1:  # version 2: UTF-8 bytes
        if member.nbytes > MAX_META_BYTES:
            raise _refuse(f"'meta' is {format_bytes(member.nbytes)} of text, over the limit of "
                          f"{format_bytes(MAX_META_BYTES)} (a checkpoint's set-up and notes take a few kB)")
        data = archive.read("meta").tobytes()
        meta = parse_bounded(data, "checkpoint", "'meta'", MAX_META_VALUES, MAX_META_DEPTH)
        versions = (2,)
    elif member.dtype.kind == "U" and member.shape == ():  # version 1: a NumPy unicode string
        meta = _read_legacy_meta(archive, member)
        versions = (1,)
    else:
        raise _refuse(f"'meta' must be JSON text (a uint8 array of UTF-8), not {member.dtype} of shape "
                      f"{member.shape}")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _refuse("'meta' does not describe a Backprop Studio checkpoint")
    version = meta.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise _refuse(f"format version {version!r} is not supported (this version of Backprop Studio "
                      f"reads versions {' and '.join(map(str, READABLE_VERSIONS))})")
    if version not in versions:
        raise _refuse(f"'meta' says format version {version} but is stored as in version {versions[0]}")
    return meta


def _read_legacy_meta(archive, member):
    """Version 1's `meta`, a NumPy unicode string (UTF-32, 4 bytes a character): scanned while it is
    read, a chunk at a time, so text with too many values or too deep is refused before it is all
    read, let alone parsed; only what passes is kept, as UTF-8, for json.loads."""
    chars = member.dtype.itemsize // 4
    if chars > LEGACY_MAX_META_CHARS:
        raise _refuse(f"'meta' is {chars:,} characters of text, over the limit of "
                      f"{LEGACY_MAX_META_CHARS:,} for a checkpoint of format version 1")
    check_bytes(4 * chars, "checkpoint", f"reading 'meta' ({chars:,} characters)")  # as UTF-8, at most
    scan = JsonScan("checkpoint", "'meta'", LEGACY_MAX_META_VALUES, MAX_META_DEPTH)
    text, rest = bytearray(), b""
    for chunk in archive.chunks("meta", 4 * SCAN_CHUNK):
        chunk, rest = rest + chunk, b""
        if len(chunk) % 4:
            chunk, rest = chunk[:len(chunk) - len(chunk) % 4], chunk[len(chunk) - len(chunk) % 4:]
        scan.feed(np.frombuffer(chunk, dtype="<u4"))
        try:
            text += chunk.decode("utf-32-le").encode("utf-8")
        except UnicodeError as error:
            raise _refuse(f"'meta' is not text: {error}") from None
    # NumPy pads a unicode string with NULs to its width (and str() drops them)
    return scan.parse(text.rstrip(b"\x00"))


def _check_history(meta, members, sizes, dtype):
    """The history `meta` describes and its arrays' headers, checked against the network (sizes)
    and the budget before anything of them is read or built."""
    history = meta.get("history")
    if history is None:
        if members:
            raise _refuse(f"holds history arrays ({', '.join(sorted(members))}) but 'meta' no history")
        return
    n_layers = len(sizes) - 1
    if not isinstance(history, dict):
        raise _refuse(f"the history is invalid: a {type(history).__name__}, not an object")
    if history.get("n_layers") != n_layers:  # before History() allocates rows for its layers
        raise _refuse(f"the history has {history.get('n_layers')!r} layers, the network {n_layers}")
    capacity = history.get("capacity", MAX_HISTORY_CAPACITY)
    if isinstance(capacity, bool) or not isinstance(capacity, int) \
            or not 2 <= capacity <= MAX_HISTORY_CAPACITY:
        raise _refuse(f"the history's capacity {capacity!r} is not a whole number from 2 to "
                      f"{MAX_HISTORY_CAPACITY:,}")
    known = {"layers": n_layers, "hidden": n_layers - 1, "parameters": parameter_count(sizes)}
    limits = {**HISTORY_SIZE_LIMITS, "rows": capacity, "evaluations": capacity}
    seen = {}
    for name, member in sorted(members.items()):
        *parents, _ = name.split(".")
        node = meta
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise _refuse(f"holds the array {name} but 'meta' has no {'.'.join(parents)} for it")
        want_dtype, want_shape = HISTORY_ARRAYS[name]
        if str(member.dtype) != want_dtype:
            raise _refuse(f"{name} has dtype {member.dtype}, expected {want_dtype}")
        if len(member.shape) != len(want_shape):
            raise _refuse(f"{name} has shape {member.shape}, expected ({', '.join(map(str, want_shape))})")
        for size, want in zip(member.shape, want_shape, strict=True):
            if isinstance(want, int) or want in known:
                expected = want if isinstance(want, int) else known[want]
                if size != expected:
                    what = f" ({want})" if want in known else ""
                    raise _refuse(f"{name} has shape {member.shape}: {size} where {expected}{what} is "
                                  f"expected for sizes {sizes}")
                continue
            if size > limits[want]:
                raise _refuse(f"{name} holds {size:,} {want}, over the limit of {limits[want]:,}")
            first = seen.setdefault(want, (size, name))
            if first[0] != size:
                raise _refuse(f"{name} holds {size:,} {want} but {first[1]} {first[0]:,}")
    # loading builds the network twice (backprop.budget) and the History copies what it reads
    check_bytes(2 * network_bytes(sizes, dtype) + 2 * sum(member.nbytes for member in members.values()),
                "checkpoint", f"the network {sizes} with its history")


def _declared_network(net_config):
    """The sizes and dtype `meta` declares, checked against the memory budget before any Network
    (whose constructor allocates its parameters) is built."""
    try:
        sizes = check_sizes(net_config.get("sizes"))
        dtype = check_choice("dtype", net_config.get("dtype"), DTYPES)
    except (InputError, OverflowError) as error:  # OverflowError: a size of 1e400 in the JSON
        raise _refuse(f"the network description is invalid: {error}") from None
    check_network_memory(sizes, dtype, field="checkpoint")
    return sizes, dtype


def _with_setup(meta, network):
    """The Checkpoint of a loaded network with the training set-up and history `meta` holds."""
    config = None
    if meta.get("config") is not None:
        try:
            config = TrainConfig.from_dict(meta["config"])
        except (InputError, TypeError) as error:
            raise _refuse(f"the training config is invalid: {error}") from None
        if list(config.layers) != network.sizes[1:]:
            raise _refuse(f"the training config's layers {config.layers} do not match the "
                          f"network's sizes {network.sizes}")
    history = None
    if meta.get("history") is not None:  # its layers and arrays were checked by _check_history
        try:
            history = History.from_dict(meta["history"])
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as error:
            raise _refuse(f"the history is invalid: {error}") from None
    info = {key: meta.get(key) for key in ("format", "version", "saved_at", "network")}
    return Checkpoint(network=network, config=config, history=history, meta=info)


__all__ = ["Checkpoint", "FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]
