"""Self-Rewarding and Meta-Rewarding iterative DPO (spec: docs/recipes/self_rewarding.md).

Papers: "Self-Rewarding Language Models" (arXiv 2401.10020) and "Meta-Rewarding Language Models"
(arXiv 2407.19594); settings named as in NeMo-Aligner's self-rewarding algorithm. Read top to
bottom; each step is one shared stage (:mod:`selfalign.stages`) in the run directory::

    r0s1-sft        (optional, first_iteration_sft) SFT on the dataset's own answers → M_0
    r0s2-validate   held-out answers of M_0 (greedy): verifiable pass rate, self-judge score
    for t = 1..T  (M_t = current policy, also this iteration's frozen DPO reference)
      r{t}s1-generate  N samples per prompt from M_t (temperature 0.7, top_p 0.9)
      r{t}s2-judge     score every response (self-judge rubric by M_t K times, or any judge)
      r{t}s3-pair      one pair per prompt (max_min or length control ρ_t); meta pairs mixed in
      r{t}s4-train     DPO of M_t against reference M_t (train.beta_t) → M_{t+1}
      r{t}s5-validate  held-out answers of M_{t+1}: pass rate, self-judge, win rate vs M_0

Kill the run anywhere and re-run the same command: finished stages are skipped (their inputs and
config are unchanged), an unfinished trainer resumes from its last checkpoint, an unfinished
generation keeps its finished shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, model_validator

from selfalign.errors import ConfigError
from selfalign.judges.meta import MetaJudgeConfig
from selfalign.pipeline import Run
from selfalign.preferences import PairConfig
from selfalign.recipes.common import (
    RecipeConfig,
    base_model_path,
    check_files,
    finish_run,
    load_recipe_config,
    print_summary,
)
from selfalign.stages import (
    GenerateStageConfig,
    JudgeStageConfig,
    PairStageConfig,
    TrainStageConfig,
    ValidateStageConfig,
    run_stage,
)
from selfalign.stages.judge import uses_role
from selfalign.stages.sections import derive_section
from selfalign.stages.train import STAGE_SETS
from selfalign.train.config import DPOConfig, SFTConfig
from selfalign.utils.progress import console

# ------------------------------------------------------------------------------------------ config
RUN_SETS = {"seed": "the recipe's top-level seed", "dtype": "the recipe's top-level dtype"}
GenerateSection = derive_section(
    GenerateStageConfig, "GenerateSection", defaults={"num_samples": 4, "temperature": 0.7, "top_p": 0.9},
    recipe_sets={**RUN_SETS, "seed": "run seed × 100 + iteration", "prompt_seed": "run seed × 1000 + iteration",
                 "sample_prompts": "the top-level prompts_per_iteration"})
PairsSection = derive_section(PairConfig, "PairsSection", per_iteration=("rho",),
                              recipe_sets={"seed": "the recipe's top-level seed"})
MetaJudgeSection = derive_section(
    MetaJudgeConfig, "MetaJudgeSection", defaults={"batch_size": 16},
    recipe_sets={"type": "always meta", "model": "the policy M_t", "seed": "run seed × 100 + iteration",
                 "judge_template": "judge.template", "score_regex": "judge.score_regex",
                 "max_length": "train.max_length", "max_prompt_length": "train.max_prompt_length"},
    extra={"enabled": (bool, Field(False, description="use_meta_judge")),
           "pct": (float, Field(0.15, ge=0.0, lt=1.0, description="max fraction of training slots for meta pairs"))})
DPOSection = derive_section(
    DPOConfig, "DPOSection", per_iteration=("beta",), defaults={"save_steps": 10},
    recipe_sets={**STAGE_SETS, **RUN_SETS, "ref_model": "the reference is M_t, the policy of the iteration"})
SFTSection = derive_section(SFTConfig, "SFTSection", defaults={"save_steps": 10}, recipe_sets={**STAGE_SETS, **RUN_SETS})
ValidationSection = derive_section(ValidateStageConfig, "ValidationSection", recipe_sets=RUN_SETS,
                                   extra={"enabled": (bool, Field(True, description="validate M_0 and M_t")),
                                          "iterations": (Literal["all", "last"], Field(
                                              "all", description="which M_t (t ≥ 1) to validate: every one, or "
                                              "only the final model (M_0 always)"))})
MOVED = {"beta": "train.beta", "pairs.length_control": "pairs.rho (with pairs.strategy: length_control)"}


class SelfRewardingConfig(RecipeConfig):
    recipe: Literal["self_rewarding"] = "self_rewarding"
    iterations: int = Field(3, ge=1)
    prompts_file: str
    heldout_file: str | None = None
    prompts_per_iteration: int | None = Field(None, ge=1, description="a fresh sample of prompts each iteration")
    first_iteration_sft: bool = False
    sft_file: str | None = None
    sft: SFTSection = SFTSection()
    generate: GenerateSection = GenerateSection()
    # any judge: "model: self" = the current policy M_t, "model: base" = M_0
    judge: dict[str, Any] = Field(default_factory=lambda: {"type": "rubric", "model": "self", "mode": "sample",
                                                           "num_evals": 3})
    pairs: PairsSection = PairsSection()
    meta_judge: MetaJudgeSection = MetaJudgeSection()
    train: DPOSection = DPOSection()
    validation: ValidationSection = ValidationSection()

    @model_validator(mode="after")
    def _check(self):
        if self.first_iteration_sft and not self.sft_file:
            raise ValueError("first_iteration_sft needs sft_file")
        return self


# ---------------------------------------------------------------------------------- stage configs
@dataclass
class Iteration:
    """The resolved config of every stage of iteration ``t`` (built up front for all t)."""

    generate: GenerateStageConfig
    judge: JudgeStageConfig
    pair: PairStageConfig
    train: TrainStageConfig


def judge_config(cfg: SelfRewardingConfig, t: int, source: str = "") -> dict[str, Any]:
    """The judge section, with its sampling seed following the run seed and the iteration."""
    from selfalign.stages.judge import parse_role_judge

    if "seed" in cfg.judge:
        raise ConfigError(f"{source}: judge.seed: set by the recipe (run seed × 1000 + iteration); remove it")
    parsed = parse_role_judge(cfg.judge, "judge", source)
    return {**cfg.judge, "seed": cfg.seed * 1000 + t} if "seed" in type(parsed).model_fields else dict(cfg.judge)


def meta_judge_config(cfg: SelfRewardingConfig, t: int, source: str) -> dict[str, Any] | None:
    """The meta-judge of iteration ``t``: the main judge's template and regex, the policy as model."""
    if not cfg.meta_judge.enabled:
        return None
    j = cfg.judge
    if j.get("type") != "rubric" or j.get("mode", "sample") not in ("sample", "reasoned"):
        raise ConfigError(f"{source}: meta_judge.enabled: the meta-judge compares judgement texts, which only "
                          "judge.type=rubric with mode sample or reasoned writes")
    main = {k: j[k] for k in ("score_regex",) if k in j} | {"judge_template": j.get("template", "rubric")}
    mj = cfg.meta_judge.at(t - 1, "meta_judge", source, type="meta", model=".", seed=cfg.seed * 100 + t,
                           max_length=cfg.train.max_length, max_prompt_length=cfg.train.max_prompt_length, **main)
    return {**mj.model_dump(mode="json"), "model": "self"}


