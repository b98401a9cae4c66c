"""``selfalign tabular``: the SynFed pieces people use alone — split a table over clients, make
neighbour prompts, extract rows from generated text, and evaluate a synthetic table against a real
one (TSTR, distance to closest record, column distances; sdmetrics when installed).

TABLE is a CSV/parquet file (``--target`` required) or a table shipped in an installed package:
``wine``, ``iris``, ``breast_cancer``, ``diabetes`` (scikit-learn) or ``penguins``. Every output is
written atomically and never onto an input.
"""

from __future__ import annotations

import json
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Any

import typer

tabular_app = typer.Typer(help="SynFed tables on their own: split, prompts, extract rows, evaluate synthetic data.",
                          no_args_is_help=True)

_TABLE = typer.Argument(..., metavar="TABLE", help="CSV/parquet file, or a built-in table: wine, iris, "
                        "breast_cancer, diabetes, penguins.")
_TARGET = typer.Option(None, "--target", help="Target column (default: the built-in table's label; "
                       "required for files).")


class Method(str, Enum):
    dirichlet = "dirichlet"
    full = "full"


class Role(str, Enum):
    training = "training"
    target = "target"


def _load(spec: str, target: str | None):
    from selfalign.tabular.tables import load_table

    return load_table(spec, target)


def _inputs(spec: str) -> dict[str, Path | None]:
    return {"TABLE": Path(spec) if Path(spec).exists() else None}


@tabular_app.command("split")
def split(
    table: str = _TABLE,
    output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Folder for train.csv, test.csv, "
                                    "client_K.csv and split.json (created; must not exist as a file)."),
    target: str = _TARGET,
    clients: int = typer.Option(3, min=1, help="Number of clients (federated nodes)."),
    method: Method = typer.Option(Method.dirichlet, help="dirichlet: label skew with concentration --alpha "
                                  "(regression targets binned into 4 quantiles); full: every client gets "
                                  "every training row."),
    alpha: float = typer.Option(0.5, min=0.0, help="Dirichlet concentration (smaller = more skew)."),
    test_size: float = typer.Option(0.2, help="Share of rows held out as the real test split."),
    seed: int = typer.Option(0),
):
    """Hold out a real test split, then split the training rows over clients.

    Example: selfalign tabular split wine --clients 3 --alpha 0.5 --output-dir wine_split
    """
    from selfalign.data.io import atomic_output
    from selfalign.data.paths import check_outputs
    from selfalign.tabular.split import split_clients
    from selfalign.tabular.tables import train_test_split_table

    check_outputs(_inputs(table), {"output_dir": output_dir}, folders=("output_dir",))
    t = _load(table, target)
    train, test = train_test_split_table(t, test_size, seed)
    parts = split_clients(train, clients, method.value, alpha=alpha, seed=seed)
    summary: dict[str, Any] = {"table": t.name, "source": t.source, "target": t.target, "task": t.task,
                               "method": method.value, "alpha": alpha, "seed": seed, "train_rows": len(train),
                               "test_rows": len(test), "clients": []}
    with atomic_output(output_dir) as tmp:
        tmp.mkdir(parents=True)
        train.frame[train.columns].to_csv(tmp / "train.csv", index=False)
        test.frame[test.columns].to_csv(tmp / "test.csv", index=False)
        for k, client in enumerate(parts):
            client.frame[client.columns].to_csv(tmp / f"client_{k}.csv", index=False)
            labels = client.frame[t.target]
            dist = (labels.astype(str).value_counts().sort_index().to_dict() if t.task == "classification"
                    else {"mean": float(labels.mean()), "std": float(labels.std(ddof=0))})
            summary["clients"].append({"file": f"client_{k}.csv", "rows": len(client), "target": dist})
        (tmp / "split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"{t.name}: {len(train)} train / {len(test)} test rows; clients "
               + ", ".join(str(c["rows"]) for c in summary["clients"]) + f" → {output_dir}")


@tabular_app.command("prompts")
def prompts(
    table: str = _TABLE,
    output: Path = typer.Option(..., "--output", "-o", help="JSONL of {id, prompt, response, meta} records."),
    target: str = _TARGET,
    role: Role = typer.Option(Role.training, help="training: 4 most + 1 least similar rows as examples "
                              "(SFT data; response = the row); target: the 5 most similar (generation "
                              "prompts)."),
    seed: int = typer.Option(0, help="Shuffles the example rows and their keys."),
):
    """Neighbour prompts: each row's most similar rows (cosine similarity of standardised numeric +
    one-hot categorical features) as in-context examples, asking for one more row as JSON.

    Example: selfalign tabular prompts iris --role target --output iris_prompts.jsonl
    """
    from selfalign.data.io import write_jsonl
    from selfalign.data.paths import check_outputs
    from selfalign.tabular.neighbours import sft_records

    check_outputs(_inputs(table), {"output": output})
    t = _load(table, target)
    n = write_jsonl(output, sft_records(t, role.value, seed))
    typer.echo(f"{n} {role.value} prompts for {t.name} → {output}")


def _texts(rec: dict) -> list[str]:
    if isinstance(rec.get("responses"), list):
        return [r.get("text", "") if isinstance(r, dict) else str(r) for r in rec["responses"]]
    for key in ("text", "response", "completion"):
        if isinstance(rec.get(key), str):
            return [rec[key]]
    return []


