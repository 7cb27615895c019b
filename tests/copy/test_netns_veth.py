"""The veth pair between two namespaces: created, used, removed (also after a Ctrl-C)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.copy import netns, sources, transfer

pytestmark = pytest.mark.netns
ROOT = Path(__file__).resolve().parents[2]


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_SYS_ADMIN)")
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        pytest.skip("iproute2 `ip` is missing")


def test_veth_create_transfer_cleanup():
    _need_root()
    pair = netns.VethPair()
    src = sources.open_source("tmpfs", 1 << 20)
    try:
        pair.create()
        assert {pair.tx_ns, pair.rx_ns} <= set(netns.list_ours())
        assert pair.describe()["mtu_bytes"] == 1500
        total = (2 << 20) + 123
        raw = transfer.run("sendfile", src, 256 << 10, via="veth", veth=pair, total_bytes=total, verify=True)
        assert raw["received"]["bytes"] == total
        assert raw["received"]["crc32"] == src.stream_crc32(total)
    finally:
        src.close()
        pair.destroy()
    assert not {pair.tx_ns, pair.rx_ns} & set(netns.list_ours())


def test_stale_namespaces_of_dead_runs_are_removed():
    _need_root()
    dead_pid = 4_000_000  # above pid_max, never alive
    name = f"rdmarig-tx-{dead_pid}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in netns.remove_stale()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert name not in netns.list_ours()


def _count(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=1) as db:
            return db.execute("select count(*) from records").fetchone()[0]
    except sqlite3.Error:
        return 0


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def test_interrupt_cleans_namespaces_and_keeps_records(tmp_path):
    _need_root()
    store = tmp_path / "r.sqlite"
    # a session of its own, so the Ctrl-C goes to the whole process group as a terminal sends it:
    # the probe's sender and receiver children get it too. SIGINT at its default, as under a terminal:
    # a shell's background job (a CI started with `&`) ignores it, and an ignored SIGINT is inherited
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.cli", "measure", "copy", "--probe", "socket", "--via", "veth",
         "--paths", "sendfile", "--sizes", "64KiB,256KiB,1MiB,2MiB,4MiB,8MiB", "--repetitions", "1",
         "--duration", "0.3s", "--store", str(store)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 90  # generous: the host tier shares two busy cores
    while time.monotonic() < deadline and proc.poll() is None:  # wait for the first completed configuration
        if _count(store):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "kept" in err and "Traceback" not in err, err
    assert not [n for n in netns.list_ours() if n.endswith(f"-{proc.pid}")], err
    deadline = time.monotonic() + 30  # children the parent terminated may take a moment to be reaped
    while _session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _session_members(proc.pid), "child processes outlived the interrupted run"
    from results.store import Store
    with Store(store) as st:
        kept = st.query(name="copy.socket")
    assert kept and all(r.params["via"] == "veth" for r in kept), err
