"""Verifiable-instruction evaluation: how often responses pass their prompts' checks, and how well
a judge's scores agree with those programmatic checks.

* :func:`outcomes` / :func:`summarize` — per-prompt outcomes of one response each, and rates with
  95% bootstrap intervals, per-family rates, mean answer length and the share cut at the limit
  (what ``validate`` stages and ``selfalign eval`` report; paired tests in :mod:`.compare`).
* :func:`pass_rate` — per check-type pass rates, the strict all-pass rate (IFEval's "strict
  prompt-level accuracy" when there is one response per prompt), the loose rate (mean fraction of
  checks passed) and pass@n (a prompt counts if any of its responses passes everything).
* :func:`judge_agreement` — pairwise agreement between a judge's scores and the number/fraction of
  checks passed, plus top-1 agreement and Pearson / Spearman correlations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfalign.checks import has_checks, run_checks
from selfalign.errors import DataError


def _texts(rec: dict) -> list[str]:
    """Response texts of a record: ``responses`` (dicts with ``text`` or strings), else a single
    ``response`` / ``completion`` string."""
    if isinstance(rec.get("responses"), list):
        out = []
        for i, r in enumerate(rec["responses"]):
            t = r.get("text") if isinstance(r, dict) else r
            if not isinstance(t, str):
                raise DataError(f"record {rec.get('id')!r} response {i} has no text", key=f"responses[{i}]")
            out.append(t)
        return out
    for key in ("response", "completion"):
        v = rec.get(key)
        if isinstance(v, str):
            return [v]
        if isinstance(v, list) and v and isinstance(v[-1], dict) and isinstance(v[-1].get("content"), str):
            return [v[-1]["content"]]
    raise DataError(f"record {rec.get('id')!r} has no 'responses', 'response' or 'completion'", key="responses")


@dataclass
class Outcome:
    """What one response to one prompt with checks achieved.

    ``strict`` — every check passes; ``loose`` — every check passes under IFEval's loose rule
    (first/last line or markdown ``*`` removed); ``fraction`` / ``fraction_loose`` — share of checks
    passed; ``checks`` — (check type, passed) in the prompt's order; ``tokens`` — new tokens of the
    response (None when the record does not say); ``cut`` — generation stopped at the token limit.
    """

    id: str
    strict: bool
    loose: bool
    fraction: float
    fraction_loose: float
    checks: list[tuple[str, bool]]
    tokens: int | None = None
    cut: bool = False


def outcomes(records: Sequence[dict], first_only: bool = True) -> list[Outcome]:
    """:class:`Outcome` of each record's first response (every response with ``first_only=False``)
    on the record's ``meta`` checks; records without checks are skipped."""
    out: list[Outcome] = []
    for i, rec in enumerate(records):
        meta = rec.get("meta")
        if not has_checks(meta):
            continue
        texts = _texts(rec)
        resp = rec.get("responses") if isinstance(rec.get("responses"), list) else [None] * len(texts)
        for text, r in list(zip(texts, resp))[: 1 if first_only else None]:
            res = run_checks(text, meta)
            info = r if isinstance(r, dict) else {}
            out.append(Outcome(
                id=str(rec.get("id", f"#{i}")), strict=bool(res.passed_all),
                loose=bool(res.passed_all_loose), fraction=res.fraction or 0.0,
                fraction_loose=res.fraction_loose or 0.0,
                checks=list(res.results), tokens=info.get("num_tokens"),
                cut=info.get("finish") == "length"))
    return out


def summarize(outs: Sequence[Outcome], seed: int = 0) -> dict[str, Any]:
    """Rates of one model's outcomes with 95% percentile-bootstrap intervals (:mod:`.stats`).

    * ``strict`` — prompt-level strict: share of prompts whose every check passes;
    * ``loose`` — prompt-level loose (IFEval's loose rule);
    * ``instruction_strict`` / ``instruction_loose`` — share of all checks passed, pooled over
      prompts (IFEval's instruction-level accuracy); the interval resamples prompts;
    * ``per_family`` — {check type: {"rate", "n", "ci"}} with Wilson intervals (small n);
    * ``mean_tokens`` and ``cut_rate`` (answers stopped by the token limit), when known.
    """
    from selfalign.eval.stats import bootstrap_ci, bootstrap_ratio_ci, wilson_interval

    n = len(outs)
    res: dict[str, Any] = {"n": n}
    for key in ("strict", "loose"):
        xs = [float(getattr(o, key)) for o in outs]
        res[key] = sum(xs) / n if n else None
        res[key + "_ci"] = bootstrap_ci(xs, seed=seed)
    for key, attr in (("instruction_strict", "fraction"), ("instruction_loose", "fraction_loose")):
        # pooled share = Σ passed / Σ checks; a prompt-weighted bootstrap of the ratio
        num = [getattr(o, attr) * len(o.checks) for o in outs]
        den = [len(o.checks) for o in outs]
        res[key] = sum(num) / sum(den) if sum(den) else None
        res[key + "_ci"] = bootstrap_ratio_ci(num, den, seed=seed)
    fam: dict[str, list[int]] = {}
    for o in outs:
        for typ, ok in o.checks:
            fam.setdefault(typ, [0, 0])
            fam[typ][0] += ok
            fam[typ][1] += 1
    res["per_family"] = {t: {"rate": k / m, "n": m, "ci": wilson_interval(k, m)} for t, (k, m) in sorted(fam.items())}
    toks = [o.tokens for o in outs if o.tokens is not None]
    res["mean_tokens"] = sum(toks) / len(toks) if toks else None
    res["cut_rate"] = sum(o.cut for o in outs) / n if n and toks else None
    return res


