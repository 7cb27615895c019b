"""Uncertainty of the plan: the platform's spreads drawn and pushed through the same model.

Every platform figure with a spread (scenarios/spread.py: a stated range, a calibration's
interval, an assumption's spread) is drawn `samples` times (Latin hypercube: each figure's draws
fall one into each of `samples` equal-probability strata, in a random pairing; a fixed seed).
Every point of the evaluation is then evaluated once per draw, in ONE vectorised call of the
bottleneck model over points x samples, and each point's figures are summarised:

    throughput, cores busy, DMA engines busy: 5th, 50th and 95th percentile (the median and the
                                              90 % interval)
    binding resource:                          the share of draws in which each resource binds
    'what it takes' (a target):                the same percentiles of every count, and the share
                                               of draws in which the target is reachable

With no spread the draws are the point figures and every interval collapses onto the point.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Mapping

import numpy as np

from models.bottleneck import RESOURCES, evaluate
from models.sweep import Evaluation, base_params
from models.target import requirements
from scenarios.platform import Platform, field_of, flat_name
from scenarios.schema import MAX_SWEEP_POINTS
from scenarios.spread import Spread
from scenarios.units import to_gbytes_per_s

# `plan smbdirect-2x200g` with 1000 draws stays well under 1 s on the shared 2-core machine
# (benchmarks/plan_intervals.py prints the times); Latin hypercube draws pin the 5th and 95th
# percentiles of a monotonic figure to within 1/1000 of its range.
DEFAULT_SAMPLES = 1000
MAX_SAMPLES = 100_000
MIN_SAMPLES = 100               # fewer draws than this say little about a 90 % interval
SEED = 11
QUANTILES = (0.05, 0.5, 0.95)
_Q_KEYS = ("p05", "p50", "p95")
# (Result / Requirements attribute, the record key of its percentile {q}: units in the keys)
POINT_FIGURES = (("throughput", "throughput_{q}_bytes_per_s"), ("cores_busy", "busy_{q}_cores"),
                 ("dma_engines_busy", "dma_busy_{q}_engines"))
TARGET_FIGURES = (("serving_cores", "serving_{q}_cores"), ("worker_cores", "worker_{q}_cores"),
                  ("dma_engines", "dma_{q}_engines"), ("links", "links_{q}"), ("nics", "nics_{q}"),
                  ("outstanding_ios", "outstanding_{q}"))


def flat_spreads(p: Platform) -> dict[str, Spread]:
    """The platform's spreads keyed by flat parameter name ('cpu.clock_hz', 'dma.dsa.rate')."""
    return {flat_name(k): s for k, s in p.spreads.items()}


