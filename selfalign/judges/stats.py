"""Judge statistics: the counters a judge fills while it works, reported as rates by
:meth:`JudgeStats.as_dict` (``Judge.stats()``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JudgeStats:
    """Counters a judge fills while it works; :meth:`as_dict` turns them into rates.

    * ``judgements`` — individual judge outputs (one sample, one forward pass, one comparison order);
    * ``parse_failures`` — judgements that yielded no valid score;
    * ``unscored`` — responses left with ``score=None``;
    * ties — pointwise judges: records with ≥2 scored responses whose scores are all equal
      (:meth:`add_record_scores`); pairwise judges: comparisons with preference 0
      (:meth:`add_comparison`);
    * position consistency — pairwise only: comparisons where both orders pick the same winner.
    """

    judge: str
    score_range: tuple[float, float] | None = None
    records: int = 0
    responses: int = 0
    judgements: int = 0
    parse_failures: int = 0
    unscored: int = 0
    scores: list[float] = field(default_factory=list)
    tie_groups: int = 0
    ties: int = 0
    comparisons: int = 0
    consistent: int = 0
    extra: dict[str, list[float]] = field(default_factory=dict)

    def add_judgement(self, parsed: bool) -> None:
        self.judgements += 1
        if not parsed:
            self.parse_failures += 1

    def add_response(self, score: float | None) -> None:
        self.responses += 1
        if score is None:
            self.unscored += 1
        else:
            self.scores.append(float(score))

    def add_record_scores(self, scores: Sequence[float | None]) -> None:
        """Count one record; a tie group when ≥2 responses are scored, a tie when all are equal."""
        self.records += 1
        valid = [s for s in scores if s is not None]
        if len(valid) >= 2:
            self.tie_groups += 1
            if max(valid) == min(valid):
                self.ties += 1

    def add_comparison(self, preference: int) -> None:
        """One both-order pairwise comparison; ``preference`` 1/2 = consistent winner, 0 = none."""
        self.comparisons += 1
        if preference in (1, 2):
            self.consistent += 1
        else:
            self.ties += 1
        self.tie_groups += 1

    def merge(self, other: JudgeStats) -> None:
        """Add ``other``'s counters to these (the statistics of several workers judging parts of one set)."""
        for f in ("records", "responses", "judgements", "parse_failures", "unscored", "tie_groups", "ties",
                  "comparisons", "consistent"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.scores.extend(other.scores)
        for k, v in other.extra.items():
            self.extra.setdefault(k, []).extend(v)
        self.score_range = self.score_range or other.score_range

    def observe(self, key: str, value: float) -> None:
        """Record a judge-specific value (e.g. ``valid_mass``); reported as its mean."""
        self.extra.setdefault(key, []).append(float(value))

    def histogram(self, max_distinct: int = 21, bins: int = 10) -> dict[str, int]:
        """Score counts: one bucket per value when scores are few distinct integers, else ``bins``
        equal-width buckets over the score range (or the observed range)."""
        if not self.scores:
            return {}
        distinct = set(self.scores)
        if len(distinct) <= max_distinct and all(float(s).is_integer() for s in distinct):
            counts = Counter(self.scores)
            return {_fmt(v): counts[v] for v in sorted(counts)}
        lo, hi = self.score_range if self.score_range else (min(self.scores), max(self.scores))
        lo, hi = min(lo, min(self.scores)), max(hi, max(self.scores))
        if hi <= lo:
            return {_fmt(lo): len(self.scores)}
        width = (hi - lo) / bins
        counts = [0] * bins
        for s in self.scores:
            counts[min(int((s - lo) / width), bins - 1)] += 1
        return {f"[{_fmt(lo + i * width)},{_fmt(lo + (i + 1) * width)}{']' if i == bins - 1 else ')'}": c
                for i, c in enumerate(counts)}

    def as_dict(self) -> dict[str, Any]:
        n = len(self.scores)
        mean = sum(self.scores) / n if n else None
        std = math.sqrt(sum((s - mean) ** 2 for s in self.scores) / n) if n else None
        out: dict[str, Any] = {
            "judge": self.judge,
            "records": self.records,
            "responses": self.responses,
            "judgements": self.judgements,
            "parse_failures": self.parse_failures,
            "parse_failure_rate": _rate(self.parse_failures, self.judgements),
            "unscored_responses": self.unscored,
            "unscored_rate": _rate(self.unscored, self.responses),
            "score_mean": mean,
            "score_std": std,
            "score_histogram": self.histogram(),
            "tie_rate": _rate(self.ties, self.tie_groups),
        }
        if self.comparisons:
            out["comparisons"] = self.comparisons
            out["position_consistency"] = _rate(self.consistent, self.comparisons)
        for key, values in self.extra.items():
            out[f"{key}_mean"] = sum(values) / len(values) if values else None
        return out


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"
