"""The CLI as a user meets it: real store files, exit codes and one-line errors."""

import contextlib
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from results.record import Record
from results.store import Store

ROOT = Path(__file__).resolve().parents[2]


def rdmarig(*args, store=None, check=False):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if store:
        env["RDMARIG_STORE"] = str(store)
    proc = subprocess.run([sys.executable, "-m", "rig.cli", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _readme_records():
    """Records as the README's steps write them: measure copy (memcpy, socket) on the host,
    measure verbs in the guest, plan; repeated socket runs at one size."""
    recs = []
    for size, gbps in ((65536, 27.5), (1048576, 39.8)):
        recs.append(Record(kind="measured", name="copy.memcpy", params={"io_size_bytes": size, "processes": 1},
                           summary={"median_total_gbytes_per_s": gbps, "n": 3.0}))
    for path, values in (("rw", (0.9, 1.1, 1.0)), ("splice", (1.3, 1.4, 1.2))):
        for v in values:
            recs.append(Record(kind="measured", name="copy.socket",
                               params={"io_size_bytes": 65536, "path": path, "source": "tmpfs", "via": "loopback"},
                               summary={"median_gbytes_per_s": v, "median_bytes": 186384384.0}))
    recs.append(Record(kind="measured", name="verbs.write.bw", params={"io_size_bytes": 1048576, "op": "write"},
                       summary={"bw_average_gbytes_per_s": 0.9, "bytes": 1048576000.0}))
    recs.append(Record(kind="modelled", name="plan:smbdirect-2x200g",
                       params={"point_paths": ["cpu-copy", "cpu-copy"], "swept": {}},
                       samples={"io_size_bytes": [65536.0, 8388608.0], "throughput_gbytes_per_s": [15.6, 24.6]}))
    return recs


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "r.sqlite"
    with Store(path) as st:
        st.insert_many(_readme_records())
    monkeypatch.setenv("RDMARIG_STORE", str(path))
    monkeypatch.chdir(tmp_path)
    return path


def test_results_list_show_export(tmp_path, run_cli):
    store = tmp_path / "r.sqlite"
    rec = Record(kind="measured", name="copy.memcpy", summary={"median_gbytes_per_s": 12.5})
    with Store(store) as st:
        st.insert(rec)
    out = rdmarig("results", "list", store=store, check=True).stdout      # the console entry, once
    assert rec.id[:12] in out and "copy.memcpy" in out and "median_gbytes_per_s=12.5" in out
    assert f"### 1 records in {store}" in out
    listed = json.loads(run_cli("results", "list", "--json", "--store", str(store)).out)
    assert listed[0]["id"] == rec.id
    shown = json.loads(run_cli("results", "show", rec.id[:10], "--store", str(store)).out)
    assert shown["summary"]["median_gbytes_per_s"] == 12.5
    csv_path = tmp_path / "r.csv"
    res = run_cli("results", "export", "--format", "csv", "--out", str(csv_path), "--store", str(store))
    assert res.code == 0 and res.err == f"wrote 1 records to {csv_path}\n"
    assert "summary.median_gbytes_per_s" in csv_path.read_text()


def test_gzip_export_imports_back_whole_and_is_the_same_bytes_each_time(store, tmp_path, run_cli):
    """A session too large to commit as text goes out as .jsonl.gz and comes back record for record."""
    first, again = tmp_path / "s.jsonl.gz", tmp_path / "again.jsonl.gz"
    assert run_cli("results", "export", "--out", str(first)).code == 0
    assert run_cli("results", "export", "--out", str(again)).code == 0
    assert first.read_bytes()[:2] == b"\x1f\x8b" and first.read_bytes() == again.read_bytes()
    fresh = tmp_path / "fresh.sqlite"
    res = run_cli("results", "import", str(first), "--store", str(fresh))
    assert res.code == 0 and "imported 10 records" in res.err, res.err
    with Store(store) as a, Store(fresh) as b:
        assert sorted(r.to_json() for r in a.query()) == sorted(r.to_json() for r in b.query())


def test_list_says_newest_n_of_all(store, run_cli):
    res = run_cli("results", "list", "--limit", "3")
    assert res.code == 0 and f"### newest 3 of 10 records in {store}" in res.out
    assert run_cli("results", "list", "--limit", "10").out.startswith(f"### 10 records in {store}")
    assert "### 1 records" in run_cli("results", "list", "--name", "verbs").out
    assert "### 0 records" in run_cli("results", "list", "--since", "2999-01-01").out
    assert "### 10 records" in run_cli("results", "list", "--since", "1h").out
    assert "### 10 records" in run_cli("results", "list", "--since", "2000-01-01T00:00+01:00").out


def test_csv_export_counts_and_sizes_are_integers(store, run_cli):
    res = run_cli("results", "export", "--format", "csv", "--name", "copy.socket")
    rows = list(csv.DictReader(io.StringIO(res.out)))
    assert len(rows) == 6 and {r["params.io_size_bytes"] for r in rows} == {"65536"}
    assert {r["summary.median_bytes"] for r in rows} == {"186384384"}


def test_readme_plot_line_works_on_the_readme_steps_records(store, run_cli):
    """`rdmarig results plot` (the README's line) draws every kind; a field path still works."""
    res = run_cli("results", "plot")
    assert res.code == 0, res.err
    assert "wrote out/plot.png: 5 lines from 11 stored points" in res.out
    assert (store.parent / "out" / "plot.png").read_bytes()[:4] == b"\x89PNG"
    res = run_cli("results", "plot", "--y", "summary.median_gbytes_per_s", "--out", "socket.svg")
    assert res.code == 0 and "2 lines from 6 stored points" in res.out
    assert "5 stored points have no numeric" in res.err
    assert (store.parent / "socket.svg").read_text().startswith("<?xml")


def _text_file(tmp: Path) -> Path:
    p = tmp / "notes.txt"
    p.write_text("not a database\n" * 50)
    return p


def _foreign_db(tmp: Path) -> Path:
    p = tmp / "other.sqlite"
    sqlite3.connect(p).executescript("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');")
    return p


def _first_page_damaged(tmp: Path) -> Path:
    p = tmp / "page1.sqlite"
    with Store(p) as st:
        st.insert(Record(kind="measured", name="x"))
    with open(p, "r+b") as fh:
        fh.write(b"\xde\xad\xbe\xef" * 1024)
    return p


def _bad_jsonl(tmp: Path) -> Path:
    p = tmp / "bad.jsonl"
    p.write_text('{"format": "rdmarig.record/2", "kind": "measured", "name": "x"}\n{\n')
    return p


def _good_jsonl(tmp: Path) -> Path:
    p = tmp / "good.jsonl"
    p.write_text(Record(kind="measured", name="x").to_json() + "\n")
    return p


def _cut_gzip(tmp: Path) -> Path:
    import gzip

    p = tmp / "cut.jsonl.gz"
    p.write_bytes(gzip.compress((Record(kind="measured", name="x").to_json() + "\n").encode())[:30])
    return p


def _regular_file(tmp: Path) -> Path:
    p = tmp / "plain"
    p.write_text("")
    return p


# one row per bad input: argv ({tmp}, {store} and {name} filled in), exit code, message fragment
BAD_INPUT = [
    (["results", "list", "--since", "yesterday-ish"], 2, "neither an ISO date/time nor an age"),
    (["results", "list", "--since", "2026-13-01"], 2, "neither an ISO date/time nor an age"),
    (["results", "list", "--since", "5"], 2, "neither an ISO date/time nor an age"),
    (["results", "list", "--since", "99999999999w"], 2, "reaches before year 1"),
    (["results", "list", "--limit", "0"], 2, "--limit 0 is outside 1..10000"),
    (["results", "list", "--limit", "1000000"], 2, "outside 1..10000"),
    (["results", "list", "--kind", "measure"], 2, "--kind 'measure' is not a record kind"),
    (["results", "show", "deadbeef"], 2, "no record with id 'deadbeef'"),
    (["results", "show", " "], 2, "the record id is empty"),
    (["results", "show", "g"], 2, "no record with id 'g'"),
    (["results", "export", "--format", "xml"], 2, "unknown export format 'xml'"),
    (["results", "export", "--kind", "modeled"], 2, "is not a record kind"),
    (["results", "export", "--out", "/nonexistent/dir/x.csv"], 2, "the directory /nonexistent/dir does not exist"),
    (["results", "export", "--out", "{tmp}"], 2, "is a directory"),
    (["results", "export", "--out", "/dev/full"], 2, "--out /dev/full: cannot write (No space left on device)"),
    (["results", "export", "--out", "{plain}/x.csv"], 2, "plain is not a directory"),
    (["results", "plot", "--y", "median_gbytes_per_s"], 2, "neither a field path nor a metric"),
    (["results", "plot", "--y", "summary.nothing"], 2, "no stored record has both"),
    (["results", "plot", "--x", "params.nope"], 2, "no stored record has both 'params.nope'"),
    (["results", "plot", "--out", "plot.gif"], 2, "cannot tell the image format from '.gif'"),
    (["results", "plot", "--out", "/nonexistent/p.png"], 2, "the directory /nonexistent does not exist"),
    (["results", "plot", "--group", " , "], 2, "--group is empty"),
    (["results", "plot", "--kind", "x"], 2, "is not a record kind"),
    (["results", "list", "--store", "{tmp}/missing.sqlite"], 2, "there is no result store at"),
    (["results", "plot", "--store", "{plain}/r.sqlite"], 2, "there is no result store at"),
    (["results", "list", "--store", "{tmp}"], 2, "is a directory"),
    (["results", "list", "--store", "{text}"], 2, "is not an SQLite database"),
    (["results", "export", "--store", "{foreign}"], 2, "not an rdmarig result store"),
    (["results", "show", "ab", "--store", "{page1}"], 2, "its first page is damaged"),
    (["results", "import", "{tmp}/missing.jsonl"], 2, "missing.jsonl: cannot read"),
    (["results", "import", "{bad}"], 2, "bad.jsonl line 2: not JSON"),
    (["results", "import", "{cut}"], 2, "cut.jsonl.gz is a damaged gzip file"),
    (["results", "import", "{good}", "--store", "{foreign}"], 2, "not an rdmarig result store"),
    (["results", "import", "{good}", "--store", "{text}"], 2, "is not an SQLite database"),
]


@pytest.mark.parametrize("argv, code, fragment", BAD_INPUT, ids=[" ".join(r[0]) for r in BAD_INPUT])
def test_bad_input_is_one_line(store, tmp_path, run_cli, argv, code, fragment):
    paths = {"tmp": tmp_path, "store": store, "plain": _regular_file(tmp_path), "text": _text_file(tmp_path),
             "foreign": _foreign_db(tmp_path), "page1": _first_page_damaged(tmp_path), "bad": _bad_jsonl(tmp_path),
             "good": _good_jsonl(tmp_path), "cut": _cut_gzip(tmp_path)}
    before = {p: p.read_bytes() for p in paths.values() if p.is_file()}
    run_cli(*[a.format(**paths) for a in argv]).one_line_error(code, fragment)
    assert {p: p.read_bytes() for p in before} == before        # a refused command changed no file
    assert not Path("/nonexistent").exists()


def test_writing_to_a_full_stdout_names_it(store, capsys, monkeypatch):
    from rig.cli import main

    full = open("/dev/full", "w")
    monkeypatch.setattr(sys, "stdout", full)
    with pytest.raises(SystemExit) as exc:
        main(["results", "export"])
    monkeypatch.undo()
    with contextlib.suppress(OSError):     # the buffered text still cannot be written
        full.close()
    assert exc.value.code == 2
    assert capsys.readouterr().err == ("rdmarig: error: cannot write to standard output (/dev/full): No space "
                                       "left on device; redirect the output to a writable file, or use --out FILE\n")
