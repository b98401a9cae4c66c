"""SFT trainer: loss falls, token-normalised accumulation invariance, packing, CLI."""

from __future__ import annotations

import json
import random

import pytest
import torch
from test_train_dpo import base_lm, max_diff, weights

from selfalign.train.config import SFTConfig
from selfalign.train.data import SeqExample, collate_seqs, pack
from selfalign.train.sft import SFTObjective, train_sft
from selfalign.utils.metrics import read_metrics


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    return base_lm(tmp_path_factory.mktemp("small_lm"))


def make_sft(path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    with path.open("w") as f:
        for _ in range(n):
            k = rng.randint(1, 4)  # completions of different lengths: token normalisation matters
            f.write(json.dumps({"prompt": f"List {k} words:", "completion": " ".join(words[:k])}) + "\n")
    return str(path)


def cfg_for(small_lm, train, out, **kw) -> SFTConfig:
    base = dict(model=small_lm, train_file=train, output_dir=str(out), learning_rate=1e-2, max_length=32,
                per_device_batch_size=4, seed=5)
    base.update(kw)
    return SFTConfig(**base)


def test_sft_loss_falls(small_lm, tmp_path):
    train = make_sft(tmp_path / "sft.jsonl", 24, 0)
    out = train_sft(cfg_for(small_lm, train, tmp_path / "o", num_epochs=3, per_device_batch_size=8,
                            validation_split=0.25))
    losses = [r["loss"] for r in read_metrics(tmp_path / "o" / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 9  # 18 training rows (6 held out), batches of 8 → 3 steps × 3 epochs
    assert losses[-1] < losses[0] - 1.0
    assert out["eval_loss"] < losses[0]


def test_token_normalised_accumulation_invariance(small_lm, tmp_path):
    train = make_sft(tmp_path / "sft.jsonl", 16, 1)
    for name, bs, acc in (("a", 8, 1), ("b", 1, 8)):
        train_sft(cfg_for(small_lm, train, tmp_path / name, per_device_batch_size=bs, gradient_accumulation_steps=acc,
                          max_steps=2))
    la = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert la == pytest.approx(lb, rel=1e-5)
    assert max_diff(weights(tmp_path / "a"), weights(tmp_path / "b")) < 1e-5


def test_packing_keeps_examples_independent(small_lm):
    from selfalign.models.load import load_causal_lm

    model = load_causal_lm(small_lm).eval()
    g = torch.Generator().manual_seed(0)
    exs = [SeqExample(torch.randint(5, 1000, (n,), generator=g).tolist(), [0] * 3 + [1] * (n - 3)) for n in (7, 5, 9)]
    rows = pack(exs, max_length=16, seed=0)
    assert len(rows) == 2 and sum(len(r.input_ids) for r in rows) == 21
    assert all(len(r.input_ids) <= 16 for r in rows)
    obj = SFTObjective(pad_id=2)
    with torch.no_grad():
        packed, _ = obj.loss(model, collate_seqs(rows, 2))
        separate = sum(obj.loss(model, collate_seqs([e], 2))[0] for e in exs)
    assert packed.item() == pytest.approx(separate.item(), rel=1e-5)
    assert obj.weight(rows) == obj.weight(exs)


def test_packed_training_and_cli(small_lm, tiny_model, tmp_path):
    from selfalign.cli import main
    from selfalign.models.load import load_causal_lm

    train = make_sft(tmp_path / "sft.jsonl", 12, 2)
    out = train_sft(cfg_for(small_lm, train, tmp_path / "p", packing=True, max_steps=2, per_device_batch_size=2))
    assert out["train_packed_rows"] < 12
    # CLI with the chat-templated tiny model, messages data
    msgs = tmp_path / "msgs.jsonl"
    msgs.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"hi {i}"},
                                                        {"role": "assistant", "content": "hello"}]})
                              for i in range(4)) + "\n")
    main(["train", "sft", f"model={tiny_model}", f"train_file={msgs}", f"output_dir={tmp_path / 'cli'}",
          "max_steps=1", "per_device_batch_size=2", "lr_scheduler=constant"])
    assert load_causal_lm(tmp_path / "cli" / "model") is not None


def test_gradient_checkpointing_bf16_and_cli_resume(small_lm, tmp_path):
    from selfalign.cli import main

    train = make_sft(tmp_path / "sft.jsonl", 8, 3)
    plain = train_sft(cfg_for(small_lm, train, tmp_path / "plain", max_steps=1))
    gc = train_sft(cfg_for(small_lm, train, tmp_path / "gc", max_steps=1, gradient_checkpointing=True))
    assert gc["loss"] == pytest.approx(plain["loss"], rel=1e-6)
    assert max_diff(weights(tmp_path / "plain"), weights(tmp_path / "gc")) < 1e-6
    bf = train_sft(cfg_for(small_lm, train, tmp_path / "bf", max_steps=1, dtype="bfloat16"))
    assert bf["loss"] == pytest.approx(plain["loss"], rel=2e-2)
    assert weights(tmp_path / "bf")["model.norm.weight"].dtype == torch.bfloat16
    # CLI --resume on a finished run: nothing left to train, the model is written again
    args = ["train", "sft", f"model={small_lm}", f"train_file={train}", f"output_dir={tmp_path / 'cli'}",
            "max_steps=2", "save_steps=1", "per_device_batch_size=2"]
    main(args)
    before = weights(tmp_path / "cli")
    first = json.loads((tmp_path / "cli" / "train_summary.json").read_text())
    main([*args, "--resume"])
    assert max_diff(before, weights(tmp_path / "cli")) == 0.0
    again = json.loads((tmp_path / "cli" / "train_summary.json").read_text())
    assert again["steps"] == 2 and again["loss"] == first["loss"]  # last metrics come from the checkpoint
    assert [r["step"] for r in read_metrics(tmp_path / "cli" / "metrics.jsonl") if "loss" in r] == [1, 2]
