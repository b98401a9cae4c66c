"""SALMON stage 2: turn pairwise principle judgements into labelled preference examples.

SALMON (Sun et al., arXiv 2310.05910) trains an *instructable* reward model on synthetic
preferences. Stage 1 (our pairwise principle judge) scores each response pair under every
principle in both presentation orders; this module aggregates those scores into training
examples, one per record per pass, each conditioned on a random subset of principles.

Input per record: two responses and, for the pair ``(i=0, j=1)``, per principle ``p`` two judge
scores ``s12`` and ``s21`` (both oriented so that positive favours response 0; comparisons for
other pairs are ignored).

Formulas (``m`` = mean of the two orders, ``Var_p`` over all records)::

    m_p        = (s12 + s21) / 2
    Var_p      = population variance of m_p over records       (1.0 if it is 0 or < 2 values)
    score_p    = m_p / Var_p   if sign(s12) == sign(s21) != 0   else 0     (order-consistent only)
    score_p    = -score_p      if p is sampled "negated" (the principle's opposite)
    k          ~ Geometric(q) on {1, 2, ...}, P(k) = (1 - q)^(k-1) q,  k <- min(k, K, n)
    p*         = argmax_{p in first k of a shuffle} |score_p|     (first in sampled order on ties)
    winner     = 0 if score_{p*} > 0 else 1;  |score_{p*}| == 0  ->  skipped ("no_signal")

Rules then override the principle label (only for examples that have a principle label):
exactly one response says the AI phrase → with probability ``ai_phrase_prob`` the other wins
(when the draw fails the next rule is tried); else exactly one response is identified (py3langid)
in a language other than the instruction's → it loses. Finally the winner is flipped with
probability ``label_noise`` (``rule_label_noise`` for rule labels) and the two responses are
presented in random order (``swap_prob``) so that position never correlates with the label.

Choices and differences from the original and from peers:

* The truncation ``k = min(k, max_principles, number of principles)`` clips the geometric draw
  rather than redrawing, so ``E[k] = sum_k min(k, K) (1-q)^(k-1) q = (1 - (1-q)^K) / q`` for
  ``K = min(max_principles, n)``; the clipped mass sits on ``K``.
* The original pipeline serialised intermediate fields with ``str()`` and read them back with
  ``eval()``; every field here is a plain JSON type (written as JSONL, read with ``json``).
* Comparisons with missing or non-finite scores are ignored; a record without any usable
  ``(0, 1)`` comparison is skipped as ``no_pair``.
* Language identification strips fenced code blocks first (code is not a natural language)
  and gives up (``None``) on text with fewer than 3 words or letters.
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import Field

from selfalign.config import StrictModel

SKIP_REASONS = ("short", "no_signal", "no_pair")
_FENCED_CODE = re.compile(r"```.*?(```|\Z)", re.DOTALL)


class AggregateConfig(StrictModel):
    """Options for SALMON stage 2 aggregation (:func:`aggregate`)."""

    passes: int = Field(2, ge=1, description="passes over the data; each pass resamples the principles")
    geometric_p: float = Field(
        0.2, gt=0.0, le=1.0, description="success probability q of k ~ Geometric(q), principles per example")
    max_principles: int = Field(8, ge=1, description="cap on k (the draw is clipped, not redrawn)")
    negate_prob: float = Field(0.5, ge=0.0, le=1.0, description="probability a sampled principle is negated")
    label_noise: float = Field(0.1, ge=0.0, le=1.0, description="probability of flipping a principle label")
    rule_label_noise: float = Field(0.25, ge=0.0, le=1.0,
                                    description="probability of flipping a rule-decided label")
    ai_phrase: str = Field("As an AI language model",
                           description="phrase whose presence makes a response lose")
    ai_phrase_prob: float = Field(0.5, ge=0.0, le=1.0,
                                  description="probability the AI-phrase rule decides when it applies")
    language_rule: bool = Field(True, description="a response not in the instruction's language loses")
    language_min_confidence: float = Field(0.9, ge=0.0, le=1.0, description="py3langid probability below "
                                           "which a text's language counts as unknown (never 'different')")
    min_chars: int = Field(16, ge=0, description="skip pairs where a stripped response is shorter than this")
    swap_prob: float = Field(0.5, ge=0.0, le=1.0, description="probability of presenting responses swapped")
    seed: int = Field(0, description="seed of the single random.Random used by aggregate()")


# ------------------------------------------------------------------------------------------ records
def instruction_of(rec: dict) -> str:
    """The instruction text: ``prompt`` if a string, else the first user turn's content of a chat."""
    prompt = rec.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    for msg in prompt or []:
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content", "")
            return content if isinstance(content, str) else ""
    return ""


