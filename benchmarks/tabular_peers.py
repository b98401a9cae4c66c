"""SynFed next to the tabular generators data scientists use: SDV 2.x (GaussianCopula, CTGAN) and GReaT
(``be-great``, on the same embedded SmolLM2-135M-Instruct), on the real train/test split the SynFed
recipe uses, every synthetic table scored by our evaluator.

    python -m benchmarks.tabular_peers --tables iris penguins \\
        --synfed iris=runs/synfed --synfed penguins=runs/synfed-penguins

The command (project venv) creates the peers' venv ``.venv-tabpeers`` when missing
(``benchmarks/peers/tabular_venv.sh``: torch 2.13.0 CPU, SDV 2.x, sdmetrics, be-great, pandas < 3),
resolves the embedded model's local HF folder, and re-runs itself there with ``--inside``.

What is computed, per table:

* the split: :func:`real_split` = ``load_table`` + ``train_test_split_table`` with the test share and
  seed of the recipe's ``tabular_prepare`` stage (0.2, seed 0); a SynFed run's saved test table is
  checked to be the same rows (``split_matches_run``);
* each peer fitted on the real training rows (categorical columns as text) and sampled ``n`` rows,
  ``n`` = the real training size; the first ``k`` of them (``k`` = SynFed's round-1 row count,
  i.i.d. samples) are scored again as ``*@k`` so sizes can be matched;
* SynFed's rows per round (the run's ``synthetic.csv`` of every client, concatenated) and its
  JSON-validity / complete-row rates from the ``tabular_rows`` stages;
* :func:`evaluate` on every synthetic table: the same functions as ``selfalign tabular evaluate`` and
  the ``tabular_quality`` stage — TSTR (MCC or R², random forest and a linear model) next to TRTR, the
  distance to the closest real training record, mean column distance, sdmetrics' quality report.

Results: ``benchmarks/results/tabular-peers-<date>/results.json`` (everything), ``results.csv`` (one
row per table × method) and the synthetic tables (``<table>/<method>.csv``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / ".venv-tabpeers"
RECIPE_TEST_SIZE = 0.2  # TabularPrepareStageConfig.test_size default (examples/synfed.yaml keeps it)
RECIPE_SEED = 0  # examples/synfed.yaml seed
PEERS = ("gaussian_copula", "ctgan", "great")


def real_split(name: str, test_size: float = RECIPE_TEST_SIZE, seed: int = RECIPE_SEED):
    """``(table, train, test)``: the built-in table (or file) and the recipe's train/test split of it."""
    from selfalign.tabular.tables import load_table, train_test_split_table

    table = load_table(name)
    train, test = train_test_split_table(table, test_size, seed)
    return table, train, test


def categorical_columns(table) -> list[str]:
    """The schema's categorical columns, the target included for classification."""
    return [c for c in table.columns if table.is_categorical(c)]


def peer_input(train) -> pd.DataFrame:
    """The real training rows as handed to a peer: schema columns, categorical columns as text (so
    GReaT and SDV treat ``year`` or ``sex`` as categories, as our schema does)."""
    frame = train.frame[train.columns].copy()
    for col in categorical_columns(train):
        frame[col] = frame[col].astype(str)
    return frame


def align_to_schema(frame: pd.DataFrame, table) -> tuple[pd.DataFrame, int]:
    """Synthetic rows with each categorical value mapped back to the real category of the same text
    (``"2007"`` → ``2007``); returns the frame and the number of cells naming no real category."""
    out = frame.copy()
    unknown = 0
    for col in categorical_columns(table):
        if col not in out.columns:
            continue
        cats = {str(c): c for c in table.categories(col)}
        text = out[col].astype(str)
        unknown += int((~text.isin(cats) & out[col].notna()).sum())
        out[col] = [cats.get(t, v) for t, v in zip(text, out[col])]
    return out, unknown


def evaluate(synthetic: pd.DataFrame, train, test, seed: int = RECIPE_SEED) -> dict[str, Any]:
    """Our evaluator on one synthetic table (what ``selfalign tabular evaluate`` computes): rows used,
    TSTR and TRTR per model, DCR summary, mean column distance, sdmetrics quality (or why skipped)."""
    from selfalign.tabular.metrics import quality_report, sdmetrics_quality, synthetic_frame

    syn = synthetic_frame(synthetic, train)
    report = {"synthetic_rows": len(syn), **quality_report(syn, train, test, seed)}
    report.pop("column_distances", None)
    try:
        report["sdmetrics"] = sdmetrics_quality(syn, train)
    except Exception as e:  # noqa: BLE001 - optional: not installed, or it refused this table
        report["sdmetrics"] = {"skipped": f"{type(e).__name__}: {e}"}
    return report


