"""``selfalign judge``: score candidate records with one judge (rubric, pairwise_principle,
reward_model, function or meta) and report what happened."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import Field
from rich.console import Console

from selfalign.config import StrictModel
from selfalign.utils.progress import stats_table

_ARGS = typer.Argument(None, help="An optional config YAML, then KEY=VALUE overrides (e.g. judge.mode=expected).",
                       show_default=False)


class JudgeCommandConfig(StrictModel):
    """``selfalign judge``: input candidates → output scored records (meta: preference records)."""

    input: str = Field(description="candidate or scored records (jsonl/json/csv/parquet)")
    output: str = Field(description="records to write (JSON lines)")
    judge: dict[str, Any] = Field(description="judge config: type + that judge's options")
    limit: int | None = Field(None, ge=1, description="judge only the first N records")


def stats_path(output: str | Path) -> Path:
    """Where a command's statistics go: ``<output stem>.stats.json`` next to the output."""
    p = Path(output)
    return p.with_name(f"{p.stem}.stats.json")


def write_stats(output: str | Path, stats: dict[str, Any]) -> Path:
    """Write ``stats`` as JSON to :func:`stats_path` of ``output`` (atomically); return that path."""
    from selfalign.data.io import atomic_output

    path = stats_path(output)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(stats, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def check_candidates(path: str | Path, kind: str, limit: int | None = None) -> list[dict]:
    """Read records, checking each has a prompt and a ``responses`` list (file:line errors)."""
    from selfalign.data.io import iter_records
    from selfalign.errors import DataError

    out = []
    for line, rec, file in iter_records(path):
        if "prompt" not in rec:
            raise DataError("missing key", file, line, "prompt")
        resps = rec.get("responses")
        if not isinstance(resps, list):
            raise DataError("expected a list of responses (run `selfalign generate` first)", file, line,
                            "responses")
        for k, r in enumerate(resps):
            if not (isinstance(r, str) or (isinstance(r, dict) and isinstance(r.get("text"), str))):
                raise DataError("a response must be a string or have a 'text' string", file, line,
                                f"responses[{k}]")
            if kind == "meta" and not (isinstance(r, dict) and isinstance(r.get("judgements"), list)):
                raise DataError("the meta-judge needs scored records with judgements (run a rubric "
                                "judge in sample mode first)", file, line, f"responses[{k}].judgements")
        out.append(rec)
        if limit and len(out) >= limit:
            break
    if not out:
        raise DataError("no records (the file is empty, blank, or only a header)", path)
    return out


def judge(args: list[str] = _ARGS):
    """Score candidates with a judge; print parse-failure rate, score histogram, tie rate (and
    position consistency for pairwise judges), and write them to <output>.stats.json. Fails, writing
    nothing, when more than judge.max_parse_failure_rate (default 0.5) of the judgements could not be
    parsed, and when the output is the input or an existing folder.

    Example: selfalign judge input=candidates.jsonl output=scored.jsonl judge.type=rubric judge.model=smollm2-135m judge.mode=expected
    """
    from selfalign.config import load_config, split_config_args
    from selfalign.data.io import write_jsonl
    from selfalign.data.paths import check_outputs
    from selfalign.judges import build_judge, parse_judge_config
    from selfalign.judges.base import check_parse_failures

    path, overrides = split_config_args(list(args or []))
    cfg = load_config(JudgeCommandConfig, path, overrides)
    jcfg = parse_judge_config(cfg.judge, source=path or "")
    check_outputs({"input": cfg.input, "config": path},
                  {"output": cfg.output, "statistics": stats_path(cfg.output)})
    records = check_candidates(cfg.input, jcfg.type, cfg.limit)
    j = build_judge(jcfg)
    t0 = time.perf_counter()
    out = j.score_records(records)
    seconds = time.perf_counter() - t0
    stats = {**j.stats(), "seconds": seconds, "output_kind": j.output_kind}
    check_parse_failures(jcfg, stats)
    write_jsonl(cfg.output, out)
    where = write_stats(cfg.output, stats)
    Console(stderr=True).print(stats_table(stats, f"judge {j.name}: {cfg.input} → {cfg.output}"))
    typer.echo(f"{cfg.output}  (statistics: {where})")


def register(app: typer.Typer) -> None:
    app.command("judge", epilog="Keys with types, defaults and descriptions: selfalign config show judge TYPE")(judge)
