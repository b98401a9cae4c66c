"""Stage ``tabular_rows`` (SynFed r1s2): a client's generated rows → synthetic table + downstream task.

Inputs: ``candidates`` (the ``generate`` stage's records), ``table`` (the client's saved real table: the
schema to extract against). Outputs: ``rows`` (``synthetic.csv``: the rows whose extraction
succeeded) and ``task`` (``task.jsonl``: one SFT record per synthetic row — its features as text, the
question, the label — on which the client fine-tunes its scoring adapter, r1s3). Metrics:
``json_valid_rate`` (share of responses holding a parsable JSON object) and ``success_rate``.
"""

from __future__ import annotations

from pathlib import Path

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import stage


class TabularRowsStageConfig(StrictModel):
    """No settings: extraction follows the table's schema."""


@stage("tabular_rows", TabularRowsStageConfig)
def tabular_rows(st: Stage, cfg: TabularRowsStageConfig, *, candidates: Path, table: Path) -> dict:
    import pandas as pd

    from selfalign.data.io import atomic_output, read_records, require_records, write_jsonl
    from selfalign.errors import DataError
    from selfalign.tabular.extract import Status, extract_row
    from selfalign.tabular.split import task_records
    from selfalign.tabular.tables import read_saved_table

    node = read_saved_table(table)
    texts = [r.get("text", "") for c in require_records(read_records(candidates), candidates)
             for r in c.get("responses") or []]
    if not texts:
        raise DataError("no responses to extract rows from", candidates)
    ex = [extract_row(t, node) for t in texts]
    rows = [e.row for e in ex if e.status == Status.SUCCESS]
    frame = pd.DataFrame(rows, columns=node.columns)
    with atomic_output(st.output("rows", "synthetic.csv")) as tmp:
        frame.to_csv(tmp, index=False)
    task = []
    usable = frame[frame[node.target].notna()].reset_index(drop=True)
    if len(usable):
        from dataclasses import replace

        syn = replace(node, frame=usable, name=f"{node.name}-synthetic")
        task = [{"id": r["id"], "prompt": r["prompt"], "completion": r["response"]} for r in task_records(syn)]
    write_jsonl(st.output("task", "task.jsonl"), task)
    n = len(ex)
    return {"responses": n, "json_valid_rate": 1 - sum(e.status == Status.INVALID_ANSWER for e in ex) / n,
            "success_rate": len(rows) / n, "synthetic_rows": len(rows)}
