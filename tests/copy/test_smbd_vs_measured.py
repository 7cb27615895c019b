"""The guest session of docs/smbd.md "The model against the measurement", from its committed export
(docs/data/smbd-vs-measured.jsonl: real records of one guest session, the parts and the whole):
the part probes' fits derived by hand, the calibrated profile citing them, and `plan
smbdirect-this-host --vs-measured` pairing every stored smbd configuration with its prediction."""

import json
import re
from pathlib import Path
from statistics import median

import numpy as np
import pytest

from results.record import from_json
from results.matrix import is_mpi_pair
from results.store import Store
from rig import calibrate as rc

ROOT = Path(__file__).resolve().parents[2]
# the committed sessions: 2026-12-01 11:25 UTC (plain text), 2026-12-02 08:26 and 09:19 UTC (gzip: with
# the records' newer provenance a whole session passes 1 MiB as text; 09:19 with pinned points)
EXPORTS = [ROOT / "docs" / "data" / "smbd-vs-measured.jsonl",
           ROOT / "docs" / "data" / "smbd-vs-measured-2026-12-02.jsonl.gz",
           ROOT / "docs" / "data" / "smbd-vs-measured-2026-12-02-0919.jsonl.gz"]


def read_export(path: Path) -> list:
    from results.export import ungzipped
    return [from_json(line) for line in ungzipped(path.read_bytes()).decode().splitlines() if line.strip()]


@pytest.fixture(scope="module", params=EXPORTS, ids=lambda p: p.name.split(".")[0])
def export(request) -> Path:
    return request.param


@pytest.fixture(scope="module")
def records(export):
    return read_export(export)


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


def test_the_export_is_one_guest_session_with_parts_and_whole(records, export):
    names = {r.name for r in records}
    assert {"copy.mrreg", "proto.smbd", "copy.crc32", "copy.memcpy", "verbs.write.bw", "smbd.read"} <= names
    assert len(rc.places(records)) == 1 and next(iter(rc.places(records))).is_guest
    assert export.stat().st_size < 1 << 20


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


def test_smb_request_and_client_times_are_each_ends_exchange_cpu_less_what_the_model_charges_apart(records, session):
    from rig.executed_time import in_executed_time
    from scenarios.schema import load_platform
    records = [in_executed_time(r) for r in records]      # calibrate fits in executed seconds where known
    exchanges = rc.of_kind(records, "proto.smbd")
    deepest = max(r.params["requests_in_flight"] for r in exchanges)
    at = [r for r in exchanges if r.params["requests_in_flight"] == deepest]
    server = [v for r in at for v in r.samples["server_cpu_seconds_per_exchange"]]
    client = [v for r in at for v in r.samples["client_cpu_seconds_per_exchange"]]
    assert [v for v, _ in rc.request_estimate(exchanges).server] == server
    plat = load_platform(str(session["profile"]))
    wr = plat.cpu.rdma_wr_time
    send = plat.nic.soft_wr_time + 4 * plat.nic.soft_packet_time     # one one-packet SEND's chain on loopback
    data_wrs = {int(r.params.get("data_wrs") or 0) for r in at}
    assert len(data_wrs) == 1
    data = data_wrs.pop() * (wr + send)          # the server's one-packet data WR (records since 2026-12-01)
    # by hand, per end: the server's exchange CPU less one WR post + reap (the response SEND) and its data
    # WR with its chain, the client's less two (its request SEND and a RECV), each less its SEND's chain
    assert plat.cpu.smb_request_time == pytest.approx(median(srv - wr - send - data for srv in server), rel=2e-3)
    assert plat.cpu.smb_client_time == pytest.approx(median(cli - 2 * wr - send for cli in client), rel=2e-3)
    assert plat.cpu.crc32_rate == pytest.approx(
        1e9 / median(v for r in rc.of_kind(records, "copy.crc32") for v in r.samples["cpu_s_per_gb"]), rel=1e-3)
    for key, kind in (("cpu.smb_request_time", "proto.smbd"), ("cpu.smb_client_time", "proto.smbd"),
                      ("cpu.mr_register_time", "copy.mrreg"),
                      ("cpu.crc32_rate", "copy.crc32")):
        cited = set(plat.measured[key].records)
        assert cited and cited <= {r.id for r in records if r.name == kind}


