"""Resolve a model spec and load models and tokenizers.

A model spec is one of:

* a registry name (``smollm2-135m``) — prepared into the cache on first use (see
  :mod:`selfalign.models.registry`);
* a local HF folder (``config.json`` inside);
* a hub id (``org/name``) — downloaded where a hub is reachable; offline, a one-line error naming
  the offline alternatives. A spec that looks like a path (starts with ``/``, ``.``, ``~``, or its
  parent folder exists) but does not exist is "no such model folder", never a hub id.

A truncated or corrupt weights file is a one-line :class:`ModelError` naming the file.

``trust_remote_code`` is off unless the caller asks for it.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import torch

from selfalign.data.io import atomic_output
from selfalign.errors import ConfigError, ModelError
from selfalign.models.registry import REGISTRY, is_prepared, prepared_dir, selfalign_home
from selfalign.utils.progress import status

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def torch_dtype(name: str | torch.dtype | None) -> torch.dtype:
    if name is None:
        return torch.float32
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[name]
    except KeyError:
        raise ModelError(f"unknown dtype {name!r}; expected one of {sorted(DTYPES)}") from None


def _offline_alternatives() -> str:
    return (f"registry names: {', '.join(REGISTRY)} (see `selfalign models list`), or a local HF "
            "folder containing config.json")


def gguf_source(name: str) -> Path:
    """Path of the GGUF file behind registry entry ``name``."""
    entry = REGISTRY[name]
    spec = importlib.util.find_spec(entry.gguf_package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model {name!r} needs the package {entry.gguf_package!r}: {entry.pip_hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / entry.gguf_file
    if not path.is_file():
        raise ModelError(f"{path}: GGUF file missing from package {entry.gguf_package!r}; reinstall: "
                         f"{entry.pip_hint}")
    return path


def _needs_prepare(name: str) -> bool:
    if not is_prepared(name):
        return True
    import json

    cfg = json.loads((prepared_dir(name) / "config.json").read_text(encoding="utf-8"))
    return "quantization_config" in cfg  # prepared by an older selfalign: convert again


def prepare_registry_model(name: str, force: bool = False) -> Path:
    """Convert registry model ``name`` from GGUF to an HF folder in the cache (once) and return it.

    A GGUF-loaded model refuses ``save_pretrained``, so we build a fresh model from its config,
    load the dequantised state dict into it and save that. The folder is written under a temporary
    name and renamed when complete, so an interrupted prepare leaves nothing half-written.
    """
    if name not in REGISTRY:
        raise ModelError(f"unknown registry model {name!r}; known: {', '.join(REGISTRY)}")
    out = prepared_dir(name)
    if not force and not _needs_prepare(name):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    src = gguf_source(name)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with atomic_output(out) as tmp, status(f"preparing {name}: reading {src.name} (once; later loads take seconds)"):
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name,
                                                          dtype=torch.float32)
        config = gguf_model.config
        if hasattr(config, "quantization_config"):  # the GGUF marker would block save_pretrained later
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
        missing = [k for k in missing if not k.endswith("lm_head.weight")]
        if missing or unexpected:
            raise ModelError(f"{src}: GGUF conversion mismatch (missing={missing[:3]}, "
                             f"unexpected={unexpected[:3]})")
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return out


def _looks_like_path(s: str) -> bool:
    """A spec meant as a folder: starts with ``/``, ``.``, ``~`` (or a Windows drive / backslash),
    has more than one ``/`` (hub ids have one), or its first part exists here (``runs/x``)."""
    if s.startswith(("/", ".", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", s) or s.count("/") > 1:
        return True
    return "/" in s and Path(s).parent.exists() and Path(s).parent != Path(".")


def resolve_model(spec: str | Path, prepare: bool = True) -> Path | str:
    """Turn a model spec into a local folder (registry/local) or a hub id string.

    Raises :class:`ModelError` with a one-line message for unknown or unreadable specs.
    """
    s = str(spec)
    if s in REGISTRY:
        if not prepare and not is_prepared(s):
            raise ModelError(f"model {s!r} is not prepared; run `selfalign models prepare {s}`")
        return prepare_registry_model(s)
    p = Path(s).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelError(f"{p}: not a model folder (expected a directory with config.json)")
        if not (p / "config.json").is_file() and not (p / "adapter_config.json").is_file():
            raise ModelError(f"{p}: unreadable model folder: no config.json")
        return p
    if _looks_like_path(s):
        raise ModelError(f"{p}: no such model folder (a registry name, a local HF folder or a hub id "
                         f"org/name was expected; registry names: {', '.join(REGISTRY)})")
    if _HUB_ID.match(s):
        return s
    raise ModelError(f"model {s!r} not found: not a registry name, local folder or hub id; "
                     f"offline alternatives: {_offline_alternatives()}")


def _hub_guard(spec: str | Path, fn, what: str):
    try:
        return fn()
    except ModelError:
        raise
    except OSError as e:
        if isinstance(spec, str) and not Path(spec).exists():
            raise ModelError(f"could not fetch {what} {spec!r} from the model hub ({type(e).__name__}); "
                             f"offline alternatives: {_offline_alternatives()}") from e
        raise ModelError(f"{_weights_file(spec)}: unreadable {what}: {_first_line(e)}") from e
    except (ValueError, KeyError) as e:
        raise ModelError(f"{_weights_file(spec)}: unreadable {what}: {_first_line(e)}") from e
    except Exception as e:  # safetensors / torch errors on a truncated or corrupt weights file
        if isinstance(spec, Path) or Path(str(spec)).exists():
            raise ModelError(f"{_weights_file(spec)}: unreadable {what} ({type(e).__name__}: "
                             f"{_first_line(e)}); the file may be truncated: copy or save it again") from e
        raise


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _weights_file(spec: str | Path) -> Path | str:
    """The weights file of a model folder (``model.safetensors``, an index, ``*.bin``), else the spec."""
    p = Path(str(spec))
    if not p.is_dir():
        return spec
    for name in ("model.safetensors", "adapter_model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "adapter_model.bin"):
        if (p / name).is_file():
            return p / name
    return p


def load_tokenizer(spec: str | Path, trust_remote_code: bool = False, padding_side: str = "left"):
    """Load the tokenizer of a model spec; sets a pad token (EOS) when the model has none."""
    from transformers import AutoTokenizer

    where = resolve_model(spec)
    tok = _hub_guard(where, lambda: AutoTokenizer.from_pretrained(
        where, trust_remote_code=trust_remote_code), "tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_causal_lm(spec: str | Path, dtype: str | torch.dtype | None = "float32",
                   trust_remote_code: bool = False, device: str | torch.device | None = None):
    """Load a causal LM (or a LoRA adapter folder, merged onto its base) from a model spec."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # our own progress bars only
    where = resolve_model(spec)
    dt = torch_dtype(dtype)
    if isinstance(where, Path) and (where / "adapter_config.json").is_file() and not (
            where / "config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = _hub_guard(where, lambda: AutoPeftModelForCausalLM.from_pretrained(
            where, dtype=dt, trust_remote_code=trust_remote_code), "adapter").merge_and_unload()
    else:
        model = _hub_guard(where, lambda: AutoModelForCausalLM.from_pretrained(
            where, dtype=dt, trust_remote_code=trust_remote_code), "model")
    if device is not None:
        model.to(device)
    return model


def load_judge_lm(spec: str | None, model: Any = None, tokenizer: Any = None, dtype: str = "float32",
                  device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for an LLM judge: the ones passed in, else loaded from ``spec``."""
    if model is not None:
        if tokenizer is None:
            raise ConfigError("a judge given a loaded model also needs its tokenizer")
        return model, tokenizer
    if not spec:
        raise ConfigError("judge.model: required (a registry name, model folder or hub id)")
    with status(f"loading judge model {spec}"):
        tok = tokenizer if tokenizer is not None else load_tokenizer(spec)
        lm = load_causal_lm(spec, dtype=dtype, device=device)
    return lm, tok


def cache_root() -> Path:
    return selfalign_home()
