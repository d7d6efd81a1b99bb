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

    python benchmarks/bench_load.py --playground 16 [--seconds 60] [--chromium-tabs 1]

A class at once (issue 19): the Playground's own set-up ([2, 4, 2, 1] tanh on the circle's 500
points, batches of 10; seeds 1..N) in N sessions that all press Train, after one tab alone (the
peer, measured first in the same run). The first --chromium-tabs sessions are Chromium tabs (the
first in the foreground); the others are screenless sessions (tests/browser/screenless.py):
Streamlit sessions that send what a tab's frontend sends (its widgets' values, taken from the first
tab, with their own seed; each fragment's timed reruns) and read all the server sends, but draw
nothing, as a class's other browsers, each on its own machine, load the server and not this one.
With --chromium-tabs 16 the 16 tabs draw on the server's 2 cores: their drawing (~165 ms of a
renderer's CPU per Playground refresh) is then what is measured. Prints each session's steps/s over
--seconds (from the last step its run wrote to the run store, and from the iteration counter a tab
shows) against the targets (each >= 150 steps/s; slowest >= half the fastest) and against the tab
alone; how often the output map was redrawn in the foreground tab (plotly.js's `plotly_afterplot`,
target >= 1 Hz) and in another tab, and how often the server sent each screenless session a new
map; the server's peak RSS (target <= 2 GB); refusals (target 0); exceptions shown to a screenless
session (target 0); the training count the server logs after the sessions closed (target 0); the
CPU the server, the tabs' Chromium and the screenless sessions took while measured; the websockets
that dropped and the sessions that reconnected to take their run back; and the load averages.

    python benchmarks/bench_load.py --sweep [--minutes 4] [--budget 4GB]

