"""``selfalign train sft|rm|dpo``: one command per trainer, ``[CONFIG.yaml] [KEY=VALUE ...]``."""

from __future__ import annotations

import typer

train_app = typer.Typer(help="Train a model: sft (supervised), rm (reward model) or dpo (preferences).",
                        no_args_is_help=True)

_ARGS = typer.Argument(None, help="An optional config YAML, then KEY=VALUE overrides (e.g. lora.r=8).",
                       show_default=False)
_RESUME = typer.Option(False, "--resume", help="Continue from the last checkpoint in output_dir/checkpoints.")


def _run(kind: str, args: list[str] | None, resume: bool) -> None:
    from selfalign.config import load_config, split_config_args
    from selfalign.utils.progress import console

    path, overrides = split_config_args(list(args or []))
    if resume:
        overrides.append("resume=true")
    if kind == "sft":
        from selfalign.train.config import SFTConfig as Cfg
        from selfalign.train.sft import train_sft as fn
    elif kind == "rm":
        from selfalign.train.config import RMConfig as Cfg
        from selfalign.train.rm import train_rm as fn
    else:
        from selfalign.train.config import DPOConfig as Cfg
        from selfalign.train.dpo import train_dpo as fn
    cfg = load_config(Cfg, path, overrides)
    summary = fn(cfg)
    keys = [k for k in ("loss", "acc", "eval_loss", "eval_acc", "steps", "train_tokens_per_s") if k in summary]
    body = ", ".join(f"{k}={summary[k]:.4g}" if isinstance(summary[k], float) else f"{k}={summary[k]}" for k in keys)
    console.print(f"[green]done[/] {kind}: {body}")
    typer.echo(summary["model_path"])


@train_app.command("sft")
def sft(args: list[str] = _ARGS, resume: bool = _RESUME):
    """Supervised fine-tuning on prompt/completion (or messages) data; loss on completion tokens only.

    Example: selfalign train sft model=smollm2-135m train_file=sft.jsonl output_dir=runs/sft max_steps=100
    """
    _run("sft", args, resume)


@train_app.command("rm")
def rm(args: list[str] = _ARGS, resume: bool = _RESUME):
    """Train a reward model (scalar head on the last token, Bradley-Terry loss) on preference pairs.

    Example: selfalign train rm model=smollm2-135m train_file=pairs.jsonl output_dir=runs/rm validation_split=0.1
    """
    _run("rm", args, resume)


@train_app.command("dpo")
def dpo(args: list[str] = _ARGS, resume: bool = _RESUME):
    """Direct preference optimisation (sigmoid, ipo, hinge, scale, rpo_sq, rpo_fwd_kl, rpo_bwd_kl).

    Example: selfalign train dpo model=smollm2-135m train_file=pairs.jsonl output_dir=runs/dpo beta=0.1
    """
    _run("dpo", args, resume)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
