"""Builds the one compiled part: the RDMA hot loops (rig/rdma/_fastloop.c), plain C loaded with
ctypes by rig/rdma/native.py. Everything else is in pyproject.toml.

The build is optional: without a C compiler or rdma-core's headers (Debian: libibverbs-dev,
installed by `make`) the install goes on, the reason is written to
rig/rdma/_fastloop.build-error.txt and the Python loops run (every record says which loop ran).
"""

import os
import sys
import traceback

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ERROR_FILE = os.path.join("rig", "rdma", "_fastloop.build-error.txt")
HEADER = os.path.join("infiniband", "verbs.h")


def _header_found(compiler) -> bool:
    dirs = list(getattr(compiler, "include_dirs", []) or []) + ["/usr/include", "/usr/local/include"]
    return any(os.path.exists(os.path.join(d, HEADER)) for d in dirs)


class OptionalBuildExt(build_ext):
    """build_ext whose failure is recorded, not raised."""

    def _error_path(self) -> str:
        # in-place builds (pip install -e) write next to the source, others into the build tree
        root = "" if self.inplace else self.build_lib
        return os.path.join(root, ERROR_FILE)

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:     # no compiler at all (setuptools raises before build_extension)
            self._record(f"{type(exc).__name__}: {exc}")

    def build_extension(self, ext) -> None:
        if not _header_found(self.compiler):
            self._record(f"{HEADER} not found: install rdma-core's headers (apt-get install libibverbs-dev) "
                         "and reinstall (make venv)")
            return
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._record(f"{type(exc).__name__}: {exc}")
            return
        try:
            os.remove(self._error_path())
        except OSError:
            pass

    def _record(self, why: str) -> None:
        sys.stderr.write(f"rdmarig: the C loop was not built ({why}); the Python loops will run\n")
        path = self._error_path()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(traceback.format_exc() if sys.exc_info()[0] else "")
                f.write(why + "\n")
        except OSError:
            pass


setup(
    ext_modules=[Extension("rig.rdma._fastloop", sources=["rig/rdma/_fastloop.c"], libraries=["ibverbs"],
                           extra_compile_args=["-O2", "-std=gnu11", "-pthread"], extra_link_args=["-pthread"])],
    cmdclass={"build_ext": OptionalBuildExt},
)
