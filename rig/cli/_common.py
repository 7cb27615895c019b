"""Options and helpers every command group shares."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from results.store import Store

StoreOption = typer.Option(None, "--store", help="Result store (SQLite). Default: $RDMARIG_STORE or "
                           "~/.local/share/rdmarig/results.sqlite.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def open_store(path: Optional[Path]) -> Store:
    return Store(path)
