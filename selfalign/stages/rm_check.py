"""Stage ``rm_check``: does the principle-following reward model do its job? (SALMON stage 2)

Inputs: ``model`` (the trained reward model), ``examples`` (the ``aggregate`` stage's examples; only
``split: heldout`` ones are used). Output: ``data`` (``checks.json``, the metrics below). Metrics
(:func:`selfalign.principle_rm.rm_checks`): ``rm_heldout_acc`` (agreement with the aggregated labels on
held-out prompts), ``rm_negation_flip_rate`` and ``rm_negation_follow_rate`` (the principle-following
property: the preference flips when the deciding principle is negated).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import numeric, stage


class RMCheckStageConfig(StrictModel):
    principles: str = Field("judging", description="the list the examples' principles come from")
    template: str = Field("reviewer", description="reviewer prompt template (as in training)")
    batch_size: int = Field(8, ge=1)
    max_length: int | None = Field(None, ge=1, description="keep the last N tokens (as in training)")
    dtype: str = "float32"


@stage("rm_check", RMCheckStageConfig)
def rm_check(st: Stage, cfg: RMCheckStageConfig, *, model: Path, examples: Path) -> dict:
    from selfalign.data.io import read_records, write_text_atomic
    from selfalign.models.heads import load_reward_model
    from selfalign.principle_rm import rm_checks
    from selfalign.principles import load_principles

    held = [ex for ex in read_records(examples) if ex.get("split") == "heldout"]
    metrics: dict = {"rm_heldout_examples": 0}
    if held:
        rm = load_reward_model(str(model), dtype=cfg.dtype)
        metrics = rm_checks(rm, held, load_principles(cfg.principles), cfg.template, cfg.batch_size,
                            cfg.max_length)
    write_text_atomic(st.output("data", "checks.json"), json.dumps(metrics, indent=1) + "\n")
    return numeric(metrics)
