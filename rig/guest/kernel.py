"""The guest kernel: resolve Debian's current linux-image-amd64 target, download it, keep a subset.

Only vmlinuz and the module trees the guest needs are extracted (~25 MB of ~400 MB), then depmod
indexes them. The -cloud- flavour lacks rdma_rxe, so only the plain amd64 flavour is accepted.
The compressed kernel is also unpacked once to its ELF image (vmlinux), which qemu boots through
the PVH entry point: the ~3.5 s the kernel spends decompressing itself under TCG are paid once.
"""

from __future__ import annotations

import fnmatch
import lzma
import re
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path
from typing import Callable

from scenarios.errors import InputError

METAPACKAGE = "linux-image-amd64"
_DEPENDS_RE = re.compile(r"^\s*Depends:\s*(linux-image-(\d[^\s:]*-amd64))\s*$")

# relative to lib/modules/<version>/kernel/
MODULE_TREES = (
    "drivers/infiniband/*", "drivers/virtio/*", "drivers/net/veth.ko*",
    "net/9p/*", "fs/9p/*", "fs/netfs/*", "fs/fscache/*", "fs/overlayfs/*", "fs/configfs/*",
    "net/ipv4/udp_tunnel.ko*", "net/ipv6/ip6_udp_tunnel.ko*",
    "crypto/crc32*", "arch/x86/crypto/crc32*",
)
# module index files depmod reads (modules.builtin tells modprobe what needs no file)
MODULE_INDEX = ("modules.order", "modules.builtin", "modules.builtin.modinfo", "modules.builtin.alias.bin")


def parse_kernel_package(apt_cache_depends: str) -> str | None:
    """Output of `apt-cache depends linux-image-amd64` -> 'linux-image-6.1.0-57-amd64' (or None)."""
    for line in apt_cache_depends.splitlines():
        m = _DEPENDS_RE.match(line)
        if m and "-cloud-" not in m.group(1) and "-rt-" not in m.group(1):
            return m.group(1)
    return None


def kernel_version(package: str) -> str:
    return package.removeprefix("linux-image-")


def _apt(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                          env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                               "LC_ALL": "C"})


def apt_update() -> None:
    proc = _apt(["apt-get", "update", "-qq"])
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(f"apt-get update failed: {tail}", "check the network and /etc/apt/sources.list")


def resolve_package() -> str | None:
    proc = _apt(["apt-cache", "depends", METAPACKAGE])
    return parse_kernel_package(proc.stdout) if proc.returncode == 0 else None


def download(packages: list[str], into: Path) -> dict[str, Path]:
    """apt-get download into `into`; returns {package: .deb path}."""
    into.mkdir(parents=True, exist_ok=True)
    for stale in into.glob("*.deb"):
        stale.unlink()
    proc = _apt(["apt-get", "download", "-qq", "-o", "APT::Sandbox::User=root", *packages], cwd=into)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise InputError(f"apt-get download {' '.join(packages)} failed: {tail}",
                         "run `apt-get update` and retry `rdmarig guest prepare`")
    found = {}
    for pkg in packages:
        debs = sorted(into.glob(f"{pkg}_*.deb"))
        if not debs:
            raise InputError(f"apt-get download left no .deb for {pkg} in {into}", "retry `rdmarig guest prepare`")
        found[pkg] = debs[-1]
    return found


def _normalise(member: str) -> str:
    """'./usr/lib/modules/x' and './lib/modules/x' -> 'lib/modules/x' (merged-/usr or not)."""
    name = member.removeprefix("./")
    return name.removeprefix("usr/") if name.startswith("usr/lib/") or name.startswith("usr/bin/") else name


def wanted_member(name: str, version: str) -> bool:
    """Does this (normalised) path from the kernel package belong to the guest's subset?"""
    if name in (f"boot/vmlinuz-{version}", f"boot/config-{version}"):
        return True
    prefix = f"lib/modules/{version}/"
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix):]
    if rest in MODULE_INDEX:
        return True
    if not rest.startswith("kernel/"):
        return False
    rest = rest[len("kernel/"):]
    return any(fnmatch.fnmatchcase(rest, pattern) for pattern in MODULE_TREES)


def extract(deb: Path, dest: Path, keep: Callable[[str], bool]) -> list[str]:
    """Stream the .deb's data through dpkg-deb and write only the regular files `keep` accepts.

    xz-compressed modules are stored decompressed: the initramfs's busybox insmod loads plain .ko.
    """
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    written = []
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = _normalise(member.name)
                if not member.isfile() or not keep(name):
                    continue
                data = tar.extractfile(member).read()
                if name.endswith(".ko.xz"):
                    data, name = lzma.decompress(data), name[:-3]
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                target.chmod(member.mode & 0o777)
                written.append(name)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        rc = proc.wait()
    if rc != 0:
        raise InputError(f"dpkg-deb could not unpack {deb.name}: {err.strip()[-200:]}",
                         "delete the cache directory and retry `rdmarig guest prepare`")
    return written


def depmod(root: Path, version: str) -> None:
    proc = subprocess.run(["depmod", "-b", str(root), version], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"depmod failed: {proc.stderr.strip()[-200:]}",
                         "install kmod (apt-get install -y kmod) and retry")


_PT_NOTE = 4
_XEN_ELFNOTE_PHYS32_ENTRY = 18      # the PVH entry point qemu -kernel needs in an ELF image
_PAYLOADS = ((b"\xfd7zXZ\x00", lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ)),
             (b"\x1f\x8b\x08", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)))


def has_pvh_note(elf: bytes) -> bool:
    """Does this ELF64 image carry the Xen PHYS32_ENTRY note (so qemu can boot it through PVH)?"""
    if elf[:5] != b"\x7fELF\x02":
        return False
    try:
        return _find_pvh_note(elf)
    except struct.error:      # truncated: not a kernel qemu can boot
        return False


def _find_pvh_note(elf: bytes) -> bool:
    phoff, = struct.unpack_from("<Q", elf, 32)
    phentsize, phnum = struct.unpack_from("<HH", elf, 54)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", elf, phoff + i * phentsize)
        pos, end = p_offset, p_offset + p_filesz
        while p_type == _PT_NOTE and pos + 12 <= end:
            namesz, descsz, n_type = struct.unpack_from("<III", elf, pos)
            name = elf[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and n_type == _XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def vmlinux_from_bzimage(bzimage: bytes) -> bytes | None:
    """The ELF kernel inside a bzImage (xz or gzip payload, as scripts/extract-vmlinux finds it),
    or None if none with a PVH entry point is there."""
    for magic, decompressor in _PAYLOADS:
        start = bzimage.find(magic)
        while start >= 0:
            try:
                elf = decompressor().decompress(bzimage[start:])
            except (lzma.LZMAError, zlib.error):
                elf = b""
            if has_pvh_note(elf):
                return elf
            start = bzimage.find(magic, start + 1)
    return None
