"""Bad input to `measure verbs --mpi`, `measure smbd --mpi` and `results show --matrix`: one line naming the flag, exit 2,
caught before MPI or any RDMA device is touched (host tier)."""

from __future__ import annotations

import pytest

from rig.launch.mpi import LAUNCHER_ENV

MPI_ROWS = [
    (["--mpi"], "not started by mpirun or srun"),
    (["--mpi", "--pattern", "ring"], "--pattern 'ring' is not a pattern; use pairs, all-pairs, sampled, incast"),
    (["--mpi", "--pattern", "sampled"], "--pattern sampled needs --partners K"),
    (["--mpi", "--partners", "3"], "--partners applies to --pattern sampled, not pairs"),
    (["--mpi", "--pattern", "all-pairs", "--seed", "7"], "--seed applies to --pattern sampled"),
    (["--mpi", "--tolerance", "150%"], "--tolerance '150%' is out of range; use 1%..100%"),
    (["--mpi", "--tolerance", "0%"], "--tolerance '0%' is out of range"),
    (["--mpi", "--tolerance", "most"], "--tolerance 'most' is not a percentage; write it as 93%"),
    (["--mpi", "--tolerance", "nan"], "--tolerance 'nan' is out of range"),
    (["--mpi", "--peer", "198.18.0.2"], "--peer does not apply"),
    (["--mpi", "--peer-device", "rxe1"], "--peer-device does not apply"),
    (["--mpi", "--rdma-cm"], "--rdma-cm does not apply"),
    (["--mpi", "--validate"], "--validate does not apply"),
    (["--mpi", "--latency"], "--latency does not apply"),
    (["--mpi", "--pattern", "incast", "--op", "read"], "--pattern incast runs --op write"),
    (["--mpi", "--vs-perftest"], "--vs-perftest compares loopback runs; drop it with --mpi"),
    (["--mpi", "--join-timeout", "0s"], "--join-timeout 0s is out of range; use 1s..86400s"),
    (["--mpi", "--join-timeout", "soon"], "--join-timeout"),
    (["--mpi", "--device", "rxe0,,rxe1"], "--device 'rxe0,,rxe1' has an empty name"),
    (["--mpi", "--size", "0"], "--size 0B is out of range"),
    (["--device", "rxe0,rxe1"], "--device 'rxe0,rxe1' names several devices; name one, or run with --mpi"),
    (["--pattern", "all-pairs"], "--pattern, --partners, --seed and --tolerance apply to runs under --mpi"),
    (["--tolerance", "90%"], "apply to runs under --mpi"),
]


SMBD_ROWS = [
    (["--mpi"], "--mpi runs one copy variant per run, not 3; name one: --copy cpu-copy"),
    (["--mpi", "--op", "write"], "--mpi runs one copy variant per run, not 2"),
    (["--mpi", "--copy", "cpu-copy"], "not started by mpirun or srun"),
    (["--mpi", "--copy", "cpu-copy", "--peer", "198.18.0.2"], "--peer does not apply"),
    (["--mpi", "--copy", "cpu-copy", "--peer-device", "rxe1"], "--peer-device does not apply"),
    (["--mpi", "--copy", "cpu-copy", "--file", "/etc/hostname"], "--file does not apply"),
    (["--mpi", "--copy", "cpu-copy", "--serving-cpus", "0"], "--mpi: --serving-cpus does not apply"),
    (["--mpi", "--copy", "zero-copy", "--pattern", "ring"], "--pattern 'ring' is not a pattern"),
    (["--mpi", "--copy", "cpu-copy", "--tolerance", "2"], "--tolerance '2' is out of range"),
    (["--mpi", "--copy", "cpu-copy", "--device", "rxe0,"], "--device 'rxe0,' has an empty name"),
    (["--device", "rxe0,rxe1"], "--device 'rxe0,rxe1' names several devices; name one, or run with --mpi"),
    (["--pattern", "incast"], "--pattern, --partners, --seed and --tolerance apply to runs under --mpi"),
]


@pytest.fixture
def no_launcher(monkeypatch):
    for var, _ in LAUNCHER_ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("argv,fragment", MPI_ROWS, ids=[" ".join(a) for a, _ in MPI_ROWS])
def test_measure_verbs_mpi_bad_input(run_cli, no_launcher, argv, fragment):
    run_cli("measure", "verbs", "--no-store", *argv).one_line_error(2, fragment)


@pytest.mark.parametrize("argv,fragment", SMBD_ROWS, ids=[" ".join(a) for a, _ in SMBD_ROWS])
def test_measure_smbd_mpi_bad_input(run_cli, no_launcher, argv, fragment):
    run_cli("measure", "smbd", "--no-store", *argv).one_line_error(2, fragment)


def test_launch_hint_names_both_launchers(run_cli, no_launcher):
    err = run_cli("measure", "verbs", "--mpi").err
    assert "mpirun -n 8 --hostfile hosts rdmarig measure verbs --mpi" in err and "srun -N 4" in err


@pytest.fixture
def run_store(tmp_path):
    """A store with two runs (ids aa11..., aa22...) and one record outside any run."""
    from results.record import Record
    from results.store import Store

    path = tmp_path / "s.sqlite"
    with Store(path) as st:
        for run in ("aa11" + "0" * 28, "aa22" + "0" * 28):
            st.insert(Record(kind="measured", name="verbs.write.bw",
                             params={"mpi_run": run, "initiator_rank": 0, "target_rank": 1, "ranks": 2,
                                     "io_size_bytes": 65536, "mpi_metric": "bw_average_gbytes_per_s"},
                             summary={"bw_average_gbytes_per_s": 1.0}, id=f"rec{run[:4]}"))
        st.insert(Record(kind="measured", name="copy.memcpy", params={}, id="plainrecord"))
    return path


MATRIX_ROWS = [
    (["zz99"], "no run 'zz99' under --mpi in the store"),
    (["aa"], "'aa' matches 2 runs"),
    (["plainrecord"], "no run 'plainrecord'"),
    (["  "], "the run id is empty"),
]


@pytest.mark.parametrize("argv,fragment", MATRIX_ROWS, ids=[a[0] for a, _ in MATRIX_ROWS])
def test_show_matrix_bad_input(run_cli, run_store, argv, fragment):
    run_cli("results", "show", *argv, "--matrix", "--store", str(run_store)).one_line_error(2, fragment)


def test_show_matrix_by_run_or_record_id(run_cli, run_store):
    by_run = run_cli("results", "show", "aa11", "--matrix", "--store", str(run_store))
    by_record = run_cli("results", "show", "recaa11", "--matrix", "--store", str(run_store))
    assert by_run.code == 0 and by_run.out == by_record.out
    assert "run aa1100000000" in by_run.out and "PARTIAL run: no aggregate record" in by_run.out
