import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import datetime as dt
import json

import pytest

from results import store as store_mod
from results.record import Record
from results.export import export_csv, export_jsonl
from results.store import Store
from scenarios.errors import InputError


def _rec(name="verbs.write", kind="measured", value=1.0):
    return Record(kind=kind, name=name, summary={"median_gbytes_per_s": value},
                  params={"io_size_bytes": 1048576}, provenance={"host": "h", "git_sha": "abc"})


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
    monkeypatch.setenv("RDMARIG_STORE", str(tmp_path / "default.sqlite"))
    rec = _rec()
    Store().insert(rec)
    assert not (tmp_path / "default.sqlite").exists()
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


def test_csv_writes_whole_numbers_as_integers():
    rec = Record(kind="measured", name="copy.socket",
                 params={"io_size_bytes": 65536.0, "duration_s": 0.5, "source_bytes": 67108864.0},
                 summary={"n": 3.0, "median_bytes": 186384384.0, "median_gbytes_per_s": 2.0, "cv": 0.0,
                          "bytes": 1e6, "target_bytes_per_s": 46e9, "half_bytes": 0.5})
    header, row = export_csv([rec]).splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["params.io_size_bytes"] == "65536" and cells["params.source_bytes"] == "67108864"
    assert cells["summary.n"] == "3" and cells["summary.median_bytes"] == "186384384"
    assert cells["summary.bytes"] == "1000000"
    # one rule for every CSV the rig writes (results.tables.csv_cell): a whole float has no '.0'
    assert cells["summary.median_gbytes_per_s"] == "2" and cells["summary.cv"] == "0"
    assert cells["summary.target_bytes_per_s"] == "46000000000" and cells["summary.half_bytes"] == "0.5"
    assert cells["params.duration_s"] == "0.5"


def test_count_and_since(tmp_path, kit):
    path = tmp_path / "r.sqlite"
    kit.fill(path, 120)          # created 12:00:00 .. 12:01:59 UTC
    with Store(path) as st:
        assert st.count() == 120 and st.count(name="copy") == 120 and st.count(kind="modelled") == 0
        since = dt.datetime(2026, 11, 30, 12, 1, 0, tzinfo=dt.timezone.utc)
        assert st.count(since=since) == 60
        # the same instant written in another zone selects the same records
        plus_one = since.astimezone(dt.timezone(dt.timedelta(hours=1)))
        assert [r.id for r in st.query(since=plus_one)] == [r.id for r in st.query(since=since)]
        newest = st.query(limit=5)
        assert [r.summary["median_gbytes_per_s"] for r in newest] == [115.0, 116.0, 117.0, 118.0, 119.0]


