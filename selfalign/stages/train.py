"""Stage ``train``: any registered trainer (sft, rm, dpo, …) on the ``data`` input from ``model``.

Inputs: ``model`` (the starting model), ``data`` (the training records), ``reward_model`` (optional,
PPO: the reward-model folder its ``reward_model`` sources score with). Output: ``model``
(``<stage>/model``; checkpoints go to ``<stage>/checkpoints``). The stage config is the trainer's
resolved config without the keys the stage fills in itself (:data:`STAGE_SETS`), so the manifest
shows every setting that trained the model (e.g. this iteration's ``beta``) and a changed setting
re-runs the stage. A killed stage resumes from its last checkpoint; checkpoints in the stage
directory written with other settings (see :mod:`selfalign.train.outdir`) are deleted first, so a
stage re-run with a changed config starts fresh instead of being refused or resuming stale weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from selfalign.config import StrictModel
from selfalign.pipeline import Stage
from selfalign.stages.base import numeric, stage

# keys of every trainer config that the train stage sets itself, and why
STAGE_SETS: dict[str, str] = {
    "model": "the stage's model input (in a recipe: the policy of the iteration)",
    "train_file": "the stage's data input (in a recipe: the pairs of the iteration)",
    "output_dir": "the stage directory",
    "metrics_file": "the run's metrics.jsonl",
    "resume": "a stage always resumes its own unfinished training",
    "overwrite": "the stage directory belongs to the stage: checkpoints of other settings are cleared",
}


# trainer options that change how a run is observed or scheduled, never what it computes
RUNTIME_KEYS = ("report_to", "num_threads")


class TrainStageConfig(StrictModel):
    """``trainer`` (a registered name) and its options (its config minus :data:`STAGE_SETS`)."""

    trainer: str
    options: dict[str, Any]
    runtime: dict[str, Any] = Field(default_factory=dict, exclude=True, description=(
        "options that cannot change the result (RUNTIME_KEYS): passed to the trainer, left out of the "
        "stage's cache key, so e.g. a different thread count never re-runs a finished stage"))

    @model_validator(mode="after")
    def _valid(self) -> TrainStageConfig:
        self.trainer_config(Path("."), Path("."), Path("."))
        return self

    @classmethod
    def of(cls, trainer: str, config: BaseModel) -> TrainStageConfig:
        """From a validated trainer config: every option, defaults included, minus STAGE_SETS."""
        opts = config.model_dump(mode="json", exclude=set(STAGE_SETS))
        runtime = {k: opts.pop(k) for k in RUNTIME_KEYS if k in opts}
        return cls(trainer=trainer, options=opts, runtime=runtime)

    def trainer_config(self, model: Path, data: Path, out: Path, reward_model: Path | None = None) -> Any:
        """The trainer's config; with ``reward_model`` (PPO), every ``rewards`` entry of type
        ``reward_model`` scores with that folder (its ``model`` in the options is a placeholder)."""
        from selfalign.stages.sections import validate_as
        from selfalign.train.registry import get_trainer

        config_cls, _ = get_trainer(self.trainer)
        options = dict(self.options)
        if reward_model is not None:
            options["rewards"] = [{**r, "model": str(reward_model)} if r.get("type") == "reward_model" else r
                                  for r in options.get("rewards") or []]
        return validate_as(config_cls, "train", {**options, **self.runtime, "model": str(model), "train_file": str(data),
                                                 "output_dir": str(out), "resume": True})


@stage("train", TrainStageConfig)
def train(st: Stage, cfg: TrainStageConfig, *, model: Path, data: Path, reward_model: Path | None = None) -> dict:
    from selfalign.train.outdir import drop_stale_checkpoints
    from selfalign.train.registry import run_trainer
    from selfalign.utils.progress import console
    from selfalign.utils.threads import torch_threads

    st.output("model", "model")  # the trainer writes st.dir/model and st.dir/checkpoints
    tcfg = cfg.trainer_config(model, data, st.dir, reward_model)
    stale = drop_stale_checkpoints(tcfg) if hasattr(tcfg, "train_file") else []
    if stale:
        console.print(f"[yellow]{st.tag}[/]: deleted {len(stale)} checkpoint(s) written with other settings")
    with torch_threads(getattr(tcfg, "num_threads", None)):  # restored for the stages after this one
        final = run_trainer(cfg.trainer, tcfg, metrics=st.logger(echo_every=0))
    return numeric({k: v for k, v in (final or {}).items() if v is not None})
