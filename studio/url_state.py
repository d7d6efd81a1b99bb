"""The set-up in the URL, so a copied link opens the same configuration (and the demo view).

Only the fields that differ from the tutorial's default set-up are written, as short strings:
`?layers=392,196,98,1&learning_rate=0.5&demo=1`. Reading is forgiving: a bad value is dropped
with a message naming it, and the rest of the link still applies.
"""

import dataclasses

from backprop.config import TrainConfig
from backprop.errors import InputError

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
DEMO_KEY = "demo"


def _encode(name, value):
    if name == "digits":
        return "all" if value is None else ",".join(str(d) for d in value)
    if name == "layers":
        return ",".join(str(n) for n in value)
    if name == "batch_size":
        return "full" if value is None else str(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _decode(name, text):
    """A query string value as the field's Python value; TrainConfig.validated() checks it."""
    if name in ("digits", "layers"):
        return text
    if name in ("subset", "data_path") and text == "":
        return None
    if name == "batch_size":
        return None if text in ("", "full") else text
    if name in ("seed", "iterations", "eval_every", "subset", "batch_size"):
        try:
            return int(text)
        except ValueError:
            return text
    if name in ("learning_rate", "momentum", "beta1", "beta2", "l2"):
        try:
            return float(text)
        except ValueError:
            return text
    return text


def config_to_query(config, demo=False):
    """The query parameters for a set-up: only what differs from the defaults."""
    default = TrainConfig().validated()
    params = {name: _encode(name, getattr(config, name)) for name in FIELDS
              if getattr(config, name) != getattr(default, name)}
    if demo:
        params[DEMO_KEY] = "1"
    return params


def describes_setup(params):
    """Whether a link carries any set-up field (a bare link leaves the current set-up alone)."""
    return any(name in params for name in FIELDS)


def query_to_config(params):
    """(config, demo, problems) from query parameters; problems lists 'field: why' for each value
    that was dropped (the default is used for it)."""
    values = {name: _decode(name, str(params[name])) for name in FIELDS if name in params}
    problems = []
    demo = str(params.get(DEMO_KEY, "")).lower() in ("1", "true", "yes", "on")
    for _ in range(len(FIELDS) + 1):
        try:
            return TrainConfig(**values).validated(), demo, problems
        except InputError as error:
            if error.field not in values:  # a combination, e.g. layers that don't fit the task
                problems.append(f"{error.field}: {error.message}")
                if "layers" in values:
                    values.pop("layers")
                    continue
                values = {}
                continue
            problems.append(f"{error.field}: {error.message}")
            values.pop(error.field)
        except TypeError as error:  # cannot happen with FIELDS, kept for safety of from_dict use
            problems.append(str(error))
            values = {}
    return TrainConfig().validated(), demo, problems
