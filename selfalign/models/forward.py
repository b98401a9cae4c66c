"""How a KV cache goes into and comes out of a ``transformers`` forward, across versions.

transformers 5.24 renamed the forward's ``past_key_values=`` argument and output field to ``cache``
(the old name warns and goes in 5.40); earlier 5.x releases know only ``past_key_values``. These two
helpers pick whichever the loaded model's forward has, so no call prints the deprecation warning.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=64)
def _forward_params(forward_type: type, forward: Any) -> frozenset[str]:
    return frozenset(inspect.signature(forward).parameters)


def forward_params(model: Any) -> frozenset[str]:
    """Names of the parameters of ``model.forward`` (cached per forward function)."""
    fn = getattr(model.forward, "__func__", model.forward)
    return _forward_params(type(model), fn)


def cache_kwarg(model: Any) -> str:
    """``"cache"`` where ``model.forward`` takes that parameter (transformers ≥ 5.24), else
    ``"past_key_values"``."""
    return "cache" if "cache" in forward_params(model) else "past_key_values"


def output_cache(out: Any) -> Any:
    """The KV cache a forward returned with ``use_cache=True`` (field ``cache`` or ``past_key_values``)."""
    keys = out.keys() if hasattr(out, "keys") else ()
    return out["cache"] if "cache" in keys else out.past_key_values
