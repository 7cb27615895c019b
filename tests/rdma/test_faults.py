"""Faults with a real device: a bad rkey gives a completion error reported by name; a peer
that never answers gives an error within the time limit; resources are released."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from rig.rdma.connect import loopback
from rig.rdma.measure import PeerError, VerbsOptions, run_point
from rig.rdma.resources import PlayerConfig
from rig.rdma.traffic import CompletionError, LoopParams, PollTimeout, run_bw
from scenarios.errors import InputError

pytestmark = pytest.mark.rdma


def test_bad_rkey_is_a_named_completion_error(rdma_devices):
    cfg = PlayerConfig(msg_bytes=4096, num_qps=1, tx_depth=8)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        remote = b.endpoint()
        remote["rkey"] ^= 0x5A5A00      # not a key the target ever handed out
        with pytest.raises(CompletionError) as info:
            run_bw(a, remote, LoopParams(op="write", msg_bytes=4096, iterations=8, tx_depth=8, cq_mod=4,
                                         timeout_s=20))
        err = info.value
        assert err.status_name.startswith("IBV_WC_") and err.status_name != "IBV_WC_SUCCESS"
        assert err.status_name in str(err)
        assert err.wr["rkey"] == hex(remote["rkey"]) and err.wr["op"] == "write"
    finally:
        a.close()
        b.close()
    assert a.qps == [] and a.ctx is None        # released


def test_unknown_device_and_gid_are_input_errors(rdma_devices):
    with pytest.raises(InputError, match="not found"):
        run_point(VerbsOptions(sizes=[4096], device="nosuchdev0"), 4096)
    with pytest.raises(InputError, match="GID index"):
        run_point(VerbsOptions(sizes=[4096], device=rdma_devices[0], gid_index=250), 4096)


def test_silent_peer_times_out(rdma_devices):
    """A TCP peer that accepts but never answers: PeerError within the limit, no hang."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    held = []
    t = threading.Thread(target=lambda: held.append(srv.accept()), daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(PeerError, match="no message"):
            run_point(VerbsOptions(sizes=[4096], peer_addr=f"127.0.0.1:{port}", iterations=10, timeout_s=1), 4096)
    finally:
        srv.close()
        for conn, _ in held:
            conn.close()
    assert time.monotonic() - t0 < 60


def _serve_in_thread(device):
    from rig.rdma.server import VerbsServer
    server = VerbsServer("127.0.0.1", 0, device=device)
    stop = threading.Event()
    t = threading.Thread(target=server.serve, kwargs={"stop": stop}, daemon=True)
    t.start()
    return server, stop, t


@pytest.mark.parametrize("op", ["write", "read", "send"])
def test_two_host_mode_through_serve(two_devices, op):
    """`rdmarig serve` on the second device, the client on the first: handshake, run, peer CPU, SHA-256."""
    server, stop, t = _serve_in_thread(two_devices[1])
    try:
        host, port = server.address
        point = run_point(VerbsOptions(op=op, sizes=[8192], num_qps=2, iterations=40, tx_depth=16, cq_mod=8,
                                       device=two_devices[0], peer_addr=f"{host}:{port}"), 8192)
    finally:
        stop.set()
        t.join(5)
        server.close()
    s = point["summary"]
    assert s["integrity_ok"] and s["wrs"] == 80
    assert "peer_cpu_total_s_per_gb" in s
    assert server.sessions and server.sessions[-1]["result"] == "ok", server.sessions


def test_peer_dies_mid_run(two_devices, tmp_path):
    """Kill `rdmarig serve` during a duration run: an error (completion error, completion time-out
    or peer gone) well before the 60 s run would have ended, no hang."""
    import subprocess
    import sys
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "rig.cli", "serve", "--bind", "127.0.0.1", "--port", str(port),
                             "--device", two_devices[1]], stderr=subprocess.PIPE, text=True)
    try:
        assert "listening" in proc.stderr.readline()
        killer = threading.Timer(4.0, proc.kill)
        killer.start()
        t0 = time.monotonic()
        with pytest.raises((CompletionError, PollTimeout, PeerError)) as info:
            run_point(VerbsOptions(op="write", sizes=[4096], duration_s=60, tx_depth=16, cq_mod=8, timeout_s=5,
                                   device=two_devices[0], peer_addr=f"127.0.0.1:{port}"), 4096)
        assert time.monotonic() - t0 < 40, info.value
        if isinstance(info.value, CompletionError):
            assert info.value.status_name in ("IBV_WC_RETRY_EXC_ERR", "IBV_WC_REM_ACCESS_ERR", "IBV_WC_REM_OP_ERR",
                                              "IBV_WC_WR_FLUSH_ERR", "IBV_WC_RNR_RETRY_EXC_ERR")
    finally:
        proc.kill()
        proc.wait(10)


def test_memlock_limit_is_reported(rdma_devices):
    """Without CAP_IPC_LOCK and with `ulimit -l 1024`, an 8 MiB run stops with one line naming the
    limit, the need and `ulimit -l` (exit 2), before any registration fails with a bare ENOMEM."""
    import shutil
    import subprocess
    import sys
    if shutil.which("capsh") is None or os.geteuid() != 0:
        pytest.skip("needs root and capsh (libcap2-bin) to drop CAP_IPC_LOCK")
    cmd = f"ulimit -l 1024; exec {sys.executable} -m rig.cli measure verbs --size 8MiB -n 10 --no-store"
    out = subprocess.run(["capsh", "--drop=cap_ipc_lock", "--", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "RLIMIT_MEMLOCK" in out.stderr and "ulimit -l" in out.stderr and "Traceback" not in out.stderr


def test_depth_beyond_the_device_is_an_input_error(rdma_devices):
    with pytest.raises(InputError, match="allows at most"):
        run_point(VerbsOptions(sizes=[4096], device=rdma_devices[0], tx_depth=1 << 24, cq_mod=1), 4096)
