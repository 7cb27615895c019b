"""Debian's Python extension packages (python3-pyverbs, python3-mpi4py) in another CPython.

Debian builds them for /usr/bin/python3. Another CPython of the same minor version (a venv, a
pyenv 3.11) can load the same extension modules: we put a temporary directory holding only a link
to the one package on sys.path, so nothing else from Debian's dist-packages leaks into the
interpreter. The directory is removed at exit, not at once: packages import submodules lazily.
"""

from __future__ import annotations

import atexit
import importlib
import os
import shutil
import sys
import tempfile

DIST_PACKAGES = "/usr/lib/python3/dist-packages"

_linked: dict[str, str] = {}          # package -> the directory put on sys.path for it


def package_dir(package: str) -> str:
    return os.path.join(DIST_PACKAGES, package)


def build_matches(package: str) -> bool:
    """Debian's extension modules carry the CPython ABI tag in their names: is ours there?"""
    tag = f".cpython-{sys.version_info.major}{sys.version_info.minor}-"
    try:
        return any(tag in n for n in os.listdir(package_dir(package)) if n.endswith(".so"))
    except OSError:
        return False


def link_package(package: str) -> bool:
    """Put Debian's `package` on sys.path (once) and forget any failed import of it. False when it
    is already linked or not built for this CPython."""
    if package in _linked or not build_matches(package):
        return False
    shim = tempfile.mkdtemp(prefix=f"rdmarig-{package}-")
    os.symlink(package_dir(package), os.path.join(shim, package))
    sys.path.append(shim)
    atexit.register(shutil.rmtree, shim, True)
    _linked[package] = shim
    importlib.invalidate_caches()
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    return True
