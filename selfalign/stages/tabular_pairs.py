"""Stage ``tabular_pairs`` (SynFed r1s5): scored prompt groups of every client → DPO pairs.

Inputs: any number of ``groups_*`` files (the ``tabular_score`` stage's ``groups.jsonl``, one per
client). Output: ``data`` (``pairs.jsonl``, :func:`selfalign.tabular.preferences.preference_pairs`:
all pairs per prompt group — the higher gain wins when both rows succeeded, else the higher status;
ties skipped — sampled to ``pairs_per_table`` per table, fewer when fewer exist). Metrics: pairs,
ties, whether the table came up short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import stage


class TabularPairsStageConfig(StrictModel):
    pairs_per_table: int = Field(64, ge=0, description="pairs kept per table (all of them when fewer exist)")
    format: Literal["pairs", "openrlhf"] = Field("pairs", description="pairs: prompt/chosen/rejected; "
                                                  "openrlhf: conversational chosen/reject (the original's keys)")
    seed: int = 0


@stage("tabular_pairs", TabularPairsStageConfig)
def tabular_pairs(st: Stage, cfg: TabularPairsStageConfig, **groups: Path) -> dict:
    from selfalign.data.io import read_records, write_jsonl
    from selfalign.tabular.preferences import preference_pairs

    pooled = [g for name in sorted(groups) for g in read_records(groups[name])]
    records, stats = preference_pairs(pooled, cfg.pairs_per_table, cfg.seed, cfg.format)
    write_jsonl(st.output("data", "pairs.jsonl"), records)
    return {"pairs": len(records), "ties": stats["ties"], "short": len(stats["short"])}
