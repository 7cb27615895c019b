"""Where the guest's prepared files live: ~/.cache/rdmarig/guest unless --cache says otherwise."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rdmarig" / "guest"


@dataclass(frozen=True)
class Cache:
    root: Path

    @classmethod
    def at(cls, path: Path | None) -> "Cache":
        return cls((path or default_cache_dir()).expanduser().resolve())

    @property
    def kernel_root(self) -> Path:      # holds boot/ and lib/modules/<version>/
        return self.root / "kernel"

    @property
    def debs(self) -> Path:
        return self.root / "debs"

    @property
    def busybox(self) -> Path:
        return self.root / "busybox"

    @property
    def initramfs(self) -> Path:        # what rdmarig versions before per-script images used
        return self.root / "initramfs.gz"

    def initramfs_for(self, scripts_sha256: str) -> Path:
        """One image per version of the init scripts: two rdmarig versions sharing this cache never
        boot each other's scripts."""
        return self.root / f"initramfs-{scripts_sha256[:16]}.gz"

    @property
    def manifest(self) -> Path:         # what prepare built, written last
        return self.root / "prepared.json"

    @property
    def accel_verdict(self) -> Path:
        return self.root / "accel.json"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def vmlinuz(self, version: str) -> Path:
        return self.kernel_root / "boot" / f"vmlinuz-{version}"

    def vmlinux(self, version: str) -> Path:    # the unpacked ELF kernel qemu boots through PVH
        return self.kernel_root / "boot" / f"vmlinux-{version}"

    def modules_dir(self, version: str) -> Path:
        return self.kernel_root / "lib" / "modules" / version

    def read_manifest(self) -> dict | None:
        try:
            return json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
