"""Records out of the store: JSON lines (whole records) and CSV (one flat row per record)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from typing import Iterable, Iterator

from results.record import Record
from results.tables import csv_cell


def export_jsonl(records: Iterable[Record]) -> str:
    return "".join(r.to_json() + "\n" for r in records)


GZIP_MAGIC = b"\x1f\x8b"


class DamagedGzip(ValueError):
    pass


def gzipped(text: str) -> bytes:
    """`text` gzip-compressed with no timestamp, so one export of one store is one byte string
    (a committed session stays the same file when exported again)."""
    return gzip.compress(text.encode("utf-8"), mtime=0)


def ungzipped(data: bytes) -> bytes:
    """`data` as written: decompressed when it starts with gzip's magic bytes, else unchanged."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise DamagedGzip(str(exc) or type(exc).__name__) from None


def export_csv(records: Iterable[Record]) -> str:
    """One row per record: id, kind, name, created, then every summary and params key flattened.

    Cells are written by results.tables.csv_cell, the one CSV rule (a whole float without '.0')."""
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


def _csv_value(value: object) -> object:
    return json.dumps(value) if isinstance(value, (list, dict)) else csv_cell(value)


def _flat_row(record: Record) -> dict[str, object]:
    row: dict[str, object] = {"id": record.id, "kind": record.kind, "name": record.name,
                              "created": record.created}
    for prefix, part in (("params", record.params), ("summary", record.summary)):
        for key, value in _flatten(part):
            row[f"{prefix}.{key}"] = _csv_value(value)
    return row


def _flatten(d: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
