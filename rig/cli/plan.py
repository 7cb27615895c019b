"""Placeholder: being written (see the issue tracker)."""

from rig.cli import error


def plan() -> None:
    """Not written yet."""
    error("'plan' is not written yet")
