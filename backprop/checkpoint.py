"""Saving and loading a trained network as one plain `.npz` file, never a pickle.

The file holds W1, b1, ..., WL, bL and one JSON string (`meta`) with the format version, the
network's config, the TrainConfig and the History. Loading uses allow_pickle=False and checks
everything against the config before building a Network, so a damaged or foreign file is
refused with a clear message instead of a crash or, worse, code execution.
"""

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .budget import check_network_memory
from .config import TrainConfig
from .errors import InputError
from .history import History
from .network import DTYPES, Network, check_choice, check_sizes
from .npz import NpzArchive

FORMAT = "backprop-studio-checkpoint"
FORMAT_VERSION = 1


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
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "network": network.config(),
        "config": config.to_dict() if config is not None else None,
        "history": history.to_dict() if history is not None else None,
    }
    arrays = {"meta": np.array(json.dumps(meta, default=_json_default, allow_nan=True))}
    for l, (W, b) in enumerate(network.params, start=1):
        arrays[f"W{l}"] = W
        arrays[f"b{l}"] = b
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise InputError("checkpoint", f"cannot write to {folder}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path


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

    The archive is read member by member (backprop.npz): every array's declared shape and dtype
    are checked against the memory budget and against the network that `meta` describes, and that
    network's size against the budget, before any weight array is read or any Network is built.
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
        extra = sorted(set(arrays) - set(expected))
        if extra:
            raise _refuse(f"unexpected arrays {', '.join(extra)} for sizes {sizes}")
        for key, shape in expected.items():
            if arrays[key].shape != shape:
                raise _refuse(f"{key} has shape {arrays[key].shape}, expected {shape} for sizes {sizes}")
            if str(arrays[key].dtype) != dtype:
                raise _refuse(f"{key} has dtype {arrays[key].dtype}, expected {dtype}")
        params = []
        for l in range(1, len(sizes)):
            pair = []
            for key in (f"W{l}", f"b{l}"):
                value = archive.read(key)
                if not np.all(np.isfinite(value)):
                    raise _refuse(f"{key} contains NaN or infinite values")
                pair.append(value)
            params.append(tuple(pair))
    try:
        network = Network(**net_config)
    except (InputError, TypeError) as error:
        raise _refuse(f"the network description is invalid: {error}") from None
    network.set_params(params)
    return _with_setup(meta, network)


def _read_meta(archive):
    member = archive.members.get("meta")
    if member is None:
        raise _refuse("no 'meta' entry: this .npz was not written by Backprop Studio")
    if member.shape != () or member.dtype.kind != "U":
        raise _refuse("'meta' must be a single JSON string")
    try:
        meta = json.loads(str(archive.read("meta")))
    except json.JSONDecodeError as error:
        raise _refuse(f"'meta' is not valid JSON: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _refuse("'meta' does not describe a Backprop Studio checkpoint")
    if meta.get("version") != FORMAT_VERSION:
        raise _refuse(f"format version {meta.get('version')!r} is not supported "
                      f"(this version of Backprop Studio reads version {FORMAT_VERSION})")
    return meta


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
    if meta.get("history") is not None:
        try:
            history = History.from_dict(meta["history"])
        except (KeyError, TypeError, ValueError) as error:
            raise _refuse(f"the history is invalid: {error}") from None
        if history.n_layers != network.n_layers:
            raise _refuse(f"the history has {history.n_layers} layers, the network {network.n_layers}")
    info = {key: meta.get(key) for key in ("format", "version", "saved_at", "network")}
    return Checkpoint(network=network, config=config, history=history, meta=info)


__all__ = ["Checkpoint", "FORMAT_VERSION", "load_checkpoint", "save_checkpoint"]
