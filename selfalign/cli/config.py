"""``selfalign config show``: every key a command or recipe takes, with type, default and description.

The keys come from the pydantic schemas the commands validate with, so this list cannot drift
from what is accepted. ``--json-schema`` prints the JSON schema instead (for editors: point the
YAML language server at it).
"""

from __future__ import annotations

import difflib
import importlib
import json
from pathlib import Path

import typer

from selfalign.errors import ConfigError

config_app = typer.Typer(help="Show the keys (settings) of every command and recipe.", no_args_is_help=True)

_TARGETS = "RECIPE.yaml | self_rewarding | salmon | train sft|rm|dpo|ppo | generate | judge [TYPE] | pair"


def _trainer_schema(name: str | None) -> type:
    from selfalign.train.registry import get_trainer, trainer_info, trainer_names

    if name is None:
        raise ConfigError(f"config show train: give a trainer: {' | '.join(trainer_names())}")
    spec = trainer_info(name)  # ConfigError naming the closest trainer
    if spec.config:  # "module:Class": the config only, not the trainer (and torch)
        module, _, cls = spec.config.partition(":")
        return getattr(importlib.import_module(module), cls)
    return get_trainer(name)[0]


def _judge_schema(type_name: str | None) -> type:
    if type_name is None:
        from selfalign.cli.judge import JudgeCommandConfig

        return JudgeCommandConfig
    from selfalign.judges.base import _lookup  # the judge registry's one lookup (imports that judge)

    return _lookup(type_name)[0]


def resolve_schema(target: list[str]) -> tuple[str, type]:
    """``config show`` words → (what to call it, its pydantic schema); ConfigError if unknown."""
    from selfalign.cli.run import RECIPES, is_rlhf_file, recipe_name, recipe_schema

    head, rest = target[0], target[1:]
    arg = rest[0] if rest else None
    if head in ("train", "judge"):
        if len(rest) > 1:
            raise ConfigError(f"config show {head}: unexpected {' '.join(rest[1:])!r}; give one of: {_TARGETS}")
        if head == "train":
            return f"selfalign train {arg}", _trainer_schema(arg)
        return ("selfalign judge" + (f": judge.type={arg}" if arg else "")), _judge_schema(arg)
    schema = _single_schema(head)
    if schema is None and Path(head).is_file() and is_rlhf_file(head):  # an llm-on-ray RM / PPO config
        from selfalign.recipes.rlhf import stage_of
        from selfalign.recipes.rlhf_conf import read_rlhf_config

        stage = stage_of(read_rlhf_config(head)[0])
        return (f"rlhf {stage} stage ({head}): the `selfalign:` section takes these keys; General / Dataset / "
                f"Training keys map onto them (docs/recipes/rlhf.md)", _trainer_schema(stage))
    if schema is None and (head.endswith((".yaml", ".yml")) or Path(head).is_file()):
        name = recipe_name(head)
        schema = (f"recipe {name} ({head})", recipe_schema(name))
    if schema is None:
        known = [*RECIPES, "train", "generate", "judge", "pair"]
        close = difflib.get_close_matches(head, known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"config show: unknown target {head!r}{hint} (give one of: {_TARGETS})")
    if rest:
        raise ConfigError(f"config show {head}: unexpected {' '.join(rest)!r}; give one of: {_TARGETS}")
    return schema


def _single_schema(head: str) -> tuple[str, type] | None:
    """A target named by one word (a recipe, generate, pair), or None."""
    from selfalign.cli.run import RECIPES, recipe_schema

    if head in RECIPES:
        return f"recipe {head}", recipe_schema(head)
    if head == "generate":
        from selfalign.generation import GenerateConfig

        return "selfalign generate", GenerateConfig
    if head == "pair":
        from selfalign.preferences import PairConfig

        return "pair settings (a recipe's pairs: section; selfalign pair takes them as --options)", PairConfig
    return None


def _aliases_line(schema: type) -> str:
    """TRL's names that this schema or one of its sections accepts, as one line ("" if none)."""
    from selfalign.config import LORA_ALIASES, TRL_ALIASES, accepts_key

    models, found = [schema], []
    models += [m for m in (_section_model(f.annotation) for f in schema.model_fields.values()) if m]
    used: set[int] = set()  # the models (sections) that take at least one of the names
    for alias, target in TRL_ALIASES.items():
        takers = [i for i, m in enumerate(models) if accepts_key(m, target) and alias not in m.model_fields]
        if takers:
            found.append(f"{alias} → {target}")
            used.update(takers)
    for key, line in (("lora", f"use_peft: true + {', '.join(LORA_ALIASES)} → lora.*"),
                      ("mixed_precision", "bf16: true → mixed_precision: bf16")):
        takers = [i for i, m in enumerate(models) if key in m.model_fields]
        if takers:
            found.append(line)
            used.update(takers)
    where = " (in the sections that have the key)" if len(used) > 1 else ""
    return f"TRL names accepted{where}: {'; '.join(found)}" if found else ""


def _section_model(annotation) -> type | None:
    from pydantic import BaseModel

    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


@config_app.command("show")
def show(target: list[str] = typer.Argument(..., metavar="TARGET...", help=f"What to describe: {_TARGETS}."),
         json_schema: bool = typer.Option(False, "--json-schema", help="Print the JSON schema (for editors).")):
    """Print every key of a recipe or command config: type, default and description (nested
    sections as dotted keys, e.g. train.lora.r).

    Example: selfalign config show train dpo

    Example: selfalign config show examples/quickstart.yaml

    Example: selfalign config show judge rubric --json-schema
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from selfalign.config import describe_fields

    title, schema = resolve_schema(target)
    if json_schema:
        try:
            typer.echo(json.dumps(schema.model_json_schema(), indent=2, default=str))
        except Exception as e:  # a field type with no JSON form
            raise ConfigError(f"config show {' '.join(target)}: no JSON schema: {e}") from None
        return
    table = Table(title=Text(f"{title}: keys (YAML or KEY=VALUE)"), title_justify="left")
    for col in ("key", "type", "default", "description"):
        table.add_column(col, overflow="fold")
    for row in describe_fields(schema):  # Text: "list[str]" is not rich markup
        table.add_row(*(Text(row[c]) for c in ("key", "type", "default", "description")))
    console = Console()
    if not console.is_terminal:  # a pipe or file: keep rows on one line where possible
        console = Console(width=200)
    console.print(table, markup=False, highlight=False)
    line = _aliases_line(schema)
    if line:
        console.print(line, markup=False, highlight=False)


def keys_epilog(schema: type, target: str, limit: int = 30) -> str:
    """A command's ``--help`` epilogue: its top-level keys and where to read about each."""
    keys = list(schema.model_fields)
    shown = ", ".join(keys[:limit]) + (", …" if len(keys) > limit else "")
    return f"Keys: {shown}. Types, defaults and descriptions: selfalign config show {target}"


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
