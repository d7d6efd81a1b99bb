"""Training speed in the app (with the browser open on this machine) against a plain Trainer loop.

    python benchmarks/bench_app.py [--seconds 20] [--rounds 1] [--query layers=196,1]
    BACKPROP_ENGINE_THREADS=1 python benchmarks/bench_app.py   # the engine without chunking

Measures, in one run: (1) a Trainer loop in a subprocess for the set-up (the same loop as
`python -m backprop train`), iterations/s over --seconds; (2) `streamlit run app.py` opened in
headless Chromium via Playwright: click Train, wait, and read iterations/s from the status line
(and the iteration counter for an average). Prints both and the ratio; the target is >= 0.75.
Both use the same engine (and the same BACKPROP_ENGINE_THREADS). On a shared machine, use
--rounds 3: the two are measured alternately and the median ratio is printed, with the load
averages seen at each measurement.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    KEYED_PLOT,
    StreamlitServer,
    open_and_step,
    status_line,
)

LOOP = """
import sys, time
from backprop.config import TrainConfig
from studio.url_state import query_to_config
from backprop.trainer import Trainer
config, _, _ = query_to_config(dict(a.split("=", 1) for a in sys.argv[2:]))
data = config.load_data()
trainer = Trainer.from_config(config, data)
trainer.step(3)
start, seconds = time.perf_counter(), float(sys.argv[1])
first = trainer.iteration
while time.perf_counter() - start < seconds:
    trainer.step(1)
print((trainer.iteration - first) / (time.perf_counter() - start))
"""
ENGINE = """
from backprop.blas_threads import blas_threads
from backprop.parallel import MIN_SAMPLES, workers
print(f"engine: {workers()} worker threads for batches of >= {MIN_SAMPLES} samples; "
      f"OpenBLAS threads otherwise: {blas_threads() or 'unknown'}")
"""


def cli_rate(seconds, query, env):
    out = subprocess.run([sys.executable, "-c", LOOP, str(seconds), *query], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def load():
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def app_rate(seconds, query, env):
    from playwright.sync_api import sync_playwright

    server = StreamlitServer(Path(env["BACKPROP_STUDIO_HOME"]))  # the rest of env is os.environ
    try:
        server.wait_healthy()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_and_step(page, f"{server.url}/?{'&'.join(query)}")
            page.get_by_role("button", name="Train", exact=True).click()
            page.get_by_role("button", name="Pause", exact=True).wait_for(timeout=30_000)
            time.sleep(2)
            start_text, start = status_line(page), time.perf_counter()
            time.sleep(seconds)
            end_text, end = status_line(page), time.perf_counter()
            points = page.evaluate(f"() => ({KEYED_PLOT})('cost_chart')._fullData[0].x.length")
            page.get_by_role("button", name="Pause", exact=True).click()
            browser.close()
    finally:
        server.stop()
    first = int(re.match(r"iteration (\d+)", start_text).group(1))
    last = int(re.match(r"iteration (\d+)", end_text).group(1))
    shown = float(re.search(r"([\d.]+) it/s", end_text).group(1))
    return (last - first) / (end - start), shown, points, last


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure CLI and app alternately this many times (median ratio)")
    parser.add_argument("--query", action="append", default=[],
                        help="a set-up as URL query items, e.g. layers=196,1 (default: the tutorial)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("BACKPROP_STUDIO_HOME", tempfile.mkdtemp(prefix="bench-app-"))
    query = [f"{k}={v}" for item in args.query for k, v in parse_qsl(item)]
    engine = subprocess.run([sys.executable, "-c", ENGINE], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True).stdout.strip()
    print(f"set-up: {query or 'tutorial default'}; {args.seconds:g} s each; {os.cpu_count()} CPUs; "
          f"{engine}", flush=True)
    ratios = []
    for round_number in range(1, args.rounds + 1):
        cli_load = load()
        cli = cli_rate(args.seconds, query, env)
        app_load = load()
        app, shown, points, last = app_rate(args.seconds, query, env)
        ratios.append(app / cli)
        print(f"round {round_number}:")
        print(f"  trainer loop (CLI):      {cli:6.2f} it/s   ({cli_load} before)")
        print(f"  app with browser open:   {app:6.2f} it/s   ({app_load} before; status line said "
              f"{shown:.1f} it/s; {points} points plotted at iteration {last})")
        print(f"  ratio app / CLI:         {app / cli:6.2f}", flush=True)
    print(f"ratio app / CLI: {statistics.median(ratios):.2f} (median of {len(ratios)}; "
          f"target >= 0.75); {load()} after")


if __name__ == "__main__":
    main()
