"""`backprop sweep ...`: many set-ups at once, on this machine or a Dask cluster (see backprop.sweep).

    backprop sweep --preset tutorial --vary learning_rate=0.01,0.1,1 --vary "layers=196,1|64,1" \\
        --strategy grid --iterations 300

prints a progress line (trials done, running, pruned, best so far) while it runs and a table of the
best trials at the end, with every failed trial's reason and every attempt lost to a worker that
died. `--resume ID` continues a sweep whose client stopped (Ctrl-C, SIGTERM, a crash); its ended trials
keep their runs and checkpoints. Nothing is recorded before the sweep is checked and admitted: its
space, its local workers (at most BACKPROP_SWEEP_MAX_WORKERS), its memory (backprop.sweep.admission:
every process of it within BACKPROP_MEMORY_BUDGET) and, resumed, its journal (line by line).
"""

import signal
import sys
import threading
import time

from .errors import InputError
from .options import EXIT_INPUT, EXIT_INTERRUPTED, ArgumentParser, write_json_file

SHOWN_BEST = 10


def build_parser():
    from .options import add_setting_options
    from .settings import SWEEPABLE
    from .sweep import PRUNERS, STRATEGIES
    from .sweep.space import DIRECTIONS, METRICS

    # The base set-up takes every option of `backprop train` (the same table of settings); the
    # sweep's own --seed (the sampler's) replaces the training seed's, which --vary seed=... sets.
    parser = ArgumentParser(prog="backprop sweep", conflict_handler="resolve", description=(
        "Train many set-ups at once with Dask and let Optuna choose them. The base set-up is a preset "
        "with any `backprop train` option laid over it. Each --vary names a "
        f"sweepable setting ({', '.join(SWEEPABLE)}) and its values: a list (learning_rate=0.01,0.1,1; "
        "layer sizes as alternatives: layers=196,1|64,1) or, for random/tpe, a range low:high "
        "(learning_rate=1e-3:1, on the setting's own scale; add :log or :linear)."))
    add_setting_options(parser)
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--vary", action="append", default=[], metavar="NAME=VALUES",
                       help="a setting and its values (repeat for more settings)")
    sweep.add_argument("--strategy", default="grid", choices=STRATEGIES)
    sweep.add_argument("--trials", help="how many trials (random/tpe: default 16; grid: at most this many)")
    sweep.add_argument("--workers", help="local worker processes (default: one per core; at most "
                                         "BACKPROP_SWEEP_MAX_WORKERS, all within the memory budget)")
    sweep.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on an existing Dask cluster, e.g. tcp://host:8786")
    sweep.add_argument("--seed", dest="sampler_seed", default="0", metavar="N",
                       help="the sampler's seed (a reproducible sweep); vary the training seed with "
                            "--vary seed=1,2,3")
    sweep.add_argument("--pruner", default="none", choices=PRUNERS,
                       help="stop bad trials early on the metric: median, successive halving or Hyperband")
    sweep.add_argument("--metric", default="test_cost", metavar="NAME",
                       help=f"what the sweep optimises: {', '.join(METRICS)} (best_: the best over the "
                            "trial's evaluations, else the value it ended with; default test_cost)")
    sweep.add_argument("--direction", metavar="|".join(DIRECTIONS),
                       help="the metric's own direction (a cost is minimised, an accuracy maximised)")
    sweep.add_argument("--target", metavar="V",
                       help="no new trials once the best value reaches V (running ones finish)")
    sweep.add_argument("--json", metavar="PATH", help="write every trial's set-up and results")
    sweep.add_argument("--resume", metavar="ID", help="continue a recorded sweep (its space is kept)")
    sweep.add_argument("--quiet", action="store_true", help="no progress line")
    return parser


class ProgressLine:
    """One line on stderr, rewritten in place when it is a terminal, else printed every few seconds."""

    def __init__(self, stream=None, quiet=False):
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.quiet = quiet
        self._last, self._text = 0.0, ""

    def update(self, snapshot, force=False):
        now = time.monotonic()
        text = progress_text(snapshot)
        counts = text.rsplit(" | ", 1)[0]  # without the seconds: a log gets a line when trials change
        period = 0.2 if self.terminal else 5
        if self.quiet or (not force and (now - self._last < period or
                                         (not self.terminal and counts == self._text))):
            return
        self._last, self._text = now, counts
        self.stream.write(("\r" + text.ljust(100)) if self.terminal else text + "\n")
        self.stream.flush()

    def close(self):
        if self.terminal and not self.quiet:
            self.stream.write("\n")


