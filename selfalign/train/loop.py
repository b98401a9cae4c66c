"""The one training loop behind ``selfalign train sft|rm|dpo``.

An :class:`Objective` turns a list of examples into a batch and a batch into a *summed* loss;
the loop does everything else::

    for each global batch (seeded, length-grouped order; see data.batch_plan):
        count = objective.weight(global batch)          # pairs (DPO/RM) or target tokens (SFT)
        for each micro-batch of this process:           # gradient accumulation
            loss_sum, stats = objective.loss(model, batch)
            backward(loss_sum × processes / count)      # = mean over the whole global batch
        clip gradients; AdamW step; LR schedule step
        log / validate / checkpoint

Normalising by the global count (not per micro-batch) makes ``batch 8 × accumulation 1`` and
``batch 1 × accumulation 8`` the same optimisation. AdamW decays every weight except biases and
norm weights (1-D parameters). Devices and processes come from accelerate's ``Accelerator``; each
process takes its own slice of every global batch, so the data order does not depend on the number
of processes.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from selfalign.errors import DataError
from selfalign.train import checkpoint as ckpt
from selfalign.train import hooks
from selfalign.train.config import TrainConfig
from selfalign.train.data import batch_plan, micro_batches
from selfalign.train.start import (
    TrainingStart,
    finish,
    load_pair_examples,
    make_accelerator,
    open_metrics,
    report_data,
    start_training,
)
from selfalign.utils.metrics import MetricsLogger
from selfalign.utils.progress import Bar, console

# the trainer plumbing lives in selfalign.train.start; these names stay importable from here
__all__ = ["Objective", "TrainingStart", "disable_dropout", "evaluate", "finish", "load_pair_examples",
           "make_accelerator", "make_optimizer", "make_scheduler", "open_metrics", "param_groups",
           "prepare_for_training", "report_data", "start_training", "train_loop"]


class Objective(Protocol):
    """What a trainer plugs into the loop."""

    def weight(self, examples: list) -> float:
        """Normalisation units in ``examples`` (number of pairs, or target tokens)."""

    def collate(self, examples: list) -> dict[str, torch.Tensor]:
        """Padded tensors for one micro-batch."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(sum of per-unit losses, {metric: sum over units})`` for one micro-batch."""


# -------------------------------------------------------------------------------------------- setup
def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability in ``model`` to 0 (modules and attention-dropout attributes)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.0


