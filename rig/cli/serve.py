"""`rdmarig serve`: the passive end of a two-host run: `rdmarig measure verbs --peer` (default), or
`rdmarig serve smbd`, an SMB Direct server answering `rdmarig measure smbd --peer` from --file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from rig.rdma.handshake import DEFAULT_PORT, MAX_RUN_SECONDS, VERSION

KINDS = ("smbd",)


def serve(
    kind: Optional[str] = typer.Argument(None, metavar="[smbd]", help="smbd: serve SMB Direct READ/WRITE of --file "
                                         "(default: serve `measure verbs` runs)."),
    bind: str = typer.Option(..., "--bind", help="Address to listen on (required: never all interfaces by default)."),
    port: Optional[int] = typer.Option(None, "--port", help=f"TCP port of the handshake (0..65535; default {DEFAULT_PORT}, "
                                       "smbd 18521)."),
    file: Optional[Path] = typer.Option(None, "--file", help="smbd: the file to serve (a regular file, not empty)."),
    allow_write: bool = typer.Option(False, "--allow-write", help="smbd: let clients WRITE into --file (overwrites it)."),
    max_read_write: str = typer.Option("8MiB", "--max-read-write", help="smbd: MaxReadWriteSize offered (512KiB..16MiB; "
                                       "ksmbd's default 8MiB)."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="RDMA device (default: first with an ACTIVE port)."),
    ib_port: Optional[int] = typer.Option(None, "--ib-port", "-i", help="Device port."),
    gid_index: Optional[int] = typer.Option(None, "--gid-index", "-x", help="GID index (default: IPv4-mapped RoCE v2)."),
    sessions: Optional[int] = typer.Option(None, "--sessions", help="Exit after this many sessions (default: serve until Ctrl-C)."),
    concurrent: int = typer.Option(4, "--concurrent", help="Sessions served at once; one more client is answered 'busy'."),
    serving_cpus: Optional[str] = typer.Option(None, "--serving-cpus", help="smbd: pin connection i's serving process "
                                               "to CPU i of this list (0,1 or 0-3; default: the scheduler places them)."),
    max_run: str = typer.Option("1h", "--max-run", help="Longest run a client may ask for (this server's limit)."),
) -> None:
    """Serve RDMA measurements to `rdmarig measure verbs --peer ADDR` (or, as `serve smbd`, SMB Direct
    to `rdmarig measure smbd --peer ADDR`); several clients at once."""
    from rig.launch.target import Limits
    from rig.rdma.measure import check_range
    from scenarios.errors import InputError
    from scenarios.units import parse_time

    if kind is not None and kind not in KINDS:
        raise InputError(f"serve {kind!r}: no such server", "use `rdmarig serve --bind ADDR` (verbs) or "
                         "`rdmarig serve smbd --bind ADDR --file PATH`")
    if kind is None and (file is not None or allow_write or serving_cpus is not None):
        raise InputError("--file, --allow-write and --serving-cpus belong to `rdmarig serve smbd`", "add smbd: rdmarig serve smbd --bind "
                         "ADDR --file PATH")
    if sessions is not None and sessions < 1:
        raise InputError(f"--sessions {sessions} is out of range", "use 1 or more (or leave it out: serve until Ctrl-C)")
    run_s = parse_time(max_run, "--max-run")
    check_range("--max-run", run_s, 1.0, MAX_RUN_SECONDS, "s")
    log = lambda s: print(f"rdmarig serve: {s}", file=sys.stderr, flush=True)   # noqa: E731
    if kind == "smbd":
        _serve_smbd(bind, port, file, allow_write, max_read_write, device, ib_port, gid_index, sessions, concurrent,
                    Limits(run_s=run_s), log, serving_cpus)
        return
    from rig.rdma.server import VerbsServer
    server = VerbsServer(bind, DEFAULT_PORT if port is None else port, device, ib_port, gid_index, log=log,
                         limits=Limits(run_s=run_s), max_concurrent=concurrent)
    host, p = server.address
    _run(server, f"listening on {host}:{p} (handshake protocol v{VERSION}, up to {concurrent} sessions at once)",
         sessions)


def _run(server, banner: str, sessions: Optional[int]) -> None:
    print(f"rdmarig serve: {banner}", file=sys.stderr, flush=True)
    try:
        server.serve(max_sessions=sessions)
    finally:
        server.close()


def _serve_smbd(bind, port, file, allow_write, max_read_write, device, ib_port, gid_index, sessions, concurrent,
                limits, log, serving_cpus=None) -> None:
    """`serve smbd`: checks its own options, then serves until Ctrl-C (or --sessions)."""
    from rig.flows import smbd
    from rig.launch.smbd_target import DEFAULT_PORT as SMBD_PORT
    from rig.launch.smbd_target import ServedFile, SmbdServer, Where, parse_cpus
    from rig.rdma.measure import check_range
    from scenarios.errors import InputError
    from scenarios.units import parse_size

    if file is None:
        raise InputError("serve smbd needs a file to serve", "pass --file PATH")
    rw = parse_size(max_read_write, "--max-read-write")
    check_range("--max-read-write", rw, smbd.MIN_READ_WRITE_SIZE, smbd.MAX_READ_WRITE_LIMIT, "B")
    cpus = parse_cpus(serving_cpus) if serving_cpus is not None else ()
    served = ServedFile(str(file), allow_write, smbd.Limits(max_read_write_size=int(rw)))
    server = SmbdServer(bind, SMBD_PORT if port is None else port, served, Where(device, ib_port, gid_index, cpus), log=log,
                        limits=limits, max_concurrent=concurrent)
    host, p = server.address
    _run(server, f"SMB Direct listening on {host}:{p}, serving {file} ({'read-write' if allow_write else 'read-only'}, "
         f"up to {concurrent} sessions at once)", sessions)
