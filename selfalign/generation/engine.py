"""Generation: the ``Engine`` protocol, engine settings, and sharded, resumable generation
(sampling parameters are in :mod:`selfalign.generation.sampling`).

An engine turns prompts into ``num_samples`` responses per prompt. The only backend here is
``hf`` (:class:`selfalign.generation.hf.HFEngine`, batched ``transformers`` generation); anything
with the same ``generate`` method can be passed to :func:`generate_records`.

Each response is ``{"text", "finish": "stop" | "length", "num_tokens"}``: ``stop`` when the model
ended it (EOS or a stop string; the stop string is cut from the text), ``length`` when
``max_new_tokens`` ran out.

Determinism: sampling randomness comes from one generator per (seed, record id, sample index), so
the same seed, prompts and settings give identical output, and a prompt's samples do not depend on
which other prompts share its batch (up to floating-point differences in the logits that different
padding can cause).

Sharded output (:func:`generate_records`): records are cut into shards of ``shard_size`` prompts;
each finished shard is written atomically to ``<stem>.shards/shard-00000.jsonl`` next to the
output, with ``index.json`` holding a fingerprint of the settings. A killed run keeps its finished
shards; running the same call again skips them and generates the rest; the final merge writes the
output file atomically and removes the shard folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import AliasChoices, Field

from selfalign.config import StrictModel
from selfalign.data.io import read_records, write_jsonl, write_text_atomic
from selfalign.distributed.config import DistributedConfig
from selfalign.errors import ConfigError, DataError
from selfalign.generation.sampling import Prompt, SamplingParams


class EngineOptions(StrictModel):
    """How the engine batches and renders (everything but which model: see :class:`EngineConfig`)."""

    backend: Literal["hf"] = "hf"
    batch_size: int = Field(64, ge=1, description="sequences (prompt x sample) per generate call")
    dtype: str = "float32"
    device: str | None = None
    chat_template: bool = Field(True, description="render prompts with the tokenizer's chat template")
    system_prompt: str | None = None
    max_prompt_tokens: int | None = Field(None, ge=1, description="keep only the last N prompt tokens")
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's)")
    prune: bool = Field(True, description="drop finished rows from the batch (our decode loop); "
                                          "False = transformers' generate")
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, exclude=True, description="backend: ray shards the prompts over num_workers "
        "Ray actors, each with a model replica (same records as one process); see selfalign.distributed")


class EngineConfig(EngineOptions):
    """Which model generates and how it is batched."""

    model: str = "smollm2-135m"


class GenerateConfig(SamplingParams, EngineConfig):
    """``selfalign generate``: prompts file → candidates file (``num_samples`` responses each)."""

    input: str = Field(validation_alias=AliasChoices("input", "prompts_file"),
                       description="prompts file (jsonl/json/csv/parquet) with id + prompt")
    output: str = Field(description="candidates .jsonl to write")
    prompt_key: str | None = Field(None, description="record key holding the prompt (default: auto)")
    shard_size: int = Field(256, ge=1, description="prompts per resumable shard")
    limit: int | None = Field(None, ge=1, description="use only the first N prompts")
    overwrite: bool = Field(False, description="discard shards left by a run with other settings")

    def sampling(self) -> SamplingParams:
        return SamplingParams(**{k: getattr(self, k) for k in SamplingParams.model_fields})

    def engine(self) -> EngineConfig:
        return EngineConfig(**{k: getattr(self, k) for k in EngineConfig.model_fields})


@runtime_checkable
class Engine(Protocol):
    """Anything that samples responses for prompts."""

    name: str

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams,
                 keys: Sequence[str] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> list[list[dict]]:
        """``params.num_samples`` responses per prompt. ``keys`` (e.g. record ids) seed each
        prompt's randomness; ``on_progress(prompts_done, tokens_generated)`` after each batch."""
        ...

    def fingerprint(self) -> str:
        """A string identifying the model and prompt rendering (used to validate resumed shards)."""
        ...


