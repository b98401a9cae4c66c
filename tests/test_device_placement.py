"""Device mixing, caught on a CPU-only machine.

The GPU crash this guards against: a tensor created without ``device=`` (so on the CPU default)
meets tensors on the accelerator in one op (``torch.stack([cpu, cuda])`` in the loop's metric
reduction). On a machine without a GPU every tensor is on the CPU and such a bug is invisible.

The trick: while a step runs, the *default* device is ``meta``. The model and its inputs stay on
the CPU (our "accelerator" here), so any tensor created without naming its device becomes a meta
tensor, and the first op mixing it with a real one fails ("Tensor on device meta is not on the
expected device cpu"), exactly where a CUDA run would. Host-side tensors (collate outputs, score
tables) must therefore say ``device="cpu"`` — which they should anyway. transformers' own forward
and backward pass untouched (they place every tensor they make).

Wrapped here: the training step and evaluation of the sft/rm/dpo loop, the DPO reference
precompute, one PPO step (rollout, scoring, experience, update), the decode loop of generation,
the reward-model judge and the rubric judge's next-token scoring. ``tests/test_gpu.py`` runs the
same paths on a real GPU (marked ``gpu``).
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
from test_train_dpo import base_lm, make_pairs

from selfalign.train import loop

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _on_meta(fn):
    @functools.wraps(fn)
    def inner(*a, **k):
        with torch.device("meta"):
            return fn(*a, **k)
    return inner


def test_the_guard_catches_a_stray_cpu_tensor():
    """The mechanism itself: the bug pattern fails under the guard, the fixed pattern passes."""
    x = torch.ones(3)

    def buggy(t):
        return torch.stack([t.sum(), torch.tensor(float(len(t)))])

    def fixed(t):
        return torch.stack([t.sum(), torch.tensor(float(len(t)), device=t.device)])

    with pytest.raises((RuntimeError, NotImplementedError)):
        _on_meta(buggy)(x)
    assert _on_meta(fixed)(x).tolist() == [3.0, 3.0]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return base_lm(tmp_path_factory.mktemp("dev_lm"))


@pytest.fixture()
def guarded_loop(monkeypatch):
    monkeypatch.setattr(loop, "_train_step", _on_meta(loop._train_step))
    monkeypatch.setattr(loop, "evaluate", _on_meta(loop.evaluate))


def _sft_file(path):
    with path.open("w") as f:
        for i in range(8):
            f.write(json.dumps({"prompt": f"Count to {i % 3 + 1}:", "completion": " one two"[: 4 * (i % 3 + 1)]}) + "\n")
    return str(path)


@pytest.mark.parametrize("packing", [False, True])
def test_sft_step_places_every_tensor(lm, tmp_path, guarded_loop, packing):
    from selfalign.train.config import SFTConfig
    from selfalign.train.sft import train_sft

    out = train_sft(SFTConfig(model=lm, train_file=_sft_file(tmp_path / "s.jsonl"), output_dir=str(tmp_path / "o"),
                              per_device_batch_size=2, gradient_accumulation_steps=2, max_steps=2, save_steps=0,
                              validation_split=0.25, packing=packing, max_length=64))
    assert out["steps"] == 2 and "eval_loss" in out


@pytest.mark.parametrize("precompute", [False, True])
def test_dpo_step_and_reference_place_every_tensor(lm, tmp_path, guarded_loop, monkeypatch, precompute):
    from selfalign.train import dpo
    from selfalign.train.config import DPOConfig

    monkeypatch.setattr(dpo, "precompute_reference", _on_meta(dpo.precompute_reference))
    out = dpo.train_dpo(DPOConfig(model=lm, train_file=make_pairs(tmp_path / "p.jsonl", 8, 0),
                                  output_dir=str(tmp_path / "o"), per_device_batch_size=2, max_steps=2,
                                  save_steps=0, validation_split=0.25, precompute_ref_logps=precompute,
                                  loss_type="sigmoid"))
    assert out["steps"] == 2 and "eval_loss" in out


def test_rm_step_places_every_tensor(tiny_seq_cls, tmp_path, guarded_loop):
    from selfalign.train.config import RMConfig
    from selfalign.train.rm import train_rm

    out = train_rm(RMConfig(model=str(tiny_seq_cls), train_file=make_pairs(tmp_path / "p.jsonl", 8, 1),
                            output_dir=str(tmp_path / "o"), per_device_batch_size=2, max_steps=2, save_steps=0,
                            validation_split=0.25, max_length=64))
    assert out["steps"] == 2


@pytest.mark.parametrize("critic", ["actor", "shared"])
def test_ppo_step_places_every_tensor(lm, tmp_path, monkeypatch, critic):
    from selfalign.train.config import PPOConfig
    from selfalign.train.ppo import PPOTrainer, train_ppo

    monkeypatch.setattr(PPOTrainer, "one_step", _on_meta(PPOTrainer.one_step))
    (tmp_path / "rew.py").write_text("def n(prompt, response, meta):\n    return float(len(response) % 3)\n")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": f"Say {i}."}) + "\n" for i in range(4)))
    out = train_ppo(PPOConfig(model=lm, train_file=str(tmp_path / "p.jsonl"), output_dir=str(tmp_path / "o"),
                              rewards=[{"type": "function", "function": f"{tmp_path / 'rew.py'}:n"}],
                              generation={"max_new_tokens": 6, "num_samples": 2}, rollout_batch_size=2,
                              per_device_batch_size=2, max_steps=1, max_length=64, critic=critic))
    assert out["steps"] == 1


@pytest.mark.parametrize("temperature,stop", [(0.0, []), (0.8, ["\n"])])
def test_generation_decode_places_every_tensor(tiny_model, tokenizer, monkeypatch, temperature, stop):
    from selfalign.generation import SamplingParams
    from selfalign.generation.hf import HFEngine
    from selfalign.models.load import load_causal_lm

    eng = HFEngine(load_causal_lm(tiny_model), tokenizer, batch_size=4)
    params = SamplingParams(num_samples=2, temperature=temperature, top_p=0.9, max_new_tokens=6, stop=stop, seed=1)
    plain = eng.generate(["Hi.", "Tell me a story."], params)
    monkeypatch.setattr(HFEngine, "_decode", _on_meta(HFEngine._decode))
    assert eng.generate(["Hi.", "Tell me a story."], params) == plain


def test_judges_place_every_tensor(tiny_model, tiny_seq_cls, tokenizer, monkeypatch):
    from selfalign.judges import build_judge
    from selfalign.models import scoring
    from selfalign.models.heads import load_reward_model
    from selfalign.models.load import load_causal_lm

    records = [{"id": "a", "prompt": "What is 2+2?", "responses": [{"text": "4"}, {"text": "It is four."}]}]
    rm = load_reward_model(tiny_seq_cls)
    monkeypatch.setattr(type(rm), "score", _on_meta(type(rm).score))
    out = build_judge({"type": "reward_model", "batch_size": 2}, model=rm).score_records(records)
    assert all(isinstance(r["score"], float) for r in out[0]["responses"])
    calls = []
    for name in ("next_token_logprobs", "shared_prefix_logprobs"):
        guarded = _on_meta(getattr(scoring, name))
        monkeypatch.setattr(scoring, name, lambda *a, _g=guarded, **k: calls.append(1) or _g(*a, **k))
    j = build_judge({"type": "rubric", "mode": "expected", "batch_size": 2}, model=load_causal_lm(tiny_model),
                    tokenizer=tokenizer)
    assert all(0.0 <= r["score"] <= 5.0 for r in j.score_records(records)[0]["responses"])
    assert calls  # the guarded scoring ran (the judge reaches it through the module, not a stale copy)
