"""PPO's models: what a checkpoint saves (:class:`PPOModules`), the frozen reference and the critic.

* :func:`build_reference` ``(cfg, actor, device) -> fn(batch) -> log-probs [n, t]`` — ``ref_model``
  if given; with LoRA the actor with its adapters off; else a frozen copy of the starting actor;
* :func:`build_critic` ``(cfg, actor, device) -> (critic, value_head)`` — a separate critic (the
  first reward model's backbone, the starting model's, ``critic_lora`` optional) or a value head on
  the actor itself (``critic: shared``).
"""

from __future__ import annotations

import copy

import torch

from selfalign.train.config import PPOConfig
from selfalign.train.loop import disable_dropout
from selfalign.train.ppo_rollout import ValueModel, new_value_head, policy_logps


class PPOModules(torch.nn.Module):
    """What a checkpoint saves: the actor, and the critic (separate) or the value head (shared)."""

    def __init__(self, actor: torch.nn.Module, critic: ValueModel | None, value_head: torch.nn.Module | None):
        super().__init__()
        self.actor, self.critic, self.value_head = actor, critic, value_head


class StateGroup:
    """Several optimizers (or schedulers) saved and restored as one state dict."""

    def __init__(self, **parts):
        self.parts = {k: v for k, v in parts.items() if v is not None}

    def state_dict(self) -> dict:
        return {k: v.state_dict() for k, v in self.parts.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, v in self.parts.items():
            v.load_state_dict(state[k])


def _frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------------ models
def build_reference(cfg: PPOConfig, actor: torch.nn.Module, device):
    """``fn(batch) -> reference log-probs [n, t]`` (built before any checkpoint is loaded)."""
    from selfalign.models.load import load_causal_lm
    from selfalign.models.lora import adapters_disabled

    temp = cfg.generation.temperature
    if cfg.ref_model is not None:
        ref = _frozen(load_causal_lm(cfg.ref_model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code))
        ref.to(device)
        return lambda b: policy_logps(ref, b, temp)[0]
    if cfg.lora is not None:
        def with_adapters_off(b):
            with adapters_disabled(actor):
                return policy_logps(actor, b, temp)[0]
        return with_adapters_off
    ref = _frozen(copy.deepcopy(actor))
    return lambda b: policy_logps(ref, b, temp)[0]


def build_critic(cfg: PPOConfig, actor: torch.nn.Module, device) -> tuple[ValueModel | None, torch.nn.Module | None]:
    """``(critic, None)`` for a separate critic, ``(None, value_head)`` for a head on the actor."""
    from selfalign.train.ppo_rollout import model_parts

    source = cfg.critic_source()
    if source == "shared":
        backbone, _ = model_parts(actor)
        return None, new_value_head(backbone.config.hidden_size, next(actor.parameters()))
    if source == "reward_model":
        from selfalign.models.heads import RewardModel

        spec = next(r.model for r in cfg.rewards if r.type == "reward_model")
        hf = RewardModel.from_pretrained(spec, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code).hf
        backbone = getattr(hf, hf.base_model_prefix)
    else:
        from selfalign.models.load import load_causal_lm

        lm = load_causal_lm(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
        backbone = model_parts(lm)[0]
    if cfg.disable_dropout:
        disable_dropout(backbone)
    if cfg.gradient_checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.critic_lora is not None:
        from peft import LoraConfig, get_peft_model

        lc = cfg.critic_lora
        backbone = get_peft_model(backbone, LoraConfig(r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout,
                                                       target_modules=lc.target_modules, bias="none"))
    critic = ValueModel(backbone, backbone.config.hidden_size)
    return critic.to(device), None
