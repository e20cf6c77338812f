"""The examples in public docstrings run under doctest, or are skipped as a whole."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "autotweak.engine._optimize",
    "autotweak.engine._ask_tell",
    "autotweak.engine._trial",
    "autotweak.engine._share",
    "autotweak.engine._steps",
    "autotweak.engine._study",
    "autotweak.spec._experiment",
    "autotweak.spec._fields",
    "autotweak.space._library",
    "autotweak.report._text",
    "autotweak.exceptions",
    "autotweak._validation",
    "autotweak._progress",
    "autotweak._trial_costs",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass_doctest(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
