"""``selfalign train NAME``: one command per trainer of :mod:`selfalign.train.registry`, each
``[CONFIG.yaml] [KEY=VALUE ...] [--resume | --overwrite]``.

An ``output_dir`` holding an earlier run needs ``--resume`` (continue it: refused when its
checkpoints were written with other settings) or ``--overwrite`` (delete its outputs first); see
:mod:`selfalign.train.outdir`. A run that fails before its first checkpoint leaves nothing behind.

The commands, their help and their ``Example:`` lines come from the registry
(:data:`selfalign.train.registry.TRAINERS`); a trainer's module (and torch) is imported only when
that trainer runs or shows its own ``--help``.
"""

from __future__ import annotations

from contextlib import nullcontext

import typer
from typer.core import TyperCommand

from selfalign.train.registry import get_trainer, run_trainer, trainer_help_extra, trainer_info, trainer_names

_ARGS = typer.Argument(None, help="An optional config YAML, then KEY=VALUE overrides (e.g. lora.r=8).",
                       show_default=False)
_RESUME = typer.Option(False, "--resume", help="Continue the run in output_dir from its newest checkpoint "
                       "(refused when that was written with other settings).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Delete an earlier run's outputs in output_dir (checkpoints, "
                          "model, metrics.jsonl, ...) before training.")


class _TrainerCommand(TyperCommand):
    """A trainer's command: its ``--help`` adds the trainer's extra help (computed only then)."""

    _extended = False

    def format_help(self, ctx, formatter) -> None:
        if not self._extended:
            self._extended = True
            extra = trainer_help_extra(self.name)
            if extra:
                self.help = f"{self.help}\n\n{extra}"
            from selfalign.cli.config import keys_epilog
            from selfalign.train.registry import get_trainer

            self.epilog = keys_epilog(get_trainer(self.name)[0], f"train {self.name}")
        return super().format_help(ctx, formatter)


def _run(kind: str, args: list[str] | None, resume: bool, overwrite: bool = False) -> None:
    from selfalign.config import load_config, split_config_args
    from selfalign.train.outdir import cleanup_on_failure
    from selfalign.utils.progress import console

    path, overrides = split_config_args(list(args or []))
    if resume:
        overrides.append("resume=true")
    if overwrite:
        overrides.append("overwrite=true")
    config_cls, _ = get_trainer(kind)
    cfg = load_config(config_cls, path, overrides)
    out = getattr(cfg, "output_dir", None)
    with cleanup_on_failure(out) if out else nullcontext():
        summary = run_trainer(kind, cfg)
    keys = [k for k in ("loss", "acc", "eval_loss", "eval_acc", "steps", "train_tokens_per_s") if k in summary]
    body = ", ".join(f"{k}={summary[k]:.4g}" if isinstance(summary[k], float) else f"{k}={summary[k]}" for k in keys)
    console.print(f"[green]done[/] {kind}: {body}")
    typer.echo(summary["model_path"])


def _command(app: typer.Typer, name: str) -> None:
    """Add ``selfalign train NAME`` to ``app``, described by the registry."""
    info = trainer_info(name)

    def command(args: list[str] = _ARGS, resume: bool = _RESUME, overwrite: bool = _OVERWRITE):
        _run(name, args, resume, overwrite)

    example = f"\n\nExample: {info.example}" if info.example else ""
    app.command(name, cls=_TrainerCommand, help=f"{info.help}{example}")(command)


def build_train_app() -> typer.Typer:
    """The ``train`` command group: one command per registered trainer."""
    app = typer.Typer(help="Train a model with one of the trainers below: selfalign train NAME [CONFIG.yaml] "
                      "[KEY=VALUE ...] [--resume | --overwrite].", no_args_is_help=True)
    for name in trainer_names():
        _command(app, name)
    return app


def register(app: typer.Typer) -> None:
    app.add_typer(build_train_app(), name="train")
