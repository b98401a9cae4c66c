"""Self-Rewarding and Meta-Rewarding iterative DPO (workflows.md §1).

Papers: "Self-Rewarding Language Models" (arXiv 2401.10020) and "Meta-Rewarding Language Models"
(arXiv 2407.19594). Read top to bottom; each step is one stage of the run directory::

    r0s1-sft        (optional, first_iteration_sft) SFT on the dataset's own answers → M_1 seed
    r0s2-validate   held-out answers of M_0 (greedy): verifiable pass rate, self-judge score
    for t = 1..T  (M_t = current policy, also this iteration's frozen DPO reference)
      r{t}s1-generate  N samples per prompt from M_t (temperature 0.7, top_p 0.9)
      r{t}s2-judge     score every response (self-judge rubric by M_t K times, or any judge)
      r{t}s3-pair      one pair per prompt (max_min or length control ρ_t); meta pairs mixed in
      r{t}s4-train     DPO of M_t against reference M_t (β_t) → M_{t+1}
      r{t}s5-validate  held-out answers of M_{t+1}: pass rate, self-judge, win rate vs M_0

Kill the run anywhere and re-run the same command: finished stages are skipped (their inputs and
config are unchanged), an unfinished trainer resumes from its last checkpoint, an unfinished
generation keeps its finished shards.
"""

from __future__ import annotations

import math
import random
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from selfalign.config import StrictModel, load_config, per_iteration
from selfalign.data.io import read_records, write_jsonl
from selfalign.errors import ConfigError
from selfalign.pipeline import Run, Stage
from selfalign.utils.progress import console, stats_table


# ------------------------------------------------------------------------------------------ config
class GenerateSection(StrictModel):
    num_samples: int = Field(4, ge=1, description="N responses per prompt (num_responses_to_gen)")
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 0
    max_new_tokens: int = 256
    batch_size: int = 32


class PairsSection(StrictModel):
    strategy: Literal["max_min", "length_control"] = "max_min"
    length_control: float | list[float] = 0.0  # ρ, scalar or per iteration (e.g. [0, 0, 0.1])
    min_margin: float = 0.0
    include_unfinished: bool = False


class MetaJudgeSection(StrictModel):
    enabled: bool = False  # use_meta_judge
    pct: float = Field(0.15, ge=0.0, lt=1.0, description="max fraction of training slots for meta pairs")
    max_class_frac: float = 0.4
    template: str | None = None
    mode: Literal["generate", "expected"] = "generate"  # expected: P(A) vs P(B), for tiny models
    max_new_tokens: int = 256
    batch_size: int = 16


class ValidationSection(StrictModel):
    enabled: bool = True
    max_prompts: int | None = None
    max_new_tokens: int = 256
    batch_size: int = 32
    self_judge: bool = True  # score held-out answers with M_t's rubric (expected mode)
    # judge that compares M_t's answer with M_0's on each held-out prompt (scores both; higher wins)
    win_rate_judge: dict[str, Any] | None = Field(
        default_factory=lambda: {"type": "rubric", "mode": "expected", "model": "base"})


class SelfRewardingConfig(StrictModel):
    recipe: Literal["self_rewarding"] = "self_rewarding"
    name: str
    output_root: str = "runs"
    model: str = "smollm2-135m"
    seed: int = 0
    iterations: int = Field(3, ge=1)
    prompts_file: str
    heldout_file: str | None = None
    prompts_per_iteration: int | None = None  # a fresh sample of prompts each iteration
    first_iteration_sft: bool = False
    sft_file: str | None = None
    sft: dict[str, Any] = Field(default_factory=dict)  # SFT trainer options
    generate: GenerateSection = GenerateSection()
    # any judge: "model: self" = the current policy M_t, "model: base" = M_0
    judge: dict[str, Any] = Field(default_factory=lambda: {"type": "rubric", "model": "self",
                                                           "mode": "sample", "num_evals": 3})
    pairs: PairsSection = PairsSection()
    meta_judge: MetaJudgeSection = MetaJudgeSection()
    beta: float | list[float] = 0.1  # ref_policy_kl_penalty, scalar or per iteration
    train: dict[str, Any] = Field(default_factory=dict)  # DPO trainer options (selfalign train dpo)
    validation: ValidationSection = ValidationSection()
    dtype: str = "float32"

    @model_validator(mode="after")
    def _check(self):
        if self.first_iteration_sft and not self.sft_file:
            raise ValueError("first_iteration_sft needs sft_file")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_root) / self.name


