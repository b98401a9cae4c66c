"""SynFed: federated synthetic tabular data from a generator improved by DPO on in-context utility
(spec: docs/recipes/synfed.md; seed 000). Read top to bottom; each step is one shared stage::

    r0s1-tabular_prepare    cold-start SFT records (every table but the target), the target's real
                            test split, per client: its rows (Dirichlet label skew), anchors, prompts
    r0s2-sft                the cold-start generator G_0 (SFT, leave-one-table-out)
    for round t = 0 … rounds:
      r{t}s1-generate-c{k}  num_repeat rows per prompt of client k from G_t
      r{t}s2-rows-c{k}      extract → client k's synthetic table + its downstream task records
      r{t}s7-quality        the round's synthetic rows vs the real test split (TSTR, DCR, …)
      (t < rounds:)
      r{t}s3-scorer-c{k}    client k's LoRA adapter on its task (SFT from the scoring base model)
      r{t}s4-score-c{k}     adapters merged (peft) → scoring model; gain = MCC(ds1) − MCC(ds0)
      r{t}s5-pairs          all-pairs preferences per prompt group, pooled over clients
      r{t}s6-dpo            DPO from G_0 on the pairs → G_{t+1}

Round t's quality is that of G_t's rows (round 0: the cold-start generator; round ``rounds``: the last
DPO model). A client with fewer usable rows than one scorer batch contributes no adapter, and a
round with fewer pairs than one DPO batch keeps its generator (both said on the console). Kill the
run anywhere and re-run the same command: finished stages are skipped, a trainer resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from selfalign.pipeline import Run
from selfalign.recipes.common import (
    RecipeConfig,
    base_model_path,
    finish_run,
    load_recipe_config,
    print_summary,
)
from selfalign.stages import (
    GenerateStageConfig,
    TabularPairsStageConfig,
    TabularPrepareStageConfig,
    TabularQualityStageConfig,
    TabularRowsStageConfig,
    TabularScoreStageConfig,
    TrainStageConfig,
    run_stage,
)
from selfalign.stages.sections import derive_section
from selfalign.stages.tabular_prepare import TableSpec, client_dirs
from selfalign.stages.train import STAGE_SETS
from selfalign.train.config import DPOConfig, LoraConfig, SFTConfig
from selfalign.utils.progress import console

RUN_SETS = {"seed": "the recipe's top-level seed", "dtype": "the recipe's top-level dtype"}
PrepareSection = derive_section(
    TabularPrepareStageConfig, "SynfedPrepareSection",
    recipe_sets={"tables": "the top-level tables", "target": "the top-level target", "seed": RUN_SETS["seed"]})
GenerateSection = derive_section(
    GenerateStageConfig, "SynfedGenerateSection",
    defaults={"num_samples": 4, "temperature": 0.8, "top_p": 0.9, "max_new_tokens": 160},
    recipe_sets={**RUN_SETS, "sample_prompts": "every prompt of the client is used",
                 "prompt_seed": "unused", "max_prompts": "prepare.max_prompts", "stop": "no stop strings"})
SFTSection = derive_section(
    SFTConfig, "SynfedSFTSection", defaults={"max_length": 640, "num_epochs": 1, "learning_rate": 5e-5},
    recipe_sets={**STAGE_SETS, **RUN_SETS})
ScorerSection = derive_section(
    SFTConfig, "SynfedScorerSection",
    defaults={"max_length": 384, "num_epochs": 1, "learning_rate": 2e-4,
              "lora": LoraConfig(r=8, alpha=16, dropout=0.0), "save_adapter_only": True},
    recipe_sets={**STAGE_SETS, **RUN_SETS})
ScoreSection = derive_section(TabularScoreStageConfig, "SynfedScoreSection", recipe_sets={"dtype": RUN_SETS["dtype"]})
PairsSection = derive_section(TabularPairsStageConfig, "SynfedPairsSection", recipe_sets={"seed": RUN_SETS["seed"]})
DPOSection = derive_section(
    DPOConfig, "SynfedDPOSection", defaults={"beta": 0.1, "learning_rate": 5e-7, "max_length": 640},
    recipe_sets={**STAGE_SETS, **RUN_SETS})


class SynfedConfig(RecipeConfig):
    recipe: Literal["synfed"] = "synfed"
    tables: list[TableSpec] = Field(..., min_length=2, description="the target table and the public tables "
                                    "the cold-start generator learns from (built-in names or files)")
    target: str = Field(..., description="name of the target table")
    rounds: int = Field(1, ge=0, description="DPO rounds")
    scorer_model: str | None = Field(None, description="base of the scoring model (default: model)")
    use_adapters: bool = Field(True, description="score with the clients' merged LoRA adapters (r1s3); "
                               "false: the scoring base model alone")
    prepare: PrepareSection = PrepareSection()
    sft: SFTSection = SFTSection()
    generate: GenerateSection = GenerateSection()
    scorer: ScorerSection = ScorerSection()
    score: ScoreSection = ScoreSection()
    pairs: PairsSection = PairsSection()
    dpo: DPOSection = DPOSection()


@dataclass
class Stages:
    prepare: TabularPrepareStageConfig
    sft: TrainStageConfig
    generate: GenerateStageConfig
    rows: TabularRowsStageConfig
    scorer: TrainStageConfig
    score: TabularScoreStageConfig
    pairs: TabularPairsStageConfig
    dpo: TrainStageConfig
    quality: TabularQualityStageConfig


def check_config(cfg: SynfedConfig, source: str = "") -> Stages:
    """Every stage config, before any work."""
    from selfalign.errors import ConfigError

    names = [t.name or t.table.removeprefix("sklearn:") for t in cfg.tables]
    if cfg.target not in names:
        raise ConfigError(f"{source}: target: {cfg.target!r} is not one of the tables ({', '.join(names)})")
    placeholders = {"model": ".", "train_file": ".", "output_dir": "."}
    run = {"seed": cfg.seed, "dtype": cfg.dtype}
    prep = cfg.prepare.at(0, "prepare", source, tables=[t.model_dump() for t in cfg.tables], target=cfg.target,
                          seed=cfg.seed)
    gen = cfg.generate.at(0, "generate", source, **run)
    sft = cfg.sft.at(0, "sft", source, **run, **placeholders)
    scorer = cfg.scorer.at(0, "scorer", source, **run, **placeholders)
    dpo = cfg.dpo.at(0, "dpo", source, **run, **placeholders)
    return Stages(prep, TrainStageConfig.of("sft", sft), gen, TabularRowsStageConfig(),
                  TrainStageConfig.of("sft", scorer), cfg.score.at(0, "score", source, dtype=cfg.dtype),
                  cfg.pairs.at(0, "pairs", source, seed=cfg.seed), TrainStageConfig.of("dpo", dpo),
                  TabularQualityStageConfig(seed=cfg.seed))


def _batch(train: TrainStageConfig) -> int:
    """Examples in one global batch of a single-process trainer (fewer cannot train)."""
    o = train.options
    return int(o.get("per_device_batch_size", 1)) * int(o.get("gradient_accumulation_steps", 1))


def _sample_and_measure(run: Run, st: Stages, t: int, generator, clients, test) -> dict:
    """Round t's rows from ``generator`` for every client (generate, extract) and their quality."""
    out = {}
    for k, c in enumerate(clients):
        gen = run_stage(run, "generate", t, 1, st.generate, label=f"generate-c{k}", model=generator,
                        prompts=c / "prompts.jsonl")
        rows = run_stage(run, "tabular_rows", t, 2, st.rows, label=f"rows-c{k}", candidates=gen.outputs["data"],
                         table=c / "table")
        out[k] = (gen, rows)
    parts = {f"rows_c{k}": rows.outputs["rows"] for k, (_, rows) in out.items()}
    parts.update({f"table_c{k}": c / "table" for k, c in enumerate(clients)})
    run_stage(run, "tabular_quality", t, 7, st.quality, label="quality", test=test, **parts)
    return out


