"""Platform profiles on disk: a base to build on, figures of their own, a measured section.

    name = "this-host"
    base = "epyc-9654-cx7"              # every figure not given here comes from this profile
    [cpu]                               # figures that override the base's, each with its own source
    cores = 2
    cores_source = "os.cpu_count() on this host"
    [measured.cpu.copy_rate_cache]      # a measured figure: overrides the one above / the base's
    value = "45.78GB/s"
    low = "42.15GB/s"                   # optional, with `interval` saying what low..high is
    high = "49.72GB/s"
    interval = "95% fit interval"
    method = "rdmarig calibrate host, copy law fit of one-copier memcpy timings"
    records = ["0b4d28a7...", "..."]    # the stored records it rests on

The loader merges base <- own figures <- measured figures into one mapping that the strict
parser (scenarios/platform.py) reads; the Platform it returns names its base and carries every
measured figure (Platform.measured), whose `_source` cites its records. A figure the profile
gives in its own sections needs its own source: it never inherits the base's.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from scenarios import fields as F
from scenarios.errors import InputError
from scenarios.files import builtin_platforms, read_toml, resolve
from scenarios.params import platform_params
from scenarios.platform import (CPU_FIELDS, DMA_FIELDS, MEMORY_FIELDS, NIC_FIELDS, PCIE_FIELDS, SOFT_RDMA_FIELDS,
                                TOP_FIELDS,
                                Measured, Platform, broken_relation, flat_name, parse_platform, toml_field)
from scenarios.toml_table import TomlTable, did_you_mean

MAX_BASE_DEPTH = 8
ENTRY_KEYS = ("value", "low", "high", "interval", "method", "records")
# the measured section's tables: flat prefix -> (path in the file, the section's fields)
_SECTION_PATHS = {"cpu": (("cpu",), CPU_FIELDS), "memory": (("memory",), MEMORY_FIELDS),
                  "nic": (("nic",), NIC_FIELDS + SOFT_RDMA_FIELDS), "pcie": (("nic", "pcie"), PCIE_FIELDS)}


def load_platform_file(path: Path) -> Platform:
    return platform_from_data(read_toml(path, "platform"), path)


def profile_chain(path: str | Path) -> list[Path]:
    """The files a profile is made of: itself, then its base, the base's base ... (for hashes: a
    record that names a profile must name every file its figures come from)."""
    chain = [Path(path)]
    while len(chain) <= MAX_BASE_DEPTH:
        ref = read_toml(chain[-1], "platform").get("base")
        if not isinstance(ref, str) or not ref:
            break
        chain.append(resolve(ref, builtin_platforms(), "platform", relative_to=chain[-1].parent))
    return chain


def platform_from_data(data: Mapping[str, Any], path: Path) -> Platform:
    """A platform from a parsed profile at `path` (its base is found by name or beside it)."""
    merged, base, measured = resolve_profile(data, path, ())
    return parse_platform(merged, str(path), base=base, measured=measured)


def own_measured(data: Mapping[str, Any], path: Path) -> dict[str, Measured]:
    """The figures of the profile's own measured section (not those it inherits from its base)."""
    if "measured" not in data:
        return {}
    merged, _, _ = resolve_profile({k: v for k, v in data.items() if k != "measured"}, path, ())
    return _measured(TomlTable(data, str(path)).sub("measured"), merged)


def measured_figure(key: str, value: float, records: tuple[str, ...], method: str, interval: str = "",
                    low: float | None = None, high: float | None = None) -> Measured:
    """A measured figure named as in sources() ('cpu.copy_rate_cache'), SI values, written in the
    field's unit; an interval with a non-finite end is left out."""
    field = toml_field(key)
    if field is None or not field.is_number:
        raise ValueError(f"{key} is not a number of a platform profile")
    has_interval = (interval and low is not None and high is not None
                    and all(x == x and abs(x) != float("inf") for x in (low, high)))
    return Measured(value=float(value), text=field.as_text(value), records=tuple(records), method=method,
                    interval=interval if has_interval else "",
                    low=low if has_interval else None, high=high if has_interval else None,
                    low_text=field.as_text(low) if has_interval else "",
                    high_text=field.as_text(high) if has_interval else "")


