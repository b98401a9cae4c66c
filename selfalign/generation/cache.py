"""The KV cache of the pruning decode loop (:mod:`selfalign.generation.hf`).

``transformers``' ``DynamicCache`` grows each layer's keys and values by ``torch.cat`` at every
step: the whole cache is copied once per token, O(B·L) bytes per layer per step — on CPU that copy
took as long as all the matrix products of a 135M model (39% of a decode step at 40 rows × 300
positions). :func:`decode_cache` returns a preallocated cache instead: ``transformers``'
``StaticLayer`` (one ``[B, H, max_len, D]`` buffer per layer, written in place with
``index_copy_``) with one addition, :meth:`PrunableStaticLayer.batch_select_indices`, so rows that
finished can still leave the batch (one row gather per pruning event instead of a copy per step).
Attention then spans ``max_len`` positions, the unused ones masked (padded 2-D attention mask).
Models whose layers are not all full attention (sliding windows, linear attention, shared KV) keep
the ``DynamicCache``.
"""

from __future__ import annotations

from typing import Any

import torch


def _layer_cls():
    from transformers.cache_utils import StaticLayer

    class PrunableStaticLayer(StaticLayer):
        """A ``StaticLayer`` whose rows can be selected (finished rows dropped)."""

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.is_initialized:
                self.keys = self.keys.index_select(0, indices)
                self.values = self.values.index_select(0, indices)
                self.batch_size = self.keys.shape[0]

    return PrunableStaticLayer


def decode_cache(config: Any, max_len: int) -> Any:
    """A cache for ``max_len`` positions: preallocated when every layer is full attention, else a
    ``DynamicCache`` (see the module docstring)."""
    from transformers import DynamicCache
    from transformers.cache_utils import Cache

    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    types = getattr(text, "layer_types", None)
    n = getattr(text, "num_hidden_layers", None)
    full = types is None or all(t == "full_attention" for t in types)
    if not full or not isinstance(n, int) or getattr(text, "sliding_window", None) is not None \
            or getattr(text, "kv_sharing_modes", None) is not None:
        return DynamicCache(config=config)
    cls = _layer_cls()
    with torch.device("cpu"):  # a layer makes host counters and moves them to the keys' device on first use
        return Cache(layers=[cls(max_cache_len=max_len) for _ in range(n)])
