"""`python -m backprop train|runs|data|sweep|sweeps|labels ...`: the engine from a terminal.

`train` starts from a preset (the tutorial's experiment by default), lets every setting be
overridden, prints the cost every 100 iterations like the tutorial, and ends with the train
and test accuracy. Bad input ends with one line `error: <field>: <message>` and exit code 2.
"""

import argparse
import contextlib
import json
import math
import sys
import time

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
    commands = parser.add_subparsers(dest="command", metavar="{train,runs,data,sweep,sweeps,labels}")

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
    measured = train.add_argument_group("diagnostics (measured off the training thread, written to --json)")
    measured.add_argument("--track-sharpness", metavar="N", type=_steps,
                          help="measure the sharpness λ_max every N steps against the optimizer's stability "
                               "limit: 2/η for gradient descent, (2+2β)/η with momentum, Adam's "
                               "preconditioned λ_max against (2+2β1)/((1-β1)η); less often when measuring "
                               "would take over a tenth of the time; default off")
    measured.add_argument("--track-noise", metavar="N", type=_steps,
                          help="measure the gradient noise scale B_simple (about the critical batch size) "
                               "every N steps (or less often, likewise); default off")

    runs = commands.add_parser("runs", help="list the recorded runs (--disk: the disk they take)",
                               description="List the recorded runs, or with --disk what the studio keeps "
                                           "on disk by kind, against its quota (BACKPROP_DISK_BUDGET), and "
                                           "what a clean-up would free.")
    runs.add_argument("--disk", action="store_true",
                      help="what the studio home holds by kind, its quota and what clean-up would free")
    commands.add_parser("data", help="list or download datasets (see `backprop data --help`)",
                        add_help=False)
    commands.add_parser("sweep", help="train many set-ups (see `backprop sweep --help`)", add_help=False)
    sweeps = commands.add_parser("sweeps", help="list the recorded sweeps, newest first",
                                 description="List the recorded sweeps, newest first: id, name, status, "
                                             "trials done of the total, the best value of the sweep's "
                                             "metric (its name and direction), when it was created and "
                                             "the compute time its trials took.")
    sweeps.add_argument("--search", metavar="TEXT", help="only sweeps whose name contains TEXT (any case), "
                                                        "or whose id is TEXT")
    sweeps.add_argument("--json", action="store_true", help="print the list as JSON")
    add_labels_parser(commands)
    return parser


