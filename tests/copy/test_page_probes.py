"""The per-page probes on real kernel paths, at small sizes: page faults, pinning, page copies, and
checksum offload on a veth pair.

What is deterministic is asserted exactly (faults counted, bytes backed by huge pages, bytes
pinned, offload states the interface reports). Times are only checked for physical sanity; the
comparisons physics predicts (THP cheaper per byte than 4 KiB pages, checksum offload off dearer
than on) are stored in the records and printed here, not asserted: on a shared host one timing can
be anything.
"""

import math
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from rig.copy import csum, hugepages, page_runs, pagecopy
from rig.copy.buffers import PAGE_BYTES

SIZE = 4 << 20   # two huge pages: small and fast, still enough pages to average over
NS, MS = 1e-9, 1e-3


def _by_kind(outcomes):
    """({page kind: record}, {page kind: skip reason}) of one probe's outcomes."""
    got = {o.what.rsplit(" ", 1)[1]: o for o in outcomes}
    return ({k: o.record for k, o in got.items() if o.record is not None},
            {k: o.skipped for k, o in got.items() if o.skipped})


def _report(label, records):
    for kind, r in records.items():
        s = r.summary
        print(f"{label} {kind}: {s.get('median_cpu_seconds_per_page'):.3g} CPU-s per page, "
              f"{s.get('median_cpu_s_per_gb'):.4f} CPU-s/GB, THP/4k {s.get(page_runs.RATIO_KEY)}")


def _thp_or_skip(skipped):
    if "thp" in skipped:
        pytest.skip(f"THP: {skipped['thp']}")


def _check_comparison(thp, base):
    ratio = thp.summary[page_runs.RATIO_KEY]
    assert math.isfinite(ratio) and ratio > 0
    assert thp.summary["compared_with_record"] == base.id


def test_page_faults_4k_and_thp():
    recs, skipped = _by_kind(page_runs.fault_sweep([SIZE], 2, store=None))
    base = recs["4k"]
    assert base.name == "copy.fault" and base.params["io_size_bytes"] == SIZE and base.params["page_bytes"] == 4096
    # one minor fault per 4 KiB page touched (a handful more from the interpreter at most)
    assert all(0.99 <= f <= 1.05 for f in base.samples["faults_per_page"])
    assert all(100 * NS < t < 1 * MS for t in base.samples["cpu_seconds_per_page"])
    assert all(h == 0 for h in base.samples["huge_page_bytes"])
    assert base.provenance["transparent_hugepage"]["enabled"] is not None or not hugepages.THP_DIR.exists()
    assert "stability_warning" in base.summary and base.summary["n"] == 2
    _thp_or_skip(skipped)
    thp = recs["thp"]
    assert thp.params["page_bytes"] == hugepages.huge_page_bytes() and thp.params["pages"] == 2
    assert all(h == SIZE for h in thp.samples["huge_page_bytes"])  # really backed by huge pages
    assert all(0.99 <= f <= 3 for f in thp.samples["faults_per_page"])  # one fault per 2 MiB page
    assert all(1e-6 < t < 0.1 for t in thp.samples["cpu_seconds_per_page"])
    _check_comparison(thp, base)
    _report("fault", recs)


@pytest.fixture(scope="module")
def pin_outcomes():
    return list(page_runs.pin_sweep([SIZE], 2, store=None))


@pytest.mark.parametrize("method", ["uring-register", "vmsplice"])
def test_pinning_4k_and_thp(pin_outcomes, method):
    recs, skipped = _by_kind(o for o in pin_outcomes if o.what.startswith(f"pin {method} "))
    if "4k" not in recs:
        pytest.skip(f"{method}: {skipped.get('4k')}")
    base = recs["4k"]
    assert base.name == "copy.pin" and base.params["pages"] == SIZE // PAGE_BYTES
    if method == "uring-register":
        assert all(p in (SIZE, None) for p in base.samples["pinned_bytes"])  # VmPin: every page pinned
        assert base.params["calls_per_pin"] == 1
    else:
        assert base.params["calls_per_pin"] == SIZE // (1 << 20)  # 1 MiB per vmsplice
    for r in recs.values():
        assert all(0.1 * NS < t < 100e-6 for t in r.samples["cpu_seconds_per_page"])
        assert all(t >= 0 for t in r.samples["release_cpu_seconds_per_page"])
    _thp_or_skip(skipped)
    _check_comparison(recs["thp"], base)
    assert recs["thp"].provenance["backing"]["huge_page_bytes"] == SIZE
    _report(f"pin {method}", recs)


