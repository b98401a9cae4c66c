"""Experiment trackers (``report_to``) through accelerate's tracker integration.

``report_to: [tensorboard | wandb | trackio | none]`` (TrainConfig; default ``none``). The trainer's
``Accelerator`` is made with ``log_with`` and ``project_dir = output_dir/trackers``;
:func:`start_trackers` calls ``init_trackers("selfalign", config=<flat settings>)`` (the run name is
the metrics stage: ``dpo``, or ``r1s4-train`` in a recipe) and makes the metrics logger forward every
scalar it writes to ``metrics.jsonl`` to ``accelerator.log``; :func:`end_trackers` calls
``end_training``. Where each one writes: tensorboard ``output_dir/trackers/selfalign/``, wandb its
``wandb/`` folder under ``output_dir/trackers`` (and its server), trackio its own local store.
A tracker whose package is missing stops the run before anything is read, with the package to
install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfalign.errors import ConfigError

# report_to name -> (pip package, accelerate's availability check in accelerate.utils)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "is_tensorboard_available"),
    "wandb": ("wandb", "is_wandb_available"),
    "trackio": ("trackio", "is_trackio_available"),
}
PROJECT = "selfalign"


def tracker_available(name: str) -> bool:
    """Whether the package of tracker ``name`` is installed (accelerate's own check)."""
    import accelerate.utils as au

    return bool(getattr(au, TRACKERS[name][1])())


def requested(cfg) -> list[str]:
    """The trackers ``cfg.report_to`` asks for (``none`` removed); ConfigError naming the package
    to install when one is missing."""
    names = [n for n in (getattr(cfg, "report_to", None) or []) if n != "none"]
    for name in names:
        if not tracker_available(name):
            raise ConfigError(f"report_to: {name} is not installed; install it (pip install {TRACKERS[name][0]}) "
                              "or set report_to: none")
    return names


def accelerator_kwargs(cfg) -> dict[str, Any]:
    """``log_with`` / ``project_dir`` for ``Accelerator(...)`` ({} without trackers)."""
    names = requested(cfg)
    if not names:
        return {}
    return {"log_with": names, "project_dir": str(Path(cfg.output_dir) / "trackers")}


def flat_config(cfg) -> dict[str, bool | int | float | str]:
    """The config as one level of scalars (nested keys dotted; lists and null as text), which every
    tracker accepts as hyper-parameters."""
    out: dict[str, bool | int | float | str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = json.dumps(value)

    walk("", cfg.model_dump(mode="json"))
    return out


def start_trackers(cfg, accelerator, metrics) -> None:
    """Open the accelerator's trackers and make ``metrics`` forward its scalars to them."""
    if not getattr(accelerator, "log_with", None):
        return
    out = Path(cfg.output_dir) / "trackers"
    out.mkdir(parents=True, exist_ok=True)
    run_name = metrics.stage or "train"
    init_kwargs = {"wandb": {"name": run_name, "dir": str(out)}, "trackio": {"name": run_name}}
    names = {str(t) for t in accelerator.log_with}
    accelerator.init_trackers(PROJECT, config=flat_config(cfg),
                              init_kwargs={k: v for k, v in init_kwargs.items() if k in names})
    if accelerator.is_main_process:
        metrics.forward_to(lambda values, step: accelerator.log(values, step=step))


def end_trackers(accelerator, metrics=None) -> None:
    """Close the trackers (``accelerator.end_training``) and stop forwarding to them."""
    if metrics is not None:
        metrics.forward_to(None)
    if getattr(accelerator, "trackers", None):
        accelerator.end_training()
