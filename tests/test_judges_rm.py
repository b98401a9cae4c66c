"""Reward-model judge on the tiny sequence-classification fixture."""

from __future__ import annotations

import math

import pytest

from selfalign.errors import ConfigError
from selfalign.judges import build_judge

RECORDS = [
    {"id": "a", "prompt": "What is 2+2?", "responses": [{"text": "4"}, {"text": "It is four, of course."}]},
    {"id": "b", "prompt": [{"role": "user", "content": "Say hi."}], "responses": [{"text": "Hi!"}]},
]


def test_rm_judge_scores_match_reward_model(tiny_seq_cls):
    from selfalign.models.heads import load_reward_model

    j = build_judge({"type": "reward_model", "model": str(tiny_seq_cls), "batch_size": 1})
    out = j.score_records(RECORDS)
    scores = [r["score"] for rec in out for r in rec["responses"]]
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert len(set(scores)) == 3
    rm = load_reward_model(tiny_seq_cls)
    direct = rm.score([("What is 2+2?", "4"), ("What is 2+2?", "It is four, of course."),
                       ([{"role": "user", "content": "Say hi."}], "Hi!")])
    assert scores == pytest.approx(direct, abs=1e-5)
    # batched (padded) scoring gives the same rewards; an in-memory RM can be passed in
    j4 = build_judge({"type": "reward_model", "batch_size": 4}, model=rm)
    assert [r["score"] for rec in j4.score_records(RECORDS) for r in rec["responses"]] == pytest.approx(
        scores, abs=1e-4)
    s = j.stats()
    assert s["responses"] == 3 and s["parse_failures"] == 0 and s["unscored_responses"] == 0
    assert s["tie_rate"] == 0.0 and sum(s["score_histogram"].values()) == 3
    assert out[0]["responses"][0]["score_var"] == 0.0 and out[0]["responses"][0]["judgements"] == [
        {"score": scores[0]}]


def test_rm_judge_template_and_errors(tiny_seq_cls, tiny_model, tmp_path):
    t = tmp_path / "review.txt"
    t.write_text("Instruction: {prompt}\nOutput: {response}\nThe quality of the output is")
    j = build_judge({"type": "reward_model", "model": str(tiny_seq_cls), "template": str(t)})
    plain = build_judge({"type": "reward_model", "model": str(tiny_seq_cls)})
    a = [r["score"] for r in j.score_records(RECORDS[:1])[0]["responses"]]
    b = [r["score"] for r in plain.score_records(RECORDS[:1])[0]["responses"]]
    assert a != pytest.approx(b)  # a different input text gives different rewards
    with pytest.raises(ConfigError, match="not a reward model"):
        build_judge({"type": "reward_model", "model": str(tiny_model)})
    with pytest.raises(ConfigError, match="judge.model"):
        build_judge({"type": "reward_model"})