def _steps(text):
    """A whole number of steps from 1 (argparse's type for the diagnostics' cadences)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of steps from 1, got {text!r}")
    return value


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


def train_command(args):
    from .run import Run, rows_of
    from .trainer import Trainer

    config = config_from_args(args)
    data = config.load_data()
    config = fit_output_to_task(config, args, data)
    say = (lambda *a: None) if args.quiet else print
    say(f"Training: {describe(config)}")
    say(f"Data: {data.name}: {len(data.y_train)} training and {len(data.y_test)} test images")
    started = time.perf_counter()
    trainer = Trainer.from_config(config, data)
    run = Run(config, trainer, record=not args.no_record, source="cli", name=args.name,
              on_warning=lambda text: print(f"warning: {text}", file=sys.stderr))
    progress = Progress(config.iterations)
    warned = []

    def warn_once(diagnosis):  # from the diagnostics thread: the first rising cost, once
        if diagnosis.kind == "rising" and not warned:
            warned.append(diagnosis)
            progress.clear()
            print(f"warning: {diagnosis.text}", file=sys.stderr, flush=True)
    diagnostics = run.diagnostics
    diagnostics.on_diagnosis = warn_once
    diagnostics.configure(watch=True, sharpness_every=args.track_sharpness, noise_every=args.track_noise)
    run.open()
    diagnostics.begin()  # where training starts: the cost watch's first reference
    costs = []  # (iteration, cost) for every step, for --json
    status = "finished"
    try:
        # One step per call, so that Ctrl-C loses nothing already trained.
        while trainer.iteration < config.iterations and trainer.diverged is None:
            records = trainer.step(1)
            run.record(records)
            for row in rows_of(records).steps:
                costs.append((row.iteration, row.cost))
                if row.iteration % PRINT_EVERY == 0:
                    progress.clear()
                    say(f"Cost after iteration {row.iteration}: {row.cost!r}")
                progress.update(trainer.iteration, row.cost)
    except KeyboardInterrupt:
        status = "stopped"
    progress.clear()
    result = trainer.evaluate()
    seconds = time.perf_counter() - started
    try:
        diagnostics.drain()  # the last measurements due, and a divergence explained with what they show
    except KeyboardInterrupt:  # a second Ctrl-C: the outputs hold what was measured so far
        pass

    if trainer.diverged is not None:
        status = "diverged"
        print(f"error: {run.explain_divergence()}", file=sys.stderr)
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
            with _naming_the_option("save", args.save):
                checkpoint_path = run.checkpoint(args.save)
            say(f"Saved checkpoint to {checkpoint_path}")
        if args.json:
            with _naming_the_option("json", args.json):
                write_json(args.json, config, costs, result, seconds, status, trainer, diagnostics.view())
            say(f"Wrote {args.json}")
    finally:  # a --save or --json that failed does not make a finished run look interrupted
        run.finish(status, {**result, "iterations": trainer.iteration, "seconds": seconds},
                   checkpoint=False, checkpoint_path=checkpoint_path)
    return {"finished": 0, "diverged": EXIT_DIVERGED, "stopped": EXIT_INTERRUPTED}[status]


@contextlib.contextmanager
def _naming_the_option(option, path):
    """A file that cannot be written: a message naming the option, not a bare OSError."""
    try:
        yield
    except OSError as error:
        raise InputError(option, f"cannot write {path}: {error.strerror or error}") from None


def _finite(value):
    return value if value is None or math.isfinite(value) else None


def write_json(path, config, history, result, seconds, status, trainer, diagnostics=None):
    """The --json document; `diagnostics` (a DiagnosticsView) adds the sharpness and noise-scale
    measurements and the explanation of a divergence (a rising cost or a NaN), if any."""
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
    if diagnostics is not None:
        document.update({
            "sharpness_every": diagnostics.sharpness_every,
            "sharpness": [_finite_row(point.to_dict()) for point in diagnostics.sharpness],
            "noise_every": diagnostics.noise_every,
            "noise_scale": [point.to_dict() for point in diagnostics.noise],
            "diagnosis": diagnostics.diagnosis.to_dict() if diagnostics.diagnosis is not None else None,
            "diagnostics_error": diagnostics.error,
        })
    write_json_file(path, document)


def _finite_row(row):
    return {key: _finite(value) if isinstance(value, float) else value for key, value in row.items()}


def runs_command(args=None):
    from .runs import RunStore, format_runs_table
    if args is not None and args.disk:
        from .disk import format_report, report
        print(format_report(report(RunStore())))
        return 0
    print(format_runs_table(RunStore().list_runs()))
    return 0


def sweeps_command(args):
    from .sweep.listing import format_sweeps_table, sweep_list

    summaries = sweep_list(search=args.search)
    if args.json:
        print(json.dumps([summary.to_dict() for summary in summaries], indent=1))
    elif not summaries and args.search:
        print(f"No sweep matches {args.search.strip()!r}.")
    else:
        print(format_sweeps_table(summaries))
    return 0


def add_labels_parser(commands):
    """`backprop labels`: the fold model is a set-up (the mnist10 preset's network, fewer steps), with
    every `backprop train` option laid over it."""
    from .labels import FOLD_BATCH, FOLD_ITERATIONS, FOLDS, RANK_BY, TOP

    labels = commands.add_parser(
        "labels", help="find training images whose label looks wrong (cross-validation and cleanlab)",
        description="Find suspect labels: K-fold cross-validation gives every training image class "
                    "probabilities from a network that never saw it (one Dask task per fold, on a local "
                    "cluster or --scheduler), and cleanlab's confident learning ranks the images whose "
                    "given label those probabilities contradict. The fold model is the mnist10 preset's "
                    f"network trained {FOLD_ITERATIONS} steps of {FOLD_BATCH}; any `backprop train` option "
                    "changes it. The review is kept for the Data page's Suspect labels gallery.")
    add_setting_options(labels)
    labels.set_defaults(preset="mnist10", iterations=str(FOLD_ITERATIONS), batch_size=str(FOLD_BATCH))
    review = labels.add_argument_group("suspect labels")
    review.add_argument("--folds", default=str(FOLDS.default), metavar="K",
                        help=f"{FOLDS.help}: {FOLDS.allowed()}; default {FOLDS.default}")
    review.add_argument("--rank-by", default=RANK_BY.default, metavar="SCORE",
                        help=f"{RANK_BY.allowed()}: the given label's probability (self_confidence) or it "
                             f"minus the largest other (normalized_margin), lowest first; default "
                             f"{RANK_BY.default}")
    review.add_argument("--top", default=str(TOP.default), metavar="N",
                        help=f"suspects to print; default {TOP.default} (--json writes them all)")
    review.add_argument("--workers", help="local worker processes (default: one per core)")
    review.add_argument("--scheduler", metavar="ADDRESS",
                        help="run the folds on an existing Dask cluster, e.g. tcp://host:8786")
    review.add_argument("--json", metavar="PATH",
                        help="write every suspect (index, given, suggested, confidence) and the timing")
    review.add_argument("--no-save", action="store_true",
                        help="do not keep the review for the Data page's gallery")
    review.add_argument("--quiet", action="store_true", help="print only the suspects and the timing")


def labels_command(args):
    """`backprop labels`: out-of-fold probabilities on Dask, ranked by cleanlab; prints the top
    suspects and the timing, writes --json, keeps the review for the Data page."""
    from .data.tasks import TOY_DATASETS, training_source
    from .data.toy2d import is_regression
    from .labels import FOLDS, RANK_BY, TOP, find_suspects, save_review, suspect_rows
    from .sweep.cluster import WORKERS, check_address, default_workers

    started = time.perf_counter()
    folds, rank_by, top = FOLDS.parse(args.folds), RANK_BY.parse(args.rank_by), TOP.parse(args.top)
    workers = WORKERS.parse(args.workers)
    scheduler = check_address(args.scheduler) if args.scheduler else None
    if args.dataset is not None and is_regression(args.dataset):
        raise InputError("dataset", f"{args.dataset} is a regression data set: its targets are numbers, not "
                                    "labels; choose a classification data set")
    config = config_from_args(args)
    data = config.load_data()
    config = fit_output_to_task(config, args, data)
    key = None
    if config.dataset not in TOY_DATASETS:
        key = training_source(config.dataset, config.data_path, config.seed).key
    say = (lambda *a: None) if args.quiet else print
    where = scheduler or f"a local cluster of {workers or default_workers()} workers"
    say(f"Suspect labels of {data.name}: {len(data.y_train):,} training images, {folds} folds on {where}")
    say(f"Fold model: {describe(config)}")

    def fold_ended(done, total, outcome):
        say(f"Fold {outcome.fold + 1} ({done}/{total}) on {outcome.worker}: held-out accuracy "
            f"{outcome.accuracy:.4f}, {outcome.seconds:.1f} s")

    try:
        review = find_suspects(config, data=data, path=config.data_path, send_data=False, folds=folds,
                               rank_by=rank_by, scheduler=scheduler, workers=workers, key=key,
                               on_fold=fold_ended)
    except KeyboardInterrupt:
        print("Stopped by Ctrl-C; the cluster is closed.", file=sys.stderr)
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - started
    rows = suspect_rows(review)
    lines = [("rank", "index", "given", "suggested", "confidence")]
    lines += [(str(rank), str(row["index"]), str(row["given"]), str(row["suggested"]),
               f"{row['confidence']:.3f}") for rank, row in enumerate(rows[:top], start=1)]
    from .runs import text_table

    print(f"Top {min(top, len(rows))} of {review.issues} suspects (cleanlab, ranked by {rank_by}); index: "
          "the image's position in the training file")
    print(text_table(lines))
    print(f"Out-of-fold accuracy: {review.accuracy:.4f} (folds: "
          f"{', '.join(f'{a:.4f}' for a in review.fold_accuracies)})")
    load = "" if review.load_average is None else f"; load average {review.load_average:.2f}"
    print(f"Seconds: {seconds:.1f} in all, {review.seconds:.1f} for the {folds} folds on {review.workers} "
          f"workers ({review.cpu_seconds:.1f} s of CPU time in them){load}")
    if args.json:
        with _naming_the_option("json", args.json):
            write_json_file(args.json, {**{name: value for name, value in review.to_dict().items()
                                           if name not in ("suspects", "format")},
                                        "seconds_in_all": seconds, "suspects": rows})
        say(f"Wrote {args.json}")
    if key is not None and not args.no_save:
        save_review(review)
        say("Kept for the Data page (Suspect labels).")
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
            return runs_command(args)
        if args.command == "sweeps":
            return sweeps_command(args)
        if args.command == "labels":
            return labels_command(args)
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
