"""Heavy load: 8 browser sessions on one server, 4 training (the thread cap) and 4 refused and retrying.

    python benchmarks/bench_load.py [--minutes 5] [--tabs 8] [--query "subset=1000&iterations=600"]

`streamlit run app.py` (default cap, BACKPROP_MAX_TRAINING_THREADS=4) is opened in --tabs Chromium tabs
(one Streamlit session each, seeds 1..tabs). Every tab presses Train; the server trains 4 at a time
and refuses the others with its cap message; a refused tab retries every 2-5 s. A tab whose run
reaches its iteration budget downloads the run's history (CSV, what its page offers), presses Reset
and trains again. After --minutes all tabs are closed. Prints: the server's peak RSS (sampled every
0.25 s) against its RSS with one idle tab open (the peer, measured in the same run) and against
4 x BACKPROP_MEMORY_BUDGET; the training-thread count the server logs after the tabs closed (must be
0); and whether every finished run's history in the run store equals the CSV its page gave (the
runs of one seed are identical, so each finished run is compared with its tab's CSV).
"""

import argparse
import csv
import io
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl

import psutil
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backprop.budget import format_bytes, memory_budget  # noqa: E402
from backprop.runs import RunStore  # noqa: E402
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

REFUSED = "BACKPROP_MAX_TRAINING_THREADS"  # in the page's message when the cap refuses a Train


class RssSampler(threading.Thread):
    """The server's resident memory (its process and children), sampled until stopped."""

    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.stopped = threading.Event()

    def now(self):
        members = [self.process, *self.process.children(recursive=True)]
        total = 0
        for member in members:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def run(self):
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval)


STATUS = re.compile(r"iteration (\d+) · epoch [\d.]+ · (paused|[\d.]+ it/s)")


class Tab:
    """One browser tab and where its run stands: idle -> starting -> training -> resetting -> idle,
    or starting -> refused (by the thread cap) -> starting again after 2-5 s."""

    def __init__(self, browser, url, seed, budget):
        self.seed = seed
        self.budget = budget
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)
        self.page.goto(url)
        self.page.get_by_role("button", name="Train", exact=True).wait_for(timeout=120_000)
        self.state = "idle"
        self.since = 0.0
        self.refusals = 0
        self.finished = []  # per finished run: {iteration: cost} from the CSV its page gave
        self.shown = []  # per finished run: the status line its page showed
        self.errors = []  # actions that timed out (the page was too slow to answer)

    def look(self):
        """(page text, iteration, running) from the status line; iteration None before a build."""
        text = self.page.locator("body").inner_text(timeout=30_000)
        found = STATUS.search(text)
        if found is None:
            return text, None, False
        return text, int(found.group(1)), found.group(2) != "paused"

    def press(self, label):
        self.page.get_by_role("button", name=label, exact=True).click(timeout=60_000)

    def advance(self, now):
        """One look at the tab, and the next action if one is due."""
        if self.state == "refused" and now < self.since:
            return
        if self.state in ("idle", "refused"):
            self.press("Train")
            self.state, self.since = "starting", now
            return
        text, iteration, running = self.look()
        if self.state in ("starting", "training") and not running and (iteration or 0) >= self.budget:
            self.collect()  # finished (perhaps before this tab looked at it running)
            self.press("Reset")
            self.state, self.since = "resetting", now
        elif self.state == "starting":
            if running:
                self.state = "training"
            elif now - self.since > 1.5 and REFUSED in text:
                self.state, self.since = "refused", now + random.uniform(2, 5)
                self.refusals += 1
            elif now - self.since > 30:
                self.state = "idle"  # the click was lost: press again
        elif self.state == "training" and not running and iteration is not None:
            self.state = "idle"  # paused early (divergence): train on
        elif self.state == "resetting" and (iteration in (None, 0) or now - self.since > 30):
            self.state = "idle"

    def collect(self):
        """The finished run as its page shows it: the status line and the history CSV."""
        self.shown.append(STATUS.search(self.look()[0]).group(0))
        button = self.page.get_by_role("button", name="History (CSV)", exact=True)
        for _ in range(3):  # open the expander (a rerun may fold it back while it opens)
            if button.is_visible():
                break
            self.page.locator("summary").filter(has_text="Export and import").click()
            try:
                button.wait_for(state="visible", timeout=10_000)
            except PlaywrightTimeout:
                continue
        for _ in range(5):  # under load a rerun of the page can cancel a download: ask again
            try:
                with self.page.expect_download(timeout=60_000) as download:
                    button.click(timeout=60_000)
                rows = csv.DictReader(io.StringIO(Path(download.value.path()).read_text()))
                break
            except PlaywrightError as error:
                self.page.wait_for_timeout(2_000)
                failure = error
        else:
            self.errors.append(f"the History CSV download failed 5 times: {failure}")
            return
        self.finished.append({int(row["iteration"]): (_number(row["cost"]), _number(row["test_accuracy"]))
                              for row in rows})


