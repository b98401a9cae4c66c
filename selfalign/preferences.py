"""Build preference pairs (or best-of-n SFT records) from scored candidates.

Input: scored records ``{"id", "prompt", "meta", "responses": [{"text", "finish", "num_tokens",
"score", "score_var", ...}]}``. A response is **valid** when it has a numeric ``score`` and ended
properly (``finish == "stop"``; a missing ``finish`` counts as ended) — unless
``include_unfinished=True``. A ``None`` score never becomes a label. Length = ``num_tokens`` when
every valid response of the prompt has it, else characters.

Strategies are small functions registered by name in :mod:`selfalign.pair_strategies`
(``register_pair_strategy``, ``get_pair_strategy``, ``pair_strategy_names``); each one's
docstring states its rule:

* ``max_min`` — one pair per prompt: top score vs bottom score.
* ``length_control`` — ρ ∈ [0, 1] (Self-Rewarding / Meta-Rewarding, arXiv 2401.10020, 2407.19594):
  the shortest response of the top score band vs the longest of the bottom band.
* ``all_pairs`` — every pair with different scores, capped per group and in total (SynFed).
* ``best_of_n`` — rejection sampling: the top response of each prompt as an SFT record
  ``{"id", "prompt", "completion", "score", "length", "meta"}``.

:func:`build_pairs` does what is common to all of them: validates options, reads the valid
responses, counts **bad samples** (a prompt that yields nothing) by reason — ``too_few_valid``
(fewer valid responses than the strategy needs), ``all_equal`` (no score difference), ``margin``
(difference below ``min_margin``), ``identical`` (chosen text == rejected text), ``band_overlap``
(ρ ≥ 0.5 picked a chosen that does not score above the rejected), ``below_min_score`` — writes the
output records and computes the statistics.

Preference records follow TRL's formats: with a string prompt, ``chosen``/``rejected`` are strings;
with a message-list prompt they are ``[{"role": "assistant", "content": text}]``. Each keeps the
prompt's ``meta`` plus ``meta["pair"] = {"prompt_id", "chosen_index", "rejected_index", "strategy",
"length_unit"}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from selfalign.config import StrictModel, per_iteration
from selfalign.errors import ConfigError, DataError
from selfalign.pair_strategies import (
    Candidates,
    Entry,
    PairOptions,
    PairStrategy,
    Pick,
    Response,
    get_pair_strategy,
    pair_strategy_names,
    rho_strategy_names,
    unknown_strategy_message,
)

BAD_REASONS = ("too_few_valid", "all_equal", "margin", "identical", "band_overlap", "below_min_score")


# ---------------------------------------------------------------------------------------- helpers
def _num(value: Any, rid: Any, i: int, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"record {rid!r} response {i}: {key} must be a number or null, got {value!r}",
                        key=f"responses[{i}].{key}")
    v = float(value)
    return v if math.isfinite(v) else None


def _finished(resp: dict) -> bool:
    return resp.get("finish", "stop") == "stop"


def _valid_responses(rec: dict, include_unfinished: bool) -> tuple[list[Response], str]:
    """Valid responses of a record and the length unit used for them ("tokens" or "chars")."""
    rid = rec.get("id")
    resps = rec.get("responses")
    if not isinstance(resps, list):
        raise DataError(f"record {rid!r} has no 'responses' list (pair needs scored candidates)",
                        key="responses")
    picked: list[tuple[int, dict, float]] = []
    for i, r in enumerate(resps):
        if not isinstance(r, dict) or not isinstance(r.get("text"), str):
            raise DataError(f"record {rid!r} response {i}: expected a mapping with 'text'", key=f"responses[{i}]")
        if "score" not in r:
            raise DataError(f"record {rid!r} response {i} has no 'score': judge the candidates first",
                            key=f"responses[{i}].score")
        score = _num(r.get("score"), rid, i, "score")
        if score is None or not (include_unfinished or _finished(r)):
            continue
        picked.append((i, r, score))
    use_tokens = bool(picked) and all(isinstance(r.get("num_tokens"), int) and not isinstance(r.get("num_tokens"), bool)
                                      for _, r, _ in picked)
    out = [Response(i, r["text"], s, _num(r.get("score_var"), rid, i, "score_var") or 0.0,
                    r["num_tokens"] if use_tokens else len(r["text"])) for i, r, s in picked]
    return out, "tokens" if use_tokens else "chars"


def _as_completion(prompt: Any, text: str) -> Any:
    """TRL format: a string for a string prompt, an assistant message list for a conversation."""
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------------------------------- main API
def _check_options(strategy: PairStrategy, o: PairOptions) -> None:
    """One-line ConfigErrors: ρ outside [0, 1] or set for a strategy that ignores it, negative
    ``min_margin`` or caps."""
    rho = o.rho
    if not (isinstance(rho, (int, float)) and 0.0 <= rho <= 1.0):
        raise ConfigError(f"pair.rho: must be between 0 and 1, got {rho!r}")
    if rho and not strategy.uses_rho:
        raise ConfigError(f"pair.rho: only the {rho_strategy_names()} strategy uses rho (strategy is {strategy.name})")
    if o.min_margin < 0:
        raise ConfigError(f"pair.min_margin: must be >= 0, got {o.min_margin}")
    for name, cap in (("max_pairs_per_group", o.max_pairs_per_group), ("max_pairs", o.max_pairs)):
        if cap is not None and cap < 0:
            raise ConfigError(f"pair.{name}: must be >= 0, got {cap}")


def _output_record(c: Candidates, p: Pick, strategy: str) -> dict:
    """A TRL preference record, or an SFT record when the pick has no rejected response."""
    rec, prompt = c.record, c.record.get("prompt")
    meta = dict(rec.get("meta") or {})
    if p.rejected is None:
        meta["pair"] = {"prompt_id": rec.get("id"), "chosen_index": p.chosen.index, "strategy": strategy,
                        "length_unit": c.unit}
        return {"id": p.id, "prompt": prompt, "completion": _as_completion(prompt, p.chosen.text),
                "score": p.chosen.score, "length": p.chosen.length, "meta": meta}
    c_, r_ = p.chosen, p.rejected
    meta["pair"] = {"prompt_id": rec.get("id"), "chosen_index": c_.index, "rejected_index": r_.index,
                    "strategy": strategy, "length_unit": c.unit}
    return {"id": p.id, "prompt": prompt, "chosen": _as_completion(prompt, c_.text),
            "rejected": _as_completion(prompt, r_.text), "chosen_score": c_.score, "rejected_score": r_.score,
            "chosen_length": c_.length, "rejected_length": r_.length, "meta": meta}


def _summarize(strategy: str, n_rec: int, counts: dict[str, int], bad: dict[str, int], units: set[str],
               picks: Sequence[Pick]) -> dict[str, Any]:
    """The statistics every strategy reports (see :func:`build_pairs`), from the kept picks."""
    n_resp, n_bad = counts["responses"], sum(bad.values())
    pairs = [p for p in picks if p.rejected is not None]
    return {
        "strategy": strategy,
        "records": n_rec,
        "responses": n_resp,
        "pairs": len(picks),
        "bad_samples": n_bad,
        "bad_samples_frac": n_bad / n_rec if n_rec else None,
        "bad_reasons": {k: v for k, v in bad.items() if v},
        "bad_ends_frac": counts["unfinished"] / n_resp if n_resp else None,
        "unscored_frac": counts["unscored"] / n_resp if n_resp else None,
        "mean_margin": _mean([p.chosen.score - p.rejected.score for p in pairs]) if pairs else None,
        "chosen_score_mean": _mean([p.chosen.score for p in picks]),
        "rejected_score_mean": _mean([p.rejected.score for p in pairs]),
        "chosen_length_mean": _mean([p.chosen.length for p in picks]),
        "rejected_length_mean": _mean([p.rejected.length for p in pairs]),
        "length_unit": next(iter(units)) if len(units) == 1 else ("mixed" if units else None),
    }


def build_pairs(records: Sequence[dict], strategy: str = "max_min", *, rho: float = 0.0,
                min_margin: float = 0.0, include_unfinished: bool = False, group_key: str = "id",
                max_pairs_per_group: int | None = None, max_pairs: int | None = None, seed: int = 0,
                min_score: float | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Turn scored records into preference records (or best-of-n SFT records) and statistics.

    ``strategy`` is a registered name (:func:`pair_strategy_names`). Returns ``(outputs, stats)``;
    ``stats`` holds ``strategy``, ``records``, ``responses``, ``pairs``, ``bad_samples``,
    ``bad_samples_frac``, ``bad_reasons``, ``bad_ends_frac`` (responses that did not end properly /
    all responses), ``unscored_frac``, ``mean_margin``, ``chosen_score_mean``,
    ``rejected_score_mean``, ``chosen_length_mean``, ``rejected_length_mean``, ``length_unit``,
    plus what the strategy's finalize adds (``dropped_by_cap`` for all_pairs). Means are None when
    there is nothing to average.
    """
    strat = get_pair_strategy(strategy)
    opts = PairOptions(rho, min_margin, include_unfinished, group_key, max_pairs_per_group, max_pairs,
                       seed, min_score)
    _check_options(strat, opts)
    bad = dict.fromkeys(BAD_REASONS, 0)
    counts = {"responses": 0, "unfinished": 0, "unscored": 0}
    units: set[str] = set()
    entries: list[Entry] = []
    for idx, rec in enumerate(records):
        try:
            if not isinstance(rec, dict):
                raise DataError(f"record {idx + 1} is not a mapping")
            resps, unit = _valid_responses(rec, include_unfinished)
        except DataError as e:
            e.record_index = idx  # lets build_pairs_located name the record's file and line
            raise
        counts["responses"] += len(rec["responses"])
        counts["unfinished"] += sum(not _finished(r) for r in rec["responses"])
        counts["unscored"] += sum(r.get("score") is None for r in rec["responses"])
        if resps:
            units.add(unit)
        cands = Candidates(rec, rec.get("id", idx), resps, unit)
        if len(resps) < strat.min_valid:
            result: list[Pick] | str = "too_few_valid"
        elif strat.needs_spread and max(x.score for x in resps) == min(x.score for x in resps):
            result = "all_equal"
        else:
            result = strat.select(cands, opts)
        if isinstance(result, str):
            bad[result] = bad.get(result, 0) + 1
        else:
            entries.extend((cands, pick) for pick in result)
    extra: dict[str, Any] = {}
    if strat.finalize is not None:
        entries, extra = strat.finalize(entries, opts)
    outputs = [_output_record(c, p, strat.name) for c, p in entries]
    stats = _summarize(strat.name, len(records), counts, bad, units, [p for _, p in entries])
    return outputs, {**stats, **extra}


