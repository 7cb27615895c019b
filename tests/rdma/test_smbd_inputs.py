"""Bad input to `measure smbd` and `serve smbd`: one line naming the flag as typed and the fix,
exit 2, before any RDMA device is needed (host tier). And both start light (no numpy, no pyverbs)."""

from __future__ import annotations


import pytest

MEASURE = [
    (["--op", "frob"], "--op 'frob' is not an SMB2 operation here; use read or write"),
    (["--io-size", "1KiB"], "--io-size 1KiB is out of range; use 4KiB..16MiB"),
    (["--io-size", "64KiB..32MiB"], "--io-size 32MiB is out of range"),
    (["--io-size", "5XB"], "--io-size"),
    (["--connections", "0"], "--connections 0 is out of range; use 1..64"),
    (["-c", "100"], "--connections 100 is out of range"),
    (["--credits", "0"], "--credits 0 is out of range; use 1..255"),
    (["--credits", "300"], "--credits 300 is out of range"),
    (["--in-flight", "10", "--credits", "4"], "--in-flight 10 exceeds --credits 4"),
    (["--in-flight", "0"], "--in-flight 0 is out of range"),
    (["--copy", "frob"], "--copy 'frob' is not a copy variant"),
    (["--op", "write", "--copy", "zero-copy"], "zero-copy serves READ only"),
    (["--copy", "cpu-copy,cpu-copy"], "names a variant twice"),
    (["--copy", ","], "--copy names no variant"),
    (["--register", "sometimes"], "--register 'sometimes' is not a mode; use once or per-io"),
    (["--async-workers", "0"], "--async-workers 0 is out of range; use 1..256"),
    (["--duration", "0s"], "--duration 0s is out of range"),
    (["--duration", "soon"], "--duration"),
    (["--ios", "-1"], "--ios -1 is out of range"),
    (["--timeout", "0s"], "--timeout 0s is out of range"),
    (["--gid-index", "-1"], "--gid-index -1 is out of range"),
    (["--peer", "198.18.0.2", "--peer-device", "rxe1"], "exclude each other"),
    (["--peer", "198.18.0.2:70000"], "port 70000 out of range"),
    (["--peer", ":9000"], "no host"),
    (["--peer", "198.18.0.2", "--file", "{file}"], "--file names the file of a local server"),
    (["--file", "{missing}"], "No such file"),
    (["--file", "{dir}"], "is not a regular file"),
    (["--file", "{empty}"], "is empty"),
    (["--op", "write", "--file", "{file}"], "--op write would overwrite --file"),
    (["--file-size", "1KiB"], "--file-size 1KiB is out of range"),
    (["--op", "write", "-c", "64", "--in-flight", "255"], "exceeds the 8192 blocks a WRITE run checks"),
    (["--serving-cpus", "4096"], "--serving-cpus '4096': CPU 4096 is not one this process may run on; name CPUs of"),
    (["--serving-cpus", "0,x"], "--serving-cpus '0,x': 'x' is not a CPU number or range"),
    (["--serving-cpus", "1-0"], "--serving-cpus '1-0': '1-0' is not a CPU range"),
    (["--serving-cpus", ""], "is not a CPU number or range"),
    (["--peer", "198.18.0.2", "--serving-cpus", "0"], "with --peer the server pins its own"),
]

SERVE = [
    (["smbd", "--bind", "127.0.0.1", "--port", "0"], "serve smbd needs a file to serve; pass --file PATH"),
    (["frob", "--bind", "127.0.0.1"], "serve 'frob': no such server"),
    (["--bind", "127.0.0.1", "--file", "{file}"], "--file, --allow-write and --serving-cpus belong to `rdmarig serve smbd`"),
    (["--bind", "127.0.0.1", "--serving-cpus", "0"], "--serving-cpus belong to `rdmarig serve smbd`"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{file}", "--serving-cpus", "4096"],
     "CPU 4096 is not one this process may run on"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{missing}"], "No such file"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{empty}"], "is empty"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{dir}"], "is not a regular file"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{file}", "--max-read-write", "64KiB"],
     "--max-read-write 64KiB is out of range; use 512KiB..16MiB"),
    (["smbd", "--bind", "127.0.0.1", "--port", "70000", "--file", "{file}"], "--port 70000 is out of range"),
    (["smbd", "--bind", "198.51.100.7", "--port", "0", "--file", "{file}"], "cannot listen on 198.51.100.7:0"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{file}", "--concurrent", "0"],
     "--concurrent 0 is out of range"),
    (["smbd", "--bind", "", "--file", "{file}"], "pass --bind ADDR"),
    (["smbd", "--bind", "127.0.0.1", "--port", "0", "--file", "{file}", "--max-run", "0s"], "--max-run 0s"),
]


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"x" * 8192)
    (tmp_path / "empty.bin").write_bytes(b"")
    return {"file": str(tmp_path / "data.bin"), "missing": str(tmp_path / "nope.bin"), "dir": str(tmp_path),
            "empty": str(tmp_path / "empty.bin")}


@pytest.mark.parametrize("argv,fragment", MEASURE, ids=[" ".join(a) for a, _ in MEASURE])
def test_measure_smbd_bad_input(run_cli, paths, tmp_path, argv, fragment):
    store = tmp_path / "store.sqlite"
    res = run_cli("measure", "smbd", "--store", str(store), *[a.format(**paths) for a in argv])
    res.one_line_error(2, fragment)
    assert not store.exists()                 # refused before anything was opened or measured


@pytest.mark.parametrize("argv,fragment", SERVE, ids=[" ".join(a) for a, _ in SERVE])
def test_serve_smbd_bad_input(run_cli, paths, argv, fragment):
    run_cli("serve", *[a.format(**paths) for a in argv]).one_line_error(2, fragment)


def test_cpu_lists_read_as_taskset_writes_them():
    import os

    from rig.launch.smbd_target import parse_cpus
    cpus = sorted(os.sched_getaffinity(0))
    assert parse_cpus(str(cpus[0])) == (cpus[0],)
    assert parse_cpus(f"{cpus[-1]},{cpus[0]}") == (cpus[-1], cpus[0])          # the order given: connection i
    assert parse_cpus(f"{cpus[0]}-{cpus[0]}") == (cpus[0],)
    if cpus[:2] == [cpus[0], cpus[0] + 1]:
        assert parse_cpus(f"{cpus[0]}-{cpus[0] + 1},{cpus[0]}") == (cpus[0], cpus[0] + 1, cpus[0])