def _number(text):
    return float(text) if text not in ("", None) else None


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    print(f"  (gave up waiting for {what} after {seconds:.0f} s)")
    return False


def main(argv=None):

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--tabs", type=int, default=8)
    parser.add_argument("--query", default="subset=1000&iterations=600",
                        help="each tab's set-up as a URL query (its seed is added)")
    args = parser.parse_args(argv)
    random.seed(0)
    home = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = StreamlitServer(home)
    server.wait_healthy()
    sampler = RssSampler(server.process.pid)
    print(f"{args.tabs} tabs for {args.minutes:g} min, set-up {args.query}&seed=1..{args.tabs}; "
          f"{psutil.cpu_count()} CPUs; budget {format_bytes(memory_budget())} per session", flush=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # The peer: the server with one tab open after one Step (MNIST parsed and loaded).
            warm = browser.new_page()
            warm.goto(f"{server.url}/?{args.query}")
            warm.get_by_role("button", name="Step", exact=True).click()
            warm.get_by_text(re.compile(r"^iteration 1 ")).wait_for(timeout=180_000)
            time.sleep(2)
            idle_rss = sampler.now()
            warm.close()
            sampler.start()
            budget = int(dict(parse_qsl(args.query)).get("iterations", 1000))
            tabs = [Tab(browser, f"{server.url}/?{args.query}&seed={seed}", seed, budget)
                    for seed in range(1, args.tabs + 1)]
            started = time.monotonic()
            most_training = 0
            while time.monotonic() - started < 60 * args.minutes:
                for tab in tabs:
                    try:
                        tab.advance(time.monotonic())
                    except PlaywrightTimeout as error:  # a slow page: note it, look again later
                        tab.errors.append(str(error).splitlines()[0])
                        tab.state = "idle" if tab.state != "training" else tab.state
                most_training = max(most_training, server.training_threads() or 0)
                time.sleep(0.2)
            for tab in tabs:
                tab.context.close()
            browser.close()
        closed = wait_for(lambda: server.training_threads() == 0, 60, "0 training threads")
        threads_after = server.training_threads()
    finally:
        sampler.stopped.set()
        server.stop()

    store = RunStore(home / "runs.sqlite3")
    by_seed = {tab.seed: tab for tab in tabs}
    compared = equal = 0
    for run in store.list_runs():
        if run["status"] != "finished":
            continue
        tab = by_seed.get(run["config"].get("seed"))
        if tab is None or not tab.finished:
            continue
        # the steps' costs and the test results, each named by the same iteration on both sides
        recorded = {row["iteration"]: (row["cost"], row["test_accuracy"]) for row in store.history(run["id"])}
        compared += 1
        equal += recorded == tab.finished[0]
    finished_runs = sum(len(tab.finished) for tab in tabs)
    statuses = [run["status"] for run in store.list_runs()]
    print(f"runs finished on the pages: {finished_runs}; refusals by the cap: "
          f"{sum(tab.refusals for tab in tabs)}; most threads at once: {most_training}; "
          f"page actions that timed out: {sum(len(tab.errors) for tab in tabs)}")
    counts = ", ".join(f"{statuses.count(status)} {status}" for status in sorted(set(statuses)))
    print(f"run store: {len(statuses)} runs, {counts}")
    print(f"server peak RSS: {format_bytes(sampler.peak)}; with one idle tab: {format_bytes(idle_rss)} "
          f"(ratio {sampler.peak / idle_rss:.2f}); 4 x budget: {format_bytes(4 * memory_budget())} "
          f"(ratio {sampler.peak / (4 * memory_budget()):.2f})")
    print(f"training threads after all tabs closed: {threads_after} ({'ok' if closed else 'NOT 0'})")
    print(f"finished runs whose stored history equals its page's CSV: {equal} of {compared}"
          f"{'' if equal == compared else '  <-- MISMATCH'}")
    return 0 if closed and equal == compared and compared > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
