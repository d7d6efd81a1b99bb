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


@pytest.fixture(scope="session")
def serve_http():
    """serve_http(handler) -> a context manager serving it on 127.0.0.1 (see local_http_server)."""
    return local_http_server


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
