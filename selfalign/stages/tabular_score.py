"""Stage ``tabular_score`` (SynFed r1s3 + r1s4): extract and score generated table rows.

Inputs: ``model`` (the scoring model's base), ``candidates`` (the ``generate`` stage's records: prompt
+ responses), ``table`` and ``anchors`` (saved tables, :func:`selfalign.tabular.tables.save_table`:
the node's real training rows and its anchor rows), optionally ``adapter_*`` inputs (the clients'
LoRA adapter folders, trained on their downstream tasks, merged into the scoring model by peft's
weighted adapter merging, :func:`selfalign.models.merge.merge_adapters`, in name order). Output: ``data``
(``groups.jsonl``: per prompt the samples with status, status score, row and in-context utility gain
— the input of :func:`selfalign.tabular.preferences.preference_pairs`) and ``rows`` (``synthetic.csv``,
the successfully extracted rows). Metrics: JSON-validity rate, success rate, ds0 MCC, mean gain.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import numeric, stage


class TabularScoreStageConfig(StrictModel):
    batch_size: int = Field(8, ge=1, description="scoring contexts per forward")
    dtype: str = "float32"
    combination: str = Field("cat", description="peft adapter combination (cat, linear, ties, dare_ties, "
                             "dare_linear, magnitude_prune, …)")
    density: float | None = Field(None, gt=0, le=1, description="share of each update kept (ties/dare/magnitude)")
    weights: list[float] | None = Field(None, description="one weight per adapter (default equal)")


@stage("tabular_score", TabularScoreStageConfig)
def tabular_score(st: Stage, cfg: TabularScoreStageConfig, *, model: Path, candidates: Path, table: Path,
                  anchors: Path, **adapters: Path) -> dict:
    import pandas as pd

    from selfalign.data.io import atomic_output, read_records, require_records, write_jsonl
    from selfalign.models.load import load_causal_lm, load_tokenizer
    from selfalign.tabular.tables import read_saved_table
    from selfalign.tabular.utility import score_candidates

    node, anchor_rows = read_saved_table(table), read_saved_table(anchors)
    lm = load_causal_lm(str(model), dtype=cfg.dtype)
    if adapters:
        from selfalign.models.merge import merge_adapters

        lm = merge_adapters(lm, [adapters[k] for k in sorted(adapters)], cfg.weights, cfg.combination, cfg.density)
    groups, stats = score_candidates(lm, load_tokenizer(str(model)), node, anchor_rows,
                                     require_records(read_records(candidates), candidates), cfg.batch_size)
    write_jsonl(st.output("data", "groups.jsonl"), groups)
    rows = [s["row"] for g in groups for s in g["samples"] if s["status"] == "SUCCESS"]
    with atomic_output(st.output("rows", "synthetic.csv")) as tmp:
        pd.DataFrame(rows, columns=node.columns).to_csv(tmp, index=False)
    (st.dir / "stats.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    return numeric({k: v for k, v in stats.items() if k != "status_counts"})
