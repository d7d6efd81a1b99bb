"""Sweeps: what Dask and Optuna cost, and the sweep that chose the mnist10 preset.

1. 16 trials of a 2D playground task (spiral) trained one after another in this process, then the
   same 16 as a grid sweep on 2 local workers. Prints the speed-up (target >= 1.7x on 2 cores) and
   the sweep machinery's overhead per trial (target <= 50 ms): the workers' time not spent in
   the trials themselves, (workers x wall - sum of trial seconds) / trials. The cluster's start-up
   is printed apart.
2. The mnist10 search (MNIST-sized trials): a grid sweep over the full 10-digit MNIST; prints its
   wall time against the sum of its trials' own times (ideal: sum / workers).
3. The winner against scikit-learn's MLPClassifier(hidden_layer_sizes=(256, 128)) in the same run
   and process: target >= 98.3% test accuracy in <= 0.7x the time the MLP needs to reach 98.0%
   (its training time only, checked after each epoch). scikit-learn is for this benchmark only:
   `pip install scikit-learn`.
4. `--cancel` (alone): Cancel as the Sweep page presses it (studio.sweep_runner.cancel_sweep) on a sweep
   whose trials are mid-training on a real LocalCluster, timed to the sweep's status 'cancelled' in the
   run store with every trial's run stopped (target <= 2 s), `--repeats` times, with the load average;
   run it beside benchmarks/bench_load.py for the figure under load. Its unit test
   (tests/test_sweep_owners.py) only checks a 10 s deadline.

    python benchmarks/bench_sweep.py [--skip-overhead] [--skip-search] [--skip-peer] [--workers 2]
    python benchmarks/bench_sweep.py --cancel [--repeats 5] [--workers 2]
"""

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_tutorial import verdict  # noqa: E402  (this folder is on the path when run as a script)

SPEEDUP_TARGET, OVERHEAD_TARGET = 1.7, 0.050
CANCEL_TARGET = 2.0  # seconds from Cancel to 'cancelled' with every trial's run stopped
ACCURACY_TARGET, PEER_ACCURACY, TIME_RATIO_TARGET = 0.983, 0.980, 0.7
# The sweep that chose the mnist10 preset (docs/cli-and-api.md, "backprop sweep").
MNIST10_SEARCH = ["learning_rate=0.004,0.006,0.008", "l2=1e-4,5e-4"]
MNIST10_ITERATIONS = 1200


def spiral_base():
    from backprop.config import TrainConfig

    return TrainConfig(dataset="spiral", digits=(0, 1), layers=[16, 16, 1], activation="tanh", init="xavier",
                       optimizer="adam", learning_rate=0.03, iterations=1500, eval_every=150).validated()


def run_sweep(spec, workers):
    from backprop.runs import RunStore
    from backprop.sweep import Sweep, create_sweep

    store = RunStore()
    sweep = Sweep(create_sweep(spec, store), store, workers=workers)
    snapshot = sweep.run()
    # From the cluster being ready to the last trial's result (its shutdown is not the trials').
    wall = max(t.ended_at for t in snapshot.trials) - sweep.connect_seconds
    return sweep, snapshot, wall


def overhead(workers):
    from backprop.sweep import SweepSpec
    from backprop.trainer import Trainer

    spec = SweepSpec.build(spiral_base(), ["learning_rate=0.01,0.03,0.1,0.3", "seed=1,2,3,4"])
    configs = [spec.trial_config({"learning_rate": lr, "seed": seed})
               for lr in ("0.01", "0.03", "0.1", "0.3") for seed in ("1", "2", "3", "4")]
    # The trials in this process, one after another, one BLAS thread (as each worker has).
    os.environ["BACKPROP_ENGINE_THREADS"] = "1"
    from backprop.blas_threads import set_blas_threads

    set_blas_threads(1)
    started = time.perf_counter()
    for config in configs:
        trainer = Trainer.from_config(config, config.load_data())
        trainer.step(config.iterations)
        trainer.evaluate()
    sequential = time.perf_counter() - started
    sweep, snapshot, wall = run_sweep(spec, workers)
    own = sum(t.seconds for t in snapshot.trials)
    per_trial = (workers * wall - own) / len(snapshot.trials)
    speedup = sequential / wall
    print(f"1. 16 spiral trials ({configs[0].iterations} iterations each): in-process {sequential:.2f} s, "
          f"sweep on {workers} workers {wall:.2f} s (+ {sweep.connect_seconds:.2f} s cluster start-up)")
    print(f"   speed-up {speedup:.2f}x (target >= {SPEEDUP_TARGET}x) {verdict(speedup >= SPEEDUP_TARGET)}; "
          f"overhead per trial {per_trial * 1000:.1f} ms (target <= {OVERHEAD_TARGET * 1000:.0f} ms) "
          f"{verdict(per_trial <= OVERHEAD_TARGET)}; trials' own time {own:.2f} s")
    # The same 16 set-ups with one iteration each: nearly all of a trial is the machinery then.
    tiny = SweepSpec.build(dataclasses.replace(spiral_base(), iterations=1),
                           ["learning_rate=0.01,0.03,0.1,0.3", "seed=1,2,3,4"])
    _, snapshot, wall = run_sweep(tiny, workers)
    own = sum(t.seconds for t in snapshot.trials)
    per_trial = (workers * wall - own) / len(snapshot.trials)
    print(f"   16 one-iteration trials: wall {wall:.2f} s, overhead per trial {per_trial * 1000:.1f} ms "
          f"{verdict(per_trial <= OVERHEAD_TARGET)}")


