"""rig.rdma.hw_counters on a directory laid out as sysfs lays out an RDMA device's port counters
(the host tier has no RDMA device; the RDMA tier checks the records' counters of real runs)."""

from rig.rdma import hw_counters


def _port(root, device, port, values):
    d = root / device / "ports" / str(port) / "hw_counters"
    d.mkdir(parents=True)
    for name, value in values.items():
        (d / name).write_text(f"{value}\n")


def test_snapshot_reads_every_port_and_delta_keeps_what_moved(tmp_path):
    _port(tmp_path, "rxe0", 1, {"sent_pkts": 10, "rcvd_pkts": 4, "lifespan": 12})
    _port(tmp_path, "rxe1", 1, {"sent_pkts": 7, "rcvd_seq_err": 0})
    (tmp_path / "rxe1" / "ports" / "1" / "hw_counters" / "broken").write_text("n/a\n")
    before = hw_counters.snapshot(str(tmp_path))
    assert before == {"rxe0/1": {"lifespan": 12, "rcvd_pkts": 4, "sent_pkts": 10},
                      "rxe1/1": {"rcvd_seq_err": 0, "sent_pkts": 7}}
    (tmp_path / "rxe0" / "ports" / "1" / "hw_counters" / "sent_pkts").write_text("25\n")
    (tmp_path / "rxe1" / "ports" / "1" / "hw_counters" / "rcvd_seq_err").write_text("3\n")
    after = hw_counters.snapshot(str(tmp_path))
    assert hw_counters.delta(before, after) == {"rxe0/1": {"sent_pkts": 15}, "rxe1/1": {"rcvd_seq_err": 3}}


def test_no_devices_is_an_empty_snapshot(tmp_path):
    assert hw_counters.snapshot(str(tmp_path / "absent")) == {}
    assert hw_counters.delta({}, {}) == {}
