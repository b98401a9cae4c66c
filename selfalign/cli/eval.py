"""``selfalign eval MODEL --prompts FILE [--compare MODEL_0]``: a model's greedy answers to held-out
prompts, pass rates per constraint family with 95% intervals, mean answer length and the share cut
at the token limit, and (with ``--compare``) a paired comparison with another model or with an
earlier answer file. It runs the ``validate`` stage — the same code the recipes' validation uses —
in ``output_dir`` (``r0s1-validate`` for MODEL, ``r0s2-validate`` for a compared model), so an
interrupted eval resumes and a repeated one is instant; ``comparison.json`` holds every number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import Field

from selfalign.stages.validate import ValidateStageConfig

_ARGS = typer.Argument(None, help="MODEL (registry name or folder), an optional config YAML, then "
                       "KEY=VALUE overrides.", show_default=False)


class EvalCommandConfig(ValidateStageConfig):
    """The validate stage's settings, plus which model, prompts and where."""

    model: str = Field(..., description="registry name or model folder")
    heldout: str = Field(..., description="prompts file (meta.checks on verifiable prompts); --prompts")
    output_dir: str | None = Field(None, description="run directory (default runs/eval/<model name>)")
    baseline: str | None = Field(None, description="--compare: another model (registry name or folder) "
                                 "or its answers (an earlier eval's data.jsonl)")
    self_judge: bool = False
    win_rate_judge: dict | None = None


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"


def _split(args: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(model, config file, overrides): a YAML file is the config, another bare word the model."""
    model = path = None
    overrides = []
    for a in args:
        if "=" in a:
            overrides.append(a)
        elif a.endswith((".yaml", ".yml")) and Path(a).is_file() and path is None:
            path = a
        elif model is None:
            model = a
        else:
            raise typer.BadParameter(f"unexpected argument {a!r}: give MODEL, an optional config YAML "
                                     "and KEY=VALUE overrides")
    return model, path, overrides


def _family_table(res: dict[str, Any], compared: bool) -> None:
    from rich.table import Table

    from selfalign.utils.progress import console

    a = res["a"] if compared else res
    b = res["b"] if compared else None
    t = Table(title="pass rate per constraint family (Wilson 95% intervals)")
    t.add_column("family")
    t.add_column("n", justify="right")
    t.add_column("model", justify="right")
    if b:
        t.add_column("baseline", justify="right")
    for fam, v in a["per_family"].items():
        row = [fam, str(v["n"]), f"{v['rate']:.3f} {_ci(v['ci'])}"]
        if b:
            w = b["per_family"].get(fam)
            row.append(f"{w['rate']:.3f} {_ci(w['ci'])}" if w else "-")
        t.add_row(*row)
    console.print(t)


def _line(name: str, s: dict[str, Any]) -> str:
    length = (f"; mean {s['mean_tokens']:.1f} tokens, {s['cut_rate']:.0%} cut at the limit"
              if s.get("mean_tokens") is not None else "")
    return (f"{name}: strict {s['strict']:.3f} {_ci(s['strict_ci'])}, loose {s['loose']:.3f} {_ci(s['loose_ci'])}, "
            f"instruction-level strict {s['instruction_strict']:.3f} {_ci(s['instruction_strict_ci'])} "
            f"over {s['n']} prompts{length}")


def _answers(run, cfg: EvalCommandConfig, stage_cfg: ValidateStageConfig, model: str, step: int) -> Path:
    from selfalign.recipes.common import base_model_path
    from selfalign.stages import run_stage

    res = run_stage(run, "validate", 0, step, stage_cfg, model=base_model_path(model), heldout=cfg.heldout)
    return res.outputs["data"]


def eval_cmd(args: list[str] = _ARGS,
             prompts: str = typer.Option(None, "--prompts", help="held-out prompts file (= heldout=)"),
             compare: str = typer.Option(None, "--compare", help="baseline model, or its answers .jsonl"),
             output_dir: str = typer.Option(None, "--output-dir", help="run directory (= output_dir=)")):
    """Answer held-out prompts greedily (256 new tokens by default); print strict / loose /
    instruction-level pass rates with 95% bootstrap intervals, per-family rates, mean length and the
    share cut at the limit and, with --compare, the paired difference with its interval, a bootstrap
    and an exact McNemar p-value.

    Example: selfalign eval smollm2-135m --prompts examples/data/prompts_heldout.jsonl max_prompts=4 max_new_tokens=16 --output-dir runs/eval_m0
    """
    from selfalign.config import load_config
    from selfalign.data.io import write_text_atomic
    from selfalign.data.paths import check_outputs
    from selfalign.eval.compare import answer_outcomes, compare_outcomes
    from selfalign.eval.verifiable import summarize
    from selfalign.pipeline import Run
    from selfalign.recipes.common import check_files

    model, path, overrides = _split(list(args or []))
    overrides += [f"{k}={v}" for k, v in (("model", model), ("heldout", prompts), ("baseline", compare),
                                         ("output_dir", output_dir)) if v is not None]
    cfg = load_config(EvalCommandConfig, path, overrides)
    out = cfg.output_dir or str(Path("runs") / "eval" / Path(cfg.model.rstrip("/")).name)
    base_is_file = bool(cfg.baseline) and Path(cfg.baseline).is_file()
    check_files(path or "eval", heldout=cfg.heldout, baseline=cfg.baseline if base_is_file else None)
    check_outputs({"heldout": cfg.heldout, "baseline": cfg.baseline if base_is_file else None, "config": path},
                  {"output_dir": out}, folders=("output_dir",))
    stage_cfg = ValidateStageConfig(**{k: getattr(cfg, k) for k in ValidateStageConfig.model_fields})
    run = Run(out, cfg)
    answers = _answers(run, cfg, stage_cfg, cfg.model, 1)
    outs = answer_outcomes(answers)
    if cfg.baseline:
        base = Path(cfg.baseline) if base_is_file else _answers(run, cfg, stage_cfg, cfg.baseline, 2)
        res = compare_outcomes(outs, answer_outcomes(base), cfg.seed)
        _family_table(res, True)
        typer.echo(_line("model", res["a"]))
        typer.echo(_line("baseline", res["b"]))
        verdict = "an improvement" if res["improved"] else (
            "a decline" if res["diff_ci"] and res["diff_ci"][1] < 0 else "not distinguishable from no change")
        typer.echo(f"difference (strict) {res['diff']:+.3f} {_ci(res['diff_ci'])} on {res['n']} shared prompts: "
                   f"{verdict}; paired bootstrap p = {res['p_bootstrap']:.3g}; only the model passes "
                   f"{res['only_a']}, only the baseline {res['only_b']} (exact McNemar p = {res['mcnemar_p']:.3g}); "
                   f"loose {res['diff_loose']:+.3f} {_ci(res['diff_loose_ci'])}")
    else:
        res = summarize(outs, cfg.seed)
        _family_table(res, False)
        typer.echo(_line("model", res))
    write_text_atomic(Path(out) / "comparison.json", json.dumps(res, indent=1, default=float) + "\n")
    typer.echo(f"answers: {answers}; all numbers: {Path(out) / 'comparison.json'}")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
