"""Progress reports that every training process makes at the same points (for Ray Train).

A trainer calls :func:`report` on **every** process after each logged step and each checkpoint
(``checkpoint`` = the checkpoint folder, given on the main process), and :func:`report_end` once with
the final model folder. Without a reporter installed these are no-ops; :mod:`selfalign.distributed.train`
installs one that forwards to ``ray.train.report`` (which needs every worker to call it equally often).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Reporter = Callable[[int, dict[str, Any], "Path | None"], None]
_reporter: Reporter | None = None


def set_reporter(fn: Reporter | None) -> None:
    """Install ``fn(step, metrics, checkpoint_or_None)`` (None: remove)."""
    global _reporter
    _reporter = fn


def report(step: int, metrics: dict[str, Any], checkpoint: str | Path | None = None) -> None:
    """Tell the reporter (if any) about ``metrics`` at ``step`` and, optionally, a new checkpoint."""
    if _reporter is not None:
        _reporter(step, dict(metrics), Path(checkpoint) if checkpoint is not None else None)
