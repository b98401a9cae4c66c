"""Rubric judge: score parsing, sample-mode aggregation, expected mode, templates, registry, CLI."""

from __future__ import annotations

import json
import math

import pytest

from selfalign.errors import ConfigError
from selfalign.judges import JudgeStats, build_judge, parse_judge_config
from selfalign.judges.rubric import RubricJudge, RubricJudgeConfig, expected_score, parse_score
from selfalign.judges.templates import fill_template, prompt_text
from selfalign.models.scoring import continuation_ids

RECORDS = [
    {"id": "r1", "prompt": "What is 2+2?", "meta": {"k": 1},
     "responses": [{"text": "4", "finish": "stop", "num_tokens": 2},
                   {"text": "It is five.", "finish": "stop", "num_tokens": 4}]},
    {"id": "r2", "prompt": [{"role": "user", "content": "Say hi."}],
     "responses": [{"text": "Hi!", "finish": "length", "num_tokens": 3}]},
]


# ------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("text,expected", [
    ("Good answer.\nScore: 4", 4.0),                       # valid
    ("score: 2.5", 2.5),                                   # case-insensitive, fractional
    ("Score: 4.", 4.0),                                    # trailing full stop
    ("Score: 7", None),                                    # out of range
    ("Score: -1", None),                                   # no number matched (sign not allowed)
    ("I would give it four points", None),                 # missing
    ("Score: 9 ... later Points: 3 and Score: 2", 3.0),    # several → first valid match
    ("Score: ... then Score: 5", 5.0),                     # unparsable number skipped
    ("Score: 1.2.3\nScore: 0", 0.0),
])
def test_parse_score(text, expected):
    assert parse_score(text) == expected


def test_parse_score_custom_regex_and_range():
    assert parse_score("Rating=8/10", r"Rating=([0-9]+)/10", 0, 10) == 8.0
    assert parse_score("Rating=11/10", r"Rating=([0-9]+)/10", 0, 10) is None


def test_expected_score_by_hand():
    probs = [0.0, 0.1, 0.1, 0.2, 0.2, 0.2]  # mass 0.8 on valid tokens
    lps = [math.log(p) if p > 0 else -1e9 for p in probs]
    score, mass, var, table = expected_score(lps, [0, 1, 2, 3, 4, 5])
    mean = (1 * 0.1 + 2 * 0.1 + 3 * 0.2 + 4 * 0.2 + 5 * 0.2) / 0.8
    assert score == pytest.approx(mean)
    assert mass == pytest.approx(0.8)
    assert var == pytest.approx(sum(p * (v - mean) ** 2 for v, p in enumerate(probs)) / 0.8)
    assert set(table) == {"0", "1", "2", "3", "4", "5"}


# -------------------------------------------------------------------------------------- config/regs
def test_config_validation_and_registry():
    cfg = parse_judge_config({"type": "rubric", "mode": "expected"})
    assert isinstance(cfg, RubricJudgeConfig) and cfg.values() == [0, 1, 2, 3, 4, 5]
    with pytest.raises(ConfigError, match="judge.modle"):
        parse_judge_config({"type": "rubric", "modle": "x"})
    with pytest.raises(ConfigError, match="capture group"):
        parse_judge_config({"type": "rubric", "score_regex": "Score: [0-9]"})
    with pytest.raises(ConfigError, match="unknown judge type"):
        parse_judge_config({"type": "nope"})
    with pytest.raises(ConfigError, match="judge.model"):
        build_judge({"type": "rubric"})


def test_templates_and_prompt_text(tmp_path):
    assert fill_template("{prompt}|{response}|{x}", prompt="a {response}", response="b") == "a {response}|b|{x}"
    assert prompt_text("q") == "q"
    assert prompt_text([{"role": "user", "content": "q"}]) == "q"
    assert prompt_text([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                        {"role": "user", "content": "c"}]) == "User: a\n\nAssistant: b\n\nUser: c"
    bad = tmp_path / "t.txt"
    bad.write_text("only {prompt}")
    with pytest.raises(ConfigError, match="response"):
        RubricJudge(RubricJudgeConfig(template=str(bad)))
    good = tmp_path / "g.txt"
    good.write_text("Q={prompt} R={response}")
    j = RubricJudge(RubricJudgeConfig(template=str(good)))
    assert j.judge_prompt("hi", {"text": "yo"}) == "Q=hi R=yo"


