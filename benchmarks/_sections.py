"""Sections of RESULTS.md owned by other benchmarks: each writes its own, the comparison keeps them.

A section runs from ``<!-- section:NAME -->`` to ``<!-- /section:NAME -->``. The
replayed comparison (``python -m benchmarks.run``) rewrites the file and carries every
section over as it is; ``python -m benchmarks.scaling --results`` replaces its own.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["kept_sections", "replace_section"]

_SECTION = re.compile(r"<!-- section:(?P<name>[\w-]+) -->\n.*?<!-- /section:(?P=name) -->\n?", re.S)


def kept_sections(path: Path) -> list[str]:
    """The sections in the file at ``path``, verbatim (none if there is no file)."""
    if not path.exists():
        return []
    return [m.group(0).rstrip("\n") for m in _SECTION.finditer(path.read_text())]


def replace_section(path: Path, name: str, body: str) -> None:
    """Put ``body`` in the section ``name`` of the file, replacing it or appending it."""
    block = f"<!-- section:{name} -->\n{body.rstrip()}\n<!-- /section:{name} -->\n"
    text = path.read_text() if path.exists() else ""
    found = next((m for m in _SECTION.finditer(text) if m.group("name") == name), None)
    if found is not None:
        text = text[: found.start()] + block + text[found.end() :]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block
    path.write_text(text)