def response_texts(rec: dict) -> list[str]:
    """The response texts of a record (entries are ``{"text": ...}`` dicts or plain strings)."""
    out = []
    for r in rec.get("responses") or []:
        text = r.get("text", "") if isinstance(r, dict) else r
        out.append(text if isinstance(text, str) else "")
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pair_scores(rec: dict) -> dict[str, tuple[float, float]]:
    """``{principle: (s12, s21)}`` for the ``(i=0, j=1)`` comparisons, in first-seen order.

    Comparisons for other pairs, with missing or non-finite scores, or repeating a principle
    already seen are ignored.
    """
    out: dict[str, tuple[float, float]] = {}
    for c in rec.get("comparisons") or []:
        if c.get("i") != 0 or c.get("j") != 1:
            continue
        name, s12, s21 = c.get("principle"), c.get("s12"), c.get("s21")
        if isinstance(name, str) and name not in out and _finite(s12) and _finite(s21):
            out[name] = (float(s12), float(s21))
    return out


# ---------------------------------------------------------------------------------------- scoring
def principle_variances(records: Iterable[dict]) -> dict[str, float]:
    """Per principle, the population variance over records of ``m = (s12 + s21) / 2``.

    ``Var_p = mean((m - mean(m))^2)`` over every record with a usable ``(0, 1)`` comparison for
    ``p``. A principle with fewer than 2 values or zero variance gets 1.0 (no normalisation),
    so scores stay finite.
    """
    values: dict[str, list[float]] = {}
    for rec in records:
        for name, (s12, s21) in pair_scores(rec).items():
            values.setdefault(name, []).append((s12 + s21) / 2)
    out = {}
    for name, ms in values.items():
        mean = sum(ms) / len(ms)
        var = sum((m - mean) ** 2 for m in ms) / len(ms)
        out[name] = var if len(ms) >= 2 and var > 0 else 1.0
    return out


def principle_score(s12: float, s21: float, variance: float, negated: bool) -> float:
    """``(s12 + s21) / 2 / variance`` if both orders agree in sign (both > 0 or both < 0), else 0.

    A negated principle flips the sign. Positive favours response 0.
    """
    if (s12 > 0 and s21 > 0) or (s12 < 0 and s21 < 0):
        score = (s12 + s21) / 2 / variance
        return -score if negated else score
    return 0.0


def geometric_draw(rng: random.Random, p: float) -> int:
    """k ~ Geometric(p) on {1, 2, ...} by inverse CDF: ``k = 1 + floor(log(1 - u) / log(1 - p))``.

    ``P(k >= n) = P(1 - u <= (1-p)^(n-1)) = (1-p)^(n-1)``, as required.
    """
    if p >= 1.0:
        return 1
    u = rng.random()  # in [0, 1), so 1 - u in (0, 1]
    return 1 + int(math.floor(math.log(1.0 - u) / math.log(1.0 - p)))


def sample_principles(names: Sequence[str], rng: random.Random,
                      cfg: AggregateConfig) -> list[tuple[str, bool]]:
    """The first ``k = min(Geometric(geometric_p), max_principles, len(names))`` of a shuffled copy.

    Each is negated with probability ``negate_prob``; returns ``(name, negated)`` pairs.
    """
    pool = list(names)
    rng.shuffle(pool)
    k = min(geometric_draw(rng, cfg.geometric_p), cfg.max_principles, len(pool))
    return [(name, rng.random() < cfg.negate_prob) for name in pool[:k]]


# ------------------------------------------------------------------------------------------- rules
def says_ai_phrase(text: str, phrase: str) -> bool:
    """Whether ``text`` contains ``phrase`` (case-insensitive); an empty phrase never matches."""
    return bool(phrase) and phrase.casefold() in text.casefold()


@functools.lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier  # lazy: loaded when the rule runs

    return LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)


@functools.lru_cache(maxsize=8192)
def _classify(text: str) -> tuple[str, float]:
    lang, prob = _identifier().classify(text)
    return lang, float(prob)


def language_of(text: str, min_confidence: float = 0.9) -> str | None:
    """ISO 639-1 code from py3langid, or None where identification is meaningless.

    Fenced code blocks are removed first; text with fewer than 3 words (whitespace tokens with a
    letter) *and* fewer than 12 letters, or fewer than 3 letters at all, gives None. The letter
    alternative keeps unspaced scripts (Chinese, Japanese) identifiable. A normalised probability
    below ``min_confidence`` also gives None: JSON, numbers and lists are "identified" as some
    language with low confidence (measured: 0.03–0.2 for such answers, ≥ 0.97 for a sentence).
    """
    prose = _FENCED_CODE.sub(" ", text)
    letters = sum(ch.isalpha() for ch in prose)
    words = sum(any(ch.isalpha() for ch in tok) for tok in prose.split())
    if letters < 3 or (words < 3 and letters < 12):
        return None
    lang, prob = _classify(prose.strip())
    return lang if prob >= min_confidence else None


