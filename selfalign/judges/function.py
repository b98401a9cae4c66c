"""Judge type ``function``: score responses with Python code instead of a model.

Two kinds of scorer:

* ``function: verifiable`` (the default) — the built-in verifiable-instruction scorer: runs the
  prompt's ``meta.checks`` / ``meta.answer`` (:mod:`selfalign.checks`). ``mode: fraction``
  scores the fraction of checks passed, ``mode: all`` scores 1 if every check passes else 0. A
  prompt without checks gets ``None`` (not applicable).
* ``function: "package.module:name"`` (or ``"path/to/file.py:name"``) — a callable
  ``name(prompt, response, meta) -> float | None`` imported by name (never ``eval``-ed); ``prompt``
  is the prompt string or message list, ``response`` the response text, ``meta`` the record's meta.
  ``None`` means "no score" (it never becomes a label).
* a **TRL-style reward function** ``name(completions, **kwargs) -> list[float]`` (as TRL's GRPO
  trainer calls its ``reward_funcs``): recognised by its signature (its first parameter, or a
  keyword parameter, is named ``completions``) and called **once per batch** of all responses with
  ``prompts=`` and ``completions=`` lists (one entry per response; a conversational prompt gives
  ``[{"role": "assistant", "content": text}]`` completions, as TRL does) plus each ``meta`` key as
  a list keyword (``None`` where a record lacks it). It must return one number (or None) per
  completion. Keywords the function does not accept are left out unless it takes ``**kwargs``.

Optionally the function score is **combined** with another judge's score (e.g. the policy's own
rubric score plus the check score)::

    judge:
      type: function
      function: verifiable
      combine: {with: {type: rubric, ...}, weight: 1.0, self_weight: 2.0}

The other judge scores the records first; each response's score becomes
``weight · other + self_weight · function`` (see :func:`combine_scores`). A response the other
judge could not score stays ``None``; a response whose function score is ``None`` (e.g. a prompt
with no checks) keeps ``weight · other`` unless ``combine.required`` is set.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from selfalign.checks import has_checks, run_checks
from selfalign.config import StrictModel
from selfalign.errors import ConfigError, DataError, SelfalignError
from selfalign.judges.base import (
    Judge,
    JudgeConfig,
    build_judge,
    parse_judge_config,
    register_judge,
    response_text,
    with_scores,
)
from selfalign.judges.stats import JudgeStats

ScoreFn = Callable[[Any, str, dict], "float | None"]


# ----------------------------------------------------------------------------------------- config
class CombineConfig(StrictModel):
    """Sum this judge's score with another judge's: ``weight · other + self_weight · function``."""

    with_: dict = Field(alias="with", description="config of the other judge (a mapping with 'type')")
    weight: float = 1.0
    self_weight: float = 1.0
    required: bool = False  # True: a None function score makes the combined score None

    model_config = {**StrictModel.model_config, "populate_by_name": True}

    @field_validator("with_")
    @classmethod
    def _valid_judge(cls, v: dict) -> dict:
        if not isinstance(v, dict) or not v.get("type"):
            raise ValueError("must be a judge config mapping with a 'type'")
        if v.get("type") == "function" and v.get("combine"):
            raise ValueError("a combined judge cannot itself combine (nest at most once)")
        try:  # a ConfigError is not wrapped by pydantic: it reaches the user as is
            parse_judge_config(v, key="judge.combine.with")
        except ConfigError as e:
            raise ConfigError(str(e).replace("judge.type: ", "judge.combine.with.type: ")) from None
        return v


class FunctionJudgeConfig(JudgeConfig):
    """Options of the ``function`` judge (see the module docstring)."""

    type: Literal["function"] = "function"
    function: str = "verifiable"
    mode: Literal["fraction", "all"] = "fraction"  # for the built-in verifiable scorer
    combine: CombineConfig | None = None


# -------------------------------------------------------------------------------------- scorers
def verifiable_score(prompt: Any, response: str, meta: dict | None, mode: str = "fraction") -> float | None:
    """Built-in scorer: fraction of the prompt's checks passed (``mode="all"``: 1.0 if all pass else
    0.0); None when the prompt carries no checks."""
    if not has_checks(meta):
        return None
    res = run_checks(response, meta)
    if mode == "all":
        return 1.0 if res.passed_all else 0.0
    return res.fraction


def load_callable(spec: str) -> ScoreFn:
    """Import ``"package.module:function"`` or ``"path/to/file.py:function"`` (no eval)."""
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise ConfigError(f"judge.function: expected 'module:function' or 'verifiable', got {spec!r}")
    mod_name, _, attr = spec.rpartition(":")
    if not mod_name or not attr.isidentifier():
        raise ConfigError(f"judge.function: expected 'module:function', got {spec!r}")
    if mod_name.endswith(".py"):
        path = Path(mod_name)
        if not path.is_file():
            raise ConfigError(f"judge.function: no such file {path}")
        name = f"selfalign_user_{path.stem}_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(name)
        if module is None:
            file_spec = importlib.util.spec_from_file_location(name, path)
            if file_spec is None or file_spec.loader is None:
                raise ConfigError(f"judge.function: cannot import {path}")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[name] = module
            file_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(mod_name)
        except ImportError as e:
            raise ConfigError(f"judge.function: cannot import module {mod_name!r}: {e}") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ConfigError(f"judge.function: module {mod_name!r} has no callable {attr!r}")
    return fn


def _as_score(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if hasattr(value, "item"):  # numpy / torch scalars
        return _as_score(value.item(), where)
    raise DataError(f"scorer returned {type(value).__name__} {value!r}; expected a number or None", key=where)


def is_trl_reward(fn: Callable) -> bool:
    """True for a TRL-style reward function ``fn(completions, **kwargs) -> list[float]``: its first
    parameter, or a keyword-only parameter, is named ``completions``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if params and params[0].name == "completions":
        return True
    return any(p.name == "completions" and p.kind is p.KEYWORD_ONLY for p in params)


