"""The ``garrison`` command line."""

from runtime.cli._app import app


def main() -> None:
    """Entry point of the ``garrison`` console script."""
    app()


__all__ = ["app", "main"]
