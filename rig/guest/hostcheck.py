"""Preconditions on the host: qemu and the Debian packages the guest borrows, free space, tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from scenarios.errors import InputError

QEMU = "qemu-system-x86_64"
# what the guest uses from the host's root filesystem (it runs the host's own userland)
HOST_PACKAGES = ("qemu-system-x86", "busybox-static", "rdma-core", "ibverbs-providers", "ibverbs-utils",
                 "perftest", "python3-pyverbs", "iproute2", "kmod")
COLD_PREPARE_BYTES = 400e6   # kernel .deb (~70 MB) + its data while extracting + the ~25 MB kept


def apt_install_line(packages: list[str] | tuple[str, ...]) -> str:
    return "apt-get install -y --no-install-recommends " + " ".join(packages)


def installed_packages(names: tuple[str, ...]) -> set[str]:
    """The subset of `names` dpkg reports as installed."""
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n", *names],
                          capture_output=True, text=True)
    return parse_dpkg_status(proc.stdout)


def parse_dpkg_status(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "installed":
            found.add(parts[0].split(":")[0])
    return found


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if not path:
        raise InputError(f"qemu is missing ({QEMU} not on PATH)", f"install it: {apt_install_line(['qemu-system-x86'])}")
    return path


def require_host_packages() -> None:
    qemu_binary()
    if not shutil.which("dpkg-query"):
        raise InputError("this host has no dpkg", "the soft-RoCE guest needs a Debian/Ubuntu host (apt, dpkg)")
    missing = [p for p in HOST_PACKAGES if p not in installed_packages(HOST_PACKAGES)]
    if missing:
        raise InputError(f"host packages missing for the soft-RoCE guest: {' '.join(missing)}",
                         f"install them: {apt_install_line(missing)}")


def require_space(directory: Path, need_bytes: float) -> None:
    probe = directory
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise InputError(f"not enough space in {directory}: {free / 1e6:.0f} MB free, "
                         f"{need_bytes / 1e6:.0f} MB needed", "free some space or pass --cache DIR elsewhere")