def test_vs_measured_pairs_every_smbd_configuration_with_its_prediction(records, session, run_cli):
    res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                  "--store", str(session["store"]), "--format", "json")
    assert res.code == 0, res.err
    rows = json.loads(res.out)["rows"]
    from rig.executed_time import in_executed_time
    by_config = {}
    for r in rc.smbd_records(records):           # compared in executed seconds where the record knows its share
        by_config.setdefault(rc.smbd_config(r), []).append(in_executed_time(r))
    assert len(rows) == len(by_config)
    within_spread = [0, 0]          # points with rounds' spread, those whose server-CPU miss is within it
    for row in rows:
        cfg = next(c for c in by_config if (c.op, c.io_size, c.path, c.connections, c.credits,
                                            rc.pinned_label(c.serving_cpus)) == (
            row["op"], float(row["io_size_bytes"]), row["copy_path"], row["connections"], row["credits"],
            row.get("serving_cpus", "")))
        recs = by_config[cfg]
        assert row["records"] == len(recs)
        assert row["measured_gbytes_per_s"] == pytest.approx(median(r.summary["gbytes_per_s"] for r in recs))
        assert row["measured_server_cpu_s_per_gb"] == pytest.approx(
            median(r.summary["server_cpu_s_per_gb"] for r in recs))
        # how far the rounds lie apart, by hand: (max - min) / median; none from a single round
        for key, spread in (("gbytes_per_s", "gbps_spread_pct"), ("server_cpu_s_per_gb", "server_cpu_spread_pct")):
            v = [r.summary[key] for r in recs]
            assert row[spread] == (pytest.approx(100 * (max(v) - min(v)) / median(v)) if len(v) > 1 else None)
        assert row["gbps_error_pct"] == pytest.approx(
            100 * (row["predicted_gbytes_per_s"] - row["measured_gbytes_per_s"]) / row["measured_gbytes_per_s"])
        within_spread[0] += row["server_cpu_spread_pct"] is not None
        within_spread[1] += row["server_cpu_spread_pct"] is not None and abs(row["cpu_error_pct"]) <= \
            row["server_cpu_spread_pct"]
        # one kernel: ksoftirqd's (and rxe kworkers') run time, inside the client's figure, shown on its own
        outside = median(r.summary["client_softirq_cpu_s_per_gb"] + r.summary["client_rxe_kworker_cpu_s_per_gb"]
                         for r in recs)
        assert row["measured_softirq_cpu_s_per_gb"] == pytest.approx(outside)
        assert 0 <= outside < median(r.summary["client_cpu_s_per_gb"] for r in recs)
        side = row["measured_server_cpu_s_per_gb"] + outside
        assert row["server_side_cpu_error_pct"] == pytest.approx(
            100 * (row["predicted_server_cpu_s_per_gb"] + row["predicted_softirq_cpu_s_per_gb"] - side) / side)
    text = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                   "--store", str(session["store"])).out
    assert f"{within_spread[1]} of {within_spread[0]} points' |error| within it" in text


def test_one_kernel_counts_each_cpu_second_once(records):
    """Both ends in one kernel: the two ends' CPU (ksoftirqd with the client) never exceeds the CPUs'
    busy time over the window (before the fix the CPUs' sampled softirq was added to the client
    while the serving processes kept it in their system time: 2.26 CPU-s/s on 2 vCPUs)."""
    smbd = [r for r in rc.smbd_records(records) if "counted_cpu_per_s" in r.summary]
    assert len(smbd) >= 20
    for r in smbd:
        s = r.summary
        # 5 %: the serving processes read their rusage when the relayed start / stop reaches them, a few
        # 10 ms off the client's window (async-workers, whose io-wq workers run on past a stop, reached
        # +3.7 % in the 09:06 UTC session); counting twice was +13..+15 %
        assert 0.5 < s["counted_cpu_per_s"] <= s["busy_cpu_per_s"] * 1.05 <= r.provenance["cpu_count"] * 1.05, r.id