def _manifest(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "manifest.json").read_text())


def _run_wall_s(run: Path) -> float:
    """Seconds from the first stage's start to the last stage's end of a run (resumes included)."""
    from datetime import datetime

    ms = [_manifest(d) for d in run.iterdir() if (d / "manifest.json").is_file()]
    starts = [datetime.fromisoformat(m["started"]) for m in ms if m.get("started")]
    ends = [datetime.fromisoformat(m["finished"]) for m in ms if m.get("finished")]
    return (max(ends) - min(starts)).total_seconds()


def synfed_rounds(run: Path, test) -> dict[str, Any]:
    """A SynFed run's rows per round (every client's ``synthetic.csv``) with the ``tabular_rows``
    counts, the run's wall time, and whether its saved test split equals ``test``."""
    from selfalign.tabular.tables import read_saved_table

    run_test = read_saved_table(run / "r0s1-tabular_prepare" / "test")
    cols = test.columns
    same = len(run_test) == len(test) and run_test.frame[cols].astype(str).reset_index(drop=True).equals(
        test.frame[cols].astype(str).reset_index(drop=True))
    rounds = []
    for t in range(100):
        dirs = sorted(run.glob(f"r{t}s2-rows-c*"))
        if not dirs:
            break
        ms = [_manifest(d)["metrics"] for d in dirs]
        n = sum(m["responses"] for m in ms)
        frame = pd.concat([pd.read_csv(d / "synthetic.csv") for d in dirs], ignore_index=True)
        rounds.append({"round": t, "frame": frame, "responses": n,
                       "json_valid": round(sum(m["json_valid_rate"] * m["responses"] for m in ms)),
                       "complete_rows": sum(m["synthetic_rows"] for m in ms)})
    return {"split_matches_run": bool(same), "wall_s": _run_wall_s(run), "rounds": rounds}


def _entry(method: str, synthetic: pd.DataFrame, train, test, seed: int, **extra: Any) -> dict[str, Any]:
    aligned, unknown = align_to_schema(synthetic, train)
    return {"method": method, "unknown_category_cells": unknown, **extra,
            "quality": evaluate(aligned, train, test, seed)}


def _synfed_entries(run: Path, train, test, seed: int) -> tuple[list[dict], dict]:
    info = synfed_rounds(run, test)
    entries = []
    for r in info["rounds"]:
        extra = {"responses": r["responses"], "json_valid": r["json_valid"], "complete_rows": r["complete_rows"],
                 "wall_s": info["wall_s"], "wall_note": "the whole recipe run (cold start, rounds, scoring, DPO)",
                 "run": str(run)}
        if r["round"] > 0 and not any(run.glob(f"r{r['round'] - 1}s6-dpo*")):
            extra["note"] = f"no DPO after round {r['round'] - 1} (too few pairs): the generator stayed G_{r['round'] - 1}"
        if r["frame"].empty or r["frame"][train.target].notna().sum() == 0:
            entries.append({"method": f"synfed-r{r['round']}", **extra, "error": "no complete rows"})
        else:
            entries.append(_entry(f"synfed-r{r['round']}", r["frame"], train, test, seed, **extra))
    return entries, {"split_matches_run": info["split_matches_run"], "wall_s": info["wall_s"]}


