"""Page switches: how long each page takes to settle after a click in the menu (issue 19, target 1.5 s
on an idle machine).

    python benchmarks/bench_page_switch.py [--rounds 3] [--query subset=300]

`streamlit run app.py` on a fresh studio home, one Chromium tab. The tab opens the Train page (with
--query) and takes one Step, so the pages have a network to show; then, --rounds times, it clicks
each page in the menu in turn. A page has settled when the script run is over (no "Running"
indicator: stApp's data-test-script-state), no spinner shows, and the main element's text and
element count stayed the same for STABLE seconds; its settle time is from the click to the last
change seen. Prints each switch, then each page's median and worst with the load average (1 min)
seen around its switches; the machine's load changes the numbers, so compare runs made together.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from studio.pages import PAGES  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

STABLE = 0.6  # seconds without a change: settled
TIMEOUT = 60.0

SNAPSHOT = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const main = document.querySelector('[data-testid="stMain"]');
  return {
    running: !app || app.getAttribute('data-test-script-state') === 'running',
    spinners: document.querySelectorAll('[data-testid="stSpinner"]').length,
    shape: main ? main.innerText.length + ':' + main.querySelectorAll('*').length : '',
    path: location.pathname,
  };
}"""


def settle(page, started: float) -> float:
    """Seconds from `started` to the last change before STABLE seconds of stillness."""
    last_shape, last_change = None, time.monotonic()
    while time.monotonic() - started < TIMEOUT:
        seen = page.evaluate(SNAPSHOT)
        now = time.monotonic()
        if seen["running"] or seen["spinners"] or seen["shape"] != last_shape:
            last_shape, last_change = seen["shape"], now
        elif now - last_change >= STABLE:
            return last_change - started
        time.sleep(0.05)
    raise RuntimeError(f"the page never settled in {TIMEOUT:.0f} s: {page.evaluate(SNAPSHOT)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--query", default="subset=300")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        server = StreamlitServer(Path(os.environ.get("BACKPROP_STUDIO_HOME") or home))
        try:
            server.wait_healthy()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(60_000)
                page.goto(f"{server.url}/?{args.query}")
                page.get_by_role("button", name="Step", exact=True).click()
                page.get_by_text("iteration 1 ").first.wait_for()
                settle(page, time.monotonic())
                times = {entry.title: [] for entry in PAGES}
                loads = {entry.title: [] for entry in PAGES}
                order = [*PAGES[1:], PAGES[0]]
                for round_ in range(args.rounds):
                    for entry in order:
                        link = page.locator('[data-testid="stSidebarNav"] a', has_text=entry.title).first
                        load = os.getloadavg()[0]
                        started = time.monotonic()
                        link.click()
                        took = settle(page, started)
                        times[entry.title].append(took)
                        loads[entry.title].append(load)
                        print(f"round {round_ + 1}  {entry.title:15s} {took:5.2f} s  (load {load:.1f})",
                              flush=True)
                browser.close()
        finally:
            server.stop()
    print(f"\n{'page':15s} {'median':>7s} {'worst':>7s}  load (1 min)   [{os.cpu_count()} CPUs]")
    for entry in PAGES:
        values = times[entry.title]
        print(f"{entry.title:15s} {statistics.median(values):6.2f}s {max(values):6.2f}s  "
              f"{statistics.mean(loads[entry.title]):.1f}")


if __name__ == "__main__":
    main()
