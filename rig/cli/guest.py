"""`rdmarig guest prepare | run | check`: the soft-RoCE qemu guest."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

from rig.cli._common import JsonOption, StoreOption
from rig.guest.cache import Cache
from scenarios.errors import InputError
from scenarios.units import parse_size, parse_time

app = typer.Typer(no_args_is_help=True)

CacheOption = typer.Option(None, "--cache", help="Cache directory. Default: ~/.cache/rdmarig/guest.")


def _say(text: str) -> None:
    print(f"guest: {text}", file=sys.stderr, flush=True)


def _timed_say():
    t0 = time.monotonic()
    return lambda text: _say(f"[{time.monotonic() - t0:5.1f}s] {text}")


def _forward(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _options(cpus: int, mem: str, boot_timeout: str, timeout: str, accel: str, env: list[str]):
    from rig.guest.run import RunOptions

    extra = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--env {item!r} is not KEY=VALUE", "pass e.g. --env FOO=bar")
        extra[key] = value
    mem_mib = int(parse_size(mem, "--mem") // 2**20)
    return RunOptions(cpus=cpus, mem_mib=mem_mib, boot_timeout_s=parse_time(boot_timeout, "--boot-timeout"),
                      command_timeout_s=parse_time(timeout, "--timeout"), accel=accel, env=extra)


def _report_failure(result) -> None:
    _say(f"{result.message}; console log: {result.console_log}")
    if result.status in ("boot-timeout", "crashed", "fatal"):
        for line in result.console_tail[-15:]:
            print(f"  | {line}", file=sys.stderr)


@app.command("prepare")
def prepare(cache: Optional[Path] = CacheOption) -> None:
    """Fetch the kernel and build the boot image (cached; a second run takes seconds)."""
    from rig.guest.prepare import prepare as do_prepare

    say = _timed_say()
    result = do_prepare(Cache.at(cache), say)
    size = sum(f.stat().st_size for f in Path(result.cache).rglob("*") if f.is_file())
    say(f"ready: kernel {result.kernel_version}, {size / 1e6:.0f} MB in {result.cache} "
        f"({'downloaded' if result.downloaded else 'cached'}, {result.seconds:.1f} s)")


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    command: List[str] = typer.Argument(..., help="The command to run in the guest (after --)."),
    timeout: str = typer.Option("1h", "--timeout", help="Limit on the command's run time (e.g. 1200, 20min)."),
    boot_timeout: str = typer.Option("300s", "--boot-timeout", help="Limit from qemu start to the command's start."),
    cpus: int = typer.Option(2, "--cpus", help="Guest CPUs."),
    mem: str = typer.Option("2GiB", "--mem", help="Guest memory."),
    accel: str = typer.Option("auto", "--accel", help="auto (KVM only if it really works), tcg or kvm."),
    no_rxe: bool = typer.Option(False, "--no-rxe", help="Skip the soft-RoCE set-up."),
    env: List[str] = typer.Option([], "--env", help="Extra KEY=VALUE for the command's environment."),
    cache: Optional[Path] = CacheOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Boot the guest, set up rxe0/rxe1 on a veth pair, run COMMAND in the current directory.

    Exits with the command's exit code (124: timeout, 125: the guest failed). Records the command
    writes land in the host's result store.
    """
    from rig.guest.run import run_in_guest

    options = _options(cpus, mem, boot_timeout, timeout, accel, env)
    options.rxe = not no_rxe
    say = _timed_say()
    result = run_in_guest(list(command), Path(os.getcwd()), Cache.at(cache), options, store, say, _forward)
    if result.status != "finished":
        _report_failure(result)
    else:
        say(f"command exited {result.exit_code} after {result.command_s:.1f} s "
            f"(guest {result.accel}, total {result.total_s:.1f} s)")
    if result.records_ingested:
        say(f"{result.records_ingested} record(s) landed in {result.store}")
    else:
        say("no records written by the command")
    raise typer.Exit(result.exit_code)
