"""Stage ``tabular_quality``: how good is a round's synthetic table, measured without the LLM scorer.

Inputs: ``test`` (the saved real test table), ``rows_*`` (each client's ``synthetic.csv``) and
``table_*`` (each client's saved real training table; together the real training data). Output:
``data`` (``quality.json``: :func:`selfalign.tabular.metrics.quality_report` of all synthetic rows —
TSTR next to TRTR per model, distance to closest record, column distances — plus sdmetrics' quality
report where installed). Metrics: ``tstr_<model>``, ``trtr_<model>``, ``dcr_median``,
``dcr_copies``, ``column_distance_mean``, ``synthetic_rows``.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import stage


class TabularQualityStageConfig(StrictModel):
    seed: int = 0


@stage("tabular_quality", TabularQualityStageConfig)
def tabular_quality(st: Stage, cfg: TabularQualityStageConfig, *, test: Path, **parts: Path) -> dict:
    from dataclasses import replace

    import pandas as pd

    from selfalign.data.io import write_text_atomic
    from selfalign.tabular.metrics import quality_report, sdmetrics_quality
    from selfalign.tabular.tables import read_saved_table

    test_t = read_saved_table(test)
    reals = [read_saved_table(parts[k]) for k in sorted(parts) if k.startswith("table_")]
    train = replace(reals[0], frame=pd.concat([r.frame for r in reals], ignore_index=True), name="train")
    frames = [pd.read_csv(parts[k]) for k in sorted(parts) if k.startswith("rows_")]
    syn = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=train.columns)
    metrics: dict = {"synthetic_rows": len(syn)}
    report: dict = {"synthetic_rows": len(syn)}
    if len(syn) and syn[train.target].nunique() >= 1:
        report.update(quality_report(syn, train, test_t, cfg.seed))
        try:
            report["sdmetrics"] = sdmetrics_quality(syn, train)
        except Exception as e:  # noqa: BLE001 - optional dependency
            report["sdmetrics"] = {"skipped": f"{type(e).__name__}: {e}"}
        metrics.update({f"tstr_{m}": v for m, v in report["tstr"].items()})
        metrics.update({f"trtr_{m}": v for m, v in report["trtr"].items()})
        metrics.update(dcr_median=report["dcr"]["median"], dcr_copies=report["dcr"]["copies"],
                       column_distance_mean=report["column_distance_mean"])
    write_text_atomic(st.output("data", "quality.json"), json.dumps(report, indent=1, default=float) + "\n")
    return metrics
