"""Is a model's held-out pass rate really different from another's? Intervals and paired tests.

* :func:`wilson_interval` — 95% Wilson score interval of a proportion k/n:
  centre (k + z²/2)/(n + z²), half-width z·√(k(n−k)/n + z²/4)/(n + z²)  (Wilson 1927).
* :func:`mcnemar_exact` — two-sided exact McNemar test on paired binary outcomes: with b = prompts
  only model A passes and c = prompts only model B passes, p = min(1, 2·P[X ≤ min(b, c)]) for
  X ~ Binomial(b + c, ½) (McNemar 1947; the exact binomial form).
* :func:`compare_answers` — strict (every check of a prompt passes) outcomes of two answer files
  (e.g. two ``validate`` stages' ``data.jsonl``) on the prompts both answered: each rate with its
  interval, the difference, the discordant counts and the McNemar p-value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from selfalign.checks import has_checks, run_checks


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


def strict_outcomes(path: str | Path) -> dict[str, bool]:
    """{prompt id: the first response passes every check} for records with checks."""
    from selfalign.data.io import read_records

    out = {}
    for r in read_records(path):
        if has_checks(r.get("meta")) and r.get("responses"):
            out[str(r["id"])] = run_checks(r["responses"][0]["text"], r["meta"]).passed_all
    return out


def compare_answers(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Paired strict pass rates of answer files ``a`` (new model) and ``b`` (baseline)."""
    oa, ob = strict_outcomes(a), strict_outcomes(b)
    ids = sorted(set(oa) & set(ob))
    n, ka, kb = len(ids), sum(oa[i] for i in ids), sum(ob[i] for i in ids)
    only_a = sum(oa[i] and not ob[i] for i in ids)
    only_b = sum(ob[i] and not oa[i] for i in ids)
    return {"n": n, "rate_a": ka / n if n else None, "ci_a": wilson_interval(ka, n),
            "rate_b": kb / n if n else None, "ci_b": wilson_interval(kb, n),
            "diff": (ka - kb) / n if n else None, "only_a": only_a, "only_b": only_b,
            "mcnemar_p": mcnemar_exact(only_a, only_b)}
