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

    Fails (exit 1, nothing written) when the output is the input or a folder, and when no pair can
    be made (the message counts each reason: unfinished answers, unscored ones, equal scores).

    Example: selfalign pair scored.jsonl prefs.jsonl --strategy length_control --rho 0.1
    """
    from selfalign.data.io import atomic_output, iter_records, require_records, write_jsonl
    from selfalign.data.paths import check_outputs, same_path
    from selfalign.errors import DataError
    from selfalign.preferences import build_pairs_located, no_pairs_message

    check_outputs({"input": input}, {"output": output, "stats_json": stats_json})
    if stats_json is not None and same_path(output, stats_json):
        raise DataError("is the same file as the output", stats_json, key="stats_json")
    located = require_records(list(iter_records(input)), input)
    pairs, stats = build_pairs_located(located, strategy, rho=rho, min_margin=min_margin,
                                       include_unfinished=include_unfinished, group_key=group_key,
                                       max_pairs_per_group=max_pairs_per_group, max_pairs=max_pairs,
                                       seed=seed, min_score=min_score)
    if not pairs:
        raise DataError(no_pairs_message(stats), input)
    write_jsonl(output, pairs)
    if stats_json is not None:
        with atomic_output(stats_json) as tmp:
            tmp.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    Console().print(stats_table(stats, f"{strategy}: {input} → {output}"))


def register(app: typer.Typer) -> None:
    app.command("pair", epilog="Keys with types, defaults and descriptions: selfalign config show pair")(pair)