# --------------------------------------------------------------------------------------- helpers
def _judge_cfg(cfg: dict, policy: Path, base: Path) -> dict:
    """Resolve ``model: self|base`` (also inside ``combine.with``) to model paths."""
    out = dict(cfg)
    m = out.get("model", None)
    if m == "self":
        out["model"] = str(policy)
    elif m == "base":
        out["model"] = str(base)
    comb = out.get("combine")
    if isinstance(comb, dict) and isinstance(comb.get("with"), dict):
        out["combine"] = {**comb, "with": _judge_cfg(comb["with"], policy, base)}
    return out


def _section(model_cls, key: str, data: dict, source: str = ""):
    """Validate ``data`` as section ``key`` so errors name the full key path (``train.x``)."""
    from pydantic import create_model

    from selfalign.config import validate

    wrapper = create_model(f"_{key}", __base__=StrictModel, **{key: (model_cls, ...)})
    return getattr(validate(wrapper, {key: data}, source), key)


def _dpo_config(cfg: SelfRewardingConfig, t: int, model: Path, pairs: Path, out: Path, source: str = ""):
    from selfalign.train.config import DPOConfig

    data = {"seed": cfg.seed, "dtype": cfg.dtype, **cfg.train, "model": str(model),
            "train_file": str(pairs), "output_dir": str(out), "beta": per_iteration(cfg.beta, t - 1),
            "resume": True}
    return _section(DPOConfig, "train", data, source)


def _sample_prompts(records: list[dict], n: int | None, seed: int, t: int) -> list[dict]:
    if n is None or n >= len(records):
        return records
    rng = random.Random(seed * 1000 + t)
    return rng.sample(records, n)


def _model_dir(result) -> Path:
    return result.outputs["model"]


# ------------------------------------------------------------------------------------------ stages
def _generate(model: Path, records: list[dict], out: Path, *, num_samples: int, temperature: float,
              max_new_tokens: int, batch_size: int, seed: int, dtype: str, top_p: float = 1.0,
              top_k: int = 0) -> dict:
    """Sample with the batched HF engine into ``out`` (sharded, so a killed stage keeps its shards)."""
    import time

    from selfalign.generation import (
        EngineConfig,
        SamplingParams,
        build_engine,
        generate_records,
        generation_summary,
    )

    engine = build_engine(EngineConfig(model=str(model), batch_size=batch_size, dtype=dtype))
    params = SamplingParams(num_samples=num_samples, temperature=temperature, top_p=top_p, top_k=top_k,
                            max_new_tokens=max_new_tokens, seed=seed)
    t0 = time.perf_counter()
    recs = generate_records(engine, records, params, out, shard_size=32, overwrite=True)
    return generation_summary(recs, time.perf_counter() - t0)


def stage_generate(st: Stage, cfg: SelfRewardingConfig, model: Path, prompts: list[dict]) -> dict:
    g = cfg.generate
    return _generate(model, prompts, st.output("data", "data.jsonl"), num_samples=g.num_samples,
                     temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                     max_new_tokens=g.max_new_tokens, batch_size=g.batch_size,
                     seed=cfg.seed * 100 + st.round, dtype=cfg.dtype)


def stage_judge(st: Stage, cfg: SelfRewardingConfig, candidates: Path, policy: Path, base: Path) -> dict:
    from selfalign.judges import build_judge

    judge = build_judge(_judge_cfg(cfg.judge, policy, base))
    records = read_records(candidates)
    scored = judge.score_records(records)
    write_jsonl(st.output("data", "data.jsonl"), scored)
    s = judge.stats()
    console.print(stats_table({k: v for k, v in s.items() if k != "judge"}, f"judge: {s.get('judge')}"))
    from selfalign.eval.verifiable import judge_agreement_from_records

    agree = judge_agreement_from_records(scored)
    n_resp = sum(len(r["responses"]) for r in records)
    bad_ends = sum(1 for r in records for x in r["responses"] if x.get("finish") != "stop")
    return {**{k: v for k, v in s.items() if isinstance(v, (int, float)) or v is None},
            "bad_ends_frac": bad_ends / max(n_resp, 1),
            "judge_check_agreement": agree.get("agreement"), "judge_check_pairs": agree.get("pairs")}


