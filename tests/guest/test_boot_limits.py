"""The console follower and its time limits, driven by a stand-in for qemu (a Python script).

The real qemu is exercised by test_real_boot.py; these cover the cases a real guest cannot be made
to produce on demand (a hang at boot, a command that never ends) in well under a second each.
"""

import sys
import textwrap
import time

from rig.guest.boot import boot, parse_marker, split_line


def fake_qemu(tmp_path, body):
    script = tmp_path / "fake_qemu.py"
    script.write_text("import sys, time\nw = lambda s: (sys.stdout.write(s + '\\r\\n'), sys.stdout.flush())\n"
                      + textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_markers_and_output_are_told_apart():
    assert split_line(b"hello\r\n") == (b"hello\n", None)
    assert split_line(b"partialRDMARIG-GUEST: done rc=0 t=5.4\r\n") == (b"partial", "done rc=0 t=5.4")
    m = parse_marker("done rc=3 t=5.46", 9.0)
    assert (m.event, m.detail, m.uptime_s, m.host_s) == ("done", "rc=3", 5.46, 9.0)
    assert parse_marker("fatal cannot mount x t=1.0", 1).detail == "cannot mount x"


def test_command_output_is_forwarded_and_boot_chatter_is_not(tmp_path):
    cmd = fake_qemu(tmp_path, """
        w("[    0.1] Linux version 6.1"); w("RDMARIG-GUEST: userland t=2.0"); w("RDMARIG-GUEST: ready t=5.0")
        w("out 1"); w("[    6.1] rxe: kernel chatter"); w(""); w("out 2"); w("RDMARIG-GUEST: done rc=0 t=6.0")
        w("[    6.2] reboot: Power down")
    """)
    out = []
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 10, out.append)
    assert r.status == "finished" and r.qemu_returncode == 0
    assert out == [b"out 1\n", b"\n", b"out 2\n"]   # blank lines are output too
    assert [m.event for m in r.markers] == ["userland", "ready", "done"]
    assert b"Linux version" in (tmp_path / "console.log").read_bytes()


def test_boot_timeout_kills_the_guest(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("[    0.1] booting"); time.sleep(60)')
    t0 = time.monotonic()
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 1.0, 10)
    assert time.monotonic() - t0 < 10
    assert r.status == "boot-timeout" and "not ready within 1 s" in r.message
    assert r.console_tail == ["[    0.1] booting"] and r.qemu_returncode != 0


def test_command_timeout_kills_the_guest(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: ready t=1.0"); w("working"); time.sleep(60)')
    t0 = time.monotonic()
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 1.0)
    assert time.monotonic() - t0 < 10
    assert r.status == "command-timeout"


def test_panic_and_fatal_set_up_are_reported(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs")')
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 10)
    assert r.status == "crashed" and "Kernel panic" in r.message
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: fatal soft-RoCE set-up failed: ENOENT t=4.0")')
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 10)
    assert r.status == "fatal" and r.message == "guest failed: soft-RoCE set-up failed: ENOENT"


def test_ctrl_c_stops_the_guest_and_reports_it(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: ready t=1.0"); w("working"); time.sleep(60)')

    def ctrl_c(_):
        raise KeyboardInterrupt

    t0 = time.monotonic()
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 60, ctrl_c)
    assert time.monotonic() - t0 < 10
    assert r.status == "interrupted" and r.qemu_returncode != 0