def _trl_kwargs(fn: Callable, prompts: list, completions: list, metas: list[dict]) -> dict[str, Any]:
    """The keyword arguments of one TRL-style call: prompts, completions, and each meta key as a list."""
    kwargs: dict[str, Any] = {"prompts": prompts, "completions": completions}
    keys = dict.fromkeys(k for m in metas for k in m if k not in kwargs)
    kwargs.update({k: [m.get(k) for m in metas] for k in keys})
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params}


def trl_reward_scores(fn: Callable, name: str, records: Sequence[dict]) -> list[list[float | None]]:
    """Call a TRL-style reward function once over every response of ``records``; per record, one
    score per response (see the module docstring)."""
    prompts, completions, metas, counts = [], [], [], []
    for rec in records:
        resps = rec.get("responses")
        if not isinstance(resps, list):
            raise DataError(f"record {rec.get('id')!r} has no 'responses' list", key="responses")
        prompt, meta = rec.get("prompt"), rec.get("meta") or {}
        for r in resps:
            text = response_text(r)
            prompts.append(prompt)
            completions.append([{"role": "assistant", "content": text}] if isinstance(prompt, list) else text)
            metas.append(meta if isinstance(meta, dict) else {})
        counts.append(len(resps))
    try:
        values = fn(**_trl_kwargs(fn, prompts, completions, metas))
    except SelfalignError:
        raise
    except Exception as e:
        raise SelfalignError(f"judge function {name} failed: {type(e).__name__}: {e}") from e
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or len(values) != len(completions):
        got = len(values) if isinstance(values, Sequence) else type(values).__name__
        raise DataError(f"a TRL-style reward function must return one score per completion: expected "
                        f"{len(completions)}, got {got}", key=name)
    scores = [_as_score(v, f"{name} completion {i}") for i, v in enumerate(values)]
    out, k = [], 0
    for n in counts:
        out.append(scores[k:k + n])
        k += n
    return out


# ---------------------------------------------------------------------------------------- combine
def combine_scores(records_a: Sequence[dict], records_b: Sequence[dict],
                   weights: Sequence[float] = (1.0, 1.0), *, optional_b: bool = True,
                   names: Sequence[str] = ("a", "b")) -> list[dict]:
    """Weighted sum of two judges' scores on the same candidates: ``w_a · score_a + w_b · score_b``.

    Records are matched by ``id`` (each id once) and responses by position; the texts must agree.
    A None ``score_a`` gives None. A None ``score_b`` gives ``w_a · score_a`` when ``optional_b``
    (e.g. B = checks and the prompt has none), else None. ``score_var`` of the sum assumes
    independent judges: ``w_a² var_a + w_b² var_b`` (a missing var counts as 0). Each response keeps
    A's ``judgements`` and gains ``"components": {name_a: score_a, name_b: score_b}``. Returns new
    records in A's order.
    """
    if len(weights) != 2:
        raise ConfigError(f"combine: need two weights, got {list(weights)}")
    wa, wb = (float(w) for w in weights)
    by_id: dict[Any, dict] = {}
    for rec in records_b:
        if rec.get("id") in by_id:
            raise DataError(f"duplicate id {rec.get('id')!r} in the records to combine", key="id")
        by_id[rec.get("id")] = rec
    out = []
    for rec in records_a:
        other = by_id.get(rec.get("id"))
        if other is None:
            raise DataError(f"record {rec.get('id')!r} has no scores from {names[1]}", key="id")
        ra, rb = rec.get("responses") or [], other.get("responses") or []
        if len(ra) != len(rb):
            raise DataError(f"record {rec.get('id')!r}: {len(ra)} vs {len(rb)} responses", key="responses")
        new_resps = []
        for i, (x, y) in enumerate(zip(ra, rb)):
            if response_text(x) != response_text(y):
                raise DataError(f"record {rec.get('id')!r}: response {i} differs between the two judges",
                                key="responses")
            sa, sb = x.get("score"), y.get("score")
            if sa is None or (sb is None and not optional_b):
                score = None
            else:
                score = wa * float(sa) + (wb * float(sb) if sb is not None else 0.0)
            var = None
            if score is not None:
                va = x.get("score_var") or 0.0
                vb = (y.get("score_var") or 0.0) if sb is not None else 0.0
                var = wa * wa * float(va) + wb * wb * float(vb)
            r = dict(x)
            r["score"], r["score_var"] = score, var
            r["components"] = {names[0]: sa, names[1]: sb}
            new_resps.append(r)
        new = dict(rec)
        new["responses"] = new_resps
        out.append(new)
    return out


