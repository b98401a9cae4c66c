"""DPO and its variants (IPO, hinge, judge-weighted, reward-aware RPO) on the shared loop.

* The loss is ``cfg.loss_type``, looked up in the registry of :mod:`selfalign.train.losses`
  (:func:`~selfalign.train.losses.get_dpo_loss`); losses that need judge scores make every pair
  carry ``chosen_score``/``rejected_score``.

* Chosen and rejected sequences go through the policy in ONE forward (concatenated batch).
* Reference: a frozen copy of the starting model; with LoRA, the same model with its adapters
  switched off (no second copy); ``ref_model`` names another one; with ``precompute_ref_logps``
  the reference log-probs are computed once before training, cached in
  ``output_dir/ref_logps.safetensors`` (reused on resume) and no reference is kept in memory.
* Optional SFT term: ``sft_loss_weight × mean NLL of the chosen tokens`` per pair.
* Logged per step: ``loss``, ``preference_loss``, ``sft_loss``, ``acc`` (fraction of pairs whose
  implicit reward of chosen > rejected), ``rewards_chosen_mean`` / ``rewards_rejected_mean``
  (implicit rewards **β-scaled**: β·(log π − log π_ref)), ``margin`` (their difference),
  ``logps_chosen`` / ``logps_rejected``, ``chosen_lengths`` / ``rejected_lengths`` (completion
  tokens), ``grad_norm``, ``lr``, ``tokens_per_s``; with a validation set the same as ``eval_*``.

Example: ``train_dpo(DPOConfig(model="smollm2-135m", train_file="pairs.jsonl", output_dir="runs/dpo"))``
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from selfalign.data.io import atomic_output
from selfalign.train import losses
from selfalign.train.config import DPOConfig
from selfalign.train.data import PairExample, collate_pairs
from selfalign.train.loop import (
    finish,
    load_pair_examples,
    prepare_for_training,
    start_training,
    train_loop,
)
from selfalign.utils.metrics import MetricsLogger
from selfalign.utils.progress import Bar


def sequence_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], average: bool
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log-probs [2n], completion token counts [2n])`` of every row of a pair batch."""
    logits, labels, mask = losses.completion_logits(model, batch["input_ids"], batch["loss_mask"],
                                                    attention_mask=batch["attention_mask"])
    tok = losses.token_logps(logits, labels, mask)
    counts = mask.sum(-1).clamp(min=1).to(tok.dtype)
    sums = tok.sum(-1)
    return (sums / counts if average else sums), counts


class DPOObjective:
    """Loss of one micro-batch of pairs (summed over pairs; the loop normalises)."""

    def __init__(self, cfg: DPOConfig, pad_id: int, reference: Callable[[torch.nn.Module, dict], torch.Tensor]):
        self.cfg = cfg
        self.pad_id = pad_id
        self.reference = reference  # (policy, batch) -> reference log-probs [2n]

    def weight(self, examples: list[PairExample]) -> float:
        return float(len(examples))

    def collate(self, examples: list[PairExample]) -> dict[str, torch.Tensor]:
        return collate_pairs(examples, self.pad_id)

    def loss(self, model, batch):
        cfg = self.cfg
        n = batch["margin"].numel()
        logps, counts = sequence_logps(model, batch, cfg.average_log_prob)
        if "ref_logps" in batch:
            ref = batch["ref_logps"]
        else:
            with torch.no_grad():
                ref = self.reference(model, batch)
        judged = losses.get_dpo_loss(cfg.loss_type).needs_judge
        pref, rc, rr = losses.dpo_loss(
            logps[:n], logps[n:], ref[:n], ref[n:], cfg.beta, cfg.loss_type, cfg.label_smoothing,
            judge_margin=batch["margin"] if judged else None, judge_scale=cfg.judge_scale)
        # mean NLL per chosen token (undo the averaging / summing of the log-probs)
        chosen_sum = logps[:n] * counts[:n] if cfg.average_log_prob else logps[:n]
        sft = -chosen_sum / counts[:n]
        total = pref + cfg.sft_loss_weight * sft if cfg.sft_loss_weight else pref
        stats = {
            "loss": total.detach().sum(), "preference_loss": pref.detach().sum(), "sft_loss": sft.detach().sum(),
            "acc": (rc > rr).float().sum(), "rewards_chosen_mean": rc.sum(), "rewards_rejected_mean": rr.sum(),
            "margin": (rc - rr).sum(), "logps_chosen": logps[:n].detach().sum(),
            "logps_rejected": logps[n:].detach().sum(),
            "chosen_lengths": counts[:n].sum(), "rejected_lengths": counts[n:].sum(),
        }
        return total.sum(), stats


def _frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _cache_key(cfg: DPOConfig, ref_spec: str, sets: list[list[PairExample]]) -> str:
    """Identity of a reference log-prob computation: reference weights (files, sizes, mtimes),
    precision, averaging and every token id of the data."""
    from selfalign.models.load import resolve_model

    where = resolve_model(ref_spec)
    files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(where).glob("*.safetensors")
                   ) if isinstance(where, Path) else []
    h = hashlib.sha256()
    h.update(json.dumps([str(where), files, cfg.dtype, cfg.mixed_precision, cfg.average_log_prob]).encode())
    for examples in sets:
        h.update(b"|set|")
        for e in examples:
            for part in (e.chosen_prompt, e.chosen, e.rejected_prompt, e.rejected):
                h.update(torch.tensor(part, dtype=torch.int64, device="cpu").numpy().tobytes())
                h.update(b",")
    return h.hexdigest()[:32]


