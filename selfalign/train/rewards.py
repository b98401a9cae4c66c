"""Reward sources for PPO: a reward-model folder, any pointwise judge, or a Python/verifiable function,
summed with weights (:class:`~selfalign.train.config.RewardSourceConfig`).

A source scores a batch of ``(prompt record, response text)`` and returns one float per response.
Every failure names the source's config key (``rewards.1``) and, when it comes from a file, the file:

* a reward-model folder without a scalar head (a causal LM, or a classifier with several labels);
* a function that cannot be imported, raises, or returns NaN / infinity / a non-number;
* a missing score (``None``: a judge could not parse its answer, a prompt without checks) when the
  source has no ``none_score``.

:func:`probe_rewards` scores one prompt with an empty response before any rollout, so these errors
appear before the first generation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from selfalign.checks import has_checks
from selfalign.errors import ConfigError, SelfalignError
from selfalign.train.config import RewardSourceConfig


def applicability(sources: Sequence[RewardSourceConfig]) -> Callable[[dict], str | None]:
    """``fn(prompt_record) -> None`` when every source can score the prompt, else the key of the first
    source that cannot (a ``verifiable`` function without ``none_score`` on a prompt without
    ``meta.checks``/``meta.answer``). Needs no model: used while the prompts are read."""
    strict = [i for i, s in enumerate(sources)
              if s.type == "function" and s.function == "verifiable" and s.none_score is None]

    def check(record: dict) -> str | None:
        if strict and not has_checks(record.get("meta")):
            return f"rewards.{strict[0]}"
        return None

    return check


class RewardSource:
    """One configured source: ``score(records, texts) -> list[float]`` (missing scores resolved)."""

    def __init__(self, cfg: RewardSourceConfig, key: str, scorer: Callable[[list[dict], list[str]], list]):
        self.cfg, self.key, self._scorer = cfg, key, scorer
        self.name = cfg.label
        self.missing = 0  # scores replaced by none_score so far

    def score(self, records: list[dict], texts: list[str], allow_none: bool = False) -> list[float]:
        """One score per response; a missing score becomes ``none_score`` (or, with ``allow_none``, 0)."""
        try:
            raw = self._scorer(records, texts)
        except SelfalignError as e:
            raise type(e)(f"{self.key} ({self.name}): {e}") from None
        except Exception as e:  # a user function's own bug
            raise SelfalignError(f"{self.key} ({self.name}) raised {type(e).__name__}: {e}") from e
        if len(raw) != len(records):
            raise SelfalignError(f"{self.key} ({self.name}): {len(raw)} scores for {len(records)} responses")
        return [self._check(rec, v, allow_none) for rec, v in zip(records, raw, strict=True)]

    def _check(self, rec: dict, v: Any, allow_none: bool) -> float:
        where = f"{self.key} ({self.name}) on prompt {rec.get('id')!r}"
        if v is None:
            if allow_none:
                return 0.0
            if self.cfg.none_score is None:
                raise SelfalignError(f"{where}: no score (None); set {self.key}.none_score to use a fixed "
                                     "score instead")
            self.missing += 1
            return float(self.cfg.none_score)
        if isinstance(v, bool):
            return float(v)
        if hasattr(v, "item"):
            v = v.item()
        if not isinstance(v, (int, float)):
            raise SelfalignError(f"{where}: returned {type(v).__name__} {v!r}; expected a number")
        if not math.isfinite(float(v)):
            raise SelfalignError(f"{where}: returned {v}; rewards must be finite numbers")
        return float(v)


# ----------------------------------------------------------------------------------------- builders
def _check_reward_model_folder(spec: str, key: str) -> None:
    """ConfigError unless ``spec`` is a sequence-classification model with exactly one label."""
    from selfalign.models.load import resolve_model

    where = resolve_model(spec)
    cfg_file = Path(where) / "config.json" if isinstance(where, Path) else None
    if cfg_file is None or not cfg_file.is_file():
        return  # an adapter folder or a hub id: checked when loaded
    cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    archs = cfg.get("architectures") or []
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ConfigError(f"{key}.model: {where} is a {archs[0]} without a scalar reward head; train a reward "
                          "model with `selfalign train rm` or give a sequence-classification folder")
    labels = len(cfg.get("id2label") or {}) or cfg.get("num_labels") or 1
    if labels != 1:
        raise ConfigError(f"{key}.model: {where} has {labels} output labels; a reward model needs exactly one")


def _reward_model_scorer(cfg: RewardSourceConfig, key: str, device, dtype: str):
    from selfalign.models.heads import load_reward_model

    _check_reward_model_folder(str(cfg.model), key)
    try:
        rm = load_reward_model(str(cfg.model), dtype=dtype, device=device)
    except SelfalignError as e:
        raise ConfigError(f"{key}.model: {e}") from None
    for p in rm.parameters():
        p.requires_grad_(False)

    if cfg.reviewer is not None:  # SALMON: the principle-following RM reads the reviewer prompt
        from selfalign.principle_rm import RLReviewer

        try:
            reviewer = RLReviewer(cfg.reviewer, rm.tokenizer)
        except SelfalignError as e:
            raise ConfigError(f"{key}.reviewer: {e}") from None

        def score(records: list[dict], texts: list[str]) -> list[float]:
            return rm.score(reviewer.items(records, texts), batch_size=cfg.batch_size, max_length=cfg.max_length,
                            chat_template=False)
        return score, rm

    def score(records: list[dict], texts: list[str]) -> list[float]:
        items = [(r["prompt"], t) for r, t in zip(records, texts, strict=True)]
        return rm.score(items, batch_size=cfg.batch_size, max_length=cfg.max_length)

    return score, rm


def _function_scorer(cfg: RewardSourceConfig, key: str):
    from selfalign.judges.function import load_callable, verifiable_score

    if cfg.function == "verifiable":
        def score(records, texts):
            return [verifiable_score(r["prompt"], t, r.get("meta") or {}, cfg.mode)
                    for r, t in zip(records, texts, strict=True)]
        return score
    try:
        fn = load_callable(str(cfg.function))
    except ConfigError as e:
        raise ConfigError(str(e).replace("judge.function", f"{key}.function")) from None

    def score(records, texts):
        return [fn(r["prompt"], t, r.get("meta") or {}) for r, t in zip(records, texts, strict=True)]

    return score


def _judge_scorer(cfg: RewardSourceConfig, key: str):
    from selfalign.judges.base import build_judge

    try:
        judge = build_judge(dict(cfg.judge or {}))
    except ConfigError as e:
        raise ConfigError(f"{key}.{e}") from None
    if judge.output_kind != "scored":
        raise ConfigError(f"{key}.judge.type: {judge.type!r} writes preferences, not scores; use a pointwise judge")

    def score(records, texts):
        # group the responses of one prompt into one record (pairwise judges compare them)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            groups.setdefault(str(r.get("id")), []).append(i)
        recs = [{"id": rid, "prompt": records[ix[0]]["prompt"], "meta": records[ix[0]].get("meta") or {},
                 "responses": [{"text": texts[i]} for i in ix]} for rid, ix in groups.items()]
        scored = judge.score_records(recs)
        out: list[Any] = [None] * len(records)
        for rec, (_, ix) in zip(scored, groups.items(), strict=True):
            for i, resp in zip(ix, rec["responses"], strict=True):
                out[i] = resp.get("score")
        return out

    return score


def build_rewards(sources: Sequence[RewardSourceConfig], device=None, dtype: str = "float32"
                  ) -> tuple[list[RewardSource], list[Any]]:
    """Build every source (loading reward models onto ``device``); returns ``(sources, reward models)``."""
    out: list[RewardSource] = []
    models: list[Any] = []
    for i, cfg in enumerate(sources):
        key = f"rewards.{i}"
        if cfg.type == "reward_model":
            scorer, rm = _reward_model_scorer(cfg, key, device, dtype)
            models.append(rm)
        elif cfg.type == "function":
            scorer = _function_scorer(cfg, key)
        else:
            scorer = _judge_scorer(cfg, key)
        out.append(RewardSource(cfg, key, scorer))
    return out, models


def score_all(sources: Sequence[RewardSource], records: list[dict], texts: list[str]
              ) -> tuple[list[float], dict[str, list[float]]]:
    """``(Σ weight · score per response, {source name: scores})``; names repeat as ``name_2``..."""
    total = [0.0] * len(texts)
    parts: dict[str, list[float]] = {}
    for src in sources:
        scores = src.score(records, texts)
        name = src.name if src.name not in parts else f"{src.name}_{len(parts) + 1}"
        parts[name] = scores
        total = [t + src.cfg.weight * s for t, s in zip(total, scores, strict=True)]
    return total, parts


def probe_rewards(sources: Sequence[RewardSource], record: dict, source_file: str | None = None) -> None:
    """Score ``record`` with an empty response through every source, before any rollout: a source
    that raises, returns NaN or a non-number fails here with a one-line error naming its key (a
    missing score is allowed here: a judge may fairly fail to parse an empty answer)."""
    for src in sources:
        try:
            src.score([record], [""], allow_none=True)
        except ConfigError:
            raise
        except SelfalignError as e:
            raise ConfigError(f"{e} (checked on the first prompt of {source_file} with an empty response, "
                              "before any rollout)") from None