# ------------------------------------------------------------------------------------------ judge
@register_judge("function", FunctionJudgeConfig)
class FunctionJudge(Judge):
    """Scores each response with a Python function (built-in ``verifiable`` or ``module:function``)."""

    def __init__(self, cfg: FunctionJudgeConfig, other: Judge | None = None):
        super().__init__(cfg)
        self.cfg: FunctionJudgeConfig = cfg
        self._fn: ScoreFn | None = None
        if cfg.function != "verifiable":
            self._fn = load_callable(cfg.function)
        self.other = other
        if cfg.combine is not None and other is None:
            self.other = build_judge(cfg.combine.with_)
        fn_range = (0.0, 1.0) if cfg.function == "verifiable" else None
        self._fn_stats = JudgeStats(self.name if self.other is None else f"{self.name}:{cfg.function}", fn_range)

    @classmethod
    def from_config(cls, cfg: JudgeConfig, *, model: Any = None, tokenizer: Any = None) -> FunctionJudge:
        assert isinstance(cfg, FunctionJudgeConfig)
        other = None
        if cfg.combine is not None:  # the other judge may use the caller's loaded model (self-judging)
            other = build_judge(cfg.combine.with_, model=model, tokenizer=tokenizer)
        return cls(cfg, other)

    def _score_one(self, rec: dict, i: int, text: str) -> dict:
        meta = rec.get("meta") or {}
        where = f"record {rec.get('id')!r} response {i}"
        judgement: dict[str, Any] = {}
        if self.cfg.function == "verifiable":
            if not has_checks(meta):
                return {"score": None, "applicable": False}
            try:
                res = run_checks(text, meta)
            except DataError as e:
                raise DataError(f"record {rec.get('id')!r}: {e.reason}", key=e.key) from None
            score: float | None = (1.0 if res.passed_all else 0.0) if self.cfg.mode == "all" else res.fraction
            judgement["checks"] = [[t, ok] for t, ok in res.results]
            judgement["passed_all"] = res.passed_all
            for t, ok in res.results:
                self._fn_stats.observe(f"pass_{t}", float(ok))
            self._fn_stats.observe("pass_all", float(res.passed_all))
        else:
            assert self._fn is not None
            try:
                value = self._fn(rec.get("prompt"), text, meta)
            except SelfalignError:
                raise
            except Exception as e:
                raise SelfalignError(f"judge function {self.cfg.function} failed on {where}: "
                                     f"{type(e).__name__}: {e}") from e
            score = _as_score(value, f"{self.cfg.function} on {where}")
        self._fn_stats.add_judgement(score is not None)
        return {"score": score, **judgement}

    def _function_scores(self, records: list[dict]) -> list[dict]:
        if self._fn is not None and is_trl_reward(self._fn):
            batch = trl_reward_scores(self._fn, self.cfg.function, records)
            out = []
            for rec, scores in zip(records, batch, strict=True):
                for sc in scores:
                    self._fn_stats.add_judgement(sc is not None)
                out.append(with_scores(rec, [[{"score": sc}] for sc in scores], self._fn_stats))
            return out
        out = []
        for rec in records:
            if not isinstance(rec.get("responses"), list):
                raise DataError(f"record {rec.get('id')!r} has no 'responses' list", key="responses")
            judgements = [[self._score_one(rec, i, response_text(r))] for i, r in enumerate(rec["responses"])]
            out.append(with_scores(rec, judgements, self._fn_stats))
        return out

    def score_records(self, records: list[dict]) -> list[dict]:
        """Score every response; with ``combine``, also run the other judge and sum the scores."""
        scored = self._function_scores(records)
        if self.other is None:
            return scored
        comb = self.cfg.combine
        assert comb is not None
        other_scored = self.other.score_records(records)
        combined = combine_scores(other_scored, scored, (comb.weight, comb.self_weight),
                                  optional_b=not comb.required, names=(self.other.name, self.cfg.function))
        for rec in combined:
            for r in rec["responses"]:
                self._stats.add_response(r["score"])
            self._stats.add_record_scores([r["score"] for r in rec["responses"]])
        return combined

    def stats(self) -> dict[str, Any]:
        """Function-score statistics; with ``combine`` the combined scores' statistics plus
        ``function`` and ``other`` sub-dicts."""
        if self.other is None:
            return self._fn_stats.as_dict()
        out = self._stats.as_dict()
        out["function"] = self._fn_stats.as_dict()
        out["other"] = self.other.stats()
        return out

    def reset_stats(self) -> None:
        super().reset_stats()
        self._fn_stats = JudgeStats(self._fn_stats.judge, self._fn_stats.score_range)
        if self.other is not None:
            self.other.reset_stats()
