"""Stages by name, and the one way a recipe runs them.

A stage is a function ``fn(st, cfg, **inputs) -> metrics`` registered with :func:`stage` together
with its config schema. A recipe runs it with :func:`run_stage`, giving the resolved config object
and the named input paths (files or folders)::

    gen = run_stage(run, "generate", round=t, step=1, config=gen_cfg, model=policy, prompts=file)

The stage's cache key is derived here and nowhere else: the config hash of exactly the object the
function receives (``cfg.model_dump(mode="json")``, every default included) plus the content hash
of every input path (see :class:`selfalign.pipeline.Run`). A recipe never builds ``inputs=`` or
``config=`` keys by hand, so "what is hashed" and "what ran" cannot drift apart: change a setting
and the stage (and, through their input hashes, the stages after it) re-runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from selfalign.pipeline import Run, Stage, StageResult


@dataclass(frozen=True)
class StageDef:
    """A registered stage: its name, config schema and function."""

    name: str
    config_cls: type[BaseModel]
    fn: Callable[..., dict | None]


STAGES: dict[str, StageDef] = {}


def stage(name: str, config_cls: type[BaseModel]) -> Callable[[Callable], Callable]:
    """Register ``fn(st: Stage, cfg: config_cls, **inputs: Path) -> dict | None`` as stage ``name``."""

    def deco(fn: Callable) -> Callable:
        if name in STAGES and STAGES[name].fn is not fn:
            raise ValueError(f"stage {name!r} registered twice")
        STAGES[name] = StageDef(name, config_cls, fn)
        return fn

    return deco


def get_stage(name: str) -> StageDef:
    if name not in STAGES:
        import selfalign.stages  # noqa: F401  (imports every stage module, which registers it)
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; registered: {', '.join(sorted(STAGES))}")
    return STAGES[name]


def run_stage(run: Run, name: str, round: int, step: int, config: BaseModel, *, label: str | None = None,
              **inputs: str | Path | None) -> StageResult:
    """Run stage ``name`` as ``r{round}s{step}-{label or name}`` unless a finished, up-to-date result
    exists.

    ``config`` must be an instance of the stage's schema; ``inputs`` are paths (``None`` = absent,
    neither hashed nor passed). The function receives exactly ``config`` and the present inputs.
    """
    sd = get_stage(name)
    if not isinstance(config, sd.config_cls):
        raise TypeError(f"stage {name!r} takes a {sd.config_cls.__name__}, got {type(config).__name__}")
    present = {k: Path(v) for k, v in inputs.items() if v is not None}

    def call(st: Stage) -> dict | None:
        return sd.fn(st, config, **present)

    return run.stage(label or name, round, step, call, inputs=present, config=config)


def numeric(d: dict[str, Any] | None) -> dict[str, Any]:
    """The entries of ``d`` that are numbers or None (what a manifest's metrics keep)."""
    return {k: v for k, v in (d or {}).items() if v is None or isinstance(v, (int, float))}
