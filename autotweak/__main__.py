"""``python -m autotweak`` runs the CLI."""

from autotweak._entry import main

main()
