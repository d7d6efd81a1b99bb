"""What the Train page costs the browser while training, measured apart from the training itself.

    python benchmarks/bench_render_cost.py [--seconds 15] [--rounds 3] [--query subset=2000]

On 2 cores the browser and the training share the CPU, so their costs blur into each other
(bench_app.py measures the sum: the app's training speed). Here the Streamlit server (with one
engine thread) runs on CPU 0 and Chromium on CPU 1, so Chromium's CPU time is its own work. Each
round measures the page while training (every live view refreshing) and, as the peer in the same
run, the same page paused (nothing refreshing), and prints the share of a core each takes. To see
what one view costs, compare runs of a page without it. Linux only (CPU affinity, /proc).
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    StreamlitServer,
    open_and_step,
    status_line,
)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def chromium_processes():
    """{pid: kind} of the running Chromium processes (renderer, gpu-process, ..., browser)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline") as f:
                command = f.read().replace("\0", " ")  # child processes rewrite theirs as one string
        except OSError:
            continue
        if command.split(" ", 1)[0].endswith("/chromium"):
            kind = re.search(r"--type=(\S+)", command)
            found[int(pid)] = kind.group(1) if kind else "browser"
    return found


def pin(pid, cpu):
    """Move a process and all its threads to one CPU."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except OSError:
            pass


def measure(processes, seconds):
    """Share of a core each kind of process used over `seconds`."""
    before = {pid: cpu_seconds(pid) for pid in processes}
    time.sleep(seconds)
    shares = {}
    for pid, kind in processes.items():
        shares[kind] = shares.get(kind, 0.0) + (cpu_seconds(pid) - before[pid]) / seconds
    return shares


def one_round(args, query):
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as home:
        one_core = {"BACKPROP_ENGINE_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        server = StreamlitServer(Path(home), env=one_core)
        try:
            pin(server.process.pid, 0)
            server.wait_healthy()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_and_step(page, server.url + ("/?" + query if query else "/"))
                for pid in chromium_processes():
                    pin(pid, 1)
                page.get_by_role("button", name="Train", exact=True).click()
                page.get_by_role("button", name="Pause", exact=True).wait_for(timeout=30_000)
                time.sleep(3)  # past the first full rerun
                processes = {**chromium_processes(), server.process.pid: "server"}
                training = measure(processes, args.seconds)
                status = status_line(page)
                page.get_by_role("button", name="Pause", exact=True).click()
                page.get_by_role("button", name="Train", exact=True).wait_for(timeout=30_000)
                time.sleep(2)
                paused = measure({**chromium_processes(), server.process.pid: "server"}, args.seconds)
                browser.close()
        finally:
            server.stop()
    return training, paused, status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="each measurement (default 15)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--query", default="", help="a set-up as URL query, e.g. 'subset=2000'")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs 2 CPUs: the server runs on one, Chromium on the other")
    renderers = []
    for number in range(1, args.rounds + 1):
        training, paused, status = one_round(args, args.query)
        renderers.append(training.get("renderer", 0.0))
        print(f"round {number}: {status}")
        for kind in sorted(set(training) | set(paused), key=lambda k: -training.get(k, 0.0)):
            print(f"  {kind:14s} training {100 * training.get(kind, 0):5.1f}% of a core   "
                  f"paused (peer) {100 * paused.get(kind, 0):5.1f}%", flush=True)
    print(f"Chromium renderer while training: {100 * statistics.median(renderers):.1f}% of a core "
          f"(median of {len(renderers)})")


if __name__ == "__main__":
    main()