def _peer_entries(method: str, train, test, seed: int, match: int | None, out_dir: Path,
                  options: dict, rows: int) -> list[dict]:
    """Fit one peer, save its rows, score all of them and (``match``) the first ``match`` rows."""
    import traceback

    from benchmarks.peers.tabular_fit import fit_and_sample

    opts = dict(options)
    if method == "great":
        steps_per_epoch = -(-len(train) // opts["great_batch"])
        opts["great_epochs"] = max(1, -(-opts.pop("great_steps") // steps_per_epoch))
    else:
        opts.pop("great_steps", None)
    if method == "great":
        rows = opts.pop("great_rows", None) or rows
    opts.pop("great_rows", None)
    try:
        syn, info = fit_and_sample(method, peer_input(train), categorical_columns(train), rows, seed, **opts)
    except Exception as e:  # noqa: BLE001 - a peer that fails is reported, never faked
        return [{"method": method, "error": f"{type(e).__name__}: {e}",
                 "traceback": traceback.format_exc()[-2000:]}]
    syn.to_csv(out_dir / f"{method}.csv", index=False)
    extra = {"wall_s": info.pop("wall_s"), "info": info}
    if method == "great":
        extra.update(responses=info["texts_generated"], complete_rows=info["texts_complete"])
    if syn.empty:
        return [{"method": method, **extra, "error": "no rows sampled"}]
    entries = [_entry(method, syn, train, test, seed, **extra)]
    if match and match < len(syn):
        entries.append(_entry(f"{method}@{match}", syn.head(match), train, test, seed, wall_s=extra["wall_s"],
                              note=f"the first {match} of the {len(syn)} rows above (SynFed's last-round count)"))
    return entries


def run_table(name: str, synfed: list[Path], methods: list[str], out: Path, seed: int, options: dict,
              rows: int | None = None) -> dict:
    """Every method on one table (module docstring); peers sample ``rows`` rows (default: len(train))."""
    table, train, test = real_split(name)
    rows = rows or len(train)
    out_dir = out / name
    out_dir.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"table": name, "source": table.source, "task": train.task, "target": train.target,
                           "train_rows": len(train), "test_rows": len(test), "test_size": RECIPE_TEST_SIZE,
                           "seed": seed, "sampled_rows": rows, "methods": []}
    res["methods"].append(_entry("real train rows (TRTR)", train.frame, train, test, seed))
    match, res["synfed"] = None, {}
    for run in synfed:  # the last run's last round with rows sets the matched size
        entries, res["synfed"][run.name] = _synfed_entries(run, train, test, seed)
        res["methods"] += entries
        match = next((e.get("complete_rows") for e in reversed(entries) if e.get("complete_rows")), match)
    for method in methods:
        print(f"[tabular-peers] {name}: {method} ...", flush=True)
        res["methods"] += _peer_entries(method, train, test, seed, match, out_dir, options, rows)
    return res


def flat_rows(results: list[dict]) -> pd.DataFrame:
    """One CSV row per table × method with the headline numbers."""
    rows = []
    for res in results:
        for e in res["methods"]:
            q = e.get("quality", {})
            sdm = q.get("sdmetrics", {})
            row = {"table": res["table"], "method": e["method"], "run": Path(e["run"]).name if e.get("run") else None,
                   "rows": q.get("synthetic_rows"),
                   "metric": q.get("metric")}
            row.update({f"tstr_{m}": v for m, v in q.get("tstr", {}).items()})
            row.update({f"trtr_{m}": v for m, v in q.get("trtr", {}).items()})
            row.update(sdmetrics_score=sdm.get("score"), column_shapes=sdm.get("column_shapes"),
                       column_pair_trends=sdm.get("column_pair_trends"),
                       dcr_median=q.get("dcr", {}).get("median"), dcr_copies=q.get("dcr", {}).get("copies"),
                       column_distance_mean=q.get("column_distance_mean"), responses=e.get("responses"),
                       json_valid=e.get("json_valid"), complete_rows=e.get("complete_rows"),
                       wall_s=e.get("wall_s"), error=e.get("error"))
            rows.append(row)
    return pd.DataFrame(rows)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("sdv", "sdmetrics", "be-great", "torch", "transformers", "scikit-learn", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None or (isinstance(v, float) and v != v) else format(v, spec)


def markdown(results: dict) -> str:
    """BENCHMARKS.md tables from a ``results.json``: one per data set, one line per method."""
    out = []
    for res in results["tables"]:
        out += [f"**{res['table']}** ({res['task']}, {res['train_rows']} real training rows, {res['test_rows']} "
                "real test rows)", "",
                "| method | rows | TSTR RF | TSTR linear | sdmetrics quality (shapes / pairs) | DCR median (copies) | "
                "complete rows | wall s |", "|---|---|---|---|---|---|---|---|"]
        for e in res["methods"]:
            q, name = e.get("quality"), e["method"] + (f" ({Path(e['run']).name})" if e.get("run") else "")
            if q is None:
                out.append(f"| {name} | — | failed: {e.get('error')} | | | | | {_fmt(e.get('wall_s'), '.0f')} |")
                continue
            lin = [v for k, v in q["tstr"].items() if k != "random_forest"]
            sdm = q.get("sdmetrics", {})
            quality = (f"{_fmt(sdm.get('score'))} ({_fmt(sdm.get('column_shapes'))} / "
                       f"{_fmt(sdm.get('column_pair_trends'))})" if "score" in sdm else "skipped")
            done = (f"{e['complete_rows']}/{e['responses']}" if e.get("responses") else "—")
            out.append(f"| {name} | {q['synthetic_rows']} | {_fmt(q['tstr'].get('random_forest'))} | "
                       f"{_fmt(lin[0] if lin else None)} | {quality} | {_fmt(q['dcr']['median'])} "
                       f"({q['dcr']['copies']}) | {done} | {_fmt(e.get('wall_s'), '.0f')} |")
        out.append("")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tabular_peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--tables", nargs="+", default=["iris", "penguins"], help="built-in tables (or files)")
    p.add_argument("--synfed", action="append", default=[], metavar="TABLE=RUN_DIR",
                   help="a SynFed run of that target table (repeatable, also per table)")
    p.add_argument("--methods", nargs="*", default=list(PEERS), choices=PEERS,
                   help="peers to fit (none: score SynFed runs only)")
    p.add_argument("--model", default=None, help="local HF folder for GReaT (default: the embedded smollm2-135m)")
    p.add_argument("--output", type=Path, default=None,
                   help="results folder (default benchmarks/results/tabular-peers-<date>)")
    p.add_argument("--seed", type=int, default=RECIPE_SEED)
    p.add_argument("--rows", type=int, default=None, help="rows each peer samples (default: the real train size)")
    p.add_argument("--great-rows", type=int, default=None, help="rows GReaT samples (default: --rows; its CPU "
                   "sampling is the slow part)")
    p.add_argument("--ctgan-epochs", type=int, default=300)
    p.add_argument("--great-steps", type=int, default=150, help="GReaT: optimizer steps, rounded up to whole epochs")
    p.add_argument("--great-batch", type=int, default=8)
    p.add_argument("--great-lr", type=float, default=5e-5)
    p.add_argument("--great-max-length", type=int, default=128)
    p.add_argument("--markdown", type=Path, default=None, metavar="RESULTS_JSON",
                   help="print the BENCHMARKS.md tables of a results.json and stop")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def inside(args: argparse.Namespace) -> Path:
    """The benchmark proper (in the peers' venv): every table, then results.json / results.csv."""
    out = args.output or ROOT / "benchmarks" / "results" / f"tabular-peers-{date.today().isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[Path]] = {}
    for spec in args.synfed:
        table, _, run = spec.partition("=")
        runs.setdefault(table, []).append(Path(run))
    options = {"model": args.model, "ctgan_epochs": args.ctgan_epochs, "great_steps": args.great_steps,
               "great_batch": args.great_batch, "great_lr": args.great_lr,
               "great_max_length": args.great_max_length, "great_rows": args.great_rows, "great_workdir": str(out / "_great_tmp")}
    t0 = time.perf_counter()
    results: list[dict] = []
    for name in args.tables:  # results.json is rewritten after every table
        results.append(run_table(name, runs.get(name, []), args.methods, out, args.seed, options, args.rows))
        meta = {"command": "python -m benchmarks.tabular_peers " + " ".join(a for a in sys.argv[1:] if a != "--inside"),
                "versions": _versions(), "cpu_threads": os.cpu_count(), "load_avg_1_5_15": os.getloadavg(),
                "total_s": time.perf_counter() - t0,
                "date": date.today().isoformat()}
        (out / "results.json").write_text(json.dumps({"meta": meta, "tables": results}, indent=1, default=float) + "\n")
    flat = flat_rows(results)
    flat.to_csv(out / "results.csv", index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(flat.drop(columns=["error"]).round(3).to_string(index=False))
    print(f"[tabular-peers] results → {out}")
    return out


def outside(argv: list[str]) -> int:
    """From the project venv: create the peers' venv if needed, find the model, re-run inside it."""
    args = parse_args(argv)
    subprocess.run(["bash", str(ROOT / "benchmarks" / "peers" / "tabular_venv.sh"), str(PEER_VENV)], check=True)
    extra = []
    if args.model is None and "great" in args.methods:
        from selfalign.recipes.common import base_model_path

        extra = ["--model", str(base_model_path("smollm2-135m"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [str(PEER_VENV / "bin" / "python"), "-m", "benchmarks.tabular_peers", "--inside", *argv, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if "--inside" in argv:
        inside(parse_args(argv))
        return 0
    return outside(argv)


if __name__ == "__main__":
    sys.exit(main())
