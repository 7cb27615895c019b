"""The result store: one SQLite file (WAL), one row per record, inserted atomically.

Location: `--store PATH`, else $RDMARIG_STORE, else ~/.local/share/rdmarig/results.sqlite.

Spool mode: where SQLite cannot be trusted (a guest writing over 9p), $RDMARIG_SPOOL names a
directory and `insert` writes each record there as one JSON file (temp file + rename, so a killed
run leaves no half record). The host then calls `ingest_spool` to move them into the store.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from results.record import Record, RecordError, from_json
from scenarios.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    scenario_sha256 TEXT,
    git_sha TEXT,
    host TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_name ON records(name, created);
CREATE INDEX IF NOT EXISTS records_kind ON records(kind, created);
"""


def default_store_path() -> Path:
    env = os.environ.get("RDMARIG_STORE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rdmarig" / "results.sqlite"


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self.spool = Path(os.environ["RDMARIG_SPOOL"]) if os.environ.get("RDMARIG_SPOOL") else None
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise InputError(f"cannot open result store {self.path}: {exc}",
                                 "pass --store PATH or set RDMARIG_STORE to a writable file") from None
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def insert(self, record: Record) -> str:
        if self.spool is not None:
            _spool_write(self.spool, record)
            return record.id
        db = self._conn()
        prov = record.provenance or {}
        with db:  # one transaction: the row is there whole or not at all
            db.execute(
                "INSERT INTO records (id, format, kind, name, created, scenario_sha256, git_sha, host, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, record.format, record.kind, record.name, record.created,
                 (record.scenario or {}).get("sha256"), prov.get("git_sha"), prov.get("host"),
                 record.to_json()),
            )
        return record.id

    def get(self, record_id: str) -> Record:
        db = self._conn()
        rows = db.execute("SELECT body FROM records WHERE id LIKE ? ORDER BY created",
                          (record_id + "%",)).fetchall()
        if not rows:
            raise InputError(f"no record with id {record_id!r} in {self.path}",
                             "list the ids with `rdmarig results list`")
        if len(rows) > 1:
            raise InputError(f"id prefix {record_id!r} matches {len(rows)} records",
                             "give more characters of the id")
        return from_json(rows[0][0])

    def query(self, kind: str | None = None, name: str | None = None, since: str | None = None,
              limit: int | None = None) -> list[Record]:
        """Records, oldest first. `name` matches a prefix ('verbs' finds 'verbs.write')."""
        sql, args = "SELECT body FROM records WHERE 1=1", []
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if name:
            sql += " AND (name = ? OR name LIKE ?)"
            args += [name, name + ".%"]
        if since:
            sql += " AND created >= ?"
            args.append(since)
        sql += " ORDER BY created DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        rows = self._conn().execute(sql, args).fetchall()
        return [from_json(r[0]) for r in reversed(rows)]

    def ingest_spool(self, spool: str | Path) -> list[str]:
        """Move every spooled record file into this store; returns the ids ingested."""
        ids = []
        for path in sorted(Path(spool).glob("*.json")):
            try:
                record = from_json(path.read_text())
            except (OSError, RecordError):
                continue  # a file being written is *.tmp, never *.json; skip foreign files
            saved, self.spool = self.spool, None
            try:
                if not self._conn().execute("SELECT 1 FROM records WHERE id=?", (record.id,)).fetchone():
                    self.insert(record)
            finally:
                self.spool = saved
            path.unlink()
            ids.append(record.id)
        return ids


def _spool_write(spool: Path, record: Record) -> None:
    spool.mkdir(parents=True, exist_ok=True)
    tmp = spool / f"{record.id}.tmp"
    with open(tmp, "w") as fh:
        fh.write(record.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, spool / f"{record.id}.json")


def export_jsonl(records: Iterable[Record]) -> str:
    return "".join(r.to_json() + "\n" for r in records)


def export_csv(records: Iterable[Record]) -> str:
    """One row per record: id, kind, name, created, then every summary and params key flattened."""
    rows = [_flat_row(r) for r in records]
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _flat_row(record: Record) -> dict[str, object]:
    row: dict[str, object] = {"id": record.id, "kind": record.kind, "name": record.name,
                              "created": record.created}
    for prefix, part in (("params", record.params), ("summary", record.summary)):
        for key, value in _flatten(part):
            row[f"{prefix}.{key}"] = value if not isinstance(value, (list, dict)) else json.dumps(value)
    return row


def _flatten(d: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value
