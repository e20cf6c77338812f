"""The ``autotweak`` console script: a Ctrl-C while the CLI is still importing is quiet.

Importing the CLI once took a second or two (Optuna, MLflow, PyTorch's friends); a Ctrl-C
in that time printed a ``KeyboardInterrupt`` traceback from deep inside an import, before
the CLI's own handling existed. The commands now import those libraries when they run,
inside that handling; this module still imports nothing heavy itself.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Import the CLI and run it; exit 130 quietly if interrupted while importing."""
    try:
        from autotweak.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    run(argv)
