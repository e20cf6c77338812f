"""The ``autotweak`` click group and the entry point that runs it."""

from __future__ import annotations

import click

from autotweak._signals import keep_lost_interrupts, stop_on_sigterm
from autotweak.cli._console import Console
from autotweak.cli._stores import error_said, store_failed
from autotweak.exceptions import AutotweakError

__all__ = ["cli", "main"]

_console = Console()  # the CLI's one console: the command modules print through it too


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="autotweak")
def cli() -> None:
    """Declared experiments, adaptive search with pruning, every trial in MLflow."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``autotweak`` console script."""
    stop_on_sigterm()  # `kill`, `docker stop`, a scheduler's end of job: the study closes as on Ctrl-C
    try:
        with keep_lost_interrupts():  # one that lands in a finalizer (opening the stores) comes again
            cli.main(args=argv, prog_name="autotweak", standalone_mode=False)
    except click.exceptions.Abort:
        _console.error("interrupted")
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except AutotweakError as exc:
        _console.error(error_said(exc))
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        _console.error("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:
        message = store_failed(exc)
        if message is None:
            raise
        _console.error(message)
        raise SystemExit(2) from None
