"""models/uncertainty.py: the platform's spreads drawn and pushed through the model.

With zero spread every interval is the point figure; with a known spread on one input of the
resource that binds, the interval is the one derived by hand from the equations of docs/model.md."""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest

from models import report, uncertainty
from models.bottleneck import RESOURCES
from models.sweep import evaluate_grid, evaluate_scenario
from scenarios import schema
from scenarios.spread import Spread

MiB = 1024 * 1024


def _with_spreads(s: schema.Scenario, spreads: dict[str, Spread]) -> schema.Scenario:
    return dataclasses.replace(s, platform=dataclasses.replace(s.platform, spreads=spreads))


def _zero_width(s: schema.Scenario) -> dict[str, Spread]:
    """Every figure of the platform that has a spread, with a spread of zero width."""
    flat = schema.flat_params(s)
    out = {}
    for key, sp in s.platform.spreads.items():
        v = flat[uncertainty.flat_name(key)]
        out[key] = Spread(sp.kind, v, v, v, "0", "test", values=(v,) if sp.kind == "one-of" else (),
                          confidence=sp.confidence)
    return out


@pytest.mark.parametrize("scenario, platform", [("smbdirect-2x200g", None), ("smb-tcp-100g", "epyc-9654-cx7")])
def test_zero_spread_collapses_every_interval_onto_the_point(scenario, platform):
    s = schema.load_scenario(scenario, platform=platform)
    assert s.platform.spreads                                     # the built-in profiles carry spreads
    s = _with_spreads(s, _zero_width(s))
    ev = evaluate_scenario(s)
    idx = report.order(ev)
    doc = uncertainty.intervals(ev, idx, 200, target=46e9)
    pts = doc["points"]
    r = ev.result
    X = r.throughput[idx]
    for q in ("p05", "p50", "p95"):
        assert pts[f"throughput_{q}_bytes_per_s"] == pytest.approx(X.tolist(), rel=1e-12, abs=0)
        assert pts[f"busy_{q}_cores"] == pytest.approx(r.cores_busy[idx].tolist(), rel=1e-12)
    for i, j in enumerate(idx):
        flows = r.throughput[j] > 0
        assert pts["flows_share_ratio"][i] == (1.0 if flows else 0.0)
        for k, name in enumerate(RESOURCES):
            share = pts[f"binding_share_{name.replace('-', '_')}_ratio"][i]
            assert share == (1.0 if flows and k == r.binding[j] else 0.0), (i, name)
    # the target's counts collapse too, onto the point's 'what it takes'
    point_target = report.plan_report(ev, 46e9)["target"]["points"]
    for name, key in (("serving_cores", "serving_{q}_cores"), ("links", "links_{q}"), ("nics", "nics_{q}")):
        for q in ("p05", "p50", "p95"):
            assert doc["target"]["points"][key.format(q=q)] == point_target[name]
    assert doc["target"]["points"]["reachable_share_ratio"] == [1.0 if v == "yes" else 0.0
                                                                for v in point_target["reachable"]]


def _cpu_copy_8mib(s: schema.Scenario, spreads: dict[str, Spread]):
    ev = evaluate_scenario(_with_spreads(s, spreads))
    idx = report.order(ev)
    doc = uncertainty.intervals(ev, idx, 4000)
    pts = doc["points"]
    i = next(k for k, (p, size) in enumerate(zip(report.columns(ev)["copy_path"], report.columns(ev)["io_size_bytes"]))
             if p == "cpu-copy" and size == 8 * MiB)
    return ev, pts, idx.index(i)


def _serving_capacity(s: schema.Scenario, rate_dram: float) -> float:
    """docs/model.md, CPU serving threads, for cpu-copy over SMB Direct (1 syscall, 2 WRs, one copy
    out of the page cache: per byte + a step per 4 KiB page): threads x S / (t_smb + t_syscall + 2 t_wr
    + S / rate_dram + S / 4 KiB x t_page)."""
    cpu, w = s.platform.cpu, s.workload
    S = 8 * MiB
    t = (cpu.smb_request_time + cpu.syscall_time + 2 * cpu.rdma_wr_time + S / rate_dram
         + S / 4096 * cpu.copy_page_time)
    return min(w.io_cores, w.connections) * S / t


def test_known_uniform_spread_on_the_binding_input_gives_the_hand_derived_interval():
    s = schema.load_scenario("smbdirect-2x200g")
    v = s.platform.cpu.copy_rate_dram
    low, high = 5e9, 7.5e9
    ev, pts, i = _cpu_copy_8mib(s, {"cpu.copy_rate_dram": Spread("uniform", v, low, high, "5GB/s..7.5GB/s", "test")})
    # capacity rises with the copy rate, so its percentiles are the capacity at the rate's percentiles
    for q, key in ((0.05, "p05"), (0.5, "p50"), (0.95, "p95")):
        expected = _serving_capacity(s, low + q * (high - low))
        assert pts[f"throughput_{key}_bytes_per_s"][i] == pytest.approx(expected, rel=2e-4)
    assert pts["binding_share_cpu_serving_ratio"][i] == 1.0         # links carry more at the top rate
    assert _serving_capacity(s, high) < ev.result.capacity[0].max()


