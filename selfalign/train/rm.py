"""Reward-model training: Bradley-Terry loss on preference pairs, on the shared loop.

The model (see :class:`selfalign.models.heads.RewardModel`) is a causal-LM backbone with a new
scalar head read at the last real token, or any HF sequence-classification model with one label.
Chosen and rejected go through it in one forward. The result, ``output_dir/model``, is a standard
sequence-classification folder: ``load_reward_model(path).score(...)`` (or transformers'
``AutoModelForSequenceClassification``) reads it back.

Logged: ``loss``, ``acc`` (fraction of pairs with r_chosen > r_rejected), ``rewards_chosen_mean``,
``rewards_rejected_mean``, ``margin`` (mean r_c − r_r), ``grad_norm``, ``lr``, ``tokens_per_s``;
validation ``eval_acc`` / ``eval_loss`` from ``validation_file`` or a ``validation_split``.

Example: ``train_rm(RMConfig(model="smollm2-135m", train_file="pairs.jsonl", output_dir="runs/rm"))``
"""

from __future__ import annotations

from typing import Any

import torch

from selfalign.models.heads import RewardModel, load_reward_model
from selfalign.train import losses
from selfalign.train.config import RMConfig
from selfalign.train.data import PairExample, collate_pairs
from selfalign.train.loop import (
    finish,
    load_pair_examples,
    prepare_for_training,
    start_training,
    train_loop,
)
from selfalign.utils.metrics import MetricsLogger

__all__ = ["RMObjective", "load_reward_model", "train_rm"]


class RMObjective:
    """Bradley-Terry loss of one micro-batch of pairs (summed; the loop normalises by pair count)."""

    def __init__(self, cfg: RMConfig, pad_id: int):
        self.cfg = cfg
        self.pad_id = pad_id

    def weight(self, examples: list[PairExample]) -> float:
        return float(len(examples))

    def collate(self, examples: list[PairExample]) -> dict[str, torch.Tensor]:
        return collate_pairs(examples, self.pad_id)

    def loss(self, model, batch):
        n = batch["margin"].numel()
        rewards = model(batch["input_ids"], batch["attention_mask"])
        rc, rr = rewards[:n], rewards[n:]
        m = self.cfg.margin
        margin = self.cfg.judge_scale * batch["margin"].to(rc.dtype) if m == "judge" else m
        per_pair = losses.bradley_terry_loss(rc, rr, margin)
        stats = {"loss": per_pair.detach().sum(), "acc": (rc > rr).float().sum(),
                 "rewards_chosen_mean": rc.detach().sum(), "rewards_rejected_mean": rr.detach().sum(),
                 "margin": (rc - rr).detach().sum()}
        return per_pair.sum(), stats


def train_rm(cfg: RMConfig, metrics: MetricsLogger | None = None) -> dict[str, Any]:
    """Train a reward model and write it to ``output_dir/model``; returns final metrics.

    With ``cfg.resume`` a run continues from the newest checkpoint in ``output_dir/checkpoints``.
    """
    start = start_training(cfg, "rm", metrics, load_pair_examples(cfg, need_margin=cfg.margin == "judge"))
    accelerator, tok = start.accelerator, start.tokenizer
    rm = RewardModel.from_pretrained(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code,
                                     tokenizer=tok)
    rm.hf = prepare_for_training(rm.hf, cfg, "seq_cls")
    rm.to(accelerator.device)
    final, rm = train_loop(cfg, rm, RMObjective(cfg, start.pad_id), start.datasets.train, start.datasets.eval,
                           accelerator, start.metrics, "rm", start=start)
    return finish(cfg, rm, tok, final, start.counts, accelerator)
