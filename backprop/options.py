"""What `backprop train` and `backprop sweep` share: the parser's error style, one option per
setting of the table, the set-up the options describe, and the --json writer. Both commands import
from here, so neither imports the other."""

import argparse
import json
from pathlib import Path

from .config import PRESET_NOTES, PRESETS, preset
from .data.toy2d import TOY_DATASETS
from .settings import SETTINGS

EXIT_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 2, 1, 130


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but its errors read like ours: one line naming the option, exit code 2."""

    def error(self, message):
        self.exit(EXIT_INPUT, f"error: {message}\n(see {self.prog} --help)\n")


def add_setting_options(parser):
    """--preset and one option per setting of the table (settings.SETTINGS), in its groups."""
    parser.add_argument("--preset", default="tutorial", choices=list(PRESETS),
                        help="; ".join(f"{name}: {note}" for name, note in PRESET_NOTES.items()))
    groups = {}
    for setting in SETTINGS.values():
        if not setting.cli:
            continue
        if setting.group not in groups:
            groups[setting.group] = parser.add_argument_group(setting.group)
        owner = f" (optimizer {setting.owner})" if setting.owner else ""
        target = groups[setting.group]
        if setting.name == "digits":  # --classes all is the other way to say it
            target = classes = target.add_mutually_exclusive_group()
        target.add_argument(
            setting.option, *setting.cli_aliases, dest=setting.name, metavar=setting.name.upper(),
            help=f"{setting.help}{owner}: {setting.allowed()}; default {setting.encode(setting.default)!r}"
                 .replace("%", "%%"))
    classes.add_argument("--classes", choices=["all"], help="'all': every class (the same as --digits all)")


def config_from_args(args):
    """The preset with every option given on the command line laid over it, validated."""
    config = preset(args.preset)
    for name, setting in SETTINGS.items():
        value = getattr(args, name, None)
        if setting.cli and value is not None:
            setattr(config, name, setting.parse(value))
    if args.classes == "all" or (args.digits is None and config.dataset in TOY_DATASETS):
        config.digits = None  # a 2D data set's classes are 0 and 1 (or a regression target)
    if args.layers is None and config.digits is None and config.layers[-1] == 1:
        config.layers = [*config.layers[:-1], 10]  # a two-class preset moved to all classes
    return config.validated()


def fit_output_to_task(config, args, data):
    """Unless --layers was given, end the layers with the task's number of classes."""
    if args.layers is None:
        config = config.fit_output(data.n_classes).validated()
    return config


def write_json_file(path, document):
    """A --json document, written whole or not at all (its folder made if needed)."""
    from .data.idx import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(document, indent=1).encode())
