"""Stage ``tabular_prepare`` (SynFed r0s1–r0s3): every table-side input of the rounds, no model.

No inputs (the tables are named in the config: built-in names or files, each with its target).
Outputs: ``sft`` (``sft.jsonl``: leave-one-table-out cold-start SFT records from every table except
the target, r0s1), ``test`` (a saved table: the target table's held-out real rows, for TSTR), and
``nodes`` (a folder, one sub-folder per client ``c{k}``: ``table/`` — the client's real training
rows of the target table (Dirichlet label skew or full copies, r0s2), ``anchors/`` — its KMeans
anchor rows (r0s3), ``prompts.jsonl`` — its generation prompts, each built from 5 of its own most
similar rows, so no row leaves its client). Tables are saved with their schema
(:func:`selfalign.tabular.tables.save_table`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pydantic import Field

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import stage


class TableSpec(StrictModel):
    table: str = Field(..., description="built-in name (wine, iris, breast_cancer, diabetes, penguins) or a "
                       "CSV/parquet file")
    target: str | None = Field(None, description="target column (required for files)")
    name: str | None = Field(None, description="the table's name (default: built-in name or file stem)")


class TabularPrepareStageConfig(StrictModel):
    tables: list[TableSpec] = Field(..., min_length=1, description="every table: the target and the "
                                    "public ones the cold-start generator learns from")
    target: str = Field(..., description="name of the target table (left out of the cold-start SFT)")
    clients: int = Field(2, ge=1)
    method: str = Field("dirichlet", description="dirichlet (label skew) or full (copies)")
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration")
    test_size: float = Field(0.2, gt=0, lt=1, description="share of the target table held out for TSTR")
    num_clusters: int = Field(10, ge=1, description="anchors per client (sets the scoring cost)")
    max_prompts: int | None = Field(None, ge=1, description="at most this many prompts per client (seeded)")
    max_sft_rows: int | None = Field(None, ge=1, description="at most this many SFT rows per public table")
    seed: int = 0


def _sample(records: list[dict], n: int | None, seed: int) -> list[dict]:
    import random

    if n is None or n >= len(records):
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in keep]


@stage("tabular_prepare", TabularPrepareStageConfig)
def tabular_prepare(st: Stage, cfg: TabularPrepareStageConfig) -> dict:
    from selfalign.data.io import atomic_output, write_jsonl
    from selfalign.tabular.anchors import anchor_table
    from selfalign.tabular.neighbours import leave_one_table_out, sft_records
    from selfalign.tabular.split import split_clients
    from selfalign.tabular.tables import load_table, save_table, train_test_split_table

    tables = [load_table(t.table, t.target, name=t.name) for t in cfg.tables]
    target = next((t for t in tables if t.name == cfg.target), None)
    sft = leave_one_table_out(tables, cfg.target, cfg.seed)  # raises naming the tables when target is absent
    by_table: dict[str, list[dict]] = {}
    for r in sft:
        by_table.setdefault(r["meta"]["table"], []).append(r)
    sft = [r for name, recs in by_table.items() for r in _sample(recs, cfg.max_sft_rows, cfg.seed)]
    write_jsonl(st.output("sft", "sft.jsonl"), [{"id": r["id"], "prompt": r["prompt"], "completion": r["response"],
                                                 "meta": r["meta"]} for r in sft])
    train, test = train_test_split_table(target, cfg.test_size, cfg.seed)
    save_table(test, st.output("test", "test"))
    clients = split_clients(train, cfg.clients, cfg.method, cfg.alpha, cfg.seed)
    sizes = []
    with atomic_output(st.output("nodes", "nodes")) as tmp:
        tmp.mkdir(parents=True)
        for k, client in enumerate(clients):
            d = tmp / f"c{k}"
            # saved under the dataset's name (pairs are sampled per dataset, pooled over its clients);
            # the prompts keep the client's name in their ids ("wine/c0/12"), so ids never collide
            save_table(replace(client, name=target.name), d / "table")
            anchors = anchor_table(client, min(cfg.num_clusters, len(client)), cfg.seed)
            save_table(replace(anchors, name=target.name), d / "anchors")
            prompts = _sample(sft_records(client, "target", cfg.seed), cfg.max_prompts, cfg.seed + k)
            write_jsonl(d / "prompts.jsonl", [{"id": r["id"], "prompt": r["prompt"], "meta": r["meta"]}
                                              for r in prompts])
            sizes.append({"client": k, "rows": len(client), "prompts": len(prompts)})
        (tmp / "nodes.json").write_text(json.dumps({"target": cfg.target, "clients": sizes}, indent=1) + "\n")
    return {"sft_records": len(sft), "train_rows": len(train), "test_rows": len(test),
            **{f"client{k}_rows": s["rows"] for k, s in enumerate(sizes)}}


def client_dirs(nodes: Path) -> list[Path]:
    """The client folders of a ``nodes`` output, in client order."""
    return sorted((p for p in nodes.iterdir() if p.is_dir() and p.name.startswith("c")), key=lambda p: int(p.name[1:]))