def progress_text(snapshot):
    width = 24
    done = snapshot.done
    filled = int(width * done / max(1, snapshot.total))
    best = snapshot.best(1)
    best_text = "best -"
    if best:
        best_text = f"best #{best[0].number} {snapshot.metric_label} {best[0].value:.4f}"

    lost = len(snapshot.lost_attempts())
    lost_text = f", {lost} lost (worker died)" if lost else ""
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{snapshot.total} done, "
            f"{snapshot.count('running')} running, {snapshot.count('pruned')} pruned, "
            f"{failed_count(snapshot)} failed{lost_text} | {best_text} | {snapshot.elapsed:.0f} s")


def failed_count(snapshot):
    return snapshot.count("failed") + snapshot.count("diverged")


def lost_text(count):
    return f"{count} attempt{'s' if count != 1 else ''} lost to a worker that died"


def best_table(snapshot, settings, n=SHOWN_BEST):
    """The best finished trials (by the sweep's metric, in its direction) and every failed one's reason."""
    from .runs import table_cell, text_table
    from .settings import SETTINGS

    names = [d.name for d in snapshot.space]
    own = snapshot.metric not in ("test_cost", "test_accuracy")  # a column of its own
    header = ("trial", *names, *((snapshot.metric_label,) if own else ()), "test acc", "test cost", "seconds",
              "run")
    lines = [header]
    for trial in snapshot.best(n):
        lines.append((str(trial.number), *(SETTINGS[name].encode(trial.params.get(name)) for name in names),
                      *((table_cell(trial.value),) if own else ()),
                      table_cell(trial.test_accuracy), table_cell(trial.test_cost),
                      table_cell(trial.seconds, 2),
                      f"#{trial.run_id}" if trial.run_id else "-"))
    text = text_table(lines).split("\n")
    if len(lines) == 1:
        text.append("(no trial finished)")
    for trial in snapshot.trials:
        if trial.status in ("failed", "diverged") and trial.reason:
            text.append(f"trial {trial.number} {trial.status}: {trial.reason}")
    for number, attempt in snapshot.lost_attempts():
        text.append(attempt.text(number) + (f" (run #{attempt.run_id} failed)" if attempt.run_id else ""))
    return "\n".join(text)


def write_json(path, snapshot, importance=None):
    """Every trial's set-up and results, and which settings mattered (None before it can tell)."""
    from .settings import SETTINGS

    def trial_document(t):
        return {"number": t.number, "status": t.status, "run": t.run_id, "checkpoint": t.checkpoint,
                "params": {n: SETTINGS[n].encode(v) for n, v in t.params.items()},
                "value": t.value, "test_accuracy": t.test_accuracy, "test_cost": t.test_cost,
                "train_accuracy": t.train_accuracy, "train_cost": t.train_cost, "seconds": t.seconds,
                "reason": t.reason,
                "lost_attempts": [{**lost.to_dict(), "text": lost.text(t.number)} for lost in t.lost]}

    document = {"sweep": snapshot.sweep_id, "status": snapshot.status, "seconds": snapshot.elapsed,
                "metric": snapshot.metric, "direction": snapshot.direction,
                "done": snapshot.done, "pruned": snapshot.count("pruned"), "failed": failed_count(snapshot),
                "lost_attempts": len(snapshot.lost_attempts()),
                "importance": importance.to_dict() if importance is not None else None,
                "trials": [trial_document(t) for t in snapshot.trials]}
    write_json_file(path, document)


def base_config(args):
    """The preset with the given options laid over it, exactly as `backprop train` makes it."""
    from .options import config_from_args, fit_output_to_task

    config = config_from_args(args)
    if args.layers is None:
        try:
            config = fit_output_to_task(config, args, config.load_data())
        except InputError:  # data only the workers have: the set-up is checked there
            pass
    return config


