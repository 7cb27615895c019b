"""The two-host handshake refuses bad messages, keeps serving, never lets one client hold up
another (no RDMA needed: not marked rdma)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from rig.rdma import handshake as hs
from rig.launch.target import Limits
from rig.rdma.server import VerbsServer


def _hello(**over):
    msg = {"version": hs.VERSION, "type": "hello", "op": "write", "msg_bytes": 4096, "num_qps": 1, "tx_depth": 16,
           "rx_depth": 16, "slots": 1, "run_seconds_max": 30,
           "endpoint": {"qpns": [17], "psns": [5], "gid": "0000:0000:0000:0000:0000:ffff:c612:0001",
                        "mtu_bytes": 1024, "rkey": 1234, "addr": 4096, "mr_bytes": 4096, "slots": 1,
                        "msg_bytes": 4096, "max_dest_rd_atomic": 16}}
    msg.update(over)
    return msg


@pytest.fixture
def server():
    srv = VerbsServer("127.0.0.1", 0)
    stop = threading.Event()
    t = threading.Thread(target=srv.serve, kwargs={"stop": stop}, daemon=True)
    t.start()
    yield srv
    stop.set()
    t.join(5)
    srv.close()


def _wait_sessions(server, n, limit_s=15.0):
    """The server records a session after closing it, just after the client read the reply."""
    deadline = time.monotonic() + limit_s
    while len(server.sessions) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.sessions) >= n, server.sessions
    return server.sessions[n - 1]


def _exchange(server, payload: bytes, read=True):
    with socket.create_connection(server.address, timeout=15) as s:
        s.sendall(payload)
        if not read:
            return None
        s.settimeout(15)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data) if data else None


BAD = [
    (b"not json at all\n", "not a JSON message"),
    (b"[1, 2, 3]\n", "not a JSON object"),
    (json.dumps(_hello(version=99)).encode() + b"\n", "protocol version"),
    (json.dumps(_hello(type="start")).encode() + b"\n", "expected a hello"),
    (json.dumps(_hello(op="rm -rf /")).encode() + b"\n", "field 'op'"),
    (json.dumps(_hello(num_qps=10**9)).encode() + b"\n", "num_qps"),
    (json.dumps(_hello(msg_bytes=1 << 30, slots=64)).encode() + b"\n", "registered memory"),
    (json.dumps(_hello(run_seconds_max=1e9)).encode() + b"\n", "run_seconds_max"),
    (json.dumps(_hello(endpoint={"qpns": [1, 2]})).encode() + b"\n", "endpoint.qpns"),
    (json.dumps(_hello(endpoint={**_hello()["endpoint"], "gid": "$(reboot)"})).encode() + b"\n", "endpoint.gid"),
    (json.dumps(_hello(endpoint={**_hello()["endpoint"], "mtu_bytes": 1000})).encode() + b"\n", "power of two"),
    (json.dumps(_hello(tx_depth=True)).encode() + b"\n", "tx_depth"),
    (b"{\"a\": \"" + b"x" * (hs.MAX_MESSAGE_BYTES + 10) + b"\"}\n", "longer than"),
]


@pytest.mark.parametrize("payload,reason", BAD, ids=[r for _, r in BAD])
def test_bad_message_is_refused_and_server_keeps_serving(server, payload, reason):
    reply = _exchange(server, payload)
    assert reply["type"] == "error" and reason in reply["error"], reply
    assert _wait_sessions(server, 1)["result"] == "refused"
    # still serving: a well-formed hello gets past validation (on a host without RDMA it ends in
    # an error naming the device, inside the guest the server answers ready)
    reply = _exchange(server, json.dumps(_hello()).encode() + b"\n")
    assert reply["type"] in ("ready", "error"), reply
    if reply["type"] == "error":
        assert _wait_sessions(server, 2)["result"] == "error", server.sessions


def _silent_client(server):
    s = socket.create_connection(server.address, timeout=5)
    deadline = time.monotonic() + 5                # accepted: its session thread is running
    while server.active() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return s


def test_client_that_says_nothing_is_dropped_and_holds_up_no_one():
    """A client that connects and says nothing: the next client is answered at once, the silent
    one is dropped after the server's hello limit."""
    srv = VerbsServer("127.0.0.1", 0, limits=Limits(hello_s=3.0))
    stop = threading.Event()
    t = threading.Thread(target=srv.serve, kwargs={"stop": stop}, daemon=True)
    t.start()
    try:
        with _silent_client(srv) as silent:
            t0 = time.monotonic()
            reply = _exchange(srv, b"garbage\n")
            assert reply["type"] == "error" and time.monotonic() - t0 < 2.5    # not after the silent one
            silent.settimeout(10)
            assert silent.recv(100) == b""           # the server gave up on it and closed
            assert time.monotonic() - t0 < 8
        # the session thread records its result just after it closes the socket
        deadline = time.monotonic() + 10
        while len(srv.sessions) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert {x["result"] for x in srv.sessions} == {"refused", "gone"}
        gone = next(x for x in srv.sessions if x["result"] == "gone")
        assert "within 3 s" in gone["error"]
    finally:
        stop.set()
        t.join(10)
        srv.close()


