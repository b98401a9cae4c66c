"""Merging LoRA adapters into one model with peft's weighted adapter merging (SynFed r1s3: each
client fine-tunes an adapter on its own downstream task; the merged model scores for all of them).

:func:`merge_adapters` loads every adapter onto one base model, combines them with
``PeftModel.add_weighted_adapter`` — the library's implementations, not ours:

* ``cat``: concatenates the adapters' low-rank factors, so the merged update is exactly
  ``ΔW = Σ_i w_i · ΔW_i`` with ``ΔW_i = s_i · B_i A_i`` (``s_i`` = alpha_i / r_i): the weighted
  average of the clients' updates (rank Σ r_i);
* ``linear``: adds the factors scaled by √w_i (same rank only) — ``(Σ √w_i B_i)(Σ √w_i A_i)``, which
  has cross terms, i.e. is *not* the weighted average of the updates;
* ``ties``, ``dare_linear``, ``dare_ties``, ``magnitude_prune`` (and their ``_svd`` forms): sparsify
  each update (``density`` = share kept) and resolve sign conflicts (TIES) or rescale (DARE) before
  combining, on the full ``ΔW_i`` (SVD back to low rank for the ``_svd`` forms);

and returns the base model with the merged update folded in (``merge_and_unload``): a plain
``transformers`` model, no peft at inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfalign.errors import ConfigError

COMBINATIONS = ("cat", "linear", "svd", "ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd",
                "dare_ties_svd", "magnitude_prune", "magnitude_prune_svd")
NEEDS_DENSITY = ("ties", "ties_svd", "dare_linear", "dare_ties", "dare_linear_svd", "dare_ties_svd",
                 "magnitude_prune", "magnitude_prune_svd")


def merge_adapters(base: Any, adapters: Sequence[str | Path], weights: Sequence[float] | None = None,
                   combination: str = "cat", density: float | None = None) -> Any:
    """``base`` (a loaded causal LM) with the adapters in ``adapters`` (peft folders) merged by
    ``combination`` with ``weights`` (default: equal, summing to 1) and folded into its weights.

    ``density`` (share of each update kept, in (0, 1]) is required by the sparsifying combinations.
    Raises ConfigError for an unknown combination, a missing density or mismatched lengths."""
    from peft import PeftModel

    if combination not in COMBINATIONS:
        raise ConfigError(f"combination: unknown adapter combination {combination!r}; choose from "
                          f"{', '.join(COMBINATIONS)}")
    if not adapters:
        raise ConfigError("adapters: no adapters to merge")
    weights = [1.0 / len(adapters)] * len(adapters) if weights is None else [float(w) for w in weights]
    if len(weights) != len(adapters):
        raise ConfigError(f"weights: {len(weights)} weights for {len(adapters)} adapters")
    if combination in NEEDS_DENSITY and not (density is not None and 0 < density <= 1):
        raise ConfigError(f"density: combination {combination!r} needs density in (0, 1]")
    names = [f"client{i}" for i in range(len(adapters))]
    model = PeftModel.from_pretrained(base, str(adapters[0]), adapter_name=names[0])
    for name, path in zip(names[1:], adapters[1:]):
        model.load_adapter(str(path), adapter_name=name)
    kw: dict[str, Any] = {"density": density} if combination in NEEDS_DENSITY else {}
    model.add_weighted_adapter(adapters=names, weights=weights, adapter_name="merged",
                               combination_type=combination, **kw)
    model.set_adapter("merged")
    for name in names:
        model.delete_adapter(name)
    return model.merge_and_unload()
