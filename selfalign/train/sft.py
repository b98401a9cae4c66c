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

from pathlib import Path
from typing import Any

import torch

from selfalign.train import losses
from selfalign.train.config import SFTConfig
from selfalign.train.data import SeqExample, collate_seqs, load_datasets, load_sft, pack
from selfalign.train.loop import (
    finish,
    make_accelerator,
    open_metrics,
    prepare_for_training,
    report_data,
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
        out = model(input_ids=batch["input_ids"], use_cache=False, **kw)
        labels, mask = losses.next_token_targets(batch["input_ids"], batch["loss_mask"])
        nll = losses.sft_loss(out.logits, labels, mask, reduction="sum")
        return nll, {"loss": nll.detach()}


def train_sft(cfg: SFTConfig, metrics: MetricsLogger | None = None) -> dict[str, Any]:
    """Fine-tune a causal LM on completions and write it to ``output_dir/model``; returns final metrics."""
    from accelerate.utils import set_seed

    from selfalign.models.load import load_causal_lm, load_tokenizer

    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(cfg.model, trust_remote_code=cfg.trust_remote_code)
    datasets = load_datasets(cfg, lambda path: load_sft(
        path, tok, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length, truncation=cfg.truncation,
        prompt_key=cfg.prompt_key, completion_key=cfg.completion_key))
    metrics = open_metrics(cfg, "sft", metrics)
    counts = report_data(datasets, metrics, accelerator)
    if cfg.packing:
        datasets.train = pack(datasets.train, cfg.max_length, cfg.seed)
        counts["train_packed_rows"] = len(datasets.train)

    model = load_causal_lm(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    model = prepare_for_training(model, cfg, "causal_lm")
    model.to(accelerator.device)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    final, model = train_loop(cfg, model, SFTObjective(pad_id), datasets.train, datasets.eval, accelerator,
                              metrics, "sft")
    return finish(cfg, model, tok, final, counts, accelerator)