def search(workers, vary, iterations):
    from backprop.config import preset
    from backprop.sweep import SweepSpec

    spec = SweepSpec.build(preset("mnist10"), vary, iterations=iterations)
    sweep, snapshot, wall = run_sweep(spec, workers)
    own = sum(t.seconds for t in snapshot.trials if t.seconds)
    print(f"2. mnist10 search (--preset mnist10 {' '.join('--vary ' + v for v in vary)} --iterations "
          f"{iterations}): {len(snapshot.trials)} trials, wall {wall:.1f} s on {workers} workers "
          f"against {own:.1f} s of trials (ideal {own / workers:.1f} s): ratio {wall / (own / workers):.2f}")
    for trial in snapshot.best():
        print(f"   trial {trial.number} {trial.params}: test accuracy {trial.test_accuracy:.4f}, "
              f"{trial.seconds:.1f} s on one core")
    best = snapshot.best(1)[0]
    return dataclasses.replace(spec.base, **best.params).validated()


def ours(config):
    """The chosen set-up trained here with every core (the engine's own threads), timed like the CLI's
    `seconds`: training and final evaluation, data loading excluded."""
    from backprop.trainer import Trainer

    os.environ.pop("BACKPROP_ENGINE_THREADS", None)
    data = config.load_data()
    started = time.perf_counter()
    trainer = Trainer.from_config(config, data)
    trainer.step(config.iterations)
    result = trainer.evaluate()
    return time.perf_counter() - started, result["test_accuracy"]


def peer():
    """scikit-learn's MLP (256, 128), one epoch at a time: training seconds until 98.0% test accuracy."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    from backprop.data import load_task

    data = load_task("mnist", digits=None, dtype="float32")
    model = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=1, warm_start=True, random_state=1)
    spent, accuracy = 0.0, 0.0
    for epoch in range(1, 41):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            started = time.perf_counter()
            model.fit(data.x_train, data.y_train)
            spent += time.perf_counter() - started
        accuracy = float(np.mean(model.predict(data.x_test) == data.y_test))
        if accuracy >= PEER_ACCURACY:
            return spent, accuracy, epoch
    return spent, accuracy, epoch


def cancel(workers, repeats):
    """Cancel's seconds: from sweep_runner.cancel_sweep (the page's Cancel) to the sweep 'cancelled' in the
    run store, every trial's run stopped and none running in its snapshot."""
    from backprop.config import preset
    from backprop.owners import new_browser_token
    from backprop.runs import RunStore
    from backprop.sweep import SweepSpec
    from studio import sweep_runner

    base = dataclasses.replace(preset("tutorial"), subset=2000)
    rates = ",".join(str(0.05 * (i + 1)) for i in range(workers + 1))
    spec = SweepSpec.build(base, [f"learning_rate={rates}"], iterations=1_000_000)
    store, worst = RunStore(), 0.0
    for attempt in range(repeats):
        owner = new_browser_token()
        sweep_id = sweep_runner.start_sweep(spec, workers=workers, owner=owner)
        while sweep_runner.snapshot(sweep_id).count("running") < workers or \
                len(store.sweep_runs(sweep_id)) < workers:
            time.sleep(0.05)
        time.sleep(1.0)  # mid-training
        load = os.getloadavg()[0]
        asked = time.monotonic()
        sweep_runner.cancel_sweep(sweep_id, actor=owner)
        returned = time.monotonic() - asked
        while True:
            runs = store.sweep_runs(sweep_id)
            stopped = all(run["status"] == "stopped" for run in runs)
            if stopped and store.get_sweep(sweep_id)["status"] == "cancelled" \
                    and sweep_runner.snapshot(sweep_id).count("running") == 0:
                break
            time.sleep(0.01)
        seconds = time.monotonic() - asked
        worst = max(worst, seconds)
        print(f"4. cancel #{attempt + 1}: {seconds:.2f} s to 'cancelled' with {len(runs)} trials' runs "
              f"stopped (the call returned after {returned:.2f} s; load average {load:.1f}, "
              f"{workers} workers)")
        sweep_runner.wait(sweep_id, 120)  # its cluster closes: not part of the figure
    print(f"   worst {worst:.2f} s (target <= {CANCEL_TARGET:g} s) {verdict(worst <= CANCEL_TARGET)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--vary", action="append",
                        help=f"the mnist10 search's space (default: {MNIST10_SEARCH})")
    parser.add_argument("--iterations", type=int, default=MNIST10_ITERATIONS, help="per trial of the search")
    parser.add_argument("--cancel", action="store_true", help="only the Cancel measurement (4.)")
    parser.add_argument("--repeats", type=int, default=5, help="cancels measured with --cancel")
    args = parser.parse_args()
    os.environ.setdefault("BACKPROP_STUDIO_HOME", tempfile.mkdtemp(prefix="bench-sweep-"))
    if args.cancel:
        cancel(args.workers, args.repeats)
        return
    if not args.skip_overhead:
        overhead(args.workers)
    if args.skip_search:
        return
    chosen = search(args.workers, args.vary or MNIST10_SEARCH, args.iterations)
    seconds, accuracy = ours(chosen)
    print(f"3. chosen set-up trained with every core: test accuracy {accuracy:.4f} in {seconds:.1f} s "
          f"(target >= {ACCURACY_TARGET})")
    if args.skip_peer:
        return
    peer_seconds, peer_accuracy, epochs = peer()
    ratio = seconds / peer_seconds
    print(f"   scikit-learn MLPClassifier(256, 128): {peer_accuracy:.4f} after {epochs} epochs, "
          f"{peer_seconds:.1f} s of training")
    print(f"   time ratio {ratio:.2f} (target <= {TIME_RATIO_TARGET}) "
          f"{verdict(ratio <= TIME_RATIO_TARGET and accuracy >= ACCURACY_TARGET)}")


if __name__ == "__main__":
    main()