def pass_rate(records: Sequence[dict]) -> dict[str, Any]:
    """Pass rates of the responses in ``records`` on their prompts' ``meta`` checks.

    Only records whose meta carries checks (or an ``answer``) count. Returns ``prompts``,
    ``responses``, ``skipped`` (records without checks), ``strict`` (responses passing every check
    / responses), ``loose`` (mean fraction of checks passed), ``pass_at_n`` (prompts with at least
    one all-pass response / prompts), ``per_type`` ({check type: pass rate}) and ``per_type_n``
    ({check type: number of responses tested}). Rates are None when nothing was tested.
    For one response per prompt with intervals, use :func:`outcomes` + :func:`summarize`.
    """
    outs = outcomes(records, first_only=False)
    skipped = sum(1 for rec in records if not has_checks(rec.get("meta")))
    by_prompt: dict[str, bool] = {}
    passed: dict[str, int] = {}
    tested: dict[str, int] = {}
    for o in outs:
        by_prompt[o.id] = by_prompt.get(o.id, False) or o.strict
        for typ, ok in o.checks:
            tested[typ] = tested.get(typ, 0) + 1
            passed[typ] = passed.get(typ, 0) + ok
    n = len(outs)
    return {
        "prompts": len(by_prompt),
        "responses": n,
        "skipped": skipped,
        "strict": sum(o.strict for o in outs) / n if n else None,
        "loose": sum(o.fraction for o in outs) / n if n else None,
        "pass_at_n": sum(by_prompt.values()) / len(by_prompt) if by_prompt else None,
        "per_type": {t: passed[t] / tested[t] for t in sorted(tested)},
        "per_type_n": {t: tested[t] for t in sorted(tested)},
    }


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks with ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None with fewer than two points or a constant variable."""
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman rank correlation (Pearson on average ranks)."""
    return pearson(_ranks(x), _ranks(y)) if len(x) >= 2 else None


def judge_agreement(judge_scores: Sequence[Sequence[float | None]],
                    check_pass: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Agreement between a judge and the programmatic checks, prompt by prompt.

    ``judge_scores[p][i]`` is the judge's score of response ``i`` of prompt ``p`` (None = unscored,
    ignored); ``check_pass[p][i]`` the fraction (or number) of checks it passed. Over every pair of
    scored responses of the same prompt whose check values differ:

    * ``agreement`` = (pairs where the judge scores the better-passing response strictly higher
      + ½ · judge ties) / pairs;  ``strict_agreement`` counts ties as misses;  ``judge_tie_rate``;
    * ``top_agreement`` — over prompts whose check values differ: the share of the judge's
      top-scored responses (averaged over tied tops) that pass the most checks;
    * ``pearson`` / ``spearman`` — pooled over all scored responses.
    """
    if len(judge_scores) != len(check_pass):
        raise DataError(f"judge_scores has {len(judge_scores)} prompts, check_pass {len(check_pass)}")
    pairs = agree = ties = 0
    top_hits = 0.0
    top_n = 0
    xs: list[float] = []
    ys: list[float] = []
    for p, (js, cs) in enumerate(zip(judge_scores, check_pass)):
        if len(js) != len(cs):
            raise DataError(f"prompt {p}: {len(js)} judge scores vs {len(cs)} check values")
        items = [(float(j), float(c)) for j, c in zip(js, cs) if j is not None]
        for j, c in items:
            xs.append(j)
            ys.append(c)
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                (ja, ca), (jb, cb) = items[a], items[b]
                if ca == cb:
                    continue
                pairs += 1
                if ja == jb:
                    ties += 1
                elif (ja > jb) == (ca > cb):
                    agree += 1
        if items and len({c for _, c in items}) > 1:
            top_n += 1
            best_j = max(j for j, _ in items)
            best_c = max(c for _, c in items)
            tops = [c for j, c in items if j == best_j]
            top_hits += sum(c == best_c for c in tops) / len(tops)
    return {
        "prompts": len(judge_scores),
        "pairs": pairs,
        "agreement": (agree + 0.5 * ties) / pairs if pairs else None,
        "strict_agreement": agree / pairs if pairs else None,
        "judge_tie_rate": ties / pairs if pairs else None,
        "top_prompts": top_n,
        "top_agreement": top_hits / top_n if top_n else None,
        "pearson": pearson(xs, ys),
        "spearman": spearman(xs, ys),
    }


def judge_agreement_from_records(records: Sequence[dict], metric: str = "fraction") -> dict[str, Any]:
    """:func:`judge_agreement` on scored records whose prompts carry checks (others are skipped).

    ``metric``: ``"fraction"`` of checks passed or ``"all"`` (1 if every check passes else 0).
    """
    if metric not in ("fraction", "all"):
        raise ValueError(f"metric must be 'fraction' or 'all', got {metric!r}")
    js_all, cs_all = [], []
    for rec in records:
        meta = rec.get("meta")
        if not has_checks(meta) or not isinstance(rec.get("responses"), list):
            continue
        js, cs = [], []
        for r, text in zip(rec["responses"], _texts(rec)):
            res = run_checks(text, meta)
            js.append(r.get("score") if isinstance(r, dict) else None)
            cs.append(float(res.passed_all) if metric == "all" else (res.fraction or 0.0))
        js_all.append(js)
        cs_all.append(cs)
    return judge_agreement(js_all, cs_all)
