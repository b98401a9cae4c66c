"""Pairwise principle judge: both-order agreement, orientation of (s12, s21), principles, tiny model."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from selfalign.errors import DataError
from selfalign.judges import build_judge
from selfalign.judges.pairwise_principle import (
    PairwisePrincipleJudge,
    PairwisePrincipleJudgeConfig,
    load_principles,
    preference_from_scores,
)

RECORDS = [
    {"id": "x", "prompt": "Explain rain.", "responses": [{"text": "plain answer"}, {"text": "GOOD answer"}]},
    {"id": "y", "prompt": "Explain snow.", "responses": [{"text": "GOOD snow"}, {"text": "weak snow"},
                                                         {"text": "meh snow"}]},
    {"id": "z", "prompt": "Alone.", "responses": [{"text": "only one"}]},
]

_A = re.compile(r"## Output \(a\)\n(.*?)\n\n## Output \(b\)", re.S)


def _content_fn(contexts):
    """Fake judge: label 'a' gets +2 when Output (a) contains GOOD, else 'b' gets +1 — a
    content-driven judge, so both orders agree."""
    out = []
    for c in contexts:
        a_text = _A.search(c).group(1)
        b_good = "GOOD" in c.split("## Output (b)")[1].split("## Principle")[0]
        lp_a = -1.0 + (2.0 if "GOOD" in a_text else 0.0)
        lp_b = -1.0 + (2.0 if b_good else 0.0) + (0.5 if "GOOD" not in a_text and not b_good else 0.0)
        out.append((lp_a, lp_b))
    return out


def _position_fn(contexts):
    """Fake judge that always prefers whatever is shown as Output (a)."""
    return [(-0.5, -1.5) for _ in contexts]


def _judge(fn, **kw):
    cfg = PairwisePrincipleJudgeConfig(only=["Concise", "Honest and Accurate"], **kw)
    return PairwisePrincipleJudge(cfg, logprob_fn=fn)


@pytest.mark.parametrize("s12,s21,pref", [(1.0, 0.5, 1), (-0.2, -3.0, 2), (1.0, -0.5, 0), (-1.0, 2.0, 0),
                                          (0.0, 1.0, 0), (0.0, 0.0, 0)])
def test_preference_from_scores(s12, s21, pref):
    assert preference_from_scores(s12, s21) == pref


def test_content_driven_judge_is_consistent():
    j = _judge(_content_fn)
    out = j.score_records(RECORDS[:1])
    comps = out[0]["comparisons"]
    assert len(comps) == 2  # one pair × two principles
    for c in comps:
        assert (c["i"], c["j"]) == (0, 1)
        assert c["s12"] < 0 and c["s21"] < 0  # both oriented toward response 1 (= index 0): negative
        assert c["preference"] == 2
    good, plain = out[0]["responses"][1], out[0]["responses"][0]
    assert good["score"] == 1.0 and plain["score"] == 0.0
    assert [x["vs"] for x in good["judgements"]] == [0, 0]
    s = j.stats()
    assert s["position_consistency"] == 1.0 and s["tie_rate"] == 0.0 and s["comparisons"] == 2
    assert s["label_mass_mean"] == pytest.approx(math.exp(1.0) + math.exp(-1.0))


def test_position_biased_judge_is_inconsistent():
    j = _judge(_position_fn, pairs="all")
    out = j.score_records(RECORDS)
    assert all(c["preference"] == 0 for rec in out for c in rec["comparisons"])
    c = out[0]["comparisons"][0]
    assert c["s12"] == pytest.approx(1.0) and c["s21"] == pytest.approx(-1.0)
    assert all(r["score"] == 0.5 for r in out[0]["responses"])
    s = j.stats()
    assert s["position_consistency"] == 0.0 and s["tie_rate"] == 1.0
    assert s["comparisons"] == (1 + 3) * 2  # pairs: record x 1, record y 3; × 2 principles
    assert s["judgements"] == 2 * s["comparisons"]


def test_all_pairs_and_single_response_records():
    j = _judge(_content_fn, pairs="all")
    out = j.score_records(RECORDS)
    y = out[1]
    assert {(c["i"], c["j"]) for c in y["comparisons"]} == {(0, 1), (0, 2), (1, 2)}
    assert y["responses"][0]["score"] == 1.0  # GOOD beats both others under both principles
    z = out[2]
    assert z["comparisons"] == [] and z["responses"][0]["score"] is None
    assert j.stats()["unscored_responses"] == 1
    first = _judge(_content_fn).score_records(RECORDS[1:2])[0]
    assert {(c["i"], c["j"]) for c in first["comparisons"]} == {(0, 1)}
    assert first["responses"][2]["score"] is None


def test_shipped_and_user_principles(tmp_path):
    judging, rl, inter = load_principles("judging"), load_principles("rl"), load_principles("intervention")
    assert len(judging) == 11 and len(rl) == 14 and len(inter) == 3
    assert {"Overall Helpful", "Concise", "Honest and Accurate", "Multilingual", "Comprehensive"} <= {
        p.name for p in judging}
    assert {"Consistent Reasoning", "Numerical Sensitive", "Privacy Protection", "Candor", "Stand-Alone"} <= {
        p.name for p in rl}
    assert all(p.definition and p.negative_definition and p.weight > 0 for p in judging + rl + inter)
    mine = tmp_path / "p.json"
    mine.write_text(json.dumps([{"name": "Brief", "definition": "Short."}]))
    assert [p.name for p in load_principles(str(mine))] == ["Brief"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"principles": [{"name": "X"}]}))
    with pytest.raises(DataError, match="definition"):
        load_principles(str(bad))
    with pytest.raises(DataError, match="shipped"):
        load_principles("nope")
    with pytest.raises(DataError, match="unknown principle"):
        PairwisePrincipleJudge(PairwisePrincipleJudgeConfig(only=["Nope"]))


def test_prompt_names_principle_and_ends_with_prefix(tokenizer):
    j = PairwisePrincipleJudge(PairwisePrincipleJudgeConfig(only=["Concise"]), tokenizer=tokenizer)
    ctx = j.context("Q?", "first", "second", j.principles[0])
    assert ctx.endswith("the more concise output is Output (")
    assert "## Output (a)\nfirst" in ctx and "## Output (b)\nsecond" in ctx
    assert j.principles[0].definition in ctx


def test_tiny_model_logits(tiny_model):
    j = build_judge({"type": "pairwise_principle", "model": str(tiny_model), "only": ["Concise", "Ethical"],
                     "batch_size": 3})
    out = j.score_records(RECORDS[:2])
    comps = [c for rec in out for c in rec["comparisons"]]
    assert len(comps) == 4
    assert all(math.isfinite(c["s12"]) and math.isfinite(c["s21"]) for c in comps)
    assert all(c["preference"] == preference_from_scores(c["s12"], c["s21"]) for c in comps)
    s = j.stats()
    assert 0.0 <= s["position_consistency"] <= 1.0


def test_shared_prefix_scoring_equals_one_pass_per_context(tiny_model):
    """The KV-cached shared prefix (one pair in one order under every principle) gives the same
    log-probs as one full forward pass per context."""
    from selfalign.models.load import load_causal_lm, load_tokenizer
    from selfalign.models.scoring import answer_logprobs

    tok, lm = load_tokenizer(str(tiny_model)), load_causal_lm(str(tiny_model))
    judge = build_judge({"type": "pairwise_principle", "only": ["Concise", "Ethical", "Creative"]},
                        model=lm, tokenizer=tok)
    recs = [{"id": "x", "prompt": "Name a fruit.", "responses": [{"text": "An apple, crisp."}, {"text": "Pear"}]},
            {"id": "y", "prompt": "Say hi.", "responses": [{"text": "Hi there!"}, {"text": "Hello, friend."}]}]
    contexts = [judge.context(r["prompt"], a, b, p) for r in recs
                for p in judge.principles
                for a, b in ((r["responses"][0]["text"], r["responses"][1]["text"]),
                             (r["responses"][1]["text"], r["responses"][0]["text"]))]
    n = len(judge.principles)
    groups = [list(range(s + o, s + 2 * n, 2)) for s in range(0, len(contexts), 2 * n) for o in (0, 1)]
    full = answer_logprobs(lm, tok, contexts, ["a", "b"], batch_size=4)
    shared = answer_logprobs(lm, tok, contexts, ["a", "b"], batch_size=2, groups=groups)
    assert torch.allclose(full, shared, atol=1e-4), (full - shared).abs().max()
    via_judge = [x for pair in judge._logprobs(contexts) for x in pair]
    assert via_judge == pytest.approx(shared.flatten().tolist(), abs=1e-4)
