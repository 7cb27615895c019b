"""Statistics over repeated measurements: robust centre, spread, intervals, stability warnings, and
the difference of two sets of repetitions (bootstrap interval, Welch's t-test)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Coefficient of variation above which a series is reported as unstable. pyperf warns at 10%;
# these machines are shared, so the same threshold is used and the warning printed, not hidden.
UNSTABLE_CV = 0.10


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    median: float
    stdev: float
    cv: float
    min: float
    max: float
    p01: float
    p99: float
    p999: float
    ci_low: float
    ci_high: float

    def as_dict(self, unit_suffix: str) -> dict[str, float]:
        """Keys with the unit in their name: as_dict('gbytes_per_s') -> {'median_gbytes_per_s': ...}."""
        out = {"n": float(self.n), "cv": self.cv}
        for key in ("mean", "median", "stdev", "min", "max", "p01", "p99", "p999", "ci_low", "ci_high"):
            out[f"{key}_{unit_suffix}"] = getattr(self, key)
        return out


def bootstrap_ci(values: np.ndarray, stat=np.median, confidence: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat`; vectorised (one resample matrix)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        v = float(values[0]) if values.size else float("nan")
        return v, v
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(resamples, values.size))
    stats = stat(values[idx], axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def summarize(values) -> Summary:
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        raise ValueError("no samples to summarize")
    mean = float(v.mean())
    stdev = float(v.std(ddof=1)) if v.size > 1 else 0.0
    lo, hi = bootstrap_ci(v)
    return Summary(
        n=int(v.size), mean=mean, median=float(np.median(v)), stdev=stdev,
        cv=stdev / mean if mean else float("nan"),
        min=float(v.min()), max=float(v.max()),
        p01=float(np.quantile(v, 0.01)), p99=float(np.quantile(v, 0.99)),
        p999=float(np.quantile(v, 0.999)), ci_low=lo, ci_high=hi,
    )


def stability_warning(values, what: str = "series", threshold: float = UNSTABLE_CV) -> str | None:
    """A sentence when the runs disagree too much to trust a single figure, else None."""
    v = np.asarray(list(values), dtype=float)
    if v.size < 2 or not v.mean():
        return None
    cv = float(v.std(ddof=1) / v.mean())
    if cv > threshold:
        return (f"{what} is unstable: coefficient of variation {cv:.0%} over {v.size} runs "
                f"(> {threshold:.0%}); the machine may be busy, use more repetitions")
    return None


@dataclass(frozen=True)
class Difference:
    """B against A for one metric measured in repetitions: the change of the median, its bootstrap
    interval, Welch's t-test p-value, and whether the change is beyond the noise (the interval
    excludes zero)."""
    median_a: float
    median_b: float
    change: float                   # median_b - median_a
    low: float                      # interval of the change
    high: float
    p_value: float                  # Welch's t-test (nan with fewer than 2 values on a side or no spread)
    n_a: int
    n_b: int
    confidence: float

    @property
    def ratio(self) -> float:
        """The change relative to A (0.1 = 10 % more); nan when A's median is 0."""
        return self.change / self.median_a if self.median_a else float("nan")

    @property
    def significant(self) -> bool | None:
        """None with fewer than two repetitions on a side: one value says nothing about noise."""
        if self.n_a < 2 or self.n_b < 2:
            return None
        return not (self.low <= 0.0 <= self.high)


def compare_samples(a, b, confidence: float = 0.95, resamples: int = 4000, seed: int = 0) -> Difference:
    """Percentile bootstrap of the difference of medians (each side resampled on its own, one
    vectorised draw) and Welch's t-test, for two sets of repetitions."""
    from scipy import stats as sp_stats

    a = np.asarray(list(a), dtype=float)
    b = np.asarray(list(b), dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both sides need at least one value")
    rng = np.random.default_rng(seed)
    diffs = (np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
             - np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1))
    alpha = (1 - confidence) / 2
    if a.size >= 2 and b.size >= 2 and (a.std() > 0 or b.std() > 0):
        p = float(sp_stats.ttest_ind(b, a, equal_var=False).pvalue)
    else:
        p = float("nan")
    return Difference(median_a=float(np.median(a)), median_b=float(np.median(b)),
                      change=float(np.median(b) - np.median(a)), low=float(np.quantile(diffs, alpha)),
                      high=float(np.quantile(diffs, 1 - alpha)), p_value=p, n_a=int(a.size), n_b=int(b.size),
                      confidence=confidence)