def figure_problems(figures: Mapping[str, Measured], p: Platform) -> dict[str, str]:
    """{figure: why it cannot stand in profile `p`}: outside its physical range, or breaking a
    relation with `p`'s other figures (a measured DRAM bandwidth above the profile's peak)."""
    problems: dict[str, str] = {}
    flat = platform_params(p)
    for key, m in figures.items():
        field = toml_field(key)
        problem = field.limit.problem(m.value) if field is not None and field.limit is not None else "not a figure"
        if problem is not None:
            problems[key] = f"{m.text} is {problem}"
        else:
            flat[flat_name(key)] = m.value
    by_flat = {flat_name(k): k for k in figures if k not in problems}
    while (broken := broken_relation(flat)) is not None:
        culprit = next((by_flat[n] for n in broken[:2] if n in by_flat), None)
        if culprit is None:        # the profile itself breaks it: its loader says so
            break
        problems[culprit] = f"{broken[0]} {broken[2]}"
        flat[flat_name(culprit)] = platform_params(p)[flat_name(culprit)]
        del by_flat[flat_name(culprit)]
    return problems


def resolve_profile(data: Mapping[str, Any], path: Path,
                    chain: tuple[Path, ...]) -> tuple[dict[str, Any], str, dict[str, Measured]]:
    """(the profile as one mapping with its base and measured figures merged in, base name, measured)."""
    t = TomlTable(data, str(path))
    t.reject_unknown(F.known_keys(TOP_FIELDS))
    measured: dict[str, Measured] = {}
    base = ""
    if "base" in data:
        base = t.text("base", '"epyc-9654-cx7"')
        base_data, base_measured = _base(t, base, path, chain)
        if "name" not in data:
            raise t.error("name", "missing field: a profile that names a base needs a name of its own",
                          'add `name = "this-host"`')
        merged = _overlay(base_data, data)
        measured = {k: m for k, m in base_measured.items() if not _gives(data, k)}
    else:
        merged = {k: copy.deepcopy(v) for k, v in data.items() if k != "measured"}
    if "measured" in data:
        own = _measured(t.sub("measured"), merged)
        measured.update(own)
    return merged, base, measured


def _base(t: TomlTable, ref: str, path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, Any], dict[str, Measured]]:
    try:
        base_path = resolve(ref, builtin_platforms(), "platform", relative_to=path.parent)
    except InputError as exc:
        raise t.error("base", exc.cause, exc.fix) from None
    here = path.resolve()
    if base_path.resolve() in (*chain, here):
        raise t.error("base", f"{ref!r} leads back to this profile (a cycle of bases)", "name a profile that has no base, "
                      "or one whose bases do not come back here")
    if len(chain) >= MAX_BASE_DEPTH:
        raise t.error("base", f"more than {MAX_BASE_DEPTH} profiles deep", "build on a profile nearer the datasheet one")
    base_data = read_toml(base_path, "platform")
    merged, _, measured = resolve_profile(base_data, base_path, (*chain, here))
    parse_platform(merged, str(base_path))      # the base must stand on its own; errors name its file
    return merged, measured