def test_page_copies_4k_folios_and_2m_folios():
    recs, skipped = _by_kind(page_runs.pagecopy_sweep([SIZE], 2, store=None))
    if "4k" not in recs:
        pytest.skip(f"page copies: {skipped.get('4k')}")
    base = recs["4k"]
    assert base.name == "copy.pagecopy" and base.params["folio_bytes"] == 4096
    assert all(0.001 < c < 10 for c in base.samples["cpu_s_per_gb"])  # 0.1-1000 GB per CPU-second
    _thp_or_skip(skipped)
    thp = recs["thp"]
    assert thp.params["folios"] == 2 and thp.provenance["tmpfs"]["huge_folio_bytes_seen"] == SIZE
    _check_comparison(thp, base)
    assert math.isfinite(thp.summary["fitted_per_page_cpu_seconds_per_page"])
    assert math.isfinite(thp.summary["fitted_per_byte_cpu_s_per_gb"])
    _report("pagecopy", recs)
    print(f"pagecopy fitted: {thp.summary['fitted_per_page_cpu_seconds_per_page']:.3g} CPU-s per 4 KiB page, "
          f"{thp.summary['fitted_per_byte_cpu_s_per_gb']:.4f} CPU-s/GB")
    assert not list(Path(tempfile.gettempdir()).glob(f"{pagecopy.DIR_PREFIX}{os.getpid()}-*"))  # mount point gone


def test_checksum_offload_off_and_on():
    reason = csum.unavailable()
    if reason:
        pytest.skip(reason)
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        pytest.skip("iproute2 `ip` is missing")
    outcomes = list(csum.sweep(["rw"], [256 << 10], 2, 0.1, store=None))
    assert [o.what for o in outcomes] == [s.what for s in csum.plan(["rw"], [256 << 10], 2, 0.1)]
    recs = {o.record.params["checksum_offload"]: o.record for o in outcomes}
    for state, r in recs.items():
        assert r.name == "copy.csum" and r.params["via"] == "veth" and r.params["io_size_bytes"] == 256 << 10
        offloads = r.provenance["network"]["tx_offloads"]
        assert offloads["tx-checksumming"].startswith(state) and offloads["tcp-segmentation-offload"].startswith("off")
        assert r.provenance["network"]["rx_offloads"]["rx-checksumming"].startswith(state)
        assert all(0.01 < c < 100 for c in r.samples["total_cpu_s_per_gb"])
        assert len(r.samples["gbytes_per_s"]) == 2
    off = recs["off"].summary
    assert off["compared_with_record"] == recs["on"].id
    for key in ("offload_off_extra_tx_cpu_s_per_gb", "offload_off_extra_rx_cpu_s_per_gb",
                "offload_off_extra_total_cpu_s_per_gb"):
        assert math.isfinite(off[key])
    print(f"csum rw 256 KiB: on {recs['on'].summary['median_total_cpu_s_per_gb']:.3f}, "
          f"off {off['median_total_cpu_s_per_gb']:.3f} CPU-s/GB, paired off - on "
          f"{off['offload_off_extra_total_cpu_s_per_gb']:+.3f} (tx {off['offload_off_extra_tx_cpu_s_per_gb']:+.3f})")


@pytest.mark.parametrize("probe", ["fault", "pin", "pagecopy"])
def test_plans_name_the_configurations_the_sweeps_run(probe):
    plan = getattr(page_runs, f"{probe}_plan")([64 << 10, SIZE], 1)
    outcomes = list(getattr(page_runs, f"{probe}_sweep")([64 << 10, SIZE], 1, store=None))
    assert [o.what for o in outcomes] == [s.what for s in plan]
    assert all(s.cost_s() > 0 for s in plan)