def stage_pair(st: Stage, cfg: SelfRewardingConfig, scored: Path, policy: Path) -> dict:
    from selfalign.preferences import build_pairs

    t = st.round
    records = read_records(scored)
    rho = per_iteration(cfg.pairs.length_control, t - 1)
    strategy = "length_control" if (cfg.pairs.strategy == "length_control" or rho > 0) else "max_min"
    opts: dict[str, Any] = {"min_margin": cfg.pairs.min_margin,
                            "include_unfinished": cfg.pairs.include_unfinished}
    if strategy == "length_control":
        opts["rho"] = rho
    pairs, stats = build_pairs(records, strategy=strategy, **opts)
    metrics: dict[str, Any] = {"rho": rho, **{k: v for k, v in stats.items()
                                              if isinstance(v, (int, float)) or v is None}}
    meta_pairs: list[dict] = []
    if cfg.meta_judge.enabled:
        from selfalign.judges import build_judge

        mj: dict[str, Any] = {"type": "meta", "model": str(policy), "seed": cfg.seed * 100 + t,
                              "max_class_frac": cfg.meta_judge.max_class_frac, "mode": cfg.meta_judge.mode,
                              "max_new_tokens": cfg.meta_judge.max_new_tokens,
                              "batch_size": cfg.meta_judge.batch_size}
        if cfg.meta_judge.template:
            mj["template"] = cfg.meta_judge.template
        judge = build_judge(mj)
        made = judge.score_records(records)
        metrics["meta_pairs_made"] = len(made)
        # at most pct of the training slots: n_meta <= pct / (1 - pct) * n_main (bad samples are
        # not slots, so they can never let meta pairs overflow the cap)
        cap = math.floor(cfg.meta_judge.pct / (1 - cfg.meta_judge.pct) * len(pairs) + 1e-9)
        rng = random.Random(cfg.seed * 7919 + t)
        meta_pairs = rng.sample(made, min(cap, len(made)))
        metrics["meta_pairs_used"] = len(meta_pairs)
        metrics.update({f"meta_{k}": v for k, v in judge.stats().items()
                        if isinstance(v, (int, float)) or v is None})
    all_pairs = pairs + meta_pairs
    if not all_pairs:
        raise ConfigError(f"iteration {t}: no preference pairs could be built "
                          f"({stats.get('bad_samples', 0)} bad samples); more prompts or samples needed")
    write_jsonl(st.output("data", "data.jsonl"), all_pairs)
    metrics["train_pairs"] = len(all_pairs)
    return metrics


def stage_train(st: Stage, cfg: SelfRewardingConfig, pairs: Path, policy: Path) -> dict:
    from selfalign.train.dpo import train_dpo

    st.output("model", "model")  # the trainer writes st.dir/model and st.dir/checkpoints
    dcfg = _dpo_config(cfg, st.round, policy, pairs, st.dir)
    final = train_dpo(dcfg, metrics=st.logger(echo_every=0))
    return {k: v for k, v in (final or {}).items() if isinstance(v, (int, float))}


def stage_sft(st: Stage, cfg: SelfRewardingConfig, data: Path, model: Path) -> dict:
    from selfalign.config import validate
    from selfalign.train.config import SFTConfig
    from selfalign.train.sft import train_sft

    st.output("model", "model")
    scfg = validate(SFTConfig, {"seed": cfg.seed, "dtype": cfg.dtype, **cfg.sft, "model": str(model),
                                "train_file": str(data), "output_dir": str(st.dir), "resume": True}, "sft")
    final = train_sft(scfg, metrics=st.logger())
    return {k: v for k, v in (final or {}).items() if isinstance(v, (int, float))}


