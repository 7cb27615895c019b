"""The two-host handshake: newline-delimited JSON over TCP, versioned, bounded, validated.

No pickle, nothing evaluated: every message is one JSON object on one line of at most
MAX_MESSAGE_BYTES, read under a deadline, and checked field by field before anything is done
with it. This module does not import pyverbs, so the protocol is testable anywhere.

Conversation (client = `rdmarig measure verbs --peer`, server = `rdmarig serve`; carried by
rig.launch.conversation, run by rig.launch.peer and rig.launch.target):
    C: hello {op, msg_bytes, num_qps, tx_depth, rx_depth, slots, run_seconds_max, endpoint}
    S: ready {endpoint, boot_id, sha256?}  |  error {error}   (also "busy" when the server is full)
    C: start                      (server starts counting CPU; for SEND it keeps receives posted)
    C: tick                       (at least every 2 s while the loop runs: the client is alive)
    C: stop                       S: done {cpu, cpu_accounting, boot_id, received, sha256}
Version 2 added `tick` (a version-1 client would be dropped as silent after 10 s) and boot_id.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

VERSION = 2
DEFAULT_PORT = 18520
MAX_MESSAGE_BYTES = 64 * 1024
HANDSHAKE_TIMEOUT_S = 10.0
MAX_RUN_SECONDS = 3600.0
MAX_QPS = 256
MAX_MSG_BYTES = 1 << 30
MAX_MR_BYTES = 4 << 30
MAX_DEPTH = 16384
OPS = ("write", "read", "send")
GID_RE = re.compile(r"^[0-9a-fA-F]{4}(:[0-9a-fA-F]{4}){7}$")


class ProtocolError(Exception):
    """A message that is not valid in this protocol (the server answers it and keeps serving)."""


class PeerGone(Exception):
    """The other side closed the connection or did not answer in time."""


def send_msg(sock: socket.socket, msg: dict[str, Any]) -> None:
    data = json.dumps({"version": VERSION, **msg}, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    sock.sendall(data)


class LineReader:
    """Reads newline-terminated messages with a size bound and an absolute deadline."""

    def __init__(self, sock: socket.socket):
        self.sock, self.buf = sock, b""

    def recv_msg(self, timeout_s: float, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerGone(f"no message from the peer within {timeout_s:g} s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise PeerGone(f"no message from the peer within {timeout_s:g} s") from None
            except OSError as exc:
                raise PeerGone(f"connection to the peer failed: {exc}") from None
            if not chunk:
                raise PeerGone("the peer closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if len(line) > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
        return parse(line, expect)

    def poll_msg(self) -> dict[str, Any] | None:
        """A message if one is complete right now (non-blocking), else None."""
        if b"\n" not in self.buf:
            self.sock.setblocking(False)
            try:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise PeerGone("the peer closed the connection")
                self.buf += chunk
            except (BlockingIOError, InterruptedError):
                pass
            finally:
                self.sock.setblocking(True)
        if b"\n" not in self.buf:
            if len(self.buf) > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"message longer than {MAX_MESSAGE_BYTES} bytes")
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return parse(line)


def parse(line: bytes, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    try:
        msg = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not a JSON message ({exc.__class__.__name__})") from None
    if not isinstance(msg, dict):
        raise ProtocolError("message is not a JSON object")
    if msg.get("version") != VERSION:
        raise ProtocolError(f"protocol version {msg.get('version')!r}, this side speaks {VERSION}")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("message has no type")
    if expect is not None and kind not in ((expect,) if isinstance(expect, str) else expect):
        if kind == "error":
            raise ProtocolError(f"peer refused: {msg.get('error')}")
        raise ProtocolError(f"expected a {expect} message, got {kind!r}")
    return msg


def field_int(msg: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = msg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProtocolError(f"field {key!r} must be an integer in {lo}..{hi}, got {v!r}")
    return v


def validate_endpoint(ep: Any, num_qps: int) -> dict[str, Any]:
    if not isinstance(ep, dict):
        raise ProtocolError("endpoint must be an object")
    for key in ("qpns", "psns"):
        vals = ep.get(key)
        if not isinstance(vals, list) or len(vals) != num_qps or \
                not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < (1 << 24) for x in vals):
            raise ProtocolError(f"endpoint.{key} must be {num_qps} integers below 2^24")
    gid = ep.get("gid")
    if not isinstance(gid, str) or not GID_RE.match(gid):
        raise ProtocolError("endpoint.gid must look like 0000:0000:0000:0000:0000:ffff:c612:0001")
    out = {"qpns": ep["qpns"], "psns": ep["psns"], "gid": gid,
           "mtu_bytes": field_int(ep, "mtu_bytes", 256, 4096), "rkey": field_int(ep, "rkey", 0, (1 << 32) - 1),
           "addr": field_int(ep, "addr", 0, (1 << 64) - 1), "mr_bytes": field_int(ep, "mr_bytes", 1, MAX_MR_BYTES),
           "slots": field_int(ep, "slots", 1, 1 << 16), "msg_bytes": field_int(ep, "msg_bytes", 1, MAX_MSG_BYTES),
           "max_dest_rd_atomic": field_int(ep, "max_dest_rd_atomic", 1, 255)}
    if out["mtu_bytes"] & (out["mtu_bytes"] - 1):
        raise ProtocolError("endpoint.mtu_bytes must be a power of two")
    return out


def validate_hello(msg: dict[str, Any]) -> dict[str, Any]:
    """The checked parameters of a hello, or ProtocolError naming the bad field."""
    op = msg.get("op")
    if op not in OPS:
        raise ProtocolError(f"field 'op' must be one of {OPS}, got {op!r}")
    hello = {"op": op, "msg_bytes": field_int(msg, "msg_bytes", 1, MAX_MSG_BYTES),
             "num_qps": field_int(msg, "num_qps", 1, MAX_QPS), "tx_depth": field_int(msg, "tx_depth", 1, MAX_DEPTH),
             "rx_depth": field_int(msg, "rx_depth", 1, MAX_DEPTH), "slots": field_int(msg, "slots", 1, 1 << 16)}
    run = msg.get("run_seconds_max")
    if not isinstance(run, (int, float)) or isinstance(run, bool) or not 0 < run <= MAX_RUN_SECONDS:
        raise ProtocolError(f"field 'run_seconds_max' must be a number in (0, {MAX_RUN_SECONDS:g}]")
    hello["run_seconds_max"] = float(run)
    if hello["msg_bytes"] * hello["slots"] * hello["num_qps"] > MAX_MR_BYTES:
        raise ProtocolError(f"asks for more than {MAX_MR_BYTES} bytes of registered memory")
    hello["endpoint"] = validate_endpoint(msg.get("endpoint"), hello["num_qps"])
    return hello


def parse_addr(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """'198.18.0.2', '198.18.0.2:18520', '[fd00::1]:18520' -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r}")
    p = int(port) if port else default_port
    if not 0 <= p <= 65535:
        raise ValueError(f"port {p} out of range")
    return host, p
