"""``selfalign run`` (a whole recipe) and ``selfalign report`` (the HTML report of a run)."""

from __future__ import annotations

from pathlib import Path

import typer

from selfalign.errors import ConfigError

RECIPES = {
    "self_rewarding": "selfalign.recipes.self_rewarding",
    "salmon": "selfalign.recipes.salmon",
}


def run(args: list[str] = typer.Argument(..., help="RECIPE.yaml followed by KEY=VALUE overrides.")):
    """Run a recipe (rounds of stages) into runs/<name>/; re-run the same command to resume.

    Example: selfalign run examples/quickstart.yaml
    Example: selfalign run examples/self_rewarding.yaml iterations=2 train.beta=[0.1,0.05]
    """
    import importlib

    from selfalign.config import apply_overrides, load_yaml, split_config_args

    path, overrides = split_config_args(args)
    if path is None:
        raise ConfigError("give a recipe file, e.g. selfalign run examples/quickstart.yaml")
    data, _ = load_yaml(path)
    recipe = apply_overrides(data, overrides).get("recipe", "self_rewarding")  # same parsing as the recipe's
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ConfigError(f"{path}: recipe: unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    module = importlib.import_module(RECIPES[recipe])
    module.main(path, overrides)


def report(run_dir: Path = typer.Argument(..., help="A run directory (runs/<name>)."),
           out: Path = typer.Option(None, help="Where to write the HTML (default RUN_DIR/report.html).")):
    """Write a self-contained report.html with plots for a run directory.

    Example: selfalign report runs/quickstart
    """
    from selfalign.report import write_report

    typer.echo(str(write_report(run_dir, out)))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("report")(report)
