"""Statistics from raw loop stamps (after the run, never inside it).

Bandwidth as perftest's print_report_bw defines it: average = bytes / (last completion - first
post); message rate = WRs / that time; peak = message size over the shortest time per WR of any
stretch from posting WR i to the signaled completion of WR j >= i, i.e. the minimum over i, j of
(t_completed[j] - t_posted[i]) / (j - i + 1). CPU: seconds per GB moved (1 GB = 1e9 bytes).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rig.accounting import CPU_PARTS, total_s
from rig.rdma.traffic import RawRun
from scenarios.units import BITS_PER_BYTE, GB

NS = 1e-9          # perf_counter_ns stamps -> seconds

MAX_STORED_SAMPLES = 100_000   # latency samples kept in a record (evenly thinned beyond; stats use all)
SLICES = 20         # the run is cut into this many slices for the per-slice bandwidth samples
PEAK_PAIRS_MAX = 20_000_000   # (post, completion) pairs searched for the peak; beyond, posts are thinned


def peak_seconds_per_wr(post_ns: Any, comp_ns: Any, wrs_per_post: int, wrs_per_completion: int) -> tuple[float, int]:
    """perftest's peak search: min over post calls k and completions c after them of
    (comp[c] - post[k]) / (WRs from the first WR of post k to the last WR covered by completion c).

    WR indices are global across QPs, as perftest's counters are. Returns (seconds per WR, post
    stride): stride > 1 means only every stride-th post stamp was searched (very long runs), so the
    peak found is a real stretch of the run but may miss the very best one.
    """
    post = np.asarray(post_ns, dtype=np.int64)
    comp = np.asarray(comp_ns, dtype=np.int64)
    stride = max(1, -(-post.size * comp.size // PEAK_PAIRS_MAX))
    first_wr = (np.arange(post.size, dtype=np.int64) * wrs_per_post)[::stride]
    post = post[::stride]
    wrs_done = np.arange(1, comp.size + 1, dtype=np.int64) * wrs_per_completion
    best = np.inf
    chunk = max(1, PEAK_PAIRS_MAX // 10 // max(1, post.size))
    for c0 in range(0, comp.size, chunk):
        done, t_c = wrs_done[c0:c0 + chunk, None], comp[c0:c0 + chunk, None]
        n_wrs = done - first_wr[None, :]
        dt = (t_c - post[None, :]).astype(np.float64)
        valid = n_wrs > 0
        if valid.any():
            best = min(best, float((dt[valid] / n_wrs[valid]).min()))
    return best * NS, stride


def _cpu_per_gb(cpu: dict[str, float], nbytes: float, prefix: str = "") -> dict[str, float]:
    """One side's CPU figures (rig.accounting.CpuWindow) in seconds and per GB; the total is the
    sum of the parts each counted once (rig.accounting.CPU_PARTS)."""
    gb = nbytes / GB
    out: dict[str, float] = {}
    for key in CPU_PARTS:
        value = cpu.get(key) or 0.0
        out[f"{prefix}cpu_{key[:-2]}_s"] = value
        out[f"{prefix}cpu_{key[:-2]}_s_per_gb"] = value / gb if gb else float("nan")
    out[f"{prefix}cpu_total_s_per_gb"] = total_s(cpu) / gb if gb else float("nan")
    for key in ("system_raw_s", "softirq_in_process_s", "ksoftirqd_s"):    # the parts behind them
        if cpu.get(key) is not None:
            out[f"{prefix}cpu_{key}"] = cpu[key]
    for key in ("busy_cpu_per_s", "least_busy_cpu_per_s", "ksoftirqd_top_share"):   # the machine's, and where
        if isinstance(cpu.get(key), float) and cpu[key] == cpu[key]:
            out[f"{prefix}{key}"] = cpu[key]
    return out


def loop_used(raw: RawRun) -> dict[str, Any]:
    """Which loop produced the stamps ("native": the compiled one, or "python"), and why the
    Python one ran when it did."""
    out = {"loop": raw.loop}
    if raw.loop_note:
        out["loop_note"] = raw.loop_note
    if raw.event_waits is not None:
        out["event_waits"] = raw.event_waits
    return out


def ended_unix_s(last_ns: int) -> float:
    """The wall-clock time of a perf_counter_ns stamp (the run's last completion): where the run's
    timed window ends, for the host's annotation of a guest record (rig.guest.hostload)."""
    return time.time() - (time.perf_counter_ns() - last_ns) * NS


def bandwidth(raw: RawRun, wrs_per_post: int = 1, peer_cpu: dict[str, float] | None = None) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """(summary, samples) of a bandwidth run."""
    msg = raw.msg_bytes
    nbytes = float(raw.wrs_completed) * msg
    first, last = int(raw.post_ns[0]), int(raw.comp_ns[-1])
    elapsed_s = max(NS, (last - first) * NS)
    avg = nbytes / elapsed_s
    comp = raw.comp_ns.astype(np.int64)
    per = raw.wrs_per_completion
    s_per_wr, stride = peak_seconds_per_wr(raw.post_ns, comp, wrs_per_post, per)
    peak = max(avg, msg / s_per_wr) if 0 < s_per_wr < np.inf else avg
    # per-slice bandwidth: completions counted in SLICES equal time slices of the run
    edges = np.linspace(first, last, SLICES + 1)
    counts, _ = np.histogram(comp, bins=edges)
    slice_s = (last - first) * NS / SLICES
    slices = (counts * per * msg / slice_s / GB).tolist() if slice_s > 0 else []
    summary = {
        "bytes": nbytes, "wrs": raw.wrs_completed, "seconds": elapsed_s,
        "ended_unix_s": ended_unix_s(last),
        "bw_average_gbytes_per_s": avg / GB, "bw_average_gbits_per_s": avg * BITS_PER_BYTE / GB,
        "bw_peak_gbytes_per_s": peak / GB, "bw_peak_gbits_per_s": peak * BITS_PER_BYTE / GB,
        "msg_rate_mpps": raw.wrs_completed / elapsed_s / 1e6,
        "post_calls": int(raw.post_ns.size), "completions": int(comp.size), "bw_peak_post_stride": stride,
        **loop_used(raw),
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
        **loop_used(raw),
    }
    summary.update(_cpu_per_gb(raw.cpu, summary["bytes"]))
    if peer_cpu:
        summary.update(_cpu_per_gb(peer_cpu, summary["bytes"], "peer_"))
    kept = lat if lat.size <= MAX_STORED_SAMPLES else lat[np.linspace(0, lat.size - 1, MAX_STORED_SAMPLES).astype(int)]
    return summary, {"latency_s": kept.tolist()}
