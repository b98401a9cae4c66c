"""SALMON: principle-judged synthetic preferences → principle-following reward model → PPO
(spec: docs/recipes/salmon.md; paper: "SALMON: Self-Alignment with Instructable Reward Models",
arXiv 2310.05910). Read top to bottom; each step is one shared stage (:mod:`selfalign.stages`)::

    r0s1-generate   two responses per prompt from the policy M_0 (temperature 0.7, per-row seeds)
    r0s2-judge      every judging principle, both orders: the policy's next-token logits of a vs b
    r0s3-aggregate  sampled (and negated) principles per example and pass → labels → RM pairs
    r0s4-rm         train the principle-following reward model on the reviewer prompt
    r0s5-rm_check   RM held-out accuracy; how often its preference flips when a principle is negated
    r0s6-validate   held-out answers of M_0 (greedy): verifiable pass rate
    r1s1-ppo        PPO from M_0 with the RM (intervention + sampled principles), SALMON shaping
    r1s2-validate   held-out answers of the PPO policy: pass rate, win rate vs M_0

Kill the run anywhere and re-run the same command: finished stages are skipped, an unfinished
trainer resumes from its last checkpoint, an unfinished generation keeps its finished shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from selfalign.judges.pairwise_principle import PairwisePrincipleJudgeConfig
from selfalign.pipeline import Run
from selfalign.recipes.common import (
    RecipeConfig,
    base_model_path,
    check_files,
    finish_run,
    load_recipe_config,
    print_summary,
)
from selfalign.stages import (
    AggregateStageConfig,
    GenerateStageConfig,
    JudgeStageConfig,
    RMCheckStageConfig,
    TrainStageConfig,
    ValidateStageConfig,
    run_stage,
)
from selfalign.stages.judge import uses_role
from selfalign.stages.sections import derive_section
from selfalign.stages.train import STAGE_SETS
from selfalign.train.config import LengthRatioBonus, PPOConfig, ReviewerConfig, RMConfig
from selfalign.utils.progress import console

# ------------------------------------------------------------------------------------------ config
RUN_SETS = {"seed": "the recipe's top-level seed", "dtype": "the recipe's top-level dtype"}
GenerateSection = derive_section(
    GenerateStageConfig, "SalmonGenerateSection", defaults={"num_samples": 2, "temperature": 0.7},
    recipe_sets={**RUN_SETS, "sample_prompts": "the top-level max_prompts (first N prompts)",
                 "prompt_seed": "unused: the first max_prompts prompts are taken",
                 "max_prompts": "the top-level max_prompts"})
JudgeSection = derive_section(
    PairwisePrincipleJudgeConfig, "SalmonJudgeSection",
    recipe_sets={"type": "always pairwise_principle", "model": "the policy M_0 judges its own pairs (SALMON)",
                 "dtype": RUN_SETS["dtype"], "pairs": "two responses per prompt: one pair"})
AggregateSection = derive_section(
    AggregateStageConfig, "SalmonAggregateSection",
    recipe_sets={"seed": RUN_SETS["seed"], "principles": "judge.principles"})
RMSection = derive_section(
    RMConfig, "SalmonRMSection", defaults={"max_length": 640, "save_steps": 10},
    recipe_sets={**STAGE_SETS, **RUN_SETS,
                 "chat_template": "false: the reviewer prompt is already rendered (see docs/recipes/salmon.md)",
                 "validation_split": "0: the RM is measured on held-out *prompts* by rm_check (a random split "
                                     "would put passes of one prompt on both sides)"})
PPOSection = derive_section(
    PPOConfig, "SalmonPPOSection",
    defaults={"kl_coef": 0.01, "kl_estimator": "salmon", "gamma": 1.0, "lam": 1.0, "cliprange": 0.2,
              "cliprange_value": 0.2, "vf_coef": 0.1, "whiten_advantages": True, "reward_scale": 10.0,
              "no_stop_score": -6.0, "length_ratio_bonus": LengthRatioBonus(), "critic": "reward_model", "save_steps": 5},
    recipe_sets={**STAGE_SETS, **RUN_SETS,
                 "rewards": "the principle-following RM of r0s4, prompted as 'reviewer' says"},
    extra={"reviewer": (ReviewerConfig, Field(default_factory=ReviewerConfig,
                                              description="the RM's prompt at RL time"))})
RMCheckSection = derive_section(
    RMCheckStageConfig, "SalmonRMCheckSection",
    recipe_sets={"principles": "judge.principles", "template": "aggregate.template",
                 "max_length": "reward_model.max_length", "dtype": RUN_SETS["dtype"]})
ValidationSection = derive_section(ValidateStageConfig, "SalmonValidationSection", recipe_sets=RUN_SETS,
                                   defaults={"self_judge": False},
                                   extra={"enabled": (bool, Field(True, description="validate M_0 and the PPO policy"))})


class SalmonConfig(RecipeConfig):
    recipe: Literal["salmon"] = "salmon"
    prompts_file: str = Field(..., description="stage-1 prompts (synthetic preferences)")
    max_prompts: int | None = Field(None, ge=1, description="only the first N stage-1 prompts")
    rl_prompts_file: str | None = Field(None, description="PPO prompts (default: prompts_file); meta.kind = "
                                        "general | reasoning")
    heldout_file: str | None = None
    generate: GenerateSection = GenerateSection()
    judge: JudgeSection = JudgeSection()
    aggregate: AggregateSection = AggregateSection()
    reward_model: RMSection = RMSection()
    rm_check: RMCheckSection = RMCheckSection()
    ppo: PPOSection = PPOSection()
    validation: ValidationSection = ValidationSection()


# ---------------------------------------------------------------------------------- stage configs
@dataclass
class Stages:
    """The resolved config of every stage (built up front: a bad value fails before any work)."""

    generate: GenerateStageConfig
    judge: JudgeStageConfig
    aggregate: AggregateStageConfig
    rm: TrainStageConfig
    rm_check: RMCheckStageConfig
    ppo: TrainStageConfig
    validate_m0: ValidateStageConfig
    validate: ValidateStageConfig


def stage_configs(cfg: SalmonConfig, source: str = "") -> Stages:
    placeholders = {"model": ".", "train_file": ".", "output_dir": "."}
    gen = cfg.generate.at(0, "generate", source, seed=cfg.seed, dtype=cfg.dtype, max_prompts=cfg.max_prompts)
    judge = cfg.judge.at(0, "judge", source, type="pairwise_principle", model=".", dtype=cfg.dtype, pairs="first")
    agg = cfg.aggregate.at(0, "aggregate", source, seed=cfg.seed, principles=judge.principles)
    rm = cfg.reward_model.at(0, "reward_model", source, seed=cfg.seed, dtype=cfg.dtype, chat_template=False,
                             **placeholders)
    check = cfg.rm_check.at(0, "rm_check", source, principles=judge.principles, template=agg.template,
                            max_length=rm.max_length, dtype=cfg.dtype)
    reviewer = {**cfg.ppo.reviewer.model_dump(), "template": agg.template, "seed": cfg.seed}
    rewards = [{"type": "reward_model", "model": ".", "reviewer": reviewer, "max_length": rm.max_length}]
    ppo = cfg.ppo.at(0, "ppo", source, seed=cfg.seed, dtype=cfg.dtype, rewards=rewards, **placeholders)
    val0 = cfg.validation.at(0, "validation", source, seed=cfg.seed, dtype=cfg.dtype, win_rate_judge=None)
    val = cfg.validation.at(1, "validation", source, seed=cfg.seed, dtype=cfg.dtype)
    return Stages(gen, JudgeStageConfig(judge={**judge.model_dump(mode="json"), "model": "self"}), agg,
                  TrainStageConfig.of("rm", rm), check, TrainStageConfig.of("ppo", ppo), val0, val)


def check_config(cfg: SalmonConfig, source: str = "") -> Stages:
    """Every stage config, input file, principle list and template, before any work."""
    from selfalign.errors import ConfigError, DataError
    from selfalign.judges.templates import load_template
    from selfalign.principles import load_principles

    check_files(source, prompts_file=cfg.prompts_file, rl_prompts_file=cfg.rl_prompts_file,
                heldout_file=cfg.heldout_file)
    st = stage_configs(cfg, source)
    rev = cfg.ppo.reviewer
    placeholders = ("{instruction}", "{response}", "{principles}")
    checks = [("judge.principles", lambda: load_principles(cfg.judge.principles)),
              ("ppo.reviewer.principles", lambda: load_principles(rev.principles)),
              ("ppo.reviewer.intervention", lambda: rev.intervention and load_principles(rev.intervention)),
              ("aggregate.template", lambda: load_template(cfg.aggregate.template, placeholders)),
              ("ppo.reviewer.template", lambda: load_template(rev.template, placeholders))]
    for key, check in checks:
        try:
            check()
        except (DataError, ConfigError) as e:
            raise ConfigError(f"{source}: {key}: {e}") from None
    check_principle_use(cfg, source)
    return st


def check_principle_use(cfg: SalmonConfig, source: str) -> None:
    """What the lists must offer: negative definitions when principles are negated, enough RL principles
    with a weight for ``num_sampled``, at least one guideline, one reviewer template for RM and PPO."""
    from selfalign.errors import ConfigError
    from selfalign.principles import load_principles

    judging, rev = load_principles(cfg.judge.principles), cfg.ppo.reviewer
    if cfg.aggregate.negate_prob > 0:
        bare = [p.name for p in judging if not p.negative_definition.strip()]
        if bare:
            raise ConfigError(f"{source}: judge.principles: {', '.join(bare)} has no negative_definition, "
                              "needed when aggregate.negate_prob > 0 (add one, or set negate_prob: 0)")
    drawable = sum(p.weight > 0 for p in load_principles(rev.principles))
    if rev.num_sampled > drawable:
        raise ConfigError(f"{source}: ppo.reviewer.num_sampled: {rev.num_sampled} > the {drawable} principles "
                          f"with a weight in {rev.principles}")
    if rev.num_sampled == 0 and not rev.intervention:
        raise ConfigError(f"{source}: ppo.reviewer: no guideline would be shown (num_sampled 0, no intervention)")
    if "template" in cfg.ppo.reviewer.model_fields_set and rev.template != cfg.aggregate.template:
        raise ConfigError(f"{source}: ppo.reviewer.template: the RM scores the template it was trained on "
                          f"(aggregate.template = {cfg.aggregate.template!r}); set that one instead")


# ---------------------------------------------------------------------------------------- the chain
def run_recipe(cfg: SalmonConfig, st: Stages) -> Run:
    run = Run(cfg.run_dir, cfg)
    m0 = base_model_path(cfg.model)
    console.rule("[bold magenta]stage 1: synthetic preferences")
    gen = run_stage(run, "generate", 0, 1, st.generate, model=m0, prompts=cfg.prompts_file)
    jud = run_stage(run, "judge", 0, 2, st.judge, candidates=gen.outputs["data"], policy=m0)
    console.rule("[bold magenta]stage 2: principle-following reward model")
    agg = run_stage(run, "aggregate", 0, 3, st.aggregate, scored=jud.outputs["data"], model=m0)
    rm = run_stage(run, "train", 0, 4, st.rm, label="rm", model=m0, data=agg.outputs["data"]).outputs["model"]
    run_stage(run, "rm_check", 0, 5, st.rm_check, model=rm, examples=agg.outputs["examples"])
    validating = cfg.validation.enabled and cfg.heldout_file
    base_answers = None
    if validating:
        val = run_stage(run, "validate", 0, 6, st.validate_m0, model=m0, heldout=cfg.heldout_file)
        base_answers = val.outputs["data"]
    console.rule("[bold magenta]stage 3: PPO with the principle-following reward model")
    policy = run_stage(run, "train", 1, 1, st.ppo, label="ppo", model=m0, data=cfg.rl_prompts_file or cfg.prompts_file,
                       reward_model=rm).outputs["model"]
    if validating:
        run_stage(run, "validate", 1, 2, st.validate, model=policy, heldout=cfg.heldout_file,
                  base_answers=base_answers, base=m0 if uses_role(st.validate.win_rate_judge, "base") else None)
    return run


def summary(run: Run) -> None:
    print_summary(run, {
        "validate": ("verifiable_pass_rate", "verifiable_pass_rate_ci", "diff_vs_m0", "diff_vs_m0_ci", "p_vs_m0",
                     "mean_tokens", "cut_rate", "win_rate_vs_m0"),
        "judge": ("position_consistency", "label_mass_mean"),
        "aggregate": ("train_examples", "heldout_examples", "consistency_mean", "skipped_no_signal"),
        "rm_check": ("rm_heldout_acc", "rm_negation_flip_rate", "rm_negation_follow_rate"),
        "rm": ("acc", "eval_acc"), "ppo": ("reward_raw_mean", "kl", "eval_reward_raw_mean")},
        "selfalign SALMON summary (round 0: data, reward model and M_0; round 1: the PPO policy)",
        rename={"rm.acc": "rm_train_acc", "rm.eval_acc": "rm_eval_acc"})


def main(path: str, overrides: list[str]) -> Run:
    cfg = load_recipe_config(SalmonConfig, path, overrides)
    return finish_run(run_recipe(cfg, check_config(cfg, path)), summary)
