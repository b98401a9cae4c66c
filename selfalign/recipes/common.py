"""What every recipe does around its stages: load and check its config, resolve the base model,
print a per-round summary, write the report.

A recipe module defines a config schema (top-level keys plus sections derived from stage schemas,
see :mod:`selfalign.stages.sections`), a ``check_config(cfg, source)`` that builds every stage
config of every round up front (so a bad value fails before any work), and ``run_recipe(cfg)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field

from selfalign.config import StrictModel, apply_aliases, apply_overrides, load_yaml, validate
from selfalign.errors import ConfigError
from selfalign.pipeline import Run
from selfalign.stages.sections import check_recipe_keys
from selfalign.utils.progress import console

M = TypeVar("M", bound=BaseModel)


class RecipeConfig(StrictModel):
    """The top-level keys every recipe has: where its run goes and what it starts from."""

    name: str = Field(..., description="run name: the run directory is output_root/name")
    output_root: str = "runs"
    model: str = Field("smollm2-135m", description="the starting model M_0 (registry name, folder or hub id)")
    seed: int = 0
    dtype: str = "float32"

    @property
    def run_dir(self) -> Path:
        return Path(self.output_root) / self.name


def load_recipe_config(model: type[M], path: str, overrides: list[str],
                       moved: dict[str, str] | None = None) -> M:
    """Read ``path``, apply ``overrides``, rename TRL's key names (``train.num_train_epochs``), reject
    recipe-set and moved keys, validate (one-line errors)."""
    data, lines = load_yaml(path)
    data = apply_overrides(data, list(overrides))
    apply_aliases(model, data, path, lines)
    check_recipe_keys(model, data, lines, path, moved)
    return validate(model, data, path, lines)


def base_model_path(spec: str) -> Path | str:
    """A registry name or local folder → a local model folder; a hub id stays a string."""
    from selfalign.models.load import resolve_model

    if not Path(spec).exists() and "/" in spec:
        return spec
    return Path(resolve_model(spec))


def check_files(source: str, **files: str | None) -> None:
    """Every named input file that is set exists (``key: path: file not found`` otherwise)."""
    for key, f in files.items():
        if f and not Path(f).is_file():
            raise ConfigError(f"{source}: {key}: {f}: file not found")


def fmt(x: Any) -> str:
    """A metric for a summary table: floats to 4 digits, intervals as [low, high]."""
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(isinstance(v, (int, float)) for v in x):
        return f"[{x[0]:.3f}, {x[1]:.3f}]"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def print_summary(run: Run, picks: dict[str, tuple[str, ...]], title: str,
                  rename: dict[str, str] | None = None) -> None:
    """One row per metric, one column per round, from finished stages' manifests.

    ``picks`` maps a stage label (``validate``, ``pair`` …) to the metric keys to show.
    """
    from rich.table import Table

    rename = rename or {}
    rows: dict[int, dict] = {}
    for m in run.manifests():
        if m.get("status") != "done" or m["stage"] not in picks:
            continue
        r = rows.setdefault(m["round"], {})
        for k in picks[m["stage"]]:
            if k in m.get("metrics", {}):
                r[rename.get(f"{m['stage']}.{k}", k)] = m["metrics"][k]
    metrics = list(dict.fromkeys(k for r in rows.values() for k in r))
    table = Table(title=title)
    table.add_column("metric")
    for rnd in sorted(rows):
        table.add_column(f"round {rnd}", justify="right")
    for k in metrics:
        table.add_row(k, *[fmt(rows[r][k]) if rows[r].get(k) is not None else "-" for r in sorted(rows)])
    console.print(table)


def finish_run(run: Run, summary: Callable[[Run], None]) -> Run:
    """Print the summary and write ``report.html``."""
    from selfalign.report import write_report

    summary(run)
    console.print(f"[bold green]report:[/] {write_report(run.root)}")
    return run
