"""Time loading all 70,000 shipped MNIST images: first parse (python-mnist) versus a cold cached load.

Run by hand: ``python benchmarks/bench_data.py``. It uses a fresh, temporary studio home so the first
load really parses; the cached load runs in a new process, so nothing is memoised in memory (the
operating system's file cache may still be warm, as it would be for the app restarting).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_S = 0.5
ROOT = Path(__file__).resolve().parent.parent

LOAD = """
import time
start = time.perf_counter()
from backprop.data import SHIPPED_MNIST, load_idx
from backprop.data.idx import read_manifest
imported = time.perf_counter()
raw = load_idx(SHIPPED_MNIST, expected=read_manifest(SHIPPED_MNIST / "SHA256SUMS"))
assert len(raw.x_train) + len(raw.x_test) == 70000
print(imported - start, time.perf_counter() - imported)
"""


def timed_load(env: dict) -> tuple[float, float]:
    """(import seconds, load seconds) measured inside a fresh process."""
    result = subprocess.run([sys.executable, "-c", LOAD], env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr)
    imports, load = result.stdout.split()[-2:]
    return float(imports), float(load)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "BACKPROP_STUDIO_HOME": home, "PYTHONPATH": str(ROOT)}
        _, first = timed_load(env)
        runs = [timed_load(env) for _ in range(3)]
    imports = min(r[0] for r in runs)
    cached = [r[1] for r in runs]
    best = min(cached)
    shown = ", ".join(f"{t:.3f}" for t in cached)
    print(f"first load (SHA-256 check + python-mnist parse + cache write): {first:.2f} s")
    print(f"cold cached load in a new process, best of 3 ({shown}): {best:.3f} s")
    print(f"  (plus {imports:.3f} s to import numpy and backprop, not counted)")
    ratio = best / TARGET_S
    print(f"target {TARGET_S} s: cached load uses {ratio:.0%} of it, {first / best:.0f}x faster than parsing")


if __name__ == "__main__":
    main()
