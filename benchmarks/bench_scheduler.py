"""Small runs in the shared pool against a thread each, without a browser; and the step costs behind
backprop.scheduler's rule for "small".

    python benchmarks/bench_scheduler.py [--runs 16] [--seconds 5] [--rounds 2] [--step-costs]

Designs, each in a fresh process, alternated over --rounds (the machine may be shared): N
Playground runs ([2, 4, 2, 1] tanh on the spiral's 250 training points, batches of 10, a test
evaluation every 25 steps) trained (a) by the pool with one worker per core, (b) by the pool with
one worker, (c) by one thread each (the cap raised), and (d) one run alone in the pool. Prints the
steps/s of every run (total, slowest, fastest, slowest/fastest); how long a probe thread that
stands for the server (the event loop, a page's script: 50 us of Python every 10 ms) waits for
the interpreter beyond its sleep (median and 95th percentile): the time a page's rerun loses to
training; and how long a run writer's job takes beside them (2,000 rows in an SQLite transaction
and a compressed checkpoint, every 0.5 s; median). With --step-costs: each set-up's step cost,
the rule's verdict and its measured time a step.
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAYGROUND = dict(digits=None, dataset="spiral", layers=[4, 2, 1], activation="tanh", init="xavier",
                  learning_rate=0.03, batch_size=10, points=500, eval_every=25, iterations=10**7)
F7 = ("x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2")
STEP_COSTS = [  # (what, set-up)
    ("Playground default", PLAYGROUND),
    ("Playground [2, 8, 8, 1]", {**PLAYGROUND, "layers": [8, 8, 1]}),
    ("Playground largest net, batch 30", {**PLAYGROUND, "features": F7, "layers": [8] * 6 + [1],
                                          "batch_size": 30}),
    ("Playground largest net, 1,200 points, batch 1,080", {**PLAYGROUND, "dataset": "plane", "points": 1200,
                                                          "train_share": 90, "features": F7,
                                                          "layers": [8] * 6 + [1], "batch_size": 1080}),
    ("Playground largest net, 5,000 points, batch 2,400", {**PLAYGROUND, "points": 5000, "train_share": 90,
                                                          "features": F7, "layers": [8] * 6 + [1],
                                                          "batch_size": 2400}),
    ("Playground largest net, 5,000 points, batch 4,500", {**PLAYGROUND, "points": 5000, "train_share": 90,
                                                          "features": F7, "layers": [8] * 6 + [1],
                                                          "batch_size": 4500}),
    ("MNIST [784, 16, 1], 300 images, batch 80", dict(subset=300, layers=[16, 1], batch_size=80)),
    ("MNIST [784, 16, 1], 300 images, full batch", dict(subset=300, layers=[16, 1])),
    ("MNIST [784, 196, 1], 300 images, full batch", dict(subset=300)),
    ("MNIST tutorial [784, 196, 1], full batch", dict()),
]


def load():
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def child(design, runs, seconds):
    """One design in this process; prints a JSON line."""
    from backprop.config import TrainConfig
    from backprop.threads import TrainingThread, active_small_runs, active_training_threads
    from backprop.trainer import Trainer

    config = TrainConfig(**PLAYGROUND).validated()
    data = config.load_data()
    trainers = [Trainer.from_config(config, data) for _ in range(runs)]
    threads = [TrainingThread(f"backprop-train-{i}", lambda records: None, lambda reason: None)
               for i in range(runs)]
    waits, stop = [], threading.Event()

    def probe():  # the server's share: a little Python every 10 ms
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(0.01)
            sum(range(1000))
            waits.append(time.perf_counter() - start - 0.01)

    writes = []
    folder = Path(tempfile.mkdtemp(prefix="bench-scheduler-"))
    database = sqlite3.connect(folder / "rows.sqlite", check_same_thread=False)
    database.execute("CREATE TABLE rows (iteration, epoch, cost)")
    arrays = {f"a{i}": np.random.default_rng(i).random(2000) for i in range(30)}

    def writer():  # a run writer's job every 0.5 s: 2,000 rows in a transaction and a checkpoint
        while not stop.wait(0.5):
            start = time.perf_counter()
            rows = [(i, i / 250, 0.5) for i in range(2000)]
            database.executemany("INSERT INTO rows VALUES (?, ?, ?)", rows)
            database.commit()
            np.savez_compressed(folder / "checkpoint.npz", **arrays)
            writes.append(time.perf_counter() - start)

    for trainer, thread in zip(trainers, threads, strict=True):
        thread.start(trainer, 10**7, small=design != "threads")
    time.sleep(1.0)
    helpers = [threading.Thread(target=probe, daemon=True), threading.Thread(target=writer, daemon=True)]
    for helper in helpers:
        helper.start()
    before, started = [t.iteration for t in trainers], time.perf_counter()
    time.sleep(seconds)
    after, elapsed = [t.iteration for t in trainers], time.perf_counter() - started
    stop.set()
    for helper in helpers:
        helper.join()
    for thread in threads:
        thread.stop()
    waits.sort()
    print(json.dumps({"rates": [(a - b) / elapsed for a, b in zip(after, before, strict=True)],
                      "wait_median_ms": 1e3 * waits[len(waits) // 2],
                      "wait_p95_ms": 1e3 * waits[int(0.95 * (len(waits) - 1))],
                      "write_ms": 1e3 * statistics.median(writes) if writes else float("nan"),
                      "left": active_small_runs() + active_training_threads()}))


def design(name, runs, seconds, env):
    out = subprocess.run([sys.executable, __file__, "--child", name, "--runs", str(runs), "--seconds",
                          str(seconds)], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def step_costs():
    from backprop.config import TrainConfig
    from backprop.scheduler import SMALL_STEP_COST, is_small, trainer_step_cost
    from backprop.trainer import Trainer

    print(f"small: a step's cost (parameters x the most samples one step sees) <= {SMALL_STEP_COST:,}")
    for what, values in STEP_COSTS:
        config = TrainConfig(**values).validated()
        trainer = Trainer.from_config(config, config.load_data())
        trainer.step(5)
        best = float("inf")
        for _ in range(3):
            start, k = time.perf_counter(), 0
            while time.perf_counter() - start < 0.3 or k < 3:
                trainer.step(1)
                k += 1
            best = min(best, (time.perf_counter() - start) / k)
        verdict = "small" if is_small(trainer) else "big  "
        print(f"  {what:52s} cost {trainer_step_cost(trainer):>13,}  {verdict}"
              f"  {1e3 * best:8.2f} ms a step   ({load()})", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--step-costs", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.runs, args.seconds)
    if args.step_costs:
        return step_costs()
    cores = len(os.sched_getaffinity(0))
    designs = [(f"pool, {cores} workers", "pool", args.runs, {"BACKPROP_POOL_WORKERS": str(cores)}),
               ("pool, 1 worker", "pool", args.runs, {"BACKPROP_POOL_WORKERS": "1"}),
               ("a thread each", "threads", args.runs, {"BACKPROP_MAX_TRAINING_THREADS": str(args.runs)}),
               ("one run alone (pool)", "pool", 1, {})]
    print(f"{args.runs} Playground runs, {args.seconds:g} s per design, {args.rounds} rounds, {cores} cores",
          flush=True)
    results = {name: [] for name, *_ in designs}
    for round_number in range(1, args.rounds + 1):
        for name, kind, runs, env in designs:
            seen = load()
            result = design(kind, runs, args.seconds, env)
            rates = result["rates"]
            results[name].append(result)
            print(f"round {round_number} {name:22s} total {sum(rates):6.0f} steps/s, "
                  f"slowest {min(rates):6.0f}, fastest {max(rates):6.0f}, "
                  f"ratio {min(rates) / max(rates):.2f}; "
                  f"probe waits {result['wait_median_ms']:.1f} ms (p95 {result['wait_p95_ms']:.1f}); "
                  f"a write {result['write_ms']:.0f} ms; "
                  f"left {result['left']}; ({seen} before)", flush=True)
    print("medians:")
    for name, rows in results.items():
        print(f"  {name:22s} slowest {statistics.median(min(r['rates']) for r in rows):6.0f} steps/s, ratio "
              f"{statistics.median(min(r['rates']) / max(r['rates']) for r in rows):.2f}, probe waits "
              f"{statistics.median(r['wait_median_ms'] for r in rows):.1f} ms "
              f"(p95 {statistics.median(r['wait_p95_ms'] for r in rows):.1f}), a write "
              f"{statistics.median(r['write_ms'] for r in rows):.0f} ms")
    print(load())


if __name__ == "__main__":
    sys.exit(main())
