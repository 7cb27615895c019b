"""One door to pyverbs, whichever of its two APIs is installed.

- Debian/Ubuntu `python3-pyverbs` (rdma-core 44): enums in `pyverbs.enums`, built for Debian's
  CPython, loaded into another CPython of the same minor version by rig.debian.
- PyPI `pyverbs` 59.x: enums in `pyverbs.libibverbs_enums`.

Both define the same IBV_* names, partly as members of enum classes (`ibv_qp_type.IBV_QPT_RC`),
partly at module level. `load()` flattens them into one namespace `V.e` so callers write
`V.e.IBV_QPT_RC` regardless of the API.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

from rig import debian
from scenarios.errors import InputError

DEBIAN_PYVERBS = debian.package_dir("pyverbs")
INSTALL_FIX = ("install it: apt-get install python3-pyverbs (Debian/Ubuntu, rdma-core) "
               "or pip install 'rdmarig[rdma]' (builds rdma-core's pyverbs, slow)")


@dataclass
class Verbs:
    """The pyverbs classes rdmarig uses plus a flat enum namespace."""

    api: str                       # "pyverbs.enums" (rdma-core <= 5x Debian) or "pyverbs.libibverbs_enums"
    path: str                      # where the pyverbs package was found
    e: SimpleNamespace             # every IBV_* constant, flat
    Context: Any
    PD: Any
    MR: Any
    CQ: Any
    CompChannel: Any
    QP: Any
    QPCap: Any
    QPInitAttr: Any
    QPAttr: Any
    AHAttr: Any
    GlobalRoute: Any
    GID: Any
    SGE: Any
    SendWR: Any
    RecvWR: Any
    get_device_list: Any
    PyverbsError: Any
    PyverbsRDMAError: Any
    wc_status_names: dict[int, str] = field(default_factory=dict)
    wr_opcode_names: dict[int, str] = field(default_factory=dict)

    def wc_status_name(self, status: int) -> str:
        return self.wc_status_names.get(int(status), f"IBV_WC_STATUS_{int(status)}")

    def wr_opcode_name(self, opcode: int) -> str:
        return self.wr_opcode_names.get(int(opcode), f"IBV_WR_OPCODE_{int(opcode)}")


_loaded: Verbs | None = None


def _abi_tag() -> str:
    return sysconfig.get_config_var("SOABI") or f"cpython-{sys.version_info.major}{sys.version_info.minor}"


def _import_pyverbs() -> ModuleType:
    try:
        return importlib.import_module("pyverbs.device")
    except ImportError as first:
        if os.path.isdir(DEBIAN_PYVERBS) and debian.link_package("pyverbs"):
            try:
                return importlib.import_module("pyverbs.device")
            except ImportError as second:
                raise InputError(f"pyverbs found at {DEBIAN_PYVERBS} but it does not import in "
                                 f"{sys.executable} ({second})", INSTALL_FIX) from second
        if os.path.isdir(DEBIAN_PYVERBS):
            raise InputError(f"pyverbs at {DEBIAN_PYVERBS} is built for another Python than "
                             f"{sys.executable} ({_abi_tag()})",
                             "run rdmarig with /usr/bin/python3 or a CPython of the same minor "
                             "version, or pip install pyverbs") from first
        raise InputError(f"pyverbs (rdma-core's Python binding) is not installed ({first})",
                         INSTALL_FIX) from first


def _flatten_enums(*modules: ModuleType) -> SimpleNamespace:
    flat: dict[str, Any] = {}
    for mod in modules:
        for name in dir(mod):
            value = getattr(mod, name)
            members = getattr(value, "__members__", None)
            if isinstance(members, dict) or hasattr(members, "items"):
                for member_name, member in members.items():
                    if member_name.startswith(("IBV_", "RDMA_")):
                        flat.setdefault(member_name, int(member))
            elif name.startswith(("IBV_", "RDMA_")) and isinstance(value, int):
                flat.setdefault(name, int(value))
    return SimpleNamespace(**flat)


def _reverse(enum_mod: ModuleType, class_name: str, prefix: str) -> dict[int, str]:
    cls = getattr(enum_mod, class_name, None)
    members = getattr(cls, "__members__", None)
    if members:
        return {int(v): k for k, v in members.items()}
    return {}


def load() -> Verbs:
    """Import pyverbs (once) and return the compatibility namespace; InputError when absent."""
    global _loaded
    if _loaded is not None:
        return _loaded
    device = _import_pyverbs()
    try:
        enums = importlib.import_module("pyverbs.libibverbs_enums")
        api = "pyverbs.libibverbs_enums"
    except ImportError:
        enums = importlib.import_module("pyverbs.enums")
        api = "pyverbs.enums"
    from pyverbs.addr import AHAttr, GID, GlobalRoute
    from pyverbs.cq import CQ, CompChannel
    from pyverbs.mr import MR
    from pyverbs.pd import PD
    from pyverbs.pyverbs_error import PyverbsError, PyverbsRDMAError
    from pyverbs.qp import QP, QPAttr, QPCap, QPInitAttr
    from pyverbs.wr import SGE, RecvWR, SendWR

    import pyverbs
    _loaded = Verbs(
        api=api, path=os.path.dirname(pyverbs.__file__), e=_flatten_enums(enums),
        Context=device.Context, PD=PD, MR=MR, CQ=CQ, CompChannel=CompChannel, QP=QP, QPCap=QPCap, QPInitAttr=QPInitAttr,
        QPAttr=QPAttr, AHAttr=AHAttr, GlobalRoute=GlobalRoute, GID=GID, SGE=SGE, SendWR=SendWR,
        RecvWR=RecvWR, get_device_list=device.get_device_list, PyverbsError=PyverbsError,
        PyverbsRDMAError=PyverbsRDMAError,
        wc_status_names=_reverse(enums, "ibv_wc_status", "IBV_WC_"),
        wr_opcode_names=_reverse(enums, "ibv_wr_opcode", "IBV_WR_"),
    )
    return _loaded


def available() -> tuple[bool, str]:
    """(True, api) when pyverbs imports, else (False, the reason)."""
    try:
        return True, load().api
    except InputError as exc:
        return False, exc.one_line()


@dataclass
class CM:
    """librdmacm through pyverbs (connection set-up only)."""

    e: SimpleNamespace            # RDMA_CM_EVENT_*, RDMA_PS_*, RAI_* flat
    CMID: Any
    AddrInfo: Any
    ConnParam: Any
    CMEvent: Any
    CMEventChannel: Any


_cm: CM | None = None


def load_cm() -> CM:
    """pyverbs' rdma_cm classes; InputError when this pyverbs has none."""
    global _cm
    if _cm is not None:
        return _cm
    load()
    try:
        try:
            enums = importlib.import_module("pyverbs.librdmacm_enums")
        except ImportError:
            enums = importlib.import_module("pyverbs.cm_enums")
        cmid = importlib.import_module("pyverbs.cmid")
    except ImportError as exc:
        raise InputError(f"this pyverbs has no rdma_cm support ({exc})",
                         "connect without --rdma-cm, or install rdma-core's pyverbs with librdmacm") from exc
    flat = _flatten_enums(enums)
    for name in dir(enums):          # RAI_PASSIVE and friends are plain module-level ints
        if name.startswith("RAI_") and isinstance(getattr(enums, name), int):
            setattr(flat, name, int(getattr(enums, name)))
    _cm = CM(e=flat, CMID=cmid.CMID, AddrInfo=cmid.AddrInfo, ConnParam=cmid.ConnParam, CMEvent=cmid.CMEvent,
             CMEventChannel=cmid.CMEventChannel)
    return _cm
