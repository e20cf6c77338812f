"""Sections of RESULTS.md owned by other benchmarks: each writes its own, the comparison keeps them.

A section runs from ``<!-- section:NAME -->`` to ``<!-- /section:NAME -->``. The
replayed comparison (``python -m benchmarks.run``) rewrites the file and carries every
section over as it is; ``python -m benchmarks.scaling --results`` replaces its own.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["family_args", "kept_sections", "replace_section", "write_section"]

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


def family_args(doc: str | None) -> argparse.Namespace:
    """The command line of a benchmark that writes a section: ``--families`` and ``--results``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=["hgb", "mlp"])
    parser.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    return parser.parse_args()


def write_section(path: Path, name: str, paragraphs: Sequence[str]) -> None:
    """Replace section ``name`` of the file with ``paragraphs`` (blank lines between) and say so."""
    replace_section(path, name, "\n\n".join(paragraphs))
    print(f"wrote the {name} section of {path}")
