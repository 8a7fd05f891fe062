"""``python -m runtime.cli`` runs the ``garrison`` command."""

from runtime.cli import main

main()