# ---------------------------------------------------------------------------------------- sample mode
def test_sample_mode_aggregates_valid_scores_only():
    canned = {"4": ["Fine. Score: 4", "Score: 2", "no score at all"],
              "It is five.": ["Score: 9", "junk", "Points: 1"],
              "Hi!": ["nothing", "nothing", "nothing"]}
    seen_keys = []

    def fake(texts, keys):
        seen_keys.extend(keys)
        return [canned[next(r for r in canned if f"<response>\n{r}\n</response>" in t)] for t in texts]

    j = RubricJudge(RubricJudgeConfig(num_evals=3), generate_fn=fake)
    out = j.score_records(RECORDS)
    a, b = out[0]["responses"]
    assert a["score"] == 3.0 and a["score_var"] == 1.0
    assert [x["score"] for x in a["judgements"]] == [4.0, 2.0, None]
    assert b["score"] == 1.0 and b["score_var"] == 0.0
    assert out[1]["responses"][0]["score"] is None and out[1]["responses"][0]["score_var"] is None
    assert out[0]["meta"] == {"k": 1} and out[0]["id"] == "r1"
    assert "score" not in RECORDS[0]["responses"][0]  # inputs untouched
    assert len(set(seen_keys)) == 3
    s = j.stats()
    assert s["judgements"] == 9 and s["parse_failures"] == 6
    assert s["parse_failure_rate"] == pytest.approx(6 / 9)
    assert s["unscored_responses"] == 1
    assert s["score_histogram"] == {"1": 1, "3": 1}
    assert s["tie_rate"] == 0.0  # r1 has 2 scored responses with different scores; r2 has 1


def test_stats_tie_rate():
    st = JudgeStats("x")
    st.add_record_scores([3.0, 3.0, None])
    st.add_record_scores([1.0, 2.0])
    st.add_record_scores([None, 4.0])
    assert st.as_dict()["tie_rate"] == 0.5


def test_sample_mode_on_tiny_model_is_seeded(tiny_model):
    cfg = {"type": "rubric", "model": str(tiny_model), "num_evals": 2, "max_new_tokens": 6, "seed": 1}
    j = build_judge(cfg)
    out1 = j.score_records(RECORDS[:1])
    out2 = build_judge(cfg).score_records(RECORDS[:1])
    js = out1[0]["responses"][0]["judgements"]
    assert len(js) == 2 and all(isinstance(x["text"], str) for x in js)
    assert out1 == out2
    assert j.stats()["judgements"] == 4


# -------------------------------------------------------------------------------------- expected mode
def test_continuation_ids_single_tokens(tokenizer):
    ctx, ids = continuation_ids(tokenizer, "Verdict. Score: ", [str(v) for v in range(6)])
    assert len(set(ids)) == 6
    for v, i in zip(range(6), ids):
        assert tokenizer(ctx + str(v), add_special_tokens=False)["input_ids"][-1] == i
    with pytest.raises(ConfigError):
        continuation_ids(tokenizer, "Score: ", ["10", "200000"])


def test_expected_mode_on_tiny_model(tiny_model, tokenizer):
    from selfalign.models.load import load_causal_lm

    lm = load_causal_lm(tiny_model)
    j = build_judge({"type": "rubric", "mode": "expected", "batch_size": 1}, model=lm, tokenizer=tokenizer)
    out = j.score_records(RECORDS)
    scores = [r["score"] for rec in out for r in rec["responses"]]
    assert all(0.0 <= s <= 5.0 for s in scores)
    for rec in out:
        for r in rec["responses"]:
            (jd,) = r["judgements"]
            assert 0.0 < jd["valid_mass"] <= 1.0
            assert sum(jd["probs"].values()) == pytest.approx(jd["valid_mass"])
            assert r["score_var"] == pytest.approx(jd["dist_var"])
    s = j.stats()
    assert s["parse_failures"] == 0 and s["judgements"] == 3
    assert 0.0 < s["valid_mass_mean"] <= 1.0
    # batching (left padding + position ids) does not change the scores
    j4 = build_judge({"type": "rubric", "mode": "expected", "batch_size": 4}, model=lm, tokenizer=tokenizer)
    scores4 = [r["score"] for rec in j4.score_records(RECORDS) for r in rec["responses"]]
    assert scores4 == pytest.approx(scores, abs=1e-4)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_judge_expected(tiny_model, tmp_path):
    from selfalign.cli import main

    inp = tmp_path / "cand.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    out = tmp_path / "scored.jsonl"
    code = 0
    try:
        main(["judge", f"input={inp}", f"output={out}", "judge.type=rubric", f"judge.model={tiny_model}",
              "judge.mode=expected"])
    except SystemExit as e:
        code = int(e.code or 0)
    assert code == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and all(r["score"] is not None for x in rows for r in x["responses"])
    stats = json.loads((tmp_path / "scored.stats.json").read_text())
    assert stats["parse_failure_rate"] == 0.0 and "valid_mass_mean" in stats and "score_histogram" in stats
    # meta judge on unscored input: a one-line data error naming the line
    try:
        main(["judge", f"input={inp}", f"output={tmp_path / 'm.jsonl'}", "judge.type=meta"])
    except SystemExit as e:
        code = int(e.code or 0)
    assert code == 1


