"""Issue 11 in a real browser: the server's own config listens on 127.0.0.1 only; a bomb uploaded on
the Data page gets a message and the server keeps serving; the history CSV and the checkpoint download
from the Train page, and the checkpoint uploaded in another session continues the run."""

import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile

import numpy as np
import psutil
import pytest

from backprop.checkpoint import load_checkpoint
from backprop.paths import PROJECT_ROOT
from tests.browser.conftest import free_port, status_line, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUICK = "subset=300"
LOOPBACK = ("127.0.0.1", "::1")


def listening_addresses(pid):
    """(ip, port) of every listening TCP socket of a process and its children."""
    process = psutil.Process(pid)
    found = set()
    for member in [process, *process.children(recursive=True)]:
        for connection in member.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN:
                found.add((connection.laddr.ip, connection.laddr.port))
    return found


def other_addresses():
    """This machine's IPv4 addresses other than loopback (a LAN would reach the app there)."""
    return [address.address for addresses in psutil.net_if_addrs().values() for address in addresses
            if address.family == socket.AF_INET and not address.address.startswith("127.")]


def test_the_app_listens_on_loopback_only_without_address_flags(require_browser, tmp_path):
    """`.streamlit/config.toml` itself: started with no --server.address, the app must not be
    reachable from the network."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
        cwd=PROJECT_ROOT, env={**os.environ, "BACKPROP_STUDIO_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def healthy():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                    return reply.read().decode().strip() == "ok"
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                return server.poll() is not None  # died: stop waiting, the assert below says so
        wait_for(healthy, 90, lambda: "the app did not answer on 127.0.0.1")
        assert server.poll() is None, "streamlit exited"
        on_port = {ip for ip, listening_port in listening_addresses(server.pid) if listening_port == port}
        assert on_port and on_port <= set(LOOPBACK), f"listening on {on_port}, not only on loopback"
        for address in other_addresses():
            with socket.socket() as probe, pytest.raises(OSError):
                probe.settimeout(2)
                probe.connect((address, port))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def zeros_npz(rows=640_000, cols=784):
    """The issue's 489 KB .npz: x declares rows x cols uint8 zeros (4 GB once scaled to float64)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, shape in (("x", (rows, cols)), ("y", (rows,))):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                              "shape": shape})
                member.write(header.getvalue())
                left, zeros = int(np.prod(shape)), bytes(1 << 24)
                while left:
                    member.write(zeros[:min(left, len(zeros))])
                    left -= min(left, len(zeros))
    return buffer.getvalue()


def server_rss(server):
    process = psutil.Process(server.process.pid)
    return sum(member.memory_info().rss for member in [process, *process.children(recursive=True)])


def test_a_zip_bomb_on_the_data_page_gets_a_message_and_the_server_keeps_serving(open_app, streamlit_server,
                                                                                  tmp_path):
    bomb = tmp_path / "zeros.npz"
    bomb.write_bytes(zeros_npz())
    app = open_app("data")
    app.page.get_by_text("Training images").first.wait_for(timeout=120_000)  # MNIST loaded: measure now
    app.wait_until_idle()
    before = server_rss(streamlit_server)
    app.page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(str(bomb))
    app.click("Check and save")
    message = app.page.get_by_text(re.compile("BACKPROP_MEMORY_BUDGET"))
    message.first.wait_for(timeout=60_000)
    assert "640000" in message.first.inner_text()
    app.screenshot("hostile-01-zip-bomb-refused")
    app.assert_clean()
    assert server_rss(streamlit_server) - before < 500e6, "the bomb was decompressed after all"
    # the server keeps serving: another session trains
    other = open_app(query=QUICK)
    other.click("Step")
    wait_for(lambda: status_line(other.page).startswith("iteration 1 "), 60, other.debug)
    other.assert_clean()


def test_history_and_checkpoint_download_then_continue_in_another_session(open_app, tmp_path):
    app = open_app(query=QUICK)
    app.click("Step ×10")
    wait_for(lambda: status_line(app.page).startswith("iteration 10 "), 60, app.debug)
    app.page.get_by_text("Export and import").click()

    with app.page.expect_download(timeout=30_000) as download:
        app.click("History (CSV)")
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert [int(row["iteration"]) for row in rows] == list(range(10))
    assert all(float(row["cost"]) > 0 for row in rows)

    with app.page.expect_download(timeout=30_000) as download:
        app.click("Network (.npz)")
    saved = tmp_path / "network.npz"
    download.value.save_as(saved)
    checkpoint = load_checkpoint(saved)
    assert checkpoint.network.sizes == [784, 196, 1] and len(checkpoint.history.rows()) == 10
    assert [float(row["cost"]) for row in rows] == pytest.approx(
        [row["cost"] for row in checkpoint.history.rows()])
    app.screenshot("hostile-02-downloads")

    other = open_app(query=QUICK)
    other.page.get_by_text("Export and import").click()
    other.page.locator('[data-testid="stFileUploader"] input[type="file"]').last.set_input_files(str(saved))
    wait_for(lambda: status_line(other.page).startswith("iteration 10 "), 60, other.debug)
    other.click("Step")
    wait_for(lambda: status_line(other.page).startswith("iteration 11 "), 60, other.debug)
    other.screenshot("hostile-03-continued")
    other.assert_clean()
    app.assert_clean()


def test_a_link_with_nine_4096_unit_layers_is_refused_before_allocating(open_app, streamlit_server):
    """The issue's `?layers=4096,...x9,1` link then Step: a message naming the budget, nothing built."""
    before = server_rss(streamlit_server)
    app = open_app(query="layers=" + ",".join(["4096"] * 9 + ["1"]))
    app.click("Step")
    wait_for(lambda: "BACKPROP_MEMORY_BUDGET" in app.text(), 90, app.debug)
    app.screenshot("hostile-04-link-over-budget")
    app.assert_clean()
    assert server_rss(streamlit_server) - before < 500e6
