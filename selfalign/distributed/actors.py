"""Generation and judging over Ray actors: ``distributed: {backend: ray, num_workers: N}``.

:class:`ActorPool` keeps ``N`` actors (each with its own model replica) busy with a list of tasks:
each actor takes the next task when it is free, results are handed to the driver as they finish, and
a killed actor (``ray.exceptions.RayActorError``: its process or node died) is replaced by a fresh one
that redoes its task, up to ``max_actor_restarts`` times. Actors work in the driver's working
directory (relative paths in configs mean the same there).

* :class:`RayEngine` — an :class:`~selfalign.generation.engine.Engine`: the shards still to do of
  :func:`~selfalign.generation.engine.generate_records` are the tasks (:meth:`RayEngine.generate_shards`);
  the driver writes every finished shard as it arrives, so a killed run keeps them and resumes after
  them, as in one process. A shard is one ``engine.generate`` call with the same prompts, keys (the
  per-row seeds) and settings as the single-process run, so the records are identical (tested record
  for record); the fingerprint is the ``hf`` engine's, so shards of one kind of run are reused by the other.
* :class:`RayJudge` — a :class:`~selfalign.judges.base.Judge`: the records are cut into contiguous
  chunks (``chunk_size``, default: one chunk per actor × 4), each chunk judged by an actor's judge, the
  scored records put back in order and the actors' statistics summed
  (:meth:`~selfalign.judges.stats.JudgeStats.merge`). Judges that read or sample per record (every
  built-in judge seeds by record id) give the same scores as one process up to floating-point
  differences of batching (exactly the same for function judges).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from selfalign.distributed.cluster import check_placement, connect
from selfalign.distributed.config import DistributedConfig
from selfalign.errors import SelfalignError


def _enter(cwd: str | None) -> None:
    """Actor start: no progress bars of its own; the driver's working directory (relative paths)."""
    import os

    os.environ.setdefault("SELFALIGN_NO_PROGRESS", "1")
    if cwd:
        os.chdir(cwd)


class GenerateWorker:
    """Generation actor: an ``hf`` engine built from the engine settings (a dict), serving whole shards."""

    def __init__(self, engine_cfg: dict[str, Any], cwd: str | None = None):
        _enter(cwd)
        from selfalign.generation.engine import EngineConfig, build_engine

        self.engine = build_engine(EngineConfig.model_validate({**engine_cfg, "distributed": {"backend": "none"}}))

    def fingerprint(self) -> str:
        return self.engine.fingerprint()

    def run(self, task: tuple[list, dict[str, Any], list[str]]) -> list[list[dict]]:
        from selfalign.generation.sampling import SamplingParams

        prompts, params, keys = task
        return self.engine.generate(prompts, SamplingParams.model_validate(params), keys=keys)


class JudgeWorker:
    """Judging actor: the judge built from its config (a dict), scoring whole chunks of records."""

    def __init__(self, judge_cfg: dict[str, Any], cwd: str | None = None):
        _enter(cwd)
        from selfalign.judges import build_judge

        self.judge = build_judge({**judge_cfg, "distributed": {"backend": "none"}})

    def run(self, records: list[dict]) -> tuple[list[dict], Any]:
        """The scored chunk and this chunk's statistics objects."""
        self.judge.reset_stats()
        scored = self.judge.score_records(records)
        return scored, self.judge.stat_parts()

    def summarize(self, parts: list[dict]) -> dict[str, Any]:
        """``judge.stats()`` of all the chunks' statistics summed (the judge's own report format)."""
        self.judge.reset_stats()
        for p in parts:
            self.judge.merge_stat_parts(p)
        return self.judge.stats()


def _actor_options(dist: DistributedConfig) -> dict[str, Any]:
    res = dist.resources()
    opts: dict[str, Any] = {"num_cpus": res.get("CPU", 1.0), "num_gpus": res.get("GPU", 0.0)}
    custom = {k: v for k, v in res.items() if k not in ("CPU", "GPU")}
    if custom:
        opts["resources"] = custom
    return opts


