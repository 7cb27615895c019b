"""Provenance attached to every measured record: where, on what, with which software, when.

Every probe here is cheap (files under /proc and /sys, one `git` call) and none may fail the run:
what cannot be read is recorded as null.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags() -> set[str]:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def mem_total_bytes() -> int | None:
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def git_sha(cwd: str | Path | None = None) -> str | None:
    where = Path(cwd) if cwd else Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        sha = out.stdout.strip() if out.returncode == 0 else None
        if sha:
            # --no-optional-locks: status never takes the index lock; one killed at its time limit (a slow
            # 9p mount in the guest) left a stale .git/index.lock in the checkout (2026-12-01 17:26 UTC)
            dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(where), "status", "--porcelain",
                                    "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def rdma_core_version() -> str | None:
    """rdma-core's version from the Debian package database, where there is one."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rdma-core"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def rdma_devices() -> list[dict[str, Any]]:
    devices = []
    base = Path("/sys/class/infiniband")
    if base.is_dir():
        for dev in sorted(base.iterdir()):
            devices.append({
                "name": dev.name,
                "node_type": _read(str(dev / "node_type")),
                "fw_ver": _read(str(dev / "fw_ver")),
                "parent": (_read(str(dev / "parent")) if (dev / "parent").exists() else None),
            })
    return devices


def collect(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance dict every measured record carries."""
    uname = platform.uname()
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    prov: dict[str, Any] = {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "host": uname.node,
        "kernel": uname.release,
        "kernel_version": uname.version,
        "machine": uname.machine,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "mem_total_bytes": mem_total_bytes(),
        "memlock_limit_bytes": None if soft == resource.RLIM_INFINITY else soft,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "rdmarig": package_version("rdmarig"),
        "numpy": package_version("numpy"),
        "scipy": package_version("scipy"),
        "rdma_core": rdma_core_version(),
        "rdma_devices": rdma_devices(),
        "git_sha": git_sha(),
        # set by `rdmarig guest run` inside the soft-RoCE guest: "tcg" or "kvm"
        "guest_accel": os.environ.get("RDMARIG_GUEST_ACCEL"),
    }
    if extra:
        prov.update(extra)
    return prov
