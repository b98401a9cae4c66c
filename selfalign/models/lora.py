"""LoRA helpers on top of peft: wrap a model, merge adapters back, run with adapters switched off.

With LoRA the frozen base weights *are* the DPO reference model: :func:`adapters_disabled` runs
the same module without its adapters, so no second copy of the model is kept in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from selfalign.errors import ConfigError


def apply_lora(model: torch.nn.Module, r: int = 16, alpha: float = 32, dropout: float = 0.0,
               target_modules: list[str] | str = "all-linear", task: str = "causal_lm",
               modules_to_save: list[str] | None = None) -> torch.nn.Module:
    """Wrap ``model`` with fresh LoRA adapters; only adapter (and ``modules_to_save``) weights train.

    ``task`` is ``causal_lm`` or ``seq_cls`` (the latter keeps the classification head trainable).
    """
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = {"causal_lm": TaskType.CAUSAL_LM, "seq_cls": TaskType.SEQ_CLS}.get(task)
    if task_type is None:
        raise ConfigError(f"lora task must be causal_lm or seq_cls, not {task!r}")
    cfg = LoraConfig(r=r, lora_alpha=int(alpha) if float(alpha).is_integer() else alpha,
                     lora_dropout=dropout, target_modules=target_modules, task_type=task_type,
                     modules_to_save=modules_to_save, bias="none")
    try:
        return get_peft_model(model, cfg)
    except ValueError as e:  # e.g. target modules not found in the model
        raise ConfigError(f"lora: {e}") from None


def is_peft(model: Any) -> bool:
    """True if ``model`` is a peft-wrapped model."""
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def merge_lora(model: torch.nn.Module) -> torch.nn.Module:
    """Fold the adapters into the base weights and return the plain transformers model."""
    return model.merge_and_unload() if is_peft(model) else model


@contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run ``model`` as its base model (adapters off), in eval mode; restores both on exit."""
    if not is_peft(model):
        raise ValueError("adapters_disabled needs a peft model")
    was_training = model.training
    model.eval()
    try:
        with model.disable_adapter():
            yield model
    finally:
        model.train(was_training)