def test_incast_aggregates_pair_with_the_clients_dimension_and_mpi_pairs_stay_out(records, session, run_cli,
                                                                                  tmp_path):
    """An MPI incast's aggregate (rank 0 serving ranks - 1 clients) is compared, throughput only, with
    the scenario at workload.clients = ranks - 1; an MPI run's pair records (one of several clients
    measured at once) are no single run's configuration and stay out. The two records here are made
    from a real smbd record of the session (its place, its configuration) for the pairing alone."""
    import dataclasses
    import shutil

    from results.record import Record
    from scenarios.schema import load_platform, load_scenario

    base = next(r for r in rc.smbd_records(records) if r.params["io_size_bytes"] == 1 << 20
                and r.params["copy"] == "cpu-copy" and not r.params.get("serving_cpus"))
    mpi = {**base.params, "connections": 1, "connection": "mpi incast", "pattern": "incast", "ranks": 3}
    aggregate = Record(kind="measured", name="mpi.smbd.read", params=mpi, provenance=base.provenance,
                       summary={"complete": True, "aggregate_gbytes_per_s": 0.05, "fairness_jain_ratio": 0.95})
    pair = Record(kind="measured", name="smbd.read", params=mpi, provenance=base.provenance, summary=base.summary)
    store = tmp_path / "with-incast.sqlite"
    shutil.copy(session["store"], store)
    with Store(store) as st:
        st.insert(aggregate)
        st.insert(pair)
    assert is_mpi_pair(pair) and not is_mpi_pair(base)
    assert pair.id not in {r.id for r in rc.smbd_records([pair, aggregate])}
    res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                  "--store", str(store), "--format", "json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    incast = [r for r in doc["rows"] if r["measured_server_cpu_s_per_gb"] is None and r["records"]]
    assert len(incast) == 1 and len(doc["rows"]) == len({rc.smbd_config(r) for r in rc.smbd_records(records)}) + 1
    (row,) = incast
    assert row["clients"] == 2 and row["connections"] == 1 and row["measured_gbytes_per_s"] == 0.05
    assert row["measured_server_cpu_s_per_gb"] is None and row["records"] == 1
    cfg = rc.smbd_config(aggregate)
    s = load_scenario("smbdirect-this-host", platform=load_platform(str(session["profile"])))
    assert row["predicted_gbytes_per_s"] == pytest.approx(rc.smbd_predicted(s, [cfg])[cfg].gbytes_per_s)
    one = dataclasses.replace(cfg, clients=1)
    # two clients' connections: never less than one client's (more where one connection's cores bind)
    assert row["predicted_gbytes_per_s"] >= rc.smbd_predicted(s, [one])[one].gbytes_per_s
    assert any("incast" in n for n in doc["notes"])


def test_the_committed_incast_runs_pair_with_their_client_counts(records, session, run_cli, tmp_path):
    """docs/data/smbd-incast.jsonl: three real `measure smbd --mpi --pattern incast` runs in the guest
    (2, 3 and 4 ranks); each aggregate is one row at clients = ranks - 1, its pairs stay out."""
    import shutil

    incast = [from_json(line) for line in (ROOT / "docs" / "data" / "smbd-incast.jsonl").read_text().splitlines()]
    aggregates = {int(r.params["ranks"]) - 1: r for r in incast if r.name == "mpi.smbd.read"}
    assert sorted(aggregates) == [1, 2, 3] and all(is_mpi_pair(r) for r in incast if r.name == "smbd.read")
    store = tmp_path / "session-and-incast.sqlite"
    shutil.copy(session["store"], store)
    with Store(store) as st:
        for r in incast:
            st.insert(r)
    res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                  "--store", str(store), "--format", "json")
    assert res.code == 0, res.err
    rows = [r for r in json.loads(res.out)["rows"] if r["measured_server_cpu_s_per_gb"] is None and r["records"]]
    assert sorted(r["clients"] for r in rows) == [1, 2, 3]
    for row in rows:
        assert row["measured_gbytes_per_s"] == aggregates[row["clients"]].summary["aggregate_gbytes_per_s"]
        assert row["connections"] == 1 and row["io_size_bytes"] == 1 << 20 and row["copy_path"] == "cpu-copy"



