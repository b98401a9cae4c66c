"""Who owns a trainer's ``output_dir``: earlier runs, ``resume`` / ``overwrite``, the run identity.

Rules (every trainer, the CLI and the recipes' ``train`` stage):

* A run into an ``output_dir`` that holds an earlier run's outputs (:data:`RUN_OUTPUTS`) needs
  ``resume`` (continue it) or ``overwrite`` (delete those outputs first); otherwise it stops with
  ``use --resume or --overwrite`` before loading anything. Other files in the folder are never
  touched, so ``metrics.jsonl`` never holds two runs.
* ``resume`` continues from the newest checkpoint whose ``config_hash`` equals this run's. A
  checkpoint written with other settings (or data) is refused with one line naming what differs;
  with no checkpoint at all the run starts from scratch and the earlier outputs are cleared.
* The *config hash* covers the settings that determine the trained weights: every config field
  except :data:`RESUME_NEUTRAL` (where outputs go, how to start, logging / evaluation / checkpoint
  cadence, trackers, threads, the device, the validation file), with ``train_file`` replaced by
  the hash of its content. The starting model is identified by its spec (path or name), not its
  bytes.
* Each fresh run gets a ``run_id``; a resumed run keeps the one of its checkpoint. Checkpoint
  rotation deletes only the same run's older checkpoints.
* Nothing is created before the data has been read and tokenised; :func:`cleanup_on_failure` removes
  what a failed run created when it failed before writing any checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfalign.errors import ConfigError
from selfalign.train import checkpoint as ckpt
from selfalign.utils.progress import console

# what a trainer writes into output_dir (".tmp-*" leftovers of interrupted writes are cleared too)
RUN_OUTPUTS = ("checkpoints", "model", "metrics.jsonl", "train_summary.json", "ref_logps.safetensors",
               "trackers")

# written beside them by a scale-out run (Ray Train's own run folder: pointers to our checkpoints)
BOOKKEEPING = ("ray_train",)

# config keys that do not change the trained weights: they may differ when a run is resumed
RESUME_NEUTRAL = frozenset({
    "output_dir", "metrics_file", "resume", "overwrite",  # where outputs go, how to start
    "logging_steps", "eval_steps", "save_steps", "save_total_limit",  # cadence
    "report_to", "num_threads", "cpu", "validation_file",  # trackers, speed, device, evaluation only
})


def content_hash(path: str | Path) -> str:
    """sha256 (16 hex digits) of a file, of a folder's files (names and bytes), or of the text of a
    spec that is not a local path."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p] if p.is_file() else []
    if not files:
        h.update(str(path).encode())
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def training_settings(cfg) -> dict[str, Any]:
    """The settings a checkpoint must share with a run that resumes it (see the module docstring)."""
    data = cfg.model_dump(mode="json", exclude=set(RESUME_NEUTRAL))
    data["train_file"] = f"sha256:{content_hash(cfg.train_file)}"
    if getattr(cfg, "distributed", None) is not None:  # where the workers run does not matter, how many does
        data["distributed"] = cfg.distributed.result_key()
    return data


def settings_hash(settings: dict[str, Any]) -> str:
    """Stable short hash of :func:`training_settings`."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _changed(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return shown or "the settings"


@dataclass
class OutputRun:
    """This run's place in ``output_dir``: identity, the checkpoint to resume and what to clear."""

    out: Path
    run_id: str
    config_hash: str
    settings: dict[str, Any]
    resume_from: Path | None = None
    clear: tuple[str, ...] = ()  # earlier outputs to delete before this run writes anything

    def new_state(self, tokenizer=None) -> ckpt.TrainState:
        """A fresh :class:`~selfalign.train.checkpoint.TrainState` carrying this run's identity."""
        return ckpt.TrainState(run_id=self.run_id, config_hash=self.config_hash, settings=self.settings,
                               tokenizer=tokenizer)

    def load(self, model, optimizer, scheduler, tokenizer=None) -> ckpt.TrainState:
        """Restore :attr:`resume_from` into the given objects (a fresh state when there is none)."""
        if self.resume_from is None:
            return self.new_state(tokenizer)
        return ckpt.load_checkpoint(self.resume_from, model, optimizer, scheduler, tokenizer=tokenizer)


