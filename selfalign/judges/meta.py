"""Meta-judge (Meta-Rewarding LMs, arXiv 2407.19594): preference pairs that train the judge itself.

Input: scored records from the ``rubric`` judge in ``sample`` mode (several judgement texts per
response). For each record:

1. Take the response whose judgements disagree most: the highest variance of valid judgement
   scores among responses with more than one valid judgement (ties → the lower index).
2. Strip the numeric score from each of its judgements (the ``score_regex`` matches are removed)
   and ask the model to compare every pair of judgements in BOTH orders
   (``resources/templates/meta_judge.txt``); its answer is parsed with ``winner_regex``
   (``Winner: Judgement A|B``; none → a parse failure, counted). A judgement that wins in both
   orders wins the pair; anything else (disagreement or a parse failure) is a tie, counted as half
   a win for each side. ``mode: expected`` (for models too small to keep the answer format) reads
   the answer from one forward pass instead: after the prefix ``"Winner: Judgement "`` the
   probabilities of the tokens "A" and "B", renormalised, give p_AB = P(first shown wins). Over both
   orders x beats y with probability q = (p_AB(x first) + 1 − p_AB(y first)) / 2, and the win
   matrix gets q for x over y and 1 − q for y over x (never a parse failure; ``valid_mass``, the
   probability on "A" or "B", is reported).
3. Fit Elo ratings from the win matrix (:func:`elo_from_wins`). The meta pair is
   (judge prompt, best-Elo judgement) vs (judge prompt, worst-Elo judgement), with the original,
   unstripped judgement texts. Dropped: an Elo tie, a best or worst judgement without a valid
   numeric score, or equal numeric scores.
4. Balance: pairs are dropped (seeded, at random) from the most frequent chosen-score class
   until no class exceeds ``max_class_frac`` (0.4) of the meta pairs.

Output: preference records ``{"id", "prompt", "chosen", "rejected", "chosen_score",
"rejected_score", "meta": {"kind": "meta_judge", ...}}``; ``chosen_score``/``rejected_score`` are
the judgements' own numeric scores, Elo ratings are in ``meta``. Indices in ``meta`` always refer
to positions in the response's original ``judgements`` list.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from selfalign.judges.base import (
    Judge,
    JudgeConfig,
    check_regex,
    fill_template,
    load_judge_lm,
    load_template,
    prompt_text,
    register_judge,
    response_text,
)
from selfalign.judges.rubric import DEFAULT_SCORE_REGEX

DEFAULT_WINNER_REGEX = r"Winner:\s*\**\s*Judgement\s*([AB])\b"


def elo_from_wins(win_matrix: Any, C: float = 1.0) -> np.ndarray:
    """Elo ratings from a win matrix by logistic regression (Bradley-Terry).

    ``win_matrix[i, j]`` = how often i beat j (fractions allowed: a tie adds 0.5 to both cells).
    Model: P(i beats j) = σ(θ_i − θ_j). Every win is a sample with features e_i − e_j and label 1,
    mirrored as (e_j − e_i, label 0), weighted by its count; scikit-learn's L2-regularised
    logistic regression without intercept fits θ (the regulariser keeps θ finite when one player
    wins every game and centres it at 0). Elo = 400·θ + 1000. No games → all 1000.
    """
    from sklearn.linear_model import LogisticRegression

    w = np.asarray(win_matrix, dtype=float)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError("win_matrix must be square")
    n = w.shape[0]
    if np.any(w < 0):
        raise ValueError("win counts must be non-negative")
    rows, labels, weights = [], [], []
    for i in range(n):
        for j in range(n):
            if i != j and w[i, j] > 0:
                x = np.zeros(n)
                x[i], x[j] = 1.0, -1.0
                rows.extend([x, -x])
                labels.extend([1, 0])
                weights.extend([w[i, j], w[i, j]])
    if not rows:
        return np.full(n, 1000.0)
    lr = LogisticRegression(fit_intercept=False, C=C, max_iter=1000)
    lr.fit(np.stack(rows), np.array(labels), sample_weight=np.array(weights))
    return 400.0 * lr.coef_[0] + 1000.0


def strip_score(text: str, regex: str | re.Pattern = DEFAULT_SCORE_REGEX) -> str:
    """``text`` with every score statement matched by ``regex`` removed (case-insensitive)."""
    rx = regex if isinstance(regex, re.Pattern) else re.compile(regex, re.IGNORECASE)
    return rx.sub("", text).rstrip()


def parse_winner(text: str, regex: str | re.Pattern = DEFAULT_WINNER_REGEX) -> str | None:
    """"A" or "B" from the first ``Winner: Judgement A|B`` in ``text``; None when absent."""
    rx = regex if isinstance(regex, re.Pattern) else re.compile(regex, re.IGNORECASE)
    m = rx.search(text)
    return m.group(1).upper() if m else None


def both_order_outcome(first_order: str | None, second_order: str | None) -> int:
    """Outcome for judgements (x, y) asked as (A=x, B=y) then (A=y, B=x): 1 = x won both,
    2 = y won both, 0 = a tie (the orders disagree or an answer was unparsable)."""
    if first_order == "A" and second_order == "B":
        return 1
    if first_order == "B" and second_order == "A":
        return 2
    return 0


def balance_by_chosen_score(pairs: list[dict], max_frac: float = 0.4, seed: int = 0) -> list[dict]:
    """Drop pairs (seeded, at random) from the largest ``chosen_score`` class until every class holds
    at most ``max_frac`` of the remaining pairs. Input order is kept. With fewer than
    ⌈1/max_frac⌉ classes no balanced subset exists and nothing is returned."""
    rng = random.Random(seed)
    groups: dict[Any, list[int]] = {}
    for k, p in enumerate(pairs):
        groups.setdefault(p.get("chosen_score"), []).append(k)
    for idx in groups.values():
        rng.shuffle(idx)
    while True:
        total = sum(len(v) for v in groups.values())
        if total == 0:
            break
        _, idx = max(groups.items(), key=lambda kv: len(kv[1]))
        if len(idx) <= max_frac * total + 1e-9:
            break
        idx.pop()
    keep = sorted(k for v in groups.values() for k in v)
    return [pairs[k] for k in keep]


class MetaJudgeConfig(JudgeConfig):
    """``judge.type=meta``: judge the judgements; output preference pairs for the judge role."""

    type: Literal["meta"] = "meta"
    model: str | None = Field(None, description="model spec; None = the model passed in (policy)")
    dtype: str = "float32"
    device: str | None = None
    template: str = Field("meta_judge", description="meta-judge template: {judge_prompt} {judgement_a} "
                                                    "{judgement_b}")
    judge_template: str = Field("rubric", description="the rubric template the judgements answered")
    score_regex: str = DEFAULT_SCORE_REGEX
    winner_regex: str = DEFAULT_WINNER_REGEX
    mode: Literal["generate", "expected"] = Field("generate", description="generate: parse a written "
                                                  "verdict; expected: P(A) vs P(B) after expected_prefix")
    expected_prefix: str = "Winner: Judgement "
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0
    batch_size: int = Field(16, ge=1)
    max_class_frac: float = Field(0.4, gt=0.0, le=1.0)
    elo_regularization: float = Field(1.0, gt=0.0, description="inverse L2 strength C of the Elo fit")

    @field_validator("score_regex", "winner_regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return check_regex(v)


_COUNTS = ("skipped_no_disagreement", "dropped_elo_tie", "dropped_unparsed_score", "dropped_equal_scores",
           "meta_pairs_before_balance", "dropped_balance", "meta_pairs")

# texts -> generated answers; injectable for tests
GenerateFn = Callable[[list[str], list[str]], list[str]]


@register_judge("meta", MetaJudgeConfig)
class MetaJudge(Judge):
    """See the module docstring."""

    output_kind = "preferences"

    def __init__(self, cfg: MetaJudgeConfig, model: Any = None, tokenizer: Any = None,
                 generate_fn: GenerateFn | None = None):
        super().__init__(cfg)
        self.cfg: MetaJudgeConfig = cfg
        self.model, self.tokenizer = model, tokenizer
        self.template = load_template(cfg.template, ("{judge_prompt}", "{judgement_a}", "{judgement_b}"))
        self.judge_template = load_template(cfg.judge_template, ("{prompt}", "{response}"))
        self.score_rx = re.compile(cfg.score_regex, re.IGNORECASE)
        self.winner_rx = re.compile(cfg.winner_regex, re.IGNORECASE)
        self._generate_fn = generate_fn
        self.counts: Counter[str] = Counter({k: 0 for k in _COUNTS})

    @classmethod
    def from_config(cls, cfg: MetaJudgeConfig, *, model: Any = None, tokenizer: Any = None) -> MetaJudge:
        lm, tok = load_judge_lm(cfg.model, model, tokenizer, cfg.dtype, cfg.device)
        return cls(cfg, lm, tok)

    def stats(self) -> dict[str, Any]:
        out = self._stats.as_dict()
        out["score_histogram_of"] = "chosen_score of the meta pairs"
        out.update(dict(self.counts))
        return out

    def reset_stats(self) -> None:
        super().reset_stats()
        self.counts = Counter({k: 0 for k in _COUNTS})

    # ------------------------------------------------------------------------------------ pieces
    def judge_prompt(self, prompt: Any, response: Any) -> str:
        return fill_template(self.judge_template, prompt=prompt_text(prompt), response=response_text(response))

    @staticmethod
    def select_response(record: dict) -> int | None:
        """Index of the response whose valid judgement scores vary most (>1 valid); None if none."""
        best, best_var = None, -1.0
        for j, r in enumerate(record.get("responses", [])):
            if not isinstance(r, dict):
                continue
            valid = [x["score"] for x in r.get("judgements") or []
                     if isinstance(x, dict) and x.get("score") is not None and isinstance(x.get("text"), str)]
            if len(valid) < 2:
                continue
            m = sum(valid) / len(valid)
            var = sum((v - m) ** 2 for v in valid) / len(valid)
            if var > best_var:
                best, best_var = j, var
        return best

    def _generate(self, texts: list[str], keys: list[str]) -> list[str]:
        if self._generate_fn is not None:
            return self._generate_fn(texts, keys)
        if not texts:
            return []
        from selfalign.generation.engine import SamplingParams
        from selfalign.generation.hf import HFEngine
        from selfalign.utils.progress import Bar

        cfg = self.cfg
        engine = HFEngine(self.model, self.tokenizer, batch_size=cfg.batch_size)
        params = SamplingParams(num_samples=1, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
        with Bar(f"meta-judging ({self.name})", total=len(texts), unit="comparison") as bar:
            last = [0]

            def progress(done: int, _t: int) -> None:
                bar.advance(done - last[0])
                last[0] = done

            outs = engine.generate(texts, params, keys=keys, on_progress=progress)
        return [o[0]["text"] for o in outs]

    def _first_wins_prob(self, texts: list[str]) -> list[float]:
        """P("A") / (P("A") + P("B")) after ``expected_prefix`` for each meta-judge prompt."""
        import math

        from selfalign.judges.base import answer_logprobs, render_user_turn

        special = False
        contexts = []
        for t in texts:
            rendered, special = render_user_turn(self.tokenizer, t)
            contexts.append(rendered + self.cfg.expected_prefix)
        logp = answer_logprobs(self.model, self.tokenizer, contexts, ["A", "B"], batch_size=self.cfg.batch_size,
                               add_special_tokens=special, label=f"meta-judging ({self.name}, expected)")
        out = []
        for la, lb in logp.tolist():
            pa, pb = math.exp(la), math.exp(lb)
            self._stats.add_judgement(pa + pb > 0)
            self._stats.observe("valid_mass", pa + pb)
            out.append(pa / (pa + pb) if pa + pb > 0 else 0.5)
        return out

    # ------------------------------------------------------------------------------------ scoring
    def score_records(self, records: list[dict]) -> list[dict]:
        cases = []  # (record, response index, [(original judgement index, text, score)])
        for rec in records:
            self._stats.records += 1
            j = self.select_response(rec)
            if j is None:
                self.counts["skipped_no_disagreement"] += 1
                continue
            js = [(k, x["text"], x.get("score")) for k, x in enumerate(rec["responses"][j]["judgements"])
                  if isinstance(x, dict) and isinstance(x.get("text"), str)]
            cases.append((rec, j, js))
        texts: list[str] = []
        keys: list[str] = []
        jobs: list[tuple[int, int, int]] = []  # (case, a, b) positions in the case's judgement list
        for c, (rec, j, js) in enumerate(cases):
            jp = self.judge_prompt(rec["prompt"], rec["responses"][j])
            stripped = [strip_score(t, self.score_rx) for _, t, _ in js]
            for a, b in combinations(range(len(js)), 2):
                jobs.append((c, a, b))
                for first, second, tag in ((a, b, "ab"), (b, a, "ba")):
                    texts.append(fill_template(self.template, judge_prompt=jp, judgement_a=stripped[first],
                                               judgement_b=stripped[second]))
                    keys.append(f"{rec.get('id')}\x1f{j}\x1f{js[a][0]}\x1f{js[b][0]}\x1f{tag}")
        wins = [np.zeros((len(js), len(js))) for _, _, js in cases]
        if self.cfg.mode == "expected":
            p_first = self._first_wins_prob(texts)
            for k, (c, a, b) in enumerate(jobs):
                q = 0.5 * (p_first[2 * k] + 1.0 - p_first[2 * k + 1])
                wins[c][a, b] += q
                wins[c][b, a] += 1.0 - q
                self._stats.add_comparison(1 if q > 0.5 else 2 if q < 0.5 else 0)
        answers = self._generate(texts, keys) if self.cfg.mode == "generate" else []
        for k, (c, a, b) in enumerate(jobs if self.cfg.mode == "generate" else []):
            w1 = parse_winner(answers[2 * k], self.winner_rx)
            w2 = parse_winner(answers[2 * k + 1], self.winner_rx)
            self._stats.add_judgement(w1 is not None)
            self._stats.add_judgement(w2 is not None)
            outcome = both_order_outcome(w1, w2)
            self._stats.add_comparison(outcome)
            if outcome == 1:
                wins[c][a, b] += 1
            elif outcome == 2:
                wins[c][b, a] += 1
            else:
                wins[c][a, b] += 0.5
                wins[c][b, a] += 0.5
        pairs = []
        for c, (rec, j, js) in enumerate(cases):
            elo = elo_from_wins(wins[c], C=self.cfg.elo_regularization)
            best, worst = int(np.argmax(elo)), int(np.argmin(elo))
            if np.isclose(elo[best], elo[worst], rtol=0.0, atol=1e-6):
                self.counts["dropped_elo_tie"] += 1
                continue
            (kb, tb, sb), (kw, tw, sw) = js[best], js[worst]
            if sb is None or sw is None:
                self.counts["dropped_unparsed_score"] += 1
                continue
            if sb == sw:
                self.counts["dropped_equal_scores"] += 1
                continue
            pairs.append({
                "id": f"{rec.get('id')}:meta",
                "prompt": self.judge_prompt(rec["prompt"], rec["responses"][j]),
                "chosen": tb, "rejected": tw, "chosen_score": sb, "rejected_score": sw,
                "meta": {"kind": "meta_judge", "source_id": rec.get("id"), "response_index": j,
                         "judgement_indices": [kb, kw], "chosen_elo": float(elo[best]),
                         "rejected_elo": float(elo[worst]),
                         "elo": {str(js[p][0]): float(e) for p, e in enumerate(elo)}},
            })
        kept = balance_by_chosen_score(pairs, self.cfg.max_class_frac, self.cfg.seed)
        self.counts["meta_pairs_before_balance"] += len(pairs)
        self.counts["dropped_balance"] += len(pairs) - len(kept)
        self.counts["meta_pairs"] += len(kept)
        for p in kept:
            self._stats.add_response(p["chosen_score"])
            # how decisive the meta-judge was: a gap near 0 means a near-tie (weak training signal)
            self._stats.observe("elo_gap", p["meta"]["chosen_elo"] - p["meta"]["rejected_elo"])
        return kept
