"""Measured records: a probe's raw samples and summary wrapped with this host's provenance, and
stored as soon as each is complete, so an interrupted run keeps everything finished before it."""

from __future__ import annotations

from typing import Any

from results import provenance
from results.record import Record
from results.store import Store


def measured_record(name: str, params: dict[str, Any], samples: dict[str, list[float]],
                    summary: dict[str, Any], extra_provenance: dict[str, Any] | None = None,
                    scenario: dict[str, Any] | None = None) -> Record:
    return Record(kind="measured", name=name, params=params, samples=samples, summary=summary,
                  provenance=provenance.collect(extra_provenance), scenario=scenario)


def store_record(record: Record, store: Store | None) -> Record:
    if store is not None:
        store.insert(record)
    return record
