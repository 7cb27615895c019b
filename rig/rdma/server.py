"""`rdmarig serve`: the passive side of two-host measurements, several clients at once.

Each accepted client gets a thread running one target session (rig.launch.target: validate the
hello, build and connect a Player, count CPU between start and stop, hash the target memory,
release everything). At most `max_concurrent` sessions run at once; the next client is answered
"busy" at once and closed. Every phase of a session is bounded by the server's own limits, so a
client that goes silent (before its hello, or after `start`) is dropped after `silence_s`
whatever run time it asked for, and it never holds up anyone else. A bad or hostile message gets
an error reply and the server keeps serving.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable

from rig.launch.conversation import TcpConversation
from rig.launch.target import Limits, TargetSession
from rig.rdma.handshake import send_msg
from scenarios.errors import InputError

DEFAULT_CONCURRENT = 4
MAX_CONCURRENT = 64
ACCEPT_POLL_S = 0.2


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is out of range", "use 0..65535 (0: any free port)")


def listen(bind: str, port: int, max_concurrent: int) -> socket.socket:
    """The server's listening socket (accept polls its stop every ACCEPT_POLL_S), options checked first."""
    if not bind:
        raise InputError("serve needs an address to bind to", "pass --bind ADDR (never all interfaces by default)")
    check_port(port)
    if not 1 <= max_concurrent <= MAX_CONCURRENT:
        raise InputError(f"--concurrent {max_concurrent} is out of range", f"use 1..{MAX_CONCURRENT}")
    try:
        sock = socket.create_server((bind, port), reuse_port=False)
    except (OSError, OverflowError) as exc:
        raise InputError(f"cannot listen on {bind}:{port}: {getattr(exc, 'strerror', None) or exc}",
                         "use an address of this host and a free --port") from None
    sock.settimeout(ACCEPT_POLL_S)
    return sock


def answer_busy(conn: socket.socket, max_concurrent: int) -> None:
    """A client over the limit is answered at once and closed: it never waits behind others."""
    try:
        conn.settimeout(1.0)
        send_msg(conn, {"type": "error", "error": f"busy: {max_concurrent} sessions running, "
                                                  "try again when one has finished"})
    except OSError:
        pass
    conn.close()


def session_line(who: str, outcome: dict[str, Any]) -> str:
    return f"session from {who}: {outcome.get('result')}" + (f" ({outcome['error']})" if outcome.get("error") else "")


class VerbsServer:
    def __init__(self, bind: str, port: int, device: str | None = None, ib_port: int | None = None,
                 gid_index: int | None = None, log: Callable[[str], None] | None = None,
                 limits: Limits = Limits(), max_concurrent: int = DEFAULT_CONCURRENT):
        self.sock = listen(bind, port, max_concurrent)
        self.address = self.sock.getsockname()[:2]
        self.device, self.ib_port, self.gid_index = device, ib_port, gid_index
        self.limits, self.max_concurrent = limits, max_concurrent
        self.log = log or (lambda s: None)
        self.sessions: list[dict[str, Any]] = []      # finished sessions, in the order they ended
        self.accepted = 0
        self._lock = threading.Lock()
        self._active: set[threading.Thread] = set()

    def close(self) -> None:
        self.sock.close()

    def active(self) -> int:
        with self._lock:
            return len(self._active)

    def serve(self, stop: threading.Event | None = None, max_sessions: int | None = None) -> None:
        """Accept clients until `stop` is set or `max_sessions` clients were accepted (then wait
        for the sessions still running)."""
        while (stop is None or not stop.is_set()) and (max_sessions is None or self.accepted < max_sessions):
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if stop is not None and stop.is_set():
                    return
                raise
            self._dispatch(conn, peer)
        for t in list(self._active):      # each ends within the server's limits
            t.join()

    def _dispatch(self, conn: socket.socket, peer: Any) -> None:
        with self._lock:
            full = len(self._active) >= self.max_concurrent
        if full:
            answer_busy(conn, self.max_concurrent)
            self._finished(peer, {"result": "busy"})
            return
        self.accepted += 1
        t = threading.Thread(target=self._session, args=(conn, peer), name=f"serve {peer[0]}:{peer[1]}", daemon=True)
        with self._lock:
            self._active.add(t)
        t.start()

    def _session(self, conn: socket.socket, peer: Any) -> None:
        try:
            with conn:
                outcome = TargetSession(TcpConversation(conn), self.limits, self.device, self.ib_port,
                                        self.gid_index).run()
        except Exception as exc:        # noqa: BLE001 - a session must never take the server down
            outcome = {"result": "error", "error": f"{exc.__class__.__name__}: {exc}"}
        finally:
            with self._lock:
                self._active.discard(threading.current_thread())
        self._finished(peer, outcome)

    def _finished(self, peer: Any, outcome: dict[str, Any]) -> None:
        with self._lock:
            self.sessions.append({**outcome, "peer": f"{peer[0]}:{peer[1]}"})
        self.log(session_line(f"{peer[0]}:{peer[1]}", outcome))
