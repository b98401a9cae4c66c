"""Scalar reward-model judge: score = the RM's output for (prompt, response).

The model is a ``selfalign train rm`` output or any transformers sequence-classification folder
with one label (loaded by :func:`selfalign.models.heads.load_reward_model`). By default the pair is
rendered with the chat template (prompt turns + the response as the assistant turn) exactly as
the RM trainer encodes it; ``template`` (a file or shipped name with ``{prompt}`` and
``{response}``) scores a plain text instead, e.g. a reviewer prompt. Scoring is batched and sorted
by length. A reward is never a parse failure; non-finite rewards become ``None``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from selfalign.errors import ConfigError
from selfalign.judges.base import Judge, JudgeConfig, register_judge, response_text, with_scores
from selfalign.judges.templates import fill_template, load_template, prompt_text


class RewardModelJudgeConfig(JudgeConfig):
    """``judge.type=reward_model``: a scalar reward model scores each (prompt, response)."""

    type: Literal["reward_model"] = "reward_model"
    model: str | None = Field(None, description="reward model folder / spec (seq-cls, 1 label)")
    dtype: str = "float32"
    device: str | None = None
    batch_size: int = Field(8, ge=1)
    max_length: int | None = Field(None, ge=1, description="keep the last N tokens of long inputs")
    template: str | None = Field(None, description="score this text template instead of the chat format")


def _check_is_reward_model(spec: str) -> None:
    """Refuse a plain causal LM folder: loading it as an RM would give a random head."""
    from selfalign.models.load import resolve_model

    where = resolve_model(spec)
    cfg = Path(where) / "config.json" if isinstance(where, Path) else None
    if cfg is not None and cfg.is_file():
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ConfigError(f"judge.model: {spec} is a {archs[0]}, not a reward model; train one with "
                              "`selfalign train rm` or pass a sequence-classification folder")


@register_judge("reward_model", RewardModelJudgeConfig)
class RewardModelJudge(Judge):
    """See the module docstring. ``rm`` is a :class:`selfalign.models.heads.RewardModel`."""

    def __init__(self, cfg: RewardModelJudgeConfig, rm: Any):
        super().__init__(cfg)
        self.cfg: RewardModelJudgeConfig = cfg
        self.rm = rm
        self.template = load_template(cfg.template, ("{prompt}", "{response}")) if cfg.template else None

    @classmethod
    def from_config(cls, cfg: RewardModelJudgeConfig, *, model: Any = None,
                    tokenizer: Any = None) -> RewardModelJudge:
        if model is not None:
            if not hasattr(model, "score"):
                raise ConfigError("reward_model judge: the model passed in must be a selfalign RewardModel")
            return cls(cfg, model)
        if not cfg.model:
            raise ConfigError("judge.model: required (a reward model folder)")
        from selfalign.models.heads import load_reward_model
        from selfalign.utils.progress import status

        _check_is_reward_model(cfg.model)
        with status(f"loading reward model {cfg.model}"):
            rm = load_reward_model(cfg.model, dtype=cfg.dtype, device=cfg.device)
        return cls(cfg, rm)

    def score_records(self, records: list[dict]) -> list[dict]:
        from selfalign.utils.progress import Bar

        items: list[Any] = []
        where: list[tuple[int, int]] = []
        for ri, rec in enumerate(records):
            for j, resp in enumerate(rec.get("responses", [])):
                text = response_text(resp)
                if self.template is not None:
                    items.append(fill_template(self.template, prompt=prompt_text(rec["prompt"]), response=text))
                else:
                    items.append((rec["prompt"], text))
                where.append((ri, j))
        rewards: list[float] = []
        bs = self.cfg.batch_size
        with Bar(f"judging ({self.name})", total=len(items), unit="response") as bar:
            # chunks keep the bar moving; RewardModel.score sorts by length inside each chunk
            chunk = max(bs * 8, bs)
            for s in range(0, len(items), chunk):
                part = items[s:s + chunk]
                rewards.extend(self.rm.score(part, batch_size=bs, max_length=self.cfg.max_length))
                bar.advance(len(part))
        per_record: list[list[list[dict]]] = [[[] for _ in rec.get("responses", [])] for rec in records]
        for (ri, j), r in zip(where, rewards, strict=True):
            ok = math.isfinite(r)
            self._stats.add_judgement(ok)
            per_record[ri][j] = [{"score": float(r) if ok else None}]
        return [with_scores(rec, per_record[ri], self._stats) for ri, rec in enumerate(records)]
