"""Fit the model's host parameters to measured points (scipy.optimize), with intervals.

Inputs are plain measured points (value, size, the id of the record it came from); this module
never reads the result store. Outputs are fitted values in SI units, 95% intervals from the
fit's covariance (t distribution), the record ids every value rests on, and fit-quality figures.

1. Per-core copy bandwidth vs buffer size -> cpu.copy_rate_cache, cpu.copy_rate_dram,
   cpu.cache_per_core, with the model's own copy law (models.resources.copy_seconds for a
   reused buffer): t(n) = min(n, C) / Rc + (n - min(n, C)) / Rd. Fitted in log space (relative
   errors), on sizes where the per-call cost of the probe loop is negligible.
2. Per path, sender CPU seconds per byte vs calls per byte -> a per-byte cost (s/B) and a per-call
   cost (s/call): cpu_s_per_byte = a + b * calls_per_byte (linear least squares, covariance
   from the residuals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Point:
    x: float            # size in bytes, or calls per byte
    y: float            # bytes/s, or CPU seconds per byte
    record_id: str


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    unit: str
    record_ids: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "unit": self.unit,
                "record_ids": list(self.record_ids)}


@dataclass(frozen=True)
class Fit:
    params: dict[str, Estimate]
    n_points: int
    rms_relative_error: float        # sqrt(mean((pred - y) / y)^2) over the points used
    max_relative_error: float
    residuals: tuple[tuple[float, float, float, str], ...] = field(default=())  # (x, y, predicted, id)


def _interval(value: float, sigma: float, dof: int) -> tuple[float, float]:
    if dof <= 0 or not np.isfinite(sigma):
        return float("nan"), float("nan")
    t = stats.t.ppf(0.5 + CONFIDENCE / 2, dof)
    return value - t * sigma, value + t * sigma


def _quality(x: np.ndarray, y: np.ndarray, pred: np.ndarray, ids: Sequence[str]) -> dict:
    rel = (pred - y) / y
    return {"rms_relative_error": float(np.sqrt(np.mean(rel ** 2))),
            "max_relative_error": float(np.max(np.abs(rel))),
            "residuals": tuple((float(a), float(b), float(c), i) for a, b, c, i in zip(x, y, pred, ids))}


def copy_rate(size, rate_cache, rate_dram, cache_bytes):
    """Bytes/s one core copies a reused buffer of `size` bytes (the model's copy law)."""
    size = np.asarray(size, dtype=float)
    cached = np.minimum(size, cache_bytes)
    return size / (cached / rate_cache + (size - cached) / rate_dram)


def fit_copy_rates(points: Sequence[Point]) -> Fit:
    """cpu.copy_rate_cache, cpu.copy_rate_dram, cpu.cache_per_core from (size, bytes/s) points."""
    if len(points) < 4 or len({p.x for p in points}) < 3:
        raise ValueError("need memcpy points at three sizes or more to fit the copy law")
    x = np.array([p.x for p in points])
    y = np.array([p.y for p in points])
    ids = [p.record_id for p in points]

    # a cache is never slower than DRAM: the law's parameters are the DRAM rate and the cache rate's
    # ratio to it (>= 1); where copies get faster as buffers grow (glibc's rep movsb under TCG
    # emulation is slower than its vector loops), the fit ends at one rate for every size
    def log_model(size, log_ratio, log_rd, log_c):
        return np.log(copy_rate(size, np.exp(log_rd + log_ratio), np.exp(log_rd), np.exp(log_c)))

    small, large = x <= np.median(x), x >= np.median(x)
    rc0, rd0 = np.median(y[small]), np.median(y[large])
    guess = [max(np.log(rc0 / rd0), 0.0), np.log(rd0), np.log(np.median(x))]
    best = None
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        best = _best_copy_fit(log_model, x, y, guess)
    if best is None:
        raise ValueError("the copy law did not converge on these points")
    return _copy_fit_result(best, x, y, ids)


def _best_copy_fit(log_model, x, y, guess):
    best = None
    # the cache size enters through min(): a kink, so try several starting cache sizes
    for log_c0 in np.log(np.unique(x))[1:-1]:
        try:
            popt, pcov = optimize.curve_fit(log_model, x, np.log(y), p0=[guess[0], guess[1], log_c0], maxfev=20000,
                                            bounds=([0.0, -np.inf, -np.inf], [np.inf, np.inf, np.inf]))
        except (RuntimeError, optimize.OptimizeWarning):
            continue
        cost = float(np.sum((log_model(x, *popt) - np.log(y)) ** 2))
        if best is None or cost < best[0]:
            best = (cost, popt, pcov)
    return best


def _copy_fit_result(best, x, y, ids) -> Fit:
    _, (log_ratio, log_rd, log_c), pcov = best
    # back to (log cache rate, log DRAM rate, log cache size): log_rc = log_ratio + log_rd
    J = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    popt = np.array([log_ratio + log_rd, log_rd, log_c])
    pcov = J @ pcov @ J.T if np.all(np.isfinite(pcov)) else pcov
    dof = len(x) - 3
    sig = np.sqrt(np.abs(np.diag(pcov))) if np.all(np.isfinite(pcov)) else np.full(3, np.nan)
    params = {}
    for i, (name, unit) in enumerate((("copy_rate_cache", "bytes/s"), ("copy_rate_dram", "bytes/s"),
                                      ("cache_per_core", "bytes"))):
        lo, hi = _interval(popt[i], sig[i], dof)  # interval in log space, mapped back
        with np.errstate(over="ignore"):  # an undetermined parameter gets an infinite interval
            params[name] = Estimate(float(np.exp(popt[i])), float(np.exp(lo)), float(np.exp(hi)), unit,
                                    tuple(sorted(set(ids))))
    pred = copy_rate(x, params["copy_rate_cache"].value, params["copy_rate_dram"].value,
                     params["cache_per_core"].value)
    return Fit(params=params, n_points=len(x), **_quality(x, y, pred, ids))


def fit_per_call_costs(points: Sequence[Point]) -> Fit:
    """CPU s/B = per_byte + per_call * calls/B for one path; x = calls per byte, y = CPU s per byte."""
    if len(points) < 3 or len({round(p.x, 15) for p in points}) < 2:
        raise ValueError("need points at two chunk sizes or more to separate per-byte and per-call costs")
    # per GB units keep both columns of order 1..1e4 (per byte they differ by 1e5: ill-conditioned)
    x = np.array([p.x for p in points]) * 1e9
    y = np.array([p.y for p in points]) * 1e9
    ids = [p.record_id for p in points]
    A = np.column_stack([np.ones_like(x), x])
    # non-negative: a cost cannot be below zero; bounds keep noise from making one negative
    res = optimize.lsq_linear(A, y, bounds=([0.0, 0.0], [np.inf, np.inf]))
    coef = res.x
    pred = A @ coef
    dof = len(x) - 2
    s2 = float(np.sum((y - pred) ** 2) / dof) if dof > 0 else float("nan")
    try:
        cov = s2 * np.linalg.inv(A.T @ A)
        sig = np.sqrt(np.abs(np.diag(cov)))
    except np.linalg.LinAlgError:
        sig = np.full(2, np.nan)
    params = {}
    for i, (name, unit, scale) in enumerate((("per_byte_seconds", "s/B", 1e-9), ("per_call_seconds", "s/call", 1.0))):
        lo, hi = _interval(coef[i], sig[i], dof)
        params[name] = Estimate(float(coef[i] * scale), float(max(lo, 0.0) * scale) if np.isfinite(lo) else lo,
                                float(hi * scale), unit, tuple(sorted(set(ids))))
    return Fit(params=params, n_points=len(x), **_quality(x / 1e9, y / 1e9, pred / 1e9, ids))


def pooled(estimates: Sequence[Estimate], unit: str) -> Estimate:
    """Inverse-variance weighted mean of estimates of one physical quantity (e.g. per-call cost
    from several paths); the interval is the pooled standard error's."""
    vals = np.array([e.value for e in estimates])
    half = np.array([(e.high - e.low) / 2 for e in estimates])
    ok = np.isfinite(half) & (half > 0)
    if not ok.any():
        v = float(np.median(vals))
        return Estimate(v, float("nan"), float("nan"), unit, tuple(sorted({i for e in estimates for i in e.record_ids})))
    w = 1.0 / half[ok] ** 2
    v = float(np.sum(w * vals[ok]) / np.sum(w))
    h = float(1.0 / np.sqrt(np.sum(w)))
    ids = tuple(sorted({i for e, k in zip(estimates, ok) if k for i in e.record_ids}))
    return Estimate(v, max(v - h, 0.0), v + h, unit, ids)


def fit_nonnegative_linear(columns: dict[str, np.ndarray], fixed: np.ndarray, y: np.ndarray,
                           ids: Sequence[str], units: dict[str, str], robust_scale: float | None = None) -> Fit:
    """y = fixed + sum_k value_k * columns[k], every value >= 0, fitted on relative errors (each
    point weighted by 1/y: a 256 B message counts as much as a 4 MiB one). The columns are what
    one unit of each parameter adds to each point (the model evaluated at unit values), so the fit
    uses the model's own equations. Intervals from the residual covariance (t distribution).
    `robust_scale` (a relative error, e.g. 0.15): a soft-L1 loss past it, so a point whose runs a
    stall or a retransmission storm inflated pulls the fit less than a squared error would."""
    names = list(columns)
    y = np.asarray(y, dtype=float)
    if len(y) < len(names) + 1:
        raise ValueError(f"need more than {len(names)} points to fit {', '.join(names)}")
    w = 1.0 / y
    A = np.column_stack([np.asarray(columns[k], dtype=float) for k in names]) * w[:, None]
    b = (y - np.asarray(fixed, dtype=float)) * w
    scale = np.where(np.abs(A).max(axis=0) > 0, np.abs(A).max(axis=0), 1.0)   # condition the columns
    res = optimize.lsq_linear(A / scale, b, bounds=(0.0, np.inf))
    coef = res.x / scale
    if robust_scale:
        robust = optimize.least_squares(lambda x: (A / scale) @ x - b, res.x, bounds=(0.0, np.inf),
                                        loss="soft_l1", f_scale=robust_scale)
        coef = robust.x / scale
    pred = np.asarray(fixed, dtype=float) + np.column_stack([np.asarray(columns[k], dtype=float)
                                                             for k in names]) @ coef
    dof = len(y) - len(names)
    s2 = float(np.sum(((pred - y) * w) ** 2) / dof) if dof > 0 else float("nan")
    try:
        cov = s2 * np.linalg.inv(A.T @ A)
        sig = np.sqrt(np.abs(np.diag(cov)))
    except np.linalg.LinAlgError:
        sig = np.full(len(names), np.nan)
    params = {}
    for k, name in enumerate(names):
        lo, hi = _interval(coef[k], sig[k], dof)
        params[name] = Estimate(float(coef[k]), float(max(lo, 0.0)) if np.isfinite(lo) else lo, float(hi),
                                units[name], tuple(sorted(set(ids))))
    return Fit(params=params, n_points=len(y), **_quality(np.arange(len(y), dtype=float), y, pred, ids))
