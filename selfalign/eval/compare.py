"""Is a model's held-out pass rate really different from another's? Paired comparisons.

* :func:`compare_outcomes` — two models' :class:`~selfalign.eval.verifiable.Outcome` lists paired
  by prompt id (prompts both answered): each model's summary (rates with bootstrap intervals),
  the paired bootstrap difference of the strict and loose rates with its interval and p-value
  (:func:`~selfalign.eval.stats.paired_bootstrap`), the discordant counts and the exact McNemar
  p-value of the strict outcomes (:func:`~selfalign.eval.stats.mcnemar_exact`), and ``improved``:
  the interval of the strict difference lies above 0.
* :func:`compare_answers` — the same from two answer files (e.g. two ``validate`` stages'
  ``data.jsonl``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfalign.eval.stats import mcnemar_exact, paired_bootstrap, wilson_interval  # noqa: F401 (re-export)
from selfalign.eval.verifiable import Outcome, outcomes, summarize


def answer_outcomes(path: str | Path) -> list[Outcome]:
    """Outcomes of the first response of each record with checks in an answer file."""
    from selfalign.data.io import read_records

    return outcomes(read_records(path))


def compare_outcomes(a: Sequence[Outcome], b: Sequence[Outcome], seed: int = 0) -> dict[str, Any]:
    """Model A (new) against model B (baseline) on the prompts both answered.

    Returns ``n``, ``a`` / ``b`` (:func:`~selfalign.eval.verifiable.summarize` of each on the
    shared prompts), ``diff`` / ``diff_ci`` / ``p_bootstrap`` (strict, paired bootstrap),
    ``diff_loose`` / ``diff_loose_ci`` / ``p_bootstrap_loose``, ``only_a`` / ``only_b`` (prompts
    only A / only B passes strictly), ``mcnemar_p`` and ``improved`` (strict interval above 0).
    """
    ia = {o.id: o for o in a}
    ib = {o.id: o for o in b}
    ids = sorted(set(ia) & set(ib))
    pa, pb = [ia[i] for i in ids], [ib[i] for i in ids]
    strict = paired_bootstrap([o.strict for o in pa], [o.strict for o in pb], seed=seed)
    loose = paired_bootstrap([o.loose for o in pa], [o.loose for o in pb], seed=seed)
    only_a = sum(x.strict and not y.strict for x, y in zip(pa, pb))
    only_b = sum(y.strict and not x.strict for x, y in zip(pa, pb))
    return {"n": len(ids), "a": summarize(pa, seed), "b": summarize(pb, seed),
            "diff": strict["diff"], "diff_ci": strict["ci"], "p_bootstrap": strict["p"],
            "diff_loose": loose["diff"], "diff_loose_ci": loose["ci"], "p_bootstrap_loose": loose["p"],
            "only_a": only_a, "only_b": only_b, "mcnemar_p": mcnemar_exact(only_a, only_b),
            "improved": strict["ci"] is not None and strict["ci"][0] > 0}


def compare_answers(a: str | Path, b: str | Path, seed: int = 0) -> dict[str, Any]:
    """Paired comparison of answer files ``a`` (new model) and ``b`` (baseline); see
    :func:`compare_outcomes`. Also ``rate_a`` / ``ci_a`` / ``rate_b`` / ``ci_b`` (strict)."""
    res = compare_outcomes(answer_outcomes(a), answer_outcomes(b), seed)
    res.update(rate_a=res["a"]["strict"], ci_a=res["a"]["strict_ci"],
               rate_b=res["b"]["strict"], ci_b=res["b"]["strict_ci"])
    return res
