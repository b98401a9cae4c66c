"""Progress with rate and ETA, used by every long step.

On a terminal: rich progress bars. When stderr is not a terminal (nohup, SLURM, CI logs), a
:class:`Bar` writes one plain line every ``$SELFALIGN_PROGRESS_EVERY`` seconds (default 30) —
``training: 120/400 (30%) 2.41 step/s elapsed 0:00:50 eta 0:01:56 loss=0.41`` — and a last line
when it ends. ``SELFALIGN_NO_PROGRESS=1`` turns all progress off (the tests set it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


def _disabled() -> bool:
    return os.environ.get("SELFALIGN_NO_PROGRESS", "") not in ("", "0")


def _every() -> float:
    """Seconds between plain progress lines (``$SELFALIGN_PROGRESS_EVERY``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("SELFALIGN_PROGRESS_EVERY", "30")))
    except ValueError:
        return 30.0


def _plain() -> bool:
    """Write plain lines instead of a live bar: progress is on and stderr is not a terminal."""
    return not _disabled() and not console.is_terminal


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _write(line: str) -> None:
    console.file.write(line + "\n")
    console.file.flush()


def make_progress(unit: str = "it") -> Progress:
    """A progress bar showing count, percentage, rate (``unit``/s), elapsed time and ETA."""
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
        disable=_disabled(),
    )


class Bar:
    """A single progress bar: ``with Bar("training", total=100, unit="step") as bar: bar.advance()``.

    ``bar.advance(n, info="loss=0.41")`` moves it and shows free text; the rate column shows
    ``unit``/s computed by rich from recent updates. When stderr is not a terminal it writes plain
    lines instead (see the module docstring).
    """

    def __init__(self, description: str, total: int | None, unit: str = "it"):
        self.description, self.total, self.unit = description, total, unit
        self.plain = _plain()
        self.done: float = 0
        self.info = ""
        self._t0 = self._last = time.monotonic()
        if not self.plain:
            self.progress = make_progress(unit)
            self.task = self.progress.add_task(description, total=total, rate="", info="")

    def __enter__(self) -> Bar:
        self._t0 = self._last = time.monotonic()
        if not self.plain:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.plain:
            _write(self.line(final=True))
        else:
            self.progress.stop()

    def line(self, final: bool = False) -> str:
        """The plain progress line: ``desc: done/total (pct) rate elapsed eta info``."""
        elapsed = time.monotonic() - self._t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.description}: {self.done:g}" + (f"/{self.total}" if self.total else "")]
        if self.total:
            parts.append(f"({100 * self.done / self.total:.0f}%)")
        parts += [f"{rate:.2f} {self.unit}/s", f"elapsed {_clock(elapsed)}"]
        if final:
            parts.append("done" if self.total is None or self.done >= self.total else "stopped")
        elif self.total and rate > 0:
            parts.append(f"eta {_clock(max(self.total - self.done, 0) / rate)}")
        if self.info:
            parts.append(self.info)
        return " ".join(parts)

    def advance(self, n: float = 1, info: str | None = None) -> None:
        if self.plain:
            self.done += n
            if info is not None:
                self.info = info
            now = time.monotonic()
            if now - self._last >= _every():
                self._last = now
                _write(self.line())
            return
        task = self.progress.tasks[0]
        self.progress.advance(self.task, n)
        speed = task.speed
        rate = f"{speed:.2f} {self.unit}/s" if speed else ""
        fields = {"rate": rate}
        if info is not None:
            fields["info"] = info
        self.progress.update(self.task, **fields)

    def set_total(self, total: int) -> None:
        self.total = total
        if not self.plain:
            self.progress.update(self.task, total=total)


def track(items: Iterable[T], description: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Iterate with a progress bar (rate and ETA)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Bar(description, total, unit) as bar:
        for item in items:
            yield item
            bar.advance(1)


@contextmanager
def status(message: str):
    """A spinner for a step whose length is unknown (e.g. loading a model)."""
    if _disabled():
        yield
        return
    if _plain():  # a log file: say what is happening once
        _write(f"{message} ...")
        yield
        return
    with console.status(message):
        yield


def stats_table(stats: dict, title: str, label: str = "statistic"):
    """A two-column rich table of statistics: floats to 4 significant digits, None as ``-``, nested
    dicts (histograms, counts) on one line as ``key:value`` items."""
    from rich.table import Table

    def fmt(v) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    table = Table(title=title)
    table.add_column(label)
    table.add_column("value", justify="right")
    for key, value in stats.items():
        if isinstance(value, dict):
            text = "  ".join(f"{k}:{fmt(v)}" for k, v in value.items()) or "-"
        else:
            text = fmt(value)
        table.add_row(str(key), text)
    return table
