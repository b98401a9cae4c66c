"""Start or attach to Ray, and check that the workers asked for can be placed at all.

:func:`connect` attaches to ``address`` (or ``RAY_ADDRESS``) when one is given, else starts a local
Ray instance for this process (stopped when the process exits). :func:`check_placement` packs
``num_workers`` bundles of ``resources_per_worker`` onto the alive nodes' *total* resources
(first fit, largest node first) and raises a one-line :class:`~selfalign.errors.ConfigError` when they
do not fit — instead of Ray waiting forever for resources that will never exist. Resources that exist
but are held by other jobs are waited for up to ``placement_timeout_s``.
"""

from __future__ import annotations

import os
from typing import Any

from selfalign.distributed.config import DistributedConfig
from selfalign.errors import ConfigError


def require_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("distributed.backend: ray needs Ray: pip install 'selfalign[ray]'") from None
    return ray


def connect(cfg: DistributedConfig) -> Any:
    """Attach to the cluster at ``cfg.address`` / ``RAY_ADDRESS``, or start a local instance; returns ``ray``."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    # workers import selfalign from the same environment; keep Ray's own output quiet
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=True, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(**kwargs)
    except ConnectionError as e:
        raise ConfigError(f"distributed.address: cannot reach the Ray cluster at {address!r}: {e}") from None
    return ray


def node_resources(ray) -> list[dict[str, float]]:
    """Total resources of each alive node (``CPU``, ``GPU``, custom ones; Ray's internal keys dropped)."""
    out = []
    for node in ray.nodes():
        if node.get("Alive", node.get("alive")):
            res = node.get("Resources", {})
            out.append({k: float(v) for k, v in res.items() if not k.startswith("node:")
                        and not k.startswith("accelerator_type") and k not in ("memory", "object_store_memory")})
    return out


def pack(bundles: list[dict[str, float]], nodes: list[dict[str, float]]) -> list[int] | None:
    """First-fit placement of ``bundles`` onto ``nodes`` (largest CPU count first); the node index of
    each bundle, or None when one does not fit. Pure: used by :func:`check_placement` and tested alone."""
    free = [dict(n) for n in nodes]
    order = sorted(range(len(free)), key=lambda i: -free[i].get("CPU", 0.0))
    where = []
    for b in bundles:
        for i in order:
            if all(free[i].get(k, 0.0) + 1e-9 >= v for k, v in b.items()):
                for k, v in b.items():
                    free[i][k] = free[i].get(k, 0.0) - v
                where.append(i)
                break
        else:
            return None
    return where


def check_placement(ray, cfg: DistributedConfig, what: str = "workers") -> None:
    """ConfigError when ``cfg.num_workers`` × ``cfg.resources()`` cannot fit on the cluster's nodes."""
    nodes = node_resources(ray)
    bundle = cfg.resources()
    if pack([bundle] * cfg.num_workers, nodes) is not None:
        return
    total: dict[str, float] = {}
    for n in nodes:
        for k, v in n.items():
            total[k] = total.get(k, 0.0) + v
    have = ", ".join(f"{k} {total.get(k, 0):g}" for k in bundle)
    fits = 0
    while fits < cfg.num_workers and pack([bundle] * (fits + 1), nodes) is not None:
        fits += 1
    raise ConfigError(
        f"distributed: {cfg.num_workers} {what} × {_fmt(bundle)} cannot be placed: the cluster has "
        f"{have} on {len(nodes)} node(s), room for {fits}; lower num_workers (num_training_workers) or "
        "resources_per_worker, or add nodes (ray start --address=HEAD:6379)")


def _fmt(res: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in res.items()) + "}"
