"""Meta-judge (Meta-Rewarding LMs, arXiv 2407.19594; NeMo-Aligner's self-rewarding meta-judge):
preference pairs that train the judge itself.

Input: scored records from the main ``rubric`` judge (``sample``/``reasoned`` mode: several
judgement texts per response). Pass the main judge's ``judge_template`` and ``score_regex``: judge
prompts are rebuilt from that template as the rubric judge filled it; the regex strips scores.
For each record:

1. Comparison set of a response: its judgements with a text, a finite numeric ``score`` and
   ``finish`` "stop" or missing; with ``max_length``/``max_prompt_length`` also judge prompt +
   judgement ≤ max_length and judge prompt ≤ max_prompt_length tokens, as the DPO trainer counts
   them (:func:`encode_prompt_completion`, the judge LM's tokenizer and chat template, EOS
   included). A pair is prompt + its longer side long, so meta pairs always fit and are never
   truncated. The chosen response's excluded judgements are counted (``excluded_unparsed``,
   ``excluded_unfinished``, ``excluded_too_long``). ``include_unfinished`` admits judgements and
   responses cut at max_new_tokens (steps 1 and 2).
2. Response: among those that finished (``finish`` "stop" or missing) whose comparison-set scores
   have population variance Var = mean((s − s̄)²) > 0, the highest variance (ties → lower index).
   None → skipped before anything is generated, counted under the furthest stage any response
   reached: ``skipped_no_finished_response``, ``skipped_few_valid_judgements`` (< 2 usable),
   ``skipped_no_disagreement`` (Var = 0), ``skipped_too_long`` (Var > 0 only with judgements
   that do not fit).
3. Every pair of the comparison set goes to the meta-judge in BOTH orders
   (``resources/templates/meta_judge.txt``), scores stripped; the answer is parsed with
   ``winner_regex`` (default ``Winner: Judgement A|B``, "Judgment" accepted; no match → a parse
   failure, counted). Winning both orders wins the pair; anything else is a tie, half a win each.
   ``mode: expected`` (models too small to keep the format) uses one forward pass: after
   ``expected_prefix`` (default "Winner: Judgement ", or "Winner: Judgment " when the template
   only spells it so: :func:`default_expected_prefix`) P("A"), P("B") renormalised give
   p_AB = P(first shown wins); x beats y with q = (p_AB(x first) + 1 − p_AB(y first)) / 2, entered
   as q for x over y and 1 − q for y over x (``valid_mass`` = P("A") + P("B") is reported).
4. Elo from the win matrix (:func:`elo_from_wins`); the meta pair is (judge prompt, best-Elo
   judgement) vs (judge prompt, worst-Elo judgement), original unstripped texts. Dropped
   (counted): an Elo tie (``dropped_elo_tie``), equal numeric scores (``dropped_equal_scores``).
5. Margin: ``chosen_score``/``rejected_score`` = θ = (Elo − 1000)/400 of the two judgements
   (:func:`elo_theta`), so a reward-aware loss's g = judge_scale × (chosen_score − rejected_score)
   is always > 0. The judgements' own scores are ``meta.chosen_judgement_score`` /
   ``meta.rejected_judgement_score``.
6. Balance over the call (:func:`balance_by_chosen_score`, classes = the chosen judgement's
   score): no class above max(``max_class_frac``, 1/k) of the kept pairs.

Randomness comes only from ``seed``: the sampling (one generator per (seed, comparison key)) and
the balancing shuffle. Statistics: the base judge's (``judgements``/``parse_failures`` count
meta-judge verdicts; ``score_histogram`` = chosen judgements' scores), ``elo_gap_mean`` (kept
pairs), the counts above, ``judged_prompts``, ``meta_pairs_before_balance``, ``dropped_balance``,
``meta_pairs``. Output: ``{"id", "prompt", "chosen", "rejected", "chosen_score",
"rejected_score", "meta": {"kind": "meta_judge", "score_kind": "elo_theta", ...}}``; indices in
``meta`` are positions in the response's original ``judgements`` list.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable
from itertools import combinations
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from selfalign.data.chat import encode_prompt_completion
from selfalign.errors import ConfigError
from selfalign.judges.base import Judge, JudgeConfig, check_regex, register_judge, response_text
from selfalign.judges.rubric import DEFAULT_SCORE_REGEX
from selfalign.judges.templates import fill_template, load_template, prompt_text, render_user_turn
from selfalign.models.load import load_judge_lm
from selfalign.models.scoring import answer_logprobs

DEFAULT_WINNER_REGEX = r"Winner:\s*\**\s*Judge?ment\s*\**\s*([AB])\b"  # "Judgement" or "Judgment"


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


def elo_theta(elo: float) -> float:
    """Bradley-Terry logit of an Elo rating: θ = (Elo − 1000) / 400; P(i beats j) = σ(θ_i − θ_j)."""
    return (float(elo) - 1000.0) / 400.0


def strip_score(text: str, regex: str | re.Pattern = DEFAULT_SCORE_REGEX) -> str:
    """``text`` with every score statement matched by ``regex`` removed (case-insensitive)."""
    rx = regex if isinstance(regex, re.Pattern) else re.compile(regex, re.IGNORECASE)
    return rx.sub("", text).rstrip()


def parse_winner(text: str, regex: str | re.Pattern = DEFAULT_WINNER_REGEX) -> str | None:
    """"A" or "B": group 1 of the first match of ``regex`` (case-insensitive; the default matches
    ``Winner: Judgement A`` and ``Winner: Judgment A``); None when absent or not A/B."""
    rx = regex if isinstance(regex, re.Pattern) else re.compile(regex, re.IGNORECASE)
    m = rx.search(text)
    v = m.group(1).strip().upper() if m and m.group(1) else None
    return v if v in ("A", "B") else None


def default_expected_prefix(template: str) -> str:
    """The forced answer prefix of ``mode: expected``, spelled the way the meta template spells its
    verdict: ``"Winner: Judgment "`` when the template writes "Judgment A|B" and never
    "Judgement A|B", else ``"Winner: Judgement "`` (the shipped template's spelling)."""
    british = re.search(r"Judgement\s+[AB]\b", template)
    american = re.search(r"Judgment\s+[AB]\b", template)
    return "Winner: Judgment " if american and not british else "Winner: Judgement "


def both_order_outcome(first_order: str | None, second_order: str | None) -> int:
    """Outcome for judgements (x, y) asked as (A=x, B=y) then (A=y, B=x): 1 = x won both,
    2 = y won both, 0 = a tie (the orders disagree or an answer was unparsable)."""
    if first_order == "A" and second_order == "B":
        return 1
    if first_order == "B" and second_order == "A":
        return 2
    return 0


def judgement_problem(judgement: Any, include_unfinished: bool = False) -> str | None:
    """Why a main-judge judgement cannot enter the comparison set: ``"unparsed"`` (not a dict with
    a text and a finite numeric ``score``) or ``"unfinished"`` (``finish`` set and not "stop", unless
    ``include_unfinished``); None when it can."""
    if not isinstance(judgement, dict) or not isinstance(judgement.get("text"), str):
        return "unparsed"
    s = judgement.get("score")
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
        return "unparsed"
    if include_unfinished:
        return None
    return "unfinished" if judgement.get("finish") not in (None, "stop") else None


def score_variance(scores: list[float]) -> float:
    """Population variance Var = mean((s − mean s)²); 0 when the scores are all equal (exactly)."""
    if len(scores) < 2 or max(scores) == min(scores):
        return 0.0
    m = sum(scores) / len(scores)
    return sum((s - m) ** 2 for s in scores) / len(scores)


def balance_by_chosen_score(pairs: list[dict], max_frac: float = 0.4, seed: int = 0,
                            key: Callable[[dict], Any] | None = None) -> list[dict]:
    """Cap the share of every chosen-score class, dropping as few pairs as the rule allows.

    Classes: ``key(pair)`` (default ``pair["chosen_score"]``); k = the number of classes in
    ``pairs``; cap f = max(max_frac, 1/k) (with fewer than ⌈1/max_frac⌉ classes no subset meets
    max_frac, so the cap relaxes to an even split; one class keeps everything). Rule: while the
    largest class (ties → the class met first in input order) holds more than f × (pairs kept),
    drop one of its pairs at random (each class is shuffled once by ``random.Random(seed)``).
    As f ≥ 1/k the largest class never falls below the smallest, so all k classes survive and a
    non-empty input gives a non-empty output. Input order is kept.

    Example: classes {5: 6 pairs, 4: 2}, max_frac 0.4 → k = 2, f = 0.5 → 2 + 2 kept.
    """
    if not pairs:
        return []
    rng = random.Random(seed)
    groups: dict[Any, list[int]] = {}
    for k, p in enumerate(pairs):
        groups.setdefault(key(p) if key else p.get("chosen_score"), []).append(k)
    for idx in groups.values():
        rng.shuffle(idx)
    cap = max(max_frac, 1.0 / len(groups))
    total = len(pairs)
    while True:
        idx = max(groups.values(), key=len)
        if len(idx) <= cap * total + 1e-9:
            break
        idx.pop()
        total -= 1
    return [pairs[k] for k in sorted(k for v in groups.values() for k in v)]


class MetaJudgeConfig(JudgeConfig):
    """``judge.type=meta``: judge the judgements; output preference pairs for the judge role."""

    type: Literal["meta"] = "meta"
    model: str | None = Field(None, description="model spec; None = the model passed in (policy)")
    dtype: str = "float32"
    device: str | None = None
    template: str = Field("meta_judge", description="meta-judge template: {judge_prompt} {judgement_a} "
                                                    "{judgement_b}")
    judge_template: str = Field("rubric", description="the MAIN judge's template (shipped name or file)")
    score_regex: str = Field(DEFAULT_SCORE_REGEX, description="the MAIN judge's score regex")
    winner_regex: str = Field(DEFAULT_WINNER_REGEX, description="group 1 captures A or B")
    mode: Literal["generate", "expected"] = Field("generate", description="generate: parse a written "
                                                  "verdict; expected: P(A) vs P(B) after expected_prefix")
    expected_prefix: str | None = Field(None, description="None: spelled as the template spells it")
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = Field(0, description="seeds the meta-judge's sampling and the class balancing")
    batch_size: int = Field(16, ge=1)
    max_class_frac: float = Field(0.4, gt=0.0, le=1.0)
    max_length: int | None = Field(None, ge=2, description="the DPO trainer's max_length (tokens)")
    max_prompt_length: int | None = Field(None, ge=1, description="the DPO trainer's max_prompt_length")
    include_unfinished: bool = Field(False, description="also meta-judge responses and compare judgements cut "
                                     "at max_new_tokens (in rubric mode reasoned a cut justification still ends "
                                     "in the score read after a forced 'Score: ')")
    elo_regularization: float = Field(1.0, gt=0.0, description="inverse L2 strength C of the Elo fit")

    @field_validator("score_regex", "winner_regex")
    @classmethod
    def _regex(cls, v: str, info: ValidationInfo) -> str:
        group = "the number" if info.field_name == "score_regex" else "A or B"
        return check_regex(v, f"{info.field_name} (a group around {group})")


# record-level skip reasons, indexed by how far the record's best response got (see select_response)
_SKIPS = ("skipped_no_finished_response", "skipped_few_valid_judgements", "skipped_no_disagreement",
          "skipped_too_long")
_COUNTS = (*_SKIPS, "judged_prompts", "excluded_unparsed", "excluded_unfinished", "excluded_too_long",
           "dropped_elo_tie", "dropped_equal_scores", "meta_pairs_before_balance", "dropped_balance",
           "meta_pairs")

# texts -> generated answers; injectable for tests
GenerateFn = Callable[[list[str], list[str]], list[str]]
# (response index, judgement index) -> the judgement fits the length limits
FitsFn = Callable[[int, int], bool]
# (record, selected response index, comparison set: original judgement indices)
Case = tuple[dict, int, list[int]]
Job = tuple[int, int, int]  # (case, a, b): positions a < b in the case's comparison set


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
        self.expected_prefix = cfg.expected_prefix
        if self.expected_prefix is None:
            self.expected_prefix = default_expected_prefix(self.template)
        if cfg.mode == "expected" and [parse_winner(self.expected_prefix + c, self.winner_rx) for c in "AB"] \
                != ["A", "B"]:
            raise ConfigError(f"judge.expected_prefix {self.expected_prefix!r} + 'A'/'B' does not match "
                              f"judge.winner_regex {cfg.winner_regex!r}; make them agree")
        if (cfg.max_length is not None or cfg.max_prompt_length is not None) and tokenizer is None:
            raise ConfigError("judge.max_length / judge.max_prompt_length need the judge model's tokenizer "
                              "(set judge.model or pass the model and tokenizer)")
        self._generate_fn = generate_fn
        self.counts: Counter[str] = Counter({k: 0 for k in _COUNTS})

    @classmethod
    def from_config(cls, cfg: MetaJudgeConfig, *, model: Any = None, tokenizer: Any = None) -> MetaJudge:
        lm, tok = load_judge_lm(cfg.model, model, tokenizer, cfg.dtype, cfg.device)
        return cls(cfg, lm, tok)

    def stats(self) -> dict[str, Any]:
        out = self._stats.as_dict()
        out["score_histogram_of"] = "the chosen judgements' own scores (meta pairs kept)"
        out.setdefault("elo_gap_mean", None)
        out.update(dict(self.counts))
        return out

    def reset_stats(self) -> None:
        super().reset_stats()
        self.counts = Counter({k: 0 for k in _COUNTS})

    # ------------------------------------------------------------------------------------ pieces
    def judge_prompt(self, prompt: Any, response: Any) -> str:
        """The main judge's prompt for (prompt, response): ``judge_template`` filled as the rubric
        judge fills it."""
        return fill_template(self.judge_template, prompt=prompt_text(prompt), response=response_text(response))

    @staticmethod
    def select_response(record: dict, fits: FitsFn | None = None, include_unfinished: bool = False
                        ) -> tuple[int | None, list[int], str]:
        """(response index, comparison set, "") or (None, [], skip reason): module docstring
        steps 1-2; a judgement is usable without a :func:`judgement_problem` and when ``fits``
        (response index, judgement index) holds (None = no length limit)."""
        best, best_var, best_set, stage = None, 0.0, [], 0
        for j, r in enumerate(record.get("responses") or []):
            if not isinstance(r, dict) or (r.get("finish") not in (None, "stop") and not include_unfinished):
                continue
            stage = max(stage, 1)
            js = r.get("judgements") or []
            usable = [k for k, x in enumerate(js) if judgement_problem(x, include_unfinished) is None]
            if len(usable) < 2:
                continue
            stage = max(stage, 2)
            if score_variance([float(js[k]["score"]) for k in usable]) <= 0:
                continue
            stage = max(stage, 3)
            if fits is not None:
                usable = [k for k in usable if fits(j, k)]
            var = score_variance([float(js[k]["score"]) for k in usable])
            if var <= 0:
                continue
            stage = 4
            if var > best_var:
                best, best_var, best_set = j, var, usable
        return best, best_set, "" if best is not None else _SKIPS[stage]

    def _fits(self, rec: dict) -> FitsFn | None:
        """``fits(j, k)``: judgement k of response j meets ``max_length``/``max_prompt_length`` as
        the DPO trainer tokenises it (module docstring step 1); None when no limit is set."""
        cfg = self.cfg
        if cfg.max_length is None and cfg.max_prompt_length is None:
            return None
        prompts: dict[int, str] = {}

        def fits(j: int, k: int) -> bool:
            resp = rec["responses"][j]
            if j not in prompts:
                prompts[j] = self.judge_prompt(rec["prompt"], resp)
            p, c = encode_prompt_completion(self.tokenizer, prompts[j], resp["judgements"][k]["text"])
            return ((cfg.max_prompt_length is None or len(p) <= cfg.max_prompt_length)
                    and (cfg.max_length is None or len(p) + len(c) <= cfg.max_length))

        return fits

    def _generate(self, texts: list[str], keys: list[str]) -> list[str]:
        if self._generate_fn is not None:
            return self._generate_fn(texts, keys)
        if not texts:
            return []
        from selfalign.generation import EngineConfig, SamplingParams, build_engine
        from selfalign.utils.progress import Bar

        cfg = self.cfg
        engine = build_engine(EngineConfig(model="in-memory", batch_size=cfg.batch_size), model=self.model,
                              tokenizer=self.tokenizer)
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
        special = False
        contexts = []
        for t in texts:
            rendered, special = render_user_turn(self.tokenizer, t)
            contexts.append(rendered + self.expected_prefix)
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
        cases = self._select(records)
        texts, keys, jobs = self._comparisons(cases)
        wins = [np.zeros((len(comp), len(comp))) for _, _, comp in cases]
        if self.cfg.mode == "expected":
            self._expected_wins(texts, jobs, wins)
        else:
            self._generated_wins(texts, keys, jobs, wins)
        pairs = [p for case, w in zip(cases, wins, strict=True) if (p := self._pair(case, w)) is not None]
        return self._balance(pairs)

    def _select(self, records: list[dict]) -> list[Case]:
        """Steps 1-2 for every record; skips and excluded judgements are counted."""
        cases = []
        for rec in records:
            self._stats.records += 1
            j, comp, reason = self.select_response(rec, self._fits(rec), self.cfg.include_unfinished)
            if j is None:
                self.counts[reason] += 1
                continue
            for k, x in enumerate(rec["responses"][j]["judgements"]):
                if k not in comp:
                    self.counts[f"excluded_{judgement_problem(x, self.cfg.include_unfinished) or 'too_long'}"] += 1
            self.counts["judged_prompts"] += 1
            cases.append((rec, j, comp))
        return cases

    def _comparisons(self, cases: list[Case]) -> tuple[list[str], list[str], list[Job]]:
        """(texts, seeding keys, jobs): job k = (case, a, b), positions in the comparison set,
        asked as texts 2k (A = a) and 2k + 1 (A = b)."""
        texts: list[str] = []
        keys: list[str] = []
        jobs: list[Job] = []
        for c, (rec, j, comp) in enumerate(cases):
            resp = rec["responses"][j]
            jp = self.judge_prompt(rec["prompt"], resp)
            stripped = [strip_score(resp["judgements"][k]["text"], self.score_rx) for k in comp]
            for a, b in combinations(range(len(comp)), 2):
                jobs.append((c, a, b))
                for first, second, tag in ((a, b, "ab"), (b, a, "ba")):
                    texts.append(fill_template(self.template, judge_prompt=jp, judgement_a=stripped[first],
                                               judgement_b=stripped[second]))
                    keys.append(f"{rec.get('id', c)}\x1f{j}\x1f{comp[a]}\x1f{comp[b]}\x1f{tag}")
        return texts, keys, jobs

    def _expected_wins(self, texts: list[str], jobs: list[Job], wins: list[np.ndarray]) -> None:
        p_first = self._first_wins_prob(texts) if texts else []
        for k, (c, a, b) in enumerate(jobs):
            q = 0.5 * (p_first[2 * k] + 1.0 - p_first[2 * k + 1])
            wins[c][a, b] += q
            wins[c][b, a] += 1.0 - q
            self._stats.add_comparison(1 if q > 0.5 else 2 if q < 0.5 else 0)

    def _generated_wins(self, texts: list[str], keys: list[str], jobs: list[Job],
                        wins: list[np.ndarray]) -> None:
        answers = self._generate(texts, keys)
        for k, (c, a, b) in enumerate(jobs):
            w1 = parse_winner(answers[2 * k], self.winner_rx)
            w2 = parse_winner(answers[2 * k + 1], self.winner_rx)
            self._stats.add_judgement(w1 is not None)
            self._stats.add_judgement(w2 is not None)
            outcome = both_order_outcome(w1, w2)
            self._stats.add_comparison(outcome)
            x_wins = {1: 1.0, 2: 0.0}.get(outcome, 0.5)  # a tie is half a win for each side
            wins[c][a, b] += x_wins
            wins[c][b, a] += 1.0 - x_wins

    def _pair(self, case: Case, win: np.ndarray) -> dict | None:
        """Steps 4-5: the best- vs worst-Elo judgement, or None (counted)."""
        rec, j, comp = case
        elo = elo_from_wins(win, C=self.cfg.elo_regularization)
        best, worst = int(np.argmax(elo)), int(np.argmin(elo))
        if np.isclose(elo[best], elo[worst], rtol=0.0, atol=1e-6):
            self.counts["dropped_elo_tie"] += 1
            return None
        js = rec["responses"][j]["judgements"]
        kb, kw = comp[best], comp[worst]
        sb, sw = float(js[kb]["score"]), float(js[kw]["score"])
        if sb == sw:
            self.counts["dropped_equal_scores"] += 1
            return None
        return {
            "id": f"{rec.get('id')}:meta",
            "prompt": self.judge_prompt(rec["prompt"], rec["responses"][j]),
            "chosen": js[kb]["text"], "rejected": js[kw]["text"],
            "chosen_score": elo_theta(elo[best]), "rejected_score": elo_theta(elo[worst]),
            "meta": {"kind": "meta_judge", "source_id": rec.get("id"), "response_index": j,
                     "judgement_indices": [kb, kw], "score_kind": "elo_theta",
                     "chosen_judgement_score": sb, "rejected_judgement_score": sw,
                     "chosen_elo": float(elo[best]), "rejected_elo": float(elo[worst]),
                     "elo": {str(comp[p]): float(e) for p, e in enumerate(elo)}},
        }

    def _balance(self, pairs: list[dict]) -> list[dict]:
        """Step 6 over all records of the call, then the statistics of the kept pairs."""
        kept = balance_by_chosen_score(pairs, self.cfg.max_class_frac, self.cfg.seed,
                                       key=lambda p: p["meta"]["chosen_judgement_score"])
        self.counts["meta_pairs_before_balance"] += len(pairs)
        self.counts["dropped_balance"] += len(pairs) - len(kept)
        self.counts["meta_pairs"] += len(kept)
        for p in kept:
            self._stats.add_response(p["meta"]["chosen_judgement_score"])
            # how decisive the meta-judge was: a gap near 0 means a near-tie (weak training signal)
            self._stats.observe("elo_gap", p["meta"]["chosen_elo"] - p["meta"]["rejected_elo"])
        return kept
