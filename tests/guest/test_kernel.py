import gzip
import lzma
import struct

import pytest

from rig.guest import hostcheck, kernel
from rig.guest.modules import load_order, module_name, parse_modules_dep
from scenarios.errors import InputError

DEPENDS = """linux-image-amd64
  Depends: linux-image-6.1.0-57-amd64
"""


def test_kernel_package_from_apt_cache_depends():
    assert kernel.parse_kernel_package(DEPENDS) == "linux-image-6.1.0-57-amd64"
    assert kernel.kernel_version("linux-image-6.1.0-57-amd64") == "6.1.0-57-amd64"


def test_cloud_flavour_and_noise_are_not_taken():
    text = "linux-image-amd64\n  Depends: linux-image-6.1.0-9-cloud-amd64\n  Recommends: firmware-linux\n"
    assert kernel.parse_kernel_package(text) is None
    assert kernel.parse_kernel_package("") is None
    assert kernel.parse_kernel_package("E: No packages found\n") is None


def test_only_the_needed_files_are_extracted():
    v = "6.1.0-57-amd64"
    keep = [f"boot/vmlinuz-{v}", f"lib/modules/{v}/modules.order",
            f"lib/modules/{v}/kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko",
            f"lib/modules/{v}/kernel/drivers/net/veth.ko", f"lib/modules/{v}/kernel/fs/9p/9p.ko",
            f"lib/modules/{v}/kernel/net/ipv6/ip6_udp_tunnel.ko", f"lib/modules/{v}/kernel/crypto/crc32_generic.ko",
            f"lib/modules/{v}/kernel/arch/x86/crypto/crc32-pclmul.ko"]
    drop = [f"boot/System.map-{v}", f"lib/modules/{v}/kernel/drivers/net/ethernet/intel/e1000e/e1000e.ko",
            f"lib/modules/{v}/kernel/fs/ext4/ext4.ko", "lib/modules/6.1.0-1-amd64/kernel/fs/9p/9p.ko",
            "usr/share/doc/linux-image/changelog.gz", f"lib/modules/{v}/kernel/net/ipv4/udp_diag.ko"]
    assert all(kernel.wanted_member(n, v) for n in keep)
    assert not any(kernel.wanted_member(n, v) for n in drop)


def test_merged_usr_paths_are_normalised():
    assert kernel._normalise("./usr/lib/modules/x/kernel/a.ko") == "lib/modules/x/kernel/a.ko"
    assert kernel._normalise("./boot/vmlinuz-x") == "boot/vmlinuz-x"


def test_dpkg_status_parsing():
    text = "kmod installed\nperftest not-installed\nqemu-system-x86:amd64 installed\nrdma-core config-files\n"
    assert hostcheck.parse_dpkg_status(text) == {"kmod", "qemu-system-x86"}
    assert hostcheck.apt_install_line(["a", "b"]) == "apt-get install -y --no-install-recommends a b"


DEP = """kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/9p/9p.ko: kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko kernel/net/9p/9pnet.ko
kernel/net/9p/9pnet.ko:
kernel/arch/x86/crypto/crc32-pclmul.ko:
"""


def test_modules_load_after_their_dependencies():
    table = parse_modules_dep(DEP)
    assert module_name("kernel/arch/x86/crypto/crc32-pclmul.ko") == "crc32_pclmul"
    order = load_order(table, ["9p", "fscache"])
    assert order[-1] == "kernel/fs/9p/9p.ko"
    assert order.index("kernel/fs/netfs/netfs.ko") < order.index("kernel/fs/fscache/fscache.ko")
    assert len(order) == len(set(order)) == 4
    assert load_order(table, ["crc32-pclmul"]) == ["kernel/arch/x86/crypto/crc32-pclmul.ko"]
    with pytest.raises(KeyError):
        load_order(table, ["rdma_rxe"])


def test_kernel_package_not_found_after_update_is_one_clear_error(monkeypatch):
    from rig.guest import prepare

    updates = []
    monkeypatch.setattr(kernel, "resolve_package", lambda: None)
    monkeypatch.setattr(kernel, "apt_update", lambda: updates.append(1))
    with pytest.raises(InputError, match="kernel package not found") as exc:
        prepare._resolve(lambda _: None)
    assert updates == [1] and "apt-get update" in exc.value.fix


def test_the_real_package_index_names_a_kernel_with_rxe():
    """On a Debian host: the name resolution against the real apt index."""
    import shutil
    if not shutil.which("apt-cache"):
        pytest.skip("apt-cache not installed (not a Debian host)")
    package = kernel.resolve_package()
    if package is None:
        pytest.skip("the apt index names no linux-image-amd64 target (apt-get update not run)")
    assert package.startswith("linux-image-") and package.endswith("-amd64") and "cloud" not in package


def elf_with_note(note_type: int) -> bytes:
    """A minimal ELF64 image: header, one PT_NOTE program header, one note "Xen" of `note_type`."""
    note = struct.pack("<III", 4, 4, note_type) + b"Xen\0" + b"\x00\x00\x00\x01"
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, 64, 0, 0, 64, 56, 1,
                                                              0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, 120, 0, 0, len(note), len(note), 4)
    return header + phdr + note


def test_the_pvh_entry_note_is_found_only_where_it_is():
    assert kernel.has_pvh_note(elf_with_note(18))
    assert not kernel.has_pvh_note(elf_with_note(6))
    assert not kernel.has_pvh_note(elf_with_note(18)[:100])       # truncated
    assert not kernel.has_pvh_note(b"MZ not an elf")


@pytest.mark.parametrize("compress", [lzma.compress, gzip.compress])
def test_the_elf_kernel_is_unpacked_from_a_bzimage(compress):
    elf = elf_with_note(18) + bytes(1000)
    bzimage = b"setup code \xfd7zXZ\x00 a false start " + compress(elf) + b"trailer"
    assert kernel.vmlinux_from_bzimage(bzimage) == elf
    assert kernel.vmlinux_from_bzimage(b"setup " + compress(elf_with_note(6))) is None   # no PVH: boot vmlinuz
