"""The command line: ``autotweak optimize``, ``resume``, ``status``, ``best``, ``report``, ``ui``."""

from autotweak.cli._main import cli, main

__all__ = ["cli", "main"]
