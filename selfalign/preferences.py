"""Build preference pairs (or best-of-n SFT records) from scored candidates.

Input: scored records ``{"id", "prompt", "meta", "responses": [{"text", "finish", "num_tokens",
"score", "score_var", ...}]}``. A response is **valid** when it has a numeric ``score`` and ended
properly (``finish == "stop"``; a missing ``finish`` counts as ended) — unless
``include_unfinished=True``. A ``None`` score never becomes a label.

Strategies (:func:`build_pairs`):

* ``max_min`` — one pair per prompt: chosen = a top-score response, rejected = a bottom-score one;
  ties broken by the lowest judge variance (``score_var``; missing = 0), then by position.
* ``length_control`` with ρ ∈ [0, 1] (Self-Rewarding / Meta-Rewarding recipe, arXiv 2401.10020,
  2407.19594): ρ = 0 is ``max_min``; ρ > 0: chosen = the SHORTEST response whose score lies in the
  top band ``[(1-ρ)·max + ρ·min, max]``, rejected = the LONGEST in the bottom band
  ``[min, (1-ρ)·min + ρ·max]``. Length = ``num_tokens`` when every valid response of the prompt
  has it, else characters.
* ``all_pairs`` — every pair of valid responses to the same prompt with different scores, capped
  per group (``group_key``, default the record ``id``; a dotted path like ``meta.dataset`` caps per
  dataset) and in total, sampled with ``seed`` (used by SynFed).
* ``best_of_n`` — rejection sampling: the top-score response of each prompt as an SFT record
  ``{"id", "prompt", "completion", "score", "length", "meta"}`` (optionally only if ≥ ``min_score``).

A prompt that yields nothing is a **bad sample**, counted by reason: ``too_few_valid`` (fewer than
two valid responses; one for best_of_n), ``all_equal`` (no score difference), ``margin`` (difference
below ``min_margin``), ``identical`` (chosen text == rejected text), ``band_overlap`` (ρ ≥ 0.5 picked a
chosen that does not score above the rejected), ``below_min_score``.

Preference records follow TRL's formats: with a string prompt, ``chosen``/``rejected`` are strings;
with a message-list prompt they are ``[{"role": "assistant", "content": text}]``. Each keeps the
prompt's ``meta`` plus ``meta["pair"] = {"prompt_id", "chosen_index", "rejected_index", "strategy",
"length_unit"}``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any, Literal

from selfalign.config import StrictModel, per_iteration
from selfalign.errors import ConfigError, DataError

STRATEGIES = ("max_min", "length_control", "all_pairs", "best_of_n")
BAD_REASONS = ("too_few_valid", "all_equal", "margin", "identical", "band_overlap", "below_min_score")


class PairConfig(StrictModel):
    """Options of the pair stage (see :func:`build_pairs`)."""

    strategy: Literal["max_min", "length_control", "all_pairs", "best_of_n"] = "max_min"
    rho: float | list[float] = 0.0  # length_control ρ; a list gives one value per iteration
    min_margin: float = 0.0
    include_unfinished: bool = False
    group_key: str = "id"  # all_pairs: cap groups
    max_pairs_per_group: int | None = None
    max_pairs: int | None = None
    seed: int = 0
    min_score: float | None = None  # best_of_n


# ---------------------------------------------------------------------------------------- helpers
class _Resp:
    __slots__ = ("index", "text", "score", "var", "length")

    def __init__(self, index: int, text: str, score: float, var: float, length: int):
        self.index, self.text, self.score, self.var, self.length = index, text, score, var, length


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


def _valid_responses(rec: dict, include_unfinished: bool) -> tuple[list[_Resp], str]:
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
    out = [_Resp(i, r["text"], s, _num(r.get("score_var"), rid, i, "score_var") or 0.0,
                 r["num_tokens"] if use_tokens else len(r["text"])) for i, r, s in picked]
    return out, "tokens" if use_tokens else "chars"


def _lookup(rec: dict, path: str) -> Any:
    cur: Any = rec
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise DataError(f"record {rec.get('id')!r} has no {path!r} (group_key)", key=path)
        cur = cur[part]
    return cur


def _as_completion(prompt: Any, text: str) -> Any:
    """TRL format: a string for a string prompt, an assistant message list for a conversation."""
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


def _pair_record(rec: dict, pid: str, c: _Resp, r: _Resp, strategy: str, unit: str) -> dict:
    meta = dict(rec.get("meta") or {})
    meta["pair"] = {"prompt_id": rec.get("id"), "chosen_index": c.index, "rejected_index": r.index,
                    "strategy": strategy, "length_unit": unit}
    prompt = rec.get("prompt")
    return {"id": pid, "prompt": prompt, "chosen": _as_completion(prompt, c.text),
            "rejected": _as_completion(prompt, r.text), "chosen_score": c.score, "rejected_score": r.score,
            "chosen_length": c.length, "rejected_length": r.length, "meta": meta}


def _top(resps: Sequence[_Resp]) -> _Resp:
    """Highest score; ties → lowest variance, then first."""
    return min(resps, key=lambda x: (-x.score, x.var, x.index))


def _bottom(resps: Sequence[_Resp]) -> _Resp:
    """Lowest score; ties → lowest variance, then first."""
    return min(resps, key=lambda x: (x.score, x.var, x.index))


def select_pair(resps: Sequence[_Resp], rho: float = 0.0) -> tuple[_Resp, _Resp]:
    """Chosen and rejected among valid responses (``max_min`` when ρ = 0, else length control).

    Band edges are inclusive, with a tolerance of 1e-9 relative to the score scale so that a score
    exactly on ``(1-ρ)·max + ρ·min`` is not lost to rounding.
    """
    if rho == 0:
        return _top(resps), _bottom(resps)
    hi = max(x.score for x in resps)
    lo = min(x.score for x in resps)
    eps = 1e-9 * max(1.0, abs(hi), abs(lo))
    top_edge = (1 - rho) * hi + rho * lo
    bottom_edge = (1 - rho) * lo + rho * hi
    top = [x for x in resps if x.score >= top_edge - eps]
    bottom = [x for x in resps if x.score <= bottom_edge + eps]
    chosen = min(top, key=lambda x: (x.length, -x.score, x.var, x.index))
    rejected = min(bottom, key=lambda x: (-x.length, x.score, x.var, x.index))
    return chosen, rejected


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------------------------------- main API
def build_pairs(records: Sequence[dict], strategy: str = "max_min", *, rho: float = 0.0,
                min_margin: float = 0.0, include_unfinished: bool = False, group_key: str = "id",
                max_pairs_per_group: int | None = None, max_pairs: int | None = None, seed: int = 0,
                min_score: float | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Turn scored records into preference records (or best-of-n SFT records) and statistics.

    Returns ``(outputs, stats)``; ``stats`` holds ``records``, ``responses``, ``pairs``,
    ``bad_samples``, ``bad_samples_frac``, ``bad_reasons``, ``bad_ends_frac`` (responses that did
    not end properly / all responses), ``unscored_frac``, ``mean_margin``, ``chosen_length_mean``,
    ``rejected_length_mean``, ``chosen_score_mean``, ``rejected_score_mean``, ``length_unit``
    (and ``dropped_by_cap`` for all_pairs). Means are None when there is nothing to average.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"pair.strategy: unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if not (isinstance(rho, (int, float)) and 0.0 <= rho <= 1.0):
        raise ConfigError(f"pair.rho: must be between 0 and 1, got {rho!r}")
    if rho and strategy != "length_control":
        raise ConfigError(f"pair.rho: only the length_control strategy uses rho (strategy is {strategy})")
    if min_margin < 0:
        raise ConfigError(f"pair.min_margin: must be >= 0, got {min_margin}")
    for name, cap in (("max_pairs_per_group", max_pairs_per_group), ("max_pairs", max_pairs)):
        if cap is not None and cap < 0:
            raise ConfigError(f"pair.{name}: must be >= 0, got {cap}")

    bad = dict.fromkeys(BAD_REASONS, 0)
    n_resp = n_unfinished = n_unscored = 0
    units: set[str] = set()
    outputs: list[dict] = []
    groups: dict[Any, list[dict]] = {}  # all_pairs: candidate pairs per cap group

    for idx, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(f"record {idx + 1} is not a mapping")
        resps, unit = _valid_responses(rec, include_unfinished)
        all_resps = rec["responses"]
        n_resp += len(all_resps)
        n_unfinished += sum(not _finished(r) for r in all_resps)
        n_unscored += sum(r.get("score") is None for r in all_resps)
        rid = rec.get("id", idx)
        if resps:
            units.add(unit)

        if strategy == "best_of_n":
            if not resps:
                bad["too_few_valid"] += 1
                continue
            best = _top(resps)
            if min_score is not None and best.score < min_score:
                bad["below_min_score"] += 1
                continue
            meta = dict(rec.get("meta") or {})
            meta["pair"] = {"prompt_id": rec.get("id"), "chosen_index": best.index, "strategy": strategy,
                            "length_unit": unit}
            outputs.append({"id": rid, "prompt": rec.get("prompt"),
                            "completion": _as_completion(rec.get("prompt"), best.text),
                            "score": best.score, "length": best.length, "meta": meta})
            continue

        if len(resps) < 2:
            bad["too_few_valid"] += 1
            continue
        if max(x.score for x in resps) == min(x.score for x in resps):
            bad["all_equal"] += 1
            continue

        if strategy == "all_pairs":
            cands, reason = [], "all_equal"
            for a in range(len(resps)):
                for b in range(a + 1, len(resps)):
                    x, y = resps[a], resps[b]
                    if x.score == y.score:
                        continue
                    c, r = (x, y) if x.score > y.score else (y, x)
                    if c.score - r.score < min_margin:
                        reason = "margin"
                        continue
                    if c.text == r.text:
                        reason = "identical" if reason == "all_equal" else reason
                        continue
                    cands.append(_pair_record(rec, f"{rid}/{c.index}-{r.index}", c, r, strategy, unit))
            if not cands:
                bad[reason] += 1
                continue
            groups.setdefault(_lookup(rec, group_key), []).extend(cands)
            continue

        chosen, rejected = select_pair(resps, rho if strategy == "length_control" else 0.0)
        margin = chosen.score - rejected.score
        if margin <= 0:  # only when length-control bands overlap (ρ ≥ 0.5)
            bad["band_overlap"] += 1
        elif margin < min_margin:
            bad["margin"] += 1
        elif chosen.text == rejected.text:
            bad["identical"] += 1
        else:
            outputs.append(_pair_record(rec, rid, chosen, rejected, strategy, unit))

    dropped = 0
    if strategy == "all_pairs":
        for gkey, cands in groups.items():
            if max_pairs_per_group is not None and len(cands) > max_pairs_per_group:
                keep = sorted(random.Random(f"{seed}:{gkey}").sample(range(len(cands)), max_pairs_per_group))
                dropped += len(cands) - len(keep)
                cands = [cands[k] for k in keep]
            outputs.extend(cands)
        if max_pairs is not None and len(outputs) > max_pairs:
            keep = sorted(random.Random(seed).sample(range(len(outputs)), max_pairs))
            dropped += len(outputs) - len(keep)
            outputs = [outputs[k] for k in keep]

    n_rec = len(records)
    n_bad = sum(bad.values())
    if strategy == "best_of_n":
        chosen_scores = [o["score"] for o in outputs]
        chosen_lengths = [o["length"] for o in outputs]
        rejected_scores: list[float] = []
        rejected_lengths: list[int] = []
    else:
        chosen_scores = [o["chosen_score"] for o in outputs]
        rejected_scores = [o["rejected_score"] for o in outputs]
        chosen_lengths = [o["chosen_length"] for o in outputs]
        rejected_lengths = [o["rejected_length"] for o in outputs]
    stats: dict[str, Any] = {
        "strategy": strategy,
        "records": n_rec,
        "responses": n_resp,
        "pairs": len(outputs),
        "bad_samples": n_bad,
        "bad_samples_frac": n_bad / n_rec if n_rec else None,
        "bad_reasons": {k: v for k, v in bad.items() if v},
        "bad_ends_frac": n_unfinished / n_resp if n_resp else None,
        "unscored_frac": n_unscored / n_resp if n_resp else None,
        "mean_margin": _mean([c - r for c, r in zip(chosen_scores, rejected_scores)]) if rejected_scores else None,
        "chosen_score_mean": _mean(chosen_scores),
        "rejected_score_mean": _mean(rejected_scores),
        "chosen_length_mean": _mean(chosen_lengths),
        "rejected_length_mean": _mean(rejected_lengths),
        "length_unit": units.pop() if len(units) == 1 else ("mixed" if units else None),
    }
    if strategy == "all_pairs":
        stats["dropped_by_cap"] = dropped
    return outputs, stats


def build_pairs_from_config(records: Sequence[dict], cfg: PairConfig, iteration: int = 0
                            ) -> tuple[list[dict], dict[str, Any]]:
    """:func:`build_pairs` with a :class:`PairConfig`; a per-iteration ``rho`` list is resolved
    at ``iteration`` (0-based)."""
    rho = float(per_iteration(cfg.rho, iteration))
    return build_pairs(records, cfg.strategy, rho=rho if cfg.strategy == "length_control" else 0.0,
                       min_margin=cfg.min_margin, include_unfinished=cfg.include_unfinished,
                       group_key=cfg.group_key, max_pairs_per_group=cfg.max_pairs_per_group,
                       max_pairs=cfg.max_pairs, seed=cfg.seed, min_score=cfg.min_score)
