"""Records out of the store: JSON lines (whole records) and CSV (one flat row per record)."""

from __future__ import annotations

import csv
import io
import json
from typing import Iterable, Iterator

from results.record import Record
from scenarios.units import split_unit


def export_jsonl(records: Iterable[Record]) -> str:
    return "".join(r.to_json() + "\n" for r in records)


def export_csv(records: Iterable[Record]) -> str:
    """One row per record: id, kind, name, created, then every summary and params key flattened.

    Counts and sizes print as integers: an integral float whose key names bytes (unit suffix
    `_bytes`, or the key `bytes`) or a count (`n`) is written `65536`, not `65536.0`. Other
    floats keep their form, so a measured 2.0 GB/s stays `2.0`."""
    rows = [_flat_row(r) for r in records]
    columns: list[str] = []
    seen: set[str] = set()
    for row in rows:
        for c in row:
            if c not in seen:
                seen.add(c)
                columns.append(c)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


_COUNT_KEYS = ("n", "bytes")


def _is_count_or_size(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf in _COUNT_KEYS or split_unit(leaf)[1] == "B"


def _csv_value(key: str, value: object) -> object:
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 and _is_count_or_size(key):
        return int(value)
    return value


def _flat_row(record: Record) -> dict[str, object]:
    row: dict[str, object] = {"id": record.id, "kind": record.kind, "name": record.name,
                              "created": record.created}
    for prefix, part in (("params", record.params), ("summary", record.summary)):
        for key, value in _flatten(part):
            row[f"{prefix}.{key}"] = _csv_value(key, value)
    return row


def _flatten(d: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
