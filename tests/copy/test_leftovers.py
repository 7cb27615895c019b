"""What a killed run leaves behind (kill -9 runs no cleanup) is removed by the next run of any kind."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rig.copy import netns, pagecopy, runs, sources

ROOT = Path(__file__).resolve().parents[2]
DEAD_PID = 4_000_000  # above pid_max: never a live process


def _leftovers(pid: int) -> list[str]:
    files = [p.name for p in sources.TMPFS_DIR.glob(f"{sources.FILE_PREFIX}{pid}-*")]
    return files + [n for n in netns.list_ours() if n.endswith(f"-{pid}")]


def test_sigkilled_socket_run_is_cleaned_up_by_a_fault_run(tmp_path, run_cli):
    root = os.geteuid() == 0
    via = "veth" if root else "loopback"  # namespaces need root; the source file does not
    store = tmp_path / "r.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.cli", "measure", "copy", "--probe", "socket", "--via", via, "--source", "tmpfs",
         "--paths", "sendfile", "--sizes", "64KiB", "--repetitions", "100", "--duration", "0.2s",
         "--store", str(store)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        want = 3 if root else 1  # source file (+ both namespaces)
        deadline = time.monotonic() + 90  # generous: the host tier shares two busy cores
        while len(_leftovers(proc.pid)) < want and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its sender/receiver children, no cleanup
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = _leftovers(proc.pid)
    assert len(left) == want, left  # kill -9 left them: the cleanup below is the next run's

    result = run_cli("measure", "copy", "--probe", "fault", "--sizes", "64KiB", "--repetitions", "1",
                     "--store", str(tmp_path / "other.sqlite"))
    assert result.code == 0, result.err
    assert not _leftovers(proc.pid)
    assert "removed what killed runs left behind" in result.err
    for name in left:
        assert name in result.err


def test_leftovers_of_every_kind_of_a_dead_pid_are_removed(tmp_path):
    shm = sources.TMPFS_DIR / f"{sources.FILE_PREFIX}{DEAD_PID}-test"
    disk = sources.disk_dir_or_none() / f"{sources.FILE_PREFIX}{DEAD_PID}-test"
    mount_point = Path(tempfile.gettempdir()) / f"{pagecopy.DIR_PREFIX}{DEAD_PID}-test"
    live = sources.TMPFS_DIR / f"{sources.FILE_PREFIX}{os.getpid()}-test"  # ours: alive, kept
    namespace = f"rdmarig-rx-{DEAD_PID}"
    for path in (shm, disk, live):
        path.write_bytes(b"x")
    mount_point.mkdir()
    made_ns = os.geteuid() == 0 and subprocess.run(["ip", "netns", "add", namespace]).returncode == 0
    try:
        removed = runs.remove_leftovers()
        assert {str(shm), str(disk), str(mount_point)} <= set(removed)
        assert not shm.exists() and not disk.exists() and not mount_point.exists()
        assert live.exists() and str(live) not in removed
        if made_ns:
            assert f"network namespace {namespace}" in removed and namespace not in netns.list_ours()
    finally:
        for path in (shm, disk, live):
            path.unlink(missing_ok=True)
        if mount_point.exists():
            mount_point.rmdir()
        if made_ns:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
