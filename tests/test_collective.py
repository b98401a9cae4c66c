"""Sums over processes (PPO's data parallelism): identities in one process, and with 2 gloo processes
the whitening of a split batch equals the whitening of the whole batch, gradients are summed."""

from __future__ import annotations

import torch

from selfalign.train import collective as col
from selfalign.train import rl_losses as rl


def test_single_process_is_the_identity():
    x = torch.tensor([[1.0, 2.0, 0.0], [4.0, -1.0, 3.0]])
    m = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(col.all_sum(x), x) and col.world_size() == 1 and col.all_true(torch.tensor(True))
    assert torch.allclose(col.masked_whiten(x, m), rl.masked_whiten(x, m), atol=1e-6)


def _worker(rank: int, path: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g)
    m = (torch.rand(4, 5, generator=g) > 0.3).long()
    mine = slice(2 * rank, 2 * rank + 2)
    w = col.masked_whiten(x[mine], m[mine])
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.full((3,), float(rank + 1))
    q = torch.nn.Parameter(torch.zeros(2))  # no gradient on rank 0: zeros, the processes stay in step
    q.grad = None if rank == 0 else torch.ones(2)
    col.sum_gradients([p, q])
    ok = col.all_true(torch.tensor(rank == 0))  # false on rank 1 → false everywhere
    torch.save({"w": w, "p": p.grad, "q": q.grad, "ok": ok, "sum": col.all_sum(torch.tensor(rank + 1.0))},
               f"{out}.{rank}")
    torch.distributed.destroy_process_group()


def test_two_processes_whiten_the_whole_batch_and_sum_gradients(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "res")
    mp.spawn(_worker, args=(str(tmp_path / "store"), out), nprocs=2, join=True)
    r0, r1 = (torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g)
    m = (torch.rand(4, 5, generator=g) > 0.3).long()
    assert torch.allclose(torch.cat([r0["w"], r1["w"]]), rl.masked_whiten(x, m), atol=1e-5)
    for r in (r0, r1):
        assert torch.equal(r["p"], torch.full((3,), 3.0)) and torch.equal(r["q"], torch.ones(2))
        assert r["ok"] is False and float(r["sum"]) == 3.0
