"""The one versioned record format for measured and modelled results.

A record is a self-describing JSON document:

    {format: "rdmarig.record/2", id, created, kind: "measured" | "modelled", name,
     scenario: {name, path, sha256} | null, params: {...}, provenance: {...},
     samples: {series_name: [floats...]}, summary: {name_with_unit: float | str}}

Every numeric key carries its unit in its name (`gbytes_per_s`, `cpu_s_per_gb`, `bytes`); the I/O
size of every record kind is `params.io_size_bytes` (scenarios.units.IO_SIZE_KEY).
Older formats are upgraded on load by `from_dict`; each old version keeps a fixture in tests.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from scenarios.units import IO_SIZE_KEY

FORMAT = "rdmarig.record/2"
KINDS = ("measured", "modelled")


class RecordError(ValueError):
    """A document that is not a record of a format this version understands."""


@dataclass
class Record:
    kind: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    scenario: dict[str, Any] | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    format: str = FORMAT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RecordError(f"record kind must be one of {KINDS}, not {self.kind!r}")
        if not self.name:
            raise RecordError("record needs a name")

    def to_dict(self) -> dict[str, Any]:
        # the fields as they are: asdict's deep copy took 2/3 of the time of a 100,000-point plan record
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(_finite(self.to_dict()), indent=indent, sort_keys=True)


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null so every reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _upgrade_v0(doc: dict[str, Any]) -> dict[str, Any]:
    """Format 0 (pre-release drafts): `type` instead of `kind`, `data` instead of `samples`."""
    doc = dict(doc)
    doc["kind"] = doc.pop("type")
    doc["samples"] = doc.pop("data", {})
    doc.setdefault("summary", {})
    doc.setdefault("scenario", None)
    doc["format"] = "rdmarig.record/1"
    return doc


# format 1 named the I/O size after the record kind: verbs/perftest `msg_bytes`, copy.memcpy
# `size_bytes`, copy.socket `chunk_bytes`
_V1_IO_SIZE_KEYS = ("msg_bytes", "size_bytes", "chunk_bytes")


def _upgrade_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: the I/O size is params.io_size_bytes in every record kind."""
    doc = dict(doc)
    params = dict(doc.get("params") or {})
    for key in _V1_IO_SIZE_KEYS:
        if key in params:
            value = params.pop(key)
            params.setdefault(IO_SIZE_KEY, value)
    doc["params"] = params
    doc["format"] = FORMAT
    return doc


_UPGRADES = {"rdmarig.record/0": _upgrade_v0, "rdmarig.record/1": _upgrade_v1}


def from_dict(doc: dict[str, Any]) -> Record:
    fmt = doc.get("format")
    while fmt in _UPGRADES:
        doc = _UPGRADES[fmt](doc)
        fmt = doc.get("format")
    if fmt != FORMAT:
        raise RecordError(f"unknown record format {fmt!r} (this rdmarig reads {FORMAT})")
    known = {f for f in Record.__dataclass_fields__}
    try:
        return Record(**{k: v for k, v in doc.items() if k in known})
    except TypeError as exc:
        raise RecordError(f"record is missing a field: {exc}") from None


def from_json(text: str) -> Record:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RecordError("a record is a JSON object")
    return from_dict(doc)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def scenario_ref(name: str, path: str | Path) -> dict[str, str]:
    """What a record says about the scenario it came from: name, file path and content hash."""
    return {"name": name, "path": str(path), "sha256": file_sha256(path)}
