"""Shared test setup: every test session gets its own studio home, so no test touches the real one."""

import contextlib
import http.server
import threading

import pytest


@pytest.fixture(scope="session", autouse=True)
def _studio_home(tmp_path_factory):
    """One home per session (not per test): the first MNIST parse takes seconds and is cached there."""
    patch = pytest.MonkeyPatch()
    patch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path_factory.mktemp("studio-home")))
    yield
    patch.undo()


@pytest.fixture
def use_studio(monkeypatch):
    """use_studio(studio) -> studio: the pages opened with AppTest in this test get this Studio."""
    from studio import session

    def install(studio):
        monkeypatch.setattr(session, "_cached_studio", lambda name="train": studio)
        return studio
    return install


@pytest.fixture(scope="session")
def open_page():
    """open_page("pages/x.py") -> an AppTest of that page alone, run once, without an exception."""
    from streamlit.testing.v1 import AppTest

    from backprop.paths import PROJECT_ROOT

    def run(path):
        at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at
    return run


@pytest.fixture(scope="session")
def serve_http():
    """serve_http(handler) -> a context manager serving it on 127.0.0.1 (see local_http_server)."""
    return local_http_server


@pytest.fixture(scope="session")
def files_handler():
    """files_handler(files, requests=None) -> a request handler for serve_http (see files_handler_for)."""
    return files_handler_for


def files_handler_for(files, requests=None):
    """A request handler serving `files` (name -> bytes, read at each request): /good/NAME the
    file, /short/NAME half of it and then a closed connection, /corrupt/NAME with its first byte
    flipped, anything else 404. Each path asked for is appended to `requests`."""

    class FilesHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            if requests is not None:
                requests.append(self.path)
            kind, _, name = self.path.strip("/").partition("/")
            body = files.get(name)
            if body is None or kind not in ("good", "short", "corrupt"):
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if kind == "short":
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            if kind == "corrupt":
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return FilesHandler


@contextlib.contextmanager
def local_http_server(handler):
    """Serve `handler` (an http.server request handler class) on 127.0.0.1 at a free port; yields
    the base URL. Tests of downloads talk only to this machine."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def command_stderr(capsys):
    """command_stderr() -> what a command wrote to stderr, without the server's log lines
    ("backprop-studio: ..."): a previous test's idle pool worker may log its end while this test runs
    (CI once read "training pool workers: 0" before a CLI's error line)."""
    def read():
        return "".join(line for line in capsys.readouterr().err.splitlines(keepends=True)
                       if not line.startswith("backprop-studio: "))
    return read