def iteration(cfg: SelfRewardingConfig, t: int, source: str = "") -> Iteration:
    """Stage configs of iteration ``t`` (1-based); validation errors name the recipe key."""
    gen = cfg.generate.at(t - 1, "generate", source, seed=cfg.seed * 100 + t, dtype=cfg.dtype,
                          sample_prompts=cfg.prompts_per_iteration, prompt_seed=cfg.seed * 1000 + t)
    pairs = cfg.pairs.at(t - 1, "pairs", source, seed=cfg.seed)
    pair = PairStageConfig(pairs=pairs, meta_judge=meta_judge_config(cfg, t, source), meta_pct=cfg.meta_judge.pct,
                           mix_seed=cfg.seed * 7919 + t)
    dpo = cfg.train.at(t - 1, "train", source, seed=cfg.seed, dtype=cfg.dtype, model=".", train_file=".",
                       output_dir=".")
    return Iteration(gen, JudgeStageConfig(judge=judge_config(cfg, t, source)), pair, TrainStageConfig.of("dpo", dpo))


def validate_config(cfg: SelfRewardingConfig, t: int, source: str = "") -> ValidateStageConfig:
    """Validation of M_t; M_0 (t = 0) is not compared with itself (no win-rate judge)."""
    extra = {"win_rate_judge": None} if t == 0 else {}
    return cfg.validation.at(t, "validation", source, seed=cfg.seed, dtype=cfg.dtype, **extra)


