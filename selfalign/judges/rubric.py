"""LLM-as-a-judge with the additive 5-point rubric (Self-Rewarding LMs, arXiv 2401.10020).

The judge model (often the policy itself) reads a template filled with the prompt and one
response (``resources/templates/rubric.txt`` by default; any file with ``{prompt}`` and
``{response}`` works) and answers. Two modes:

* ``sample`` — the judge writes ``num_evals`` justifications (sampled); each is parsed with
  ``score_regex`` (default case-insensitive ``(?:Score|Points): ([0-9.]+)``): the first match whose
  number lies in [low, high] is the score, no such match → a parse failure (score None). The
  response's score is the mean of the valid scores and ``score_var`` their population variance;
  no valid score → ``score=None``, which never becomes a training label.
* ``expected`` — one forward pass over (judge prompt + the assistant prefix ``"Score: "``); the score
  is the probability-weighted mean over the value tokens "0".."5" renormalised over those tokens:
  score = Σ_v v·p(v) / Σ_v p(v). Continuous, never a parse failure. ``valid_mass`` = Σ_v p(v) (the
  probability the judge put on a valid score token) is stored and reported (mean);
  ``score_var`` = Σ_v p(v)(v − score)² / Σ_v p(v), the spread of the judge's own distribution.
* ``reasoned`` — for models too small to keep the answer format (SmolLM2-135M never writes
  "Score: n" on its own): the judge writes ``num_evals`` sampled justifications, each stopped at
  ``Score:``; then each justification is followed by ``"\n" + expected_prefix`` and the score is the
  value token the judge ranks highest, argmax_v p(v). A parse failure (score None, counted) is a
  judgement whose most likely next token over the whole vocabulary is not a value token. The
  judgement text is ``justification + "\n" + expected_prefix + score`` — what a judge that keeps the
  format would have written — so the meta-judge and DPO on judge pairs see well-formed judgements.
  Mean and ``score_var`` over the valid judgements as in ``sample`` mode.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from selfalign.generation import EngineConfig, SamplingParams, build_engine
from selfalign.judges.base import (
    Judge,
    JudgeConfig,
    check_regex,
    register_judge,
    response_text,
    with_scores,
)
from selfalign.judges.templates import fill_template, load_template, prompt_text, render_user_turn
from selfalign.models.load import load_judge_lm
from selfalign.models.scoring import answer_logprobs

DEFAULT_SCORE_REGEX = r"(?:Score|Points): ([0-9.]+)"


class RubricJudgeConfig(JudgeConfig):
    """``judge.type=rubric``: an LLM grades each response with an additive point rubric."""

    type: Literal["rubric"] = "rubric"
    model: str | None = Field(None, description="judge model spec; None = the model passed in (policy)")
    dtype: str = "float32"
    device: str | None = None
    mode: Literal["sample", "expected", "reasoned"] = "sample"
    template: str = Field("rubric", description="shipped template name or a file with {prompt} {response}")
    num_evals: int = Field(3, ge=1, description="sampled judgements per response (sample, reasoned)")
    score_regex: str = DEFAULT_SCORE_REGEX
    low: float = 0.0
    high: float = 5.0
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0
    batch_size: int = Field(16, ge=1, description="sequences per generate call / forward pass")
    expected_prefix: str = Field("Score: ", description="assistant prefix before the score token")
    expected_values: list[int] | None = Field(None, description="score tokens (default: integers in [low, high])")

    @field_validator("score_regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        return check_regex(v, "the score regex (a group around the number)")

    @model_validator(mode="after")
    def _range(self) -> RubricJudgeConfig:
        if self.high <= self.low:
            raise ValueError("high must be greater than low")
        return self

    def values(self) -> list[int]:
        if self.expected_values:
            return list(self.expected_values)
        return list(range(math.ceil(self.low), math.floor(self.high) + 1))


def parse_score(text: str, regex: str | re.Pattern = DEFAULT_SCORE_REGEX, low: float = 0.0,
                high: float = 5.0) -> float | None:
    """The first number captured by ``regex`` (case-insensitive) that parses and lies in
    [low, high]; None when there is none."""
    rx = regex if isinstance(regex, re.Pattern) else re.compile(regex, re.IGNORECASE)
    for m in rx.finditer(text):
        try:
            v = float(m.group(1))
        except (TypeError, ValueError):
            continue
        if math.isfinite(v) and low <= v <= high:
            return v
    return None


def expected_score(logprobs: Any, values: list[int]) -> tuple[float, float, float, dict[str, float]]:
    """(score, valid_mass, variance, probs) from next-token log-probs of the value tokens.

    score = Σ v·p(v) / Σ p(v); valid_mass = Σ p(v); variance of v under p renormalised.
    """
    probs = [math.exp(float(lp)) for lp in logprobs]
    mass = sum(probs)
    if mass <= 0:
        return float("nan"), 0.0, float("nan"), {}
    score = sum(v * p for v, p in zip(values, probs)) / mass
    var = sum(p * (v - score) ** 2 for v, p in zip(values, probs)) / mass
    return score, mass, var, {str(v): p for v, p in zip(values, probs)}


@register_judge("rubric", RubricJudgeConfig)
class RubricJudge(Judge):
    """Grades every response of every record with the rubric (see the module docstring)."""

    def __init__(self, cfg: RubricJudgeConfig, model: Any = None, tokenizer: Any = None,
                 generate_fn: Callable[[list[str], list[str]], list[list[str]]] | None = None):
        """``generate_fn(judge_prompts, keys) -> num_evals texts per prompt`` replaces the model's
        sampling in ``sample`` mode (tests, or an external engine)."""
        super().__init__(cfg)
        self._generate_fn = generate_fn
        self.cfg: RubricJudgeConfig = cfg
        self.model, self.tokenizer = model, tokenizer
        self.template = load_template(cfg.template, ("{prompt}", "{response}"))
        self.regex = re.compile(cfg.score_regex, re.IGNORECASE)
        self._stats.score_range = (cfg.low, cfg.high)

    @classmethod
    def from_config(cls, cfg: RubricJudgeConfig, *, model: Any = None, tokenizer: Any = None) -> RubricJudge:
        lm, tok = load_judge_lm(cfg.model, model, tokenizer, cfg.dtype, cfg.device)
        return cls(cfg, lm, tok)

    def judge_prompt(self, prompt: Any, response: Any) -> str:
        """The filled template for one (prompt, response)."""
        return fill_template(self.template, prompt=prompt_text(prompt), response=response_text(response))

    def score_records(self, records: list[dict]) -> list[dict]:
        items = [(ri, j) for ri, rec in enumerate(records) for j in range(len(rec.get("responses", [])))]
        texts = [self.judge_prompt(records[ri]["prompt"], records[ri]["responses"][j]) for ri, j in items]
        keys = [f"{records[ri].get('id', ri)}\x1f{j}" for ri, j in items]
        if self.cfg.mode == "sample":
            judged = self._parse_samples(self._sample(texts, keys))
        elif self.cfg.mode == "reasoned":
            judged = self._reasoned(texts, keys)
        else:
            judged = self._expected(texts)
        per_record: list[list[list[dict]]] = [[[] for _ in rec.get("responses", [])] for rec in records]
        for (ri, j), js in zip(items, judged, strict=True):
            per_record[ri][j] = js
        out = [with_scores(rec, per_record[ri], self._stats) for ri, rec in enumerate(records)]
        if self.cfg.mode == "expected":  # one judgement: keep the spread of its score distribution
            for rec in out:
                for r in rec["responses"]:
                    r["score_var"] = r["judgements"][0]["dist_var"] if r["judgements"] else None
        return out

    # ------------------------------------------------------------------------------------ sample
    def _sample(self, texts: list[str], keys: list[str], stop: list[str] | None = None) -> list[list[dict]]:
        """``num_evals`` sampled judge answers per text: ``[{"text", "finish"}]`` lists."""
        from selfalign.utils.progress import Bar

        cfg = self.cfg
        if self._generate_fn is not None:
            return [[{"text": t, "finish": "stop"} for t in samples] for samples in self._generate_fn(texts, keys)]
        engine = build_engine(EngineConfig(model="in-memory", batch_size=cfg.batch_size),
                              model=self.model, tokenizer=self.tokenizer)
        params = SamplingParams(num_samples=cfg.num_evals, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, stop=stop or [])
        with Bar(f"judging ({self.name}, sample)", total=len(texts), unit="response") as bar:
            last = [0]

            def progress(done: int, _tokens: int) -> None:
                bar.advance(done - last[0])
                last[0] = done

            return engine.generate(texts, params, keys=keys, on_progress=progress)

    def _parse_samples(self, outs: list[list[dict]]) -> list[list[dict]]:
        cfg = self.cfg
        judged = []
        for samples in outs:
            js = []
            for s in samples:
                score = parse_score(s["text"], self.regex, cfg.low, cfg.high)
                self._stats.add_judgement(score is not None)
                js.append({"text": s["text"], "score": score, "finish": s["finish"]})
            judged.append(js)
        return judged

    # ---------------------------------------------------------------------------------- reasoned
    def _reasoned(self, texts: list[str], keys: list[str]) -> list[list[dict]]:
        cfg = self.cfg
        values = cfg.values()
        samples = self._sample(texts, keys, stop=["Score:"])
        flat = [(i, s["text"].rstrip(), s.get("finish")) for i, ss in enumerate(samples) for s in ss]
        if not flat:
            return [[] for _ in texts]
        logp = self._score_logprobs([texts[i] for i, _, _ in flat], [f"{j}\n" for _, j, _ in flat],
                                    "reasoned", with_top=True)
        judged: list[list[dict]] = [[] for _ in texts]
        for (i, just, finish), row in zip(flat, logp.tolist(), strict=True):
            lp, top = row[:-1], row[-1]
            best = max(range(len(values)), key=lambda k: lp[k])
            ok = lp[best] >= top - 1e-6  # the judge's own first choice is a score token
            self._stats.add_judgement(ok)
            self._stats.observe("valid_mass", sum(math.exp(x) for x in lp))
            score = float(values[best]) if ok else None
            text = f"{just}\n{cfg.expected_prefix}{values[best]}" if ok else just
            judged[i].append({"text": text, "score": score, "finish": finish})
        return judged

    def _score_logprobs(self, texts: list[str], continuations: list[str], label: str,
                        with_top: bool = False):
        """Next-token log-probs of the value tokens after user turn ``texts[i]`` answered with
        ``continuations[i] + expected_prefix`` (one forward pass each)."""
        cfg = self.cfg
        contexts = []
        special = False
        for t, c in zip(texts, continuations, strict=True):
            rendered, special = render_user_turn(self.tokenizer, t)
            contexts.append(rendered + c + cfg.expected_prefix)
        return answer_logprobs(self.model, self.tokenizer, contexts, [str(v) for v in cfg.values()],
                               batch_size=cfg.batch_size, add_special_tokens=special,
                               label=f"judging ({self.name}, {label})", with_top=with_top)

    # ---------------------------------------------------------------------------------- expected
    def _expected(self, texts: list[str]) -> list[list[dict]]:
        cfg = self.cfg
        values = cfg.values()
        if not texts:
            return []
        logp = self._score_logprobs(texts, [""] * len(texts), "expected")
        judged = []
        for row in logp.tolist():
            score, mass, var, probs = expected_score(row, values)
            ok = math.isfinite(score)
            self._stats.add_judgement(ok)
            self._stats.observe("valid_mass", mass)
            judged.append([{"score": score if ok else None, "valid_mass": mass, "probs": probs,
                            "dist_var": var if ok else None}])
        return judged

