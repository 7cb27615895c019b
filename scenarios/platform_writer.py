"""Writing platform profiles: the measured section, and a new profile that names a base.

The reader is scenarios/profile.py. `rdmarig calibrate host` owns one part of its target profile,
the measured section at the end of the file below MARKER: it rewrites that part on every run and
leaves the rest as it was written. A new profile names a base and gives in its own sections only
what this host says it is (cores, clock, no DMA engines, ...), each figure with its source.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from scenarios.platform import Measured, toml_field

MARKER = "# ---- measured: written by `rdmarig calibrate host`, replaced on every run; edit above this line, not below"
# where each flat section sits in the file
_TABLES = {"cpu": "cpu", "memory": "memory", "nic": "nic", "pcie": "nic.pcie"}


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _table(key: str) -> str:
    """'cpu.copy_rate_cache' -> 'measured.cpu.copy_rate_cache'; 'pcie.lanes' -> 'measured.nic.pcie.lanes';
    'dma.dsa.rate' -> 'measured.dma."dsa".rate'."""
    section, _, rest = key.partition(".")
    if section == "dma":
        engine, _, figure = rest.rpartition(".")
        return f"measured.dma.{toml_string(engine)}.{figure}"
    return f"measured.{_TABLES[section]}.{rest}"


def measured_section(figures: Mapping[str, Measured]) -> str:
    """MARKER and one [measured.*] table per figure: value, interval, method, the records cited."""
    lines = [MARKER]
    for key in sorted(figures):
        m = figures[key]
        field = toml_field(key)
        kind = field.kind if field is not None else "quantity"
        value = int(round(m.value)) if kind == "whole" else float(m.text) if kind == "number" else m.text
        lines += ["", f"[{_table(key)}]", f"value = {toml_value(value)}"]
        if m.low_text:
            low, high = ((int(round(m.low)), int(round(m.high))) if kind == "whole" else
                         (float(m.low_text), float(m.high_text)) if kind == "number" else (m.low_text, m.high_text))
            lines += [f"low = {toml_value(low)}", f"high = {toml_value(high)}", f"interval = {toml_string(m.interval)}"]
        lines += [f"method = {toml_string(m.method)}", f"records = {toml_value(list(m.records))}"]
    return "\n".join(lines) + "\n"


def without_measured(text: str) -> str:
    """The profile's text above its measured section (all of it when there is none)."""
    at = text.find(MARKER)
    return (text if at < 0 else text[:at]).rstrip() + "\n"


def with_measured(text: str, figures: Mapping[str, Measured]) -> str:
    """The profile with its measured section replaced by `figures` (none: no section)."""
    head = without_measured(text)
    return head + ("\n" + measured_section(figures) if figures else "")


def new_profile(name: str, description: str, base: str, header: Sequence[str],
                own: Mapping[str, Sequence[tuple[str, Any, str | None]]], no_dma_because: str = "") -> str:
    """A profile that builds on `base`. `own` = {"cpu": [(key, value, source or None), ...], "pcie": ...}:
    the figures this host gives itself (quantities as text with their unit, counts as int).
    `no_dma_because`: the host has no DMA engines (why), so the base's [[dma]] do not apply."""
    lines = [f"# {h}" for h in header]
    lines += [f"name = {toml_string(name)}", f"description = {toml_string(description)}",
              f"base = {toml_string(base)}"]
    if no_dma_because:
        lines += [f"# {no_dma_because}", "dma = []"]
    for section in ("cpu", "memory", "nic", "pcie"):
        rows = own.get(section)
        if not rows:
            continue
        lines += ["", f"[{_TABLES[section]}]"]
        for key, value, source in rows:
            lines.append(f"{key} = {toml_value(value)}")
            if source is not None:
                lines.append(f"{key}_source = {toml_string(source)}")
    return "\n".join(lines) + "\n"
