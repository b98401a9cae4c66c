"""Scalar logging: console, ``metrics.jsonl`` and, when a trainer asks for them, experiment trackers.

Every line of ``metrics.jsonl`` is ``{"stage": ..., "step": ..., "time": ..., <name>: <float>, ...}``
so a report can plot any scalar of any stage. Trackers (tensorboard, wandb, trackio: a trainer's
``report_to``) receive the same scalars through :meth:`MetricsLogger.forward_to`, wired by
:mod:`selfalign.train.trackers` to accelerate's ``Accelerator.log``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

from selfalign.data.io import iter_jsonl, write_text_atomic
from selfalign.utils.progress import console


class MetricsLogger:
    """Append scalars to ``path`` (JSON lines), tagged with ``stage``; optionally echo them and
    forward them to a tracker sink (``sink(scalars, step)``)."""

    def __init__(self, path: str | Path | None, stage: str = "", echo_every: int = 0):
        self.path = Path(path) if path else None
        self.stage = stage
        self.echo_every = echo_every
        self._sink: Callable[[dict, int], None] | None = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def forward_to(self, sink: Callable[[dict, int], None] | None) -> None:
        """Also send every logged set of scalars to ``sink(scalars, step)`` (None: stop)."""
        self._sink = sink

    def rewind(self, step: int) -> int:
        """Drop this stage's rows logged after ``step`` (a resumed run logs them again; ``-1`` drops
        them all); returns how many were dropped. Other stages' rows and damaged lines are kept."""
        if not self.path or not self.path.is_file():
            return 0
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict) and row.get("stage") == self.stage and isinstance(row.get("step"), int) \
                    and row["step"] > step:
                dropped += 1
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
        if dropped:
            write_text_atomic(self.path, "".join(kept))
        return dropped

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
        if self._sink is not None and clean:
            self._sink(clean, step)
        do_echo = echo if echo is not None else (self.echo_every and step % self.echo_every == 0)
        if do_echo:
            body = " ".join(f"{k}={_fmt(v)}" for k, v in clean.items())
            console.print(f"[dim]{self.stage}[/] step {step}: {body}")

    def close(self) -> None:
        """Stop forwarding to a tracker (the file is opened per line: nothing else to close)."""
        self._sink = None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl`` (none when it does not exist).

    Only the last line may be cut (a crash while appending) and is then skipped; any other bad line
    is a :class:`~selfalign.errors.DataError` naming ``file:line``.
    """
    p = Path(path)
    if not p.is_file():
        return []
    errors: list = []
    rows = [(line, row) for line, row in iter_jsonl(p, on_error=errors.append)]
    last = max([line for line, _ in rows[-1:]] + [e.line or 0 for e in errors], default=0)
    for e in errors:
        if e.line != last:
            raise e
    return [row for _, row in rows]