@tabular_app.command("extract")
def extract(
    answers: Path = typer.Argument(..., metavar="ANSWERS", help="Generated texts: JSONL/JSON/CSV/parquet records "
                                   "with responses[].text (selfalign generate) or text/response/completion."),
    table: str = typer.Option(..., "--table", help="The real table whose schema the rows must follow."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV of the usable rows (SUCCESS, REDUNDANT_KEY)."),
    target: str = _TARGET,
    details: Path = typer.Option(None, help="Also write one JSONL record per answer: status, row, problems."),
):
    """Extract one row per generated text: first JSON object, repaired if needed, keys matched
    ignoring case/spaces/underscores, values cast to the schema; status SUCCESS / REDUNDANT_KEY /
    MISSING_KEY / CONVERSION_ERROR / INVALID_ANSWER, with the counts and the JSON-validity rate.

    Example: selfalign tabular extract generated.jsonl --table wine --output rows.csv
    """
    import pandas as pd

    from selfalign.data.io import atomic_output, read_records, require_records, write_jsonl
    from selfalign.data.paths import check_outputs
    from selfalign.errors import DataError
    from selfalign.tabular.extract import Status, extract_row

    check_outputs({"ANSWERS": answers, **_inputs(table)}, {"output": output, "details": details})
    t = _load(table, target)
    records = require_records(read_records(answers), answers)
    results = [extract_row(text, t) for rec in records for text in _texts(rec)]
    if not results:
        raise DataError("no generated texts (responses[].text, text, response or completion)", answers)
    counts = Counter(r.status for r in results)
    usable = [r.row for r in results if r.status in (Status.SUCCESS, Status.REDUNDANT_KEY)]
    with atomic_output(output) as tmp:
        pd.DataFrame(usable, columns=t.columns).to_csv(tmp, index=False)
    if details is not None:
        write_jsonl(details, [r.to_record() for r in results])
    valid = 1.0 - counts[Status.INVALID_ANSWER] / len(results)
    typer.echo(", ".join(f"{s.value} {counts[s]}" for s in Status) + f"; JSON-valid {valid:.1%}; "
               f"{len(usable)} usable rows → {output}")


@tabular_app.command("evaluate")
def evaluate(
    synthetic: Path = typer.Argument(..., metavar="SYNTHETIC", help="Synthetic rows (CSV/parquet) with the "
                                     "real table's columns."),
    real: str = typer.Option(..., "--real", help="The real table (file or built-in name)."),
    target: str = _TARGET,
    test: Path = typer.Option(None, help="Real test rows (e.g. test.csv from `tabular split`); without it "
                              "the real table is split with --test-size/--seed and its training part is "
                              "the reference."),
    test_size: float = typer.Option(0.2),
    seed: int = typer.Option(0),
    output: Path = typer.Option(None, "--output", "-o", help="Write every number as JSON here."),
):
    """Quality of synthetic rows, independent of any LLM: train-on-synthetic/test-on-real (MCC for
    classification, R² for regression) next to train-on-real, distance to the closest real record,
    per-column distances, and sdmetrics' quality report when sdmetrics is installed.

    Example: selfalign tabular evaluate synthetic.csv --real wine --output quality.json
    """
    import pandas as pd

    from selfalign.data.io import write_text_atomic
    from selfalign.data.paths import check_outputs
    from selfalign.tabular.metrics import quality_report, sdmetrics_quality, synthetic_frame
    from selfalign.tabular.tables import table_from_frame, train_test_split_table

    check_outputs({"SYNTHETIC": synthetic, "test": test, **_inputs(real)}, {"output": output})
    t = _load(real, target)
    if test is not None:
        test_t = table_from_frame(pd.read_csv(test) if test.suffix == ".csv" else pd.read_parquet(test), t.target,
                                  name=f"{t.name}-test", source=str(test), task=t.task,
                                  categorical=list(t.categorical), numeric=list(t.numeric))
        train_t = t
    else:
        train_t, test_t = train_test_split_table(t, test_size, seed)
    frame = pd.read_csv(synthetic) if synthetic.suffix == ".csv" else pd.read_parquet(synthetic)
    syn = synthetic_frame(frame, t, source=str(synthetic))
    report = {"synthetic_rows": len(syn), **quality_report(syn, train_t, test_t, seed)}
    try:
        report["sdmetrics"] = sdmetrics_quality(syn, train_t)
    except Exception as e:  # noqa: BLE001 - optional: not installed, or it refused this table
        report["sdmetrics"] = {"skipped": f"{type(e).__name__}: {e}"}
    metric = report["metric"]
    for m, v in report["tstr"].items():
        typer.echo(f"TSTR {metric} {m}: {v:.3f}  (train on real: {report['trtr'][m]:.3f})")
    d = report["dcr"]
    typer.echo("distance to closest real record: " + ", ".join(f"{k} {v:.3g}" for k, v in d.items()))
    typer.echo(f"mean column distance (KS / TV): {report['column_distance_mean']:.3f}; "
               f"{len(syn)} synthetic rows")
    if output is not None:
        write_text_atomic(output, json.dumps(report, indent=2, default=float) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(tabular_app, name="tabular")