def sft_config(cfg: SelfRewardingConfig, source: str = "") -> TrainStageConfig:
    sft = cfg.sft.at(0, "sft", source, seed=cfg.seed, dtype=cfg.dtype, model=".", train_file=".", output_dir=".")
    return TrainStageConfig.of("sft", sft)


def check_config(cfg: SelfRewardingConfig, source: str = "") -> None:
    """Build every stage config of every iteration before any work (bad values → one line, exit 2)."""
    check_files(source, prompts_file=cfg.prompts_file, heldout_file=cfg.heldout_file, sft_file=cfg.sft_file)
    for t in range(1, cfg.iterations + 1):
        iteration(cfg, t, source)
        validate_config(cfg, t, source)
    if cfg.first_iteration_sft:
        sft_config(cfg, source)


# ---------------------------------------------------------------------------------------- the loop
def run_recipe(cfg: SelfRewardingConfig, source: str = "") -> Run:
    run = Run(cfg.run_dir, cfg)
    policy = base_model_path(cfg.model)
    if cfg.first_iteration_sft:
        sft = run_stage(run, "train", 0, 1, sft_config(cfg, source), label="sft", model=policy, data=cfg.sft_file)
        policy = sft.outputs["model"]
    m0, base_answers = policy, None
    validating = cfg.validation.enabled and cfg.heldout_file
    if validating:
        val = run_stage(run, "validate", 0, 2, validate_config(cfg, 0, source), model=m0, heldout=cfg.heldout_file)
        base_answers = val.outputs["data"]
    for t in range(1, cfg.iterations + 1):
        console.rule(f"[bold magenta]iteration {t}/{cfg.iterations}")
        it = iteration(cfg, t, source)
        gen = run_stage(run, "generate", t, 1, it.generate, model=policy, prompts=cfg.prompts_file)
        jud = run_stage(run, "judge", t, 2, it.judge, candidates=gen.outputs["data"],
                        policy=policy if uses_role(it.judge.judge, "self") else None,
                        base=m0 if uses_role(it.judge.judge, "base") else None)
        par = run_stage(run, "pair", t, 3, it.pair, scored=jud.outputs["data"],
                        policy=policy if it.pair.meta_judge else None)
        policy = run_stage(run, "train", t, 4, it.train, model=policy, data=par.outputs["data"]).outputs["model"]
        if validating and (cfg.validation.iterations == "all" or t == cfg.iterations):
            v = validate_config(cfg, t, source)
            run_stage(run, "validate", t, 5, v, model=policy, heldout=cfg.heldout_file, base_answers=base_answers,
                      base=m0 if uses_role(v.win_rate_judge, "base") else None)
    return run


def summary(run: Run) -> None:
    """Per-iteration summary: validation, pair, judge and train statistics."""
    print_summary(run, {
        "validate": ("verifiable_pass_rate", "verifiable_pass_rate_ci", "diff_vs_m0", "diff_vs_m0_ci", "p_vs_m0",
                     "mean_tokens", "cut_rate", "self_judge_mean", "win_rate_vs_m0", "judge_check_correlation"),
        "pair": ("pairs", "bad_samples_frac", "chosen_score_mean", "rejected_score_mean", "meta_pairs_made",
                 "meta_pairs_used"),
        "judge": ("parse_failure_rate", "judge_check_agreement"),
        "train": ("acc",)}, "selfalign run summary (round 0: M_0; round t: its data, and the model after t "
                            "iterations)", rename={"train.acc": "train_acc"})


def main(path: str, overrides: list[str]) -> Run:
    cfg = load_recipe_config(SelfRewardingConfig, path, overrides, MOVED)
    check_config(cfg, path)
    return finish_run(run_recipe(cfg, path), summary)