def earlier_outputs(out: Path) -> tuple[str, ...]:
    """The names of :data:`RUN_OUTPUTS` (and ``.tmp-*`` leftovers) present in ``out``."""
    if not out.is_dir():
        return ()
    found = [n for n in RUN_OUTPUTS if (out / n).exists()]
    return tuple(found + sorted(p.name for p in out.glob(".tmp-*")))


def check_output_dir(cfg) -> tuple[str, ...]:
    """Refuse a run that would mix with an earlier one; returns the earlier outputs found.

    Cheap (no data read), so it runs first: ``resume`` with ``overwrite``, or earlier outputs with
    neither, raise a one-line :class:`~selfalign.errors.ConfigError`.
    """
    resume, overwrite = bool(getattr(cfg, "resume", False)), bool(getattr(cfg, "overwrite", False))
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: continue the earlier run or replace it")
    out = Path(cfg.output_dir)
    found = earlier_outputs(out)
    if found and not (resume or overwrite):
        raise ConfigError(f"output_dir {out} holds an earlier run ({', '.join(found)}): "
                          "use --resume or --overwrite (resume: true / overwrite: true)")
    return found


def find_resumable(root: Path, config_hash: str, settings: dict[str, Any]) -> Path | None:
    """The newest checkpoint under ``root`` written with ``config_hash``; None when there is no
    checkpoint; ConfigError (one line, naming what differs) when none matches."""
    found = ckpt.list_checkpoints(root)
    if not found:
        return None
    states = [(p, ckpt.read_state(p)) for _, p in found]
    matching = [p for p, st in states if st.get("config_hash") == config_hash]
    if matching:
        return matching[-1]
    newest, st = states[-1]
    if not st.get("config_hash"):
        why = "it records no config hash (written by an older selfalign)"
    else:
        why = f"it was written with other settings ({_changed(st.get('settings') or {}, settings)} differ)"
    raise ConfigError(f"{newest}: cannot resume: {why}; use --overwrite to start again, or resume with "
                      "the settings of that run")


def plan_run(cfg, earlier: tuple[str, ...]) -> OutputRun:
    """This run's identity and start: the checkpoint to resume (``cfg.resume``) or a fresh run, and
    the earlier outputs to clear (``overwrite``, or ``resume`` with nothing to resume)."""
    out = Path(cfg.output_dir)
    settings = training_settings(cfg)
    chash = settings_hash(settings)
    run = OutputRun(out, uuid.uuid4().hex[:12], chash, settings)
    if getattr(cfg, "resume", False):
        run.resume_from = find_resumable(out / "checkpoints", chash, settings)
        if run.resume_from is not None:
            run.run_id = ckpt.read_state(run.resume_from).get("run_id") or run.run_id
            return run
        if earlier:
            console.print(f"[yellow]nothing to resume[/] in {out / 'checkpoints'}: starting from scratch "
                          f"(clearing {', '.join(earlier)})")
    run.clear = earlier
    return run


def clear_outputs(out: Path, names: tuple[str, ...]) -> None:
    """Delete the earlier run outputs ``names`` of ``out`` (files or folders)."""
    for name in names:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def drop_stale_checkpoints(cfg) -> list[Path]:
    """Delete the checkpoints under ``output_dir/checkpoints`` not written with ``cfg``'s settings
    (for an output folder owned by a pipeline stage, where a changed config must start fresh)."""
    root = Path(cfg.output_dir) / "checkpoints"
    chash = settings_hash(training_settings(cfg))
    stale = [p for _, p in ckpt.list_checkpoints(root) if ckpt.read_state(p).get("config_hash") != chash]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


@contextmanager
def cleanup_on_failure(output_dir: str | Path) -> Iterator[None]:
    """On an exception, remove what the block created in ``output_dir`` (the folder itself if it was
    new, else the new :data:`RUN_OUTPUTS`) unless the block wrote a checkpoint, which a later
    ``--resume`` continues from."""
    out = Path(output_dir)
    existed = out.exists()
    before = set(out.iterdir()) if out.is_dir() else set()
    ckpts_before = {p for _, p in ckpt.list_checkpoints(out / "checkpoints")}
    try:
        yield
    except Exception:
        if {p for _, p in ckpt.list_checkpoints(out / "checkpoints")} - ckpts_before:
            raise
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        elif out.is_dir():
            new = {p.name for p in set(out.iterdir()) - before}
            clear_outputs(out, tuple(n for n in new if n in RUN_OUTPUTS or n in BOOKKEEPING or n.startswith(".tmp-")))
        raise
