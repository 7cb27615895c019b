"""Placeholder: being written (see the issue tracker)."""

from rig.cli import error


def serve() -> None:
    """Not written yet."""
    error("'serve' is not written yet")
