"""`rdmarig measure copy` end to end: records stored, bad input as one line with exit 2."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from results.store import Store
from rig.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, store=None):
    cmd = [sys.executable, "-m", "rig.cli", "measure", "copy", *args]
    if store is not None:
        cmd += ["--store", str(store)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def _cli_in_process(capsys, *args, store, keep_stdout=False):
    """The console script's own entry point, without a new interpreter (~1 CPU-s of imports);
    returns (exit code, stderr), or (exit code, stdout) with keep_stdout."""
    with pytest.raises(SystemExit) as stop:
        main(["measure", "copy", *args, "--store", str(store)])
    out = capsys.readouterr()
    return stop.value.code, (out.out if keep_stdout else out.err)


def test_small_run_stores_records_and_prints_json(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    code, stdout = _cli_in_process(capsys, "--probe", "memcpy,socket", "--sizes", "64KiB", "--threads", "1",
                              "--paths", "rw,sendfile", "--source", "tmpfs,anon", "--repetitions", "2",
                              "--duration", "0.1s", "--json", store=store, keep_stdout=True)
    assert code == 0
    doc = json.loads(stdout)
    assert len(doc["memcpy"]) == 1 and len(doc["socket"]) == 3
    assert [s["reason"] for s in doc["skipped"]] == ["sendfile moves page cache pages of a file; "
                                                     "anonymous memory has no file"]
    with Store(store) as st:
        records = st.query(name="copy")
    assert sorted(r.id for r in records) == sorted(doc["record_ids"])
    mem = [r for r in records if r.name == "copy.memcpy"][0]
    assert mem.provenance["buffers"] == {"src_page_offset_bytes": 0, "dst_page_offset_bytes": 0}
    assert mem.summary["median_total_gbytes_per_s"] > 0
    sock = [r for r in records if r.name == "copy.socket"][0]
    assert len(sock.samples["gbytes_per_s"]) == 2
    assert "stability_warning" in sock.summary
    assert sock.provenance["network"]["interface"] == "lo"
    assert sock.provenance["kernel"]


# one row per bad input: (arguments, exit code, a fragment of the one-line message); every option
# is bounded and says its range
BAD_INPUT = [
    (["--probe", "memcopy"], 2, "unknown value memcopy"),
    (["--probe", "memcpy,memcpy"], 2, "listed twice"),
    (["--probe", ""], 2, "--probe: unknown value"),
    (["--paths", "rw,teleport"], 2, "unknown value teleport"),
    (["--paths", "rw,rw"], 2, "rw listed twice"),
    (["--source", "nfs"], 2, "unknown value nfs"),
    (["--via", "wifi"], 2, "unknown value wifi"),
    (["--probe", "socket", "--sizes", "0"], 2, "not a whole number"),
    (["--probe", "socket", "--sizes", "1GiB"], 2, "larger than this probe allows"),
    (["--probe", "csum", "--sizes", "512MiB"], 2, "use sizes up to 256 MiB"),
    (["--probe", "memcpy", "--sizes", "lots"], 2, "cannot read"),
    (["--probe", "memcpy", "--sizes", "8MiB..4MiB"], 2, "bad size range"),
    (["--probe", "memcpy", "--sizes", "4KiB,4KiB"], 2, "twice"),
    (["--probe", "memcpy", "--sizes", ",".join(str(n) for n in range(1, 66))], 2, "more than 64"),
    (["--probe", "memcpy", "--sizes", "1.5"], 2, "not a whole number of bytes"),
    (["--probe", "fault", "--sizes", "1000"], 2, "not a whole number of 4 KiB pages"),
    (["--probe", "pin", "--sizes", "2GiB"], 2, "larger than this probe allows"),
    (["--probe", "pagecopy", "--sizes", "6KiB"], 2, "4 KiB pages"),
    (["--duration", "10ms"], 2, "outside 50ms..600s"),
    (["--duration", "11min"], 2, "outside 50ms..600s"),
    (["--duration", "soon"], 2, "cannot read 'soon' as a time"),
    (["--threads", "0"], 2, "counts must be 1..64"),
    (["--threads", "65"], 2, "1..64"),
    (["--threads", "one"], 2, "whole numbers 1..64"),
    (["--threads", "1,1"], 2, "twice"),
    (["--threads", ",".join(["1"] * 17)], 2, "more than 16"),
    (["--repetitions", "0"], 2, "--repetitions 0 is outside 1..1000"),
    (["--repetitions", "100000000"], 2, "--repetitions 100000000 is outside 1..1000"),
    (["--repetitions", "-3"], 2, "outside 1..1000"),
    (["--repetitions", "many"], 2, "not a whole number; use 1..1000"),
    (["--probe", "socket", "--repetitions", "1000", "--duration", "600s"], 2, "over the 24 h a run may take"),
]


@pytest.mark.parametrize("args, code, fragment", BAD_INPUT, ids=[" ".join(a)[:60] for a, _, _ in BAD_INPUT])
def test_bad_input_is_one_line(tmp_path, run_cli, args, code, fragment):
    store = tmp_path / "r.sqlite"
    run_cli("measure", "copy", *args, "--store", str(store)).one_line_error(code, fragment)
    assert not store.exists()  # nothing measured, nothing created


def test_bad_input_exits_2_from_the_console_script(tmp_path):
    out = _cli("--paths", "rw,teleport", store=tmp_path / "r.sqlite")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unknown value teleport" in out.stderr


def test_unwritable_store_fails_before_measuring(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    store = locked / "r.sqlite"
    store.write_text("")
    os.chmod(store, 0o444)
    os.chmod(locked, 0o555)
    try:
        if os.access(store, os.W_OK):  # root writes read-only files; nobody creates files in /proc
            store = Path("/proc/rdmarig-unwritable.sqlite")
        code, err = _cli_in_process(capsys, "--probe", "memcpy", "--sizes", "4KiB", store=store)
    finally:
        os.chmod(locked, 0o755)
    assert code == 2 and "result store" in err
    assert len(err.strip().splitlines()) == 1


def test_store_path_that_is_a_directory(tmp_path, capsys):
    code, err = _cli_in_process(capsys, "--probe", "memcpy", "--sizes", "4KiB", store=tmp_path)
    assert code == 2 and "result store" in err and len(err.strip().splitlines()) == 1
