"""`rdmarig serve`: the passive end of a two-host `rdmarig measure verbs --peer` run."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from rig.rdma.handshake import DEFAULT_PORT, MAX_RUN_SECONDS, VERSION


def serve(
    bind: str = typer.Option(..., "--bind", help="Address to listen on (required: never all interfaces by default)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port of the handshake (0..65535)."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="RDMA device (default: first with an ACTIVE port)."),
    ib_port: Optional[int] = typer.Option(None, "--ib-port", "-i", help="Device port."),
    gid_index: Optional[int] = typer.Option(None, "--gid-index", "-x", help="GID index (default: IPv4-mapped RoCE v2)."),
    sessions: Optional[int] = typer.Option(None, "--sessions", help="Exit after this many sessions (default: serve until Ctrl-C)."),
    concurrent: int = typer.Option(4, "--concurrent", help="Sessions served at once; one more client is answered 'busy'."),
    max_run: str = typer.Option("1h", "--max-run", help="Longest run a client may ask for (this server's limit)."),
) -> None:
    """Serve RDMA measurements to `rdmarig measure verbs --peer ADDR`; several clients at once."""
    from rig.launch.target import Limits
    from rig.rdma.measure import check_range
    from rig.rdma.server import VerbsServer
    from scenarios.errors import InputError
    from scenarios.units import parse_time

    if sessions is not None and sessions < 1:
        raise InputError(f"--sessions {sessions} is out of range", "use 1 or more (or leave it out: serve until Ctrl-C)")
    run_s = parse_time(max_run, "--max-run")
    check_range("--max-run", run_s, 1.0, MAX_RUN_SECONDS, "s")
    server = VerbsServer(bind, port, device, ib_port, gid_index,
                         log=lambda s: print(f"rdmarig serve: {s}", file=sys.stderr, flush=True),
                         limits=Limits(run_s=run_s), max_concurrent=concurrent)
    host, p = server.address
    print(f"rdmarig serve: listening on {host}:{p} (handshake protocol v{VERSION}, up to {concurrent} "
          f"sessions at once)", file=sys.stderr, flush=True)
    try:
        server.serve(max_sessions=sessions)
    finally:
        server.close()