def test_known_normal_spread_gives_the_hand_derived_interval():
    """'normal LOW..HIGH' is the central 95 %: sigma = (HIGH - value) / 1.96 on either side."""
    s = schema.load_scenario("smbdirect-2x200g")
    v = s.platform.cpu.copy_rate_dram
    sigma = 0.5e9
    z95 = statistics.NormalDist().inv_cdf(0.975)
    spread = Spread("normal", v, v - z95 * sigma, v + z95 * sigma, "normal", "test", confidence=0.95)
    _, pts, i = _cpu_copy_8mib(s, {"cpu.copy_rate_dram": spread})
    z90 = statistics.NormalDist().inv_cdf(0.95)
    assert pts["throughput_p05_bytes_per_s"][i] == pytest.approx(_serving_capacity(s, v - z90 * sigma), rel=5e-4)
    assert pts["throughput_p50_bytes_per_s"][i] == pytest.approx(_serving_capacity(s, v), rel=2e-4)
    assert pts["throughput_p95_bytes_per_s"][i] == pytest.approx(_serving_capacity(s, v + z90 * sigma), rel=5e-4)


def test_shares_split_where_the_binding_resource_changes_within_the_spread():
    """zero-copy, 8 MiB: the links carry 46.3 GB/s; PCIe with 64 B completions 48.0 GB/s. A PCIe
    lane count drawn from {8, 16} halves PCIe in half the draws: PCIe binds in half of them."""
    s = schema.load_scenario("smbdirect-2x200g")
    ev = evaluate_scenario(_with_spreads(s, {"pcie.lanes": Spread("one-of", 16, 8, 16, "one of 8, 16", "test",
                                                                  values=(8.0, 16.0))}))
    idx = report.order(ev)
    pts = uncertainty.intervals(ev, idx, 1000)["points"]
    cols = report.columns(ev)
    i = idx.index(next(k for k, (p, size) in enumerate(zip(cols["copy_path"], cols["io_size_bytes"]))
                       if p == "zero-copy" and size == 8 * MiB))
    assert pts["binding_share_links_ratio"][i] == pytest.approx(0.5)
    assert pts["binding_share_pcie_ratio"][i] == pytest.approx(0.5)
    row = uncertainty.table_rows(pts)[i]
    assert row["binds"] == "links 50%, pcie 50%"
    assert pts["throughput_p05_bytes_per_s"][i] == pytest.approx(cols["capacity_pcie_bytes_per_s"][idx[i]] / 2)


def test_draws_are_stratified_and_follow_their_distribution():
    spreads = {"a": Spread("uniform", 1.0, 0.0, 10.0, "", ""),
               "b": Spread("log-uniform", 5.0, 1.0, 100.0, "", ""),
               "c": Spread("one-of", 2.0, 1.0, 4.0, "", "", values=(1.0, 2.0, 4.0)),
               "d": Spread("normal", 10.0, 8.0, 14.0, "", "", confidence=0.95)}
    d = uncertainty.draws(spreads, 3000, seed=3)
    # Latin hypercube: exactly one draw in each of the 3000 equal-probability strata
    assert np.array_equal(np.sort(np.floor(d["a"] / 10 * 3000)), np.arange(3000))
    assert np.median(d["b"]) == pytest.approx(10.0, rel=0.01)          # geometric mean of 1 and 100
    assert sorted(np.unique(d["c"]).tolist()) == [1.0, 2.0, 4.0]
    assert [int((d["c"] == v).sum()) for v in (1.0, 2.0, 4.0)] == [1000, 1000, 1000]
    inside = (d["d"] >= 8.0) & (d["d"] <= 14.0)
    assert inside.mean() == pytest.approx(0.95, abs=0.002)
    assert (d["d"] < 10).mean() == pytest.approx(0.5, abs=0.001)          # two half-normals meet at the figure
    assert np.array_equal(uncertainty.draws(spreads, 3000, seed=3)["b"], d["b"])   # a fixed seed repeats


def test_sample_count_is_bounded_by_the_evaluation_cap():
    assert uncertainty.samples_for(40, 1000) == 1000
    assert uncertainty.samples_for(2000, 1000) == 500                    # 1,000,000 / 2000 points
    assert uncertainty.samples_for(50_000, 1000) == 0                    # 20 draws would say little
    assert uncertainty.samples_for(40, 10) == 10                         # asked for few, gets them


