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

app = typer.Typer(no_args_is_help=True, rich_markup_mode=None)

CacheOption = typer.Option(None, "--cache", help="Cache directory. Default: ~/.cache/rdmarig/guest.")


def _cache(path: Optional[Path]) -> Cache:
    cache = Cache.at(path)
    if cache.root.exists() and not cache.root.is_dir():
        raise InputError(f"--cache {cache.root} is a file, not a directory", "pass a directory (made if missing)")
    return cache


def _say(text: str) -> None:
    print(f"guest: {text}", file=sys.stderr, flush=True)


def _timed_say():
    t0 = time.monotonic()
    return lambda text: _say(f"[{time.monotonic() - t0:5.1f}s] {text}")


def _forward(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _forward_err(data: bytes) -> None:
    sys.stderr.buffer.write(data)
    sys.stderr.buffer.flush()


def _whole(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{flag} {text!r} is not a whole number", f"pass e.g. {flag} 2") from None


def _options(cpus: str, mem: str, boot_timeout: str, timeout: str, accel: str, env: list[str]):
    from rig.guest.run import RunOptions, check_options

    extra = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--env {item!r} is not KEY=VALUE", "pass e.g. --env FOO=bar")
        extra[key] = value
    mem_mib = int(parse_size(mem, "--mem") // 2**20)
    options = RunOptions(cpus=_whole(cpus, "--cpus"), mem_mib=mem_mib,
                         boot_timeout_s=parse_time(boot_timeout, "--boot-timeout"),
                         command_timeout_s=parse_time(timeout, "--timeout"), accel=accel, env=extra)
    check_options(options)
    return options


def _timings(result) -> str:
    first = "no output" if result.first_output_s is None else f"first output after {result.first_output_s:.1f} s"
    ready = "" if result.ready_host_s is None else f"qemu start to command {result.ready_host_s:.1f} s, "
    return f"{first}; {ready}total {result.total_s:.1f} s, {result.accel.upper()}"


def _report_failure(result) -> None:
    _say(f"{result.message}; console log: {result.console_log}")
    if result.status == "fatal" and (result.run_dir / "setup.log").exists():
        _say(f"soft-RoCE set-up trace: {result.run_dir / 'setup.log'}")
    if result.status in ("boot-timeout", "crashed", "fatal"):
        tail = result.console_tail[-15:]
        print("  console tail:" if tail else "  (the console stayed silent)", file=sys.stderr)
        for line in tail:
            print(f"  | {line}", file=sys.stderr)


@app.command("prepare")
def prepare(cache: Optional[Path] = CacheOption) -> None:
    """Fetch the kernel and build the boot image (cached; a second run takes seconds)."""
    from rig.guest.prepare import prepare as do_prepare

    say = _timed_say()
    result = do_prepare(_cache(cache), say)
    size = sum(f.stat().st_size for f in Path(result.cache).rglob("*") if f.is_file())
    say(f"ready: kernel {result.kernel_version}, {size / 1e6:.0f} MB in {result.cache} "
        f"({'downloaded' if result.downloaded else 'cached'}, {result.seconds:.1f} s)")


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    command: Optional[List[str]] = typer.Argument(None, help="The command to run in the guest (after --)."),
    timeout: str = typer.Option("1h", "--timeout", help="Limit on the command's run time (e.g. 1200, 20min)."),
    boot_timeout: str = typer.Option("300s", "--boot-timeout", help="Limit from qemu start to the command's start."),
    cpus: str = typer.Option("2", "--cpus", metavar="N", help="Guest CPUs."),
    mem: str = typer.Option("2GiB", "--mem", help="Guest memory."),
    accel: str = typer.Option("auto", "--accel", help="auto (KVM only if it really works), tcg or kvm."),
    no_rxe: bool = typer.Option(False, "--no-rxe", help="Skip the soft-RoCE set-up."),
    env: List[str] = typer.Option([], "--env", help="Extra KEY=VALUE for the command's environment."),
    cache: Optional[Path] = CacheOption,
    store: Optional[Path] = StoreOption,
) -> None:
    """Boot the guest, set up rxe0/rxe1 on a veth pair, run COMMAND in the current directory.

    The command's stdout and stderr arrive here as it writes them; the guest kernel's console goes to
    console.log in the run directory. Exits with the command's exit code (124: timeout, 125: the guest
    failed, 130: Ctrl-C, 143: SIGTERM). Records the command writes land in the host's result store.
    """
    from rig.guest.run import run_in_guest

    options = _options(cpus, mem, boot_timeout, timeout, accel, env)
    options.rxe = not no_rxe
    options.tty = sys.stdout.isatty()
    say = _timed_say()
    result = run_in_guest(list(command or []), Path(os.getcwd()), _cache(cache), options, store, say,
                          _forward, on_stderr=_forward_err)
    if result.status != "finished":
        _report_failure(result)
    else:
        say(f"command exited {result.exit_code} after {result.command_s:.1f} s ({_timings(result)})")
    if result.kernel_lines:
        say(f"the guest kernel printed {result.kernel_lines} line(s) while the command ran: {result.console_log}")
    if result.records_ingested:
        say(f"{result.records_ingested} record(s) landed in {result.store}")
    for named, count, why_not in result.landed_named:
        say(f"store {named} (named by the command): {why_not}" if why_not else
            f"{count} record(s) landed in {named} (the store the command named)")
    if not result.records_ingested and not result.landed_named and result.status in ("finished", "command-timeout"):
        say("no records written by the command")
    raise typer.Exit(result.exit_code)


@app.command("check")
def check(
    bw_iters: str = typer.Option("50", "--bw-iters", metavar="N",
                                 help="ib_write_bw iterations of 1 MiB (-n; -D reads zero under TCG)."),
    boot_timeout: str = typer.Option("300s", "--boot-timeout", help="Limit from qemu start to the probe's start."),
    timeout: str = typer.Option("15min", "--timeout", help="Limit on the probe's run time."),
    cpus: str = typer.Option("2", "--cpus", metavar="N", help="Guest CPUs."),
    mem: str = typer.Option("2GiB", "--mem", help="Guest memory."),
    accel: str = typer.Option("auto", "--accel", help="auto, tcg or kvm."),
    cache: Optional[Path] = CacheOption,
    as_json: bool = JsonOption,
) -> None:
    """Boot the guest and report its RDMA devices, ports, GIDs, one ib_write_bw and the pyverbs self-test."""
    from rig.guest.check import run_check

    options = _options(cpus, mem, boot_timeout, timeout, accel, [])
    say = _timed_say()
    result = run_check(_cache(cache), options, _whole(bw_iters, "--bw-iters"), say, on_stderr=_forward_err)
    if as_json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        _print_check(result)
    if result.run.status not in ("finished",):
        _report_failure(result.run)
    elif result.probe is None:
        _say(f"the probe wrote no report (exit {result.run.exit_code}); console log: {result.run.console_log}")
    raise typer.Exit(0 if result.ok else 1)


def _print_check(result) -> None:
    r, p = result.run, result.probe
    timing = (f"host root at {r.userland_uptime_s:.1f} s, rxe ready at {r.rxe_uptime_s:.1f} s (guest clock), "
              if r.userland_uptime_s is not None and r.rxe_uptime_s is not None else "")
    print(f"soft-RoCE guest: kernel {r.kernel_version}, accel {r.accel.upper()} ({r.accel_reason})")
    print(f"timings: {timing}check total {r.total_s:.1f} s")
    if p is None:
        print("FAIL  the guest produced no report")
        return
    print(f"{'device':8} {'port':4} {'state':10} {'MTU':>6} {'netdev':8} GIDs (first few)")
    for d in p["devices"]:
        gids = "; ".join(f"[{g['index']}] {g['gid']} {g['type'] or ''}".strip() for g in d["gids"])
        print(f"{d['device']:8} {d['port']:<4} {(d['state'] or '?'):10} {d.get('active_mtu_bytes') or '?':>6} "
              f"{d['netdev'] or '?':8} {gids}")
    for item in p["items"]:
        print(f"{'PASS' if item['ok'] else 'FAIL'}  {item['name']}: {item['detail']}")
    print("all checks passed" if result.ok else "some checks FAILED")
