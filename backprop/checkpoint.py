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
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .config import TrainConfig
from .errors import InputError
from .history import History
from .network import Network

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

    Raises InputError("checkpoint", ...) for anything that is not a valid checkpoint.
    """
    name = getattr(source, "name", None) or (str(source) if isinstance(source, (str, Path)) else "upload")
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise _refuse(f"{source} is not a file")
    if hasattr(source, "read") and not hasattr(source, "seek"):
        source = io.BytesIO(source.read())
    try:
        archive = np.load(source, allow_pickle=False)
    except ValueError as error:  # a pickled object array, or not an .npy/.npz at all
        raise _refuse(f"{name} is not a Backprop Studio checkpoint (.npz without pickles): "
                      f"{error}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise _refuse(f"{name} is not a readable .npz file: {error}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _refuse(f"{name} holds a single array, not a checkpoint (.npz with W1, b1, ... and meta)")
    with archive:
        try:
            arrays = {key: archive[key] for key in archive.files}
        except ValueError as error:  # object arrays need pickle, which stays off
            raise _refuse(f"{name} contains pickled object arrays, which are never loaded: {error}") from None
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise _refuse(f"{name} is damaged: {error}") from None
    return _from_arrays(arrays)


def _from_arrays(arrays):
    if "meta" not in arrays:
        raise _refuse("no 'meta' entry: this .npz was not written by Backprop Studio")
    meta_array = arrays.pop("meta")
    if meta_array.shape != () or meta_array.dtype.kind != "U":
        raise _refuse("'meta' must be a single JSON string")
    try:
        meta = json.loads(str(meta_array))
    except json.JSONDecodeError as error:
        raise _refuse(f"'meta' is not valid JSON: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _refuse("'meta' does not describe a Backprop Studio checkpoint")
    if meta.get("version") != FORMAT_VERSION:
        raise _refuse(f"format version {meta.get('version')!r} is not supported "
                      f"(this version of Backprop Studio reads version {FORMAT_VERSION})")
    net_config = meta.get("network")
    if not isinstance(net_config, dict):
        raise _refuse("'meta' has no network description")
    try:
        network = Network(**net_config)
    except (InputError, TypeError) as error:
        raise _refuse(f"the network description is invalid: {error}") from None

    expected = {}
    for l, (W, b) in enumerate(network.params, start=1):
        expected[f"W{l}"] = W.shape
        expected[f"b{l}"] = b.shape
    missing = [key for key in expected if key not in arrays]
    if missing:
        raise _refuse(f"missing arrays {', '.join(missing)} for sizes {network.sizes}")
    extra = sorted(set(arrays) - set(expected))
    if extra:
        raise _refuse(f"unexpected arrays {', '.join(extra)} for sizes {network.sizes}")
    params = []
    for l in range(1, network.n_layers + 1):
        pair = []
        for key in (f"W{l}", f"b{l}"):
            value = arrays[key]
            if value.shape != expected[key]:
                raise _refuse(f"{key} has shape {value.shape}, expected {expected[key]} "
                              f"for sizes {network.sizes}")
            if str(value.dtype) != network.dtype:
                raise _refuse(f"{key} has dtype {value.dtype}, expected {network.dtype}")
            if not np.all(np.isfinite(value)):
                raise _refuse(f"{key} contains NaN or infinite values")
            pair.append(value)
        params.append(tuple(pair))
    network.set_params(params)

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
