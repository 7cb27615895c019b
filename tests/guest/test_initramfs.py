import os
import shutil
import stat
import subprocess

import pytest

from rig.guest import cpio, initramfs

DEP = """kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/net/veth.ko:
"""


@pytest.fixture
def modules_dir(tmp_path):
    d = tmp_path / "lib/modules/6.1.0-57-amd64"
    for line in DEP.splitlines():
        ko = d / line.split(":")[0]
        ko.parent.mkdir(parents=True, exist_ok=True)
        ko.write_bytes(b"ELF" + ko.name.encode())
    (d / "modules.dep").write_text(DEP)
    return d


def test_cpio_round_trip():
    items = [cpio.directory("bin"), cpio.file("bin/x", b"abc", executable=True), cpio.char_device("dev/console", 5, 1),
             cpio.file("odd", b"12345")]
    back = cpio.unpack(cpio.pack_gzip(items))
    assert back == items


def test_initramfs_holds_init_busybox_and_early_modules_in_order(tmp_path, modules_dir):
    busybox = tmp_path / "busybox"
    busybox.write_bytes(b"\x7fELF busybox")
    dest = tmp_path / "initramfs.gz"
    digest = initramfs.build(busybox, modules_dir, dest)
    assert len(digest) == 64
    files = {e.name: e for e in cpio.unpack(dest.read_bytes())}
    assert files["bin/busybox"].data == b"\x7fELF busybox"
    assert files["init"].mode & stat.S_IXUSR and files["init"].data.startswith(b"#!/bin/busybox sh")
    assert stat.S_ISCHR(files["dev/console"].mode) and files["dev/console"].rdev == (5, 1)
    order = files["mods/order"].data.decode().split()
    assert order.index("virtio_ring.ko") < order.index("virtio.ko") < order.index("virtio_pci.ko")
    assert order.index("9pnet.ko") < order.index("9pnet_virtio.ko")
    assert set(order) == {"virtio_ring.ko", "virtio.ko", "virtio_pci.ko", "9pnet.ko", "9pnet_virtio.ko",
                          "9p.ko", "overlay.ko"}     # veth loads later, from the shared tree
    assert all(f"mods/{m}" in files for m in order)
    # directories come before what they contain: the kernel unpacks in order
    names = list(files)
    assert names.index("bin") < names.index("bin/busybox") and names.index("mods") < names.index("mods/order")


def test_init_forwards_modprobe_into_the_chroot():
    init = initramfs.init_script()
    assert "exec chroot /newroot /sbin/modprobe" in init
    assert "/proc/sys/kernel/modprobe" in init
    assert "@" not in init.replace('"$@"', "")     # every placeholder filled


def test_stage2_builds_rxe_on_the_veth_pair():
    s2 = initramfs.stage2_script()
    assert "rdma link add rxe0 type rxe netdev veth0" in s2
    assert "rdma link add rxe1 type rxe netdev veth1" in s2
    assert "\naddr add 198.18.0.1/24 dev veth0\n" in s2 and "\naddr add 198.18.0.2/24 dev veth1\n" in s2
    assert "\nrule add pref 100 lookup local\nrule del pref 0\n" in s2 and "rp_filter=0" in s2


@pytest.mark.skipif(not shutil.which("bash"), reason="bash not installed")
def test_scripts_parse(tmp_path):
    (tmp_path / "stage2").write_text(initramfs.stage2_script())
    assert subprocess.run(["bash", "-n", str(tmp_path / "stage2")]).returncode == 0
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox not installed: cannot syntax-check the init script")
    (tmp_path / "init").write_text(initramfs.init_script())
    assert subprocess.run([busybox, "sh", "-n", str(tmp_path / "init")]).returncode == 0


@pytest.mark.skipif(not shutil.which("bash"), reason="bash not installed")
def test_rxe_set_up_stops_at_the_first_failure(tmp_path):
    """The set-up function under bash with stand-in commands (only they are on PATH, so nothing
    touches this host): modprobe "succeeds" with only a warning, as modprobe -a does for a missing
    module, and the set-up must stop there with a readable last line instead of carrying on."""
    stage2 = initramfs.stage2_script()
    body = stage2[stage2.index("setup_rxe() {"):stage2.index("\n}\n") + 3]
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    for name in ("modprobe", "ip", "sysctl", "rdma", "sleep"):
        (stubs / name).write_text(f"#!/bin/bash\necho {name} \"$@\" >> {calls}\n")
        (stubs / name).chmod(0o755)
    if os.path.isdir("/sys/module/rdma_rxe"):
        pytest.skip("this host has rdma_rxe loaded: the stand-in modprobe cannot simulate its absence")
    proc = subprocess.run([shutil.which("bash"), "-c", body + "(setup_rxe); echo rc=$?"], capture_output=True,
                          text=True, env={"PATH": str(stubs)}, timeout=30)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if not ln.startswith("+")]
    assert "rc=1" in proc.stdout
    assert "the rdma_rxe module did not load" in lines
    assert calls.read_text().splitlines() == ["modprobe -a rdma_rxe veth"]    # nothing after it ran


def run_stage2(tmp_path, argv, streams):
    """stage2 on this host with the soft-RoCE set-up off: it only runs the command as the guest would."""
    run = tmp_path / "run"
    run.mkdir()
    for name, items in (("argv", argv), ("env", ["PATH=/usr/bin:/bin", "LC_ALL=C"])):
        (run / name).write_bytes(b"".join(i.encode() + b"\0" for i in items))
    (run / "cwd").write_text(str(tmp_path))
    (run / "rxe").write_text("off")
    (run / "streams").write_text(streams)
    (tmp_path / "stage2").write_text(initramfs.stage2_script())
    console = subprocess.run(["bash", str(tmp_path / "stage2"), str(run)], capture_output=True, timeout=60)
    return console, run


COMMAND = ["sh", "-c", 'echo "[    0.1] out"; echo "[    0.2] err" >&2; printf "no newline"; exit 3']


@pytest.mark.skipif(not shutil.which("bash"), reason="bash not installed")
@pytest.mark.parametrize("streams, stdout, stderr", [
    ("split", b"[    0.1] out\nno newline", b"[    0.2] err\n"),
    ("merged", b"[    0.1] out\n[    0.2] err\nno newline", b""),
])
def test_stage2_writes_the_commands_output_to_files_and_only_markers_to_the_console(tmp_path, streams, stdout,
                                                                                    stderr):
    console, run = run_stage2(tmp_path, COMMAND, streams)
    assert (run / "stdout").read_bytes() == stdout
    assert ((run / "stderr").read_bytes() if (run / "stderr").exists() else b"") == stderr
    marks = [ln.split()[1] for ln in console.stdout.decode().splitlines()]
    assert marks == ["ready", "done"], console
    assert b"rc=3" in console.stdout and (run / "rc").read_text().strip() == "3" and console.returncode == 3


@pytest.mark.skipif(not os.path.exists("/usr/bin/script"), reason="script(1) (bsdutils) not installed")
def test_stage2_gives_the_command_a_terminal_when_the_host_has_one(tmp_path):
    console, run = run_stage2(tmp_path, ["sh", "-c", "test -t 1 && test -t 2 && echo on a tty; exit 4"], "tty")
    assert (run / "stdout").read_bytes() == b"on a tty\r\n"
    assert (run / "rc").read_text().strip() == "4"
