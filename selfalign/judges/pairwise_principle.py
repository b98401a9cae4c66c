"""Principle-driven pairwise judge (SALMON stage 1, arXiv 2310.05910).

For a pair of responses (1, 2) to one instruction and one principle (name + definition), the
judge model reads a prompt listing the instruction, ``Output (a)``, ``Output (b)`` and the
principle (``resources/templates/pairwise_principle.txt``), followed by the assistant prefix
``"... the more <principle> output is Output ("``. Nothing is generated: we read the next-token
log-probabilities of ``a`` and ``b``. Both orders are asked:

* order 1 — response 1 as (a), response 2 as (b): ``s12 = log p(a) − log p(b)``;
* order 2 — response 2 as (a), response 1 as (b): ``s21 = log p(b) − log p(a)``.

Both are oriented so that a positive value favours response 1. The preference is 1 when both are
positive, 2 when both are negative, else 0 (position-inconsistent, or an exact tie).

Output, per record (records need ≥ 2 responses; others pass through unscored)::

    "comparisons": [{"i": 0, "j": 1, "principle": "Concise", "s12": 0.8, "s21": 0.3,
                     "preference": 1}, ...]

and per response ``judgements`` (one per comparison it took part in: ``{"principle", "vs",
"margin", "score"}`` with score 1 win / 0 loss / 0.5 no consistent winner), ``score`` = the mean
of those (a win rate in [0, 1]) and ``score_var``. ``pairs: first`` compares responses 0 and 1,
``pairs: all`` every pair. Statistics include the position-consistency rate (share of
comparisons whose two orders agree) and ``label_mass_mean``, the mean probability the judge put
on the two label tokens (a low value means the prompt format is not being followed).

Principles come from a JSON or YAML file, or a shipped list (our own wording): ``judging``
(11 principles, stage 1), ``rl`` (14 weighted, stage 3), ``intervention`` (3); see
:mod:`selfalign.principles` (``Principle``, ``load_principles`` and ``shipped_principles`` are
re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import combinations
from typing import Any, Literal

from pydantic import Field

from selfalign.errors import DataError
from selfalign.judges.base import Judge, JudgeConfig, register_judge, response_text, with_scores
from selfalign.judges.templates import (
    fill_template,
    load_template,
    prompt_text,
    render_user_turn,
)
from selfalign.models.load import load_judge_lm
from selfalign.models.scoring import answer_logprobs
from selfalign.principles import Principle, load_principles, shipped_principles

__all__ = ["PairwisePrincipleJudge", "PairwisePrincipleJudgeConfig", "Principle", "load_principles",
           "preference_from_scores", "shipped_principles"]


def preference_from_scores(s12: float, s21: float) -> int:
    """1 if both orders favour response 1 (both > 0), 2 if both favour response 2 (both < 0), else 0."""
    if s12 > 0 and s21 > 0:
        return 1
    if s12 < 0 and s21 < 0:
        return 2
    return 0


class PairwisePrincipleJudgeConfig(JudgeConfig):
    """``judge.type=pairwise_principle``: compare response pairs under each principle (SALMON)."""

    type: Literal["pairwise_principle"] = "pairwise_principle"
    model: str | None = Field(None, description="judge model spec; None = the model passed in (policy)")
    dtype: str = "float32"
    device: str | None = None
    principles: str = Field("judging", description="shipped list name or a JSON file")
    only: list[str] | None = Field(None, description="use only these principle names")
    template: str = Field("pairwise_principle", description="shipped template name or a file")
    answer_prefix: str = Field(
        "Judging only by this principle, the more {principle} output is Output (",
        description="assistant prefix; {principle} = lower-cased name, {principle_name} = name")
    labels: tuple[str, str] = ("a", "b")
    pairs: Literal["first", "all"] = "first"
    batch_size: int = Field(16, ge=1)


_PLACEHOLDERS = ("{prompt}", "{output_a}", "{output_b}", "{principle_definition}")

# (contexts) -> [(log p(label a), log p(label b))] ; injectable for tests
LogprobFn = Callable[[list[str]], list[tuple[float, float]]]


@register_judge("pairwise_principle", PairwisePrincipleJudgeConfig)
class PairwisePrincipleJudge(Judge):
    """See the module docstring."""

    def __init__(self, cfg: PairwisePrincipleJudgeConfig, model: Any = None, tokenizer: Any = None,
                 logprob_fn: LogprobFn | None = None):
        super().__init__(cfg)
        self.cfg: PairwisePrincipleJudgeConfig = cfg
        self.model, self.tokenizer = model, tokenizer
        self.template = load_template(cfg.template, _PLACEHOLDERS)
        principles = load_principles(cfg.principles)
        if cfg.only:
            known = {p.name for p in principles}
            unknown = [n for n in cfg.only if n not in known]
            if unknown:
                raise DataError(f"unknown principle(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                                cfg.principles, key="only")
            principles = [p for p in principles if p.name in cfg.only]
        self.principles = principles
        self._logprob_fn = logprob_fn
        self._stats.score_range = (0.0, 1.0)

    @classmethod
    def from_config(cls, cfg: PairwisePrincipleJudgeConfig, *, model: Any = None,
                    tokenizer: Any = None) -> PairwisePrincipleJudge:
        lm, tok = load_judge_lm(cfg.model, model, tokenizer, cfg.dtype, cfg.device)
        return cls(cfg, lm, tok)

    # ------------------------------------------------------------------------------------ prompts
    def user_turn(self, prompt: Any, out_a: str, out_b: str, principle: Principle) -> str:
        return fill_template(self.template, prompt=prompt_text(prompt), output_a=out_a, output_b=out_b,
                             principle_name=principle.name, principle_definition=principle.definition)

    def context(self, prompt: Any, out_a: str, out_b: str, principle: Principle) -> str:
        """Rendered judge input ending with the assistant prefix (just before the label token)."""
        rendered, _ = render_user_turn(self.tokenizer, self.user_turn(prompt, out_a, out_b, principle))
        prefix = fill_template(self.cfg.answer_prefix, principle=principle.name.lower(),
                               principle_name=principle.name)
        return rendered + prefix

    def _logprobs(self, contexts: list[str]) -> list[tuple[float, float]]:
        if self._logprob_fn is not None:
            return self._logprob_fn(contexts)
        _, special = render_user_turn(self.tokenizer, "")
        # contexts come as (order 1, order 2) per (pair, principle), principles innermost: one pair in
        # one order under every principle shares everything up to the principle → one cached prefix
        n = len(self.principles)
        groups = [list(range(start + o, min(start + 2 * n, len(contexts)), 2))
                  for start in range(0, len(contexts), 2 * n) for o in (0, 1)]
        lp = answer_logprobs(self.model, self.tokenizer, contexts, list(self.cfg.labels),
                             batch_size=self.cfg.batch_size, add_special_tokens=special,
                             label=f"judging ({self.name})", groups=groups)
        return [(float(a), float(b)) for a, b in lp.tolist()]

    # ------------------------------------------------------------------------------------ scoring
    def pairs_of(self, n: int) -> list[tuple[int, int]]:
        if n < 2:
            return []
        return [(0, 1)] if self.cfg.pairs == "first" else list(combinations(range(n), 2))

    def score_records(self, records: list[dict]) -> list[dict]:
        jobs: list[tuple[int, int, int, Principle]] = []  # (record, i, j, principle)
        contexts: list[str] = []
        for ri, rec in enumerate(records):
            resps = [response_text(r) for r in rec.get("responses", [])]
            for i, j in self.pairs_of(len(resps)):
                for pr in self.principles:
                    jobs.append((ri, i, j, pr))
                    contexts.append(self.context(rec["prompt"], resps[i], resps[j], pr))  # order 1
                    contexts.append(self.context(rec["prompt"], resps[j], resps[i], pr))  # order 2
        lps = self._logprobs(contexts)
        comps: list[list[dict]] = [[] for _ in records]
        for k, (ri, i, j, pr) in enumerate(jobs):
            (a1, b1), (a2, b2) = lps[2 * k], lps[2 * k + 1]
            s12, s21 = a1 - b1, b2 - a2
            for a, b in ((a1, b1), (a2, b2)):  # probability the judge put on the two labels
                self._stats.observe("label_mass", math.exp(a) + math.exp(b))
            pref = preference_from_scores(s12, s21)
            self._stats.add_judgement(True)
            self._stats.add_judgement(True)
            self._stats.add_comparison(pref)
            comps[ri].append({"i": i, "j": j, "principle": pr.name, "s12": s12, "s21": s21,
                              "preference": pref})
        out = []
        for ri, rec in enumerate(records):
            n = len(rec.get("responses", []))
            judgements: list[list[dict]] = [[] for _ in range(n)]
            for c in comps[ri]:
                margin = (c["s12"] + c["s21"]) / 2
                win_i = {1: 1.0, 2: 0.0, 0: 0.5}[c["preference"]]
                judgements[c["i"]].append({"principle": c["principle"], "vs": c["j"], "margin": margin,
                                           "score": win_i})
                judgements[c["j"]].append({"principle": c["principle"], "vs": c["i"], "margin": -margin,
                                           "score": 1.0 - win_i})
            if n < 2:
                out.append({**rec, "responses": [{**r, "judgements": [], "score": None, "score_var": None}
                                                 for r in rec.get("responses", [])], "comparisons": []})
                self._stats.records += 1
                for _ in range(n):
                    self._stats.add_response(None)
                continue
            scored = with_scores(rec, judgements, None)
            for r in scored["responses"]:
                if r["judgements"]:
                    self._stats.add_response(r["score"])
            self._stats.records += 1
            scored["comparisons"] = comps[ri]
            out.append(scored)
        return out