def run_recipe(cfg: SynfedConfig, st: Stages) -> Run:
    run = Run(cfg.run_dir, cfg)
    base = base_model_path(cfg.model)
    scorer_base = base_model_path(cfg.scorer_model or cfg.model)
    console.rule("[bold magenta]round 0: tables, splits, anchors; the cold-start generator")
    prep = run_stage(run, "tabular_prepare", 0, 1, st.prepare)
    clients, test = client_dirs(prep.outputs["nodes"]), prep.outputs["test"]
    g0 = run_stage(run, "train", 0, 2, st.sft, label="sft", model=base, data=prep.outputs["sft"]).outputs["model"]
    generator = g0
    for t in range(cfg.rounds + 1):
        console.rule(f"[bold magenta]round {t}: rows from G_{t}" + (", scoring, DPO" if t < cfg.rounds else ""))
        sampled = _sample_and_measure(run, st, t, generator, clients, test)
        if t == cfg.rounds:
            break
        adapters = {}
        if cfg.use_adapters:
            need = _batch(st.scorer)
            for k, (_, rows) in sampled.items():
                if rows.metrics.get("synthetic_rows", 0) < need:
                    console.print(f"[yellow]client {k}: {rows.metrics.get('synthetic_rows', 0)} usable rows, "
                                  f"fewer than one scorer batch ({need}): no adapter from this client[/]")
                    continue
                adapters[f"adapter_c{k}"] = run_stage(run, "train", t, 3, st.scorer, label=f"scorer-c{k}",
                                                      model=scorer_base, data=rows.outputs["task"]).outputs["model"]
        groups = {}
        for k, c in enumerate(clients):
            sc = run_stage(run, "tabular_score", t, 4, st.score, label=f"score-c{k}", model=scorer_base,
                           candidates=sampled[k][0].outputs["data"], table=c / "table", anchors=c / "anchors",
                           **adapters)
            groups[f"groups_c{k}"] = sc.outputs["data"]
        pairs = run_stage(run, "tabular_pairs", t, 5, st.pairs, label="pairs", **groups)
        if pairs.metrics.get("pairs", 0) < _batch(st.dpo):
            console.print(f"[yellow]round {t}: {pairs.metrics.get('pairs', 0)} preference pairs, fewer than one "
                          f"DPO batch: the generator stays G_{t}[/]")
            continue
        generator = run_stage(run, "train", t, 6, st.dpo, label="dpo", model=g0,
                              data=pairs.outputs["data"]).outputs["model"]
    return run


def summary(run: Run) -> None:
    clients = range(16)
    picks = {"quality": ("synthetic_rows", "tstr_random_forest", "tstr_logistic", "trtr_random_forest",
                         "trtr_logistic", "dcr_median", "dcr_copies", "column_distance_mean"),
             "pairs": ("pairs", "ties"), "dpo": ("loss", "acc"),
             **{f"rows-c{k}": ("json_valid_rate", "success_rate") for k in clients},
             **{f"score-c{k}": ("ds0_mcc", "gain_mean", "gain_positive_rate") for k in clients}}
    rename = {f"{stage}-c{k}.{m}": f"c{k}_{m}" for k in clients for stage, ms in
              (("rows", ("json_valid_rate", "success_rate")), ("score", ("ds0_mcc", "gain_mean", "gain_positive_rate")))
              for m in ms}
    print_summary(run, picks, "selfalign SynFed summary (round t = rows of generator G_t; TSTR next to "
                  "train-on-real; MCC for classification, R² for regression)", rename=rename)


def main(path: str, overrides: list[str]) -> Run:
    cfg = load_recipe_config(SynfedConfig, path, overrides)
    return finish_run(run_recipe(cfg, check_config(cfg, path)), summary)
