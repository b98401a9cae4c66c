"""Reward-model trainer: resume after a real kill, invariance, learning, save/load, scoring."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from test_train_dpo import base_lm, make_pairs, max_diff, run_and_kill, weights

from selfalign.models.heads import load_reward_model
from selfalign.train.config import RMConfig
from selfalign.train.data import collate_pairs, load_pairs
from selfalign.train.rm import train_rm
from selfalign.utils.metrics import read_metrics


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    return base_lm(tmp_path_factory.mktemp("small_lm"))


def cfg_for(small_lm, train, out, **kw) -> RMConfig:
    base = dict(model=small_lm, train_file=train, output_dir=str(out), learning_rate=5e-3, max_length=64,
                per_device_batch_size=2, seed=7, weight_decay=0.01, warmup_steps=1)
    base.update(kw)
    return RMConfig(**base)


def test_resume_after_kill_matches_uninterrupted(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 12, 10)
    kw = dict(max_steps=6, save_steps=3, save_total_limit=1)
    full = train_rm(cfg_for(small_lm, train, tmp_path / "full", **kw))
    cut = tmp_path / "cut"
    assert run_and_kill(cfg_for(small_lm, train, cut, **kw), "rm", 3, tmp_path) == -signal.SIGKILL
    assert [p.name for p in (cut / "checkpoints").iterdir()] == ["step-00000003"]
    resumed = train_rm(cfg_for(small_lm, train, cut, resume=True, **kw))
    assert resumed["steps"] == full["steps"] == 6
    assert max_diff(weights(tmp_path / "full"), weights(cut)) < 1e-6
    # save_total_limit=1: only the newest checkpoint is kept
    assert [p.name for p in (cut / "checkpoints").iterdir()] == ["step-00000006"]


def test_batch_vs_accumulation_invariance(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 16, 11)
    runs = {}
    for name, bs, acc in (("a", 8, 1), ("b", 1, 8)):
        runs[name] = train_rm(cfg_for(small_lm, train, tmp_path / name, per_device_batch_size=bs,
                                      gradient_accumulation_steps=acc, max_steps=2, margin="judge", judge_scale=0.1))
    la = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert len(la) == 2 and la == pytest.approx(lb, rel=1e-5, abs=1e-6)
    assert max_diff(weights(tmp_path / "a"), weights(tmp_path / "b")) < 1e-5


def test_rm_learns_and_reloads_with_same_rewards(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 40, 12)
    out = train_rm(cfg_for(small_lm, train, tmp_path / "out", validation_split=0.2, per_device_batch_size=8,
                           num_epochs=3))
    assert out["eval_examples"] == 8 and out["train_examples"] == 32
    assert out["eval_acc"] > 0.9
    rows = [r for r in read_metrics(tmp_path / "out" / "metrics.jsonl") if "eval_acc" in r]
    assert rows[-1]["eval_acc"] == out["eval_acc"]

    # the saved folder gives the rewards the trained model gave (validation = the held-out 20%)
    rm = load_reward_model(out["model_path"])
    from selfalign.train.data import split_validation

    pairs, _ = load_pairs(train, rm.tokenizer, max_length=64, max_prompt_length=None, truncation="left")
    _, held = split_validation(pairs, 0.2, 7)
    batch = collate_pairs(held, rm.tokenizer.pad_token_id)
    with torch.no_grad():
        r = rm(batch["input_ids"], batch["attention_mask"])
    n = len(held)
    assert r[:n].mean().item() == pytest.approx(out["eval_rewards_chosen_mean"], abs=1e-5)
    assert r[n:].mean().item() == pytest.approx(out["eval_rewards_rejected_mean"], abs=1e-5)

    # score(): (prompt, response) pairs and raw texts, independent of batching/padding
    recs = [json.loads(line) for line in open(train)][:5]
    items = [(x["prompt"], x["chosen"]) for x in recs] + [(x["prompt"], x["rejected"]) for x in recs]
    s1, s3 = rm.score(items, batch_size=1), rm.score(items, batch_size=3)
    assert s1 == pytest.approx(s3, abs=1e-5)
    assert sum(a > b for a, b in zip(s1[:5], s1[5:])) >= 4

    # transformers' own class loads the folder too; same reward when the text does not end with pad
    from transformers import AutoModelForSequenceClassification

    hf = AutoModelForSequenceClassification.from_pretrained(out["model_path"]).eval()
    ids = rm.tokenizer("sun tree river", return_tensors="pt")
    with torch.no_grad():
        hf_reward = hf(**ids).logits[0, 0].item()
    assert hf_reward == pytest.approx(rm.score(["sun tree river"])[0], abs=1e-5)


def test_lora_rm_and_seq_cls_start(small_lm, tiny_seq_cls, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 4, 13)
    out = train_rm(cfg_for(small_lm, train, tmp_path / "lora", max_steps=2, lora={"r": 2}, save_adapter_only=True))
    rm = load_reward_model(out["model_path"])  # an adapter folder (+ the trained head)
    assert len(rm.score(["a", "bb"])) == 2
    # starting from an HF sequence-classification model (its head is kept), with the chat template
    out2 = train_rm(cfg_for(str(tiny_seq_cls), train, tmp_path / "cls", max_steps=1, max_length=128))
    rm2 = load_reward_model(out2["model_path"])
    assert rm2.config.architectures == ["LlamaForSequenceClassification"]
