"""Placeholder: being written (see the issue tracker)."""

import typer

app = typer.Typer(no_args_is_help=True)
