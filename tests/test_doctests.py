"""The examples in the code's docstrings (``>>>`` lines) are run: a docstring that
states a result is a check that can fail, not a comment that can go stale.

Each module is imported by its installed name (``tf_loopbench.reports.gate.stats``),
as users import it. Run: ``pytest tests/test_doctests.py``.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.conftest import ROOT

#: source folder -> the name it is imported by
PACKAGES = {
    "loops": "tf_loopbench.loops",
    "benchmarks": "tf_loopbench.benchmarks",
    "reports": "tf_loopbench.reports",
    "tools": "tools",
}


def modules_with_examples() -> list[str]:
    names = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ">>> " in path.read_text(encoding="utf-8"):
                parts = path.relative_to(ROOT / folder).with_suffix("").parts
                names.append(".".join([package, *(p for p in parts if p != "__init__")]))
    return names


def test_the_examples_are_found():
    assert "tf_loopbench.reports.gate.stats" in modules_with_examples()


@pytest.mark.parametrize("name", modules_with_examples())
def test_docstring_examples_hold(name):
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
