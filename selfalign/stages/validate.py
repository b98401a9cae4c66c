"""Stage ``validate``: greedy answers of a model on held-out prompts, and what they are worth.

Inputs: ``model`` (the model to validate), ``heldout`` (prompts, ``meta.checks`` for verifiable
ones), optionally ``base`` (M_0, for judges with ``model: base``) and ``base_answers`` (M_0's
answers, from M_0's validate stage, for the win rate). Output: ``data`` (answers with scores).

Metrics (over prompts with checks, one greedy answer each; intervals are 95% percentile
bootstrap, :mod:`selfalign.eval.stats`): ``verifiable_pass_rate`` (prompt-level strict: every check
passes) with ``verifiable_pass_rate_ci``; ``loose_pass_rate`` (prompt-level, IFEval's loose rule) with
its interval; ``check_pass_rate`` (instruction-level strict: share of all checks passed) with its
interval; ``mean_tokens`` and ``cut_rate`` (answers stopped by ``max_new_tokens``); with M_0's answers
(``base_answers``) the paired comparison: ``diff_vs_m0`` with ``diff_vs_m0_ci`` (paired bootstrap),
``p_vs_m0`` (bootstrap), ``mcnemar_p_vs_m0`` (exact McNemar), ``gained_vs_m0`` / ``lost_vs_m0`` and
``improved_vs_m0`` (the interval lies above 0). Output ``summary`` (``summary.json``) adds per-family
rates with Wilson intervals. With ``self_judge``, the model's own rubric score of its answers
(expected mode) and its Pearson correlation with the fraction of checks passed; with a
``win_rate_judge`` and M_0's answers, ``win_rate_vs_m0`` = (wins + ½ ties) / n over prompts where
the judge scored both answers (each answer scored on its own; higher wins).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import stage
from selfalign.stages.generate import GenerateStageConfig, generate_into
from selfalign.stages.judge import parse_role_judge, resolve_roles
from selfalign.utils.progress import console


class ValidateStageConfig(StrictModel):
    """How held-out answers are made (greedy) and judged."""

    max_prompts: int | None = Field(None, ge=1, description="only the first N held-out prompts")
    max_new_tokens: int = Field(256, ge=1)
    batch_size: int = Field(32, ge=1)
    self_judge: bool = Field(True, description="score the answers with the model's own rubric (expected mode)")
    win_rate_judge: dict[str, Any] | None = Field(
        default_factory=lambda: {"type": "rubric", "mode": "expected", "model": "base"},
        description="judge that scores the model's and M_0's answers to each prompt (higher wins); "
        "model: self = the validated model, base = M_0")
    seed: int = 0
    dtype: str = "float32"

    @field_validator("win_rate_judge")
    @classmethod
    def _valid(cls, v: dict | None) -> dict | None:
        if v is not None:
            parse_role_judge(v, "validation.win_rate_judge")
        return v


def self_judge_metrics(model: Path, records: list[dict]) -> tuple[list[dict], dict[str, Any]]:
    """Score answers with ``model``'s rubric (expected mode); mean score and correlation with checks."""
    from selfalign.checks import has_checks, run_checks
    from selfalign.eval.verifiable import pearson
    from selfalign.judges import build_judge

    records = build_judge({"type": "rubric", "mode": "expected", "model": str(model)}).score_records(records)
    scores = [s for r in records if (s := r["responses"][0].get("score")) is not None]
    xs, ys = [], []
    for r in records:
        s0 = r["responses"][0].get("score")
        if s0 is not None and has_checks(r.get("meta")):
            xs.append(s0)
            ys.append(run_checks(r["responses"][0]["text"], r["meta"]).fraction or 0.0)
    return records, {"self_judge_mean": sum(scores) / len(scores) if scores else None,
                     "judge_check_correlation": pearson(xs, ys) if len(xs) >= 2 else None}