def draws(spreads: Mapping[str, Spread], n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """`n` Latin-hypercube draws of every spread figure (SI), one array per flat name."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(spreads):
        u = (rng.permutation(n) + rng.random(n)) / n
        out[key] = _inverse(spreads[key], np.clip(u, 1e-12, 1 - 1e-12), key)
    return out


_normal = np.vectorize(statistics.NormalDist().inv_cdf, otypes=[float])


def _inverse(s: Spread, u: np.ndarray, key: str) -> np.ndarray:
    """The value at cumulative probability `u` of a spread."""
    if s.kind == "one-of":
        values = np.asarray(s.values, dtype=float)
        return values[np.minimum((u * len(values)).astype(int), len(values) - 1)]
    if s.kind == "log-uniform":
        return np.exp(math.log(s.low) + u * (math.log(s.high) - math.log(s.low)))
    if s.kind == "normal":
        z_end = statistics.NormalDist().inv_cdf(0.5 + s.confidence / 2)
        z = _normal(u)
        sigma = np.where(z < 0, s.value - s.low, s.high - s.value) / z_end
        field = field_of(key)
        floor = field.limit.low if field is not None and field.limit is not None else 0.0
        return np.maximum(s.value + z * sigma, floor)      # a normal's tail stops at the physical range
    return s.low + u * (s.high - s.low)


def samples_for(points: int, wanted: int) -> int:
    """The draws one evaluation can hold: `wanted`, fewer when points x draws would pass
    MAX_SWEEP_POINTS, 0 when that leaves fewer than MIN_SAMPLES."""
    n = min(wanted, MAX_SWEEP_POINTS // max(points, 1))
    return n if n >= MIN_SAMPLES or n == wanted else 0


def sample_evaluation(ev: Evaluation, values: Mapping[str, np.ndarray]) -> Evaluation:
    """Every point of `ev` once per draw, in one call of the model; point i's draws are entries
    i*n .. i*n+n-1. A swept field keeps its swept value (the sweep is what the user asked)."""
    n = len(next(iter(values.values()))) if values else 1
    axes = {k: np.repeat(v, n) for k, v in ev.axes.items()}
    params: dict[str, Any] = base_params(ev.scenario)
    params.update({k: np.tile(v, ev.points) for k, v in values.items()})
    params.update(axes)
    result = evaluate(params, ev.table, tuple(e.name for e in ev.scenario.platform.dma))
    return Evaluation(scenario=ev.scenario, table=ev.table, axes=axes, result=result)


def _quantiles(values: np.ndarray, counts: bool = False) -> np.ndarray:
    """[3, points] percentiles of [points, n] values; counts take a real draw's value (no 5.5 cores).
    A point whose draws are all not finite (no engine reachable) gets nan."""
    with np.errstate(invalid="ignore"):
        return np.quantile(values, QUANTILES, axis=1, method="inverted_cdf" if counts else "linear")


def _lists(a: np.ndarray, idx: list[int]) -> list:
    return [None if not math.isfinite(v) else v for v in a[idx].tolist()]


def intervals(ev: Evaluation, order: list[int], samples: int = DEFAULT_SAMPLES, seed: int = SEED,
              target: float | None = None) -> dict[str, Any] | None:
    """The plan's intervals as a JSON-able dict (points in `order`, the table order):

        {samples, seed, quantiles, method, inputs: {flat name: spread}, notes,
         points: {throughput_p05_bytes_per_s, ..._p50_..., ..._p95_..., busy_p05_cores, dma_busy_p05_engines,
                  ..., binding_share_<resource>_ratio, flows_share_ratio, binds ("links 80%, pcie 20%"),
                  util_<resource>_p05_ratio, ..._p95_},
         target: null | {points: {serving_p05_cores, ..., links_p05, ..., reachable_share_ratio}}}

    None when the evaluation is too large to hold MIN_SAMPLES draws of every point."""
    spreads = flat_spreads(ev.scenario.platform)
    n = samples_for(ev.points, samples)
    if n == 0:
        return None
    sampled = sample_evaluation(ev, draws(spreads, n, seed))
    r = sampled.result
    P = ev.points
    points: dict[str, list] = {}
    for name, key in POINT_FIGURES:
        for row, q in zip(_quantiles(getattr(r, name).reshape(P, n)), _Q_KEYS):
            points[key.format(q=q)] = _lists(row, order)
    X = r.throughput.reshape(P, n)
    flows = X > 0
    binding = r.binding.reshape(P, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j, resource in enumerate(RESOURCES):
            share = np.where(flows.any(axis=1), ((binding == j) & flows).sum(axis=1) / flows.sum(axis=1), 0.0)
            points[f"binding_share_{resource.replace('-', '_')}_ratio"] = _lists(share, order)
    points["flows_share_ratio"] = _lists(flows.mean(axis=1), order)
    shares = list(points)
    points["binds"] = [binds_text({k: points[k][i] for k in shares}) for i in range(P)]
    for j, resource in enumerate(RESOURCES):
        util = r.utilisation[j].reshape(P, n)
        q = _quantiles(np.where(np.isfinite(util), util, np.nan))
        points[f"util_{resource.replace('-', '_')}_p05_ratio"] = _lists(q[0], order)
        points[f"util_{resource.replace('-', '_')}_p95_ratio"] = _lists(q[2], order)
    out: dict[str, Any] = {
        "samples": n, "seed": seed, "quantiles": list(QUANTILES),
        "method": "Latin hypercube draws of every platform figure with a spread; one evaluation of "
                  "points x draws",
        "inputs": {k: spread_record(s) for k, s in sorted(spreads.items())},
        "notes": notes(spreads, n, seed),
        "points": points, "target": None,
    }
    if target is not None:
        out["target"] = {"points": target_intervals(sampled, target, P, n, order)}
    return out


def target_intervals(sampled: Evaluation, target: float, P: int, n: int, order: list[int]) -> dict[str, list]:
    """Percentiles of every 'what it takes' count over the draws, and the share of draws in which
    the target is reachable (models.target.requirements on the sampled evaluation)."""
    req = requirements(sampled, target)
    points: dict[str, list] = {}
    for name, key in TARGET_FIGURES:
        values = np.asarray(getattr(req, name), dtype=float).reshape(P, n)
        for row, q in zip(_quantiles(np.where(np.isfinite(values), values, np.inf), counts=True), _Q_KEYS):
            points[key.format(q=q)] = _lists(row, order)
    points["reachable_share_ratio"] = _lists(req.feasible.reshape(P, n).mean(axis=1), order)
    return points


def spread_record(s: Spread) -> dict[str, Any]:
    return {"kind": s.kind, "text": s.text, "value": s.value, "low": s.low, "high": s.high,
            "values": list(s.values), "confidence": s.confidence, "source": s.source}


def notes(spreads: Mapping[str, Spread], n: int, seed: int) -> list[str]:
    if not spreads:
        return [f"intervals: no platform figure carries a spread, so every interval is the point figure "
                f"({n} draws, seed {seed})"]
    return [f"median and 90% interval: {n} draws (Latin hypercube, seed {seed}) of the {len(spreads)} platform "
            f"figures with a spread: {', '.join(sorted(spreads))}",
            "binds in samples: the share of draws in which each resource binds"]


def table_rows(points: Mapping[str, list], target: bool = False) -> list[dict]:
    """Display figures of a report's interval points (live or stored), one dict per point:
    `median_gbytes_per_s`, `interval_gbytes_per_s` ("22.10-27.00"), `binds` ("links 80%, pcie 20%"),
    `busy_interval_cores`, `dma_busy_interval_engines`; with `target`, `serving_interval_cores`,
    `worker_interval_cores`, `dma_interval_engines` ("5-7") and `reachable_share` ("80%")."""
    keys = list(points)
    rows = [dict(zip(keys, values)) for values in zip(*points.values())]
    for row in rows:
        if target:
            for name, unit in (("serving", "cores"), ("worker", "cores"), ("dma", "engines")):
                row[f"{name}_interval_{unit}"] = _span(row[f"{name}_p05_{unit}"], row[f"{name}_p95_{unit}"], "{:.0f}")
            row["reachable_share"] = f"{row['reachable_share_ratio'] * 100:.0f}%"
            continue
        for key in _Q_KEYS:
            v = row[f"throughput_{key}_bytes_per_s"]
            row[f"{'median' if key == 'p50' else key}_gbytes_per_s"] = None if v is None else to_gbytes_per_s(v)
        row["interval_gbytes_per_s"] = _span(row["p05_gbytes_per_s"], row["p95_gbytes_per_s"], "{:.2f}")
        row["busy_interval_cores"] = _span(row["busy_p05_cores"], row["busy_p95_cores"], "{:.2f}")
        row["dma_busy_interval_engines"] = _span(row["dma_busy_p05_engines"], row["dma_busy_p95_engines"], "{:.2f}")
        row.setdefault("binds", binds_text(row))
    return rows


def binds_text(row: Mapping[str, Any]) -> str:
    """'links 80%, pcie 20%' from a row's binding shares; 'nothing flows' where no draw flows."""
    flows = row.get("flows_share_ratio") or 0.0
    if flows <= 0:
        return "nothing flows"
    shares = sorted(((row.get(f"binding_share_{r.replace('-', '_')}_ratio") or 0.0, r) for r in RESOURCES),
                    key=lambda t: -t[0])
    parts = [f"{name} {share * flows * 100:.0f}%" for share, name in shares if share * flows >= 0.005]
    if flows < 1:
        parts.append(f"nothing flows {(1 - flows) * 100:.0f}%")
    return ", ".join(parts)


def _span(low: float | None, high: float | None, fmt: str) -> str | None:
    if low is None or high is None:
        return None
    return f"{fmt.format(low)}-{fmt.format(high)}"
