"""`rdmarig serve`: the passive side of a two-host measurement.

One session at a time: validate the hello, build and connect a Player, report CPU used between
start and stop, hash the target memory for the integrity check, release everything, accept the
next client. A bad or hostile message gets an error reply and the server keeps serving; a client
that vanishes costs at most the time limits.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from typing import Any, Callable

from rig.rdma.handshake import (HANDSHAKE_TIMEOUT_S, LineReader, PeerGone, ProtocolError, send_msg,
                                validate_hello)
from scenarios.errors import InputError

SOCKET_CHECK_EVERY = 512      # receive-CQ polls between two looks at the control socket (SEND)


class VerbsServer:
    def __init__(self, bind: str, port: int, device: str | None = None, ib_port: int | None = None,
                 gid_index: int | None = None, log: Callable[[str], None] | None = None):
        if not bind:
            raise InputError("serve needs an address to bind to", "pass --bind ADDR (never all interfaces by default)")
        try:
            self.sock = socket.create_server((bind, port), reuse_port=False)
        except OSError as exc:
            raise InputError(f"cannot listen on {bind}:{port}: {exc.strerror or exc}",
                             "use an address of this host and a free --port") from None
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()[:2]
        self.device, self.ib_port, self.gid_index = device, ib_port, gid_index
        self.log = log or (lambda s: None)
        self.sessions: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def serve(self, stop: threading.Event | None = None, max_sessions: int | None = None) -> None:
        while (stop is None or not stop.is_set()) and (max_sessions is None or len(self.sessions) < max_sessions):
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if stop is not None and stop.is_set():
                    return
                raise
            with conn:
                outcome = self.session(conn, peer)
            self.sessions.append(outcome)
            self.log(f"session from {peer[0]}:{peer[1]}: {outcome.get('result')}"
                     + (f" ({outcome['error']})" if outcome.get("error") else ""))

    def session(self, conn: socket.socket, peer: Any) -> dict[str, Any]:
        reader = LineReader(conn)
        try:
            hello = validate_hello(reader.recv_msg(HANDSHAKE_TIMEOUT_S, "hello"))
        except ProtocolError as exc:
            _try_send(conn, {"type": "error", "error": str(exc)})
            return {"result": "refused", "error": str(exc)}
        except PeerGone as exc:
            return {"result": "gone", "error": str(exc)}
        try:
            return self._run(conn, reader, hello)
        except ProtocolError as exc:
            _try_send(conn, {"type": "error", "error": str(exc)})
            return {"result": "refused", "error": str(exc)}
        except PeerGone as exc:
            return {"result": "gone", "error": str(exc)}
        except InputError as exc:
            _try_send(conn, {"type": "error", "error": exc.one_line()})
            return {"result": "error", "error": exc.one_line()}
        except Exception as exc:      # a verbs failure must not take the server down
            _try_send(conn, {"type": "error", "error": f"{exc.__class__.__name__}: {exc}"})
            return {"result": "error", "error": f"{exc.__class__.__name__}: {exc}"}

    def _run(self, conn: socket.socket, reader: LineReader, hello: dict[str, Any]) -> dict[str, Any]:
        from rig.rdma.resources import Player, PlayerConfig, discover
        from rig.rdma.traffic import Receiver, cpu_delta, cpu_snapshot

        port = discover(self.device, self.ib_port, self.gid_index)
        cfg = PlayerConfig(msg_bytes=hello["msg_bytes"], slots=hello["slots"], num_qps=hello["num_qps"],
                           tx_depth=16, rx_depth=hello["rx_depth"])
        with Player(port, cfg) as player:
            ready: dict[str, Any] = {"type": "ready"}
            if hello["op"] == "read":
                data = os.urandom(cfg.mr_bytes)
                player.write_bytes(data)
                ready["sha256"] = hashlib.sha256(data).hexdigest()
            else:
                player.write_bytes(bytes(cfg.mr_bytes))
            player.connect(hello["endpoint"])
            receiver = Receiver(player, hello["msg_bytes"]) if hello["op"] == "send" else None
            ready["endpoint"] = player.endpoint()
            send_msg(conn, ready)
            reader.recv_msg(HANDSHAKE_TIMEOUT_S, "start")
            cpu0 = cpu_snapshot()
            deadline = time.monotonic() + hello["run_seconds_max"]
            if receiver is None:
                reader.recv_msg(hello["run_seconds_max"], "stop")
            else:
                while True:
                    for _ in range(SOCKET_CHECK_EVERY):
                        receiver.service()
                    msg = reader.poll_msg()
                    if msg is not None:
                        if msg["type"] != "stop":
                            raise ProtocolError(f"expected a stop message, got {msg['type']!r}")
                        break
                    if time.monotonic() > deadline:
                        raise PeerGone(f"no stop message within {hello['run_seconds_max']:g} s")
                receiver.service()
            cpu = cpu_delta(cpu0, cpu_snapshot())
            done = {"type": "done", "cpu": cpu, "received": receiver.received if receiver else 0,
                    "sha256": hashlib.sha256(player.read_bytes()).hexdigest()}
            send_msg(conn, done)
            return {"result": "ok", "op": hello["op"], "msg_bytes": hello["msg_bytes"], "cpu": cpu}


def _try_send(conn: socket.socket, msg: dict[str, Any]) -> None:
    try:
        send_msg(conn, msg)
    except (OSError, ProtocolError):
        pass