# ------------------------------------------------------------------------------------------ config
class PairConfig(StrictModel):
    """Options of the pair stage: the keyword arguments of :func:`build_pairs`, with ``rho`` also
    allowed per iteration (a list; :meth:`at_iteration` resolves it)."""

    strategy: str = Field("max_min", description="a registered pair strategy (pair_strategy_names())")
    rho: float | list[float] = 0.0  # length_control ρ; a list gives one value per iteration
    min_margin: float = Field(0.0, ge=0.0)
    include_unfinished: bool = False
    group_key: str = "id"  # all_pairs: cap groups
    max_pairs_per_group: int | None = Field(None, ge=0)
    max_pairs: int | None = Field(None, ge=0)
    seed: int = 0
    min_score: float | None = None  # best_of_n

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, v: str) -> str:
        if v not in pair_strategy_names():
            raise ValueError(unknown_strategy_message(v))
        return v

    @field_validator("rho")
    @classmethod
    def _rho_values(cls, v: float | list[float], info: ValidationInfo) -> float | list[float]:
        """Each ρ in [0, 1], a list not empty, and non-zero only for a strategy that uses ρ."""
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ValueError("a per-iteration rho list needs at least one value")
        if any(not 0.0 <= x <= 1.0 for x in values):
            raise ValueError(f"must be between 0 and 1, got {v}")
        strategy = info.data.get("strategy")  # absent when the strategy itself was invalid
        if any(values) and strategy is not None and not get_pair_strategy(strategy).uses_rho:
            raise ValueError(f"only the {rho_strategy_names()} strategy uses rho (strategy is {strategy})")
        return v

    def at_iteration(self, t: int) -> dict[str, Any]:
        """Keyword arguments of :func:`build_pairs` for iteration ``t`` (0-based): every field, with a
        per-iteration ``rho`` list resolved by :func:`selfalign.config.per_iteration` (a list shorter
        than the run repeats its last value). Use: ``build_pairs(records, **cfg.at_iteration(t))``."""
        if t < 0:
            raise ValueError(f"iteration must be >= 0 (0-based), got {t}")
        return {**self.model_dump(), "rho": float(per_iteration(self.rho, t))}


