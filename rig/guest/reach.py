"""What of the host's files the command will find in the guest, worked out before booting.

The guest sees the host's / read-only (what the command writes there stays in the guest), the
working directory and the run directory read-write, and its own fresh /tmp, /run and /dev/shm.
Host paths the command needs under those three (a venv in /tmp, a script in /dev/shm) are bound
into the guest read-only. So is a venv the command runs from inside the working directory
(./.venv): the read-write share is uncached, and reading numpy, scipy and typer through it made
Python start-up in the guest 1.5-2.5x slower than through the cached read-only root. A command
that cannot be found is refused here, not after a boot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from rig.guest.qemu import is_plain_path
from scenarios.errors import InputError

GUEST_OWN = (Path("/tmp"), Path("/run"), Path("/dev/shm"))   # the guest mounts its own tmpfs there
_SHEBANG_MAX = 256


@dataclass(frozen=True)
class Reach:
    command: Path                  # argv[0] as the guest will run it
    binds: tuple[Path, ...]        # host paths bound in read-only from the (cached) host root
    not_shared: tuple[Path, ...]   # named paths that do not exist yet and are outside the shared dirs


def find_command(name: str, search_path: str, cwd: Path) -> Path:
    """argv[0] as `env` will find it in the guest (same root, same PATH, same cwd)."""
    if not name:
        raise InputError("the command is an empty string", "put the command after --")
    if "/" in name:
        found = cwd / name
        if not os.path.isfile(found):
            raise InputError(f"command {name} not found on this host (the guest runs the host's files)",
                             "check the path")
    else:
        dirs = [cwd / (d or ".") for d in search_path.split(":")]
        found = next((d / name for d in dirs if os.path.isfile(d / name) and os.access(d / name, os.X_OK)), None)
        if found is None:
            raise InputError(f"command {name!r} not found on the PATH the guest uses ({search_path})",
                             "give its full path, or put its directory on PATH (e.g. activate the venv)")
    if not os.access(found, os.X_OK):
        raise InputError(f"command {found} is not executable", f"chmod +x {found}, or run it through its interpreter")
    return Path(os.path.abspath(found))


def interpreter(script: Path) -> Path | None:
    """The absolute interpreter a `#!` line names, or None (a binary, or no #! line)."""
    try:
        with open(script, "rb") as f:
            head = f.read(_SHEBANG_MAX)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return Path(os.fsdecode(words[0])) if words and words[0].startswith(b"/") else None


def named_paths(args: Sequence[str], cwd: Path) -> tuple[list[Path], list[Path]]:
    """Paths the arguments name: (existing on this host, absolute but not existing yet).
    An argument counts whole, and so does the value of --option=value."""
    existing, missing = [], []
    for arg in args:
        for text in {arg, arg.partition("=")[2]}:
            if not text or text.startswith("-"):
                continue
            path = Path(os.path.abspath(cwd / text))
            if os.path.lexists(path):
                existing.append(path)
            elif text.startswith("/") and os.path.isdir(path.parent):
                missing.append(path)
    return existing, missing


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def bind_for(path: Path, shared: Sequence[Path]) -> Path | None:
    """The host path to bind so that `path` exists in the guest, or None if it is visible anyway:
    the whole top entry under /tmp, /run or /dev/shm (a venv's bin/ needs its lib/ too)."""
    if any(_under(path, s) for s in shared):
        return None
    for root in GUEST_OWN:
        if path != root and _under(path, root):
            return root / path.relative_to(root).parts[0]
    return None


def venv_root(path: Path) -> Path | None:
    """The virtual environment `path` belongs to (the directory holding pyvenv.cfg), if any."""
    return next((d for d in (path, *path.parents) if (d / "pyvenv.cfg").is_file()), None)


def plan(argv: Sequence[str], cwd: Path, shared: Sequence[Path], search_path: str,
         env: Mapping[str, str]) -> Reach:
    """Find the command and every host path it needs; raise InputError for what cannot be reached."""
    command = find_command(argv[0], search_path, cwd)
    needed = [command]
    interp = interpreter(command)
    if interp is not None:
        if not os.path.exists(interp):
            raise InputError(f"{command} starts with #!{interp}, which does not exist",
                             "recreate the venv it belongs to, or fix its #! line")
        needed.append(interp)
    existing, missing = named_paths(argv[1:], cwd)
    needed += existing
    needed += [Path(p) for p in env.get("PYTHONPATH", "").split(":") + [env.get("VIRTUAL_ENV", "")]
               if p.startswith("/") and os.path.exists(p)]
    binds = []
    runs_from = [command, interp, Path(env["VIRTUAL_ENV"]) if env.get("VIRTUAL_ENV") else None]
    venvs = {venv_root(p) for p in runs_from if p is not None} - {None}
    for venv in sorted(venvs):
        if venv not in shared and any(_under(venv, s) for s in shared) and is_plain_path(venv):
            binds.append(venv)     # read through the cached root rather than the uncached share
    for path in needed:
        for form in (path, Path(os.path.realpath(path))):    # the link and what it points to
            bind = bind_for(form, shared)
            if bind is None or bind in binds:
                continue
            if not is_plain_path(bind):
                raise InputError(f"{form} (the command needs it) is under {bind.parent}, which the guest mounts "
                                 f"afresh, and {bind} cannot be bound in: its name has a space, comma, colon or "
                                 "quote", "move it under the working directory, or rename it")
            binds.append(bind)
    not_shared = tuple(p for p in missing if not any(_under(p, s) for s in shared))
    return Reach(command, tuple(binds), not_shared)
