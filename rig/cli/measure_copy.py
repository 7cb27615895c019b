"""Placeholder: being written (see the issue tracker)."""

from rig.cli import error


def copy() -> None:
    """Not written yet."""
    error("'copy' is not written yet")
