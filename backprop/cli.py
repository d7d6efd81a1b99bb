"""`python -m backprop train|runs|data ...`: the engine from a terminal.

`train` starts from a preset (the tutorial's experiment by default), lets every setting be
overridden, prints the cost every 100 iterations like the tutorial, and ends with the train
and test accuracy. Bad input ends with one line `error: <field>: <message>` and exit code 2.
"""

import contextlib
import math
import sys
import time

from .activations import DEAD_KIND
from .errors import InputError
from .options import (
    EXIT_DIVERGED,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    ArgumentParser,
    add_setting_options,
    config_from_args,
    fit_output_to_task,
    write_json_file,
)

PRINT_EVERY = 100


def build_parser():
    parser = ArgumentParser(prog="backprop", description="Backprop Studio from the command line.")
    commands = parser.add_subparsers(dest="command", metavar="{train,runs,data,sweep}")

    train = commands.add_parser("train", help="train a network and print its cost and accuracy",
                                description="Train a network. Start from a preset; every option "
                                            "given overrides it.")
    add_setting_options(train)
    output = train.add_argument_group("output")
    output.add_argument("--json", metavar="PATH", help="write config, per-iteration cost and accuracy")
    output.add_argument("--save", metavar="PATH", help="write a checkpoint (.npz) of the network")
    output.add_argument("--name", help="name of the run in the run store")
    output.add_argument("--no-record", action="store_true", help="do not record the run in the run store")
    output.add_argument("--quiet", action="store_true", help="print only the final accuracy")

    commands.add_parser("runs", help="list the recorded runs")
    commands.add_parser("data", help="list or download datasets (see `backprop data --help`)",
                        add_help=False)
    commands.add_parser("sweep", help="train many set-ups (see `backprop sweep --help`)", add_help=False)
    return parser


def describe(config):
    task = f"{config.dataset} " + ("all classes" if config.digits is None else
                                   f"{config.digits[0]} vs {config.digits[1]}")
    batch = "full batch" if config.batch_size is None else f"batch {config.batch_size}"
    return (f"{task} | layers {config.layers} {config.activation} | {config.optimizer} "
            f"lr {config.learning_rate:g} | {batch} | {config.iterations} iterations | {config.dtype}")


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total, stream=None):
        self.stream = stream or sys.stderr
        self.total = total
        self.enabled = self.stream.isatty()
        self._last = 0.0

    def update(self, done, cost, force=False):
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        width = 30
        filled = int(width * done / self.total)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                          f"cost {cost:.6f}")
        self.stream.flush()

    def clear(self):
        if self.enabled:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


def _open_recorder(config, args):
    if args.no_record:
        return None
    from .runs import RunRecorder, RunStore
    store = RunStore()
    run_id = store.create(config.to_dict(), source="cli", name=args.name)
    return RunRecorder(store, run_id)


