"""Shared test setup: every test session gets its own studio home, so no test touches the real one."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def _studio_home(tmp_path_factory):
    """One home per session (not per test): the first MNIST parse takes seconds and is cached there."""
    patch = pytest.MonkeyPatch()
    patch.setenv("BACKPROP_STUDIO_HOME", str(tmp_path_factory.mktemp("studio-home")))
    yield
    patch.undo()
