"""Real boots of the soft-RoCE guest (qemu, the Debian kernel, the host's userland). ~10-30 s each."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from results.store import Store
from rig.guest.cache import Cache
from rig.guest.prepare import ensure_prepared
from rig.guest.run import RunOptions, run_in_guest
from scenarios.errors import InputError

pytestmark = pytest.mark.guest
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache():
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
    c = Cache.at(None)
    try:
        ensure_prepared(c)
    except InputError as exc:
        pytest.skip(f"the guest cannot be prepared here: {exc}")
    return c


def test_true_exits_zero(cache, tmp_path):
    r = run_in_guest(["true"], ROOT, cache, RunOptions(boot_timeout_s=300, command_timeout_s=120),
                     store=tmp_path / "store.sqlite")
    assert r.status == "finished", f"{r.message}; console log {r.console_log}"
    assert r.exit_code == 0
    assert r.accel in ("tcg", "kvm") and r.rxe_uptime_s is not None
    assert r.records_ingested == 0 and not (tmp_path / "store.sqlite").exists()
    assert r.console_log.exists()


def test_cli_streams_the_commands_own_output_and_says_what_happens(cache, tmp_path):
    """Through the real command line: the command's stdout and stderr arrive intact and apart (lines
    that look like kernel messages included), progress lines name each step, exit status = the command's."""
    proc = subprocess.run([sys.executable, "-m", "rig.cli", "guest", "run", "--cache", str(cache.root), "--",
                           "sh", "-c", 'echo "[    0.1] from-guest-$RDMARIG_GUEST"; echo "[    0.2] err" >&2; false'],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "RDMARIG_STORE": str(tmp_path / "store.sqlite")})
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "[    0.1] from-guest-1\n"
    assert "\n[    0.2] err\n" in proc.stderr
    steps = ["under TCG" if "under TCG" in proc.stderr else "under KVM", "kernel up", "host root mounted",
             "rxe0/rxe1 ACTIVE", "running: sh -c", "command exited 1", "first output after"]
    positions = [proc.stderr.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), proc.stderr


def test_spooled_record_lands_in_the_host_store(cache, tmp_path):
    """...and says how much of its guest CPU time the host executed: a record timed over 2 s of one
    spinning vCPU gets the host's vCPU thread time and the guest's busy time over those seconds."""
    code = ("import os, time; from results.record import Record; from results.store import Store; "
            "from rig.guest import guest_stat; "
            "assert os.environ['RDMARIG_GUEST'] == '1' and guest_stat.start() is not None; "
            "rxe = open('/sys/class/infiniband/rxe0/ports/1/state').read().strip(); "
            "t = time.monotonic()\nwhile time.monotonic() - t < 3.0: pass\n"
            "Store().insert(Record(kind='measured', name='guest.selfcheck', "
            "params={'accel': os.environ['RDMARIG_GUEST_ACCEL'], 'rxe0_state': rxe}, "
            "summary={'payload_bytes': 1.0, 'seconds': 2.0, 'ended_unix_s': time.time()})); print('spooled')")
    out = []
    store = tmp_path / "store.sqlite"
    r = run_in_guest([sys.executable, "-c", code], ROOT, cache,
                     RunOptions(boot_timeout_s=300, command_timeout_s=120), store=store, on_output=out.append)
    assert r.status == "finished" and r.exit_code == 0, f"{r.message}; console log {r.console_log}"
    assert b"spooled\n" in b"".join(out)
    assert r.records_ingested == 1 and r.store == store
    (rec,) = Store(store).query(name="guest.selfcheck")
    assert rec.params["accel"] == r.accel
    assert rec.params["rxe0_state"] == "4: ACTIVE"
    assert not list((r.run_dir / "spool").glob("*.json"))
    ran = rec.provenance["guest_cpu_executed"]
    assert ran["window_s"] == 2.0
    assert 0.8 <= ran["guest_busy_cpu_per_s"] <= 1.5       # one vCPU spun (the other mostly idle)
    assert 0.3 <= ran["executed_cpu_per_s"] <= 2.0 and ran["executed_fraction"] > 0.3
