"""Scalar logging: console, ``metrics.jsonl`` and (when installed and asked for) tensorboard / wandb.

Every line of ``metrics.jsonl`` is ``{"stage": ..., "step": ..., "time": ..., <name>: <float>, ...}``
so a report can plot any scalar of any stage.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from selfalign.data.io import iter_jsonl
from selfalign.utils.progress import console


class MetricsLogger:
    """Append scalars to ``path`` (JSON lines), tagged with ``stage``; optionally echo them."""

    def __init__(self, path: str | Path | None, stage: str = "", echo_every: int = 0,
                 tensorboard_dir: str | Path | None = None, wandb_project: str | None = None):
        self.path = Path(path) if path else None
        self.stage = stage
        self.echo_every = echo_every
        self._tb = None
        self._wandb = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(tensorboard_dir))
            except Exception:  # tensorboard not installed
                console.print("[yellow]tensorboard requested but not installed; skipping[/]")
        if wandb_project:
            try:
                import wandb

                self._wandb = wandb.init(project=wandb_project, name=stage, reinit=True)
            except Exception:
                console.print("[yellow]wandb requested but not installed or not logged in; skipping[/]")

    def log(self, step: int, echo: bool | None = None, **scalars) -> None:
        clean = {}
        for k, v in scalars.items():
            if v is None:
                continue
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
                clean[k] = float(v) if isinstance(v, float) else v
        rec = {"stage": self.stage, "step": step, "time": round(time.time(), 3), **clean}
        if self.path:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in clean.items():
                self._tb.add_scalar(f"{self.stage}/{k}" if self.stage else k, v, step)
        if self._wandb is not None:
            self._wandb.log(clean, step=step)
        do_echo = echo if echo is not None else (self.echo_every and step % self.echo_every == 0)
        if do_echo:
            body = " ".join(f"{k}={_fmt(v)}" for k, v in clean.items())
            console.print(f"[dim]{self.stage}[/] step {step}: {body}")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (none when it does not exist); a line cut by a crash is skipped."""
    p = Path(path)
    if not p.is_file():
        return []
    return [row for _, row in iter_jsonl(p, on_error=lambda _err: None)]