class _Termination:
    """SIGTERM for `backprop sweep`, as Ctrl-C: while the sweep's loop runs, its running trials
    are cancelled (what ended is kept, the sweep ends "cancelled", its journal's lock released);
    before that (checking, starting the cluster) the command is interrupted at once. Installed only
    in the main thread; the previous handler comes back after."""

    def __init__(self):
        self.sweep = None
        self.received = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    def _handle(self, signum, frame):
        self.received = True
        sweep = self.sweep
        if sweep is not None and sweep.status == "running":
            sweep.cancel("stopped by SIGTERM")
        else:
            raise KeyboardInterrupt


def sweep_command(argv):
    args = build_parser().parse_args(argv)
    with _Termination() as termination:
        return _sweep(args, termination)


def _sweep(args, termination):
    from .owners import CLI
    from .runs import RunStore
    from .sweep import Sweep, SweepSpec, check_resume, check_sweep, create_sweep

    sweep_id, sweep, created = None, None, False
    try:
        # Everything is checked (the space, the workers, the memory, a resumed sweep's journal)
        # before the sweep is recorded or its journal touched.
        store = RunStore()
        journal_trials = 0
        if args.resume is not None:
            resume = check_resume(args.resume, store)
            sweep_id, spec, journal_trials = resume.sweep_id, resume.spec, resume.journal_trials
            if resume.torn_bytes:
                print(f"note: sweep {sweep_id}'s journal ends in a line cut mid-write ({resume.torn_bytes:,} "
                      "bytes, a crash or a full disk); it is set aside in <journal>.torn and the sweep goes "
                      "on from the intact part", file=sys.stderr)
        else:
            spec = SweepSpec.build(base_config(args), args.vary, args.strategy, args.trials,
                                   args.sampler_seed, args.pruner, metric=args.metric,
                                   direction=args.direction, target=args.target)
        cost = check_sweep(spec, args.workers, args.scheduler, journal_trials)
        if sweep_id is None:
            sweep_id, created = create_sweep(spec, store, owner=CLI), True  # the operator's
        sweep = Sweep(sweep_id, store, scheduler=args.scheduler, workers=cost.workers).claim()
        termination.sweep = sweep
        target = "" if sweep.spec.target is None else f", target {sweep.spec.target:g}"
        print(f"Sweep {sweep_id}: {sweep.spec.total()} trials, {sweep.spec.strategy}, "
              f"{sweep.spec.direction} {sweep.spec.metric}{target}, "
              f"varying {', '.join(d.text for d in sweep.spec.space)} "
              f"({'scheduler ' + args.scheduler if args.scheduler else f'{cost.workers} local workers'})",
              flush=True)
        progress = ProgressLine(quiet=args.quiet)
        try:
            snapshot = sweep.run(on_change=progress.update)
        except KeyboardInterrupt:
            sweep.cancel()
            progress.close()
            print(f"Interrupted; continue with: backprop sweep --resume {sweep_id}", file=sys.stderr)
            return EXIT_INTERRUPTED
        progress.update(snapshot, force=True)
        progress.close()
    except KeyboardInterrupt:  # before the sweep ran: nothing of it started
        if created and store.get_sweep(sweep_id)["status"] == "created":
            store.update_sweep(sweep_id, status="cancelled", message="interrupted before it started")
        print("Interrupted" + (f"; continue with: backprop sweep --resume {sweep_id}" if sweep_id else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except InputError as error:
        print(f"error: {error.field}: {error.message}", file=sys.stderr)
        return EXIT_INPUT
    finally:
        if sweep is not None:
            sweep.release()  # its claim on the journal (run() releases it too)
    from .sweep.snapshot import setting_importance

    print(best_table(snapshot, sweep.spec))
    importance = setting_importance(snapshot)
    if importance is not None:
        print(importance.text())
    lost = len(snapshot.lost_attempts())
    print(f"Sweep {sweep_id} {snapshot.status} in {snapshot.elapsed:.1f} s: {snapshot.done} trials done "
          f"({snapshot.count('pruned')} pruned, {failed_count(snapshot)} failed"
          f"{', ' + lost_text(lost) if lost else ''}). Every attempt is a run: `backprop runs`.")
    if snapshot.status == "cancelled":
        print(f"Continue with: backprop sweep --resume {sweep_id}")
    if args.json:
        write_json(args.json, snapshot, importance)
        print(f"Wrote {args.json}")
    return EXIT_INTERRUPTED if termination.received else 0
