"""``selfalign generate``: sample N responses per prompt (batched, seeded, resumable shards)."""

from __future__ import annotations

import typer

_ARGS = typer.Argument(None, help="An optional config YAML, then KEY=VALUE overrides (e.g. num_samples=4).",
                       show_default=False)


def generate(args: list[str] = _ARGS):
    """Generate candidates: num_samples responses per prompt, written as shards then merged into
    output; re-running an interrupted command keeps its finished shards. The output must not be the
    input, nor an existing folder (checked before the model loads).

    Keys: model= input=(or prompts_file=) output= num_samples= temperature= top_p= top_k=
    max_new_tokens= stop= seed= batch_size= shard_size= limit= dtype= system_prompt=

    Example: selfalign generate model=smollm2-135m input=prompts.jsonl output=candidates.jsonl num_samples=4 temperature=0.7 top_p=0.9
    """
    from rich.console import Console

    from selfalign.cli.judge import stats_path, write_stats
    from selfalign.config import load_config, split_config_args
    from selfalign.data.formats import load_prompts
    from selfalign.data.paths import check_outputs
    from selfalign.generation import GenerateConfig, build_engine, generate_records, generation_summary
    from selfalign.generation.engine import shard_dir_for
    from selfalign.utils.progress import stats_table

    path, overrides = split_config_args(list(args or []))
    cfg = load_config(GenerateConfig, path, overrides)
    check_outputs({"input": cfg.input, "config": path},
                  {"output": cfg.output, "statistics": stats_path(cfg.output),
                   "shard_dir": shard_dir_for(cfg.output)}, folders=("shard_dir",))
    records = load_prompts(cfg.input, cfg.prompt_key)
    if cfg.limit:
        records = records[: cfg.limit]
    engine = build_engine(cfg.engine())
    run: dict = {}
    out = generate_records(engine, records, cfg.sampling(), cfg.output, shard_size=cfg.shard_size,
                           overwrite=cfg.overwrite, stats=run)
    stats = {**generation_summary(out), **run}
    if run["generate_seconds"] > 0 and run["prompts_generated"]:
        stats["tokens_per_s"] = run["tokens_generated"] / run["generate_seconds"]
        stats["prompts_per_s"] = run["prompts_generated"] / run["generate_seconds"]
    where = write_stats(cfg.output, stats)
    Console(stderr=True).print(stats_table(stats, f"generate {cfg.model}: {cfg.input} → {cfg.output}"))
    typer.echo(f"{cfg.output}  (statistics: {where})")


def register(app: typer.Typer) -> None:
    app.command("generate", epilog="Keys with types, defaults and descriptions: selfalign config show generate")(generate)
