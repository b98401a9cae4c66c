"""Stage ``generate``: prompts → ``num_samples`` sampled responses each, from the ``model`` input.

Inputs: ``model`` (a model folder), ``prompts`` (a prompts file). Output: ``data`` (candidates
``data.jsonl``). With ``sample_prompts`` set, a seeded random subset of that many prompts is used
(``random.Random(prompt_seed).sample``), so each iteration of a recipe sees fresh prompts.
Generation is sharded: a killed stage keeps its finished shards and resumes after them.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from pydantic import Field

from selfalign.generation import EngineConfig, EngineOptions, SamplingParams
from selfalign.pipeline import Stage
from selfalign.stages.base import stage


class GenerateStageConfig(SamplingParams, EngineOptions):
    """Sampling and engine settings (see :class:`SamplingParams`, :class:`EngineOptions`) plus
    which prompts: all of them, or ``sample_prompts`` drawn with ``prompt_seed``."""

    sample_prompts: int | None = Field(None, ge=1, description="a random subset of this many prompts")
    prompt_seed: int = 0
    max_prompts: int | None = Field(None, ge=1, description="only the first N prompts")
    shard_size: int | None = Field(None, ge=1, description="prompts per resumable shard; default one batch "
                                   "(batch_size // num_samples prompts): a smaller shard would cap the batch")


def select_prompts(records: list[dict], cfg: GenerateStageConfig) -> list[dict]:
    """The first ``max_prompts`` records, then a seeded sample of ``sample_prompts`` of them."""
    if cfg.max_prompts:
        records = records[: cfg.max_prompts]
    if cfg.sample_prompts is None or cfg.sample_prompts >= len(records):
        return records
    return random.Random(cfg.prompt_seed).sample(records, cfg.sample_prompts)


def generate_into(cfg: GenerateStageConfig, model: Path, records: list[dict], out: Path) -> dict:
    """Generate for ``records`` with ``model`` into ``out``; returns the generation summary."""
    from selfalign.generation import build_engine, generate_records, generation_summary

    engine = build_engine(EngineConfig(model=str(model), **{k: getattr(cfg, k) for k in EngineOptions.model_fields}))
    params = SamplingParams(**{k: getattr(cfg, k) for k in SamplingParams.model_fields})
    t0 = time.perf_counter()
    shard = cfg.shard_size or max(1, cfg.batch_size // cfg.num_samples)
    recs = generate_records(engine, records, params, out, shard_size=shard, overwrite=True)
    return generation_summary(recs, time.perf_counter() - t0)


@stage("generate", GenerateStageConfig)
def generate(st: Stage, cfg: GenerateStageConfig, *, model: Path, prompts: Path) -> dict:
    from selfalign.data.io import read_records, require_records

    records = select_prompts(require_records(read_records(prompts), prompts), cfg)
    return generate_into(cfg, model, records, st.output("data", "data.jsonl"))
