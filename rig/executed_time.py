"""Guest CPU figures in executed time: a record's CPU seconds times the share of its guest busy
time the host executed (provenance `guest_cpu_executed`, rig.guest.hostload).

Under TCG a guest CPU second is not a constant amount of work: the guest counts a vCPU as running
whenever it is not idle, also while the emulator does not run its thread (the host's hypervisor took
the host's CPU, or the vCPU waits inside the emulator). How much of that a record holds depends on
the host's load while it ran; parts and whole compared in executed seconds do not carry it. In the
2026-12-01 19:32 session (host steal 2 %) the share was 0.94-1.00 for parts and whole alike, so the
conversion moved little; it matters where the host's load moves between the parts and the whole.
Records without the annotation (the host's own, older guest runs) are returned as they are.

Which summary and sample fields are CPU time, by the words of their keys: a numeric field whose key
has the word `cpu` (CPU seconds, CPU-s per GB, CPU-s per second) or ends in `busy_ratio` (busy CPU
time per wall second) is multiplied by the share; one naming `per_cpu_second` (bytes per CPU
second) is divided by it; a key with the word `ratio` otherwise (a ratio of two CPU figures) or
`steal` (time not executed), and every other field (bytes, wall seconds, rates per wall second,
counts), stay."""

from __future__ import annotations

import dataclasses
from typing import Any

from results.record import Record

ANNOTATION = "guest_cpu_executed"


def executed_fraction(r: Record) -> float | None:
    """Executed vCPU seconds per guest busy second over the record's window; None where not known."""
    ran = (r.provenance or {}).get(ANNOTATION) or {}
    share = ran.get("executed_fraction")
    return float(share) if isinstance(share, (int, float)) and share > 0 else None


def _scale_of(key: str, share: float) -> float:
    words = key.split("_")
    if "per_cpu_second" in key:
        return 1.0 / share
    if key.endswith("busy_ratio") or ("cpu" in words and "ratio" not in words and "steal" not in words):
        return share
    return 1.0


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, bool) or factor == 1.0:
        return value
    if isinstance(value, (int, float)):
        return value * factor
    if isinstance(value, list):
        return [v * factor if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
    return value


def in_executed_time(r: Record) -> Record:
    """The record with its CPU fields in executed seconds (see the module's text), marked
    `provenance.cpu_time = "executed"`; unchanged where its executed share is not known."""
    share = executed_fraction(r)
    if share is None:
        return r
    summary = {k: _scaled(v, _scale_of(k, share)) for k, v in (r.summary or {}).items()}
    samples = {k: _scaled(v, _scale_of(k, share)) for k, v in (r.samples or {}).items()}
    return dataclasses.replace(r, summary=summary, samples=samples,
                               provenance={**(r.provenance or {}), "cpu_time": "executed"})


def all_in_executed_time(records: list[Record]) -> tuple[list[Record], int]:
    """Every record in executed time where it can be; and how many were converted."""
    out = [in_executed_time(r) for r in records]
    return out, sum(1 for a, b in zip(records, out) if a is not b)