def stage_validate(st: Stage, cfg: SelfRewardingConfig, model: Path, base: Path, heldout: Path,
                   base_answers: Path | None) -> dict:
    """Greedy held-out answers of ``model``; pass rate, self-judge score, win rate vs M_0."""
    from selfalign.eval.verifiable import pass_rate, pearson
    from selfalign.judges import build_judge
    from selfalign.judges.checks import has_checks, run_checks

    v = cfg.validation
    prompts = read_records(heldout)
    if v.max_prompts:
        prompts = prompts[: v.max_prompts]
    answers = st.dir / "answers.jsonl"
    _generate(model, prompts, answers, num_samples=1, temperature=0.0, max_new_tokens=v.max_new_tokens,
              batch_size=v.batch_size, seed=cfg.seed, dtype=cfg.dtype)
    records = read_records(answers)
    metrics: dict[str, Any] = {}
    pr = pass_rate(records)
    metrics["verifiable_pass_rate"] = pr.get("strict")
    metrics["check_pass_rate"] = pr.get("loose")
    metrics["verifiable_prompts"] = pr.get("prompts")
    if v.self_judge:
        judge = build_judge({"type": "rubric", "mode": "expected", "model": str(model)})
        records = judge.score_records(records)
        scores = [r["responses"][0].get("score") for r in records]
        valid = [s for s in scores if s is not None]
        metrics["self_judge_mean"] = sum(valid) / len(valid) if valid else None
        # does the self-judge's score track the programmatic checks? (pooled over held-out answers)
        xs, ys = [], []
        for r in records:
            s0 = r["responses"][0].get("score")
            if s0 is not None and has_checks(r.get("meta")):
                xs.append(s0)
                ys.append(run_checks(r["responses"][0]["text"], r["meta"]).fraction or 0.0)
        metrics["judge_check_correlation"] = pearson(xs, ys) if len(xs) >= 2 else None
    if v.win_rate_judge and base_answers is not None and Path(base_answers).exists():
        base_recs = {r["id"]: r for r in read_records(base_answers)}
        pairs = [{**r, "responses": [r["responses"][0], base_recs[r["id"]]["responses"][0]]}
                 for r in records if r["id"] in base_recs]
        for p in pairs:
            for x in p["responses"]:
                for k in ("score", "score_var", "judgements"):
                    x.pop(k, None)
        wj = build_judge(_judge_cfg(v.win_rate_judge, model, base))
        judged = wj.score_records(pairs)
        wins = ties = n = 0
        for p in judged:
            a, b = p["responses"][0].get("score"), p["responses"][1].get("score")
            if a is None or b is None:
                continue
            n += 1
            wins += a > b
            ties += a == b
        metrics["win_rate_vs_m0"] = (wins + 0.5 * ties) / n if n else None
        metrics["win_rate_n"] = n
    write_jsonl(st.output("data", "data.jsonl"), records)
    console.print("  validation: " + ", ".join(f"{k}={_fmt(x)}" for k, x in metrics.items()))
    return metrics


# ---------------------------------------------------------------------------------------- the loop
def run_recipe(cfg: SelfRewardingConfig) -> Run:
    from selfalign.models.load import resolve_model

    run = Run(cfg.run_dir, cfg)
    base = Path(resolve_model(cfg.model)) if not _is_hub(cfg.model) else cfg.model
    prompts_all = read_records(cfg.prompts_file)
    if not prompts_all:
        raise ConfigError(f"{cfg.prompts_file}: no prompts")
    policy = Path(base)
    if cfg.first_iteration_sft:
        res = run.stage("sft", 0, 1, lambda st: stage_sft(st, cfg, Path(cfg.sft_file), policy),
                        inputs={"data": cfg.sft_file, "model": policy}, config=cfg.sft)
        policy = _model_dir(res)
    m0 = policy
    val_cfg = cfg.validation.model_dump()
    base_answers = None
    if cfg.validation.enabled and cfg.heldout_file:
        res = run.stage("validate", 0, 2, lambda st: stage_validate(st, cfg, m0, m0, Path(cfg.heldout_file),
                                                                     None),
                        inputs={"model": m0, "heldout": cfg.heldout_file},
                        config={**{k: v for k, v in val_cfg.items() if k != "win_rate_judge"},
                                "seed": cfg.seed})  # M_0 is not compared with itself
        base_answers = res.outputs["data"]
    for t in range(1, cfg.iterations + 1):
        console.rule(f"[bold magenta]iteration {t}/{cfg.iterations}")
        prompts = _sample_prompts(prompts_all, cfg.prompts_per_iteration, cfg.seed, t)
        gen = run.stage("generate", t, 1, partial(stage_generate, cfg=cfg, model=policy, prompts=prompts),
                        inputs={"model": policy, "prompts": cfg.prompts_file},
                        config={**cfg.generate.model_dump(), "n": cfg.prompts_per_iteration, "seed": cfg.seed})
        jud = run.stage("judge", t, 2, partial(stage_judge, cfg=cfg, candidates=gen.outputs["data"],
                                               policy=policy, base=m0),
                        inputs={"candidates": gen.outputs["data"], "model": policy}, config=cfg.judge)
        par = run.stage("pair", t, 3, partial(stage_pair, cfg=cfg, scored=jud.outputs["data"], policy=policy),
                        inputs={"scored": jud.outputs["data"]},
                        config={**cfg.pairs.model_dump(), **cfg.meta_judge.model_dump(), "t": t})
        tr = run.stage("train", t, 4, partial(stage_train, cfg=cfg, pairs=par.outputs["data"], policy=policy),
                       inputs={"pairs": par.outputs["data"], "model": policy},
                       config={**cfg.train, "beta": per_iteration(cfg.beta, t - 1), "seed": cfg.seed,
                               "dtype": cfg.dtype})
        policy = _model_dir(tr)
        if cfg.validation.enabled and cfg.heldout_file:
            run.stage("validate", t, 5, partial(stage_validate, cfg=cfg, model=policy, base=m0,
                                                heldout=Path(cfg.heldout_file), base_answers=base_answers),
                      inputs={"model": policy, "heldout": cfg.heldout_file, "base": base_answers},
                      config={**val_cfg, "seed": cfg.seed})
    return run