def build_pairs_from_config(records: Sequence[dict], cfg: PairConfig, iteration: int = 0
                            ) -> tuple[list[dict], dict[str, Any]]:
    """:func:`build_pairs` with ``cfg.at_iteration(iteration)`` (``iteration`` is 0-based)."""
    return build_pairs(records, **cfg.at_iteration(iteration))


def build_pairs_located(located: Sequence[tuple[int, dict, Any]], strategy: str = "max_min", **options: Any
                        ) -> tuple[list[dict], dict[str, Any]]:
    """:func:`build_pairs` over ``(line, record, file)`` triples (what
    :func:`selfalign.data.io.iter_records` yields), so a bad record's error names ``file:line``."""
    try:
        return build_pairs([rec for _, rec, _ in located], strategy, **options)
    except DataError as e:
        idx = getattr(e, "record_index", None)
        if idx is None or e.file is not None:
            raise
        line, _, file = located[idx]
        raise DataError(e.reason, file, line, e.key) from None


def no_pairs_message(stats: dict[str, Any]) -> str:
    """Why no pair was made, from :func:`build_pairs` statistics: the count of each bad-sample
    reason, of unfinished and unscored responses, and what to try."""
    reasons = ", ".join(f"{k} {v}" for k, v in stats.get("bad_reasons", {}).items()) or "none"
    n_resp = stats.get("responses") or 0
    unfinished = round((stats.get("bad_ends_frac") or 0) * n_resp)
    unscored = round((stats.get("unscored_frac") or 0) * n_resp)
    hints = []
    if unfinished:
        hints.append("--include-unfinished (pairs.include_unfinished=true in a recipe) to use answers cut at max "
                     "length, or a larger max_new_tokens")
    if unscored:
        hints.append("a judge that scores more responses (see its parse-failure rate)")
    if stats.get("bad_reasons", {}).get("margin"):
        hints.append("a smaller min_margin")
    hint = "; try " + " or ".join(hints) if hints else "; more prompts or samples are needed"
    return (f"0 pairs from {stats.get('records', 0)} records (bad samples: {reasons}; of {n_resp} "
            f"responses {unfinished} unfinished, {unscored} unscored){hint}")
