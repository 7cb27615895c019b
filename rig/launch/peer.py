"""The far end is `rdmarig serve` (another host, or another process): the initiator's half of
the conversation, over TCP here; `initiate` itself takes any Conversation, so an MPI launcher
reuses it with its own.

    hello -> ready -> start -> tick ... -> stop -> done        (rig.launch, rig.rdma.handshake)

While the loop runs, the workload's progress hook sends a `tick` at least every TICK_S, so the
far end tells a live initiator from a silent one without a time limit of the initiator's choosing.
"""

from __future__ import annotations

import math
import socket
from typing import Any

from rig import accounting as acct
from rig.launch import PointResult, Workload
from rig.launch.conversation import Conversation, TcpConversation
from rig.rdma import hw_counters
from rig.rdma.devices import PortInfo, discover
from rig.rdma.handshake import (DEFAULT_PORT, HANDSHAKE_TIMEOUT_S, MAX_RUN_SECONDS, PeerGone, ProtocolError,
                                parse_addr, validate_endpoint)
from rig.rdma.player import Player
from scenarios.errors import InputError


class PeerError(RuntimeError):
    """The peer vanished, timed out or refused."""


def address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    try:
        return parse_addr(text, default_port)
    except ValueError as exc:
        raise InputError(f"--peer {text!r}: {exc}", "use HOST or HOST:PORT (port 0..65535)") from None


def run(workload: Workload, peer: str, device: str | None = None, ib_port: int | None = None,
        gid_index: int | None = None, answer_s: float = 30.0, default_port: int = DEFAULT_PORT,
        serve: str = "rdmarig serve") -> PointResult:
    """Measure against `rdmarig serve` (or the server `serve` names, listening on
    `default_port` unless the address says) at `peer` (HOST[:PORT])."""
    host, tcp_port = address(peer, default_port)
    port = discover(device, ib_port, gid_index)
    try:
        sock = socket.create_connection((host, tcp_port), timeout=HANDSHAKE_TIMEOUT_S)
    except OSError as exc:
        raise InputError(f"cannot reach {serve} at {host}:{tcp_port}: {exc.strerror or exc}",
                         f"start `{serve} --bind {host}` there, or check --peer") from None
    with sock:
        return initiate(workload, TcpConversation(sock), port, f"{host}:{tcp_port}", answer_s)


def far_cpu(done: dict[str, Any]) -> dict[str, float] | None:
    """The far end's CPU figures from `done` (numbers only), adjusted when it shares our kernel."""
    cpu = done.get("cpu")
    if not isinstance(cpu, dict):
        return None
    cpu = {k: float(v) for k, v in cpu.items()
           if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    return acct.same_host_peer(cpu) if done.get("boot_id") == acct.boot_id() else cpu


def initiate(workload: Workload, conv: Conversation, port: PortInfo, where: str,
             answer_s: float = 30.0) -> PointResult:
    """The initiator's side of one run over `conv`; PeerError when the far end fails it."""
    cfg, _ = workload.configs()
    player_class = getattr(workload, "player_class", Player)      # a workload may want more of its Player
    with player_class(port, cfg) as player:
        try:
            conv.send({"type": "hello", **workload.request(),
                       "run_seconds_max": min(MAX_RUN_SECONDS, workload.run_seconds_max()),
                       "endpoint": player.endpoint()})
            ready = conv.recv(answer_s, "ready")
            remote = validate_endpoint(ready.get("endpoint"), cfg.num_qps)
            if hasattr(workload, "accept_ready"):        # a workload that needs more of `ready` to run
                workload.accept_ready(ready)
            player.connect(remote)
            prepared = workload.prepare_initiator(player)
            conv.send({"type": "start"})
            before = hw_counters.snapshot()
            raw = workload.run_initiator(player, remote, lambda n, t: conv.send({"type": "tick"}))
            moved = hw_counters.delta(before, hw_counters.snapshot())
            conv.send({"type": "stop"})
            done = conv.recv(answer_s, "done")
        except (PeerGone, ProtocolError) as exc:
            raise PeerError(f"peer {where}: {exc}") from None
        same_host = done.get("boot_id") == acct.boot_id()
        cpu = far_cpu(done)
        if same_host and isinstance(getattr(raw, "cpu", None), dict):
            raw.cpu = acct.one_kernel_initiator(raw.cpu, acct.softirq_in_task_time())
        integrity = workload.check_far(player, prepared, ready, done)
        summary, samples = workload.summarize(raw, cpu)
        summary["cpu_scope"] = workload.cpu_scope("peer on this host" if same_host else "peer")
        if moved:           # this host's devices (with the peer here, both ends')
            summary["rdma_hw_counters"] = moved
        return PointResult(params=workload.params(), summary=summary, samples=samples, integrity=integrity,
                           ports={"local": port.as_dict(),
                                  "remote": {"gid": remote["gid"], "mtu_bytes": remote["mtu_bytes"]}},
                           cpu={"local": raw.cpu, "remote": cpu},
                           cpu_accounting={"local": raw.cpu_note, "remote": done.get("cpu_accounting"),
                                           "same_host": same_host})