COPY_PARTS = ROOT / "docs" / "data" / "smbd-copy-parts.jsonl"


@pytest.fixture(scope="module")
def copy_parts():
    """The copy.pread part and the cpu-copy smbd records of the 2026-12-01 14:15 UTC guest session."""
    return [from_json(line) for line in COPY_PARTS.read_text().splitlines() if line.strip()]


def test_copy_page_time_and_copy_absorption_are_the_pread_parts_by_hand(copy_parts):
    """copy.pread: alone, the server's pread per 4 KiB page less 4 KiB at the copy law's DRAM rate;
    beside a WRITE chain against alone, (beside - alone) / alone per size; medians over the sizes."""
    alone, beside = {}, {}
    for r in rc.of_kind(copy_parts, "copy.pread"):
        (beside if r.params["beside_chain"] else alone).setdefault(r.params["io_size_bytes"], []).extend(
            r.samples["cpu_s_per_gb"])
    assert len(alone) == len(beside) == 8
    rate = 0.8e9                    # any copy law: the step per page is what the pread costs beyond it
    got = rc.pread_estimates(rc.of_kind(copy_parts, "copy.pread"), rate)
    law = 4096 / rate
    assert got["cpu.copy_page_time"][0].value == pytest.approx(
        median(v * 4096 / 1e9 - law for vs in alone.values() for v in vs if v * 4096 / 1e9 > law))
    grown = [max(median(beside[s]) - median(alone[s]), 0) / median(alone[s]) for s in beside]
    e = got["nic.soft_copy_absorption"][0]
    assert e.value == pytest.approx(median(grown)) and (e.low, e.high) == pytest.approx((min(grown), max(grown)))
    assert len(e.record_ids) == 32


COPY_POSTING = ROOT / "docs" / "data" / "smbd-copy-posting.jsonl"


@pytest.fixture(scope="module")
def copy_posting():
    """The copy.pread part with its three variants and the cpu-copy smbd records of the 2026-12-01
    16:59 UTC guest session."""
    return [from_json(line) for line in COPY_POSTING.read_text().splitlines() if line.strip()]


def test_copy_absorption_comes_from_the_copying_thread_posting_its_own_chain(copy_posting):
    """With the part's third variant present, the absorption is (posting - alone) / alone per size,
    median over the sizes; the runs beside another process's chain stay out of it (and of what it
    cites), copy_page_time still comes from the runs alone."""
    preads = rc.of_kind(copy_posting, "copy.pread")
    alone, posting, beside = {}, {}, {}
    for r in preads:
        into = posting if r.params.get("own_chain") else beside if r.params.get("beside_chain") else alone
        into.setdefault(r.params["io_size_bytes"], []).extend(r.samples["cpu_s_per_gb"])
    assert len(alone) == len(posting) == len(beside) == 8
    got = rc.pread_estimates(preads, 0.8e9)
    est, how = got["nic.soft_copy_absorption"]
    grown = [max(median(posting[s]) - median(alone[s]), 0) / median(alone[s]) for s in posting]
    assert est.value == pytest.approx(median(grown)) and (est.low, est.high) == pytest.approx((min(grown), max(grown)))
    assert "posting" in how
    assert set(est.record_ids) == {r.id for r in preads if not r.params.get("beside_chain")}
    law = 4096 / 0.8e9
    assert got["cpu.copy_page_time"][0].value == pytest.approx(
        median(v * 4096 / 1e9 - law for vs in alone.values() for v in vs if v * 4096 / 1e9 > law))
    # the copying thread posting its own chain costs more than the copy alone, in the median over the sizes
    assert median(median(posting[s]) / median(alone[s]) for s in posting) > 1


