"""The package picture of the README's architecture section, held to the code: which of our
packages each package may import (at any depth, lazily inside a function too)."""

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MAY_IMPORT: dict[str, set[str]] = {
    "events": set(),
    "storage": set(),
    "runtime": set(),
    "jobtypes": {"events"},
    "streaming": {"events"},
    "migrations": {"storage"},
    "archive_jobs": {"events", "jobtypes", "storage"},
    "ingest_api": {"events", "jobtypes", "storage", "streaming", "runtime"},
    "consumers": {"events", "jobtypes", "storage", "streaming", "runtime"},
    "projections": {"events", "storage", "streaming", "runtime"},
    "notifications": {"events", "storage", "streaming", "runtime"},
    "batchctl": {
        "events",
        "jobtypes",
        "storage",
        "streaming",
        "runtime",
        "migrations",
        "ingest_api",
        "consumers",
        "projections",
        "notifications",
    },
}


def imported_packages(package: str) -> dict[str, set[str]]:
    """Our packages that ``package`` imports, each with the modules that import it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in MAY_IMPORT and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_packages_below_it(package):
    imported = imported_packages(package)
    beyond = {name: sorted(where) for name, where in imported.items()}
    for allowed in MAY_IMPORT[package]:
        beyond.pop(allowed, None)
    assert beyond == {}, f"{package} imports what it may not: {beyond}"


def test_every_package_is_in_the_picture():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == set(MAY_IMPORT)


def test_the_old_contract_module_still_works_and_says_it_is_deprecated():
    import jobtypes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.modules.pop("consumers.handlers.base", None)
        old = importlib.import_module("consumers.handlers.base")
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert old.Handler is jobtypes.Handler and old.PermanentError is jobtypes.PermanentError
