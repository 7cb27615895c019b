"""`rdmarig measure ...`: real measurements. Each kind lives in its own module, imported only when
that kind runs (or for --help)."""

import importlib

import typer

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

@app.callback()
def _group() -> None:
    """Measure real transfers and copy costs on this host."""
    # a group even when only one kind is registered


# name -> (module, function), in --help order
KINDS = {"verbs": ("rig.cli.measure_verbs", "verbs"), "smbd": ("rig.cli.measure_smbd", "smbd"),
         "copy": ("rig.cli.measure_copy", "copy")}
_registered: set[str] = set()


def register(argv: list[str] | None = None) -> None:
    """Add the kind `argv` names, or every kind."""
    names = [argv[0]] if argv and argv[0] in KINDS else list(KINDS)
    for name in names:
        if name not in _registered:
            module, attr = KINDS[name]
            app.command(name)(getattr(importlib.import_module(module), attr))
            _registered.add(name)