A sweep beside training (issue 21): one tab opens the Sweep page and starts a small sweep on the
default LocalCluster (2D playground: spiral, a grid of --sweep-rates learning rates, --sweep-iterations
each, the page's default workers: one per core) while 4 other tabs train on the Train page (--query,
seeds 1..4, Reset and Train again as above). The server runs with BACKPROP_MEMORY_BUDGET=--budget and
BACKPROP_MAX_TRAINING_THREADS=4 + the sweep's workers (each local worker takes a training slot), so
neither the tabs nor the sweep are refused. The tabs train for --minutes and at least until the sweep
has ended (at most --minutes + 3). Prints a table and PASS/FAIL for: the server's peak RSS (its
process and every child: the sweep's cluster process and its Dask workers) within 4 training
sessions' budgets + the sweep's (5 x BACKPROP_MEMORY_BUDGET); the sweep's own processes within what
its admission (backprop/sweep/admission.py) granted it; 0 tracebacks (the text "Traceback" or a
`stException` element on any page at any moment, or "Traceback" in the server's output); every
finished training run stored equal to what its page showed (the status line's iteration and cost
against the last stored step, and the page's History CSV against the stored history); every sweep
trial's rows in the store and the sweep 'finished' in the store and on its page (done count and the
best trial); 0 training threads after the tabs closed; and no process of the server left after it
stopped. With the load averages seen.
"""

import argparse
import csv
import io
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl

import psutil
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright
from streamlit.proto.WidgetStates_pb2 import WidgetState

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backprop.budget import format_bytes, memory_budget  # noqa: E402
from backprop.runs import RunStore  # noqa: E402
from benchmarks.bench_playground import COUNT_REDRAWS, READ_REDRAWS  # noqa: E402
from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    KEYED_PLOT,
    WATCH_FOR_PROBLEMS,
    AppPage,
    StreamlitServer,
)
from tests.browser.screenless import ScreenlessClass, template_from  # noqa: E402
from tests.browser.test_sweep import SPIRAL_BASE, start_spiral_sweep  # noqa: E402

REFUSED = "BACKPROP_MAX_TRAINING_THREADS"  # in the page's message when the cap refuses a Train
REFUSED_ANY = "already training"  # in the message of either cap (big runs' threads, small runs)


class RssSampler(threading.Thread):
    """The server's resident memory (its process and children), sampled until stopped; also the
    peak of the sweep's own processes (`python -m backprop.sweep serve N` and its Dask workers), and
    every process id seen (to check that none is left once the server stopped)."""

    def __init__(self, pid, interval=0.25):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.sweep_peak = 0  # the sweep's cluster process and its workers
        self.seen = {pid: self.process.cmdline()}
        self.stopped = threading.Event()

    def now(self):
        return self.sample()[0]

    def sample(self):
        """(bytes of the whole tree, bytes of the sweep's cluster processes)."""
        try:
            children = self.process.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0, 0
        sizes, parents = {}, {}
        for member in [self.process, *children]:
            try:
                sizes[member.pid], parents[member.pid] = member.memory_info().rss, member.ppid()
                if member.pid not in self.seen:
                    self.seen[member.pid] = member.cmdline()
            except psutil.Error:
                sizes.pop(member.pid, None)
        # the sweep's processes: `python -m backprop.sweep serve N` and everything below it (children()
        # does not promise parents before their children: follow each one's parents up)
        serving = {pid for pid in sizes
                   if pid != self.process.pid and "backprop.sweep" in self.seen.get(pid, ())}

        def below_serving(pid):
            while pid in parents and pid != self.process.pid:
                if pid in serving:
                    return True
                pid = parents[pid]
            return False

        sweep = sum(size for pid, size in sizes.items() if below_serving(pid))
        return sum(sizes.values()), sweep

    def run(self):
        while not self.stopped.is_set():
            total, sweep = self.sample()
            self.peak, self.sweep_peak = max(self.peak, total), max(self.sweep_peak, sweep)
            time.sleep(self.interval)

    def left_behind(self):
        """The processes seen that still run (not zombies) after the server stopped."""
        alive = []
        for pid, command in self.seen.items():
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE and process.cmdline() == command:
                    alive.append(f"{pid} {' '.join(command)[:80]}")
            except psutil.NoSuchProcess:
                pass
        return alive


STATUS = re.compile(r"iteration (\d+) · epoch [\d.]+ · (paused|[\d.]+ it/s)")
STATUS_LINE = re.compile(STATUS.pattern + r"[^\n]*")  # with the elapsed time, cost and test result


class Tab:
    """One browser tab and where its run stands: idle -> starting -> training -> resetting -> idle,
    or starting -> refused (by the thread cap) -> starting again after 2-5 s."""

    def __init__(self, browser, url, seed, budget):
        self.seed = seed
        self.budget = budget
        self.context = browser.new_context(viewport={"width": 1300, "height": 900})
        self.context.add_init_script(WATCH_FOR_PROBLEMS)  # a traceback shown at any moment is kept
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
        self.shown.append(STATUS_LINE.search(self.look()[0]).group(0))
        button = self.page.get_by_role("button", name="History (CSV)", exact=True)
        expander = self.page.locator('[data-testid="stExpander"]').filter(has_text="Export and import")
        for _ in range(3):  # open the expander, only if it is closed (a second click would close it)
            if button.is_visible():
                break
            details = expander.locator('[data-testid="stExpanderDetails"]')
            if not details.count() or details.first.get_attribute("inert") is not None:  # closed
                expander.locator("summary").first.click()
            try:
                button.wait_for(state="visible", timeout=20_000)
            except PlaywrightTimeout:
                continue
        failure = None
        for _ in range(3):  # under load a rerun of the page can cancel a download: ask again
            try:
                with self.page.expect_download(timeout=30_000) as download:
                    button.click(timeout=30_000)
                rows = csv.DictReader(io.StringIO(Path(download.value.path()).read_text()))
                break
            except PlaywrightError as error:
                self.page.wait_for_timeout(2_000)
                failure = error
        else:
            self.errors.append(f"seed {self.seed}: the History CSV download failed 3 times: "
                               f"{str(failure).splitlines()[0]}")
            return
        self.finished.append({int(row["iteration"]): (_number(row["cost"]), _number(row["test_accuracy"]))
                              for row in rows})


def training_tabs(browser, server, query, count):
    """`count` Train-page tabs on the set-up `query`, seeds 1..count, each with its iteration budget."""
    budget = int(dict(parse_qsl(query)).get("iterations", 1000))
    return [Tab(browser, f"{server.url}/?{query}&seed={seed}", seed, budget) for seed in range(1, count + 1)]


def peer_rss(browser, server, query, sampler):
    """The peer figure: the server's RSS with one tab open after one Step (the data parsed and
    loaded), that tab closed again; then the sampler starts."""
    warm = browser.new_page()
    warm.goto(f"{server.url}/?{query}")
    warm.get_by_role("button", name="Step", exact=True).click()
    warm.get_by_text(re.compile(r"^iteration 1 ")).wait_for(timeout=180_000)
    time.sleep(2)  # the first step's garbage settles before the reading
    idle = sampler.now()
    warm.close()
    sampler.start()
    return idle


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


def close_tabs(server, browser, contexts):
    """Close every tab (its browser context) and the browser, then wait up to 60 s for the server to
    log 0 training threads. Returns (whether it did, the last count it logged)."""
    for context in contexts:
        context.close()
    browser.close()
    ended = wait_for(lambda: server.training_threads() == 0, 60, "0 training threads")
    return ended, server.training_threads()


def load():
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def cpu_seconds(process, only=None, descendants=True):
    """CPU seconds (user + system) of a process and its descendants (those whose name contains
    `only`, when given; none with descendants=False)."""
    total = 0.0
    for member in [process, *(process.children(recursive=True) if descendants else ())]:
        try:
            if only is None or only in member.name():
                times = member.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


class HealthSampler(threading.Thread):
    """How long the server takes to answer /_stcore/health (its event loop), every second."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url + "/_stcore/health"
        self.seconds = []
        self.failures = 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(1.0):
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=30) as reply:
                    reply.read()
                self.seconds.append(time.monotonic() - start)
            except OSError:
                self.failures += 1


class PlaygroundTab:
    """One browser tab on the Playground, training, and the readings a class's benchmark takes."""

    def __init__(self, browser, url, seed):
        self.seed = seed
        self.context = browser.new_context(viewport={"width": 1600, "height": 1100})
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.closed_sockets = []  # (time, url) of every websocket that closed: a lost session
        self.frames = 0  # websocket messages from the server (script runs' deltas): what it sent
        self.sent = []  # the frames it sent: a template of the widget states for screenless sessions
        self.page.on("websocket", self._watch)
        # only the navigation's start: the tabs load side by side, ready() waits for each
        self.page.goto(f"{url}/playground?seed={seed}", wait_until="commit")
        self.refused = False

    def _watch(self, socket):
        socket.on("close", lambda closed: self.closed_sockets.append((time.monotonic(), closed.url)))
        socket.on("framereceived", lambda frame: setattr(self, "frames", self.frames + 1))
        socket.on("framesent", lambda payload: self.sent.append(payload) if len(self.sent) < 200 else None)

    def ready(self):
        self.page.get_by_text(re.compile(r"^iteration 0 ")).first.wait_for(timeout=180_000)
        self.page.wait_for_function(f"() => ({KEYED_PLOT})('pg_boundary')", timeout=180_000)

    def train(self):
        self.page.get_by_role("button", name="Train", exact=True).click()

    def training(self):
        """True once it trains (its Train button disabled, or its Pause button enabled), pressing
        Train again if a click was lost; False if the page says a cap refused it, or after 3 min."""
        train = self.page.get_by_role("button", name="Train", exact=True)
        pause = self.page.get_by_role("button", name="Pause", exact=True)
        deadline = time.monotonic() + 180
        pressed = time.monotonic()
        while time.monotonic() < deadline:
            if train.is_disabled() or pause.is_enabled():
                return True
            if REFUSED_ANY in self.page.locator("body").inner_text():
                self.refused = True
                return False
            if time.monotonic() - pressed > 30:
                try:
                    train.click(timeout=5_000)
                except PlaywrightTimeout:  # it started meanwhile (the button turns disabled)
                    pass
                pressed = time.monotonic()
            time.sleep(0.5)
        return False

    def iteration(self):
        text = self.page.get_by_text(re.compile(r"^iteration \d+")).first.inner_text(timeout=60_000)
        return int(re.match(r"iteration (\d+)", text).group(1)), time.perf_counter()

    def count_redraws(self):
        self.page.evaluate(COUNT_REDRAWS, ["pg_boundary"])

    def redraws(self):
        return self.page.evaluate(READ_REDRAWS).get("pg_boundary", {"draws": 0, "changed": 0})


def recorded_iterations(store):
    """{seed: the last step in the run store} of the runs training now (rows are written at most
    every 2 s: what the server trained, whatever the pages show)."""
    newest = {}
    for run in store.list_runs():  # newest first
        if run["status"] == "running":
            newest.setdefault(run["config"].get("seed"), run["last_iteration"] or 0)
    return newest


def measure(tabs, seconds, store, watched=None, screenless=()):
    """Over `seconds`, per tab: steps/s in the run store, and for the first `watched` tabs (default
    all; the first in the foreground) steps/s on the page (its iteration counter) and its output map's
    redraws and redraws with new values per second (None for the others: reading 16 pages one after
    another takes minutes on a loaded 2-core machine, and the reading itself loads the browser).
    Then per screenless session ((seed, ScreenlessSession) pairs): steps/s in the run store and the
    output maps the server sent it per second (what its browser would draw). Rows: (steps/s, page steps/s,
    redraws/s, redraws with new values/s) per tab, then (steps/s, None, maps sent/s, None)."""
    tabs[0].page.bring_to_front()
    read = tabs[:watched]
    sessions = [session for _, session in screenless]
    for tab in read:
        tab.count_redraws()
    before = [(tab.iteration(), tab.redraws()) for tab in read]
    stored_before, started = recorded_iterations(store), time.perf_counter()
    frames_before = [tab.frames for tab in tabs] + [session.tally.messages for session in sessions]
    maps_before = [session.tally.figures.get("pg_boundary", 0) for session in sessions]
    tabs[0].page.wait_for_timeout(1000 * seconds)  # Playwright hands the tabs' events over while it waits
    stored_after, elapsed = recorded_iterations(store), time.perf_counter() - started
    frames_after = [tab.frames for tab in tabs] + [session.tally.messages for session in sessions]
    maps_after = [session.tally.figures.get("pg_boundary", 0) for session in sessions]
    frames = [(after - count) / elapsed for count, after in zip(frames_before, frames_after, strict=True)]
    for tab in read:
        tab.count_redraws()  # a map remounted meanwhile: count on
    after = [(tab.iteration(), tab.redraws()) for tab in read]
    rows = []
    seeds = [tab.seed for tab in tabs] + [seed for seed, _ in screenless]
    for n, seed in enumerate(seeds):
        # None: its run was not training at the start or the end (its session was lost)
        stored = ((stored_after[seed] - stored_before[seed]) / elapsed
                  if seed in stored_after and seed in stored_before else None)
        if n >= len(tabs):
            k = n - len(tabs)
            rows.append((stored, None, (maps_after[k] - maps_before[k]) / elapsed, None))
        elif n >= len(read):
            rows.append((stored, None, None, None))
        else:
            ((i0, t0), r0), ((i1, t1), r1) = before[n], after[n]
            rows.append((stored, (i1 - i0) / (t1 - t0), (r1["draws"] - r0["draws"]) / (t1 - t0),
                         (r1["changed"] - r0["changed"]) / (t1 - t0)))
    print("  messages from the server per second, per session: " + " ".join(f"{rate:.1f}" for rate in frames),
          flush=True)
    return rows


def playground_class(n_tabs, seconds, chromium_tabs=1):
    """The --playground mode (see the module docstring); returns the exit status."""
    chromium_tabs = max(1, min(chromium_tabs, n_tabs))
    home = Path(tempfile.mkdtemp(prefix="bench-class-"))
    server = StreamlitServer(home)
    server.wait_healthy()
    sampler = RssSampler(server.process.pid)
    sampler.start()
    store = RunStore(home / "runs.sqlite3")
    health = HealthSampler(server.url)
    health.start()
    print(f"Playground class: {n_tabs} sessions ({chromium_tabs} in Chromium tabs, "
          f"{n_tabs - chromium_tabs} screenless), {seconds:g} s measured; {psutil.cpu_count()} CPUs; "
          f"{load()}",
          flush=True)
    begun = time.monotonic()
    screenless = None

    def stamp(what):
        print(f"  [{time.monotonic() - begun:4.0f} s] {what}; {load()}", flush=True)
    try:
        with sync_playwright() as playwright:
            me = psutil.Process()
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            alone = PlaygroundTab(browser, server.url, 100)
            alone.ready()
            alone.train()
            if not alone.training():
                raise RuntimeError(f"the tab alone did not train:\n{alone.page.locator('body').inner_text()}"
                                   f"\n{server.output(30)}")
            time.sleep(3)  # past the start
            solo_load = load()
            (solo_rate, solo_page, solo_draws, solo_changed), = measure([alone], seconds, store)
            solo_rate = solo_rate or 0.0  # None: its session was lost
            alone.context.close()
            wait_for(lambda: server.training_threads() == 0, 60, "the tab alone's run ending")
            stamp("the tab alone measured")
            print(f"one tab alone: {solo_rate:.0f} steps/s ({solo_page:.0f} on its page), output map "
                  f"{solo_draws:.1f} Hz "
                  f"({solo_changed:.1f} Hz with new values); {solo_load} before", flush=True)

            tabs = [PlaygroundTab(browser, server.url, seed) for seed in range(1, chromium_tabs + 1)]
            for tab in tabs:
                tab.ready()
            for tab in tabs:
                tab.train()
            trained = [tab.training() for tab in tabs]
            seeds = range(chromium_tabs + 1, n_tabs + 1)  # the screenless sessions'
            if seeds:
                # each sends what the first tab's frontend sends (its widgets' values), with its own seed
                wait_for(lambda: template_from(tabs[0].sent), 30, "a timed rerun from the first tab")
                screenless = ScreenlessClass(server.url, "playground", [f"seed={seed}" for seed in seeds],
                                             template_from(tabs[0].sent),
                                             [{"pg_seed": WidgetState(int_value=seed)} for seed in seeds])
                screenless.open("Train")
                screenless.press("Train")
            stamp(f"{n_tabs} sessions drawn, Train pressed")
            if screenless:
                wait_for(lambda: set(seeds) <= recorded_iterations(store).keys(), 180,
                         "every screenless session's run in the run store")
                training_now = recorded_iterations(store)
                trained += [seed in training_now for seed in seeds]
            most_training = server.training_threads()
            stamp(f"{sum(trained)} sessions training")
            time.sleep(5)  # past the starts
            class_load = load()
            served = psutil.Process(server.process.pid)
            cpu_before = (cpu_seconds(served), cpu_seconds(me, "chrom"), cpu_seconds(me, descendants=False),
                          time.monotonic())
            pairs = list(zip(seeds, screenless.sessions, strict=True)) if screenless else []
            rows = measure(tabs, seconds, store, watched=2, screenless=pairs)  # the foreground and one other
            cpu_after = (cpu_seconds(served), cpu_seconds(me, "chrom"), cpu_seconds(me, descendants=False),
                         time.monotonic())
            wall = cpu_after[-1] - cpu_before[-1]
            cores = [(after - before) / wall
                     for before, after in zip(cpu_before[:-1], cpu_after[:-1], strict=True)]
            stamp("measured")
            texts = [tab.page.locator("body").inner_text() for tab in tabs[:2]]
            sessions = screenless.sessions if screenless else []
            refusals = sum(tab.refused for tab in tabs)
            refusals += sum(REFUSED_ANY in text and not tab.refused
                            for tab, text in zip(tabs, texts, strict=False))
            refusals += sum(any(REFUSED_ANY in text for text in session.tally.texts) for session in sessions)
            tracebacks = [session.tally.exceptions[-1] for session in sessions if session.tally.exceptions]
            training_at_end = recorded_iterations(store)
            shown = [STATUS.search(text) for text in texts]
            # before the tabs close theirs: a websocket closed meanwhile (a screenless one is not reopened)
            lost = [len(tab.closed_sockets) for tab in tabs]
            lost += [int(session.tally.closed) for session in sessions]
            if screenless:
                screenless.close()
            closed, threads_after = close_tabs(server, browser, [tab.context for tab in tabs])
            stamp("tabs closed, their training ended" if closed else "tabs closed")
    finally:
        if screenless and screenless.thread.is_alive():
            screenless.close()
        sampler.stopped.set()
        health.stopped.set()
        server.stop()
    time.sleep(2)
    left = sampler.left_behind()
    if not all(trained):
        print(f"not training: tabs {[n for n, t in enumerate(trained, 1) if not t]}; the server's log:\n"
              f"{server.output(40)}")
    rates = [row[0] for row in rows if row[0] is not None] or [0.0]
    solo = max(solo_rate or 0.0, 1e-9)
    print(f"{n_tabs} sessions training: {sum(trained)} of {n_tabs}; refusals: {refusals}; "
          f"training count the server logged with all started: {most_training}; {class_load} before")
    not_training = [seed for seed in range(1, n_tabs + 1) if seed not in training_at_end]
    print(f"sessions whose run was not training at the end (the run store): {not_training or 'none'}")
    for number, (rate, page_rate, draws, changed) in enumerate(rows, 1):
        trained_here = (f"{rate:6.0f} steps/s ({rate / solo:.2f} of the tab alone)" if rate is not None
                        else "  its run was not training at the start or the end (its websocket dropped?)")
        if number > chromium_tabs:
            print(f"  screenless {number:2d}: {trained_here}; output maps sent {draws:.1f} Hz")
            continue
        page = ("" if page_rate is None else f"; {page_rate:.0f} on its page; output map {draws:.1f} Hz "
                                             f"({changed:.1f} Hz with new values)")
        print(f"  tab {number:2d}{' (foreground)' if number == 1 else '             '}: {trained_here}{page}")
    runs = store.list_runs()
    statuses = [run["status"] for run in runs]
    counts = ", ".join(f"{statuses.count(status)} {status}" for status in sorted(set(statuses)))
    lines = "; ".join(f"{n}: {m.group(0) if m else '-'}" for n, m in enumerate(shown, 1))
    print(f"run store: {len(runs)} runs, {counts}; the tabs' status lines at the end: {lines}")
    waits = sorted(health.seconds) or [float("nan")]
    which = ", ".join(f"tab {n}: {count}" for n, count in enumerate(lost, 1) if count)
    back = [re.search(r"reconnected after ([\d.]+) s", line) for line in server.lines]
    back = [float(found.group(1)) for found in back if found]
    print(f"websockets that closed while the tabs were open (the run pauses until its tab reconnects): "
          f"{sum(lost)} ({which or 'none'}); sessions that reconnected and took their run back: {len(back)} "
          f"(after {', '.join(f'{seconds:.1f}' for seconds in back) or '-'} s); "
          f"the server's /_stcore/health answered in median {1e3 * waits[len(waits) // 2]:.0f} ms, "
          f"at most {waits[-1]:.1f} s, {health.failures} failed")
    (home / "server.log").write_text("\n".join(server.lines))
    if len(runs) != n_tabs + 1 or min(rates) <= 0:
        print(f"server log: {home / 'server.log'}")
    slowest, fastest = min(rates), max(rates)
    others = [row[2] for row in rows[1:chromium_tabs] if row[2] is not None]
    sent = sorted(row[2] for row in rows[chromium_tabs:])
    print(f"steps/s per session ({len(rates)} whose run trained throughout): slowest {slowest:.0f}, "
          f"median {sorted(rates)[len(rates) // 2]:.0f}, "
          f"fastest {fastest:.0f} (target: each >= 150); slowest/fastest {slowest / max(fastest, 1e-9):.2f} "
          f"(target >= 0.5); all sessions together {sum(rates):.0f} steps/s = {sum(rates) / solo:.2f} x "
          f"the tab alone ({solo_rate:.0f})")
    others_median = sorted(others)[len(others) // 2] if others else 0.0
    print(f"output map in the foreground tab: {rows[0][2]:.1f} Hz (target >= 1), with new values "
          f"{rows[0][3]:.1f} Hz" + (f"; in another tab: median {others_median:.1f} Hz" if others else "")
          + (f"; sent to the screenless sessions: slowest {sent[0]:.1f} Hz, "
             f"median {sent[len(sent) // 2]:.1f} Hz" if sent else ""))
    print(f"CPU while measured (cores): the server {cores[0]:.2f}, the {chromium_tabs} Chromium tab(s) "
          f"{cores[1]:.2f}, the {n_tabs - chromium_tabs} screenless sessions (this process) {cores[2]:.2f}")
    if tracebacks:
        print(f"an exception shown to a screenless session: {tracebacks[0]}")
    print(f"server peak RSS: {format_bytes(sampler.peak)} (target <= 2 GB)")
    print(f"training count after all tabs closed: {threads_after} ({'ok' if closed else 'NOT 0'}); {load()}")
    print(f"processes of the server left after it stopped: {len(left)} {left or ''}")
    criteria = [
        ("every session >= 150 steps/s", f"slowest {slowest:.0f} ({len(rates)} of {n_tabs} measured)",
         len(rates) == n_tabs and slowest >= 150),
        ("slowest >= half the fastest", f"{slowest / max(fastest, 1e-9):.2f}", slowest >= fastest / 2),
        ("output map >= 1 Hz in the foreground", f"{rows[0][2]:.1f} Hz", rows[0][2] >= 1),
        ("server peak RSS <= 2 GB", format_bytes(sampler.peak), sampler.peak <= 2 * 10**9),
        ("0 refusals, every session training", f"{refusals} refused, {sum(trained)} of {n_tabs} training",
         refusals == 0 and all(trained)),
        ("0 exceptions shown", str(len(tracebacks)), not tracebacks),
        ("0 training after the tabs closed", str(threads_after), closed),
        ("0 processes left after the server stopped", str(len(left)), not left),
    ]
    for name, measured, ok in criteria:
        print(f"  {name:42} {measured:40} {'PASS' if ok else 'FAIL'}")
    return 0 if all(ok for *_, ok in criteria) else 1


# -- --sweep: a sweep from one tab while 4 others train ---------------------------------------------
PROGRESS = re.compile(r"(starting|running|finished|cancelled|failed|interrupted) · (\d+)/(\d+) done · "
                      r"(\d+) running · (\d+) pruned · (\d+) failed · (?:\d+ lost to a worker that died · )?"
                      r"best: (?:-|trial (\d+), (.+?) (\S+)) · (\d+) s")
TRAINING_TABS = 4
PAGE_PROBLEMS = """() => {
  const seen = [...(window.__backpropProblems || [])];
  if (document.querySelector('[data-testid="stException"]')) seen.push('stException (now)');
  const text = (document.body && document.body.innerText) || '';
  if (text.includes('Traceback')) seen.push('Traceback text (now)');
  return seen;
}"""


def page_problems(page):
    """Every traceback the page showed at any moment (the watcher's record) or shows now."""
    try:
        return page.evaluate(PAGE_PROBLEMS)
    except PlaywrightError as error:
        return [f"(could not read the page: {str(error).splitlines()[0]})"]


def start_sweep(app, rates, iterations):
    """On the Sweep page: the spiral, a grid of learning rates, `iterations` each; Start sweep.
    Returns the page's message if it refused, else None."""
    page = app.page
    start_spiral_sweep(app, rates, iterations, timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = app.text()
        if PROGRESS.search(text):
            return None
        refused = page.locator('[data-testid="stAlertContentError"]')
        if refused.count():
            return refused.first.inner_text()
        time.sleep(1)
    return f"no progress line within 120 s:\n{app.debug()}"


def sweep_progress(app):
    """The sweep's progress line as its page shows it now (a PROGRESS match), or None."""
    try:
        return PROGRESS.search(app.page.locator("body").inner_text(timeout=30_000))
    except PlaywrightError:
        return None


def compare_training(tabs, runs):
    """Each finished training run against what its tab showed. Returns (rows of the table, compared,
    equal): a tab's k-th finished run on its page is its seed's k-th finished run in the store (by id);
    a run that finished after its tab's last look is compared with the same seed's CSV (one seed's
    runs are identical)."""
    lines, compared, equal = [], 0, 0
    for tab in tabs:
        stored = sorted((run for run in runs if run["sweep_id"] is None and run["status"] == "finished"
                         and run["config"].get("seed") == tab.seed), key=lambda run: run["id"])
        for k, run in enumerate(stored):
            history = {row["iteration"]: (row["cost"], row["test_accuracy"]) for row in run["history"]}
            problems = []
            if k < len(tab.shown):
                shown = STATUS_LINE.search(tab.shown[k])
                iteration = int(shown.group(1))
                # the page counts steps done (iteration N after N steps); the store numbers each step
                if run["last_iteration"] is None or run["last_iteration"] + 1 != iteration:
                    problems.append(f"page iteration {iteration}, stored last step {run['last_iteration']}")
                cost = f"cost {run['last_cost']:.4f}" if run["last_cost"] is not None else "no stored cost"
                if cost not in shown.group(0):
                    problems.append(f"page '{shown.group(0)}', stored {cost}")
                accuracy = run["last_test_accuracy"]
                if accuracy is not None and f"test accuracy {accuracy:.2%}" not in shown.group(0):
                    problems.append(f"page '{shown.group(0)}', stored test accuracy {accuracy:.2%}")
                line = shown.group(0)
            else:
                line = "(finished after its tab's last look)"
            csv_rows = tab.finished[min(k, len(tab.finished) - 1)] if tab.finished else None
            if csv_rows is None:
                problems.append("no CSV from its page to compare")
            elif csv_rows != history:
                problems.append(f"stored history ({len(history)} rows) differs from the page's CSV "
                                f"({len(csv_rows)} rows)")
            compared += 1
            equal += not problems
            lines.append(f"  run {run['id']:3d} (tab seed {tab.seed}): {line[:110]} -> "
                         + ("; ".join(problems) if problems else "equal"))
        if len(tab.shown) > len(stored):
            compared += 1
            lines.append(f"  tab seed {tab.seed}: its page showed {len(tab.shown)} finished runs, the store "
                         f"has {len(stored)} finished")
    return lines, compared, equal


def sweep_load(args):
    """The --sweep mode (see the module docstring); returns the exit status."""
    from backprop.sweep import SweepSpec, check_sweep, default_workers

    os.environ["BACKPROP_MEMORY_BUDGET"] = args.budget  # this process's admission figures, the server's
    budget = memory_budget()
    workers = default_workers()
    env = {"BACKPROP_MEMORY_BUDGET": args.budget,
           "BACKPROP_MAX_TRAINING_THREADS": str(TRAINING_TABS + workers)}
    minutes = 4.0 if args.minutes is None else args.minutes
    random.seed(0)
    home = Path(tempfile.mkdtemp(prefix="bench-load-sweep-"))
    server = StreamlitServer(home, env=env)
    server.wait_healthy()
    sampler = RssSampler(server.process.pid)
    loads = [os.getloadavg()]
    print(f"sweep + {TRAINING_TABS} training tabs for {minutes:g} min (and until the sweep ends); "
          f"Train set-up {args.query}&seed=1..{TRAINING_TABS}; sweep: {SPIRAL_BASE}, learning_rate="
          f"{args.sweep_rates}, {args.sweep_iterations} iterations, {workers} local workers; "
          f"{psutil.cpu_count()} CPUs; server env {env}; {load()}", flush=True)
    refused = None
    progress = None
    tabs, sweep_app = [], None
    problems = {}
    timeouts = 0
    sweep_started = sweep_ended = None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            idle_rss = peer_rss(browser, server, args.query, sampler)
            tabs = training_tabs(browser, server, args.query, TRAINING_TABS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(WATCH_FOR_PROBLEMS)
            sweep_app = AppPage(context, server).open("sweep")
            started = time.monotonic()
            for tab in tabs:
                tab.advance(time.monotonic())  # press Train
            refused = start_sweep(sweep_app, args.sweep_rates, args.sweep_iterations)
            sweep_started = time.monotonic() - started
            print(f"sweep started {sweep_started:.0f} s after the tabs pressed Train"
                  + (f"; REFUSED: {refused}" if refused else ""), flush=True)
            most_training, looked = 0, 0.0
            while True:
                now = time.monotonic()
                elapsed = now - started
                for tab in tabs:
                    try:
                        tab.advance(time.monotonic())
                    except PlaywrightTimeout as error:
                        tab.errors.append(str(error).splitlines()[0])
                        tab.state = "idle" if tab.state != "training" else tab.state
                most_training = max(most_training, server.training_threads() or 0)
                if not refused and sweep_ended is None and now - looked > 3:
                    looked = now
                    progress = sweep_progress(sweep_app) or progress
                    if progress and progress.group(1) not in ("starting", "running"):
                        sweep_ended = elapsed
                        print(f"sweep ended after {elapsed:.0f} s: {progress.group(0)}; {load()}", flush=True)
                if elapsed > 30 and len(loads) < 2 + elapsed // 30:
                    loads.append(os.getloadavg())
                if elapsed >= 60 * minutes and (refused or sweep_ended is not None):
                    break
                if elapsed >= 60 * (minutes + 3):
                    print("  (stopped at --minutes + 3 with the sweep still running)", flush=True)
                    break
                time.sleep(0.2)
            if sweep_ended is not None:  # the page after its rerun at the end: the recorded sweep
                sweep_app.page.wait_for_timeout(3_000)
                progress = sweep_progress(sweep_app) or progress
            problems = {f"train tab {tab.seed}": page_problems(tab.page) for tab in tabs}
            problems["sweep tab"] = page_problems(sweep_app.page)
            timeouts = sum(len(tab.errors) for tab in tabs)
            closed, threads_after = close_tabs(server, browser, [tab.context for tab in tabs] + [context])
    finally:
        sampler.stopped.set()
        server.stop()
    loads.append(os.getloadavg())
    time.sleep(2)
    left = sampler.left_behind()
    (home / "server.log").write_text("\n".join(server.lines))

    # -- the run store ----------------------------------------------------------------------------
    store = RunStore(home / "runs.sqlite3")
    runs = store.list_runs()
    for run in runs:
        run["history"] = store.history(run["id"])
    lines, compared, equal = compare_training(tabs, runs)
    sweeps = store.list_sweeps()
    sweep = sweeps[0] if sweeps else None
    sweep_notes, cost = [], None
    if sweep is None:
        sweep_notes.append("no sweep in the store")
    else:
        spec = SweepSpec.from_dict(sweep["spec"])
        cost = check_sweep(spec, workers=workers)
        trials = store.sweep_runs(sweep["id"])
        by_status = {}
        for run in trials:
            by_status.setdefault(run["status"], []).append(run)
        ended = [run for run in trials if run["status"] in ("finished", "pruned")]
        empty = [run["trial"] for run in ended if not store.history(run["id"])]
        if sweep["status"] != "finished":
            sweep_notes.append(f"stored status {sweep['status']!r} ({sweep['message']})")
        if len(ended) != spec.total():
            sweep_notes.append(f"{len(ended)} of {spec.total()} trials finished or pruned in the store "
                               f"({ {status: len(group) for status, group in by_status.items()} })")
        if empty:
            sweep_notes.append(f"trials without stored rows: {empty}")
        metric = spec.metric
        sign = 1 if spec.direction == "minimize" else -1
        finished = [run for run in trials if run["status"] == "finished"
                    and run["metrics"].get(metric) is not None]
        best = min(finished, key=lambda run: sign * run["metrics"][metric]) if finished else None
        if progress is None:
            sweep_notes.append("the page never showed its progress line")
        else:
            state, done, total = progress.group(1), int(progress.group(2)), int(progress.group(3))
            if state != "finished" or done != total or total != spec.total():
                sweep_notes.append(f"the page showed {progress.group(0)!r} for {spec.total()} trials")
            if best is not None and (progress.group(7) is None or int(progress.group(7)) != best["trial"]
                                     or progress.group(9) != f"{best['metrics'][metric]:.4g}"):
                sweep_notes.append(f"the page's best ({progress.group(0)}) is not the store's: trial "
                                   f"{best['trial']}, {metric} {best['metrics'][metric]:.4g}")

    # -- the report -------------------------------------------------------------------------------
    server_tracebacks = [line for line in server.lines if "Traceback" in line]
    shown_problems = {where: found for where, found in problems.items() if found}
    n_problems = sum(len(found) for found in shown_problems.values())
    limit = TRAINING_TABS * budget + (cost.total if cost else budget)
    sweep_limit = (cost.total - cost.client) if cost else 0
    statuses = [run["status"] for run in runs]
    counts = ", ".join(f"{statuses.count(status)} {status}" for status in sorted(set(statuses)))
    print(f"\nrun store: {len(runs)} runs ({counts}); runs finished on the Train pages: "
          f"{sum(len(tab.shown) for tab in tabs)}; refusals by the cap: {sum(tab.refusals for tab in tabs)}; "
          f"most training threads at once (the log's count, sweep workers' slots included): {most_training}; "
          f"page actions that timed out: {timeouts}")
    if cost is not None:
        print(f"the sweep's admission: {cost.text()}")
    print("finished training runs, stored against shown:")
    print("\n".join(lines) or "  (none)")
    for tab in tabs:
        for error in tab.errors:
            print(f"  page action that failed (tab seed {tab.seed}): {error[:200]}")
    for where, found in shown_problems.items():
        print(f"  {where}: {found[0][:300]!r}")
    if server_tracebacks:
        print("server output with a traceback:\n" + server.output(60))
    criteria = [
        ("peak RSS, server + children",
         f"{format_bytes(sampler.peak)} (one idle tab: {format_bytes(idle_rss)})",
         f"<= {format_bytes(limit)} ({TRAINING_TABS} x budget + the sweep's admitted)",
         sampler.peak <= limit),
        ("peak RSS, the sweep's processes", format_bytes(sampler.sweep_peak),
         f"<= {format_bytes(sweep_limit)} (admitted, less the client's share in the server)",
         cost is not None and 0 < sampler.sweep_peak <= sweep_limit),
        ("tracebacks on the pages", f"{n_problems} ({', '.join(shown_problems) or 'none'})", "0",
         n_problems == 0),
        ("tracebacks in the server output", str(len(server_tracebacks)), "0", not server_tracebacks),
        ("finished training runs stored = shown", f"{equal} of {compared}", "all, at least 1",
         compared > 0 and equal == compared),
        ("sweep finished, stored = shown", "; ".join(sweep_notes) or
         f"finished, {progress.group(2)}/{progress.group(3)} done, best trial {progress.group(7)}",
         "finished, every trial's rows", not refused and not sweep_notes),
        ("training threads after the tabs closed", str(threads_after), "0", closed),
        ("processes left after the server stopped", str(len(left)) + (f": {left}" if left else ""), "0",
         not left),
    ]
    width = max(len(name) for name, *_ in criteria)
    print(f"\n{'criterion':{width}}  {'measured':48}  {'target':40}  result")
    for name, measured, target, ok in criteria:
        print(f"{name:{width}}  {measured:48}  {target:40}  {'PASS' if ok else 'FAIL'}")
    print("load averages (1, 5, 15 min) seen: "
          + "; ".join("{:.1f} {:.1f} {:.1f}".format(*seen) for seen in loads))
    print(f"server log: {home / 'server.log'}")
    return 0 if all(ok for *_, ok in criteria) else 1


def main(argv=None):

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, help="default 5 (--sweep: 4)")
    parser.add_argument("--tabs", type=int, default=8)
    parser.add_argument("--query", default="subset=1000&iterations=600",
                        help="each tab's set-up as a URL query (its seed is added)")
    parser.add_argument("--playground", type=int, metavar="N",
                        help="instead: N Playground tabs training at once (a class; see above)")
    parser.add_argument("--seconds", type=float, default=60.0, help="--playground: seconds measured")
    parser.add_argument("--chromium-tabs", type=int, default=1, metavar="K",
                        help="--playground: how many of the N sessions are Chromium tabs (the first in the "
                             "foreground); the others are screenless sessions (default 1)")
    parser.add_argument("--sweep", action="store_true",
                        help="instead: a sweep from one tab while 4 others train (see above)")
    parser.add_argument("--budget", default="4GB", help="--sweep: the server's BACKPROP_MEMORY_BUDGET")
    parser.add_argument("--sweep-rates", default="0.003,0.01,0.03,0.1,0.3,1",
                        help="--sweep: the learning rates of its grid")
    parser.add_argument("--sweep-iterations", type=int, default=1500, help="--sweep: iterations per trial")
    args = parser.parse_args(argv)
    if args.playground:
        return playground_class(args.playground, args.seconds, args.chromium_tabs)
    if args.sweep:
        return sweep_load(args)
    args.minutes = 5.0 if args.minutes is None else args.minutes
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
            idle_rss = peer_rss(browser, server, args.query, sampler)
            tabs = training_tabs(browser, server, args.query, args.tabs)
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
            closed, threads_after = close_tabs(server, browser, [tab.context for tab in tabs])
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


def _exit_on_sigterm(signum, frame):
    """`timeout` sends SIGTERM: leave through the `finally` blocks, which stop the server (it runs in
    a session of its own and would outlive this process) and close Chromium."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.exit(main())