def test_the_cpu_copy_servers_copy_is_measured_inside_the_whole(copy_parts):
    """The serving threads' CPU inside pread, a part of their CPU, and more per byte than the same
    pread alone (the part) of the same session."""
    cpu_copy = [r for r in rc.smbd_records(copy_parts) if r.params["copy"] == "cpu-copy"]
    assert len(cpu_copy) == 15          # 16 points, one stopped by an rxe stall (partial, left out)
    for r in cpu_copy:
        s = r.summary
        assert 0 < s["server_copy_cpu_s_per_gb"] <= s["server_serving_user_cpu_s_per_gb"] + \
            s["server_serving_system_cpu_s_per_gb"]
    alone = median(v for r in rc.of_kind(copy_parts, "copy.pread") if not r.params["beside_chain"]
                   for v in r.samples["cpu_s_per_gb"])
    assert median(r.summary["server_copy_cpu_s_per_gb"] for r in cpu_copy) > alone


def _with_steal(records, steal_of) -> list:
    """The records with the host's steal share steal_of(record) (None: without one) in their provenance."""
    import copy
    out = []
    for r in records:
        r = copy.deepcopy(r)
        steal = steal_of(r)
        r.provenance = {k: v for k, v in r.provenance.items() if k != "host_cpu_under_guest"}   # its real one too
        if steal is not None:
            r.provenance = {**r.provenance, "host_cpu_under_guest": {"steal_fraction": steal, "busy_fraction": 0.5}}
        out.append(r)
    return out


def test_points_run_on_a_loaded_host_are_named_and_the_rest_summed_apart(records, session, run_cli, tmp_path):
    """The session's parts marked as run under host steal 0.01, its cpu-copy 1 MiB records under 0.25,
    one zero-copy 8 MiB record under 0.15 and the other smbd records under 0.02: the column holds each
    point's median steal, a note names the loaded point (not the one with a spell) and gives the errors
    over the others; with the parts marked loaded too, or their steal unknown, no such note."""
    from models.report import error_summary

    def loaded_point(r):
        return r.name.startswith("smbd.") and r.params.get("copy") == "cpu-copy" \
            and r.params.get("io_size_bytes") == 1 << 20 and not r.params.get("serving_cpus")

    def run(steal_of, name):
        store = tmp_path / f"{name}.sqlite"
        with Store(store) as st:
            for r in _with_steal(records, steal_of):
                st.insert(r)
        res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                      "--store", str(store), "--format", "json")
        assert res.code == 0, res.err
        return json.loads(res.out)

    # a second point with one record under a spell of steal: its median, not its worst, decides
    spell = next(r for r in rc.smbd_records(records) if r.params.get("copy") == "zero-copy"
                 and r.params.get("io_size_bytes") == 8 << 20 and not r.params.get("serving_cpus"))
    spell_steal = sorted([0.15] + [0.02] * (sum(rc.smbd_config(r) == rc.smbd_config(spell)
                                                  for r in rc.smbd_records(records)) - 1))
    doc = run(lambda r: 0.25 if loaded_point(r) else 0.15 if r.id == spell.id
              else 0.02 if r.name.startswith("smbd.") else 0.01, "one-loaded")
    measured = [row for row in doc["rows"] if row["records"]]
    loaded = [row for row in measured if row["host_steal_fraction"] == 0.25]
    assert [(row["copy_path"], row["io_size_bytes"]) for row in loaded] == [("cpu-copy", 1 << 20)]
    (spelled,) = [row for row in measured if row["copy_path"] == "zero-copy" and row["io_size_bytes"] == 8 << 20
                  and not row.get("serving_cpus")]
    assert median(spell_steal) <= 0.10 < max(spell_steal)
    assert spelled["host_steal_fraction"] == pytest.approx(median(spell_steal))
    assert all(row["host_steal_fraction"] == 0.02 for row in measured if row not in loaded and row is not spelled)
    (note,) = [n for n in doc["notes"] if "loaded host" in n]
    rest = [row for row in measured if row not in loaded]
    assert note.startswith("1 point(s) ran on a loaded host") and "the parts' 0.01" in note
    assert "cpu-copy read 1MiB (steal 0.250)" in note
    assert f"the other {len(rest)}: throughput {error_summary([r['gbps_error_pct'] for r in rest])}" in note
    assert f"server CPU per GB {error_summary([r['cpu_error_pct'] for r in rest])}" in note
    assert f"server + ksoftirqd {error_summary([r['server_side_cpu_error_pct'] for r in rest])}" in note

    both = run(lambda r: 0.25 if loaded_point(r) or not r.name.startswith("smbd.") else 0.02, "parts-loaded")
    assert not any("loaded host" in n for n in both["notes"])
    parts_unknown = run(lambda r: 0.25 if loaded_point(r) else 0.02 if r.name.startswith("smbd.") else None,
                        "parts-unknown")
    assert not any("loaded host" in n for n in parts_unknown["notes"])      # no side to hold it against
    unknown = run(lambda r: None, "unknown")
    assert all(row["host_steal_fraction"] is None for row in unknown["rows"])
    assert not any("loaded host" in n for n in unknown["notes"])