def rule_label(instruction: str, text0: str, text1: str, rng: random.Random,
               cfg: AggregateConfig) -> tuple[int, str] | None:
    """``(winner, rule)`` if a rule decides the pair, else None.

    * ``ai_phrase``: exactly one response says ``cfg.ai_phrase`` → with probability
      ``ai_phrase_prob`` the other wins (a failed draw falls through to the next rule);
    * ``language``: the instruction's language is known and exactly one response is identified
      in a different language → that one loses (an unidentifiable response never differs).

    When both or neither response trigger a rule, that rule does not decide.
    """
    ai0, ai1 = says_ai_phrase(text0, cfg.ai_phrase), says_ai_phrase(text1, cfg.ai_phrase)
    if ai0 != ai1 and rng.random() < cfg.ai_phrase_prob:
        return (1 if ai0 else 0), "ai_phrase"
    if cfg.language_rule:
        lang = language_of(instruction, cfg.language_min_confidence)
        if lang is not None:
            off0, off1 = (language_of(t, cfg.language_min_confidence) not in (None, lang) for t in (text0, text1))
            if off0 != off1:
                return (1 if off0 else 0), "language"
    return None


# ------------------------------------------------------------------------------------- aggregation
def skip_reason(rec: dict, cfg: AggregateConfig) -> str | None:
    """Why a record yields no example before any sampling: ``no_pair`` or ``short``; else None."""
    texts = response_texts(rec)
    if len(texts) < 2 or not pair_scores(rec):
        return "no_pair"
    if any(len(t.strip()) < cfg.min_chars for t in texts[:2]):
        return "short"
    return None


def label_example(rec: dict, variances: dict[str, float], rng: random.Random, cfg: AggregateConfig,
                  pass_index: int = 0) -> tuple[dict | None, str | None]:
    """One labelled example for one pass, or ``(None, reason)`` with a reason in SKIP_REASONS."""
    reason = skip_reason(rec, cfg)
    if reason is not None:
        return None, reason
    pairs = pair_scores(rec)
    sampled = sample_principles(list(pairs), rng, cfg)
    scores = {name: principle_score(*pairs[name], variances.get(name, 1.0), neg) for name, neg in sampled}
    best = None
    for name, _ in sampled:  # strict > keeps the first in sampled order on ties
        if best is None or abs(scores[name]) > abs(scores[best]):
            best = name
    if best is None or scores[best] == 0.0:
        return None, "no_signal"
    instruction = instruction_of(rec)
    text0, text1 = response_texts(rec)[:2]
    winner, source, principle = (0 if scores[best] > 0 else 1), "principle", best
    rule = rule_label(instruction, text0, text1, rng, cfg)
    if rule is not None:
        (winner, source), principle = rule, None
    noise = cfg.label_noise if source == "principle" else cfg.rule_label_noise
    flipped = rng.random() < noise
    if flipped:
        winner = 1 - winner
    swapped = rng.random() < cfg.swap_prob
    a, b = (text1, text0) if swapped else (text0, text1)
    preferred = "a" if (winner == 0) != swapped else "b"
    return {
        "id": f"{rec['id']}#p{pass_index}",
        "source_id": str(rec["id"]),
        "instruction": instruction,
        "response_a": a,
        "response_b": b,
        "preferred": preferred,
        "principles": [{"name": name, "negated": bool(neg)} for name, neg in sampled],
        "label_source": source,
        "label_principle": principle,
        "noise_flipped": flipped,
        "scores": scores,
    }, None


def aggregate_example(rec: dict, variances: dict[str, float], rng: random.Random, cfg: AggregateConfig,
                      pass_index: int = 0) -> dict | None:
    """:func:`label_example` without the skip reason: the example, or None if skipped."""
    return label_example(rec, variances, rng, cfg, pass_index)[0]


def aggregate(records: Sequence[dict], cfg: AggregateConfig) -> tuple[list[dict], dict]:
    """All passes over ``records``: ``(examples, stats)``, deterministic for ``cfg.seed``.

    Variances are computed once over all records; one ``random.Random(cfg.seed)`` drives every
    draw, pass by pass and record by record in input order.
    """
    records = list(records)
    variances = principle_variances(records)
    rng = random.Random(cfg.seed)
    examples: list[dict] = []
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    for pass_index in range(cfg.passes):
        for rec in records:
            ex, reason = label_example(rec, variances, rng, cfg, pass_index)
            if ex is None:
                skipped[reason or "no_pair"] += 1
            else:
                examples.append(ex)
    return examples, _stats(examples, skipped, len(records), cfg.passes)


def _stats(examples: list[dict], skipped: dict[str, int], n_records: int, passes: int) -> dict:
    """Plain counts (and two fractions) describing an aggregation run."""
    n = len(examples)
    return {
        "records": n_records,
        "passes": passes,
        "examples": n,
        "skipped_short": skipped["short"],
        "skipped_no_signal": skipped["no_signal"],
        "skipped_no_pair": skipped["no_pair"],
        "rule_ai_phrase": sum(ex["label_source"] == "ai_phrase" for ex in examples),
        "rule_language": sum(ex["label_source"] == "language" for ex in examples),
        "noise_flipped": sum(ex["noise_flipped"] for ex in examples),
        "negated_principles": sum(p["negated"] for ex in examples for p in ex["principles"]),
        "mean_principles_per_example": (sum(len(ex["principles"]) for ex in examples) / n) if n else 0.0,
        "label_a_fraction": (sum(ex["preferred"] == "a" for ex in examples) / n) if n else 0.0,
    }
