"""The guest session of docs/smbd.md "The model against the measurement", from its committed export
(docs/data/smbd-vs-measured.jsonl: real records of one guest session, the parts and the whole):
the part probes' fits derived by hand, the calibrated profile citing them, and `plan
smbdirect-this-host --vs-measured` pairing every stored smbd configuration with its prediction."""

import json
from pathlib import Path
from statistics import median

import numpy as np
import pytest

from results.record import from_json
from results.store import Store
from rig import calibrate as rc

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ROOT / "docs" / "data" / "smbd-vs-measured.jsonl"


@pytest.fixture(scope="module")
def records():
    return [from_json(line) for line in EXPORT.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def session(records, tmp_path_factory):
    """The export in a store, and the profile `calibrate host --place guest` writes from it."""
    from rig.cli import main

    d = tmp_path_factory.mktemp("session")
    store = d / "session.sqlite"
    with Store(store) as st:
        for r in records:
            st.insert(r)
    profile = d / "this-guest.toml"
    with pytest.raises(SystemExit) as stop:
        main(["calibrate", "host", "--place", "guest", "--out", str(profile), "--store", str(store)])
    assert stop.value.code in (0, None)
    return {"store": store, "profile": profile}


def test_the_export_is_one_guest_session_with_parts_and_whole(records):
    names = {r.name for r in records}
    assert {"copy.mrreg", "proto.smbd", "copy.crc32", "copy.memcpy", "verbs.write.bw", "smbd.read"} <= names
    assert len(rc.places(records)) == 1 and next(iter(rc.places(records))).is_guest
    assert EXPORT.stat().st_size < 1 << 20


def test_mr_register_time_is_the_intercept_of_cost_per_registration_over_pages(records):
    mrreg = rc.of_kind(records, "copy.mrreg")
    fit = rc.mrreg_fit(mrreg)
    # by hand: least squares of CPU per page = b + a / pages over every file-source timing
    x, y = [], []
    for r in mrreg:
        if r.params["source"] != "file":
            continue
        pages = r.params["io_size_bytes"] / 4096
        for v in r.samples["cpu_seconds_per_registration"]:
            x.append(1 / pages)
            y.append(v / pages)
    a, b = np.polyfit(x, y, 1)                   # slope: per registration, intercept: per page
    assert a > 0 and b > 0          # the unconstrained solution is inside the bounds: NNLS gives the same
    assert fit.params["per_call_seconds"].value == pytest.approx(a, rel=1e-6)
    assert fit.params["per_byte_seconds"].value == pytest.approx(b, rel=1e-6)


def test_smb_request_time_is_the_deepest_exchange_less_one_work_request(records, session):
    from scenarios.schema import load_platform
    exchanges = rc.of_kind(records, "proto.smbd")
    deepest = max(r.params["requests_in_flight"] for r in exchanges)
    user = median(v for r in exchanges if r.params["requests_in_flight"] == deepest
                  for v in r.samples["server_user_cpu_seconds_per_exchange"])
    assert rc.request_estimate(exchanges).value == pytest.approx(user)
    plat = load_platform(str(session["profile"]))
    assert plat.cpu.smb_request_time == pytest.approx(user - plat.cpu.rdma_wr_time, rel=1e-3)   # 4 figures written
    for key, kind in (("cpu.smb_request_time", "proto.smbd"), ("cpu.mr_register_time", "copy.mrreg")):
        cited = set(plat.measured[key].records)
        assert cited and cited <= {r.id for r in records if r.name == kind}


def test_vs_measured_pairs_every_smbd_configuration_with_its_prediction(records, session, run_cli):
    res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                  "--store", str(session["store"]), "--format", "json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)["rows"]
    by_config = {}
    for r in rc.smbd_records(records):
        by_config.setdefault(rc.smbd_config(r), []).append(r)
    assert len(rows) == len(by_config)
    for row in rows:
        cfg = rc.SmbdConfig(row["op"], float(row["io_size_bytes"]), row["copy_path"], row["connections"],
                            row["credits"], next(c.workers for c in by_config if c.path == row["copy_path"]
                                                 and c.io_size == row["io_size_bytes"]))
        recs = by_config[cfg]
        assert row["records"] == len(recs)
        assert row["measured_gbytes_per_s"] == pytest.approx(median(r.summary["gbytes_per_s"] for r in recs))
        assert row["measured_server_cpu_s_per_gb"] == pytest.approx(
            median(r.summary["server_cpu_s_per_gb"] for r in recs))
        assert row["gbps_error_pct"] == pytest.approx(
            100 * (row["predicted_gbytes_per_s"] - row["measured_gbytes_per_s"]) / row["measured_gbytes_per_s"])
