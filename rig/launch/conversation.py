"""What carries the conversation between an initiator and its far end.

A Conversation moves the handshake's message dicts (rig.rdma.handshake: one JSON object, at most
64 KiB, validated field by field by the receiver): `send(msg)`, `recv(timeout_s, expect)` (a
message of an expected type within the limit, or PeerGone / ProtocolError), `poll()` (a message
if one is complete now, else None). TCP lines today; an MPI launcher adds one more class.
"""

from __future__ import annotations

import socket
from typing import Any, Protocol

from rig.rdma.handshake import LineReader, PeerGone, send_msg


class Conversation(Protocol):
    def send(self, msg: dict[str, Any]) -> None: ...
    def recv(self, timeout_s: float, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]: ...
    def poll(self) -> dict[str, Any] | None: ...


class TcpConversation:
    """Newline-delimited JSON over a connected TCP socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.reader = LineReader(sock)

    def send(self, msg: dict[str, Any]) -> None:
        try:
            send_msg(self.sock, msg)
        except OSError as exc:
            raise PeerGone(f"connection to the peer failed: {exc.strerror or exc}") from None

    def recv(self, timeout_s: float, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]:
        return self.reader.recv_msg(timeout_s, expect)

    def poll(self) -> dict[str, Any] | None:
        return self.reader.poll_msg()
