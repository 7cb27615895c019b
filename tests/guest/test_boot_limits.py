"""The console follower and its time limits, driven by a stand-in for qemu (a Python script).

The real qemu is exercised by test_real_boot.py; these cover the cases a real guest cannot be made
to produce on demand (a hang at boot, a command that never ends) in well under a second each.
"""

import sys
import textwrap
import time

import pytest

from rig.cli import Terminated, interrupt_exit_code
from rig.guest.boot import boot, parse_marker, split_line


def fake_qemu(tmp_path, body):
    """A stand-in for qemu: w() prints a console line; out()/err() append to the command's output
    files, as stage2 does in the guest."""
    script = tmp_path / "fake_qemu.py"
    (tmp_path / "stdout").touch()
    (tmp_path / "stderr").touch()
    script.write_text("import sys, time\nw = lambda s: (sys.stdout.write(s + '\\r\\n'), sys.stdout.flush())\n"
                      f"def out(s, name='stdout'):\n    with open({str(tmp_path)!r} + '/' + name, 'a') as f: f.write(s)\n"
                      "err = lambda s: out(s, 'stderr')\n"
                      + textwrap.dedent(body))
    return [sys.executable, str(script)]


def test_markers_and_output_are_told_apart():
    assert split_line(b"hello\r\n") == (b"hello\n", None)
    assert split_line(b"partialRDMARIG-GUEST: done rc=0 t=5.4\r\n") == (b"partial", "done rc=0 t=5.4")
    m = parse_marker("done rc=3 t=5.46", 9.0)
    assert (m.event, m.detail, m.uptime_s, m.host_s) == ("done", "rc=3", 5.46, 9.0)
    assert parse_marker("fatal cannot mount x t=1.0", 1).detail == "cannot mount x"


def test_the_commands_output_arrives_intact_as_written_and_the_kernels_does_not_mix_in(tmp_path):
    """Lines that look like kernel messages are the command's own; a partial line is passed on
    before the command goes on; the kernel's console lines stay in console.log."""
    cmd = fake_qemu(tmp_path, """
        w("[    0.1] Linux version 6.1"); w("RDMARIG-GUEST: kernel t=1.0"); w("RDMARIG-GUEST: ready t=5.0")
        out("[    0.1] the command's own line\\n"); err("[    0.2] its stderr\\n"); out("progress ...")
        time.sleep(0.6)
        w("[    6.1] rxe: kernel chatter"); out(" done\\n\\n"); w("RDMARIG-GUEST: done rc=0 t=6.0")
        w("[    6.2] reboot: Power down")
    """)
    t0 = time.monotonic()
    out, err, when = [], [], []
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 10,
             [(tmp_path / "stdout", lambda b: (out.append(b), when.append(time.monotonic() - t0))),
              (tmp_path / "stderr", err.append)])
    assert r.status == "finished" and r.qemu_returncode == 0
    assert b"".join(out) == b"[    0.1] the command's own line\nprogress ... done\n\n"
    assert b"".join(err) == b"[    0.2] its stderr\n"
    assert b"progress ..." in b"".join(out[:-1]), out     # passed on before the rest was written
    assert when[-1] - when[0] > 0.3
    assert [m.event for m in r.markers] == ["kernel", "ready", "done"]
    console = (tmp_path / "console.log").read_bytes()
    assert b"Linux version" in console and b"rxe: kernel chatter" in console and b"own line" not in console
    assert r.kernel_lines == 1 and r.first_output_s is not None


def test_silence_is_reported_while_booting_and_until_the_first_output(tmp_path):
    cmd = fake_qemu(tmp_path, """
        time.sleep(0.5); w("RDMARIG-GUEST: ready t=1.0"); time.sleep(0.5); out("hello\\n"); time.sleep(0.5)
        w("RDMARIG-GUEST: done rc=0 t=2.0")
    """)
    waits = []
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 10, [(tmp_path / "stdout", lambda b: None)],
             on_wait=lambda phase, s: waits.append(phase), quiet_s=0.2)
    assert r.status == "finished"
    assert "boot" in waits and "command" in waits
    assert waits == sorted(waits, key=["boot", "command"].index) and len(waits) <= 6   # none after "hello"


def test_a_reader_that_fails_stops_the_guest(tmp_path):
    """`guest run ... | head -1`: the host's stdout closes; qemu must not run on unattended."""
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: ready t=1.0"); out("x\\n"); time.sleep(60)')

    def closed(_):
        raise BrokenPipeError

    t0 = time.monotonic()
    with pytest.raises(BrokenPipeError):
        boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 60, [(tmp_path / "stdout", closed)])
    assert time.monotonic() - t0 < 10


def test_boot_timeout_kills_the_guest(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("[    0.1] booting"); time.sleep(60)')
    t0 = time.monotonic()
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 1.0, 10)
    assert time.monotonic() - t0 < 10
    assert r.status == "boot-timeout" and "not ready within 1 s" in r.message
    assert r.console_tail == ["[    0.1] booting"] and r.qemu_returncode != 0


def test_command_timeout_kills_the_guest(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: ready t=1.0"); out("working\\n"); time.sleep(60)')
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
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: ready t=1.0"); out("working\\n"); time.sleep(60)')

    def ctrl_c(_):
        raise KeyboardInterrupt

    t0 = time.monotonic()
    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 60, [(tmp_path / "stdout", ctrl_c)])
    assert time.monotonic() - t0 < 10
    assert r.status == "interrupted" and r.qemu_returncode != 0
    assert interrupt_exit_code(r.interrupt) == 130


def test_sigterm_stops_the_guest_and_exits_143(tmp_path):
    cmd = fake_qemu(tmp_path, 'w("RDMARIG-GUEST: ready t=1.0"); out("working\\n"); time.sleep(60)')

    def sigterm(_):
        raise Terminated

    r = boot(cmd, tmp_path / "console.log", tmp_path / "err", 10, 60, [(tmp_path / "stdout", sigterm)])
    assert r.status == "interrupted" and interrupt_exit_code(r.interrupt) == 143