def _overlay(base: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """The base's mapping with the profile's own keys laid over it; `dma` replaces the base's engines."""
    out = copy.deepcopy(dict(base))
    for key, value in own.items():
        if key in ("base", "measured"):
            continue
        if key in ("cpu", "memory", "nic") and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _overlay_section(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _overlay_section(base: dict[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in own.items():
        if key == "pcie" and isinstance(value, dict) and isinstance(out.get("pcie"), dict):
            out["pcie"] = _overlay_section(out["pcie"], value)
            continue
        if not key.endswith("_source"):
            out.pop(f"{key}_source", None)      # a figure given here brings its own source
        if not key.endswith(("_source", "_spread")):
            _drop_spread(out, key)              # ... and its own spread, if it has one
        out[key] = copy.deepcopy(value)
    return out


def _gives(data: Mapping[str, Any], flat_key: str) -> bool:
    """Does the profile give this figure ('cpu.cores', 'pcie.lanes', 'dma.dsa.rate') in its own sections?"""
    section, _, key = flat_key.partition(".")
    if section == "dma":
        return "dma" in data
    table: Any = data
    for part in _SECTION_PATHS[section][0]:
        table = table.get(part) if isinstance(table, dict) else None
    return isinstance(table, dict) and key in table


def _measured(t: TomlTable, merged: dict[str, Any]) -> dict[str, Measured]:
    """Read [measured.*] and lay each figure (value + a source citing its records) over `merged`."""
    t.reject_unknown(("cpu", "memory", "nic", "dma"))
    out: dict[str, Measured] = {}
    for section in ("cpu", "memory", "nic"):
        if section in t.data:
            out.update(_measured_section(t.sub(section), section, merged))
    if "nic" in t.data and "pcie" in t.data["nic"]:
        out.update(_measured_section(t.sub("nic").sub("pcie"), "pcie", merged))
    if "dma" in t.data:
        dt = t.sub("dma")
        engines = {e.get("name"): e for e in merged.get("dma", []) if isinstance(e, dict)}
        for name in dt.data:
            if name not in engines:
                raise dt.error(name, "no [[dma]] engine of that name in this profile",
                               f"measure one of: {', '.join(map(str, engines)) or '(none)'}")
            for key, m in _entries(dt.sub(name), DMA_FIELDS).items():
                engines[name][key], engines[name][f"{key}_source"] = dt.data[name][key]["value"], m.source()
                _drop_spread(engines[name], key)
                out[f"dma.{name}.{key}"] = m
    return out


def _measured_section(t: TomlTable, section: str, merged: dict[str, Any]) -> dict[str, Measured]:
    path, fields = _SECTION_PATHS[section]
    entries = _entries(t, fields, skip=("pcie",) if section == "nic" else ())
    table = merged
    for part in path:
        table = table.setdefault(part, {})
    for key, m in entries.items():
        table[key], table[f"{key}_source"] = t.data[key]["value"], m.source()
        _drop_spread(table, key)
    return {f"{section}.{key}": m for key, m in entries.items()}


def _drop_spread(table: dict[str, Any], key: str) -> None:
    """A measured figure (or one given again) replaces the spread the figure had: its own low..high
    is its spread (Platform.spreads)."""
    table.pop(f"{key}_spread", None)
    table.pop(f"{key}_spread_source", None)


def _entries(t: TomlTable, fields: tuple[F.Field, ...], skip: tuple[str, ...] = ()) -> dict[str, Measured]:
    numbers = {f.key: f for f in fields if f.is_number}
    out = {}
    for key in t.data:
        if key in skip:
            continue
        if key not in numbers:
            raise t.error(key, f"not a measurable figure of {t.title.replace('measured.', '')}",
                          did_you_mean(str(key), numbers))
        out[key] = _entry(t.sub(key), numbers[key])
    return out


def _entry(t: TomlTable, field: F.Field) -> Measured:
    t.reject_unknown(ENTRY_KEYS)
    value = field.read(t, "value")
    records = t.raw("records", '["<record id>", ...]')
    if not isinstance(records, list) or not records or not all(isinstance(r, str) and r.strip() for r in records):
        raise t.error("records", f"{records!r} is not a list of record ids",
                      "a measured figure cites the stored records it rests on: `records = [\"<id>\", ...]`")
    method = t.text("method", '"rdmarig calibrate host, ..."')
    low = high = None
    low_text = high_text = interval = ""
    if "low" in t.data or "high" in t.data:
        low, high = (_bound(t, b, field) for b in ("low", "high"))
        if not low <= value <= high:
            raise t.error("value", f"{t.data['value']!r} lies outside its own interval "
                          f"{t.data['low']!r} .. {t.data['high']!r}", "give low <= value <= high")
        low_text, high_text = str(t.data["low"]), str(t.data["high"])
        interval = t.text("interval", '"95% fit interval"')
    elif "interval" in t.data:
        raise t.error("interval", "an interval without `low` and `high`", "add both, or remove `interval`")
    return Measured(value=float(value), text=str(t.data["value"]), records=tuple(r.strip() for r in records),
                    method=method, interval=interval, low=low, high=high, low_text=low_text, high_text=high_text)


def _bound(t: TomlTable, key: str, field: F.Field) -> float:
    if field.kind == "whole":
        return float(t.whole(key, minimum=0))
    if field.kind == "number":
        return t.number(key)
    return t.quantity(key, field.parser, field.example, positive=False)
