"""Stage ``aggregate``: principle comparisons → reward-model training pairs (SALMON stage 2).

Inputs: ``scored`` (records of the ``pairwise_principle`` judge: two responses and one
``comparisons`` entry ``(s12, s21)`` per judging principle), ``model`` (whose tokenizer renders the
reviewer prompt: the reward model's starting model). Outputs:

* ``data`` — preference records for ``train rm`` (``chat_template: false``; see
  :mod:`selfalign.principle_rm`), from the training prompts;
* ``heldout`` — the same for the held-out prompts (``heldout_frac`` of the *prompts*, so no prompt is in
  both), used to measure the reward model;
* ``examples`` — every aggregated example (JSON, never ``str()``/``eval()``) with ``split``, so labels
  can be re-derived or re-rendered without judging again.

Metrics: the aggregation counts (:func:`selfalign.principle_labels.aggregate`) and the judge's health
per principle: ``consistency/<principle>`` (share of pairs whose two orders agree) and
``consistency_mean``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from pydantic import Field

from selfalign.errors import ConfigError
from selfalign.pipeline import Stage
from selfalign.principle_labels import AggregateConfig
from selfalign.stages.base import numeric, stage


class AggregateStageConfig(AggregateConfig):
    """Aggregation options (:class:`AggregateConfig`) plus the held-out split and the prompt wording."""

    heldout_frac: float = Field(0.15, ge=0.0, lt=1.0, description="share of prompts held out to test the RM")
    principles: str = Field("judging", description="the principle list the judge used (shipped name or file)")
    template: str = Field("reviewer", description="reviewer prompt template (shipped name or file)")


def consistency_by_principle(records: list[dict]) -> dict[str, float]:
    """``{principle: share of comparisons with a consistent preference (both orders agree)}``."""
    seen: dict[str, list[int]] = {}
    for rec in records:
        for c in rec.get("comparisons") or []:
            seen.setdefault(c["principle"], []).append(int(c["preference"] != 0))
    return {name: sum(v) / len(v) for name, v in seen.items() if v}


def split_prompts(records: list[dict], frac: float, seed: int) -> set[str]:
    """Ids of the held-out prompts: ``round(frac · n)`` drawn with ``seed``."""
    ids = sorted(str(r["id"]) for r in records)
    return set(random.Random(seed).sample(ids, round(frac * len(ids)))) if frac else set()


@stage("aggregate", AggregateStageConfig)
def aggregate(st: Stage, cfg: AggregateStageConfig, *, scored: Path, model: Path) -> dict[str, Any]:
    from selfalign.data.io import read_records, write_jsonl
    from selfalign.models.load import load_tokenizer
    from selfalign.principle_labels import aggregate as aggregate_labels
    from selfalign.principle_rm import rm_pair_records
    from selfalign.principles import load_principles

    records = read_records(scored)
    held = split_prompts(records, cfg.heldout_frac, cfg.seed)
    examples, stats = aggregate_labels(records, AggregateConfig.model_validate(
        cfg.model_dump(exclude={"heldout_frac", "principles", "template"})))
    for ex in examples:
        ex["split"] = "heldout" if str(ex["source_id"]) in held else "train"
    train = [ex for ex in examples if ex["split"] == "train"]
    if not train:
        raise ConfigError(f"{st.tag}: no labelled training examples ({stats.get('skipped_short', 0)} pairs with "
                          f"a response under {cfg.min_chars} characters, {stats.get('skipped_no_signal', 0)} "
                          "without a consistent principle); more prompts needed")
    tok = load_tokenizer(str(model))
    principles = load_principles(cfg.principles)
    write_jsonl(st.output("examples", "examples.jsonl"), examples)
    write_jsonl(st.output("data", "data.jsonl"), rm_pair_records(train, principles, tok, cfg.template))
    heldout = [ex for ex in examples if ex["split"] == "heldout"]
    write_jsonl(st.output("heldout", "heldout.jsonl"), rm_pair_records(heldout, principles, tok, cfg.template))
    health = consistency_by_principle(records)
    metrics = {**numeric(stats), "train_examples": len(train), "heldout_examples": len(heldout),
               "consistency_mean": sum(health.values()) / len(health) if health else None}
    metrics.update({f"consistency/{k}": v for k, v in health.items()})
    return metrics
