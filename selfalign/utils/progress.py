"""Rich progress bars with rate and ETA, used by every long step."""

from __future__ import annotations

import os
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
    ``unit``/s computed by rich from recent updates.
    """

    def __init__(self, description: str, total: int | None, unit: str = "it"):
        self.unit = unit
        self.progress = make_progress(unit)
        self.task = self.progress.add_task(description, total=total, rate="", info="")

    def __enter__(self) -> Bar:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, n: float = 1, info: str | None = None) -> None:
        task = self.progress.tasks[0]
        self.progress.advance(self.task, n)
        speed = task.speed
        rate = f"{speed:.2f} {self.unit}/s" if speed else ""
        fields = {"rate": rate}
        if info is not None:
            fields["info"] = info
        self.progress.update(self.task, **fields)

    def set_total(self, total: int) -> None:
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
