from pathlib import Path

import pytest

from rig.guest import qemu
from rig.guest.run import guest_env, read_nul_file, write_nul_file
from scenarios.errors import InputError

SHARES = [qemu.Share("hostroot", Path("/"), True), qemu.Share("kmods", Path("/c/kernel/lib/modules"), True),
          qemu.Share("run", Path("/c/runs/1"), False), qemu.Share("project", Path("/c"), False)]


def test_qemu_command_has_no_network_and_the_shares():
    cmd = qemu.command("/usr/bin/qemu-system-x86_64", "tcg", 2, 2048, Path("/c/vmlinuz"), Path("/c/initramfs.gz"),
                       SHARES)
    assert cmd[0] == "/usr/bin/qemu-system-x86_64"
    assert cmd[cmd.index("-nic") + 1] == "none"
    assert cmd[cmd.index("-accel") + 1] == "tcg,thread=multi" and cmd[cmd.index("-cpu") + 1] == "max"
    assert cmd[cmd.index("-smp") + 1] == "2" and cmd[cmd.index("-m") + 1] == "2048M"
    assert "-no-reboot" in cmd
    virtfs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-virtfs"]
    assert "local,path=/,mount_tag=hostroot,security_model=none,multidevs=remap,readonly=on" in virtfs
    assert any("mount_tag=project" in v and "readonly" not in v for v in virtfs)
    append = cmd[cmd.index("-append") + 1].split()
    assert {"console=ttyS0", "quiet", "loglevel=4", "panic=-1"} <= set(append)
    # read-write shares only, parents mounted before children
    assert "rdmarig_mounts=project:/c,run:/c/runs/1" in append


def test_host_paths_bound_in_are_mounted_in_depth_order_with_the_shares():
    cmd = qemu.command("q", "tcg", 1, 512, Path("/k"), Path("/i"), SHARES, binds=(Path("/tmp/venv"),))
    append = cmd[cmd.index("-append") + 1].split()
    assert "rdmarig_mounts=project:/c,host:/tmp/venv,run:/c/runs/1" in append
    assert not any("/tmp/venv" in a for a in cmd if a.startswith("local,"))   # no extra 9p device


def test_kvm_command_uses_the_host_cpu():
    cmd = qemu.command("q", "kvm", 1, 512, Path("/k"), Path("/i"), SHARES)
    assert cmd[cmd.index("-accel") + 1] == "kvm" and cmd[cmd.index("-cpu") + 1] == "host"


def test_paths_the_kernel_command_line_cannot_carry_are_refused():
    qemu.check_share_path(Path("/work/wt-guest"), "cwd")
    for bad in ("/a b", "/a,b", "/a:b", "/a'b", "relative"):
        with pytest.raises(InputError):
            qemu.check_share_path(Path(bad), "cwd")


def test_cpu_virtualisation_flags():
    assert qemu.cpu_has_virt("processor: 0\nflags\t\t: fpu vme svm sse\n")
    assert not qemu.cpu_has_virt("processor: 0\nflags\t\t: fpu vme hypervisor sse\n")


def test_accel_verdict_is_cached_per_kernel(tmp_path):
    path = tmp_path / "accel.json"
    qemu.write_verdict(path, "k1", "tcg", "test boot failed")
    assert qemu.read_verdict(path, "k1")["accel"] == "tcg"
    assert qemu.read_verdict(path, "k2") is None


def test_guest_env_passes_python_setup_and_sets_the_guest_variables():
    host = {"PATH": "/root/.pyenv/shims:/usr/bin:/bin", "PYTHONPATH": "/p", "VIRTUAL_ENV": "/v",
            "PYENV_VERSION": "3.11.7", "LC_ALL": "C.UTF-8", "RDMARIG_STORE": "/host/store.sqlite",
            "RDMARIG_SPOOL": "/old", "RDMARIG_VERBOSE": "1", "SSH_AUTH_SOCK": "/tmp/ssh", "DISPLAY": ":0"}
    env = guest_env(host, "tcg", Path("/c/runs/1/spool"), {"EXTRA": "x"})
    assert env["PATH"].startswith("/root/.pyenv/shims:/usr/bin:/bin") and "/usr/sbin" in env["PATH"]
    assert env["PYTHONPATH"] == "/p" and env["VIRTUAL_ENV"] == "/v" and env["PYENV_VERSION"] == "3.11.7"
    assert env["RDMARIG_GUEST"] == "1" and env["RDMARIG_GUEST_ACCEL"] == "tcg"
    assert env["RDMARIG_SPOOL"] == "/c/runs/1/spool"
    assert env["RDMARIG_GUEST_RXE"] == "rxe0=198.18.0.1,rxe1=198.18.0.2"
    assert env["RDMARIG_VERBOSE"] == "1" and env["EXTRA"] == "x"
    assert "RDMARIG_STORE" not in env and "SSH_AUTH_SOCK" not in env and "DISPLAY" not in env


def test_nul_files_carry_any_argument(tmp_path):
    args = ["python", "-c", "print('a b\\n c')", "", "x=y", "ü"]
    write_nul_file(tmp_path / "argv", args)
    assert read_nul_file(tmp_path / "argv") == args
    with pytest.raises(InputError):
        write_nul_file(tmp_path / "argv", ["a\0b"])