@torch.no_grad()
def precompute_reference(cfg: DPOConfig, sets: list[list[PairExample]], ref_fn: Callable[[dict], torch.Tensor],
                         accelerator, pad_id: int, cache: Path, key: str) -> bool:
    """Fill ``ref_chosen``/``ref_rejected`` of every example, from ``cache`` when its key matches.

    Returns True when the values came from the cache.
    """
    if cache.is_file():
        with safe_open(str(cache), framework="pt") as f:
            if (f.metadata() or {}).get("key") == key:
                for i, examples in enumerate(sets):
                    vals = f.get_tensor(f"set{i}").tolist()
                    for e, (c, r) in zip(examples, vals):
                        e.ref_chosen, e.ref_rejected = c, r
                return True
    total = sum(len(s) for s in sets)
    bs = cfg.per_device_batch_size
    tensors = {}
    with Bar("reference log-probs", total=total, unit="pair") as bar:
        for i, examples in enumerate(sets):
            vals = torch.zeros(len(examples), 2, device="cpu")
            order = sorted(range(len(examples)), key=lambda j: -examples[j].length)
            for s in range(0, len(order), bs):
                idx = order[s:s + bs]
                batch = {k: v.to(accelerator.device) for k, v in collate_pairs([examples[j] for j in idx], pad_id).items()}
                with torch.no_grad(), accelerator.autocast():  # no autograd graph: values only
                    ref = ref_fn(batch).float().cpu()
                n = len(idx)
                vals[idx, 0], vals[idx, 1] = ref[:n], ref[n:]
                bar.advance(n)
            for e, (c, r) in zip(examples, vals.tolist()):
                e.ref_chosen, e.ref_rejected = c, r
            tensors[f"set{i}"] = vals
    if accelerator.is_main_process:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cache) as tmp:
            save_file(tensors, str(tmp), metadata={"key": key})
    return False


def train_dpo(cfg: DPOConfig, metrics: MetricsLogger | None = None) -> dict[str, Any]:
    """Train a policy with DPO (or a variant) and write it to ``output_dir/model``; returns final metrics.

    With ``cfg.resume`` a run continues from the newest checkpoint in ``output_dir/checkpoints``.
    """
    from selfalign.models.load import load_causal_lm, resolve_model
    from selfalign.models.lora import adapters_disabled

    need_margin = losses.get_dpo_loss(cfg.loss_type).needs_judge
    if cfg.ref_model is not None:  # a missing reference fails before anything is created
        resolve_model(cfg.ref_model)
    start = start_training(cfg, "dpo", metrics, load_pair_examples(cfg, need_margin=need_margin))
    accelerator, datasets, pad_id = start.accelerator, start.datasets, start.pad_id
    model = load_causal_lm(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    model = prepare_for_training(model, cfg, "causal_lm")
    model.to(accelerator.device)

    def logps_of(m):
        return lambda batch: sequence_logps(m, batch, cfg.average_log_prob)[0]

    ref_model = None
    if cfg.ref_model is not None:
        ref_model = _frozen(load_causal_lm(cfg.ref_model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code))
        ref_model.to(accelerator.device)
    if cfg.precompute_ref_logps:
        sets = [datasets.train, datasets.eval]
        key = _cache_key(cfg, cfg.ref_model or cfg.model, sets)
        if ref_model is not None:
            fn = logps_of(ref_model)
        elif cfg.lora is not None:
            def fn(batch):
                with adapters_disabled(model):
                    return sequence_logps(model, batch, cfg.average_log_prob)[0]
        else:  # the policy has not been trained (nor restored from a checkpoint) yet: it is the reference
            def fn(batch):
                model.eval()
                try:
                    return sequence_logps(model, batch, cfg.average_log_prob)[0]
                finally:
                    model.train()
        precompute_reference(cfg, sets, fn, accelerator, pad_id, Path(cfg.output_dir) / "ref_logps.safetensors", key)
        ref_model = None
        reference = None
    elif ref_model is not None:
        def reference(policy, batch):
            return sequence_logps(ref_model, batch, cfg.average_log_prob)[0]
    elif cfg.lora is not None:
        def reference(policy, batch):
            peft_model = accelerator.unwrap_model(policy)
            with adapters_disabled(peft_model):
                return sequence_logps(peft_model, batch, cfg.average_log_prob)[0]
    else:
        ref_model = _frozen(copy.deepcopy(model))

        def reference(policy, batch):
            return sequence_logps(ref_model, batch, cfg.average_log_prob)[0]

    objective = DPOObjective(cfg, pad_id, reference)
    final, model = train_loop(cfg, model, objective, datasets.train, datasets.eval, accelerator, start.metrics,
                              "dpo", start=start)
    return finish(cfg, model, start.tokenizer, final, start.counts, accelerator)
