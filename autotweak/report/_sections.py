"""A report section (a title, notes and one table), rendered to Markdown or HTML alike."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Section", "fmt"]


@dataclass(frozen=True)
class Section:
    """One part of a report: paragraphs, then an optional table."""

    title: str
    notes: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def to_markdown(self) -> str:
        """The section as Markdown (``##`` title, paragraphs, a pipe table)."""
        lines = [f"## {self.title}", ""]
        for note in self.notes:
            lines += [note, ""]
        if self.rows:
            lines.append("| " + " | ".join(self.header) + " |")
            lines.append("|" + "---|" * len(self.header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows]
            lines.append("")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The section as HTML; every text is escaped."""
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        parts += [f"<p>{html.escape(note)}</p>" for note in self.notes]
        if self.rows:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        return "\n".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def fmt(value: Any) -> str:
    """A table cell: a float to 4 significant digits, ``None`` as a dash."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)
