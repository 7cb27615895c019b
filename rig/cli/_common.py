"""Options and helpers every command group shares."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from results.store import Store
from scenarios.errors import InputError

StoreOption = typer.Option(None, "--store", help="Result store (SQLite). Default: $RDMARIG_STORE or "
                           "~/.local/share/rdmarig/results.sqlite.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def open_store(path: Optional[Path], write: bool = True) -> Store:
    """The result store a command uses.

    write=True (commands that store records): opened for writing now, so a read-only or damaged
    store is refused before anything is measured or computed. write=False (commands that only
    read): nothing is opened yet and nothing will be written; a store that does not exist is an
    error, not an empty list."""
    st = Store(path)
    if write:
        st.open_for_writing()
    elif st.spool is None and not st.path.exists():
        raise InputError(f"there is no result store at {st.path}",
                         "`rdmarig measure ...` and `rdmarig plan ...` create it; or pass --store PATH "
                         "of an existing store")
    return st


def store_warnings(st: Store) -> list[str]:
    """What a reader of `st` must be told: damage found, parts that could not be read."""
    out = []
    if st.damage is not None:
        out.append(f"{st.damage_cause()}; showing what still reads, nothing is written into it; "
                   f"{st.recovery()}")
    if st.unreadable_parts:
        out.append(f"{st.unreadable_parts} unreadable rows or pages of {st.path} were skipped")
    if st.unreadable_records:
        out.append(f"{st.unreadable_records} rows of {st.path} are not records this rdmarig reads; "
                   "they were left out")
    return out


def output_file(path: Path, option: str = "--out") -> Path:
    """A file the user named for output. Its directory must exist: nothing is created silently,
    so a mistyped directory is an error, not a new tree."""
    if path.is_dir():
        raise InputError(f"{option} {path} is a directory", f"name a file in it, e.g. {path / 'records.csv'}")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise InputError(f"{option} {path}: the directory {parent} {what}",
                         "create it first or name a file in an existing directory")
    return path


def write_output(path: Path, data: str | bytes, option: str = "--out") -> None:
    """Write a whole output file; every failure names the path."""
    output_file(path, option)
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    except OSError as exc:
        raise InputError(f"{option} {path}: cannot write ({exc.strerror or exc})",
                         "pass a writable file on a filesystem with free space") from None


def write_stdout(text: str) -> None:
    """Print `text` to standard output; a failed write (a full disk, /dev/full) names where it went."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write to standard output ({_stdout_target()}): {exc.strerror or exc}",
                         "redirect the output to a writable file, or use --out FILE") from None


def _stdout_target() -> str:
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return "standard output"
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"
