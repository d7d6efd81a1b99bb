"""The layers stay apart: pages talk to `studio/` only (they take plain types and constants from the
engine, never its functions or modules, and never its locks), and the engine imports without
Streamlit or Plotly."""

import ast
import importlib
import inspect
import subprocess
import sys
import textwrap
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = "backprop"
LOCK_ATTRIBUTES = ("lock", "reading")  # trainer.lock, trainer.reading(): the engine's locks


def is_engine(module):
    return module == ENGINE or module.startswith(ENGINE + ".")


def engine_name_allowed(module, name):
    """Whether `from module import name` takes only a plain type or constant: a class, or a value
    that is not callable and not a module."""
    try:
        value = getattr(importlib.import_module(module), name)
    except AttributeError:  # `from backprop import data`: a submodule not yet imported
        return False
    if isinstance(value, types.ModuleType):
        return False
    return inspect.isclass(value) or not callable(value)


def offenders(path, root=ROOT):
    """'file:line name' for every engine import that is not a plain type or constant, and every
    use of an engine lock (`.lock`, `.reading`), in one file."""
    where = path.relative_to(root) if path.is_absolute() else path
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {alias.name}") for alias in node.names if is_engine(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and is_engine(node.module or ""):
            found += [(node.lineno, alias.name) for alias in node.names
                      if alias.name == "*" or not engine_name_allowed(node.module, alias.name)]
        elif isinstance(node, ast.Attribute) and node.attr in LOCK_ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}"))
    return [f"{where}:{line} {name}" for line, name in sorted(found)]


def test_pages_use_only_the_engines_types_and_constants_and_never_its_locks():
    found = [line for page in sorted((ROOT / "pages").glob("*.py")) for line in offenders(page)]
    assert not found, "pages reach past studio/ into the engine:\n" + "\n".join(found)


def test_the_check_names_each_kind_of_offence(tmp_path):
    page = tmp_path / "page.py"
    page.write_text(textwrap.dedent("""\
        import streamlit as st
        from backprop.errors import InputError
        from backprop.settings import SETTINGS
        from backprop.drawing import FIELD
        from backprop.gradcheck import gradient_check
        import backprop.runs
        from backprop import data
        from backprop.health import *
        from studio.session import get_studio

        def later():
            from backprop.lr_finder import find_learning_rate
            with get_studio().trainer.lock:
                pass
            with trainer.reading():
                pass
        """))
    assert offenders(page, root=tmp_path) == [
        "page.py:5 gradient_check", "page.py:6 import backprop.runs", "page.py:7 data", "page.py:8 *",
        "page.py:12 find_learning_rate", "page.py:13 .lock", "page.py:15 .reading"]


ENGINE_ALONE = textwrap.dedent("""\
    import importlib, pkgutil, sys

    BLOCKED = ("streamlit", "plotly")

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"the engine imported {name}")
            return None

    sys.meta_path.insert(0, Blocker())
    import backprop
    for module in pkgutil.walk_packages(backprop.__path__, "backprop."):
        if module.name != "backprop.__main__":  # runs the command line
            importlib.import_module(module.name)
    print(sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED))
    """)


def test_the_engine_imports_without_streamlit_or_plotly():
    result = subprocess.run([sys.executable, "-c", ENGINE_ALONE], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