def test_name_prefix_is_literal(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        for name in ("copy.memcpy", "copyXmemcpy", "copy_socket"):
            st.insert(_rec(name))
        assert [r.name for r in st.query(name="copy")] == ["copy.memcpy"]
        assert [r.name for r in st.query(name="copy_socket")] == ["copy_socket"]
        with pytest.raises(InputError, match="no record"):
            st.get("%")


def test_a_missing_store_is_created_on_first_use_unless_it_cannot_be(tmp_path):
    path = tmp_path / "new" / "r.sqlite"
    with Store(path) as st:
        assert st.query() == [] and st.count() == 0
    assert path.exists()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot open result store"):
        Store(blocker / "r.sqlite").query()


def test_cli_reads_a_damaged_store_with_a_warning_and_exit_1_and_refuses_writes(damaged_store, run_cli):
    path, recs, lost = damaged_store
    res = run_cli("results", "list", "--store", str(path), "--limit", "10000")
    assert res.code == 1 and "Traceback" not in res.err
    assert f"### {len(recs) - lost} records in {path}" in res.out
    first = res.err.splitlines()[0]
    assert first.startswith(f"rdmarig: warning: result store {path} is damaged (quick_check: ")
    assert "rdmarig results export" in first and ".recover" in first
    plotted = run_cli("results", "plot", "--store", str(path), "--out", str(path.parent.parent / "p.png"))
    assert plotted.code == 1 and "is damaged" in plotted.err
    run_cli("plan", "smbdirect-2x200g", "--store", str(path)).one_line_error(2, f"result store {path} is damaged")


def test_damaged_store_refuses_writes_and_spooled_records_wait(damaged_store, tmp_path, kit):
    path, _, _ = damaged_store
    before = kit.digest(path.parent)
    with pytest.raises(InputError, match="is damaged") as err:
        Store(path).insert(_rec())
    assert str(path) in str(err.value) and ".recover" in str(err.value)
    spool = tmp_path / "spool"
    spool.mkdir()
    rec = _rec()
    (spool / f"{rec.id}.json").write_text(rec.to_json())
    with pytest.raises(InputError, match="is damaged"):
        Store(path).ingest_spool(spool)
    assert (spool / f"{rec.id}.json").exists()
    assert kit.digest(path.parent) == before


def test_a_named_store_keeps_its_spooled_records(tmp_path, monkeypatch):
    """In the guest (spool mode) `--store PATH` is not written there (the guest's writes to the
    host's tree do not reach it): its records wait apart and land in PATH on the host."""
    from results.store import named_spools
    spool = tmp_path / "spool"
    monkeypatch.setenv("RDMARIG_SPOOL", str(spool))
    mine, theirs = _rec(), _rec()
    Store(tmp_path / "mine.sqlite").insert(mine)
    Store().insert(theirs)
    assert not (tmp_path / "mine.sqlite").exists()
    [(directory, target)] = named_spools(spool)
    assert target == tmp_path / "mine.sqlite" and [p.suffix for p in spool.glob("*.json")] == [".json"]
    monkeypatch.delenv("RDMARIG_SPOOL")
    with Store(target) as st:
        assert st.ingest_spool(directory) == [mine.id] and st.get(mine.id) == mine
    with Store(tmp_path / "run.sqlite") as st:
        assert st.ingest_spool(spool) == [theirs.id]


def test_damaged_index_is_found_and_every_record_still_reads(tmp_path, kit):
    path = tmp_path / "r.sqlite"
    recs = kit.fill(path, 300)
    kit.overwrite(path, kit.pages_of(path, "records_name"))
    with Store(path) as st:
        got = st.query(name="copy")         # would go through the broken index
        assert st.damage is not None
        assert [r.id for r in got] == [r.id for r in recs]


def test_recovery_advice_works(damaged_store, run_cli, tmp_path):
    """The first way the message names: export what reads, import it into a new store."""
    path, recs, lost = damaged_store
    saved = tmp_path / "saved.jsonl"
    new = tmp_path / "new.sqlite"
    exported = run_cli("results", "export", "--store", str(path), "--out", str(saved))
    assert exported.code == 1 and "is damaged" in exported.err       # exit 1: the store needs recovery
    assert run_cli("results", "import", str(saved), "--store", str(new)).code == 0
    with Store(new) as st:
        assert len(st.query(name="copy.socket")) == len(recs) - lost and st.damage is None
    again = run_cli("results", "import", str(saved), "--store", str(new))
    assert again.code == 0 and f"imported 0 records into {new} ({len(recs) - lost} were there already)" in again.err


def test_sqlite3_recover_works_where_the_shell_has_it(damaged_store, kit, tmp_path):
    """The second way: sqlite3's .recover (Debian 12's shell lacks it: no sqlite_dbpage)."""
    path, recs, lost = damaged_store
    shell = kit.sqlite3_cli()
    probe = subprocess.run([shell, ":memory:", "SELECT count(*) FROM sqlite_dbpage"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this sqlite3 shell cannot .recover: {probe.stderr.strip()}")
    recovered = tmp_path / "new.sqlite"
    proc = subprocess.run(f"{shell} '{path}' .recover | {shell} '{recovered}'", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with Store(recovered) as st:
        assert len(st.query(name="copy.socket")) >= len(recs) - lost


@pytest.mark.parametrize("content, fragment", [
    (b"hello, not a database\n" * 100, "not an SQLite database"),
    (b"SQLite format 3\x00" + b"\xff" * 4000, "not an SQLite database"),
])
def test_files_that_are_not_stores(tmp_path, content, fragment):
    path = tmp_path / "x.sqlite"
    path.write_bytes(content)
    for op in (lambda st: st.query(), lambda st: st.insert(_rec())):
        with pytest.raises(InputError, match=fragment):
            op(Store(path))
    assert path.read_bytes() == content


def test_foreign_database_and_empty_file(tmp_path):
    foreign = tmp_path / "other.sqlite"
    sqlite3.connect(foreign).executescript("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');")
    for op in (lambda st: st.query(), lambda st: st.insert(_rec())):
        with pytest.raises(InputError, match="not an rdmarig result store"):
            op(Store(foreign))
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    with Store(empty) as st:
        assert st.query() == []
        st.insert(_rec())
        assert len(st.query()) == 1


def test_a_locked_store_is_one_error_naming_the_file(tmp_path, monkeypatch, kit):
    path = tmp_path / "r.sqlite"
    kit.fill(path, 1)
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")          # another writer holds the write lock
    monkeypatch.setattr(store_mod, "_BUSY_TIMEOUT_S", 0.05)
    try:
        with pytest.raises(InputError, match="locked") as err:
            Store(path).insert(_rec())
        assert str(path) in str(err.value)
    finally:
        holder.rollback()
        holder.close()


def test_quick_check_is_bounded(tmp_path, monkeypatch, kit):
    path = tmp_path / "r.sqlite"
    kit.fill(path, 1)
    body = Record(kind="measured", name="big", samples={"x": [0.5] * 1000}).to_json()
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO records (id, format, kind, name, created, body) VALUES (?, ?, ?, ?, ?, ?)",
                       [(f"id{i}", "rdmarig.record/2", "measured", "big", "2026", body) for i in range(3000)])
    db.close()
    with Store(path) as st:
        assert st.count() == 3001 and st.checked_whole and st.damage is None
    monkeypatch.setattr(store_mod, "CHECK_BUDGET_S", 0.0)
    with Store(path) as st:
        assert st.count() == 3001 and not st.checked_whole and st.damage is None


@pytest.mark.parametrize("what", ["filesystem", "file"])
def test_read_only_store_lists_and_exports_and_refuses_writes(tmp_path, kit, what):
    """A store on a read-only mount, or a read-only file in a writable directory (bind-mounted
    read-only as root, whom file modes do not stop; chmod'ed otherwise)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    recs = kit.fill(ro / "r.sqlite", 5)
    out = tmp_path / "out"
    out.mkdir()
    run = kit.read_only(ro if what == "filesystem" else ro / "r.sqlite")
    driver = out / "drive.py"       # one interpreter runs every command (start-up is slow here)
    driver.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from rig.cli import main
        from results.record import Record
        from results.store import Store
        from scenarios.errors import InputError

        def run(tag, argv):
            try:
                main(argv)
                code = 0
            except SystemExit as exc:
                code = exc.code
            open({str(out)!r} + "/" + tag + ".rc", "w").write(str(code))

        store = {str(ro / "r.sqlite")!r}
        sys.stdout = open({str(out / "list.json")!r}, "w")
        run("list", ["results", "list", "--json", "--store", store])
        sys.stdout = sys.__stdout__
        run("export", ["results", "export", "--out", {str(out / "all.jsonl")!r}, "--store", store])
        try:
            Store(store).insert(Record(kind="measured", name="x"))
        except InputError as exc:
            open({str(out / "insert.err")!r}, "w").write(str(exc))
        sys.stderr = open({str(out / "plan.err")!r}, "w")
        run("plan", ["plan", "smbdirect-2x200g", "--store", store])
    """))
    proc = run(f"{sys.executable} {driver} > /dev/null")
    assert proc.returncode == 0, proc.stderr
    assert [(out / f"{t}.rc").read_text() for t in ("list", "export", "plan")] == ["0", "0", "2"]
    assert [r["id"] for r in json.loads((out / "list.json").read_text())] == [r.id for r in recs]
    assert len((out / "all.jsonl").read_text().splitlines()) == 5
    why = {"filesystem": "read-only filesystem", "file": "the file is not writable"}[what]
    assert f"is read-only ({why})" in (out / "insert.err").read_text()
    plan_err = (out / "plan.err").read_text()
    assert plan_err.startswith("rdmarig: error: result store") and "read-only" in plan_err
    assert plan_err.count("\n") == 1