def test_intervals_record_their_inputs_and_method():
    s = schema.load_scenario("smbdirect-2x200g")
    ev = evaluate_scenario(s)
    doc = uncertainty.intervals(ev, report.order(ev), 300)
    assert doc["samples"] == 300 and doc["seed"] == uncertainty.SEED and doc["quantiles"] == [0.05, 0.5, 0.95]
    assert set(doc["inputs"]) == {uncertainty.flat_name(k) for k in s.platform.spreads}
    smb = doc["inputs"]["cpu.smb_request_time"]
    assert smb["kind"] == "log-uniform" and smb["low"] == pytest.approx(2e-6) and smb["source"]
    assert "300 draws" in doc["notes"][0] and "cpu.smb_request_time" in doc["notes"][0]
    assert all(len(v) == ev.points for v in doc["points"].values())
    lo, mid, hi = (doc["points"][f"throughput_{q}_bytes_per_s"] for q in ("p05", "p50", "p95"))
    assert all(a <= b <= c for a, b, c in zip(lo, mid, hi))
    assert any(c > a for a, c in zip(lo, hi))                            # the built-in spreads widen something


def test_every_assumed_figure_of_the_builtin_profiles_has_a_spread_with_a_source():
    for name in ("xeon-8470-cx7", "epyc-9654-cx7"):
        p = schema.load_platform(name)
        assumed = {k for k, v in p.sources().items() if "assumption" in v.lower()}
        assert assumed and assumed <= set(p.spreads), assumed - set(p.spreads)
        for key, sp in p.spreads.items():
            assert sp.source and "assumption" not in sp.source.lower(), key
            assert sp.low <= schema.flat_params(_scenario_on(name))[uncertainty.flat_name(key)] <= sp.high


def _scenario_on(platform: str) -> schema.Scenario:
    return schema.load_scenario("smbdirect-2x200g", platform=platform)


def test_a_measured_interval_is_a_spread_of_the_confidence_it_names(tmp_path):
    f = tmp_path / "host.toml"
    f.write_text('base = "xeon-8470-cx7"\nname = "host"\n\n[measured.cpu.copy_rate_dram]\nvalue = "7GB/s"\n'
                 'low = "6GB/s"\nhigh = "9GB/s"\ninterval = "95% fit interval"\nmethod = "fit"\nrecords = ["r1"]\n\n'
                 '[measured.memory.dram_bandwidth]\nvalue = "250GB/s"\nlow = "240GB/s"\nhigh = "260GB/s"\n'
                 'interval = "range over the repetitions"\nmethod = "stream"\nrecords = ["r2"]\n')
    p = schema.load_platform(f)
    rate = p.spreads["cpu.copy_rate_dram"]
    assert (rate.kind, rate.confidence, rate.value, rate.low, rate.high) == ("normal", 0.95, 7e9, 6e9, 9e9)
    assert "records r1" in rate.source
    dram = p.spreads["memory.dram_bandwidth"]               # replaces the datasheet figure's spread
    assert (dram.kind, dram.low, dram.high) == ("uniform", 240e9, 260e9)
    d = uncertainty.draws(uncertainty.flat_spreads(p), 2000)["cpu.copy_rate_dram"]
    assert ((d >= 6e9) & (d <= 9e9)).mean() == pytest.approx(0.95, abs=0.003)


def test_a_figure_given_again_drops_the_base_spread(tmp_path):
    f = tmp_path / "child.toml"
    f.write_text('base = "xeon-8470-cx7"\nname = "child"\n[cpu]\nsmb_request_time = "30us"\n'
                 'smb_request_time_source = "measured by hand"\n')
    p = schema.load_platform(f)
    assert "cpu.smb_request_time" not in p.spreads and "cpu.rdma_wr_time" in p.spreads
    f.write_text('base = "xeon-8470-cx7"\nname = "child"\n[cpu]\nsmb_request_time_spread = "1us..40us"\n'
                 'smb_request_time_spread_source = "wider"\n')
    assert schema.load_platform(f).spreads["cpu.smb_request_time"].high == pytest.approx(40e-6)


def test_intervals_survive_json_and_none_stands_for_no_value():
    ev = evaluate_scenario(schema.load_scenario("smbdirect-2x200g"))
    doc = uncertainty.intervals(ev, report.order(ev), 200, target=46e9)
    import json
    again = json.loads(json.dumps(doc, allow_nan=False))
    assert again == doc
    dma = doc["target"]["points"]["dma_p50_engines"]
    paths = report.plan_report(ev)["points"]["copy_path"]
    assert all(v is None for v, p in zip(dma, paths) if p == "dma-offload")      # no engine reachable
    assert not any(math.isnan(v) for v in doc["points"]["throughput_p50_bytes_per_s"])


def test_a_sweep_too_large_for_the_draws_says_so_instead_of_an_interval():
    s = schema.load_scenario("smbdirect-2x200g")
    ev = evaluate_grid(s, {"workload.io_size": np.linspace(4096, 8 * MiB, 3000)})      # 15,000 points
    doc = report.plan_report(ev, None, 1000)
    assert doc["intervals"] is None and doc["needs"] is None
    assert doc["notes"][-1] == ("no intervals: 15,000 points x 100 draws would pass the 1,000,000 points "
                                "one evaluation holds")
    small = evaluate_grid(s, {"workload.io_size": np.linspace(4096, 8 * MiB, 600)})     # 3,000 points: 333 draws
    assert report.plan_report(small, None, 1000)["intervals"]["samples"] == 333
