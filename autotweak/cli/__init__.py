"""The command line: ``autotweak optimize``, ``resume``, ``report``, ``suggest``, ``meta fit``...

One click group; each command lives with its own options.
"""

from autotweak.cli._main import cli, main
from autotweak.cli._meta import meta, suggest
from autotweak.cli._optimize import optimize, resume, worker
from autotweak.cli._results import best, report, status
from autotweak.cli._ui import ui
from autotweak.cli._workers import workers

cli.add_command(optimize)
cli.add_command(resume)
cli.add_command(worker)
cli.add_command(status)
cli.add_command(best)
cli.add_command(report)
cli.add_command(ui)
cli.add_command(workers)
cli.add_command(meta)
cli.add_command(suggest)

__all__ = ["cli", "main"]
