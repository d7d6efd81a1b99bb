"""The Playground's speed in the app with Chromium open, and how often its maps refresh, against a
plain Trainer loop on the same set-up.

    python benchmarks/bench_playground.py [--seconds 20] [--rounds 1] [--query layers=8,8,1]

Measures, in one run: (1) the headless peer, a `Trainer.step(1)` loop in a subprocess for the
set-up, steps/s over --seconds; (2) `streamlit run app.py` opened on the Playground in headless
Chromium: Train, then over --seconds the steps/s from the status line's iteration counter, and in
the browser how often the output map (the decision boundary, 103 x 103 cells), the network graph
(every neuron's map) and the loss chart were redrawn (plotly.js's `plotly_afterplot` events in each
live chart's frame), and how many of the output map's redraws brought new values. Targets (issues 12
and 19): the app >= 2,000 steps/s for [2, 8, 8, 1] tanh, batches of 10, 250 training points, while
the maps refresh at >= 5 Hz. The machine is shared, so the app's rate is also given as a ratio to
the headless loop measured in the same round. On a shared machine use --rounds 3: the two are
measured alternately and the medians printed with the load averages seen.
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

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, KEYED_PLOT, StreamlitServer, status_line  # noqa: E402

# The set-up: spiral, 500 points (250 for training), [2, 8, 8, 1] tanh, batches of 10.
SETUP = ("dataset=spiral&digits=0,1&layers=8,8,1&activation=tanh&init=xavier&learning_rate=0.03"
         "&batch_size=10&iterations=10000000&eval_every=25")
LIVE_CHARTS = ("pg_boundary", "pg_network", "pg_loss")

LOOP = """
import sys, time
from backprop.trainer import Trainer
from studio.url_state import query_to_config
config, _, problems = query_to_config(dict(a.split("=", 1) for a in sys.argv[2:]))
assert not problems, problems
data = config.load_data()
trainer = Trainer.from_config(config, data)
trainer.step(100)
start, seconds = time.perf_counter(), float(sys.argv[1])
first = trainer.iteration
while time.perf_counter() - start < seconds:
    trainer.step(1)
print(len(data.y_train), (trainer.iteration - first) / (time.perf_counter() - start))
"""

# Count each live chart's redraws (and, for the output map, redraws whose values changed).
COUNT_REDRAWS = """(keys) => {
  const find = """ + KEYED_PLOT + """;
  window.__redraws = window.__redraws || {};
  for (const key of keys) {
    const plot = find(key);
    if (!plot || plot.__counted) continue;
    plot.__counted = true;
    const counts = window.__redraws[key] = {draws: 0, changed: 0, last: null};
    plot.on('plotly_afterplot', () => {
      counts.draws += 1;
      const images = plot.layout && plot.layout.images;  // the big map is a picture (a PNG data URI)
      const probe = images && images.length ? images[0].source : null;
      if (probe !== counts.last) counts.changed += 1;
      counts.last = probe;
    });
  }
  return Object.keys(window.__redraws).length;
}"""
READ_REDRAWS = "() => JSON.parse(JSON.stringify(window.__redraws || {}))"


def load():
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def headless_rate(seconds, query, env):
    out = subprocess.run([sys.executable, "-c", LOOP, str(seconds), *query], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    n_train, rate = out.stdout.split()
    return int(n_train), float(rate)


def iteration(text):
    return int(re.match(r"iteration (\d+)", text).group(1))


def app_rates(seconds, query, env):
    """(steps/s, {chart: redraws/s}, output-map redraws with new values per s, last status line)."""
    from playwright.sync_api import sync_playwright

    server = StreamlitServer(Path(env["BACKPROP_STUDIO_HOME"]))
    try:
        server.wait_healthy()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"{server.url}/playground?{'&'.join(query)}")
            page.get_by_text(re.compile(r"^iteration 0 ")).first.wait_for(timeout=60_000)
            page.wait_for_function(f"() => ({KEYED_PLOT})('pg_network')", timeout=60_000)
            page.get_by_role("button", name="Train", exact=True).click()
            page.get_by_role("button", name="Pause", exact=True).wait_for(timeout=30_000)
            time.sleep(3)  # past the start: the fragments run at their periods
            page.evaluate(COUNT_REDRAWS, list(LIVE_CHARTS))
            before = page.evaluate(READ_REDRAWS)
            start_text, start = status_line(page), time.perf_counter()
            time.sleep(seconds)
            page.evaluate(COUNT_REDRAWS, list(LIVE_CHARTS))  # a chart remounted meanwhile: count it on
            end_text, end = status_line(page), time.perf_counter()
            after = page.evaluate(READ_REDRAWS)
            page.get_by_role("button", name="Pause", exact=True).click()
            browser.close()
    finally:
        server.stop()
    elapsed = end - start
    redraws = {key: (after.get(key, {}).get("draws", 0) - before.get(key, {}).get("draws", 0)) / elapsed
               for key in LIVE_CHARTS}
    changed = (after.get("pg_boundary", {}).get("changed", 0)
               - before.get("pg_boundary", {}).get("changed", 0)) / elapsed
    return (iteration(end_text) - iteration(start_text)) / elapsed, redraws, changed, end_text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--query", action="append", default=[],
                        help="set-up items to change, as URL query items, e.g. layers=8,8,8,1")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("BACKPROP_STUDIO_HOME", tempfile.mkdtemp(prefix="bench-playground-"))
    items = dict(parse_qsl(SETUP))
    items.update(parse_qsl("&".join(args.query)))
    query = [f"{k}={v}" for k, v in items.items()]
    print(f"set-up: {'&'.join(query)}; {args.seconds:g} s each; {os.cpu_count()} CPUs", flush=True)
    results = []
    for round_number in range(1, args.rounds + 1):
        headless_load = load()
        n_train, headless = headless_rate(args.seconds, query, env)
        app_load = load()
        app, redraws, changed, last = app_rates(args.seconds, query, env)
        results.append((headless, app, redraws, changed))
        print(f"round {round_number} ({n_train} training points):")
        print(f"  headless Trainer loop:   {headless:8.0f} steps/s   ({headless_load} before)")
        print(f"  app, Chromium open:      {app:8.0f} steps/s   ({app_load} before); "
              f"ratio {app / headless:.2f}")
        print("  redraws per second:      " + ", ".join(f"{k} {v:.1f} Hz" for k, v in redraws.items())
              + f"; output map with new values {changed:.1f} Hz")
        print(f"  status line at the end:  {last}", flush=True)
    app_median = statistics.median(r[1] for r in results)
    maps = statistics.median(min(r[2]["pg_boundary"], r[2]["pg_network"]) for r in results)
    print(f"median: app {app_median:.0f} steps/s (target >= 2000), headless "
          f"{statistics.median(r[0] for r in results):.0f}, ratio "
          f"{statistics.median(r[1] / r[0] for r in results):.2f}; maps {maps:.1f} Hz (target >= 5); "
          f"{load()} after")


if __name__ == "__main__":
    main()
