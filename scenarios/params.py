"""Flat parameters: every number of a scenario as {'section.field': SI float}.

These names are what sweeps, what-if overrides and calibration use ("cpu.copy_rate_dram",
"link.count", "dma.dsa.rate"); `unit_key` / `unit_label` attach the unit for records and headers.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any, Mapping

from scenarios.errors import InputError

if TYPE_CHECKING:
    from scenarios.platform import Platform
    from scenarios.schema import Scenario


def _numbers(obj: Any, prefix: str, out: dict[str, float], flags: bool = True) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, bool):
            if flags:
                out[f"{prefix}.{f.name}"] = float(value)
        elif isinstance(value, (int, float)):
            out[f"{prefix}.{f.name}"] = float(value)


def platform_params(p: Platform) -> dict[str, float]:
    """Every numeric figure of a platform as {'section.field': SI float} ('cpu.cores', 'pcie.lanes')."""
    out: dict[str, float] = {}
    for section, obj in (("cpu", p.cpu), ("memory", p.memory), ("nic", p.nic), ("pcie", p.nic.pcie)):
        _numbers(obj, section, out)
    for e in p.dma:
        _numbers(e, f"dma.{e.name}", out, flags=False)
    return out


def flat_params(s: Scenario) -> dict[str, float]:
    """Every numeric parameter of a scenario as {'section.field': SI float}."""
    out = platform_params(s.platform)
    for section, obj in (("link", s.link), ("workload", s.workload)):
        _numbers(obj, section, out)
    return out


@functools.cache
def _units_of_fields() -> dict[str, str]:
    """{field name: unit suffix} of every quantity a flat parameter can name, from the field tables
    (a new field gets its unit from its parser; the I/O size axis is not a field)."""
    from scenarios import platform, schema     # the tables import this module: read them late
    out = {"io_size": "bytes"}
    for fields in (*platform.SECTIONS.values(), schema.LINK_FIELDS, schema.WORKLOAD_FIELDS):
        for f in fields:
            if f.kind == "quantity" and f.record_unit:
                out[f.name] = f.record_unit
    return out


def unit_key(flat_name: str) -> str:
    """A flat parameter name as a record key with its unit: 'cpu.copy_rate_dram' -> 'cpu_copy_rate_dram_bytes_per_s'."""
    unit = _units_of_fields().get(flat_name.rsplit(".", 1)[-1])
    key = flat_name.replace(".", "_").replace("-", "_")
    return f"{key}_{unit}" if unit else key


def unit_label(flat_name: str) -> str:
    """The SI unit of a flat parameter for a column header: 'B/s', 'B', 's', or '' for counts."""
    return {"bytes_per_s": "B/s", "bytes": "B", "seconds": "s"}.get(
        _units_of_fields().get(flat_name.rsplit(".", 1)[-1], ""), "")


def flag_params(s: Scenario) -> frozenset[str]:
    """The flat names that are true/false switches (1.0 / 0.0 in flat_params)."""
    out = set()
    for section, obj in (("cpu", s.platform.cpu), ("link", s.link), ("workload", s.workload)):
        out.update(f"{section}.{f.name}" for f in dataclasses.fields(obj) if isinstance(getattr(obj, f.name), bool))
    return frozenset(out)


def with_params(s: Scenario, overrides: Mapping[str, float]) -> Scenario:
    """A copy of the scenario with some flat parameters replaced (for calibration, what-ifs)."""
    known = flat_params(s)
    for key in overrides:
        if key not in known:
            raise InputError(f"{s.path}: unknown parameter {key!r}",
                             f"use one of {', '.join(sorted(known))[:300]}")
    p = s.platform

    def patch(obj: Any, section: str) -> Any:
        changes = {}
        for f in dataclasses.fields(obj):
            key = f"{section}.{f.name}"
            if key in overrides:
                old = getattr(obj, f.name)
                new = overrides[key]
                changes[f.name] = bool(new) if isinstance(old, bool) else (int(round(new)) if isinstance(old, int) else float(new))
        return dataclasses.replace(obj, **changes) if changes else obj

    nic = dataclasses.replace(patch(p.nic, "nic"), pcie=patch(p.nic.pcie, "pcie"))
    platform = dataclasses.replace(p, cpu=patch(p.cpu, "cpu"), memory=patch(p.memory, "memory"), nic=nic,
                                   dma=tuple(patch(e, f"dma.{e.name}") for e in p.dma))
    return dataclasses.replace(s, platform=platform, link=patch(s.link, "link"), workload=patch(s.workload, "workload"))
