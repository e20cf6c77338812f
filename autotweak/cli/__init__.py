"""The command line: ``autotweak optimize``, ``resume``, ``report``, ``suggest``, ``meta fit``...

One click group; each command lives with its own options.
"""

from autotweak.cli._main import cli, main
from autotweak.cli._meta import meta, suggest

cli.add_command(meta)
cli.add_command(suggest)

__all__ = ["cli", "main"]
