"""``python -m autotweak`` runs the CLI."""

from autotweak.cli import main

main()
