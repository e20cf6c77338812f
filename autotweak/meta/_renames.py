"""Rename hints: which of a space's names a recorded param's name may stand for.

A history may record ``lr`` for the space's ``learning_rate``; a mapper that finds ``lr``
and not ``learning_rate`` says which rename would bring it in. These rules read the names
only; the mapper also asks that the recorded value be one the named param can take.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from itertools import takewhile

__all__ = ["alias", "guess", "rename_text"]


def alias(name: str) -> str:
    """``name`` with case, ``-``, ``_``, ``.`` and spaces taken out: ``LearningRate`` -> ``learningrate``."""
    return re.sub(r"[-_.\s]", "", name.lower())


def rename_text(key: str, guess: list[str]) -> str:
    """How to give the rename of ``key`` to one of ``guess``, in Python and on the command line."""
    python, cli = (repr(guess[0]), guess[0]) if len(guess) == 1 else ("NAME", "NAME")
    return f"renames={{{key!r}: {python}}} (Python) or --rename {key}={cli} (CLI)"


def guess(key: str, names: list[str]) -> list[str]:
    """The space's names a recorded ``key`` may stand for: initials, an abbreviation or a near spelling.

    The first rule that finds a name decides; where it finds several, all are given.

    Example:
        >>> guess("lr", ["learning_rate", "max_depth"]), guess("maxdepth2", ["max_depth"])
        (['learning_rate'], ['max_depth'])
        >>> guess("l2_reg", ["l2_regularization", "learning_rate"]), guess("batch", ["batch_size"])
        (['l2_regularization'], ['batch_size'])
        >>> guess("lr", ["l1_ratio", "l2_regularization", "learning_rate"]), guess("lr", ["l1_ratio"])
        (['learning_rate'], [])
    """
    wanted = alias(key)
    rules: tuple[Callable[[str], bool], ...] = (
        lambda name: wanted == _initials(name) and len(wanted) > 1,
        lambda name: _abbreviates(key, name),
        lambda name: len(wanted) >= 3 and alias(name).startswith(wanted),
    )
    for rule in rules:
        found = [name for name in names if rule(name)]
        if found:
            return found
    close = difflib.get_close_matches(wanted, [alias(n) for n in names], n=1, cutoff=0.75)
    return [n for n in names if close and alias(n) == close[0]][:1]


def _initials(name: str) -> str:
    """The first letter of each word, with the digits that follow it: ``l1r`` for ``l1_ratio``.

    A digit tells such names apart (L1, L2): ``lr``, a learning rate, stands for neither
    ``l1_ratio`` nor ``l2_regularization``.
    """
    return "".join(part[0] + "".join(takewhile(str.isdigit, part[1:])) for part in _words(name))


def _words(name: str) -> list[str]:
    return [part for part in re.split(r"[-_.\s]+", name.lower()) if part]


def _abbreviates(key: str, name: str) -> bool:
    """Whether each word of ``key`` begins the same word of ``name`` (``n_est`` for ``n_estimators``)."""
    short, full = _words(key), _words(name)
    return (
        len(short) == len(full)
        and short != full
        and all(len(s) >= 2 or s == f for s, f in zip(short, full, strict=True))
        and all(f.startswith(s) for s, f in zip(short, full, strict=True))
    )
