"""Browser tests: a real `streamlit run app.py` driven by headless Debian Chromium through Playwright.

One Streamlit server per test module (module-scoped fixture), one Chromium per module, and a fresh
browser context (= a fresh Streamlit session) per test. Skipped when Chromium or Playwright is missing,
unless BACKPROP_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from backprop.paths import PROJECT_ROOT

CHROMIUM = os.environ.get("BACKPROP_TEST_CHROMIUM", "/usr/bin/chromium")  # another path: to try the skip
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SERVER_START_SECONDS = 90
THREADS_LINE = re.compile(r"backprop-studio: training threads running: (\d+)")

# Collects every problem the page showed at any moment (not only at the end of a test): Streamlit's
# exception element, or a Python traceback printed as text.
WATCH_FOR_PROBLEMS = """
(() => {
  window.__backpropProblems = [];
  const look = () => {
    if (!document.body) return;
    const boxes = document.querySelectorAll('[data-testid="stException"]');
    if (boxes.length) {
      window.__backpropProblems.push('stException: ' + boxes[0].innerText.slice(0, 2000));
    }
    const text = document.body.innerText || '';
    const at = text.indexOf('Traceback');
    if (at >= 0) window.__backpropProblems.push('Traceback text: ' + text.slice(at, at + 2000));
    if (window.__backpropProblems.length > 20) window.__backpropProblems.length = 20;
  };
  setInterval(look, 300);
})();
"""

# The plotly.js charts on screen, in page order: Streamlit's own (st.plotly_chart) and the live
# charts, each inside the live_plot component's iframe (same origin, so its document is readable).
# Only those with a layout box: Streamlit keeps a replaced st.plotly_chart hidden (display: none)
# for a moment while its successor mounts, and that copy shows older data.
VISIBLE_PLOTS = """() => {
  const onScreen = (el) => el.getClientRects().length > 0;
  const plots = [];
  for (const el of document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot, iframe')) {
    if (!onScreen(el)) continue;
    if (el.tagName !== 'IFRAME') plots.push(el);
    else if (el.contentDocument) plots.push(...el.contentDocument.querySelectorAll('.js-plotly-plot'));
  }
  return plots;
}"""

# The live chart drawn with `key`: its plotly.js div inside the component's iframe, or null.
KEYED_PLOT = """(key) => {
  const frame = document.querySelector(`.st-key-${key} iframe`);
  return (frame && frame.contentDocument && frame.contentDocument.querySelector('.js-plotly-plot')) || null;
}"""


def browser_required() -> bool:
    return os.environ.get("BACKPROP_REQUIRE_BROWSER") == "1"


def _missing_browser_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[test]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(config, items):
    """Mark every test in this folder `browser` so `-m "not browser"` leaves them out."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def require_browser():
    reason = _missing_browser_reason()
    if reason is None:
        return
    if browser_required():
        pytest.fail(f"BACKPROP_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(f"browser test skipped: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` in its own process group, its output kept line by line."""

    def __init__(self, home: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        env = dict(os.environ, **(env or {}), BACKPROP_STUDIO_HOME=str(home), PYTHONUNBUFFERED="1")
        command = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.headless", "true",
            "--server.port", str(self.port),
            "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self, last: int = 60) -> str:
        return "\n".join(self.lines[-last:])

    def wait_healthy(self, timeout: float = SERVER_START_SECONDS):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as reply:
                    if reply.read().decode().strip() == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"streamlit did not answer /_stcore/health in {timeout:.0f} s:\n{self.output()}")

    def training_threads(self) -> int | None:
        """The last training-thread count the app printed, or None before it printed any."""
        for line in reversed(self.lines):
            found = THREADS_LINE.search(line)
            if found:
                return int(found.group(1))
        return None

    def stop(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._reader.join(timeout=5)


@pytest.fixture(scope="module")
def streamlit_server(request, require_browser, tmp_path_factory):
    """A running app; its studio home is the test session's temp home (MNIST cache shared across modules).
    A test module may set SERVER_ENV (a dict) for its server, e.g. a training-thread cap."""
    home = os.environ.get("BACKPROP_STUDIO_HOME") or str(tmp_path_factory.mktemp("browser-home"))
    server = StreamlitServer(Path(home), env=getattr(request.module, "SERVER_ENV", None))
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(require_browser):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a busy 2-core machine: a rerun can take seconds
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def screenshot_dir() -> Path:
    folder = Path(os.environ.get("BACKPROP_SCREENSHOTS") or PROJECT_ROOT / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def status_line(page) -> str:
    """The Train page's status line, "iteration N · epoch ... · it/s · ..."."""
    return page.get_by_text(re.compile(r"^iteration \d+")).first.inner_text()


def open_and_step(page, url: str):
    """Open the Train page at `url` and take one Step, which loads the data (benchmarks start
    their clock after this)."""
    page.goto(url)
    page.get_by_role("button", name="Step", exact=True).click()
    page.get_by_text(re.compile(r"^iteration 1 ")).wait_for(timeout=60_000)


class AppPage:
    """One browser tab on the app, with the few actions and readings the tests need."""

    def __init__(self, context, server: StreamlitServer):
        self.context = context
        self.server = server
        self.page = context.new_page()
        self.page.set_default_timeout(30_000)
        self.page_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def open(self, path: str = "", query: str = ""):
        url = f"{self.server.url}/{path.lstrip('/')}"
        if query:
            url += "?" + query.lstrip("?")
        self.page.goto(url)
        self.wait_until_idle()
        return self

    def wait_until_idle(self, timeout: float = 60):
        """Wait for the app frame, for the first script run to have drawn the page and finished (no
        element still a loading skeleton), and for every spinner to go. Before the first run the
        frame is there and not 'running' either: CI once read a page that was only "Skip to main
        content", and a page read then has skeletons where its buttons will be."""
        from playwright.sync_api import expect

        expect(self.page.locator('[data-testid="stApp"]')).to_be_visible(timeout=timeout * 1000)
        self.page.wait_for_function(
            "() => document.querySelector('[data-testid=\"stApp\"]')"
            "?.getAttribute('data-test-script-state') === 'notRunning'"
            " && document.querySelector('[data-testid=\"stMainBlockContainer\"] "
            "[data-testid=\"stVerticalBlock\"]')?.children.length > 0"
            " && !document.querySelector('[data-testid=\"stMain\"] [data-testid=\"stSkeleton\"]')",
            timeout=timeout * 1000,
        )
        expect(self.page.locator('[data-testid="stSpinner"]')).to_have_count(0, timeout=timeout * 1000)

    def button(self, label: str):
        return self.page.get_by_role("button", name=label, exact=True)

    def click(self, label: str):
        self.button(label).click()

    def text(self) -> str:
        return self.page.locator("body").inner_text()

    def plot_points(self, match: str = "cost") -> int | None:
        """Points in the first trace of the first visible Plotly chart whose title or axis names
        `match` (or the first visible chart when none does); None when there is no chart."""
        return self.page.evaluate(
            """(match) => {
                const plots = (""" + VISIBLE_PLOTS + """)();
                if (!plots.length) return null;
                const words = (p) => {
                  const l = p.layout || {};
                  const t = (x) => (x && (x.text !== undefined ? x.text : x)) || '';
                  return [t(l.title), t((l.xaxis || {}).title), t((l.yaxis || {}).title),
                          ...(p.data || []).map((d) => d.name || '')].join(' ').toLowerCase();
                };
                const plot = plots.find((p) => words(p).includes(match)) || plots[0];
                if (!plot.data || !plot.data.length) return 0;
                // Arrays travel as binary typed-array specs; plotly.js keeps the decoded ones in _fullData.
                const trace = (plot._fullData && plot._fullData[0]) || plot.data[0];
                const x = trace.x || trace.y || [];
                return x.length;
            }""",
            match.lower(),
        )

    def wait_points(self, condition, timeout: float = 60, match: str = "cost") -> int:
        """Poll the chart until condition(points) holds; return the count seen."""
        seen = []

        def met():
            seen.append(self.plot_points(match))
            return seen[-1] is not None and condition(seen[-1])

        wait_for(met, timeout, lambda: f"chart points never met the condition: {seen[-1:]}\n{self.debug()}")
        return seen[-1]

    def problems(self) -> list[str]:
        return self.page.evaluate("() => window.__backpropProblems || []")

    def assert_clean(self):
        """No exception element and no traceback text, now or at any earlier moment of this tab."""
        now = self.page.locator('[data-testid="stException"]').count()
        assert now == 0, f"Streamlit exception element on the page:\n{self.debug()}"
        assert "Traceback" not in self.text(), f"traceback text on the page:\n{self.debug()}"
        seen = self.problems()
        assert not seen, "the page showed a problem at some moment:\n" + "\n".join(seen)

    def screenshot(self, name: str) -> Path:
        """The whole page. Streamlit scrolls inside its own containers, not the document, so the
        viewport is stretched to the tallest content for the shot, then put back."""
        path = screenshot_dir() / f"{name}.png"
        size = self.page.viewport_size
        height = self.page.evaluate(
            """() => Math.max(document.body.scrollHeight, ...[...document.querySelectorAll(
                '[data-testid="stMain"], [data-testid="stSidebarContent"], [data-testid="stAppViewContainer"]'
            )].map((e) => e.scrollHeight))"""
        )
        if height > size["height"]:
            self.page.set_viewport_size({"width": size["width"], "height": min(height, 12_000)})
            self.page.wait_for_timeout(600)  # let the charts re-lay themselves out
        try:  # a chart being redrawn is blank for a moment: wait until every chart has drawn
            self.page.wait_for_function(
                "() => (" + VISIBLE_PLOTS + ")().every((plot) => plot.querySelector('.main-svg'))",
                timeout=5_000,
            )
        except Exception:  # the shot is still worth taking
            pass
        try:
            self.page.screenshot(path=str(path), full_page=True)
        finally:
            self.page.set_viewport_size(size)
        return path

    def debug(self) -> str:
        try:
            text = self.text()[-3000:]
        except Exception as error:  # the page may be gone; the report should still come out
            text = f"(page text unavailable: {error})"
        return (
            f"--- page text (end) ---\n{text}\n--- page errors ---\n{self.page_errors[-5:]}\n"
            f"--- server output (end) ---\n{self.server.output(40)}"
        )


@pytest.fixture
def open_app(browser, streamlit_server):
    """open_app(path="", query="") -> AppPage in a fresh browser context (a fresh Streamlit session)."""
    contexts = []

    def opener(path: str = "", query: str = "", viewport=(1400, 1000)) -> AppPage:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        context.add_init_script(WATCH_FOR_PROBLEMS)
        contexts.append(context)
        return AppPage(context, streamlit_server).open(path, query)

    yield opener
    for context in contexts:
        try:
            context.close()
        except Exception:  # already closed by the test
            pass


def wait_for(condition, timeout: float, message, interval: float = 0.25):
    """Poll condition() until truthy; fail with message() (a callable, read at failure time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message())


@pytest.fixture
def poll():
    return wait_for

