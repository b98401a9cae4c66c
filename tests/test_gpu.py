"""The same code paths on a real CUDA device, in bf16 (marked ``gpu``: skipped without CUDA).

``tests/test_device_placement.py`` catches device mixing on a CPU-only machine; these run every
trainer, generation, the judges and a checkpoint resume on the GPU itself. ``scripts/gpu_check.sh``
runs them (``pytest -m gpu``) on an offline GPU machine.
"""

from __future__ import annotations

import json

import pytest
import torch
from test_train_dpo import base_lm, make_pairs, weights

pytestmark = pytest.mark.gpu

CUDA = dict(mixed_precision="bf16", cpu=False)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    return base_lm(tmp_path_factory.mktemp("gpu_lm"))


def _sft_file(path):
    with path.open("w") as f:
        for i in range(16):
            f.write(json.dumps({"prompt": f"Count to {i % 3 + 1}:", "completion": "one two three"}) + "\n")
    return str(path)


def test_row_uniforms_identical_on_cuda_and_cpu():
    from selfalign.generation.rng import row_uniforms

    seeds = torch.randint(0, 2**62, (4096,), dtype=torch.int64)
    for step in (0, 5, 10**6):
        assert torch.equal(row_uniforms(seeds.cuda(), step).cpu(), row_uniforms(seeds, step))


@pytest.mark.parametrize("packing", [False, True])
def test_sft_on_cuda(lm, tmp_path, packing):
    from selfalign.train.config import SFTConfig
    from selfalign.train.sft import train_sft

    out = train_sft(SFTConfig(model=lm, train_file=_sft_file(tmp_path / "s.jsonl"), output_dir=str(tmp_path / "o"),
                              per_device_batch_size=4, gradient_accumulation_steps=2, max_steps=3, save_steps=0,
                              validation_split=0.25, packing=packing, max_length=64, **CUDA))
    assert out["steps"] == 3 and torch.isfinite(torch.tensor(out["eval_loss"]))


@pytest.mark.parametrize("precompute", [False, True])
def test_dpo_on_cuda(lm, tmp_path, precompute):
    from selfalign.train.config import DPOConfig
    from selfalign.train.dpo import train_dpo

    out = train_dpo(DPOConfig(model=lm, train_file=make_pairs(tmp_path / "p.jsonl", 16, 0),
                              output_dir=str(tmp_path / "o"), per_device_batch_size=4, max_steps=3, save_steps=0,
                              validation_split=0.25, precompute_ref_logps=precompute, **CUDA))
    assert out["steps"] == 3 and torch.isfinite(torch.tensor(out["eval_loss"]))


def test_rm_on_cuda(tiny_seq_cls, tmp_path):
    from selfalign.train.config import RMConfig
    from selfalign.train.rm import train_rm

    out = train_rm(RMConfig(model=str(tiny_seq_cls), train_file=make_pairs(tmp_path / "p.jsonl", 16, 1),
                            output_dir=str(tmp_path / "o"), per_device_batch_size=4, max_steps=3, save_steps=0,
                            max_length=64, **CUDA))
    assert out["steps"] == 3


class _Crash(Exception):
    pass


def test_dpo_resume_on_cuda_matches_uninterrupted(lm, tmp_path, monkeypatch):
    """Optimizer state and CUDA RNG come back on the device; the resumed run ends where an
    uninterrupted one does (fp32 weights, bf16 autocast; tolerance for GPU reduction order)."""
    from selfalign.train.config import DPOConfig
    from selfalign.train.dpo import train_dpo

    data = make_pairs(tmp_path / "p.jsonl", 16, 2)
    kw = dict(model=lm, train_file=data, per_device_batch_size=4, save_steps=2, learning_rate=1e-3, **CUDA)
    from selfalign.train import checkpoint as ckpt

    train_dpo(DPOConfig(output_dir=str(tmp_path / "full"), max_steps=4, **kw))
    orig = ckpt.save_checkpoint

    def save_then_crash(root, model, optimizer, scheduler, state, keep=2):
        path = orig(root, model, optimizer, scheduler, state, keep=keep)
        raise _Crash(path)

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(_Crash):
        train_dpo(DPOConfig(output_dir=str(tmp_path / "cut"), max_steps=4, **kw))
    monkeypatch.setattr(ckpt, "save_checkpoint", orig)
    train_dpo(DPOConfig(output_dir=str(tmp_path / "cut"), max_steps=4, resume=True, **kw))
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_ppo_on_cuda(lm, tmp_path):
    from selfalign.train.config import PPOConfig
    from selfalign.train.ppo import train_ppo

    (tmp_path / "rew.py").write_text("def n(prompt, response, meta):\n    return float(len(response) % 3)\n")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"prompt": f"Say {i}."}) + "\n" for i in range(8)))
    for critic in ("actor", "shared"):
        out = train_ppo(PPOConfig(model=lm, train_file=str(tmp_path / "p.jsonl"), output_dir=str(tmp_path / critic),
                                  rewards=[{"type": "function", "function": f"{tmp_path / 'rew.py'}:n"}],
                                  generation={"max_new_tokens": 8, "num_samples": 2}, rollout_batch_size=4,
                                  per_device_batch_size=4, max_steps=2, max_length=64, critic=critic, **CUDA))
        assert out["steps"] == 2


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_generation_on_cuda(tiny_model, dtype):
    from selfalign.generation import SamplingParams
    from selfalign.generation.hf import HFEngine

    eng = HFEngine(str(tiny_model), batch_size=8, dtype=dtype, device="cuda")
    prompts = ["Hi.", "Tell me a story about a cat.", "Why?"]
    for params in (SamplingParams(num_samples=2, temperature=0.0, max_new_tokens=12),
                   SamplingParams(num_samples=4, temperature=0.9, top_p=0.9, max_new_tokens=12, seed=3, stop=["."])):
        a = eng.generate(prompts, params)
        assert eng.generate(prompts, params) == a  # seeded: the same again
        assert [len(x) for x in a] == [params.num_samples] * 3
        assert all(0 < r["num_tokens"] <= 12 for x in a for r in x)


def test_judges_on_cuda(tiny_model, tiny_seq_cls, tokenizer):
    from selfalign.judges import build_judge
    from selfalign.models.heads import load_reward_model
    from selfalign.models.load import load_causal_lm

    records = [{"id": "a", "prompt": "What is 2+2?", "responses": [{"text": "4"}, {"text": "It is four."}]}]
    rm = load_reward_model(tiny_seq_cls, device="cuda")
    out = build_judge({"type": "reward_model", "batch_size": 2}, model=rm).score_records(records)
    assert all(isinstance(r["score"], float) for r in out[0]["responses"])
    j = build_judge({"type": "rubric", "mode": "expected", "batch_size": 2},
                    model=load_causal_lm(tiny_model, device="cuda"), tokenizer=tokenizer)
    assert all(0.0 <= r["score"] <= 5.0 for r in j.score_records(records)[0]["responses"])
