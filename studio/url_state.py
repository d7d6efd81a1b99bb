"""The set-up in the URL, so a copied link opens the same configuration (and the demo view).

Only the settings that differ from the tutorial's default set-up are written, each as its
setting's own short text (`Setting.encode`): `?layers=392,196,98,1&learning_rate=0.5&demo=1`.
Reading is forgiving: a bad value is dropped with a message naming it, and the rest of the link
still applies. A link never names a path on the server (settings with `url=False`).
"""

import re

from backprop.config import TrainConfig
from backprop.data.tasks import nominal_size
from backprop.errors import InputError
from backprop.setting import Setting
from backprop.settings import SETTINGS

FIELDS = [name for name, setting in SETTINGS.items() if setting.url]
NOT_IN_LINKS = [name for name, setting in SETTINGS.items() if not setting.url]
DEMO = Setting("demo", "flag", False, "Demo view", "Hide the set-up and enlarge the charts for a projector",
               cli=False)


def config_to_query(config, demo=False):
    """The query parameters for a set-up: only what differs from the defaults."""
    default = TrainConfig().validated()
    params = {name: SETTINGS[name].encode(getattr(config, name)) for name in FIELDS
              if getattr(config, name) != getattr(default, name)}
    if demo:
        params[DEMO.name] = DEMO.encode(True)
    return params


def describes_setup(params):
    """Whether a link carries any set-up field (a bare link leaves the current set-up alone)."""
    return any(name in params for name in FIELDS)


def demo_from_query(params):
    """Whether a link asks for the demo view (a bad value: no)."""
    try:
        return DEMO.parse(params.get(DEMO.name, ""))
    except InputError:
        return False


def query_to_config(params):
    """(config, demo, problems) from query parameters; problems lists 'field: why' for each value
    that was dropped (the default is used for it)."""
    values, problems = {}, []
    for name in NOT_IN_LINKS:
        if name in params:
            problems.append(f"{name}: a link cannot name a file on the server; upload your data on "
                            "the Data page instead")
    for name in FIELDS:
        if name in params:
            try:
                values[name] = SETTINGS[name].parse(str(params[name]))
            except InputError as error:
                problems.append(f"{error.field}: {error.message}")
    try:
        config = TrainConfig(**values).validated()
    except InputError as error:  # a combination, e.g. layers that don't fit the task
        problems.append(f"{error.field}: {error.message}")
        values.pop("layers", None)
        try:
            config = TrainConfig(**values).validated()
        except InputError:  # the classes need other layers than the default: drop the whole set-up
            problems.append("the set-up in the link was not used; the tutorial's is shown instead")
            config = TrainConfig().validated()
    size = nominal_size(config)
    if size is not None:
        try:
            config.check_memory(*size)
        except InputError as error:  # a link must not set up training past the memory budget
            problems.append(f"{error.field}: {error.message}")
            config = TrainConfig().validated()
    return config, demo_from_query(params), problems


_MARKDOWN = re.compile(r"([\\`*\[\]()<>!~|$])")


def plain(text):
    """Text a person supplied (a link, an upload's name), escaped so that Markdown in it shows as
    typed: no live link, image or HTML inside a message."""
    text = _MARKDOWN.sub(r"\\\1", str(text))
    return text.replace("://", ":\\/\\/").replace("www.", "www\\.")