def train_command(args):
    from .trainer import Trainer

    config = config_from_args(args)
    data = config.load_data()
    config = fit_output_to_task(config, args, data)
    say = (lambda *a: None) if args.quiet else print
    say(f"Training: {describe(config)}")
    say(f"Data: {data.name}: {len(data.y_train)} training and {len(data.y_test)} test images")
    started = time.perf_counter()
    trainer = Trainer.from_config(config, data)
    recorder = _open_recorder(config, args)
    history = []  # (iteration, cost) for every step, for --json
    progress = Progress(config.iterations)
    status = "finished"
    pending = []  # step records not yet handed to the run store
    try:
        # One step per call, so that Ctrl-C loses nothing already trained.
        while trainer.iteration < config.iterations and trainer.diverged is None:
            for record in trainer.step(1):
                pending.append(record)
                if "diverged" in record:
                    continue
                history.append((record["iteration"], record["cost"]))
                if record["iteration"] % PRINT_EVERY == 0:
                    progress.clear()
                    say(f"Cost after iteration {record['iteration']}: {record['cost']!r}")
                progress.update(trainer.iteration, record["cost"])
            if recorder is not None and len(pending) >= PRINT_EVERY:
                recorder.add(pending)
                pending = []
    except KeyboardInterrupt:
        status = "stopped"
    progress.clear()
    if recorder is not None:
        recorder.add(pending)
    result = trainer.evaluate()
    seconds = time.perf_counter() - started

    if trainer.diverged is not None:
        status = "diverged"
        print(_divergence_message(trainer, config), file=sys.stderr)
    elif status == "stopped":
        print(f"Stopped by Ctrl-C after {trainer.iteration} of {config.iterations} iterations; "
              "the results below and any --json/--save files hold what was trained.", file=sys.stderr)
    measure = "cost" if data.regression else "accuracy"  # a regression target has no accuracy
    print(f"Train {measure}: {result[f'train_{measure}']!r}")
    if f"test_{measure}" in result:
        print(f"Test {measure}: {result[f'test_{measure}']!r}")
    say(f"Seconds: {seconds:.2f} (training and final evaluation)")

    checkpoint_path = None
    try:
        if args.save:
            from .checkpoint import save_checkpoint
            with _naming_the_option("save", args.save):
                checkpoint_path = save_checkpoint(args.save, trainer.network, config, trainer.history)
            say(f"Saved checkpoint to {checkpoint_path}")
        if args.json:
            with _naming_the_option("json", args.json):
                write_json(args.json, config, history, result, seconds, status, trainer)
            say(f"Wrote {args.json}")
    finally:  # a --save or --json that failed does not make a finished run look interrupted
        if recorder is not None:
            metrics = {**result, "iterations": trainer.iteration, "seconds": seconds}
            recorder.close(metrics, status=status, checkpoint_path=checkpoint_path)
    return {"finished": 0, "diverged": EXIT_DIVERGED, "stopped": EXIT_INTERRUPTED}[status]


@contextlib.contextmanager
def _naming_the_option(option, path):
    """A file that cannot be written: a message naming the option, not a bare OSError."""
    try:
        yield
    except OSError as error:
        raise InputError(option, f"cannot write {path}: {error.strerror or error}") from None


def _divergence_message(trainer, config):
    d = trainer.diverged
    hint = f"a smaller learning rate (e.g. --lr {config.learning_rate / 10:g})"
    if config.activation in DEAD_KIND and config.init != "he":
        hint += ", --init he"
    if config.optimizer == "sgd":
        hint += ", or --optimizer adam --lr 0.001"
    return (f"error: training diverged at iteration {d['iteration']}: the cost or gradients became "
            f"NaN/Inf, first in layer {d['layer']} of {trainer.network.n_layers}. The parameters "
            f"from before that step are kept. What to try: {hint}.")


def _finite(value):
    return value if value is None or math.isfinite(value) else None


def write_json(path, config, history, result, seconds, status, trainer):
    document = {
        "config": config.to_dict(),
        "history": [{"iteration": i, "cost": _finite(c)} for i, c in history],
        "train_accuracy": result["train_accuracy"],
        "test_accuracy": result.get("test_accuracy"),
        "train_cost": result["train_cost"],
        "test_cost": result.get("test_cost"),
        "seconds": seconds,
        "status": status,
        "evaluations": list(trainer.history.evaluations),  # named by steps done, like the run store
        "iterations_done": trainer.iteration,
        "diverged": trainer.diverged,
    }
    write_json_file(path, document)


def runs_command():
    from .runs import RunStore, format_runs_table
    print(format_runs_table(RunStore().list_runs()))
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "data":
        from .data_cli import data_command
        return data_command(argv[1:])
    if argv and argv[0] == "sweep":
        from .sweep_cli import sweep_command
        return sweep_command(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return train_command(args)
        if args.command == "runs":
            return runs_command()
    except InputError as error:
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as error:
        print(f"error: file: {error}", file=sys.stderr)
        return EXIT_INPUT
    parser.print_help()
    return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