def build_engine(cfg: EngineConfig | dict, *, model: Any = None, tokenizer: Any = None) -> Engine:
    """Make the engine named by ``cfg.backend``; a loaded ``model``/``tokenizer`` skips loading."""
    if isinstance(cfg, dict):
        cfg = EngineConfig.model_validate(cfg)
    if cfg.distributed.enabled:
        if model is not None and not isinstance(model, (str, Path)):
            raise ConfigError("distributed: Ray actors load the model themselves; give a model spec, not a loaded model")
        from selfalign.distributed.actors import RayEngine

        return RayEngine(cfg.model_dump(mode="json"), cfg.distributed)
    if cfg.backend == "hf":
        from selfalign.generation.hf import HFEngine

        return HFEngine(model if model is not None else cfg.model, tokenizer, batch_size=cfg.batch_size,
                        dtype=cfg.dtype, device=cfg.device, chat_template=cfg.chat_template,
                        system_prompt=cfg.system_prompt, max_prompt_tokens=cfg.max_prompt_tokens,
                        num_threads=cfg.num_threads, prune=cfg.prune)
    raise ConfigError(f"backend: unknown generation backend {cfg.backend!r} (available: hf)")


# --------------------------------------------------------------------------------- records + shards
def check_prompt_records(records: Sequence[dict], source: str = "") -> list[dict]:
    """Validate prompt records (``prompt`` str or message list); missing ids become the index."""
    out = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError("record is not a mapping", source or None, i + 1)
        p = rec.get("prompt")
        if isinstance(p, str):
            pass
        elif isinstance(p, list) and p and all(isinstance(m, dict) and "role" in m and "content" in m
                                                  for m in p):
            pass
        else:
            raise DataError("expected a string or a list of {role, content} messages",
                            source or None, i + 1, "prompt")
        if rec.get("id") is None:
            rec = {**rec, "id": str(i)}
        rid = str(rec["id"])
        if rid in seen:
            raise DataError(f"duplicate id {rid!r} (first at record {seen[rid]})", source or None, i + 1, "id")
        seen[rid] = i + 1
        out.append(rec)
    return out


def shard_dir_for(out_path: str | Path) -> Path:
    p = Path(out_path)
    return p.with_name(f"{p.stem}.shards")


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class _ShardPlan:
    """The shard folder of one :func:`generate_records` call: which shards exist and which are to do."""

    sdir: Path
    index_path: Path
    index: dict[str, Any]
    shards: list[list[dict]]
    names: list[str]
    done: list[str]  # shard files already finished (reused)
    todo: list[int]  # indices of the shards still to generate

    def mark_done(self) -> None:
        """Record the finished shards in ``index.json`` (atomically)."""
        self.index["done"] = [n for n in self.names if (self.sdir / n).is_file()]
        write_text_atomic(self.index_path, json.dumps(self.index, indent=1))


def _plan_shards(engine: Engine, records: list[dict], params: SamplingParams, sdir: Path, shard_size: int,
                 overwrite: bool) -> _ShardPlan:
    """Check ``sdir`` against this call's fingerprint (shards from other settings: error, or removed
    with ``overwrite``), cut the records into shards and write ``index.json``."""
    import shutil

    fingerprint = _sha({"engine": engine.fingerprint(), "params": params.model_dump(mode="json"),
                        "shard_size": shard_size,
                        "prompts": [[str(r["id"]), r["prompt"]] for r in records]})
    index_path = sdir / "index.json"
    if sdir.exists() and (index_path.is_file() or any(sdir.glob("shard-*.jsonl"))):
        try:
            old = json.loads(index_path.read_text()) if index_path.is_file() else {}
        except json.JSONDecodeError:
            old = {}
        if old.get("fingerprint") != fingerprint:
            if not overwrite:
                raise DataError("shards left by a run with different settings or prompts; remove the "
                                "folder or set overwrite=true", sdir)
            shutil.rmtree(sdir)
    sdir.mkdir(parents=True, exist_ok=True)
    shards = [records[i:i + shard_size] for i in range(0, len(records), shard_size)]
    names = [f"shard-{k:05d}.jsonl" for k in range(len(shards))]
    index = {"fingerprint": fingerprint, "num_records": len(records), "shard_size": shard_size,
             "shards": names, "done": []}
    done = [n for n in names if (sdir / n).is_file()]
    todo = [k for k, n in enumerate(names) if n not in done]
    index["done"] = done
    write_text_atomic(index_path, json.dumps(index, indent=1))
    return _ShardPlan(sdir, index_path, index, shards, names, done, todo)


