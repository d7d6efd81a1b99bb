"""The presets end to end through the CLI: the tutorial's full run and the mnist10 target.

1. `--preset tutorial`: 1000 full-batch iterations; the tutorial reports train accuracy
   0.95999 and test accuracy 0.95981 (checked to 1e-4).
2. `--preset mnist10` (run --repeats times): target >= 98.0% test accuracy with `seconds`
   (training + final evaluation, data loading excluded) <= 15 on 2 cores. Next to it, the
   peer measured in the same run: PyTorch 784-256-128-10 + Adam (lr 1e-3, batches of 128,
   8 epochs, float32, same threads), timed the same way.

    python benchmarks/bench_tutorial.py [--repeats 3] [--skip-tutorial] [--no-peer]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TUTORIAL_ACCURACY = {"train_accuracy": 0.95999, "test_accuracy": 0.95981}
MNIST10_ACCURACY, MNIST10_SECONDS = 0.98, 15.0


def run_cli(*options):
    """`python -m backprop train ... --json`: the JSON document it writes."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "run.json"
        command = [sys.executable, "-m", "backprop", "train", *options, "--no-record", "--quiet",
                   "--json", str(report)]
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return json.loads(report.read_text())


def verdict(ok):
    return "PASS" if ok else "FAIL"


def tutorial():
    result = run_cli("--preset", "tutorial")
    ok = all(abs(result[key] - want) < 1e-4 for key, want in TUTORIAL_ACCURACY.items())
    costs = {row["iteration"]: row["cost"] for row in result["history"]}
    print(f"tutorial: cost[0] {costs[0]!r}, cost[100] {costs[100]!r}, cost[900] {costs[900]!r}")
    print(f"tutorial: train accuracy {result['train_accuracy']:.5f}, test accuracy "
          f"{result['test_accuracy']:.5f} (tutorial: 0.95999 / 0.95981) in "
          f"{result['seconds']:.1f} s ({result['seconds'] * 1e3 / len(costs):.0f} ms per iteration) "
          f"{verdict(ok)}")
    return ok


def pytorch_peer(threads):
    """784-256-128-10 ReLU + Adam in PyTorch eager mode: 8 epochs of batches of 128."""
    import torch

    from backprop.data import load_task
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    data = load_task("mnist", None, dtype="float32")
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    started = time.perf_counter()
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(8):
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), 128):
            index = order[start:start + 128]
            loss = torch.nn.functional.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((model(x_test).argmax(dim=1) == y_test).float().mean())
    return accuracy, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    passed = True
    if not args.skip_tutorial:
        passed &= tutorial()
    for attempt in range(1, args.repeats + 1):
        result = run_cli("--preset", "mnist10")
        ok = result["test_accuracy"] >= MNIST10_ACCURACY and result["seconds"] <= MNIST10_SECONDS
        passed &= ok
        print(f"mnist10 #{attempt}: test accuracy {result['test_accuracy']:.4f}, train accuracy "
              f"{result['train_accuracy']:.4f}, {result['seconds']:.2f} s (load average "
              f"{os.getloadavg()[0]:.1f}) {verdict(ok)}")
    if not args.no_peer:
        try:
            from benchmarks.bench_step import blas_threads  # imports NumPy, whose BLAS it reads
            threads = blas_threads()[0]
            accuracy, seconds = pytorch_peer(threads)
            print(f"peer PyTorch 784-256-128-10 Adam, 8 epochs of 128, {threads} threads: test accuracy "
                  f"{accuracy:.4f} in {seconds:.2f} s")
        except ImportError as error:
            print(f"peer skipped: {error}")
    print("all PASS" if passed else "some FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
