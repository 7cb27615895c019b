import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from results.record import Record
from results.store import Store, export_csv, export_jsonl
from scenarios.errors import InputError


def _rec(name="verbs.write", kind="measured", value=1.0):
    return Record(kind=kind, name=name, summary={"median_gbytes_per_s": value},
                  params={"size_bytes": 1048576}, provenance={"host": "h", "git_sha": "abc"})


def test_insert_get_query(tmp_path):
    with Store(tmp_path / "r.sqlite") as st:
        a, b, c = _rec(value=1.0), _rec("verbs.read", value=2.0), _rec("plan.x", "modelled", 3.0)
        for r in (a, b, c):
            st.insert(r)
        assert st.get(a.id[:8]) == a
        assert [r.id for r in st.query(name="verbs")] == [a.id, b.id]
        assert [r.id for r in st.query(kind="modelled")] == [c.id]
        assert len(st.query(limit=2)) == 2


def test_store_uses_wal(tmp_path):
    with Store(tmp_path / "r.sqlite") as st:
        st.insert(_rec())
    mode = sqlite3.connect(tmp_path / "r.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unknown_id_and_unwritable_store_are_input_errors(tmp_path):
    with Store(tmp_path / "r.sqlite") as st:
        st.insert(_rec())
        with pytest.raises(InputError, match="no record"):
            st.get("ffffffff")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot open result store"):
        Store(blocker / "sub" / "r.sqlite").insert(_rec())


def test_spool_then_ingest(tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    monkeypatch.setenv("RDMARIG_SPOOL", str(spool))
    rec = _rec()
    Store(tmp_path / "never.sqlite").insert(rec)
    assert not (tmp_path / "never.sqlite").exists()
    assert [p.suffix for p in spool.iterdir()] == [".json"]
    monkeypatch.delenv("RDMARIG_SPOOL")
    (spool / "half-written.tmp").write_text("{")
    with Store(tmp_path / "host.sqlite") as st:
        assert st.ingest_spool(spool) == [rec.id]
        assert st.get(rec.id) == rec
    assert [p.name for p in spool.iterdir()] == ["half-written.tmp"]


def test_killed_writer_leaves_only_whole_records(tmp_path):
    """SIGKILL a process in the middle of inserting: every row left must parse as a whole record."""
    db = tmp_path / "r.sqlite"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from results.record import Record
        from results.store import Store
        st = Store({str(db)!r})
        i = 0
        while True:
            st.insert(Record(kind="measured", name="t", samples={{"x": [float(j) for j in range(2000)]}}))
            i += 1
            if i == 20:
                print("go", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "go"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store(db) as st:
        records = st.query()
    assert len(records) >= 20
    assert all(len(r.samples["x"]) == 2000 for r in records)


def test_exports(tmp_path):
    recs = [_rec(value=1.5), _rec("verbs.read", value=2.5)]
    lines = export_jsonl(recs).splitlines()
    assert len(lines) == 2
    csv_text = export_csv(recs)
    header, first, _ = csv_text.splitlines()
    assert "summary.median_gbytes_per_s" in header.split(",")
    assert "1.5" in first.split(",")
