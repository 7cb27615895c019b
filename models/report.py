"""The plan report: rows flattened once from an evaluation's arrays.

The CLI, the stored `plan` record and the HTML report all read these rows; none rebuilds them.
"""

from __future__ import annotations

from models.bottleneck import RESOURCES
from models.sweep import Evaluation
from scenarios.schema import unit_key


def rows(ev: Evaluation) -> list[dict]:
    """One dict per point, SI units in the key names (for tables and records)."""
    r = ev.result
    util = r.utilisation
    swept = [k for k in ev.axes if k not in ("path_index", "workload.io_size")]
    out = []
    for i in range(ev.points):
        row = {
            "io_size_bytes": float(r.io_size.flat[i]),
            "copy_path": ev.path_name(i),
            **{unit_key(k): float(ev.axes[k].flat[i]) for k in swept},
            "throughput_bytes_per_s": float(r.throughput.flat[i]),
            "binding": RESOURCES[int(r.binding.flat[i])],
            "next_binding": RESOURCES[int(r.next_binding.flat[i])],
            "headroom_ratio": float(r.headroom.flat[i]),
            "cores_busy": float(r.cores_busy.flat[i]),
            "dma_engines_busy": float(r.dma_engines_busy.flat[i]),
            "cpu_s_per_gb": float(r.cpu_seconds_per_byte.flat[i] * 1e9),
            "latency_seconds": float(r.latency_seconds.flat[i]),
        }
        for j, name in enumerate(RESOURCES):
            row[f"util_{name.replace('-', '_')}_ratio"] = float(util[j].flat[i])
            row[f"capacity_{name.replace('-', '_')}_bytes_per_s"] = float(r.capacity[j].flat[i])
        out.append(row)
    return out
