"""Placeholder: being written (see the issue tracker)."""

from rig.cli import error


def verbs() -> None:
    """Not written yet."""
    error("'verbs' is not written yet")
