"""``selfalign eval``: a model's greedy answers to held-out prompts, their verifiable pass rates with
95% intervals, and (with ``baseline=``) a paired comparison with another model's answers."""

from __future__ import annotations

import typer
from pydantic import Field

from selfalign.stages.validate import ValidateStageConfig

_ARGS = typer.Argument(None, help="An optional config YAML, then KEY=VALUE overrides.", show_default=False)


class EvalCommandConfig(ValidateStageConfig):
    """The validate stage's settings, plus which model, prompts and where."""

    model: str = Field(..., description="registry name or model folder")
    heldout: str = Field(..., description="prompts file (meta.checks on verifiable prompts)")
    output_dir: str = Field(..., description="a run directory: answers in r0s1-validate/data.jsonl")
    baseline: str | None = Field(None, description="another model's answers (an earlier eval's data.jsonl)")
    self_judge: bool = False
    win_rate_judge: dict | None = None


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"


def eval_cmd(args: list[str] = _ARGS):
    """Answer held-out prompts greedily; print strict/loose pass rates with 95% Wilson intervals and,
    with baseline=, the paired difference and an exact McNemar p-value.

    Example: selfalign eval model=smollm2-135m heldout=examples/data/prompts_heldout.jsonl output_dir=runs/eval_m0 max_new_tokens=64
    """
    from selfalign.config import load_config, split_config_args
    from selfalign.data.paths import check_outputs
    from selfalign.eval.compare import compare_answers
    from selfalign.pipeline import Run
    from selfalign.recipes.common import base_model_path, check_files
    from selfalign.stages import run_stage

    path, overrides = split_config_args(list(args or []))
    cfg = load_config(EvalCommandConfig, path, overrides)
    check_files(path or "eval", heldout=cfg.heldout, baseline=cfg.baseline)
    check_outputs({"heldout": cfg.heldout, "baseline": cfg.baseline, "config": path},
                  {"output_dir": cfg.output_dir}, folders=("output_dir",))
    stage_cfg = ValidateStageConfig(**{k: getattr(cfg, k) for k in ValidateStageConfig.model_fields})
    run = Run(cfg.output_dir, cfg)
    res = run_stage(run, "validate", 0, 1, stage_cfg, model=base_model_path(cfg.model), heldout=cfg.heldout)
    answers = res.outputs["data"]
    own = compare_answers(answers, answers)
    typer.echo(f"strict pass rate {own['rate_a']:.3f} {_ci(own['ci_a'])} over {own['n']} prompts with checks; "
               f"loose {res.metrics.get('check_pass_rate'):.3f}; answers: {answers}")
    if cfg.baseline:
        c = compare_answers(answers, cfg.baseline)
        typer.echo(f"vs baseline: {c['rate_a']:.3f} {_ci(c['ci_a'])} vs {c['rate_b']:.3f} {_ci(c['ci_b'])} "
                   f"on {c['n']} shared prompts; difference {c['diff']:+.3f} (only this model passes "
                   f"{c['only_a']}, only the baseline {c['only_b']}; exact McNemar p = {c['mcnemar_p']:.3g})")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