def _generate_shards(engine: Engine, params: SamplingParams, plan: _ShardPlan, progress: bool,
                     t0: float) -> dict[str, int]:
    """Generate and write every shard still to do (progress bar rates count from ``t0``); returns
    ``{"prompts", "tokens"}`` generated."""
    from selfalign.utils.progress import Bar

    n_todo = sum(len(plan.shards[k]) for k in plan.todo)
    state = {"prompts": 0, "tokens": 0}
    bar_cm = Bar("generating", total=n_todo, unit="prompt") if progress and n_todo else None
    bar = bar_cm.__enter__() if bar_cm else None
    try:
        if hasattr(engine, "generate_shards"):  # a parallel engine (Ray actors) takes them all at once
            _generate_parallel(engine, params, plan, state, bar, t0)
            return state
        for k in plan.todo:
            shard = plan.shards[k]
            base = dict(state)

            def on_progress(p_done: int, toks: int, base=base) -> None:
                prev = state["prompts"]
                state["prompts"] = base["prompts"] + p_done
                state["tokens"] = base["tokens"] + toks
                _advance_bar(bar, state["prompts"] - prev, state, t0)

            results = engine.generate([r["prompt"] for r in shard], params, keys=[str(r["id"]) for r in shard],
                                      on_progress=on_progress)
            _write_shard(plan, k, results)
    finally:
        if bar_cm is not None:
            bar_cm.__exit__(None, None, None)
    return state


def _write_shard(plan: _ShardPlan, k: int, results: list[list[dict]]) -> None:
    """Shard ``k``'s records with their responses, written atomically and marked done."""
    out = [{**r, "responses": resp} for r, resp in zip(plan.shards[k], results, strict=True)]
    write_jsonl(plan.sdir / plan.names[k], out)
    plan.mark_done()


def _advance_bar(bar, n: int, state: dict[str, int], t0: float) -> None:
    """Move the bar by ``n`` prompts, showing the rates since ``t0``."""
    if bar is not None:
        el = max(time.perf_counter() - t0, 1e-9)
        bar.advance(n, info=f"{state['tokens'] / el:.1f} tok/s, {state['prompts'] / el:.2f} prompt/s")


def _generate_parallel(engine: Any, params: SamplingParams, plan: _ShardPlan, state: dict[str, int], bar,
                       t0: float) -> None:
    """Every shard still to do through ``engine.generate_shards``; each is written as it finishes."""
    todo = list(plan.todo)

    def on_done(i: int, results: list[list[dict]]) -> None:
        k = todo[i]
        _write_shard(plan, k, results)
        state["prompts"] += len(plan.shards[k])
        state["tokens"] += sum(int(x.get("num_tokens", 0)) for resp in results for x in resp)
        _advance_bar(bar, len(plan.shards[k]), state, t0)

    engine.generate_shards([([r["prompt"] for r in plan.shards[k]], [str(r["id"]) for r in plan.shards[k]])
                            for k in todo], params, on_done)


def _merge_shards(plan: _ShardPlan, out_path: Path, keep_shards: bool) -> list[dict]:
    """Concatenate the shards in order into ``out_path`` (atomically); remove the folder unless kept."""
    import shutil

    merged: list[dict] = []
    for n in plan.names:
        merged.extend(read_records(plan.sdir / n))
    write_jsonl(out_path, merged)
    if not keep_shards:
        shutil.rmtree(plan.sdir, ignore_errors=True)
    return merged


