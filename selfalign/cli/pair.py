"""``selfalign pair``: build preference pairs (or best-of-n SFT records) from scored candidates."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from selfalign.pair_strategies import pair_strategy_names
from selfalign.utils.progress import stats_table


def pair(
    input: Path = typer.Argument(..., help="Scored candidates (JSONL/JSON/CSV/parquet/datasets folder)."),
    output: Path = typer.Argument(..., help="Preference records to write (JSON lines)."),
    strategy: str = typer.Option("max_min", help=f"One of: {', '.join(pair_strategy_names())}."),
    rho: float = typer.Option(0.0, help="length_control: ρ in [0, 1] (0 = max_min)."),
    min_margin: float = typer.Option(0.0, help="Drop pairs whose score difference is below this."),
    include_unfinished: bool = typer.Option(False, help="Also use responses cut at max length."),
    group_key: str = typer.Option("id", help="all_pairs: record key (dotted) that caps are applied per."),
    max_pairs_per_group: int | None = typer.Option(None, help="all_pairs: at most this many pairs per group."),
    max_pairs: int | None = typer.Option(None, help="all_pairs: at most this many pairs in total."),
    seed: int = typer.Option(0, help="all_pairs: sampling seed."),
    min_score: float | None = typer.Option(None, help="best_of_n: keep the best response only if it scores at least this."),
    stats_json: Path | None = typer.Option(None, help="Also write the statistics to this JSON file."),
):
    """Pair scored responses into chosen/rejected preference records and print statistics.

    Example: selfalign pair scored.jsonl prefs.jsonl --strategy length_control --rho 0.1
    """
    from selfalign.data.io import atomic_output, read_records, write_jsonl
    from selfalign.preferences import build_pairs

    records = read_records(input)
    pairs, stats = build_pairs(records, strategy, rho=rho, min_margin=min_margin,
                               include_unfinished=include_unfinished, group_key=group_key,
                               max_pairs_per_group=max_pairs_per_group, max_pairs=max_pairs, seed=seed,
                               min_score=min_score)
    write_jsonl(output, pairs)
    if stats_json is not None:
        with atomic_output(stats_json) as tmp:
            tmp.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    Console().print(stats_table(stats, f"{strategy}: {input} → {output}"))


def register(app: typer.Typer) -> None:
    app.command("pair")(pair)
