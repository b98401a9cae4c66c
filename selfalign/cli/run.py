"""``selfalign run`` (a whole recipe) and ``selfalign report`` (the HTML report of a run)."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from selfalign.errors import ConfigError

# recipe name -> "module:ConfigClass" (the module's main(path, overrides) runs it)
RECIPES = {
    "self_rewarding": "selfalign.recipes.self_rewarding:SelfRewardingConfig",
    "salmon": "selfalign.recipes.salmon:SalmonConfig",
    "synfed": "selfalign.recipes.synfed:SynfedConfig",
}

_KEYS_EPILOG = ("Keys: every recipe key and its default: selfalign config show RECIPE.yaml "
                f"(or: {' | '.join(RECIPES)}); TRL's names (num_train_epochs, learning_rate, "
                "use_peft + lora_r …) are accepted.")


def recipe_name(path: str, overrides: list[str] | None = None) -> str:
    """The ``recipe:`` of a recipe file after ``overrides`` (default ``self_rewarding``); checked."""
    from selfalign.config import apply_overrides, load_yaml

    data, lines = load_yaml(path)
    recipe = apply_overrides(data, list(overrides or [])).get("recipe", "self_rewarding")
    if not isinstance(recipe, str) or recipe not in RECIPES:
        line = f":{lines['recipe']}" if "recipe" in lines else ""
        raise ConfigError(f"{path}{line}: recipe: unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    return recipe


def is_rlhf_file(path: str) -> bool:
    """A ``.conf`` file, or YAML with a ``General`` section and no other ``recipe:`` (seed 002's format)."""
    if path.endswith(".conf"):
        return True
    from selfalign.config import load_yaml
    from selfalign.recipes.rlhf_conf import is_rlhf_config

    return is_rlhf_config(load_yaml(path)[0])


def recipe_schema(name: str) -> type:
    """The config schema of recipe ``name`` (imports the recipe module)."""
    module, _, cls = RECIPES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def run(args: list[str] = typer.Argument(..., help="RECIPE.yaml followed by KEY=VALUE overrides.")):
    """Run a recipe (rounds of stages) into runs/<name>/; re-run the same command to resume.

    Example: selfalign run examples/quickstart.yaml
    Example: selfalign run examples/self_rewarding.yaml iterations=2 train.beta=[0.1,0.05]

    The llm-on-ray RLHF config files (a reward model, then PPO, on Ray Train workers) run the same way:
    selfalign run examples/rlhf/reward.conf, then selfalign run examples/rlhf/ppo.conf (docs/recipes/rlhf.md).
    """
    from selfalign.config import split_config_args

    path, overrides = split_config_args(args)
    if path is None:
        raise ConfigError("give a recipe file, e.g. selfalign run examples/quickstart.yaml")
    if is_rlhf_file(path):  # an llm-on-ray style RM / PPO config (.conf, or the same sections in YAML)
        from selfalign.recipes import rlhf

        rlhf.main(path, overrides)
        return
    recipe = recipe_name(path, overrides)  # same parsing as the recipe's
    module = importlib.import_module(RECIPES[recipe].partition(":")[0])
    module.main(path, overrides)


def report(run_dir: Path = typer.Argument(..., help="A run directory (runs/<name>)."),
           out: Path = typer.Option(None, help="Where to write the HTML (default RUN_DIR/report.html).")):
    """Write a self-contained report.html with plots for a run directory.

    Example: selfalign report runs/quickstart
    """
    from selfalign.report import write_report

    typer.echo(str(write_report(run_dir, out)))


def register(app: typer.Typer) -> None:
    app.command("run", epilog=_KEYS_EPILOG)(run)
    app.command("report")(report)