# -------------------------------------------------------------------------------------- reasoned mode
def test_next_token_logprobs_with_top(tiny_model, tokenizer):
    import torch

    from selfalign.models.load import load_causal_lm
    from selfalign.models.scoring import next_token_logprobs

    lm = load_causal_lm(tiny_model)
    texts = ["Score: ", "A longer context. Score: "]
    lp = next_token_logprobs(lm, tokenizer, texts, [15, 16], batch_size=2, with_top=True)
    assert lp.shape == (2, 3)
    for i, t in enumerate(texts):
        ids = torch.tensor([tokenizer(t, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            full = torch.log_softmax(lm(input_ids=ids).logits[0, -1].float(), -1)
        assert lp[i, :2].tolist() == pytest.approx(full[[15, 16]].tolist(), abs=1e-4)
        assert lp[i, 2].item() == pytest.approx(full.max().item(), abs=1e-4)


def test_reasoned_mode_scores_by_hand(monkeypatch):
    """Score = the value token ranked highest; a judge whose first choice is not a value fails."""
    judges = ["Clear and correct.", "Misses the point.", "Rambles."]
    j = RubricJudge(RubricJudgeConfig(mode="reasoned", num_evals=3),
                    generate_fn=lambda texts, keys: [judges for _ in texts])
    ninf = -50.0
    rows = {  # value log-probs for 0..5, then the vocabulary's top log-prob
        "Clear and correct.\n": [ninf, ninf, ninf, -2.0, -0.5, -1.0, -0.5],   # 4 is the top token
        "Misses the point.\n": [ninf, -0.2, -2.0, ninf, ninf, ninf, -0.2],    # 1
        "Rambles.\n": [-3.0, ninf, ninf, ninf, ninf, ninf, -0.1],             # top is not a score
    }
    seen = []

    def fake(texts, continuations, label, with_top=False):
        import torch

        assert with_top and label == "reasoned"
        seen.extend(continuations)
        return torch.tensor([rows[c] for c in continuations])

    monkeypatch.setattr(j, "_score_logprobs", fake)
    out = j.score_records(RECORDS[:1])
    assert len(seen) == 6  # 2 responses × 3 judgements
    for r in out[0]["responses"]:
        js = r["judgements"]
        assert [x["score"] for x in js] == [4.0, 1.0, None]
        assert js[0]["text"] == "Clear and correct.\nScore: 4" and js[2]["text"] == "Rambles."
        assert r["score"] == pytest.approx(2.5) and r["score_var"] == pytest.approx(2.25)
    s = j.stats()
    assert s["judgements"] == 6 and s["parse_failures"] == 2


def test_reasoned_mode_on_tiny_model(tiny_model, tokenizer):
    from selfalign.judges.templates import render_user_turn
    from selfalign.models.load import load_causal_lm
    from selfalign.models.scoring import next_token_logprobs

    lm = load_causal_lm(tiny_model)
    j = build_judge({"type": "rubric", "mode": "reasoned", "num_evals": 2, "max_new_tokens": 5, "seed": 3},
                    model=lm, tokenizer=tokenizer)
    out = j.score_records(RECORDS[:1])
    js = out[0]["responses"][0]["judgements"]
    assert len(js) == 2
    # recompute the first judgement's verdict by hand from the model's next-token distribution
    just = js[0]["text"].split("\nScore: ")[0] if js[0]["score"] is not None else js[0]["text"]
    ctx = render_user_turn(tokenizer, j.judge_prompt(RECORDS[0]["prompt"], RECORDS[0]["responses"][0]))[0]
    _, ids = continuation_ids(tokenizer, ctx + just + "\nScore: ", [str(v) for v in range(6)])
    row = next_token_logprobs(lm, tokenizer, [ctx + just + "\nScore:"], ids, with_top=True)[0].tolist()
    ok = max(row[:-1]) >= row[-1] - 1e-6
    assert (js[0]["score"] is not None) == ok
    if ok:
        assert js[0]["score"] == float(max(range(6), key=lambda k: row[k]))
    s = j.stats()
    assert s["judgements"] == 4 and 0 <= s["parse_failures"] <= 4
    assert 0.0 < s["valid_mass_mean"] <= 1.0
