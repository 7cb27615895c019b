"""`rdmarig guest prepare`: kernel subset + busybox initramfs in the cache, once.

A second prepare re-resolves the kernel package name (~1 s) and builds the small initramfs only
if no image for these scripts exists; the download and extraction happen only when the kernel
version changes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from rig.guest import hostcheck, initramfs, kernel
from rig.guest.cache import Cache
from scenarios.errors import InputError

Say = Callable[[str], None]
KEEP_IMAGES = 4     # initramfs images of other script versions kept (other rdmarig checkouts)


@dataclass(frozen=True)
class Prepared:
    kernel_package: str
    kernel_version: str
    vmlinuz: str
    initramfs: str
    initramfs_sha256: str
    scripts_sha256: str
    cache: str
    downloaded: bool
    seconds: float
    boot_kernel: str = ""       # what qemu boots: the unpacked ELF kernel (PVH), else vmlinuz


def scripts_sha256() -> str:
    return hashlib.sha256((initramfs.init_script() + initramfs.stage2_script()).encode()).hexdigest()


def _resolve(say: Say) -> str:
    say("resolving the kernel package behind linux-image-amd64")
    package = kernel.resolve_package()
    if package is None:
        say("no candidate in the package index; running apt-get update")
        kernel.apt_update()
        package = kernel.resolve_package()
    if package is None:
        raise InputError("kernel package not found: apt-cache depends linux-image-amd64 names no "
                         "linux-image-<version>-amd64", "run `apt-get update` (Debian 12 sources needed) and retry")
    return package


def _fetch_kernel(cache: Cache, package: str, say: Say) -> None:
    version = kernel.kernel_version(package)
    hostcheck.require_space(cache.root, hostcheck.COLD_PREPARE_BYTES)
    say(f"downloading {package} and busybox-static (apt-get download)")
    t0 = time.monotonic()
    try:
        debs = kernel.download([package, "busybox-static"], cache.debs)
    except InputError:
        say("download failed; running apt-get update and retrying")
        kernel.apt_update()
        package_now = kernel.resolve_package()
        if package_now != package:
            raise InputError(f"kernel package changed to {package_now} after apt-get update",
                             "run `rdmarig guest prepare` again") from None
        debs = kernel.download([package, "busybox-static"], cache.debs)
    size = sum(p.stat().st_size for p in debs.values())
    say(f"downloaded {size / 1e6:.0f} MB in {time.monotonic() - t0:.0f} s; extracting vmlinuz and module trees")
    shutil.rmtree(cache.kernel_root, ignore_errors=True)
    written = kernel.extract(debs[package], cache.kernel_root, lambda n: kernel.wanted_member(n, version))
    if not cache.vmlinuz(version).exists():
        raise InputError(f"{package} holds no boot/vmlinuz-{version}", "report this; the package layout changed")
    if not (cache.modules_dir(version) / "kernel/drivers/infiniband/sw/rxe/rdma_rxe.ko").exists():
        raise InputError(f"{package} has no rdma_rxe module", "use the plain amd64 flavour (not -cloud-)")
    kernel.extract(debs["busybox-static"], cache.root / "bb",
                   lambda n: n in ("bin/busybox", "usr/bin/busybox"))
    found = [p for p in (cache.root / "bb/bin/busybox", cache.root / "bb/usr/bin/busybox") if p.exists()]
    if not found:
        raise InputError("busybox-static holds no bin/busybox", "report this; the package layout changed")
    found[0].replace(cache.busybox)
    shutil.rmtree(cache.root / "bb", ignore_errors=True)
    say(f"extracted {len(written)} files; running depmod")
    kernel.depmod(cache.kernel_root, version)
    for deb in debs.values():
        deb.unlink()   # keep the cache small (~25 MB)


def prepare(cache: Cache, say: Say = lambda _: None, resolve: bool = True) -> Prepared:
    """Make the cache bootable; returns what is there. `resolve=False` trusts an existing cache."""
    hostcheck.require_host_packages()
    say(f"host packages present: {' '.join(hostcheck.HOST_PACKAGES)}")
    cache.root.mkdir(parents=True, exist_ok=True)
    with open(cache.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)     # two prepares (or runs) at once: the second waits
        return _prepare_locked(cache, say, resolve)


def _prepare_locked(cache: Cache, say: Say, resolve: bool) -> Prepared:
    t0 = time.monotonic()
    old = cache.read_manifest() or {}
    if resolve or not old:
        package = _resolve(say)
    else:
        package = old["kernel_package"]
    version = kernel.kernel_version(package)
    downloaded = False
    have_kernel = (old.get("kernel_version") == version and cache.vmlinuz(version).exists()
                   and (cache.modules_dir(version) / "modules.dep").exists() and cache.busybox.exists())
    if not have_kernel:
        cache.manifest.unlink(missing_ok=True)
        _fetch_kernel(cache, package, say)
        downloaded = True
    else:
        say(f"kernel {version} already in {cache.root}")
    boot_kernel = _boot_kernel(cache, version, say)
    scripts = scripts_sha256()
    image = cache.initramfs_for(scripts)
    if downloaded or not image.exists():
        say("building the initramfs")
        digest = initramfs.build(cache.busybox, cache.modules_dir(version), image)
        _prune_images(cache, image)
    else:
        digest = hashlib.sha256(image.read_bytes()).hexdigest()
    result = Prepared(kernel_package=package, kernel_version=version, vmlinuz=str(cache.vmlinuz(version)),
                      initramfs=str(image), initramfs_sha256=digest, scripts_sha256=scripts,
                      cache=str(cache.root), downloaded=downloaded, seconds=time.monotonic() - t0,
                      boot_kernel=str(boot_kernel))
    manifest = asdict(result)
    tmp = cache.manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(cache.manifest)
    return result


def _boot_kernel(cache: Cache, version: str, say: Say) -> Path:
    """The unpacked ELF kernel (made once), or the bzImage if it holds none qemu can boot via PVH."""
    elf_path = cache.vmlinux(version)
    if elf_path.exists():
        return elf_path
    elf = kernel.vmlinux_from_bzimage(cache.vmlinuz(version).read_bytes())
    if elf is None:
        say("the kernel image holds no ELF kernel with a PVH entry point; qemu boots it compressed")
        return cache.vmlinuz(version)
    tmp = elf_path.with_suffix(".tmp")
    tmp.write_bytes(elf)
    tmp.replace(elf_path)
    say(f"unpacked the kernel once ({len(elf) / 1e6:.0f} MB) so qemu boots it directly (PVH)")
    return elf_path


def _prune_images(cache: Cache, current: Path) -> None:
    others = sorted((p for p in cache.root.glob("initramfs-*.gz") if p != current),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for old in others[KEEP_IMAGES:]:
        old.unlink(missing_ok=True)


def ensure_prepared(cache: Cache, say: Say = lambda _: None) -> Prepared:
    """For `run`/`check`: use the cache if it is complete and current, else prepare it."""
    m = cache.read_manifest()
    if (m and m.get("scripts_sha256") == scripts_sha256() and m.get("boot_kernel")
            and all(Path(m[k]).exists() for k in ("vmlinuz", "initramfs", "boot_kernel"))):
        return Prepared(**{k: m[k] for k in Prepared.__dataclass_fields__})
    say("guest not prepared yet (or prepared by another rdmarig version); preparing")
    return prepare(cache, say, resolve=not m)