def win_rate(judge_cfg: dict, records: list[dict], base_answers: Path, model: Path, base: Path | None
             ) -> dict[str, Any]:
    """(wins + ½ ties) / n of ``records``' answers against M_0's, scored by one judge."""
    from selfalign.data.io import read_records
    from selfalign.judges import build_judge

    base_recs = {r["id"]: r for r in read_records(base_answers)}
    strip = ("score", "score_var", "judgements")
    pairs = [{**r, "responses": [{k: v for k, v in x.items() if k not in strip}
                                 for x in (r["responses"][0], base_recs[r["id"]]["responses"][0])]}
             for r in records if r["id"] in base_recs]
    judged = build_judge(resolve_roles(judge_cfg, model, base)).score_records(pairs)
    wins = ties = n = 0
    for p in judged:
        a, b = p["responses"][0].get("score"), p["responses"][1].get("score")
        if a is None or b is None:
            continue
        n += 1
        wins += a > b
        ties += a == b
    return {"win_rate_vs_m0": (wins + 0.5 * ties) / n if n else None, "win_rate_n": n}


def heldout_metrics(records: list[dict], base_answers: Path | None, seed: int = 0
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(flat stage metrics, full summary) of greedy answers on prompts with checks (see the module
    docstring); the comparison with M_0 when ``base_answers`` is given."""
    from selfalign.eval.compare import answer_outcomes, compare_outcomes
    from selfalign.eval.verifiable import outcomes, summarize

    outs = outcomes(records)
    s = summarize(outs, seed)
    m: dict[str, Any] = {"verifiable_pass_rate": s["strict"], "verifiable_pass_rate_ci": s["strict_ci"],
                         "loose_pass_rate": s["loose"], "loose_pass_rate_ci": s["loose_ci"],
                         "check_pass_rate": s["instruction_strict"], "check_pass_rate_ci": s["instruction_strict_ci"],
                         "verifiable_prompts": s["n"], "mean_tokens": s["mean_tokens"], "cut_rate": s["cut_rate"]}
    summary: dict[str, Any] = {"model": s}
    if base_answers is not None:
        c = compare_outcomes(outs, answer_outcomes(base_answers), seed)
        m.update(diff_vs_m0=c["diff"], diff_vs_m0_ci=c["diff_ci"], p_vs_m0=c["p_bootstrap"],
                 mcnemar_p_vs_m0=c["mcnemar_p"], gained_vs_m0=c["only_a"], lost_vs_m0=c["only_b"],
                 improved_vs_m0=c["improved"])
        summary["vs_m0"] = c
    return m, summary


def _fmt(k: str, x: Any) -> str:
    if isinstance(x, float):
        return f"{k}={x:.4g}"
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, float) for v in x):
        return f"{k}=[{x[0]:.3f}, {x[1]:.3f}]"
    return f"{k}={x}"


@stage("validate", ValidateStageConfig)
def validate(st: Stage, cfg: ValidateStageConfig, *, model: Path, heldout: Path, base: Path | None = None,
             base_answers: Path | None = None) -> dict:
    from selfalign.data.io import read_records, write_jsonl, write_text_atomic

    gen = GenerateStageConfig(num_samples=1, temperature=0.0, max_new_tokens=cfg.max_new_tokens,
                              batch_size=cfg.batch_size, seed=cfg.seed, dtype=cfg.dtype,
                              max_prompts=cfg.max_prompts)
    answers = st.dir / "answers.jsonl"
    generate_into(gen, model, read_records(heldout)[: cfg.max_prompts], answers)
    records = read_records(answers)
    metrics, summary = heldout_metrics(records, base_answers, cfg.seed)
    write_text_atomic(st.output("summary", "summary.json"), json.dumps(summary, indent=1, default=float) + "\n")
    if cfg.self_judge:
        records, m = self_judge_metrics(model, records)
        metrics.update(m)
    if cfg.win_rate_judge and base_answers is not None:
        metrics.update(win_rate(cfg.win_rate_judge, records, base_answers, model, base))
    write_jsonl(st.output("data", "data.jsonl"), records)
    console.print("  validation: " + ", ".join(_fmt(k, x) for k, x in metrics.items()))
    return metrics
