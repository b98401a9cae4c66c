"""What every trainer does before and after its loop: output folder, accelerator, data, trackers.

:func:`start_training` (shared by SFT, RM, DPO and PPO), in this order, so that a refused or
failing start leaves nothing behind:

1. :func:`selfalign.train.outdir.check_output_dir` — an earlier run in ``output_dir`` needs
   ``resume`` or ``overwrite`` (one-line error otherwise); trackers asked for must be installed;
2. accelerator (``report_to`` trackers), seed, ``num_threads``;
3. tokenizer and datasets: every record read and tokenised (a bad record is a one-line
   :class:`~selfalign.errors.DataError`) — still nothing created;
4. the run identity and start (:func:`selfalign.train.outdir.plan_run`): the checkpoint to resume,
   refused when written with other settings;
5. only now: earlier outputs cleared (``overwrite``), ``output_dir`` created, metrics opened (on
   resume, rows the killed run logged after its checkpoint are dropped), trackers started, the data
   report logged at step 0.

:func:`finish` writes ``output_dir/model`` and ``train_summary.json`` and closes the trackers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfalign.data.io import write_text_atomic
from selfalign.train import checkpoint as ckpt
from selfalign.train import outdir, trackers
from selfalign.train.config import TrainConfig
from selfalign.utils.metrics import MetricsLogger
from selfalign.utils.progress import console


def make_accelerator(cfg: TrainConfig):
    """An ``Accelerator`` for ``cfg`` (with its ``report_to`` trackers; in a single process, earlier
    settings are forgotten first, so one Python process can run several trainings with different
    precisions)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    launched = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not launched:
        AcceleratorState._reset_state()
    # a process group set up for CPU workers (Ray Train on CPU: gloo) is multi-CPU data parallel, which
    # accelerate only recognises with cpu=True
    cpu = cfg.cpu or (launched and torch.distributed.get_backend() == "gloo" and not torch.cuda.is_available())
    return Accelerator(mixed_precision=cfg.mixed_precision, cpu=cpu, **trackers.accelerator_kwargs(cfg))


@dataclass
class TrainingStart:
    """What every trainer sets up before its model: see :func:`start_training`."""

    accelerator: Any
    tokenizer: Any
    datasets: Any
    metrics: MetricsLogger
    counts: dict[str, int]
    run: outdir.OutputRun | None = None  # identity + checkpoint to resume (None: built by hand)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0


def start_training(cfg: TrainConfig, stage: str, metrics: MetricsLogger | None,
                   load_examples: Callable[[str, Any], list]) -> TrainingStart:
    """Output-folder checks, accelerator, seed, tokenizer, datasets (``load_examples(path, tokenizer)``),
    run identity, then the output folder, metrics logger, trackers and the data report at step 0
    (see the module docstring for the order)."""
    from accelerate.utils import set_seed

    from selfalign.models.load import load_tokenizer
    from selfalign.train.data import load_datasets

    earlier = outdir.check_output_dir(cfg)
    trackers.requested(cfg)
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)
    if getattr(cfg, "num_threads", None):
        torch.set_num_threads(cfg.num_threads)
    tok = load_tokenizer(cfg.model, trust_remote_code=cfg.trust_remote_code)
    datasets = load_datasets(cfg, lambda path: load_examples(path, tok))
    run = outdir.plan_run(cfg, earlier)
    out = Path(cfg.output_dir)
    if accelerator.is_main_process:
        outdir.clear_outputs(out, run.clear)
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    metrics = open_metrics(cfg, stage, metrics)
    if accelerator.is_main_process and cfg.resume and cfg.metrics_file is None:  # a file of this run
        resumed_at = ckpt.read_state(run.resume_from).get("step", 0) if run.resume_from is not None else -1
        metrics.rewind(resumed_at)  # the rows a killed run logged after its checkpoint are logged again
    trackers.start_trackers(cfg, accelerator, metrics)
    counts = report_data(datasets, metrics, accelerator)
    return TrainingStart(accelerator, tok, datasets, metrics, counts, run)


def load_pair_examples(cfg: Any, need_margin: bool) -> Callable[[str, Any], list]:
    """``load_examples`` for preference-pair trainers (RM, DPO) from the config's data keys."""
    from selfalign.train.data import load_pairs

    return lambda path, tok: load_pairs(
        path, tok, max_length=cfg.max_length, max_prompt_length=cfg.max_prompt_length, truncation=cfg.truncation,
        prompt_key=cfg.prompt_key, chosen_key=cfg.chosen_key, rejected_key=cfg.rejected_key,
        need_margin=need_margin, chat_template=cfg.chat_template)


def open_metrics(cfg: TrainConfig, stage: str, metrics: MetricsLogger | None) -> MetricsLogger:
    """The caller's logger, or one writing ``cfg.metrics_file`` (default ``output_dir/metrics.jsonl``)."""
    if metrics is not None:
        return metrics
    return MetricsLogger(cfg.metrics_file or Path(cfg.output_dir) / "metrics.jsonl", stage=stage,
                         echo_every=max(10, cfg.logging_steps))


def report_data(datasets, metrics: MetricsLogger, accelerator) -> dict[str, int]:
    """Log what happened to the records (skipped, truncated, dropped) at step 0; returns the counts."""
    counts: dict[str, int] = {}
    for name, st in datasets.stats.items():
        counts.update(st.as_metrics(name))
        notes = [f"{st.used}/{st.read} used"]
        if st.identical_pairs:
            notes.append(f"{st.identical_pairs} skipped (chosen == rejected)")
        if st.truncated:
            notes.append(f"{st.truncated} truncated")
        if st.dropped_too_long:
            notes.append(f"{st.dropped_too_long} dropped (too long)")
        if accelerator.is_main_process:
            console.print(f"[dim]{metrics.stage}[/] {name} data: " + ", ".join(notes))
    counts["train_examples"] = len(datasets.train)
    counts["eval_examples"] = len(datasets.eval)
    if accelerator.is_main_process:
        metrics.log(0, echo=False, **counts)
    return counts


def finish(cfg: TrainConfig, model: torch.nn.Module, tokenizer, final: dict[str, float],
           counts: dict[str, int], accelerator) -> dict[str, Any]:
    """Save the final model to ``output_dir/model`` and a ``train_summary.json``, close the trackers;
    return the summary."""
    out = Path(cfg.output_dir) / "model"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.save_model_folder(model, tokenizer, out, adapter_only=cfg.save_adapter_only and cfg.lora is not None)
    summary: dict[str, Any] = {**final, **counts, "model_path": str(out)}
    if accelerator.is_main_process:
        write_text_atomic(Path(cfg.output_dir) / "train_summary.json", json.dumps(summary, indent=2))
    accelerator.wait_for_everyone()
    trackers.end_trackers(accelerator)
    return summary
