"""Every module under src compiles without a warning (an invalid escape in a docstring, ``is`` with a literal).

Python only warns when it compiles a file without a cached .pyc, so such a warning shows on a user's
first run (or a GPU host's) and nowhere in a test run that finds the cache: compile from source here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_module_compiles_without_warnings():
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 50  # the package, not an empty folder
    failures = []
    for module in modules:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                compile(module.read_text(encoding="utf-8"), str(module), "exec", dont_inherit=True)
            except (SyntaxError, SyntaxWarning, DeprecationWarning) as error:
                failures.append(f"{module.relative_to(SRC)}: {error}")
    if failures:
        pytest.fail("\n".join(failures))
