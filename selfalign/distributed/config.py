"""``distributed:`` — where a trainer, a generate stage or a judge runs (one home for these keys).

``backend: none`` (the default) is one process and needs no Ray. ``backend: ray`` runs
``num_workers`` Ray workers (training: Ray Train's ``TorchTrainer`` workers, one data-parallel
process each; generation and judging: Ray actors, each with a model replica), each reserving
``resources_per_worker`` (e.g. ``{CPU: 2}`` or ``{CPU: 8, GPU: 1}``) on a cluster found at
``address`` (or ``RAY_ADDRESS``; with neither, a local Ray instance is started for the run).

The original llm-on-ray ``.conf`` keys map here: ``num_training_workers`` → ``num_workers``,
``resources_per_worker`` → ``resources_per_worker`` (see :mod:`selfalign.recipes.rlhf_conf`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from selfalign.config import StrictModel


class DistributedConfig(StrictModel):
    """How many workers, where, and with what resources each."""

    backend: Literal["none", "ray"] = Field("none", description="none = one process; ray = Ray workers.")
    num_workers: int = Field(1, ge=1, description="Ray workers: training processes (data parallel) or "
                             "generation/judging actors.")
    resources_per_worker: dict[str, float] | None = Field(
        None, description="Resources each worker reserves, e.g. {CPU: 2} or {CPU: 8, GPU: 1} "
        "(default: 1 CPU; GPU workers when the key GPU is given).")
    address: str | None = Field(None, description="Ray cluster address ('auto', 'ray://host:10001', "
                                "'host:6379'); default: RAY_ADDRESS, else a local Ray instance.")
    placement_timeout_s: float = Field(60.0, gt=0, description="Fail when workers cannot be started "
                                       "within this many seconds (e.g. resources held by other jobs).")
    max_actor_restarts: int = Field(3, ge=0, description="Generation/judging: how many times a killed "
                                    "actor is replaced (its shard redone) before the run fails.")

    @field_validator("resources_per_worker")
    @classmethod
    def _positive(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            bad = [k for k, n in v.items() if n < 0]
            if bad:
                raise ValueError(f"resources must be >= 0 (got {bad[0]}: {v[bad[0]]})")
        return v

    @model_validator(mode="after")
    def _ray_only(self) -> DistributedConfig:
        if self.backend == "none" and (self.num_workers > 1 or self.resources_per_worker or self.address):
            raise ValueError("num_workers / resources_per_worker / address need backend: ray")
        return self

    @property
    def enabled(self) -> bool:
        return self.backend == "ray"

    def resources(self) -> dict[str, float]:
        """What one worker reserves (default ``{"CPU": 1}``)."""
        return dict(self.resources_per_worker) if self.resources_per_worker else {"CPU": 1.0}

    def use_gpu(self) -> bool:
        return float(self.resources().get("GPU", 0)) > 0

    def result_key(self) -> dict:
        """What may change a result: the number of workers (the global batch of a trainer)."""
        return {"backend": self.backend, "num_workers": self.num_workers}
