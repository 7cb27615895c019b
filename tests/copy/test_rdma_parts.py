"""The rdma part probes (`python -m rig.copy.rdma_parts`): the host-capable one run for real, the
ones that need an RDMA device reported skipped without one, bad input as one line with exit 2."""

import pytest

from results.store import Store
from rig.copy import rdma_parts
from rig.flows.smbd_serving import DEFAULT_ASYNC_WORKERS
from tests.conftest import CliResult


def _run(capsys, *argv: str) -> CliResult:
    code = rdma_parts.main(list(argv))
    out = capsys.readouterr()
    return CliResult(code, out.out, out.err)


def _stored(capsys, tmp_path, name: str, order_by: str, *argv: str) -> list:
    """Runs the probes with a store of their own; the records of kind `name`, ordered by a param."""
    store = tmp_path / "p.sqlite"
    res = _run(capsys, *argv, "--store", str(store))
    assert res.code == 0, res.err
    with Store(store) as st:
        return sorted(st.query(kind="measured", name=name), key=lambda r: r.params[order_by])


def test_crc32_probe_stores_a_record_per_size(tmp_path, capsys):
    recs = _stored(capsys, tmp_path, "copy.crc32", "io_size_bytes",
                   "--probe", "crc32", "--sizes", "64KiB,256KiB", "--repetitions", "2")
    assert [r.params["io_size_bytes"] for r in recs] == [65536, 262144]
    for r in recs:
        per_gb = r.samples["cpu_s_per_gb"]
        assert len(per_gb) == 2 and all(v > 0 for v in per_gb)
        # per GB and per check are the same timings: per check = per GB x the check's bytes
        for gb, check in zip(per_gb, r.samples["cpu_seconds_per_check"]):
            assert check == pytest.approx(gb * r.params["io_size_bytes"] / 1e9)
        assert r.summary["median_cpu_s_per_gb"] == pytest.approx(sorted(per_gb)[0] + (sorted(per_gb)[1] - sorted(per_gb)[0]) / 2)


def test_handoff_probe_stores_what_an_io_wq_worker_adds_over_pread_and_calibrate_takes_its_median(tmp_path, capsys):
    from statistics import median

    from rig import calibrate as rc
    from rig.copy.uring import Uring, UringUnavailable
    try:
        Uring(entries=2).close()
    except UringUnavailable as exc:
        pytest.skip(f"no io_uring here: {exc}")
    recs = _stored(capsys, tmp_path, "copy.handoff", "reads_in_flight",
                   "--probe", "handoff", "--depths", "1,8", "--repetitions", "2")
    assert [r.params["reads_in_flight"] for r in recs] == [1, 8]
    for r in recs:
        assert r.params["iowq_workers_max"] == DEFAULT_ASYNC_WORKERS and r.params["read_bytes"] == 64
        s = r.samples
        assert len(s["handoff_cpu_seconds_per_read"]) == 2
        for h, a, p in zip(s["handoff_cpu_seconds_per_read"], s["async_cpu_seconds_per_read"], s["pread_cpu_seconds_per_read"]):
            assert h == pytest.approx(a - p) and p > 0
            # an io-wq worker's run around each READ, and the punt and completion, cost more than the READ
            assert a > 2 * p
    e = rc.handoff_estimate(recs)
    assert e.value == pytest.approx(median(v for r in recs for v in r.samples["handoff_cpu_seconds_per_read"]))
    assert e.unit == "s" and set(e.record_ids) == {r.id for r in recs}
    assert "copy.handoff" in rc._EXTRA_METHOD["cpu.async_handoff_time"]


def test_pread_probe_alone_runs_anywhere_and_beside_a_chain_needs_two_devices(tmp_path, capsys):
    from rig.rdma.devices import list_devices
    if len(list_devices()) > 1:
        pytest.skip("this host has two RDMA devices: the chain would run (the guest tier runs it)")
    store = tmp_path / "p.sqlite"
    res = _run(capsys, "--probe", "pread", "--sizes", "64KiB", "--repetitions", "2", "--store", str(store))
    assert res.code == 0, res.err
    assert "skipped pread 65536 B beside a 128-deep WRITE chain: no RDMA device pair" in res.out
    assert "skipped pread 65536 B posting its own 128-deep WRITE chain: no RDMA device pair" in res.out
    with Store(store) as st:
        (r,) = st.query(kind="measured", name="copy.pread")
    assert r.params["beside_chain"] is None and r.params["own_chain"] is None and r.params["file_bytes"] == 64 << 20
    for gb, call in zip(r.samples["cpu_s_per_gb"], r.samples["cpu_seconds_per_call"]):
        assert gb > 0 and call == pytest.approx(gb * 65536 / 1e9)


def test_device_probes_without_a_device_are_reported_skipped(tmp_path, capsys):
    from rig.rdma.devices import list_devices
    if list_devices():
        pytest.skip("this host has an RDMA device: the probes would run (the guest tier runs them)")
    res = _run(capsys, "--probe", "mrreg", "--sizes", "64KiB", "--repetitions", "1", "--store", str(tmp_path / "s"))
    assert res.code == 0, res.err
    assert "skipped mrreg anon 65536 B" in res.out and "skipped mrreg file 65536 B" in res.out
    assert "0 records stored" in res.out


BAD = [
    (["--probe", "bogus"], "--probe: unknown value bogus"),
    (["--probe", ","], "--probe: unknown value"),
    (["--probe", "crc32,mr"], "unknown value mr"),
    (["--sizes", "1000"], "not a whole number of 4 KiB pages"),
    (["--sizes", "2GiB"], "not a whole number of 4 KiB pages up to 1 GiB"),
    (["--sizes", "6KiB"], "not a whole number of 4 KiB pages"),
    (["--sizes", "lots"], "--sizes"),
    (["--depths", "0"], "--depths 0 is outside 1..255"),
    (["--depths", "256"], "--depths 256 is outside 1..255"),
    (["--depths", "x"], "--depths 'x' is not a whole number"),
    (["--depths", ","], "--depths names no depth"),
    (["--exchanges", "5"], "--exchanges 5 is outside 10..1000000"),
    (["--exchanges", "many"], "--exchanges 'many' is not a whole number"),
    (["--repetitions", "0"], "--repetitions 0 is outside 1..1000"),
    (["--repetitions", "1001"], "--repetitions 1001 is outside 1..1000"),
    (["--repetitions", "2.5"], "--repetitions '2.5' is not a whole number"),
]


@pytest.mark.parametrize("argv,fragment", BAD)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, fragment):
    _run(capsys, *argv, "--store", str(tmp_path / "s.sqlite")).one_line_error(2, fragment)
    assert not (tmp_path / "s.sqlite").exists()
