"""Supervised fine-tuning on the shared loop: NLL of the completion tokens only.

Data: prompt/completion records, ``messages`` (the last assistant turn is trained, the turns
before it are the prompt) or instruction/output records — anything
:func:`selfalign.data.formats.normalize_sft` reads. The loss of a step is the mean NLL over all
completion tokens of the global batch. With ``packing`` several examples share a row; each keeps
its own positions and attends only to itself.

Logged: ``loss`` (per target token), ``grad_norm``, ``lr``, ``tokens_per_s``; ``eval_loss``.

Example: ``train_sft(SFTConfig(model="smollm2-135m", train_file="sft.jsonl", output_dir="runs/sft"))``
"""

from __future__ import annotations

from typing import Any

import torch

from selfalign.train import losses
from selfalign.train.config import SFTConfig
from selfalign.train.data import SeqExample, collate_seqs, load_sft, pack
from selfalign.train.loop import (
    finish,
    prepare_for_training,
    start_training,
    train_loop,
)
from selfalign.utils.metrics import MetricsLogger


class SFTObjective:
    """Summed NLL of the completion tokens of one micro-batch (the loop divides by the token count)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def weight(self, examples: list[SeqExample]) -> float:
        return float(sum(e.num_target_tokens for e in examples))

    def collate(self, examples: list[SeqExample]) -> dict[str, torch.Tensor]:
        return collate_seqs(examples, self.pad_id)

    def loss(self, model, batch):
        kw = {"position_ids": batch["position_ids"]} if "position_ids" in batch else {
            "attention_mask": batch["attention_mask"]}
        logits, labels, mask = losses.completion_logits(model, batch["input_ids"], batch["loss_mask"], **kw)
        nll = losses.sft_loss(logits, labels, mask, reduction="sum")
        return nll, {"loss": nll.detach()}


def train_sft(cfg: SFTConfig, metrics: MetricsLogger | None = None) -> dict[str, Any]:
    """Fine-tune a causal LM on completions and write it to ``output_dir/model``; returns final metrics."""
    from selfalign.models.load import load_causal_lm

    start = start_training(cfg, "sft", metrics, lambda path, tok: load_sft(
        path, tok, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length, truncation=cfg.truncation,
        prompt_key=cfg.prompt_key, completion_key=cfg.completion_key, chat_template=cfg.chat_template))
    datasets, counts = start.datasets, start.counts
    if cfg.packing:
        datasets.train = pack(datasets.train, cfg.max_length, cfg.seed)
        counts["train_packed_rows"] = len(datasets.train)
    model = load_causal_lm(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    model = prepare_for_training(model, cfg, "causal_lm")
    model.to(start.accelerator.device)
    final, model = train_loop(cfg, model, SFTObjective(start.pad_id), datasets.train, datasets.eval,
                              start.accelerator, start.metrics, "sft", start=start)
    return finish(cfg, model, start.tokenizer, final, counts, start.accelerator)
