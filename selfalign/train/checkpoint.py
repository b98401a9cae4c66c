"""Checkpoints that let an interrupted run end with the same weights as an uninterrupted one.

Layout of ``output_dir/checkpoints/step-00000012/``::

    weights.safetensors   trainable parameters (all weights, or LoRA adapters + trained heads)
    optimizer.pt          optimizer state dict     (torch.save; read back with weights_only=True)
    scheduler.pt          LR scheduler state dict  (same)
    rng.safetensors       torch CPU (and CUDA) generator states
    state.json            step, epoch, batches consumed in the epoch, python/numpy RNG states, extras,
                          and the run identity: ``run_id``, ``config_hash``, ``settings``
    model/                the model as an HF folder (``AutoModelForCausalLM.from_pretrained`` /
                          ``AutoModelForSequenceClassification``), or a peft adapter folder with LoRA
                          (``PeftModel.from_pretrained``); with the tokenizer when the state carries one

A checkpoint is written into a hidden temporary folder and renamed when complete
(:func:`selfalign.data.io.atomic_output`), so a crash while saving leaves either the previous
checkpoints or a stray ``.tmp-*`` folder (ignored and cleaned up), never a half-written
``step-*``. Only the newest ``keep`` checkpoints *of the same run* (``run_id``) are kept: rotation
never deletes another run's checkpoints, nor this run's newer ones. ``config_hash`` is the hash of
the settings that determine training (:mod:`selfalign.train.outdir`); resuming refuses a
checkpoint whose hash differs.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from selfalign.data.io import atomic_output

_NAME = re.compile(r"^step-(\d+)$")


@dataclass
class TrainState:
    """Where training is: optimizer steps done, current epoch, global batches consumed in it."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""  # identity of the run that wrote it ("" = unknown, an older selfalign)
    config_hash: str = ""  # hash of the training settings (see selfalign.train.outdir)
    settings: dict[str, Any] = field(default_factory=dict)  # those settings, to name what changed
    tokenizer: Any = field(default=None, repr=False, compare=False)  # not saved: goes into model/

    def to_json(self) -> dict[str, Any]:
        """The saved fields (everything but the tokenizer)."""
        return {k: getattr(self, k) for k in ("step", "epoch", "batches_in_epoch", "tokens", "extra", "run_id",
                                              "config_hash", "settings")}


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (shared/tied parameters appear once), detached CPU copies."""
    return {n: p.detach().to("cpu").contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable parameters back into ``model`` (names must match exactly)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(set(params) - set(tensors))
    unexpected = sorted(set(tensors) - set(params))
    if missing or unexpected:
        raise RuntimeError(f"checkpoint does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(tensors[n].to(device=p.device, dtype=p.dtype))


def rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    """(JSON-able python/numpy states, torch generator states as tensors)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    js = {"python": [version, list(internal), gauss],
          "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    return js, tensors


def set_rng_state(js: dict, tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = js["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = js["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda")), key=lambda k: int(k[4:]))]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as ``(step, path)``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / "state.json").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete checkpoint with the highest step (any run), or None."""
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def read_state(path: str | Path) -> dict[str, Any]:
    """The ``state.json`` of checkpoint ``path`` without its RNG states ({} if unreadable)."""
    try:
        data = json.loads((Path(path) / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    data.pop("rng", None)
    return data if isinstance(data, dict) else {}


def _rotate(root: Path, run_id: str, keep: int) -> None:
    """Delete the older checkpoints of run ``run_id`` beyond the newest ``keep`` (other runs untouched)."""
    mine = [p for _, p in list_checkpoints(root) if read_state(p).get("run_id", "") == run_id]
    for old in mine[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(root: str | Path, model: torch.nn.Module, optimizer, scheduler, state: TrainState,
                    keep: int = 2) -> Path:
    """Write a checkpoint for ``state.step`` atomically, with its ``model/`` folder, and delete this
    run's older checkpoints beyond the newest ``keep``; returns its folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    with atomic_output(final) as tmp:
        tmp.mkdir()
        save_file(trainable_state(model), str(tmp / "weights.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        js, tensors = rng_state()
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "rng.safetensors"))
        export_model(model, state.tokenizer, tmp / "model")
        (tmp / "state.json").write_text(json.dumps({**state.to_json(), "rng": js}), encoding="utf-8")
    _rotate(root, state.run_id, keep)
    for stray in root.glob(".tmp-step-*"):  # left by a crash during an earlier save
        shutil.rmtree(stray, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer, scheduler, tokenizer=None) -> TrainState:
    """Restore weights, optimizer, scheduler and RNG states from ``path``; returns the train state
    (carrying ``tokenizer`` for the ``model/`` folders of later checkpoints)."""
    path = Path(path)
    load_trainable_state(model, load_file(str(path / "weights.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu"))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    data = json.loads((path / "state.json").read_text(encoding="utf-8"))
    set_rng_state(data.pop("rng"), load_file(str(path / "rng.safetensors")))
    return TrainState(**data, tokenizer=tokenizer)


def _exportable(model: torch.nn.Module) -> torch.nn.Module | None:
    """The HF model inside what a trainer checkpoints (a causal LM, a reward model's ``hf``, PPO's
    ``actor``), or None for a module that is not an HF model."""
    for attr in ("actor", "hf"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            model = inner
            break
    return model if callable(getattr(model, "save_pretrained", None)) else None


def export_model(model: torch.nn.Module, tokenizer, path: Path) -> Path | None:
    """Write the model of a checkpoint as an HF folder at ``path`` (LoRA: the adapter folder, not
    merged, so training continues untouched); nothing for a module that is not an HF model."""
    inner = _exportable(model)
    if inner is None:
        return None
    _forget_gguf_origin(inner)
    inner.save_pretrained(path, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def save_model_folder(model: torch.nn.Module, tokenizer, path: str | Path, adapter_only: bool = False) -> Path:
    """Write the final model as a standard HF folder at ``path`` (atomically) and return it.

    LoRA adapters are merged into the base weights unless ``adapter_only`` (then the folder is a
    peft adapter folder, which :func:`selfalign.models.load.load_causal_lm` also loads). The
    tokenizer is saved alongside. ``model`` may be a causal LM or a
    :class:`~selfalign.models.heads.RewardModel`.
    """
    from selfalign.models.heads import RewardModel
    from selfalign.models.lora import is_peft, merge_lora

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inner = model.hf if isinstance(model, RewardModel) else model
    if is_peft(inner) and not adapter_only:
        inner = merge_lora(inner)
        if isinstance(model, RewardModel):
            model.hf = inner
    _forget_gguf_origin(inner)
    with atomic_output(path) as tmp:
        inner.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return path


def _forget_gguf_origin(model: torch.nn.Module) -> None:
    """Drop a stale GGUF quantization marker so transformers agrees to save the model.

    A folder converted from a GGUF file can keep ``quantization_config: {quant_method: gguf}`` in
    its config although its weights are plain dequantised tensors; a model loaded from it then
    refuses ``save_pretrained``. Its weights are ordinary tensors, so the marker is simply removed.
    """
    get_base = getattr(model, "get_base_model", None)
    for m in (model, get_base() if callable(get_base) else None):
        quantizer = getattr(m, "hf_quantizer", None)
        method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
        if quantizer is not None and str(getattr(method, "value", method)).lower() == "gguf":
            m.hf_quantizer = None
            if getattr(m.config, "quantization_config", None) is not None:
                del m.config.quantization_config
