"""`rdmarig measure ...`: real measurements. Each kind lives in its own module."""

import typer

from rig.cli import measure_copy, measure_verbs

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
app.command("verbs")(measure_verbs.verbs)
app.command("copy")(measure_copy.copy)
