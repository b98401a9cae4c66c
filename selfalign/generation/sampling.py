"""What a generation request is made of, shared by the engine front end (:mod:`.engine`) and its
backends (:mod:`.hf`): the ``Prompt`` type and :class:`SamplingParams`."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from selfalign.config import StrictModel

Prompt = str | list[dict]


class SamplingParams(StrictModel):
    """How to sample: ``temperature`` 0 = greedy; ``top_k`` 0 = off; ``top_p`` 1 = off."""

    num_samples: int = Field(1, ge=1, description="responses per prompt")
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list, description="stop strings (cut from the text)")
    seed: int = 0

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [v] if v else []
        return v

    @field_validator("stop")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("stop strings must not be empty")
        return v