def _is_hub(spec: str) -> bool:
    return not Path(spec).exists() and "/" in spec


def _fmt(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)



def summary(run: Run) -> None:
    """Print a per-iteration summary table (validation and pair statistics)."""
    from rich.table import Table

    rows: dict[int, dict] = {}
    for m in run.manifests():
        if m.get("status") != "done":
            continue
        r = rows.setdefault(m["round"], {})
        mm = m.get("metrics", {})
        if m["stage"] == "validate":
            for k in ("verifiable_pass_rate", "self_judge_mean", "win_rate_vs_m0", "judge_check_correlation"):
                r[k] = mm.get(k)
        elif m["stage"] == "pair":
            for k in ("pairs", "bad_samples_frac", "chosen_score_mean", "rejected_score_mean",
                      "meta_pairs_made", "meta_pairs_used"):
                if k in mm:
                    r[k] = mm.get(k)
        elif m["stage"] == "judge":
            r["parse_failure_rate"] = mm.get("parse_failure_rate")
            r["judge_check_agreement"] = mm.get("judge_check_agreement")
        elif m["stage"] == "train":
            r["train_acc"] = mm.get("acc")
    # one row per metric, one column per round: stays readable however many metrics there are
    metrics = list(dict.fromkeys(k for r in rows.values() for k in r))
    table = Table(title="selfalign run summary (round 0: M_0; round t: its data, and the model after t iterations)")
    table.add_column("metric")
    for rnd in sorted(rows):
        table.add_column(f"round {rnd}", justify="right")
    for k in metrics:
        table.add_row(k, *[_fmt(rows[rnd].get(k)) if rows[rnd].get(k) is not None else "-" for rnd in sorted(rows)])
    console.print(table)


def check_config(cfg: SelfRewardingConfig, source: str = "") -> None:
    """Validate the nested trainer and judge sections before any work (unknown keys → exit 2)."""
    from selfalign.judges.base import parse_judge_config

    for t in range(1, cfg.iterations + 1):
        _dpo_config(cfg, t, Path("."), Path("."), Path("."), source)
    if cfg.first_iteration_sft:
        from selfalign.train.config import SFTConfig

        _section(SFTConfig, "sft", {**cfg.sft, "model": ".", "train_file": ".", "output_dir": "."}, source)
    parse_judge_config(_judge_cfg(cfg.judge, Path("."), Path(".")), source, key="judge")
    if cfg.validation.win_rate_judge:
        parse_judge_config(_judge_cfg(cfg.validation.win_rate_judge, Path("."), Path(".")), source,
                           key="validation.win_rate_judge")
    for f in (cfg.prompts_file, cfg.heldout_file, cfg.sft_file):
        if f and not Path(f).is_file():
            raise ConfigError(f"{source}: {f}: file not found")


def main(path: str, overrides: list[str]) -> Run:
    cfg = load_config(SelfRewardingConfig, path, overrides)
    check_config(cfg, path)
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    run = run_recipe(cfg)
    summary(run)
    from selfalign.report import write_report

    report = write_report(run.root)
    console.print(f"[bold green]report:[/] {report}")
    return run
