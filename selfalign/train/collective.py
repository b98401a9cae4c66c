"""Sums over training processes for the trainers that manage their own data parallelism (PPO).

Every function is the identity (no communication) in a single process, so the same trainer code
runs with and without ``torch.distributed``. With ``W`` processes (e.g. Ray Train workers):

* :func:`all_sum` ``(t) -> Σ_w t_w`` (a new tensor; every process gets the same value);
* :func:`all_mean` ``(t) -> (1/W) Σ_w t_w``;
* :func:`sum_gradients` ``(params)`` — ``p.grad ← Σ_w p.grad_w`` for every parameter, in one flat
  buffer (a parameter without a gradient contributes zeros, so the processes stay in step). A loss
  that each process divides by the *global* count (:func:`all_sum` of the local counts) then gives
  every process the gradient of the whole batch, and identical optimizer steps keep the weights equal;
* :func:`masked_whiten` — :func:`selfalign.train.rl_losses.masked_whiten` with the mean and variance
  over the masked elements of *all* processes (one rollout batch split over the workers is whitened
  as a whole).
"""

from __future__ import annotations

import torch


def world_size() -> int:
    d = torch.distributed
    return d.get_world_size() if d.is_available() and d.is_initialized() else 1


def rank() -> int:
    d = torch.distributed
    return d.get_rank() if d.is_available() and d.is_initialized() else 0


def barrier() -> None:
    """Wait for every process (nothing in a single process)."""
    if world_size() > 1:
        torch.distributed.barrier()


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """``Σ`` over processes of ``t`` (a copy; ``t`` itself is unchanged)."""
    out = t.detach().clone()
    if world_size() > 1:
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
    return out


def all_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over processes of ``t``."""
    return all_sum(t) / world_size()


def all_true(flag: torch.Tensor) -> bool:
    """Whether ``flag`` (a 0-d bool tensor) is true on every process."""
    return bool(all_sum((~flag.bool()).to(torch.float32)) == 0)


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """``p.grad ← Σ_w p.grad_w`` for every ``p`` (one all-reduce over a flat buffer)."""
    if world_size() == 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).to(torch.float32) for g in grads])
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).to(g.dtype)
        offset += n


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x − μ) / sqrt(σ² + eps)`` · mask, μ and σ² (population) over the masked elements of all
    processes: ``μ = Σ x·m / Σ m``, ``σ² = Σ (x − μ)²·m / Σ m`` (sums over processes). Equals
    :func:`selfalign.train.rl_losses.masked_whiten` in one process."""
    m = mask.to(x.dtype)
    count = all_sum(m.sum()).clamp(min=1)
    mean = all_sum((x * m).sum()) / count
    var = all_sum((((x - mean) ** 2) * m).sum()) / count
    return (x - mean) * torch.rsqrt(var + eps) * m
