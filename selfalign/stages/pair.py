"""Stage ``pair``: scored candidates → preference pairs (any registered pair strategy), optionally
mixed with meta-judge pairs that train the judge itself (Meta-Rewarding, arXiv 2407.19594).

Inputs: ``scored`` (scored candidates), ``policy`` (the model that meta-judges; needed only with a
meta-judge). Output: ``data`` (preference ``data.jsonl``: main pairs, then meta pairs).

Meta pairs take at most ``meta_pct`` of the training slots: with ``n`` main pairs,
``n_meta ≤ ⌊meta_pct / (1 − meta_pct) · n⌋``, drawn at random (``mix_seed``) from the meta pairs
made. Prompts that gave no main pair (bad samples) are not slots, so they never let meta pairs
overflow the cap (the original implementation let them).
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from selfalign.config import StrictModel
from selfalign.errors import ConfigError
from selfalign.pipeline import Stage
from selfalign.preferences import PairConfig
from selfalign.stages.base import numeric, stage
from selfalign.stages.judge import parse_role_judge, resolve_roles


class PairStageConfig(StrictModel):
    """Pair options for this iteration (``rho`` already resolved) and the optional meta-judge."""

    pairs: PairConfig
    meta_judge: dict[str, Any] | None = Field(None, description="a meta judge config (type: meta); "
                                              "model: self = the policy input")
    meta_pct: float = Field(0.15, ge=0.0, lt=1.0, description="max fraction of training slots for meta pairs")
    mix_seed: int = 0

    @field_validator("meta_judge")
    @classmethod
    def _valid(cls, v: dict | None) -> dict | None:
        if v is not None:
            parse_role_judge(v, "meta_judge")
        return v


def meta_cap(n_main: int, pct: float) -> int:
    """Most meta pairs allowed beside ``n_main`` main pairs: ⌊pct / (1 − pct) · n_main⌋."""
    return math.floor(pct / (1 - pct) * n_main + 1e-9)


def meta_pairs(cfg: PairStageConfig, records: list[dict], n_main: int, policy: Path | None
               ) -> tuple[list[dict], dict[str, Any]]:
    """Meta pairs made by the meta-judge, capped at :func:`meta_cap`; plus their statistics."""
    from selfalign.judges import build_judge

    judge = build_judge(resolve_roles(cfg.meta_judge or {}, policy, None))
    made = judge.score_records(records)
    used = random.Random(cfg.mix_seed).sample(made, min(meta_cap(n_main, cfg.meta_pct), len(made)))
    stats = {"meta_pairs_made": len(made), "meta_pairs_used": len(used),
             **{f"meta_{k}": v for k, v in numeric(judge.stats()).items()}}
    return used, stats


@stage("pair", PairStageConfig)
def pair(st: Stage, cfg: PairStageConfig, *, scored: Path, policy: Path | None = None) -> dict:
    from selfalign.data.io import iter_records, write_jsonl
    from selfalign.preferences import build_pairs_located, no_pairs_message

    located = list(iter_records(scored))
    records = [rec for _, rec, _ in located]
    pairs, stats = build_pairs_located(located, **cfg.pairs.model_dump())
    metrics: dict[str, Any] = {"rho": cfg.pairs.rho, **numeric(stats)}
    extra: list[dict] = []
    if cfg.meta_judge is not None:
        extra, mstats = meta_pairs(cfg, records, len(pairs), policy)
        metrics.update(mstats)
    if not pairs + extra:
        raise ConfigError(f"{st.tag}: {no_pairs_message(stats)}")
    write_jsonl(st.output("data", "data.jsonl"), pairs + extra)
    metrics["train_pairs"] = len(pairs) + len(extra)
    return metrics
