"""What the docs hold, read out of their markdown: code blocks, command lines, named paths.

A block may be preceded (on the line before its opening fence) by a marker the docs test reads,
an HTML comment that the rendered page does not show:

- ``<!-- docs-test: skip REASON -->``: not checked, and the test says so with the reason;
- ``<!-- docs-test: fragment of FILE -->``: a YAML block that is part of a spec, merged over
  the spec FILE of the repository (its keys replace that file's) before it is loaded;
- ``<!-- docs-test: setup NAME -->``: a Python block run after the test's setup NAME made what
  it reads (stores of past studies, say).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "docs/README.md", "docs/histories.md", "docs/mlflow-ui.md")
SHELLS = ("bash", "sh", "console", "shell")

_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_MARKER = re.compile(r"^\s*<!-- docs-test: (\w+)\s*(.*?)\s*-->\s*$")
# A repository path in the text: a code span, a link, a comment in a block ("search_spaces/mlp.yaml").
_FOLDERS = "docs|examples|search_spaces|benchmarks|meta|scripts|tests"
_PATH = re.compile(rf"(?<![\w./-])((?:{_FOLDERS})/[\w./-]*[\w/])")
_LINK = re.compile(r"\]\(([^)#\s]+)")
_COMMAND = re.compile(r"^(?:\S*/)?autotweak$")  # `autotweak` or `.venv/bin/autotweak`


@dataclass(frozen=True)
class Block:
    """A fenced code block: its file, the line of its opening fence, language, text and marker."""

    doc: str
    line: int
    lang: str
    text: str
    marker: tuple[str, str] | None = None  # (kind, argument), from the line before the fence

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(doc: str) -> list[Block]:
    """The fenced code blocks of ``doc`` (a path relative to the repository)."""
    lines = (ROOT / doc).read_text().splitlines()
    found: list[Block] = []
    start: int | None = None
    for number, line in enumerate(lines, start=1):
        fence = _FENCE.match(line)
        if fence is None:
            continue
        if start is None:
            start, lang = number, fence.group(1)
            continue
        marker = _MARKER.match(lines[start - 2]) if start > 1 else None
        text = "\n".join(lines[start : number - 1]) + "\n"
        found.append(Block(doc, start, lang, text, (marker[1], marker[2]) if marker else None))
        start = None
    return found


def all_blocks(*langs: str) -> list[Block]:
    """The blocks of every doc in one of ``langs``."""
    return [block for doc in DOCS for block in blocks(doc) if block.lang in langs]


def command_lines(text: str) -> list[list[str]]:
    """The ``autotweak`` command lines of a shell block, each as its words after ``autotweak``.

    Continued lines are joined, comments dropped, and a line of several commands (``a && b``)
    split; ``VAR=value`` words before a command are dropped.
    """
    joined = re.sub(r"\\\n", " ", text)
    commands: list[list[str]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = next((i for i, word in enumerate(words) if word in ("&&", "||", ";", "|")), len(words))
            command, words = words[:cut], words[cut + 1 :]
            while command and "=" in command[0] and not command[0].startswith("-"):
                command = command[1:]
            if command and _COMMAND.match(command[0]):
                commands.append(command[1:])
    return commands


def exports(text: str) -> dict[str, str]:
    """The variables a shell block exports (``export NAME=value``), which its commands see."""
    found = re.findall(r"^export (\w+)=(\S+)", text, flags=re.MULTILINE)
    return dict(found)


def named_paths(doc: str) -> list[str]:
    """The repository paths ``doc`` names, and its links to files, relative to the repository."""
    text = (ROOT / doc).read_text()
    paths = set(_PATH.findall(text))
    folder = Path(doc).parent
    for target in _LINK.findall(text):
        if "://" not in target:
            paths.add((folder / target).as_posix())
    return sorted(paths)


def prose(doc: str) -> str:
    """The text of ``doc`` without its code blocks."""
    return re.sub(r"```.*?```", "", (ROOT / doc).read_text(), flags=re.DOTALL)


def inline_commands(doc: str) -> list[str]:
    """The ``autotweak ...`` code spans of the prose of ``doc`` (``autotweak best STUDY [--json]``)."""
    return [" ".join(span.split()) for span in re.findall(r"`(autotweak [^`]+)`", prose(doc))]