def test_a_full_server_answers_busy_at_once():
    srv = VerbsServer("127.0.0.1", 0, max_concurrent=1, limits=Limits(hello_s=5.0))
    stop = threading.Event()
    t = threading.Thread(target=srv.serve, kwargs={"stop": stop}, daemon=True)
    t.start()
    try:
        with _silent_client(srv):
            t0 = time.monotonic()
            reply = _exchange(srv, json.dumps(_hello()).encode() + b"\n")
            assert reply["type"] == "error" and reply["error"].startswith("busy")
            assert time.monotonic() - t0 < 2.5
        # the slot is free again once the silent client left: served, not busy
        deadline = time.monotonic() + 10
        while srv.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        reply = _exchange(srv, b"garbage\n")
        assert reply["type"] == "error" and "not a JSON message" in reply["error"]
    finally:
        stop.set()
        t.join(10)
        srv.close()


def test_the_server_bounds_every_phase_by_its_own_limits():
    """The client's run_seconds_max is a request: the server caps it, and the silence limit
    (10 s, as docs/verbs.md says) applies whatever the client asked."""
    limits = Limits()
    assert limits.silence_s == 10.0 and limits.hello_s == 10.0 and limits.start_s == 10.0
    assert limits.run_limit(3600.0) == 3600.0 and Limits(run_s=60.0).run_limit(3600.0) == 60.0
    assert Limits(run_s=60.0).run_limit(5.0) == 5.0


def test_server_binds_only_the_given_address():
    srv = VerbsServer("127.0.0.1", 0)
    try:
        assert srv.address[0] == "127.0.0.1"
    finally:
        srv.close()
    from scenarios.errors import InputError
    with pytest.raises(InputError, match="--bind"):
        VerbsServer("", 0)
    with pytest.raises(InputError, match="cannot listen"):
        VerbsServer("198.51.100.7", 0)      # not an address of this host (TEST-NET-2, never configured)


def test_parse_addr():
    assert hs.parse_addr("198.18.0.2") == ("198.18.0.2", hs.DEFAULT_PORT)
    assert hs.parse_addr("198.18.0.2:9000") == ("198.18.0.2", 9000)
    assert hs.parse_addr("[fd00::1]:9000") == ("fd00::1", 9000)
    with pytest.raises(ValueError):
        hs.parse_addr(":9000")


def test_round_trip_of_a_valid_hello():
    line = json.dumps(_hello()).encode()
    hello = hs.validate_hello(hs.parse(line, "hello"))
    assert hello["endpoint"]["qpns"] == [17] and hello["op"] == "write"