def generate_records(engine: Engine, records: Sequence[dict], params: SamplingParams,
                     out_path: str | Path, shard_size: int = 256, overwrite: bool = False,
                     progress: bool = True, keep_shards: bool = False,
                     shard_dir: str | Path | None = None, stats: dict | None = None) -> list[dict]:
    """Generate ``params.num_samples`` responses for every prompt record; write ``out_path``.

    Returns the candidate records (input record + ``"responses"``) in input order. Finished shards
    of an earlier, interrupted call with the same settings are reused (see the module docstring);
    shards written with other settings raise :class:`DataError` unless ``overwrite``. Shards go to
    ``shard_dir`` (default ``<output stem>.shards`` next to the output). A ``stats`` dict, when
    given, receives what this call did: shards reused/generated, prompts and tokens generated, seconds.

    The output path is checked before any work (not an existing folder, its folder can be made);
    when the call fails, a shard folder it created is removed unless it holds finished shards.
    """
    from selfalign.data.paths import check_outputs

    records = check_prompt_records(records)
    if not records:
        raise DataError("no prompt records to generate for", out_path)
    out_path = Path(out_path)
    sdir = Path(shard_dir) if shard_dir is not None else shard_dir_for(out_path)
    check_outputs({}, {"output": out_path, "shard_dir": sdir}, folders=("shard_dir",))
    fresh = not sdir.exists()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        plan = _plan_shards(engine, records, params, sdir, shard_size, overwrite)
        t0 = time.perf_counter()
        state = _generate_shards(engine, params, plan, progress, t0)
        if stats is not None:
            stats.update(shards_reused=len(plan.done), shards_generated=len(plan.todo),
                         prompts_generated=state["prompts"], tokens_generated=state["tokens"],
                         generate_seconds=time.perf_counter() - t0)
        return _merge_shards(plan, out_path, keep_shards)
    except BaseException:
        _drop_empty_shard_dir(sdir, fresh)
        raise


def _drop_empty_shard_dir(sdir: Path, fresh: bool) -> None:
    """After a failure, remove a shard folder this call created when it holds no finished shard
    (nothing to resume from); finished shards are kept so that re-running continues."""
    import shutil

    if fresh and sdir.is_dir() and not any(sdir.glob("shard-*.jsonl")):
        shutil.rmtree(sdir, ignore_errors=True)


def generation_summary(records: Sequence[dict], seconds: float | None = None) -> dict[str, Any]:
    """Counts over candidate records: responses, finish reasons, tokens, rates."""
    resps = [r for rec in records for r in rec.get("responses", [])]
    toks = sum(int(r.get("num_tokens", 0)) for r in resps)
    out: dict[str, Any] = {
        "prompts": len(records), "responses": len(resps), "tokens": toks,
        "finish_stop": sum(r.get("finish") == "stop" for r in resps),
        "finish_length": sum(r.get("finish") == "length" for r in resps),
        "mean_tokens": toks / len(resps) if resps else None,
        "empty_responses": sum(not r.get("text", "").strip() for r in resps),
    }
    if seconds:
        out.update(seconds=seconds, tokens_per_s=toks / seconds, prompts_per_s=len(records) / seconds)
    return out


def generate_to_file(model: Any, records: Sequence[dict], output: str | Path, *, tokenizer: Any = None,
                     shard_dir: str | Path | None = None, num_samples: int = 1, temperature: float = 0.7,
                     top_p: float = 1.0, top_k: int = 0, max_new_tokens: int = 256,
                     stop: Sequence[str] = (), seed: int = 0, batch_size: int = 64, dtype: str = "float32",
                     device: str | None = None, chat_template: bool = True, system_prompt: str | None = None,
                     shard_size: int = 256, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """One call for recipes: build an ``hf`` engine for ``model`` (a spec, or a loaded model with its
    ``tokenizer``), generate into ``output`` (resumable shards) and return
    :func:`generation_summary` of the result (with timings)."""
    engine = build_engine(EngineConfig(model=str(model) if isinstance(model, (str, Path)) else "in-memory",
                                       batch_size=batch_size, dtype=dtype, device=device,
                                       chat_template=chat_template, system_prompt=system_prompt),
                          model=None if isinstance(model, (str, Path)) else model, tokenizer=tokenizer)
    params = SamplingParams(num_samples=num_samples, temperature=temperature, top_p=top_p, top_k=top_k,
                            max_new_tokens=max_new_tokens, stop=list(stop), seed=seed)
    run: dict[str, Any] = {}
    out = generate_records(engine, records, params, output, shard_size=shard_size, overwrite=overwrite,
                           progress=progress, shard_dir=shard_dir, stats=run)
    summary = generation_summary(out)
    summary.update(run)
    if run["generate_seconds"] > 0 and run["prompts_generated"]:
        summary["tokens_per_s"] = run["tokens_generated"] / run["generate_seconds"]
        summary["prompts_per_s"] = run["prompts_generated"] / run["generate_seconds"]
    return summary
