"""Statistics from raw loop stamps (after the run, never inside it).

Bandwidth (as perftest reports it): average = bytes / (last completion - first post); message
rate = WRs / that time; peak = the highest rate over any window of consecutive completions that
covers at least one full TX queue of WRs (a window shorter than the queue only measures bursts
of completions reaped in one poll). CPU: seconds per GB moved (1 GB = 1e9 bytes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rig.rdma.traffic import RawRun
from scenarios.units import BITS_PER_BYTE, GB

NS = 1e-9          # perf_counter_ns stamps -> seconds

MAX_STORED_SAMPLES = 100_000   # latency samples kept in a record (evenly thinned beyond; stats use all)
SLICES = 20         # the run is cut into this many slices for the per-slice bandwidth samples


def _cpu_per_gb(cpu: dict[str, float], nbytes: float, prefix: str = "") -> dict[str, float]:
    gb = nbytes / GB
    out: dict[str, float] = {}
    for key in ("user_s", "system_s", "softirq_s"):
        out[f"{prefix}cpu_{key[:-2]}_s"] = cpu.get(key, 0.0)
        out[f"{prefix}cpu_{key[:-2]}_s_per_gb"] = cpu.get(key, 0.0) / gb if gb else float("nan")
    total = sum(cpu.get(k, 0.0) for k in ("user_s", "system_s", "softirq_s"))
    out[f"{prefix}cpu_total_s_per_gb"] = total / gb if gb else float("nan")
    return out


def bandwidth(raw: RawRun, tx_depth: int, peer_cpu: dict[str, float] | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """(summary, samples) of a bandwidth run."""
    msg = raw.msg_bytes
    nbytes = float(raw.wrs_completed) * msg
    first, last = int(raw.post_ns[0]), int(raw.comp_ns[-1])
    elapsed_s = max(NS, (last - first) * NS)
    avg = nbytes / elapsed_s
    comp = raw.comp_ns.astype(np.int64)
    per = raw.wrs_per_completion
    window = max(1, -(-tx_depth * raw.num_qps // per))
    peak = avg
    if comp.size > window:
        dt = (comp[window:] - comp[:-window]) * NS
        ok = dt > 0
        if ok.any():
            peak = max(avg, float((window * per * msg / dt[ok]).max()))
    # per-slice bandwidth: completions counted in SLICES equal time slices of the run
    edges = np.linspace(first, last, SLICES + 1)
    counts, _ = np.histogram(comp, bins=edges)
    slice_s = (last - first) * NS / SLICES
    slices = (counts * per * msg / slice_s / GB).tolist() if slice_s > 0 else []
    summary = {
        "bytes": nbytes, "wrs": raw.wrs_completed, "seconds": elapsed_s,
        "bw_average_gbytes_per_s": avg / GB, "bw_average_gbits_per_s": avg * BITS_PER_BYTE / GB,
        "bw_peak_gbytes_per_s": peak / GB, "bw_peak_gbits_per_s": peak * BITS_PER_BYTE / GB,
        "msg_rate_mpps": raw.wrs_completed / elapsed_s / 1e6,
        "post_calls": int(raw.post_ns.size), "completions": int(comp.size),
    }
    summary.update(_cpu_per_gb(raw.cpu, nbytes))
    if peer_cpu:
        summary.update(_cpu_per_gb(peer_cpu, nbytes, "peer_"))
    return summary, {"slice_gbytes_per_s": slices}


def latency(raw: RawRun, peer_cpu: dict[str, float] | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """(summary, samples) of a latency run in seconds: post to completion, or half of each round
    trip for ping-pong stamps (as ib_write_lat / ib_send_lat report)."""
    round_trip = raw.stamps_span == "round_trip"
    lat = (raw.comp_ns - raw.post_ns).astype(np.float64) * NS / (2 if round_trip else 1)
    if lat.size == 0:
        raise ValueError("no latency samples")
    q = np.quantile(lat, [0.5, 0.99, 0.999])
    summary = {
        # a round trip moves the message twice
        "bytes": float(raw.wrs_completed) * raw.msg_bytes * (2 if round_trip else 1), "wrs": raw.wrs_completed,
        "latency_method": "half_round_trip" if round_trip else "post_to_completion",
        "latency_min_s": float(lat.min()), "latency_median_s": float(q[0]),
        "latency_p99_s": float(q[1]), "latency_p999_s": float(q[2]), "latency_max_s": float(lat.max()),
        "latency_mean_s": float(lat.mean()), "latency_stdev_s": float(lat.std(ddof=1)) if lat.size > 1 else 0.0,
    }
    summary.update(_cpu_per_gb(raw.cpu, summary["bytes"]))
    if peer_cpu:
        summary.update(_cpu_per_gb(peer_cpu, summary["bytes"], "peer_"))
    kept = lat if lat.size <= MAX_STORED_SAMPLES else lat[np.linspace(0, lat.size - 1, MAX_STORED_SAMPLES).astype(int)]
    return summary, {"latency_s": kept.tolist()}
