"""Does the Train page leak memory in the browser, and how often do its charts really refresh?

Run by hand: ``python benchmarks/bench_browser_memory.py --minutes 10``. It starts ``streamlit run app.py``
(fresh temporary studio home), opens it in headless Chromium, presses Train and keeps it training for the
whole time (pressing Reset + Train again if the run ends), and every ``--interval`` seconds records:

- the JS heap after a forced garbage collection (CDP HeapProfiler.collectGarbage + Performance.getMetrics):
  what the page really retains; a leak shows as a steady climb;
- the DOM node count and JS event listener count (CDP);
- the share of 50 ms checks in which the cost chart was missing from the page (flicker);
- how many times per second the cost chart's plotted points changed (count or last iteration), any
  Plotly figure got new data, and any image's src changed (heatmaps drawn as images), measured in
  the page every 50 ms.

Verdict: heap slope (MB/min) over the second half versus the first half; a second-half slope under
0.5 MB/min (or under half the first-half slope) reads as "flat". Needs /usr/bin/chromium and playwright.
"""

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VISIBLE_PLOTS, StreamlitServer  # noqa: E402

FLAT_MB_PER_MINUTE = 0.5

# Counts, inside the page, every change of what the charts show (not every animation frame).
COUNT_REFRESHES = """
() => {
  const visiblePlots = """ + VISIBLE_PLOTS + """;
  const state = window.__refresh = {costChanges: 0, plotRedraws: 0, imageChanges: 0, ticks: 0,
                                    blankTicks: 0, lastCost: null, lastData: [], lastImages: ''};
  const costPoints = () => {
    for (const plot of visiblePlots()) {
      const l = plot.layout || {};
      const title = String((l.title && (l.title.text ?? l.title)) || '') + ' ' +
                    String((l.yaxis && l.yaxis.title && (l.yaxis.title.text ?? l.yaxis.title)) || '');
      if (/cost/i.test(title) && plot.data && plot.data.length) {
        // Decoded arrays (they travel as binary specs); length and last x change even once downsampled.
        const x = (plot._fullData && plot._fullData[0] ? plot._fullData[0].x : plot.data[0].x) || [];
        return x.length + ':' + x[x.length - 1];
      }
    }
    return null;
  };
  setInterval(() => {
    const points = costPoints();
    state.ticks++;
    if (points === null) state.blankTicks++;  // the cost chart is missing (flicker while redrawn)
    if (points !== state.lastCost) {
      if (state.lastCost !== null) state.costChanges++;
      state.lastCost = points;
    }
    const plots = visiblePlots();
    plots.forEach((plot, i) => {
      if (state.lastData[i] !== undefined && state.lastData[i] !== plot.data) state.plotRedraws++;
      state.lastData[i] = plot.data;
    });
    state.lastData.length = plots.length;
    const images = [...document.querySelectorAll('[data-testid="stMain"] img')]
      .map((img) => img.src).join('|');
    if (images !== state.lastImages) {
      if (state.lastImages) state.imageChanges++;
      state.lastImages = images;
    }
  }, 50);
}
"""

READ_REFRESHES = """
() => { const s = window.__refresh; const out = {cost: s.costChanges, plots: s.plotRedraws,
        images: s.imageChanges, points: s.lastCost, blank: s.ticks ? s.blankTicks / s.ticks : 0};
        s.costChanges = 0; s.plotRedraws = 0; s.imageChanges = 0; s.ticks = 0; s.blankTicks = 0;
        out.points = out.points === null ? null : Number(String(out.points).split(':')[0]); return out; }
"""


def slope_mb_per_minute(samples):
    """Least-squares slope of heap (MB) against time (minutes)."""
    if len(samples) < 2:
        return float("nan")
    minutes = [s["t"] / 60 for s in samples]
    heap = [s["heap_mb"] for s in samples]
    mean_t, mean_h = statistics.fmean(minutes), statistics.fmean(heap)
    spread = sum((t - mean_t) ** 2 for t in minutes)
    if not spread:
        return float("nan")
    return sum((t - mean_t) * (h - mean_h) for t, h in zip(minutes, heap, strict=True)) / spread


