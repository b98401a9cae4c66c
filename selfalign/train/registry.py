"""Trainers by name: ``name → (ConfigClass, train_fn)``, each module imported only when used.

:data:`TRAINERS` is the one list of built-in trainers: for each name, where its train function and
config class live (``"module:attribute"`` strings, so importing this module imports neither torch
nor the trainers) and the one-line help and example the command line shows. ``selfalign train``
builds one sub-command per name from it (:mod:`selfalign.cli.train`).

* :func:`get_trainer` ``(name) -> (ConfigClass, train_fn)`` — imports that trainer on first use;
* :func:`register_trainer` ``(name, config_cls, fn, help="", example="")`` — add (or replace) a
  trainer already imported, e.g. from a plugin or a test;
* :func:`trainer_names` — built-in and registered names; :func:`trainer_info` — its help texts.

Every ``train_fn`` has the signature ``train_fn(cfg: ConfigClass, metrics=None) -> dict`` (final
metrics, with ``model_path``). :func:`run_trainer` is how the CLI and the ``train`` stage call one:
in this process, or on Ray Train workers when ``cfg.distributed.backend`` is ``ray``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfalign.errors import ConfigError


@dataclass(frozen=True)
class TrainerSpec:
    """Where a trainer lives and how the command line describes it.

    ``train``/``config``: ``"module:attribute"`` of the train function / config class (or None for
    a trainer registered with :func:`register_trainer`). ``help``: one line; ``example``: a full
    command line. ``help_extra``: ``"module:function"`` returning more help text, called only when
    that trainer's own ``--help`` is shown (it may import torch).
    """

    train: str | None
    config: str | None
    help: str
    example: str
    help_extra: str | None = None


_CFG = "selfalign.train.config"

# name -> where it lives; a trainer module is imported only when its name is used
TRAINERS: dict[str, TrainerSpec] = {
    "sft": TrainerSpec(
        "selfalign.train.sft:train_sft", f"{_CFG}:SFTConfig",
        "Supervised fine-tuning on prompt/completion (or messages) data; loss on completion tokens only.",
        "selfalign train sft model=smollm2-135m train_file=sft.jsonl output_dir=runs/sft max_steps=100"),
    "rm": TrainerSpec(
        "selfalign.train.rm:train_rm", f"{_CFG}:RMConfig",
        "Train a reward model (scalar head on the last token, Bradley-Terry loss) on preference pairs.",
        "selfalign train rm model=smollm2-135m train_file=pairs.jsonl output_dir=runs/rm validation_split=0.1"),
    "dpo": TrainerSpec(
        "selfalign.train.dpo:train_dpo", f"{_CFG}:DPOConfig",
        "Direct preference optimisation and its variants (DPO, IPO, hinge, judge-weighted, RPO).",
        "selfalign train dpo model=smollm2-135m train_file=pairs.jsonl output_dir=runs/dpo beta=0.1",
        help_extra="selfalign.train.losses:dpo_loss_help"),
    "ppo": TrainerSpec(
        "selfalign.train.ppo:train_ppo", f"{_CFG}:PPOConfig",
        "RLHF with PPO: rollouts, reward model / judge / function rewards, per-token KL, GAE, clipped losses.",
        "selfalign train ppo model=smollm2-135m train_file=prompts.jsonl output_dir=runs/ppo "
        "'rewards=[{type: function, function: verifiable}]'",
        help_extra="selfalign.train.ppo:ppo_help"),
}

_REGISTRY: dict[str, tuple[type, Callable[..., dict[str, Any]]]] = {}
_EXTRA: dict[str, TrainerSpec] = {}  # help of trainers registered with register_trainer only


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def register_trainer(name: str, config_cls: type, fn: Callable[..., dict[str, Any]], help: str = "",
                     example: str = "") -> None:
    """Make ``name`` resolve to ``(config_cls, fn)`` (replaces a trainer of that name)."""
    _REGISTRY[name] = (config_cls, fn)
    if name not in TRAINERS:
        _EXTRA[name] = TrainerSpec(None, None, help or (fn.__doc__ or "").strip().split("\n")[0], example)


def trainer_names() -> tuple[str, ...]:
    """Built-in trainer names (in :data:`TRAINERS` order), then those registered at run time."""
    return tuple(TRAINERS) + tuple(n for n in _REGISTRY if n not in TRAINERS)


def _unknown(name: str) -> ConfigError:
    close = difflib.get_close_matches(name, trainer_names(), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown trainer {name!r}{hint} (valid: {', '.join(trainer_names())})")


def trainer_info(name: str) -> TrainerSpec:
    """The help texts (and, for built-ins, locations) of trainer ``name``; ConfigError if unknown."""
    spec = TRAINERS.get(name) or _EXTRA.get(name)
    if spec is None:
        raise _unknown(name)
    return spec


def get_trainer(name: str) -> tuple[type, Callable[..., dict[str, Any]]]:
    """``(ConfigClass, train_fn)`` of trainer ``name``, importing its module on first use.

    Unknown name → :class:`~selfalign.errors.ConfigError` naming the closest valid name.
    """
    if name not in _REGISTRY:
        spec = TRAINERS.get(name)
        if spec is None:
            raise _unknown(name)
        _REGISTRY[name] = (_resolve(spec.config), _resolve(spec.train))
    return _REGISTRY[name]


def trainer_help_extra(name: str) -> str:
    """The extra help paragraph of trainer ``name`` ("" if none); imports what ``help_extra`` names."""
    spec = trainer_info(name)
    return _resolve(spec.help_extra)() if spec.help_extra else ""


def run_trainer(name: str, cfg: Any, metrics: Any = None) -> dict[str, Any]:
    """Train with trainer ``name``: ``train_fn(cfg, metrics)`` here, or on Ray Train workers when
    ``cfg.distributed.backend == "ray"`` (:func:`selfalign.distributed.train.train_on_ray`; built-in
    trainers and those importable in the workers)."""
    _, fn = get_trainer(name)
    dist = getattr(cfg, "distributed", None)
    if dist is not None and dist.enabled:
        from selfalign.distributed.train import train_on_ray

        return train_on_ray(name, cfg, metrics)
    return fn(cfg, metrics=metrics) if metrics is not None else fn(cfg)
