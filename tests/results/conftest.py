"""Real store files for the store tests: filled through Store.insert, damaged by overwriting pages."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from results.record import Record, from_json
from results.store import Store

PAGE_GARBAGE = b"\xde\xad\xbe\xef"


def fill_store(path: Path, n: int, name: str = "copy.socket") -> list[Record]:
    recs = [Record(kind="measured", name=name, created=f"2026-11-30T12:{i // 60:02d}:{i % 60:02d}+00:00",
                   params={"io_size_bytes": 4096 * (1 + i % 8), "path": "rw"},
                   summary={"median_gbytes_per_s": float(i)}, samples={"gbytes_per_s": [float(i)] * 50})
            for i in range(n)]
    with Store(path) as st:
        st.insert_many(recs)
    return recs


def pages_of(path: Path, table: str, pagetype: str | None = None) -> list[int]:
    """Page numbers of a table or index (SQLite's dbstat table)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sql = "SELECT pageno FROM dbstat WHERE name = ?" + (" AND pagetype = ?" if pagetype else "")
        return [r[0] for r in db.execute(sql, (table, pagetype) if pagetype else (table,))]
    except sqlite3.OperationalError as exc:
        pytest.skip(f"this SQLite has no dbstat table to find pages with: {exc}")
    finally:
        db.close()


def overwrite_pages(path: Path, pages: list[int]) -> None:
    size = sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * size)
            fh.write(PAGE_GARBAGE * (size // len(PAGE_GARBAGE)))


def file_digest(directory: Path) -> dict[str, str]:
    """Every file of a store's directory with its sha256: a read must leave them as they were."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def damaged_store(tmp_path):
    """A store of 300 records whose middle table leaf page is overwritten: (path, records, rows lost)."""
    path = tmp_path / "damaged" / "r.sqlite"
    path.parent.mkdir()
    recs = fill_store(path, 300)
    leaves = pages_of(path, "records", "leaf")
    victim = leaves[len(leaves) // 2]
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    on_page = db.execute("SELECT ncell FROM dbstat WHERE pageno = ?", (victim,)).fetchone()[0]
    db.close()
    assert on_page > 0
    overwrite_pages(path, [victim])
    return path, recs, on_page


def sqlite3_cli() -> str:
    exe = shutil.which("sqlite3")
    if exe is None:
        pytest.skip("the sqlite3 command-line shell is not installed (Debian package sqlite3)")
    return exe


def read_only_mount_runner(target: Path):
    """A way to run commands that see `target` (a directory or a file) read-only: as root a
    read-only bind mount in a private mount namespace (root ignores file modes); otherwise chmod."""
    if os.geteuid() == 0:
        mount = f"mount --bind -o ro '{target}' '{target}'"
        probe = subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")

        def run(script: str) -> subprocess.CompletedProcess:
            return subprocess.run(["unshare", "-m", "sh", "-ec", f"{mount}\n{script}"],
                                  capture_output=True, text=True, timeout=120)
        return run
    if target.is_dir():
        for p in target.iterdir():
            p.chmod(0o444)
        target.chmod(0o555)
    else:
        target.chmod(0o444)

    def run_chmod(script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=120)
    return run_chmod


@pytest.fixture
def kit():
    """The helpers above, for test modules (conftest is not importable under --import-mode=importlib)."""
    return SimpleNamespace(fill=fill_store, pages_of=pages_of, overwrite=overwrite_pages, digest=file_digest,
                           sqlite3_cli=sqlite3_cli, read_only=read_only_mount_runner)


@pytest.fixture(scope="session")
def plans():
    """fixtures/plan-records.jsonl as stored records: two plan records (`smbd`, `tcp`), the measured
    records beside them (`measured`), every record by id (`by_id`)."""
    text = (Path(__file__).parent / "fixtures" / "plan-records.jsonl").read_text()
    by_id = {r.id: r for r in (from_json(line) for line in text.splitlines())}
    return SimpleNamespace(smbd=by_id["fixture-plan-smbdirect-2x200g"], tcp=by_id["fixture-plan-smb-tcp-100g"],
                           measured=[r for r in by_id.values() if r.kind == "measured"], by_id=by_id)
