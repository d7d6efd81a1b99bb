"""A fresh clone in a fresh venv gets every library the app imports from the README's install command.

A library installed by hand on a developer's machine hides a missing requirement until CI runs on a
new one (issue 17: app.py imported orjson, which nothing installed). Every third-party module that
app.py, pages/, studio/ and backprop/ import must come from requirements.txt or from what those
requirements themselves require (read from the installed packages' metadata).
"""

import ast
import importlib.metadata as metadata
import re
import sys

from packaging.requirements import Requirement

from backprop.paths import PROJECT_ROOT

SOURCES = ["app.py", "pages", "studio", "backprop"]
OWN = {"backprop", "studio", "pages", "app", "tests"}


def imported_modules():
    """Top-level module name -> the first file that imports it."""
    found = {}
    files = []
    for source in SOURCES:
        path = PROJECT_ROOT / source
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path.relative_to(PROJECT_ROOT))
    return {name: where for name, where in found.items()
            if name not in OWN and name not in sys.stdlib_module_names}


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements_closure():
    """Every distribution that `pip install -e .` brings in (the requirements, their requirements, ...)."""
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    todo = [Requirement(line.split("#")[0].strip()) for line in lines if line.split("#")[0].strip()]
    seen = set()
    while todo:
        requirement = todo.pop()
        name = canonical(requirement.name)
        extras = tuple(sorted(requirement.extras))
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed here: test_every_requirement_is_installed says so
        for text in requires:
            dependency = Requirement(text)
            wanted = dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in (*extras, ""))
            if wanted:
                todo.append(dependency)
    return {name for name, _ in seen}


def test_every_requirement_is_installed():
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    for line in lines:
        text = line.split("#")[0].strip()
        if text:
            metadata.version(Requirement(text).name)  # raises PackageNotFoundError naming it


def test_every_imported_library_comes_from_the_requirements():
    providers = metadata.packages_distributions()
    closure = requirements_closure()
    missing = []
    for module, where in sorted(imported_modules().items()):
        distributions = {canonical(d) for d in providers.get(module, [])}
        if not distributions & closure:
            source = sorted(distributions) or "nowhere"
            missing.append(f"{module} (imported by {where}; installed from {source})")
    assert not missing, "not installed by requirements.txt: " + "; ".join(missing)
