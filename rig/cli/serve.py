"""`rdmarig serve`: the passive end of a two-host `rdmarig measure verbs --peer` run."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from rig.rdma.handshake import DEFAULT_PORT


def serve(
    bind: str = typer.Option(..., "--bind", help="Address to listen on (required: never all interfaces by default)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port of the handshake."),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="RDMA device (default: first with an ACTIVE port)."),
    ib_port: Optional[int] = typer.Option(None, "--ib-port", "-i", help="Device port."),
    gid_index: Optional[int] = typer.Option(None, "--gid-index", "-x", help="GID index (default: IPv4-mapped RoCE v2)."),
    sessions: Optional[int] = typer.Option(None, "--sessions", help="Exit after this many sessions (default: serve until Ctrl-C)."),
) -> None:
    """Serve RDMA measurements to `rdmarig measure verbs --peer ADDR`; one session at a time."""
    from rig.rdma.server import VerbsServer

    server = VerbsServer(bind, port, device, ib_port, gid_index,
                         log=lambda s: print(f"rdmarig serve: {s}", file=sys.stderr, flush=True))
    host, p = server.address
    print(f"rdmarig serve: listening on {host}:{p} (handshake protocol v1)", file=sys.stderr, flush=True)
    try:
        server.serve(max_sessions=sessions)
    finally:
        server.close()