def test_pinned_runs_are_points_of_their_own(records, session, run_cli, tmp_path):
    """Records of `measure smbd --serving-cpus` (params serving_cpus, as the server pinned them) are not
    pooled with their unpinned point: a row of their own, its CPUs shown, predicted with the serving
    processes on the cores they were pinned to (workload.serving_pinned_cores)."""
    import copy
    import uuid

    point = [r for r in rc.smbd_records(records) if rc.smbd_config(r).path == "zero-copy"
             and r.params.get("io_size_bytes") == 1 << 20 and not r.params.get("serving_cpus")]
    pinned = []
    for r in point:
        r = copy.deepcopy(r)
        r.id = uuid.uuid4().hex
        r.params = {**r.params, "serving_cpus": [[1], [0]]}
        r.summary = {**r.summary, "gbytes_per_s": 2 * r.summary["gbytes_per_s"]}
        pinned.append(r)
    store = tmp_path / "pinned.sqlite"
    with Store(store) as st:
        for r in [*records, *pinned]:
            st.insert(r)
    res = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                  "--store", str(store), "--format", "json")
    assert res.code == 0, res.err
    rows = [row for row in json.loads(res.out)["rows"] if row["copy_path"] == "zero-copy"
            and row["io_size_bytes"] == 1 << 20]
    (free,) = [row for row in rows if row["serving_cpus"] == ""]
    (held,) = [row for row in rows if row["serving_cpus"] == "1/0"]
    assert held["records"] == free["records"] == len(point)
    from scenarios.schema import load_platform, load_scenario
    s = load_scenario("smbdirect-this-host", platform=load_platform(str(session["profile"])))
    cfg = rc.smbd_config(pinned[0])
    assert cfg.serving_cpus == ((1,), (0,)) and rc.pinned_cores(cfg.serving_cpus) == 2
    assert held["predicted_gbytes_per_s"] == pytest.approx(rc.smbd_predicted(s, [cfg])[cfg].gbytes_per_s)
    assert held["predicted_gbytes_per_s"] >= free["predicted_gbytes_per_s"]      # two cores for the chains
    assert held["measured_gbytes_per_s"] == pytest.approx(2 * free["measured_gbytes_per_s"])
    text = run_cli("plan", "smbdirect-this-host", "--vs-measured", "--platform", str(session["profile"]),
                   "--store", str(store)).out
    assert "serving CPUs" in text and re.search(r"\| 1/0 +\|", text)


def test_pinned_cores_of_a_label():
    assert rc.pinned_cores(()) == 0 and rc.pinned_cores(((0, 1), (0, 1))) == 0      # allowed both: the scheduler's
    assert rc.pinned_cores(((1,), (0,))) == 2 and rc.pinned_cores(((0,), (0,))) == 1
    assert rc.pinned_cores(((0,), (1,), (0,))) == 2
    assert rc.pinned_label(rc.pinned_sets([[1], [0]])) == "1/0" and rc.pinned_label(rc.pinned_sets(None)) == ""
    assert rc.pinned_label(rc.pinned_sets([])) == "" and rc.pinned_label(((0, 1), (2,))) == "0,1/2"