def keep_training(page):
    """Reset and train again when the run has stopped (budget reached or diverged): Train alone
    refuses a run at its budget. Pass e.g. --query iterations=100000 to avoid the gap."""
    train = page.get_by_role("button", name="Train", exact=True)
    if train.count() and train.first.is_enabled():
        page.get_by_role("button", name="Reset", exact=True).click()
        page.get_by_text(re.compile(r"iteration 0\b")).first.wait_for(timeout=30_000)
        train.first.click()
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to train (default 10)")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between samples (default 15)")
    parser.add_argument("--query", default="", help="URL query for the set-up, e.g. 'learning_rate=0.05'")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        server = StreamlitServer(Path(home))
        try:
            server.wait_healthy()
            with sync_playwright() as playwright:
                launch_args = [*CHROMIUM_ARGS, "--enable-precise-memory-info"]
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=launch_args)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                page.goto(server.url + ("/?" + args.query if args.query else "/"))
                page.get_by_role("button", name="Train", exact=True).click()
                page.evaluate(COUNT_REFRESHES)
                samples = run_samples(page, cdp, args)
                browser.close()
        finally:
            server.stop()
    report(samples, args)


def run_samples(page, cdp, args):
    samples = []
    start = time.monotonic()
    end = start + args.minutes * 60
    print(f"{'t (s)':>7} {'heap MB':>8} {'heap (raw) MB':>13} {'DOM nodes':>9} {'listeners':>9} "
          f"{'cost Hz':>7} {'plots Hz':>8} {'img Hz':>6} {'points':>6} {'blank %':>7}")
    last = time.monotonic()
    while time.monotonic() < end:
        time.sleep(max(0.0, args.interval - (time.monotonic() - last)))
        now = time.monotonic()
        seconds, last = now - last, now
        refresh = page.evaluate(READ_REFRESHES)
        raw = page.evaluate("() => performance.memory.usedJSHeapSize") / 1e6
        cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        sample = {
            "t": now - start,
            "heap_mb": metrics["JSHeapUsedSize"] / 1e6,
            "raw_mb": raw,
            "nodes": int(metrics["Nodes"]),
            "listeners": int(metrics["JSEventListeners"]),
            "cost_hz": refresh["cost"] / seconds,
            "plots_hz": refresh["plots"] / seconds,
            "images_hz": refresh["images"] / seconds,
            "points": refresh["points"],
            "blank": refresh["blank"],
        }
        samples.append(sample)
        print(f"{sample['t']:7.0f} {sample['heap_mb']:8.1f} {sample['raw_mb']:13.1f} {sample['nodes']:9d} "
              f"{sample['listeners']:9d} {sample['cost_hz']:7.2f} {sample['plots_hz']:8.2f} "
              f"{sample['images_hz']:6.2f} {sample['points']!s:>6} {100 * sample['blank']:7.1f}", flush=True)
        if refresh["cost"] == 0 and keep_training(page):
            print("        (training had stopped: pressed Reset and Train)", flush=True)
    return samples


def report(samples, args):
    if len(samples) < 4:
        print("too few samples for a verdict; run longer (--minutes) or sample more often (--interval)")
        return
    half = len(samples) // 2
    first, second = slope_mb_per_minute(samples[:half]), slope_mb_per_minute(samples[half:])
    nodes_first, nodes_last = samples[0]["nodes"], samples[-1]["nodes"]
    cost_hz = statistics.fmean(s["cost_hz"] for s in samples)
    plots_hz = statistics.fmean(s["plots_hz"] for s in samples)
    images_hz = statistics.fmean(s["images_hz"] for s in samples)
    blank = statistics.fmean(s["blank"] for s in samples)
    flat = second < FLAT_MB_PER_MINUTE or (first > 0 and second < first / 2)
    print()
    print(f"heap after GC: {samples[0]['heap_mb']:.1f} MB -> {samples[-1]['heap_mb']:.1f} MB over "
          f"{samples[-1]['t'] / 60:.1f} min; slope first half {first:+.2f} MB/min, "
          f"second half {second:+.2f} MB/min")
    print(f"DOM nodes: {nodes_first} -> {nodes_last}")
    print(f"refresh: cost chart {cost_hz:.2f} Hz, Plotly redraws {plots_hz:.2f} Hz (all figures), "
          f"image changes {images_hz:.2f} Hz; cost chart missing {100 * blank:.1f}% of the time")
    print(f"verdict: heap {'FLAT (no leak seen)' if flat else 'GROWING (possible leak)'}; "
          f"DOM {'stable' if nodes_last <= nodes_first * 1.2 + 50 else 'GROWING'}; "
          f"cost chart refreshes at {cost_hz:.2f} Hz")


if __name__ == "__main__":
    main()
