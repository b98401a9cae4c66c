"""Training data: truncation modes, seeded length-grouped batches, collation, chat-template encoding."""

from __future__ import annotations

import json

import pytest
import torch

from selfalign.errors import DataError
from selfalign.train.data import (
    PairExample,
    batch_plan,
    collate_pairs,
    fit,
    load_pairs,
    load_sft,
    micro_batches,
    split_validation,
)


def test_fit_modes():
    p, c, r = list(range(10)), [100, 101, 102, 103], [200, 201]
    assert fit(p, [c, r], 20, None, "left") == (p, [c, r], False)
    # max_prompt_length keeps the prompt's end
    assert fit(p, [c, r], 20, 4, "left") == ([6, 7, 8, 9], [c, r], True)
    # left: the prompt loses its start so that the longest completion fits whole
    assert fit(p, [c, r], 8, None, "left") == ([6, 7, 8, 9], [c, r], True)
    # left, completion alone too long: one prompt token kept, completions cut at the end
    assert fit(p, [c, r], 3, None, "left") == ([9], [[100, 101], [200, 201]], True)
    # right: completions lose their end
    assert fit(p, [c, r], 12, None, "right") == (p, [[100, 101], r], True)
    # right, prompt alone too long: one completion token kept, prompt cut at the start
    assert fit(p, [c, r], 5, None, "right") == ([6, 7, 8, 9], [[100], [200]], True)
    assert fit(p, [c, r], 12, None, "drop") is None
    for mode in ("left", "right"):
        q, comps, _ = fit(p, [c, r], 7, None, mode)
        assert all(len(q) + len(x) <= 7 for x in comps)


def test_batch_plan_is_seeded_grouped_and_complete():
    lengths = [(i * 37) % 50 + 1 for i in range(103)]
    a = batch_plan(lengths, 8, seed=1, epoch=0)
    assert a == batch_plan(lengths, 8, seed=1, epoch=0)
    assert a != batch_plan(lengths, 8, seed=1, epoch=1) and a != batch_plan(lengths, 8, seed=2, epoch=0)
    assert sorted(i for b in a for i in b) == list(range(103))
    assert sum(len(b) < 8 for b in a) == 1
    assert len(batch_plan(lengths, 8, 1, 0, drop_last=True)) == 103 // 8

    def padding(plan):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in plan)

    assert padding(a) < padding(batch_plan(lengths, 8, 1, 0, group_by_length=False)) / 3


def test_micro_batches_shard_the_global_batch():
    lengths = [5, 9, 1, 7, 3, 8]
    batch = [0, 1, 2, 3, 4, 5]
    assert micro_batches(batch, lengths, 2) == [[1, 5], [3, 0], [4, 2]]  # longest first
    r0 = micro_batches(batch, lengths, 2, rank=0, world=2)
    r1 = micro_batches(batch, lengths, 2, rank=1, world=2)
    assert sorted(i for mb in r0 + r1 for i in mb) == batch and len(r0) == len(r1) == 2


def test_collate_pairs_layout():
    a = PairExample([1, 2], [3, 4, 5], [1, 2], [6], margin=2.0, ref_chosen=-1.0, ref_rejected=-2.0)
    b = PairExample([7], [8], [7], [9, 9], margin=None, ref_chosen=-3.0, ref_rejected=-4.0)
    batch = collate_pairs([a, b], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5], [7, 8, 0, 0, 0], [1, 2, 6, 0, 0], [7, 9, 9, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 5, [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]
    assert batch["loss_mask"].tolist() == [[0, 0, 1, 1, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 0, 0]]
    assert batch["margin"][0].item() == 2.0 and torch.isnan(batch["margin"][1])
    assert batch["ref_logps"].tolist() == [-1.0, -3.0, -2.0, -4.0]
    assert "ref_logps" not in collate_pairs([PairExample([1], [2], [1], [3])], 0)


def test_load_pairs_with_chat_template(tokenizer, tmp_path):
    p = tmp_path / "pairs.jsonl"
    row = {"prompt": [{"role": "user", "content": "Name a colour."}],
           "chosen": [{"role": "assistant", "content": "Blue."}],
           "rejected": [{"role": "assistant", "content": "No."}], "chosen_score": 4, "rejected_score": 1}
    p.write_text(json.dumps(row) + "\n")
    pairs, stats = load_pairs(p, tokenizer, max_length=256, max_prompt_length=None, truncation="left")
    e = pairs[0]
    assert stats.used == 1 and e.margin == 3.0
    assert tokenizer.decode(e.chosen_prompt).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(e.chosen) == "Blue.<|im_end|>" and tokenizer.decode(e.rejected) == "No.<|im_end|>"
    assert e.chosen_prompt == e.rejected_prompt
    # other formats: llm-on-ray "instruction", OpenRLHF "reject"
    q = tmp_path / "openrlhf.jsonl"
    q.write_text(json.dumps({"instruction": "Say hi", "chosen": "Hi!", "reject": "Go away."}) + "\n")
    pairs, _ = load_pairs(q, tokenizer, max_length=256, max_prompt_length=None, truncation="left",
                          rejected_key="reject")
    assert tokenizer.decode(pairs[0].rejected) == "Go away.<|im_end|>"


def test_load_pairs_bad_records(tokenizer, tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({"prompt": "q", "chosen": "a"}) + "\n")
    with pytest.raises(DataError, match="pairs.jsonl:1"):
        load_pairs(p, tokenizer, max_length=256, max_prompt_length=None, truncation="left")


def test_load_sft_truncation_counts(tokenizer, tmp_path):
    p = tmp_path / "sft.jsonl"
    p.write_text("\n".join(json.dumps({"prompt": "word " * n, "completion": "ok"}) for n in (1, 40, 80)) + "\n")
    kw = dict(max_length=60, max_prompt_length=None)
    ex, st = load_sft(p, tokenizer, truncation="drop", **kw)
    assert (st.read, st.used, st.dropped_too_long, st.truncated) == (3, 1, 2, 0)
    ex, st = load_sft(p, tokenizer, truncation="left", **kw)
    assert (st.used, st.truncated) == (3, 2) and all(e.length <= 60 for e in ex)
    assert all(tokenizer.decode([i for i, m in zip(e.input_ids, e.loss_mask) if m]) == "ok<|im_end|>" for e in ex)


def test_split_validation_is_seeded():
    items = list(range(20))
    tr, ev = split_validation(items, 0.25, seed=3)
    assert len(ev) == 5 and sorted(tr + ev) == items
    assert split_validation(items, 0.25, seed=3) == (tr, ev)
    assert split_validation(items, 0.0, seed=3) == (items, [])
