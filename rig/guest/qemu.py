"""The qemu command line and the choice between KVM and TCG.

/dev/kvm on these machines can be a paravirtual KVM (kvm_pvm) that hangs stock kernels, so KVM is
used only when the CPU shows vmx/svm AND a test boot succeeded (that verdict is cached); else TCG.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from scenarios.errors import InputError

ACCEL_ARGS = {
    "tcg": ["-accel", "tcg,thread=multi", "-cpu", "max"],
    "kvm": ["-accel", "kvm", "-cpu", "host"],
}
# kernel command line: console on the serial port, kernel chatter only from errors up,
# a panic powers the VM off at once (-no-reboot turns the reboot into qemu exiting)
BASE_APPEND = ("console=ttyS0", "panic=-1", "quiet", "loglevel=4")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/@+=-]*$")


@dataclass(frozen=True)
class Share:
    tag: str
    path: Path
    readonly: bool


def is_plain_path(path: Path) -> bool:
    """Share paths travel on the kernel command line and through a shell split on ',' and ':'."""
    return bool(_SAFE_PATH.match(str(path)))


def check_share_path(path: Path, what: str) -> None:
    if not is_plain_path(path):
        raise InputError(f"{what} {str(path)!r} has characters the guest's command line cannot carry "
                         "(space, comma, colon, quote...)", "run from (or pass) a directory with a plain path")


def shares_append(shares: list[Share], binds: tuple[Path, ...] = ()) -> str:
    """The rdmarig_mounts= kernel argument: the read-write shares (tag:path) and the host paths bound
    read-only from the host root (host:path) where the guest mounts its own tmpfs (/tmp, /run...),
    each at its host path, parents before children."""
    mounts = [(s.tag, s.path) for s in shares if not s.readonly and s.tag not in ("hostroot", "kmods")]
    mounts += [("host", path) for path in binds]
    mounts.sort(key=lambda m: len(m[1].parts))
    return "rdmarig_mounts=" + ",".join(f"{tag}:{path}" for tag, path in mounts)


def command(qemu: str, accel: str, cpus: int, mem_mib: int, kernel: Path, initrd: Path,
            shares: list[Share], append_extra: tuple[str, ...] = (), binds: tuple[Path, ...] = ()) -> list[str]:
    """`kernel`: a bzImage, or an ELF vmlinux with a PVH note (booted without decompressing itself)."""
    args = [qemu, *ACCEL_ARGS[accel], "-smp", str(cpus), "-m", f"{mem_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-no-reboot", "-nic", "none",
            # names the vCPU threads "CPU n/TCG" (or /KVM): the host times them (rig.guest.hostload)
            "-name", "rdmarig,debug-threads=on",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", " ".join((*BASE_APPEND, shares_append(shares, binds), *append_extra))]
    for s in shares:
        spec = f"local,path={s.path},mount_tag={s.tag},security_model=none,multidevs=remap"
        args += ["-virtfs", spec + (",readonly=on" if s.readonly else "")]
    return args


def cpu_has_virt(cpuinfo: str) -> bool:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"vmx", "svm"})
    return False


def kvm_candidate() -> tuple[bool, str]:
    """Can KVM be tried at all? (usable, reason)"""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not writable"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    if not cpu_has_virt(cpuinfo):
        return False, "the CPU shows no vmx/svm (a paravirtual /dev/kvm hangs stock kernels)"
    return True, "vmx/svm present and /dev/kvm writable"


def verdict_key(kernel_version: str) -> str:
    return f"{kernel_version}|{os.uname().release}"


def read_verdict(path: Path, key: str) -> dict | None:
    try:
        v = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return v if v.get("key") == key else None


def write_verdict(path: Path, key: str, accel: str, reason: str) -> dict:
    v = {"key": key, "accel": accel, "reason": reason}
    path.write_text(json.dumps(v))
    return v
