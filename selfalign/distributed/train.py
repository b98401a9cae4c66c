"""Any registered trainer on Ray Train workers: ``distributed: {backend: ray, num_workers: N, ...}``.

:func:`train_on_ray` runs the trainer's own ``train_fn`` inside ``ray.train.torch.TorchTrainer``:
``N`` worker processes (``ScalingConfig(num_workers=N, resources_per_worker=..., use_gpu=...)``),
each with ``torch.distributed`` set up by Ray Train (gloo on CPU, NCCL on GPU) and the ``RANK`` /
``WORLD_SIZE`` / ``LOCAL_RANK`` variables accelerate reads. Nothing in the trainers changes: the loop
already gives each process its slice of every global batch and normalises the loss by the global
count, so ``N`` workers × batch ``b`` compute the same update as one process × batch ``N·b``
(tested); PPO splits each rollout batch over the workers and sums gradients (:mod:`selfalign.train.collective`).

Ray Train's reporting is hooked to ours (:mod:`selfalign.train.hooks`): every logged step is a
``ray.train.report`` of the same metrics, and every checkpoint our trainer writes
(``output_dir/checkpoints/step-N``) is reported as a small *pointer* checkpoint (a ``pointer.json``
naming the folder) in Ray's run folder ``output_dir/ray_train`` — the weights are not copied twice.
The final report points at ``output_dir/model``. Resuming is ours (``resume: true`` continues from
the newest checkpoint with the same settings, whatever Ray remembers). On a multi-node cluster,
``output_dir`` must be on storage every node sees (NFS, a mounted bucket).

The driver (the ``selfalign`` process) checks the output folder and that the workers fit on the
cluster before any worker starts, and re-raises a worker's one-line error as it is. Workers run in
the driver's working directory, so relative paths in a config mean the same there (on a multi-node
cluster: the same paths on every node, e.g. a shared file system).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from selfalign.distributed.cluster import check_placement, connect
from selfalign.errors import SelfalignError
from selfalign.utils.metrics import MetricsLogger

RAY_DIR = "ray_train"  # Ray Train's own run folder inside output_dir (pointers, Ray's state)


def _pointer(path: Path) -> Any:
    """A Ray ``Checkpoint`` of a temporary folder holding ``pointer.json`` → ``path``."""
    from ray.train import Checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="selfalign-ckpt-"))
    (tmp / "pointer.json").write_text(json.dumps({"path": str(Path(path).resolve())}), encoding="utf-8")
    return Checkpoint.from_directory(str(tmp))


def _send(scalars: dict[str, Any], checkpoint: Path | None) -> None:
    """``ray.train.report``; a checkpoint goes as a pointer whose temporary folder Ray deletes once copied."""
    import ray.train

    if checkpoint is None:
        ray.train.report(scalars)
    else:
        ray.train.report(scalars, checkpoint=_pointer(checkpoint), delete_local_checkpoint_after_upload=True)


def _report(step: int, metrics: dict[str, Any], checkpoint: Path | None) -> None:
    """The hook installed in every worker: ``ray.train.report`` (a checkpoint only from the main one)."""

    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    scalars["step"] = step
    _send(scalars, checkpoint)


def _worker(conf: dict[str, Any]) -> None:
    """One Ray Train worker: rebuild the config, run the trainer, report the final model."""
    import logging

    import ray.train

    from selfalign.train import hooks
    from selfalign.train.registry import get_trainer

    os.chdir(conf["cwd"])  # relative paths in the config mean what they meant to the driver
    for name in ("", "ray.train"):  # not a line per report (Ray Train's worker logs at INFO)
        logging.getLogger(name).setLevel(logging.WARNING)
    if ray.train.get_context().get_world_rank() != 0:  # one progress display: the main worker's
        os.environ["SELFALIGN_NO_PROGRESS"] = "1"
        from selfalign.utils.progress import console

        console.quiet = True

    config_cls, fn = get_trainer(conf["trainer"])
    cfg = config_cls.model_validate(conf["config"])
    metrics = MetricsLogger(*conf["metrics"]) if conf["metrics"] else None
    hooks.set_reporter(_report)
    try:
        summary = fn(cfg, metrics=metrics)
    finally:
        hooks.set_reporter(None)
    final = Path(summary["model_path"])
    rank0 = ray.train.get_context().get_world_rank() == 0
    scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
    _send(scalars, final if rank0 else None)


def _selfalign_error(exc: BaseException) -> SelfalignError | None:
    """The first :class:`SelfalignError` inside a Ray failure (worker errors are wrapped, maybe twice)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, SelfalignError):
            return e
        for attr in ("cause", "__cause__", "__context__"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                todo.append(inner)
        for inner in (getattr(e, "worker_failures", None) or {}).values():
            if isinstance(inner, BaseException):
                todo.append(inner)
    return None


def train_on_ray(name: str, cfg: Any, metrics: MetricsLogger | None = None) -> dict[str, Any]:
    """Run trainer ``name`` with ``cfg`` on ``cfg.distributed.num_workers`` Ray Train workers; returns
    the trainer's summary (``output_dir/train_summary.json``)."""
    from selfalign.train import outdir

    dist = cfg.distributed
    outdir.check_output_dir(cfg)  # an earlier run without resume/overwrite: refused before Ray starts
    ray = connect(dist)
    check_placement(ray, dist, "training workers")
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = Path(cfg.output_dir).resolve()
    shutil.rmtree(out / RAY_DIR, ignore_errors=True)  # Ray's bookkeeping of an earlier attempt
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", str(dist.placement_timeout_s))
    spec = [str(metrics.path) if metrics.path else None, metrics.stage, metrics.echo_every] if metrics else None
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"trainer": name, "config": cfg.model_dump(mode="json"), "metrics": spec,
                           "cwd": os.getcwd()},
        scaling_config=ScalingConfig(num_workers=dist.num_workers, use_gpu=dist.use_gpu(),
                                     resources_per_worker=dist.resources()),
        run_config=RunConfig(name=RAY_DIR, storage_path=str(out), failure_config=FailureConfig(max_failures=0)),
    )
    try:
        trainer.fit()
    except Exception as e:  # a worker's own error (bad data, ...) comes back as that error
        mine = _selfalign_error(e)
        if mine is not None:
            raise mine from None
        raise
    return json.loads((out / "train_summary.json").read_text(encoding="utf-8"))
