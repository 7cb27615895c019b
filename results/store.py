"""The result store: one SQLite file (WAL), one row per record, inserted atomically.

Location: `--store PATH`, else $RDMARIG_STORE, else ~/.local/share/rdmarig/results.sqlite.

Reading never writes: an existing store is opened read-only (`file:...?mode=ro`; on a read-only
filesystem `immutable=1`, since nobody can be writing there). A missing store is created empty
on first use, as before (the CLI's read commands refuse a missing store instead). Writing opens
the file read-write only after the check, and refuses a read-only or damaged store.

Damage: the first open runs `PRAGMA quick_check`, bounded by CHECK_BUDGET_S (a bigger store is
checked as far as the budget reaches). A damaged store is never written into; reads fall back
to a salvage scan (every table row that still reads, in rowid order, skipping broken pages) and
`damage` says what was found and how to recover. Every sqlite3 error becomes an InputError
naming the file.

Spool mode: where SQLite cannot be trusted (a guest writing over 9p), $RDMARIG_SPOOL names a
directory and `insert` writes each record there as one JSON file (temp file + rename, so a killed
run leaves no half record). The host then calls `ingest_spool` to move them into the store.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import sqlite3
import threading
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
_COLUMNS = "id, format, kind, name, created, scenario_sha256, git_sha, host, body"

# quick_check reads every b-tree page once (~65 ms for 10,000 records / 67 MB here,
# benchmarks/store_open.py); past this budget a big store is left checked in part, not waited on
CHECK_BUDGET_S = 0.5
# a salvage scan that cannot read max(rowid) probes this many rowids past the last one read
_SALVAGE_PROBE = 100_000
_BUSY_TIMEOUT_S = 30


def default_store_path() -> Path:
    env = os.environ.get("RDMARIG_STORE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "rdmarig" / "results.sqlite"


class Store:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_store_path()
        self.named = bool(path)              # the caller named this store (spooled records keep its name)
        self.spool = Path(os.environ["RDMARIG_SPOOL"]) if os.environ.get("RDMARIG_SPOOL") else None
        self._db: sqlite3.Connection | None = None
        self._writable = False
        self._salvaged: sqlite3.Connection | None = None
        self._empty = False
        self.damage: str | None = None       # what quick_check (or a failed read) found
        self.checked_whole = False           # quick_check finished inside its budget
        self.unreadable_parts = 0            # salvage: rows or pages skipped
        self.unreadable_records = 0          # rows whose body is not a record

    # ---- opening -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection | None:
        """The connection reads go to: the file (read-only unless already open for writing), or
        the salvaged copy of a damaged store; None when there is no store file yet."""
        if self._salvaged is not None:
            return self._salvaged
        if self._db is None:
            if not self.path.exists():
                # as ever, a store is created empty on first use (the CLI's read commands refuse a
                # missing store before they get here); where it cannot be, it reads as empty
                return None if _why_read_only(self.path) else self._writer()
            if self.path.is_dir():
                raise InputError(f"result store {self.path} is a directory",
                                 "pass --store PATH of a file (e.g. results.sqlite)")
            with self._errors("open"):
                self._db = self._connect_read_only()
                self._check(self._db)
                self._empty = not self._has_records_table(self._db)
        if self._empty:
            return None
        if self.damage is not None:
            return self._salvage()
        return self._db

    def _connect_read_only(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
        try:
            db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.OperationalError:
            if not _read_only_filesystem(self.path.parent):
                raise
            # a WAL store on a read-only filesystem without its -shm file, which cannot be
            # created there; nothing can change the file either, so it is read as immutable
            db.close()
            db = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True)
        except sqlite3.DatabaseError:
            pass              # not a database, or damaged: quick_check says which
        return db

    def _check(self, db: sqlite3.Connection) -> None:
        with _deadline(db, CHECK_BUDGET_S):
            try:
                rows = db.execute("PRAGMA quick_check(5)").fetchall()
            except sqlite3.OperationalError as exc:
                if "interrupt" in str(exc):
                    return          # over budget: checked in part, found nothing so far
                raise
            except sqlite3.DatabaseError as exc:   # the check itself hit a page it cannot parse
                if "not a database" in str(exc):
                    raise InputError(f"{self.path} is not an SQLite database ({exc})",
                                     "pass --store PATH of a result store; if it was one, its first page "
                                     f"is damaged: try `sqlite3 {self.path} .recover`") from None
                rows = [(str(exc),)]
        found = " ".join(" ".join(str(r[0]) for r in rows).split())
        self.checked_whole = True
        if found != "ok":
            self.damage = found.removeprefix("*** in database main *** ")

    def _has_records_table(self, db: sqlite3.Connection) -> bool:
        """False for an empty file (it reads as an empty store); refuses a foreign database."""
        if self.damage is not None:
            return True
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if "records" in tables:
            return True
        if tables:
            raise InputError(f"{self.path} is an SQLite database but not an rdmarig result store "
                             f"(tables: {', '.join(sorted(tables)[:5])})",
                             "pass --store PATH of a result store, or a new file name")
        return False

    def open_for_writing(self) -> None:
        """Open (and create) the store for inserts now, so that a read-only or damaged store is
        refused before anything is measured. A no-op in spool mode."""
        if self.spool is None:
            self._writer()

    def _writer(self) -> sqlite3.Connection:
        if self._db is not None and self._writable:
            return self._db
        if self.path.exists():
            self._reader()                     # checks the file without writing into it
            if self.damage is not None:
                raise InputError(self.damage_cause(), f"nothing was written into it; {self.recovery()}")
            self.close()
        why = _why_read_only(self.path)
        if why:
            raise InputError(f"result store {self.path} is read-only ({why}): it can be listed and "
                             "exported, not written", "pass --store PATH to a writable file")
        with self._errors("open"):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot open result store {self.path}: {exc.strerror}",
                                 "pass --store PATH or set RDMARIG_STORE to a writable file") from None
            db = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
        self._db, self._writable = db, True
        return db

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Every sqlite3 error becomes one line naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._input_error(exc, doing) from None

    def _input_error(self, exc: sqlite3.Error, doing: str) -> InputError:
        text = str(exc)
        if "not a database" in text:
            return InputError(f"{self.path} is not an SQLite result store ({text})",
                              "pass --store PATH of a result store, or a new file name")
        if isinstance(exc, sqlite3.DatabaseError) and "malformed" in text:
            self.damage = self.damage or text
            return InputError(self.damage_cause(), self.recovery())
        if "locked" in text or "busy" in text:
            return InputError(f"result store {self.path} stayed locked by another writer for "
                              f"{_BUSY_TIMEOUT_S} s ({text})", "retry when the other rdmarig command ends")
        if "readonly" in text or "read-only" in text:
            return InputError(f"result store {self.path} is read-only ({text}): it can be listed "
                              "and exported, not written", "pass --store PATH to a writable file")
        if doing == "open":
            return InputError(f"cannot open result store {self.path}: {text}",
                              "pass --store PATH or set RDMARIG_STORE to a writable file")
        return InputError(f"result store {self.path}: {doing} failed: {text}",
                          "check the file, or pass --store PATH of another store")

    def damage_cause(self) -> str:
        return f"result store {self.path} is damaged (quick_check: {_shorten(self.damage or '')})"

    def recovery(self) -> str:
        p = str(self.path)
        return (f"save what still reads with `rdmarig results export --store {p} --out saved.jsonl` and "
                "`rdmarig results import saved.jsonl --store NEW.sqlite`, or use an sqlite3 shell "
                f"that has .recover: `sqlite3 {p} .recover | sqlite3 NEW.sqlite`")

    def close(self) -> None:
        for db in (self._db, self._salvaged):
            if db is not None:
                db.close()
        self._db = self._salvaged = None
        self._writable = self._empty = False

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- salvage -------------------------------------------------------------------------

    def _salvage(self) -> sqlite3.Connection:
        """Copy every row of the damaged file that still reads into an in-memory store, so the
        ordinary queries run unchanged. Rows are read in rowid order (the table's own b-tree, no
        index); a row or page that fails is stepped over one rowid at a time."""
        if self._salvaged is not None:
            return self._salvaged
        src = self._db
        mem = sqlite3.connect(":memory:")
        mem.executescript(_SCHEMA)
        rows: list[tuple] = []
        if src is not None:
            rows = self._readable_rows(src)
        mem.executemany(f"INSERT OR IGNORE INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [r for r in rows if all(isinstance(v, (str, type(None))) for v in r)
                         and None not in (r[0], r[1], r[2], r[3], r[4], r[8])])
        self._salvaged = mem
        return mem

    def _readable_rows(self, db: sqlite3.Connection) -> list[tuple]:
        try:
            top = db.execute("SELECT max(rowid) FROM records").fetchone()[0]
        except sqlite3.DatabaseError:
            top = None
        rows: list[tuple] = []
        last = 0
        while True:
            try:
                for row in db.execute(f"SELECT rowid, {_COLUMNS} FROM records WHERE rowid > ? ORDER BY rowid",
                                      (last,)):
                    last = row[0]
                    rows.append(row[1:])
                return rows
            except sqlite3.DatabaseError:
                self.unreadable_parts += 1
            end = top if top is not None else last + _SALVAGE_PROBE
            for rowid in range(last + 1, end + 1):
                try:
                    row = db.execute(f"SELECT {_COLUMNS} FROM records WHERE rowid = ?", (rowid,)).fetchone()
                except sqlite3.DatabaseError:
                    continue
                if row is not None:
                    rows.append(row)
                    last = rowid
                    break
            else:
                return rows

    # ---- reading and writing -------------------------------------------------------------

    def insert(self, record: Record) -> str:
        if self.spool is not None:
            _spool_write(named_spool(self.spool, self.path) if self.named else self.spool, record)
            return record.id
        db = self._writer()
        with self._errors("insert"), db:  # one transaction: the row is there whole or not at all
            db.execute(f"INSERT INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", _row(record))
        return record.id

    def insert_many(self, records: Iterable[Record]) -> int:
        """Insert in one transaction, skipping ids the store has; returns how many were new."""
        db = self._writer()
        rows = [_row(r) for r in records]
        with self._errors("insert"), db:
            before = db.total_changes
            db.executemany(f"INSERT OR IGNORE INTO records ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return db.total_changes - before

    def _rows(self, sql: str, args: list | tuple) -> list[tuple]:
        db = self._reader()
        if db is None:
            return []
        try:
            with self._errors("read"):
                return db.execute(sql, args).fetchall()
        except InputError:
            if self.damage is None or db is self._salvaged:
                raise
        return self._salvage().execute(sql, args).fetchall()   # damage found by this read

    def _records(self, bodies: Iterable[str]) -> list[Record]:
        out = []
        for body in bodies:
            try:
                out.append(from_json(body))
            except RecordError:
                self.unreadable_records += 1
        return out

    def get(self, record_id: str) -> Record:
        rows = self._rows("SELECT body FROM records WHERE id LIKE ? ESCAPE '\\' ORDER BY created",
                          (_like_prefix(record_id),))
        if not rows:
            raise InputError(f"no record with id {record_id!r} in {self.path}",
                             "list the ids with `rdmarig results list`")
        if len(rows) > 1:
            raise InputError(f"id prefix {record_id!r} matches {len(rows)} records",
                             "give more characters of the id")
        records = self._records([rows[0][0]])
        if not records:
            raise InputError(f"record {record_id!r} in {self.path} is not a record this rdmarig reads",
                             "export it with `rdmarig results export` and inspect the JSON")
        return records[0]

    def query(self, kind: str | None = None, name: str | None = None,
              since: str | _dt.datetime | None = None, limit: int | None = None) -> list[Record]:
        """Records, oldest first (the newest `limit` of them). `name` matches a prefix ('verbs'
        finds 'verbs.write'); `since` is an ISO time or an aware datetime."""
        where, args = _where(kind, name, since)
        if limit:   # pick the rows first, so the sort does not carry every record's body
            where = f" WHERE rowid IN (SELECT rowid FROM records{where} ORDER BY created DESC LIMIT ?)"
            args.append(int(limit))
        sql = f"SELECT body FROM records{where} ORDER BY created DESC, rowid DESC"
        return self._records(r[0] for r in reversed(self._rows(sql, args)))

    def count(self, kind: str | None = None, name: str | None = None,
              since: str | _dt.datetime | None = None) -> int:
        """How many records `query` would return without a limit (counted, not loaded)."""
        where, args = _where(kind, name, since)
        rows = self._rows(f"SELECT count(*) FROM records{where}", args)
        return int(rows[0][0]) if rows else 0

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
                db = self._writer()
                with self._errors("read"):
                    present = db.execute("SELECT 1 FROM records WHERE id=?", (record.id,)).fetchone()
                if not present:
                    self.insert(record)
            finally:
                self.spool = saved
            path.unlink()
            ids.append(record.id)
        return ids


def _row(record: Record) -> tuple:
    prov = record.provenance or {}
    return (record.id, record.format, record.kind, record.name, record.created,
            (record.scenario or {}).get("sha256"), prov.get("git_sha"), prov.get("host"), record.to_json())


def _where(kind: str | None, name: str | None, since: str | _dt.datetime | None) -> tuple[str, list]:
    sql, args = " WHERE 1=1", []
    if kind:
        sql += " AND kind = ?"
        args.append(kind)
    if name:
        sql += " AND (name = ? OR name LIKE ? ESCAPE '\\')"
        args += [name, _like_prefix(name + ".")]
    if since:
        # julianday() reads the UTC offset of both sides, so a time given in another zone compares right
        sql += " AND julianday(created) >= julianday(?)"
        args.append(since.isoformat() if isinstance(since, _dt.datetime) else since)
    return sql, args


@contextlib.contextmanager
def _deadline(db: sqlite3.Connection, seconds: float) -> Iterator[None]:
    """Interrupt what `db` runs once `seconds` have passed. interrupt() stops quick_check even
    inside its page walk (a progress handler is not called there); it is a no-op while nothing
    runs, so it is repeated until the statement is over."""
    done = threading.Event()

    def watch() -> None:
        if done.wait(seconds):
            return
        while True:
            db.interrupt()
            if done.wait(0.001):
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching `text` literally at the start ('_' and '%' are not wildcards)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _read_only_filesystem(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _why_read_only(path: Path) -> str | None:
    """Why SQLite could not write `path` (and its -wal/-shm files beside it), or None."""
    directory = path.parent if path.parent.is_dir() else None
    if directory is not None and _read_only_filesystem(directory):
        return "read-only filesystem"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    if directory is not None and not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is not writable"
    return None


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


NAMED_SPOOLS = "named"        # under a spool: one directory per store a command named (--store)
STORE_NAME_FILE = "store.path"


def named_spool(spool: Path, store: Path) -> Path:
    """Where a spooled record for the store `store` waits: its own directory, naming the store,
    so the host lands it in the store the command asked for, not in the run's default one."""
    target = str(Path(os.path.abspath(store)))
    d = Path(spool) / NAMED_SPOOLS / hashlib.sha256(target.encode()).hexdigest()[:16]
    if not (d / STORE_NAME_FILE).exists():
        d.mkdir(parents=True, exist_ok=True)
        (d / STORE_NAME_FILE).write_text(target)
    return d


def named_spools(spool: Path) -> list[tuple[Path, Path]]:
    """(directory, store) of every named store's records waiting under `spool`."""
    out = []
    for d in sorted((Path(spool) / NAMED_SPOOLS).glob("*")):
        try:
            out.append((d, Path((d / STORE_NAME_FILE).read_text())))
        except OSError:
            continue
    return out


def _spool_write(spool: Path, record: Record) -> None:
    spool.mkdir(parents=True, exist_ok=True)
    tmp = spool / f"{record.id}.tmp"
    with open(tmp, "w") as fh:
        fh.write(record.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, spool / f"{record.id}.json")
