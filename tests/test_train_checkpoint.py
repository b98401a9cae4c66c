"""Checkpoints: full state round trip, RNG restore, keep-last-K, atomic writes."""

from __future__ import annotations

import random

import numpy as np
import torch

from selfalign.train import checkpoint as ckpt
from selfalign.train.loop import make_scheduler, param_groups


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-2)
    sched = make_scheduler(opt, "cosine", warmup=2, total=10)
    return model, opt, sched


def _step(model, opt, sched):
    x = torch.randn(5, 4)
    loss = model(torch.nn.functional.dropout(x, 0.3)).pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def test_param_groups_exclude_biases_and_norms():
    model, _, _ = _setup()
    decay, no_decay = param_groups(model, 0.1)
    assert [p.ndim for p in decay["params"]] == [2, 2] and decay["weight_decay"] == 0.1
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0


def test_round_trip_continues_identically(tmp_path):
    model, opt, sched = _setup()
    for _ in range(3):
        _step(model, opt, sched)
    state = ckpt.TrainState(step=3, epoch=1, batches_in_epoch=2, tokens=99)
    path = ckpt.save_checkpoint(tmp_path, model, opt, sched, state)
    for _ in range(3):
        _step(model, opt, sched)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    after = (random.random(), np.random.rand(), torch.rand(1).item())

    model2, opt2, sched2 = _setup(seed=123)  # different init: everything must come from the checkpoint
    random.seed(5)
    got = ckpt.load_checkpoint(path, model2, opt2, sched2)
    assert (got.step, got.epoch, got.batches_in_epoch, got.tokens) == (3, 1, 2, 99)
    for _ in range(3):
        _step(model2, opt2, sched2)
    for k, v in model2.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == after
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_keep_last_k_and_ignore_partial(tmp_path):
    model, opt, sched = _setup()
    (tmp_path / ".tmp-step-00000009-dead").mkdir()  # a save interrupted by a crash
    (tmp_path / "step-00000099").mkdir()  # no state.json: not a complete checkpoint
    for step in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=step), keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [3, 4]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000004"
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())
    assert ckpt.latest_checkpoint(tmp_path / "missing") is None


def test_frozen_parameters_are_not_saved(tmp_path):
    model, opt, sched = _setup()
    model[0].weight.requires_grad_(False)
    path = ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=1))
    from safetensors.torch import load_file

    assert "0.weight" not in load_file(str(path / "weights.safetensors"))