def prepare_for_training(model: torch.nn.Module, cfg: TrainConfig, lora_task: str = "causal_lm",
                         modules_to_save: list[str] | None = None) -> torch.nn.Module:
    """Dropout off (if asked), gradient checkpointing, LoRA adapters (if ``cfg.lora``)."""
    if cfg.disable_dropout:
        disable_dropout(model)
    if getattr(model, "config", None) is not None and hasattr(model.config, "use_cache"):
        model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora is not None:
        from selfalign.models.lora import apply_lora

        model = apply_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules,
                           task=lora_task, modules_to_save=modules_to_save)
    return model


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters split into decayed (matrices) and not decayed (biases, norms: ndim < 2)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`; fused (one kernel for all weights: one pass over memory
    instead of several per tensor) when ``cfg.fused_optimizer`` and the weights' device and dtype
    allow it, else PyTorch's default implementation (same update rule)."""
    groups = param_groups(model, cfg.weight_decay)
    kw = dict(lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
    if cfg.fused_optimizer:
        try:
            return torch.optim.AdamW(groups, fused=True, **kw)
        except (RuntimeError, ValueError):  # device or dtype without a fused kernel
            groups = param_groups(model, cfg.weight_decay)
    return torch.optim.AdamW(groups, **kw)


def make_scheduler(optimizer, name: str, warmup: int, total: int):
    from transformers import get_scheduler

    kind = "constant_with_warmup" if name == "constant" else name
    return get_scheduler(kind, optimizer, num_warmup_steps=warmup, num_training_steps=total)


def _to(batch: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _reduce(sums: dict[str, torch.Tensor], accelerator) -> dict[str, float]:
    """Sum metric tensors over processes and return floats."""
    if not sums:
        return {}
    keys = sorted(sums)
    vec = torch.stack([sums[k].detach().float().reshape(()) for k in keys])
    if accelerator.num_processes > 1:
        vec = accelerator.reduce(vec, reduction="sum")
    return dict(zip(keys, vec.tolist()))


# --------------------------------------------------------------------------------------------- eval
@torch.no_grad()
def evaluate(model: torch.nn.Module, objective: Objective, examples: list, batch_size: int,
             accelerator) -> dict[str, float]:
    """Metrics of ``objective`` over ``examples`` (each normalised by the total weight), no gradients."""
    if not examples:
        return {}
    was = model.training
    model.eval()
    mine = examples[accelerator.process_index::accelerator.num_processes]
    sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=accelerator.device))
    weight = torch.zeros((), device=accelerator.device)
    try:
        order = sorted(range(len(mine)), key=lambda i: -mine[i].length)
        for s in range(0, len(order), batch_size):
            part = [mine[i] for i in order[s:s + batch_size]]
            batch = _to(objective.collate(part), accelerator.device)
            with torch.no_grad(), accelerator.autocast():
                _, stats = objective.loss(model, batch)
            for k, v in stats.items():
                sums[k] = sums[k] + v.detach().float()
            weight = weight + float(objective.weight(part))
    finally:
        model.train(was)
    sums["_weight"] = weight
    total = _reduce(dict(sums), accelerator)
    w = max(total.pop("_weight"), 1e-12)
    return {f"eval_{k}": v / w for k, v in total.items()}


# --------------------------------------------------------------------------------------------- loop
@dataclass
class _Run:
    """What every step of :func:`train_loop` needs; built once by :func:`_setup_run`."""

    cfg: TrainConfig
    model: torch.nn.Module  # as prepared by the accelerator (possibly wrapped)
    objective: Objective
    train: list
    evals: list
    accelerator: Any
    metrics: MetricsLogger
    optimizer: torch.optim.Optimizer
    scheduler: Any
    trainable: list[torch.nn.Parameter]
    lengths: list[int]
    global_batch: int
    drop_last: bool
    steps_per_epoch: int
    total: int
    ckpt_root: Path
    loud: bool | None  # echo for eval / final log lines; None when the logger stays quiet
    start: TrainingStart | None = None  # run identity, checkpoint to resume, tokenizer

    def plan(self, epoch: int) -> list[list[int]]:
        """The global batches of ``epoch`` (seeded, optionally length-grouped)."""
        return batch_plan(self.lengths, self.global_batch, self.cfg.seed, epoch, self.cfg.group_by_length,
                          self.drop_last)


def _setup_run(cfg: TrainConfig, model: torch.nn.Module, objective: Objective, train: list, evals: list,
               accelerator, metrics: MetricsLogger, start: TrainingStart | None = None) -> _Run:
    """Step counts, optimizer, LR schedule and the accelerator-prepared model for :func:`train_loop`."""
    world = accelerator.num_processes
    global_batch = cfg.per_device_batch_size * cfg.gradient_accumulation_steps * world
    lengths = [e.length for e in train]
    drop_last = world > 1  # every process needs the same number of micro-batches
    steps_per_epoch = len(batch_plan(lengths, global_batch, cfg.seed, 0, cfg.group_by_length, drop_last))
    if steps_per_epoch == 0:
        raise DataError(f"{len(train)} training examples are fewer than one global batch "
                        f"({global_batch} = batch × accumulation × {world} processes)", cfg.train_file)
    total = cfg.max_steps if cfg.max_steps else steps_per_epoch * cfg.num_epochs
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total)

    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg.lr_scheduler, warmup, total)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return _Run(cfg, model, objective, train, evals, accelerator, metrics, optimizer, scheduler, trainable,
                lengths, global_batch, drop_last, steps_per_epoch, total, Path(cfg.output_dir) / "checkpoints",
                loud=True if metrics.echo_every else None,  # a logger made with echo_every=0 stays quiet
                start=start)


def _resume(run: _Run, stage: str) -> ckpt.TrainState:
    """The state of the checkpoint :func:`~selfalign.train.outdir.plan_run` chose to resume (model,
    optimizer and schedule restored), else a fresh state carrying the run identity. Without a
    :class:`TrainingStart` (a loop driven by hand) the newest checkpoint is resumed when ``cfg.resume``."""
    tok = run.start.tokenizer if run.start is not None else None
    if run.start is not None and run.start.run is not None:
        found = run.start.run.resume_from
        fresh = run.start.run.new_state(tok)
    else:
        found = ckpt.latest_checkpoint(run.ckpt_root) if run.cfg.resume else None
        fresh = ckpt.TrainState(tokenizer=tok)
    if found is None:
        return fresh
    state = ckpt.load_checkpoint(found, run.accelerator.unwrap_model(run.model), run.optimizer, run.scheduler,
                                 tokenizer=tok)
    console.print(f"[green]resuming[/] {stage} from {found} (step {state.step}/{run.total})")
    return state


class _Step(NamedTuple):
    """One optimizer step's results (metric sums over all processes, not yet divided by ``count``)."""

    count: float
    values: dict[str, float]
    tokens: int
    grad_norm: Any
    lr: float


def _train_step(run: _Run, gb: list[int]) -> _Step:
    """One global batch: accumulate gradients over this process's micro-batches, clip, AdamW and LR step."""
    acc, objective, train = run.accelerator, run.objective, run.train
    world = acc.num_processes
    count = max(float(objective.weight([train[i] for i in gb])), 1e-12)
    mbs = micro_batches(gb, run.lengths, run.cfg.per_device_batch_size, acc.process_index, world)
    sums: dict[str, torch.Tensor] = {}
    tokens = 0
    for k, mb in enumerate(mbs):
        examples = [train[i] for i in mb]
        tokens += sum(e.num_tokens for e in examples)
        batch = _to(objective.collate(examples), acc.device)
        sync = k == len(mbs) - 1
        with acc.no_sync(run.model) if not sync else nullcontext():
            with acc.autocast():
                loss_sum, stats = objective.loss(run.model, batch)
            acc.backward(loss_sum * (world / count))
        for key, v in stats.items():
            sums[key] = sums.get(key, 0) + v.detach().float()
    if run.cfg.max_grad_norm:
        grad_norm = acc.clip_grad_norm_(run.trainable, run.cfg.max_grad_norm)
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(run.trainable, float("inf"))
    lr = run.scheduler.get_last_lr()[0]
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)

    sums["_tokens"] = torch.tensor(float(tokens), device=acc.device)
    step_vals = _reduce(sums, acc)
    step_tokens = int(step_vals.pop("_tokens"))
    return _Step(count, step_vals, step_tokens, grad_norm, lr)


def _advance(state: ckpt.TrainState, step: _Step, batches_per_epoch: int) -> None:
    """Count one optimizer step (tokens, position in the epoch, epoch rollover)."""
    state.tokens += step.tokens
    state.batches_in_epoch += 1
    if state.batches_in_epoch == batches_per_epoch:
        state.epoch, state.batches_in_epoch = state.epoch + 1, 0
    state.step += 1


@dataclass
class _Window:
    """Per-step metrics summed since the last log line (started at ``start``, a perf_counter time)."""

    start: float
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    steps: int = 0
    tokens: int = 0

    def add(self, step: _Step) -> None:
        for key, v in step.values.items():
            self.sums[key] += v / step.count
        self.sums["grad_norm"] += float(step.grad_norm)
        self.sums["lr"] += step.lr
        self.steps += 1
        self.tokens += step.tokens

    def flush(self, now: float) -> dict[str, float]:
        """Window means (+ ``tokens_per_s``) up to ``now``; the window then starts again at ``now``."""
        out = {k: v / self.steps for k, v in self.sums.items()}
        out["tokens_per_s"] = self.tokens / max(now - self.start, 1e-9)
        self.start, self.sums, self.steps, self.tokens = now, defaultdict(float), 0, 0
        return out


def _log_eval_save(run: _Run, state: ckpt.TrainState, window: _Window, last: dict[str, float]
                   ) -> dict[str, float]:
    """After a step: log the window, evaluate and checkpoint when due; returns the latest logged metrics."""
    cfg, acc = run.cfg, run.accelerator
    done = state.step >= run.total
    logged = state.step % cfg.logging_steps == 0 or done
    if logged:
        last = window.flush(time.perf_counter())
        last["epoch"] = state.step / run.steps_per_epoch
        if acc.is_main_process:  # console echo: the logger's echo_every (+ the last step)
            run.metrics.log(state.step, echo=run.loud if done else None, **last)
    if cfg.eval_steps and state.step % cfg.eval_steps == 0 and not done and run.evals:
        ev = evaluate(run.model, run.objective, run.evals, cfg.per_device_batch_size, acc)
        if acc.is_main_process:
            run.metrics.log(state.step, echo=run.loud, **ev)
    saved = None
    if cfg.save_steps and (state.step % cfg.save_steps == 0 or done):
        state.extra["last_metrics"] = last
        if acc.is_main_process:
            saved = ckpt.save_checkpoint(run.ckpt_root, acc.unwrap_model(run.model), run.optimizer,
                                         run.scheduler, state, keep=cfg.save_total_limit)
        acc.wait_for_everyone()
    if logged or (cfg.save_steps and state.step % cfg.save_steps == 0):
        hooks.report(state.step, last, saved)  # every process, at the same steps (Ray Train)
    return last


def _final_metrics(run: _Run, state: ckpt.TrainState, last: dict[str, float], elapsed: float,
                   tokens_start: int) -> dict[str, float]:
    """The last logged metrics + a final evaluation + steps, time and throughput of this run."""
    final = dict(last)
    if run.evals:
        ev = evaluate(run.model, run.objective, run.evals, run.cfg.per_device_batch_size, run.accelerator)
        if run.accelerator.is_main_process:
            run.metrics.log(state.step, echo=run.loud, **ev)
        final.update(ev)
    final["steps"] = state.step
    final["train_seconds"] = elapsed
    final["train_tokens_per_s"] = (state.tokens - tokens_start) / max(elapsed, 1e-9)
    return final


def train_loop(cfg: TrainConfig, model: torch.nn.Module, objective: Objective, train: list, evals: list,
               accelerator, metrics: MetricsLogger, stage: str, start: TrainingStart | None = None
               ) -> tuple[dict[str, float], torch.nn.Module]:
    """Train ``model`` on ``train`` and return ``(final metrics, unwrapped model)``.

    With ``start`` (from :func:`start_training`), resumes the checkpoint it chose (``cfg.resume``)
    and writes checkpoints with its run identity and tokenizer.
    """
    run = _setup_run(cfg, model, objective, train, evals, accelerator, metrics, start)
    state = _resume(run, stage)
    last: dict[str, float] = dict(state.extra.get("last_metrics", {}))
    window = _Window(time.perf_counter())
    t_start = window.start
    tokens_start = state.tokens
    run.model.train()
    with Bar(stage, total=run.total, unit="step") as bar:
        if state.step:
            bar.advance(state.step)
        while state.step < run.total:
            plan = run.plan(state.epoch)
            for gb in plan[state.batches_in_epoch:]:
                step = _train_step(run, gb)
                _advance(state, step, len(plan))
                window.add(step)
                bar.advance(1, info=f"loss={step.values.get('loss', 0.0) / step.count:.4f}")
                last = _log_eval_save(run, state, window, last)
                if state.step >= run.total:
                    break

    final = _final_metrics(run, state, last, time.perf_counter() - t_start, tokens_start)
    return final, accelerator.unwrap_model(run.model)