class ActorPool:
    """``dist.num_workers`` actors of ``worker_cls(arg)``; :meth:`run` spreads tasks over them."""

    def __init__(self, worker_cls: type, arg: Any, dist: DistributedConfig, what: str):
        self.dist, self.arg, self.what = dist, arg, what
        self.ray = connect(dist)
        check_placement(self.ray, dist, what)
        self._cls = self.ray.remote(worker_cls).options(**_actor_options(dist))
        self.cwd = os.getcwd()
        self.actors = [self._cls.remote(arg, self.cwd) for _ in range(dist.num_workers)]
        self.restarts = 0

    def get(self, ref) -> Any:
        """``ray.get``; an actor's own error (bad prompt, bad model) comes back as it was raised."""
        from ray.exceptions import RayTaskError

        try:
            return self.ray.get(ref)
        except RayTaskError as e:
            cause = getattr(e, "cause", None)
            raise (cause if isinstance(cause, SelfalignError) else e) from None

    def run(self, tasks: Sequence[Any], on_done: Callable[[int, Any], None]) -> None:
        """``actor.run(task)`` for every task; ``on_done(index, result)`` in completion order."""
        from ray.exceptions import RayActorError

        queue = list(range(len(tasks)))
        running: dict[Any, tuple[int, int]] = {}  # ref -> (actor slot, task index)
        idle = list(range(len(self.actors)))
        while queue or running:
            while queue and idle:
                slot, k = idle.pop(0), queue.pop(0)
                running[self.actors[slot].run.remote(tasks[k])] = (slot, k)
            done, _ = self.ray.wait(list(running), num_returns=1)
            slot, k = running.pop(done[0])
            try:
                result = self.get(done[0])
            except RayActorError:
                self.restarts += 1
                if self.restarts > self.dist.max_actor_restarts:
                    raise SelfalignError(f"{self.what} died {self.restarts} times (max_actor_restarts="
                                         f"{self.dist.max_actor_restarts}); finished work is kept: re-run to "
                                         "continue") from None
                self.actors[slot] = self._cls.remote(self.arg, self.cwd)
                queue.insert(0, k)
                idle.append(slot)
                continue
            idle.append(slot)
            on_done(k, result)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []


class RayEngine:
    """An engine whose shards are generated by Ray actors (see the module docstring)."""

    name = "ray"

    def __init__(self, engine_cfg: dict[str, Any], dist: DistributedConfig, worker_cls: type = GenerateWorker):
        self.pool = ActorPool(worker_cls, dict(engine_cfg), dist, "generation actors")
        self._fp: str | None = None

    @property
    def restarts(self) -> int:
        return self.pool.restarts

    def fingerprint(self) -> str:
        if self._fp is None:
            self._fp = self.pool.get(self.pool.actors[0].fingerprint.remote())
        return self._fp

    def generate(self, prompts: Sequence, params, keys: Sequence[str] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> list[list[dict]]:
        """One batch of prompts on the first free actor (as one shard)."""
        out: dict[int, list] = {}
        keys = list(keys) if keys is not None else [str(i) for i in range(len(prompts))]
        self.generate_shards([(list(prompts), keys)], params, out.__setitem__)
        if on_progress is not None:
            on_progress(len(prompts), sum(int(r.get("num_tokens", 0)) for resp in out[0] for r in resp))
        return out[0]

    def generate_shards(self, shards: list[tuple[list, list[str]]], params,
                        on_done: Callable[[int, list[list[dict]]], None]) -> None:
        """Every ``(prompts, keys)`` shard; ``on_done(index, results)`` as each finishes."""
        p = params.model_dump(mode="json")
        self.pool.run([(prompts, p, keys) for prompts, keys in shards], on_done)

    def close(self) -> None:
        self.pool.close()


class RayJudge:
    """A judge whose records are scored in chunks by Ray actors (see the module docstring)."""

    def __init__(self, cfg: Any, chunk_size: int | None = None, worker_cls: type = JudgeWorker):
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        self.chunk_size = chunk_size
        self.pool = ActorPool(worker_cls, cfg.model_dump(mode="json"), cfg.distributed, "judging actors")
        self._parts: list[dict] = []  # every chunk's statistics objects so far
        self._summary: dict[str, Any] | None = None

    def score_records(self, records: list[dict]) -> list[dict]:
        size = self.chunk_size or max(1, math.ceil(len(records) / (4 * len(self.pool.actors))))
        chunks = [records[i:i + size] for i in range(0, len(records), size)]
        results: dict[int, tuple[list[dict], dict]] = {}
        self.pool.run(chunks, results.__setitem__)
        self._parts += [results[k][1] for k in range(len(chunks))]  # in record order: the same sums
        self._summary = None
        return [rec for k in range(len(chunks)) for rec in results[k][0]]

    def stats(self) -> dict[str, Any]:
        """The judge's statistics over everything scored so far (summed by one actor's judge)."""
        if self._summary is None:
            self._summary = self.pool.get(self.pool.actors[0].summarize.remote(self._parts))
        return self._summary

    def reset_stats(self) -> None:
        self._parts, self._summary = [], None

    def close(self) -> None:
        self.pool.close()
