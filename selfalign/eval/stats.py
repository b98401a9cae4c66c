"""Intervals and paired tests for pass rates: is a model's rate really different from another's?

Every function is pure and seeded; ``x`` / ``a`` / ``b`` are 1-D sequences of per-prompt outcomes
(0/1 for "every check passed", or a fraction in [0, 1] for "fraction of checks passed").

* :func:`bootstrap_ci` — percentile bootstrap interval of a mean (Efron & Tibshirani 1993, §13.3):
  draw B resamples of the n outcomes with replacement, m*_b = mean of resample b; the interval is
  the (α/2, 1 − α/2) quantiles of {m*_b}, α = 1 − level.
* :func:`bootstrap_ratio_ci` — the same for a pooled ratio Σnum/Σden, resampling pairs.
* :func:`paired_bootstrap` — the same on per-prompt differences d_i = a_i − b_i (both models
  answered prompt i): the mean difference, its percentile interval, and the two-sided bootstrap
  p-value p = min(1, 2 · min(#{d̄*_b ≤ 0}, #{d̄*_b ≥ 0}) / B) — the smallest α at which the
  (1 − α) percentile interval still contains 0. A claimed improvement is one whose interval
  excludes 0 (equivalently p < 1 − level, up to the resampling grain 1/B).
* :func:`wilson_interval` — 95% Wilson score interval of a proportion k/n:
  centre (k + z²/2)/(n + z²), half-width z·√(k(n−k)/n + z²/4)/(n + z²)  (Wilson 1927). Kept for
  per-family rates with few prompts, where it behaves better than the bootstrap.
* :func:`mcnemar_exact` — two-sided exact McNemar test on paired binary outcomes: with b = prompts
  only model A passes and c = prompts only model B passes, p = min(1, 2·P[X ≤ min(b, c)]) for
  X ~ Binomial(b + c, ½) (McNemar 1947; the exact binomial form).

Peers: TRL and OpenRLHF report point estimates only; lm-evaluation-harness reports a bootstrap
standard error of the mean (100 000 resamples by default), not a paired test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEFAULT_BOOT = 10_000


def _resampled(stat, n: int, n_boot: int, seed: int) -> np.ndarray:
    """``stat(idx)`` for ``n_boot`` resamples of ``n`` indices with replacement, ``idx`` of shape
    (chunk, n); at most ~2M indices are drawn at once (bounded memory). Shape (n_boot,)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    chunk = max(1, 2_000_000 // max(n, 1))
    for s in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - s), n))
        out[s:s + idx.shape[0]] = stat(idx)
    return out


def _means(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``x``; shape (n_boot,)."""
    return _resampled(lambda idx: x[idx].mean(axis=1), x.shape[0], n_boot, seed)


def bootstrap_ci(x: Sequence[float], level: float = 0.95, n_boot: int = DEFAULT_BOOT,
                 seed: int = 0) -> tuple[float, float] | None:
    """(low, high) percentile bootstrap interval of the mean of ``x``; None when ``x`` is empty."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.size == 0:
        return None
    m = _means(arr, n_boot, seed)
    alpha = 1.0 - level
    lo, hi = np.quantile(m, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_ratio_ci(num: Sequence[float], den: Sequence[float], level: float = 0.95,
                       n_boot: int = DEFAULT_BOOT, seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of Σnum / Σden, resampling the (num_i, den_i) pairs together
    (e.g. checks passed / checks per prompt: a pooled rate whose unit of resampling is the prompt);
    a resample with Σden = 0 counts as 0. None when there is nothing to divide by."""
    a, b = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if b.size == 0 or b.sum() == 0:
        return None

    def ratio(idx: np.ndarray) -> np.ndarray:
        sums = b[idx].sum(axis=1)
        return np.where(sums > 0, a[idx].sum(axis=1) / np.maximum(sums, 1e-12), 0.0)

    r = _resampled(ratio, a.size, n_boot, seed)
    alpha = 1.0 - level
    lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                     n_boot: int = DEFAULT_BOOT, seed: int = 0) -> dict:
    """Mean of a − b over paired outcomes, its percentile interval and two-sided bootstrap p-value.

    Returns ``{"n", "diff", "ci": (low, high) | None, "p": float}``; ``a`` and ``b`` must have the
    same length (outcome i of both models on the same prompt).
    """
    da, db = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if da.shape != db.shape:
        raise ValueError(f"paired outcomes differ in length: {da.shape[0]} vs {db.shape[0]}")
    if da.size == 0:
        return {"n": 0, "diff": None, "ci": None, "p": 1.0}
    d = da - db
    m = _means(d, n_boot, seed)
    alpha = 1.0 - level
    lo, hi = np.quantile(m, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2.0 * min(np.count_nonzero(m <= 0), np.count_nonzero(m >= 0)) / n_boot)
    return {"n": int(d.size), "diff": float(d.mean()), "ci": (float(lo), float(hi)), "p": float(p)}


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """(low, high) Wilson score interval of k successes in n trials; None when n = 0."""
    if n <= 0:
        return None
    centre = (k + z * z / 2) / (n + z * z)
    half = z * math.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs (1.0 when b + c = 0)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def excludes_zero(ci: tuple[float, float] | None) -> bool:
    """Whether an interval for a difference lies entirely above or entirely below 0."""
    return ci is not None and (ci[0] > 0 or ci[1] < 0)
