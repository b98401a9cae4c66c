"""Meta-judge: Elo fit, both-order outcomes, index alignment, comparison set, response selection,
skip reasons, margins, length limits, seeding, class balance, statistics."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from selfalign.errors import ConfigError
from selfalign.judges import build_judge
from selfalign.judges.meta import (
    DEFAULT_WINNER_REGEX,
    MetaJudge,
    MetaJudgeConfig,
    balance_by_chosen_score,
    both_order_outcome,
    default_expected_prefix,
    elo_from_wins,
    elo_theta,
    judgement_problem,
    parse_winner,
    score_variance,
    strip_score,
)


# ----------------------------------------------------------------------------------------------- Elo
def test_elo_ordering_and_symmetry():
    w = np.array([[0, 3, 3, 2],
                  [0, 0, 2, 1],
                  [0, 1, 0, 2],
                  [0, 0, 0, 0]], dtype=float)
    elo = elo_from_wins(w)
    assert list(np.argsort(-elo)) == [0, 1, 2, 3]
    assert elo.mean() == pytest.approx(1000.0, abs=1e-6)  # the L2 fit centres the ratings
    assert elo_from_wins(w.T) == pytest.approx(2000.0 - elo, abs=1e-6)  # swap winners ↔ mirror
    perm = [2, 0, 3, 1]
    assert elo_from_wins(w[np.ix_(perm, perm)]) == pytest.approx(elo[perm], abs=1e-6)  # relabelling


def test_elo_ties_and_empty():
    assert elo_from_wins(np.zeros((3, 3))) == pytest.approx([1000.0] * 3)
    half = np.full((3, 3), 0.5) - np.diag([0.5] * 3)
    assert elo_from_wins(half) == pytest.approx([1000.0] * 3, abs=1e-6)
    with pytest.raises(ValueError):
        elo_from_wins(np.zeros((2, 3)))


def test_elo_logistic_model_matches_win_rate():
    # i beats j 3 of 4 times: P(i beats j) = σ((elo_i − elo_j)/400) should approach 0.75 with weak L2
    elo = elo_from_wins(np.array([[0, 3], [1, 0]]), C=1e6)
    p = 1 / (1 + np.exp(-(elo[0] - elo[1]) / 400))
    assert p == pytest.approx(0.75, abs=1e-3)
    # θ = (Elo − 1000)/400 is the Bradley-Terry logit: σ(θ_0 − θ_1) is the same probability
    assert 1 / (1 + np.exp(-(elo_theta(elo[0]) - elo_theta(elo[1])))) == pytest.approx(p)
    assert elo_theta(1000.0) == 0.0 and elo_theta(1400.0) == 1.0


# ------------------------------------------------------------------------------------------- parsing
def test_parse_strip_outcome():
    assert parse_winner("blah\nWinner: Judgement B") == "B"
    assert parse_winner("winner: judgement a.") == "A"
    assert parse_winner("**Winner:** Judgement A") == "A"
    assert parse_winner("Winner: Judgement C") is None and parse_winner("no verdict") is None
    assert strip_score("Good points.\nScore: 4") == "Good points."
    assert "Score" not in strip_score("score: 3 then more text")
    assert both_order_outcome("A", "B") == 1 and both_order_outcome("B", "A") == 2
    assert both_order_outcome("A", "A") == 0 and both_order_outcome(None, "B") == 0


def test_parse_winner_both_spellings_and_custom_regex():
    assert parse_winner("Winner: Judgment B") == "B" and parse_winner("Winner: Judgement B") == "B"
    assert parse_winner("Winner: **Judgment A**") == "A"
    assert parse_winner("Winner: Judgments A") is None  # not a spelling of the verdict
    assert parse_winner("Better: [[B]]", r"Better:\s*\[\[([AB])\]\]") == "B"
    assert parse_winner("Better: [[C]]", r"Better:\s*\[\[(\w)\]\]") is None  # only A or B count
    j = MetaJudge(MetaJudgeConfig(winner_regex=r"Better:\s*\[\[([AB])\]\]", max_class_frac=1.0),
                  generate_fn=lambda texts, keys: [
                      "Better: [[A]]" if _quality(_JA.search(t).group(1)) >= _quality(_JB.search(t).group(1))
                      else "Better: [[B]]" for t in texts])
    (pair,) = j.score_records([_scored_record()])
    assert pair["chosen"].startswith("EXCELLENT") and j.stats()["parse_failures"] == 0


def test_expected_prefix_follows_template(tmp_path):
    shipped = MetaJudge(MetaJudgeConfig(mode="expected"))
    assert shipped.expected_prefix == "Winner: Judgement "  # the shipped template spells "Judgement"
    assert "Winner: Judgement A" in shipped.template
    american = tmp_path / "us.txt"
    american.write_text("{judge_prompt}\n{judgement_a}\n{judgement_b}\nEnd with \"Winner: Judgment A\" or "
                        "\"Winner: Judgment B\".")
    assert default_expected_prefix(american.read_text()) == "Winner: Judgment "
    assert MetaJudge(MetaJudgeConfig(mode="expected", template=str(american))).expected_prefix == "Winner: Judgment "
    assert default_expected_prefix("Judgement A or Judgment B") == "Winner: Judgement "  # mixed → shipped
    assert MetaJudge(MetaJudgeConfig(mode="expected", expected_prefix="Winner: Judgement ")).expected_prefix \
        == "Winner: Judgement "
    with pytest.raises(ConfigError, match="expected_prefix"):  # the prefix must agree with the regex
        MetaJudge(MetaJudgeConfig(mode="expected", expected_prefix="Verdict: "))
    # generate mode never uses the prefix, so it is not checked there
    MetaJudge(MetaJudgeConfig(expected_prefix="Verdict: "))


def test_config_errors_are_one_line():
    for bad in ({"winner_regex": "Winner: [AB]"}, {"score_regex": "(unclosed"}, {"max_length": 1},
                {"max_class_frac": 0.0}):
        with pytest.raises(ConfigError) as e:
            build_judge({"type": "meta", **bad})
        assert "\n" not in str(e.value).strip(), str(e.value)
    with pytest.raises(ConfigError, match="no_such_template"):
        MetaJudge(MetaJudgeConfig(judge_template="no_such_template"))
    with pytest.raises(ConfigError, match="tokenizer"):  # lengths are counted in the judge LM's tokens
        MetaJudge(MetaJudgeConfig(max_length=512))


# ------------------------------------------------------------------------------------------- balance
def test_balance_by_chosen_score():
    pairs = [{"id": i, "chosen_score": s} for i, s in enumerate([5] * 10 + [4] * 3 + [3] * 3 + [2] * 2)]
    kept = balance_by_chosen_score(pairs, 0.4, seed=1)
    counts = Counter(p["chosen_score"] for p in kept)
    assert max(counts.values()) <= 0.4 * len(kept)
    # only the big class shrinks, to the largest n with n ≤ 0.4 (8 + n): n = 5
    assert counts == {5: 5, 4: 3, 3: 3, 2: 2}
    assert [p["id"] for p in kept] == sorted(p["id"] for p in kept)  # input order kept
    assert kept == balance_by_chosen_score(pairs, 0.4, seed=1)
    balanced = [{"chosen_score": s} for s in [1, 2, 3, 4, 5]]
    assert balance_by_chosen_score(balanced, 0.4) == balanced
    assert balance_by_chosen_score([], 0.4) == []


def test_balance_relative_cap_by_hand():
    def counts(scores, max_frac, seed=0):
        kept = balance_by_chosen_score([{"chosen_score": s} for s in scores], max_frac, seed)
        return dict(Counter(p["chosen_score"] for p in kept))

    # 2 classes < ⌈1/0.4⌉ = 3: cap f = max(0.4, 1/2) = 0.5 → 6 fives shrink to n ≤ 0.5 (2 + n): n = 2
    assert counts([5] * 6 + [4] * 2, 0.4) == {5: 2, 4: 2}
    assert counts([5, 4] * 3, 0.4) == {5: 3, 4: 3}  # already an even split
    assert counts([5] * 4, 0.4) == {5: 4}  # one class: f = 1, everything kept
    # 3 classes, max_frac 0.4 ≥ 1/3: n ≤ 0.4 (2 + n) → n = 1
    assert counts([5] * 5 + [4, 3], 0.4) == {5: 1, 4: 1, 3: 1}
    # max_frac 0.2 with 3 classes: f = 1/3; fives drop to 2 (2/5 > 1/3 still), the tie between the
    # largest classes goes to the class met first (5), then the fours: 1 + 1 + 1
    assert counts([5] * 5 + [4] * 2 + [3], 0.2) == {5: 1, 4: 1, 3: 1}
    # 4 classes with max_frac 0.2: f = 1/4 → 3 + 3 + 3 + 3 of {5: 9, 4: 3, 3: 3, 2: 3}
    assert counts([5] * 9 + [4] * 3 + [3] * 3 + [2] * 3, 0.2) == {5: 3, 4: 3, 3: 3, 2: 3}
    # the key picks the class
    pairs = [{"meta": {"s": s}} for s in [1] * 4 + [2]]
    assert len(balance_by_chosen_score(pairs, 0.4, key=lambda p: p["meta"]["s"])) == 2


def test_balance_property_random():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pairs = [{"chosen_score": int(s)} for s in rng.integers(1, 6, size=int(rng.integers(1, 40)))]
        frac = float(rng.choice([0.2, 0.3, 0.4, 0.6]))
        kept = balance_by_chosen_score(pairs, frac, seed=int(rng.integers(100)))
        k = len({p["chosen_score"] for p in pairs})
        c = Counter(p["chosen_score"] for p in kept)
        assert kept and len(c) == k  # never empty, no class lost
        assert max(c.values()) <= max(frac, 1 / k) * len(kept) + 1e-9
        # minimal: putting back one pair of the largest class would break the cap
        big = max(c.values())
        if big < Counter(p["chosen_score"] for p in pairs)[max(c, key=c.get)]:
            assert big + 1 > max(frac, 1 / k) * (len(kept) + 1) + 1e-9


# ------------------------------------------------------------------------------------------ the judge
_RANK = {"EXCELLENT": 3, "fine": 2, "poor": 1}
_JA = re.compile(r"<judgement_a>\n(.*?)\n</judgement_a>", re.S)
_JB = re.compile(r"<judgement_b>\n(.*?)\n</judgement_b>", re.S)


def _quality(text):
    return max((v for k, v in _RANK.items() if k in text), default=0)


def _content_meta(texts, keys):
    """Fake meta-judge: the judgement with the better keyword wins, in either position."""
    out = []
    for t in texts:
        a, b = _JA.search(t).group(1), _JB.search(t).group(1)
        assert "Score:" not in a and "Score:" not in b  # numeric scores were stripped
        out.append("Winner: Judgement A" if _quality(a) >= _quality(b) else "Reasoning...\nWinner: Judgment B")
    return out


def _position_meta(texts, keys):
    return ["Winner: Judgement A"] * len(texts)


class _Recorder:
    """A generate_fn that remembers every text it was asked about."""

    def __init__(self, fn=_content_meta):
        self.fn, self.texts, self.keys = fn, [], []

    def __call__(self, texts, keys):
        self.texts += texts
        self.keys += keys
        return self.fn(texts, keys)


def _rec(rid, judgements_per_response, finishes=None):
    resps = [{"text": f"answer {k}", "judgements": js} for k, js in enumerate(judgements_per_response)]
    for r, f in zip(resps, finishes or [], strict=False):
        r["finish"] = f
    return {"id": rid, "prompt": f"Question {rid}?", "responses": resps}


def _scored_record():
    low_var = [{"text": "fine Score: 3", "score": 3.0}, {"text": "fine Score: 3", "score": 3.0}]
    high_var = [{"score": None},  # no text (e.g. an expected-mode judgement): must not shift indices
                {"text": "poor reasoning Score: 1", "score": 1.0},
                {"text": "EXCELLENT reasoning Score: 5", "score": 5.0},
                {"text": "fine reasoning Score: 3", "score": 3.0}]
    return _rec("a", [low_var, high_var])


def test_meta_pair_is_aligned_with_original_judgements():
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta)
    (pair,) = j.score_records([_scored_record()])
    assert pair["chosen"] == "EXCELLENT reasoning Score: 5"
    assert pair["rejected"] == "poor reasoning Score: 1"
    m = pair["meta"]
    assert m["chosen_judgement_score"] == 5.0 and m["rejected_judgement_score"] == 1.0
    assert m["kind"] == "meta_judge" and m["source_id"] == "a" and m["response_index"] == 1
    assert m["judgement_indices"] == [2, 1]  # positions in the original judgements list
    assert set(m["elo"]) == {"1", "2", "3"} and m["elo"]["2"] > m["elo"]["3"] > m["elo"]["1"]
    assert "Question a?" in pair["prompt"] and "answer 1" in pair["prompt"]
    s = j.stats()
    assert s["judgements"] == 6 and s["parse_failures"] == 0  # 3 judgement pairs × 2 orders
    assert s["position_consistency"] == 1.0 and s["meta_pairs"] == 1
    assert s["excluded_unparsed"] == 1 and s["judged_prompts"] == 1


def test_custom_main_judge_template_and_score_regex(tmp_path):
    tpl = tmp_path / "mine.txt"
    tpl.write_text("GRADE THIS. Q: {prompt} A: {response} End with Rating=<n>.")
    rec = _rec("c", [[{"text": "poor. Rating=1", "score": 1.0}, {"text": "EXCELLENT. Rating=4", "score": 4.0}]])
    gen = _Recorder(lambda texts, keys: ["Winner: Judgement B", "Winner: Judgement A"] * (len(texts) // 2))
    j = MetaJudge(MetaJudgeConfig(judge_template=str(tpl), score_regex=r"Rating=(\d)", max_class_frac=1.0),
                  generate_fn=gen)
    (pair,) = j.score_records([rec])
    assert pair["prompt"] == "GRADE THIS. Q: Question c? A: answer 0 End with Rating=<n>."
    assert len(gen.texts) == 2
    for t in gen.texts:
        task = t.split("<evaluation_task>\n")[1].split("\n</evaluation_task>")[0]
        assert task == pair["prompt"]  # the meta-judge saw the main judge's own task
        assert "Rating=1" not in t and "Rating=4" not in t  # the main judge's scores were stripped
        assert "Rating=<n>" in t
    assert pair["chosen"] == "EXCELLENT. Rating=4" and pair["rejected"] == "poor. Rating=1"


def test_unparsed_and_unfinished_judgements_are_excluded_not_fatal():
    rec = _rec("u", [[{"text": "poor Score: 1", "score": 1.0},
                      {"text": "no number at all", "score": None},
                      {"text": "EXCELLENT Score: 5", "score": 5.0, "finish": "stop"},
                      {"text": "fine Score: 3 and then it went on and o", "score": 3.0, "finish": "length"},
                      {"text": "fine Score: 2", "score": float("nan")},
                      {"text": "fine Score: 2", "score": 2.0}]])
    gen = _Recorder()
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=gen)
    (pair,) = j.score_records([rec])
    assert pair["chosen"] == "EXCELLENT Score: 5" and pair["rejected"] == "poor Score: 1"
    assert set(pair["meta"]["elo"]) == {"0", "2", "5"}  # only parsed, finished judgements are ranked
    assert len(gen.texts) == 6  # C(3, 2) pairs × 2 orders
    s = j.stats()
    assert s["excluded_unparsed"] == 2 and s["excluded_unfinished"] == 1 and s["excluded_too_long"] == 0
    assert [judgement_problem(x) for x in rec["responses"][0]["judgements"]] == \
        [None, "unparsed", None, "unfinished", "unparsed", None]
    assert judgement_problem({"text": "x", "score": True}) == "unparsed"


def test_selection_and_skip_reasons_before_generating():
    hi = [{"text": "EXCELLENT Score: 5", "score": 5.0}, {"text": "poor Score: 1", "score": 1.0}]
    mid = [{"text": "fine Score: 4", "score": 4.0}, {"text": "poor Score: 3", "score": 3.0}]
    same = [{"text": "fine Score: 3", "score": 3.0}, {"text": "poor Score: 3", "score": 3.0}]
    one = [{"text": "fine Score: 3", "score": 3.0}, {"text": "nothing", "score": None}]
    recs = [_rec("unfinished", [hi], ["length"]),
            _rec("few", [one, hi], [None, "length"]),
            _rec("agree", [same, one, hi], ["stop", "stop", "length"]),
            _rec("empty", []),
            _rec("mixed", [hi, mid, same], ["length", "stop", "stop"])]
    gen = _Recorder()
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=gen)
    (pair,) = j.score_records(recs)
    assert pair["meta"]["source_id"] == "mixed" and pair["meta"]["response_index"] == 1  # finished, Var > 0
    assert len(gen.texts) == 2 and all(k.startswith("mixed\x1f1\x1f") for k in gen.keys)  # only the picked one
    s = j.stats()
    assert s["skipped_no_finished_response"] == 2  # "unfinished" and "empty"
    assert s["skipped_few_valid_judgements"] == 1 and s["skipped_no_disagreement"] == 1
    assert s["skipped_too_long"] == 0 and s["judged_prompts"] == 1 and s["records"] == 5
    # the highest variance wins among finished responses; ties → the lower index
    assert MetaJudge.select_response(_rec("v", [mid, hi, hi]))[:2] == (1, [0, 1])
    assert MetaJudge.select_response(_rec("e", [[{"text": "x", "score": 3.0}]])) == \
        (None, [], "skipped_few_valid_judgements")
    assert score_variance([1.0, 5.0]) == 4.0 and score_variance([0.1] * 3) == 0.0


def test_meta_drop_rules():
    tie = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_position_meta)
    assert tie.score_records([_scored_record()]) == []
    st = tie.stats()
    assert st["dropped_elo_tie"] == 1 and st["position_consistency"] == 0.0 and st["tie_rate"] == 1.0

    same_scores = _rec("b", [[{"text": "EXCELLENT Score: 4", "score": 4.0}, {"text": "poor Score: 4", "score": 4.0},
                              {"text": "fine Score: 2", "score": 2.0}]])  # best and worst share score 4
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta)
    assert j.score_records([same_scores]) == []
    assert j.stats()["dropped_equal_scores"] == 1 and j.stats()["meta_pairs"] == 0


def test_meta_parse_failures_are_ties():
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=lambda t, k: ["I cannot decide"] * len(t))
    assert j.score_records([_scored_record()]) == []
    s = j.stats()
    assert s["parse_failures"] == 6 and s["parse_failure_rate"] == 1.0 and s["dropped_elo_tie"] == 1


def test_margin_is_elo_logit_never_toward_rejected():
    # the better-reasoned judgement gives the LOWER number: its numeric score must not become the margin
    rec = _rec("m", [[{"text": "EXCELLENT, harsh Score: 1", "score": 1.0}, {"text": "poor Score: 5", "score": 5.0},
                      {"text": "fine Score: 3", "score": 3.0}]])
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta)
    (pair,) = j.score_records([rec])
    m = pair["meta"]
    assert pair["chosen"].startswith("EXCELLENT") and m["score_kind"] == "elo_theta"
    assert m["chosen_judgement_score"] == 1.0 and m["rejected_judgement_score"] == 5.0
    assert pair["chosen_score"] == pytest.approx((m["chosen_elo"] - 1000) / 400)
    assert pair["rejected_score"] == pytest.approx((m["rejected_elo"] - 1000) / 400)
    assert pair["chosen_score"] - pair["rejected_score"] > 0
    # the trainer's margin g = chosen_score − rejected_score is positive for every meta pair
    recs = [_rec(f"r{i}", [[{"text": f"{w} Score: {s}", "score": float(s)}
                            for w, s in zip(["poor", "fine", "EXCELLENT"], np.random.default_rng(i).permutation(3))]])
            for i in range(6)]
    pairs = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta).score_records(recs)
    assert len(pairs) == 6 and all(p["chosen_score"] > p["rejected_score"] for p in pairs)


def test_meta_balance_applied_across_records():
    recs = []
    for i, best in enumerate([5, 5, 5, 5, 4, 3]):
        recs.append(_rec(f"r{i}", [[{"text": f"EXCELLENT Score: {best}", "score": float(best)},
                                    {"text": "poor Score: 0", "score": 0.0}]]))
    j = MetaJudge(MetaJudgeConfig(max_class_frac=0.4, seed=0), generate_fn=_content_meta)
    pairs = j.score_records(recs)
    counts = Counter(p["meta"]["chosen_judgement_score"] for p in pairs)
    assert max(counts.values()) <= 0.4 * len(pairs)
    assert counts[5] == 1 and counts[4] == 1 and counts[3] == 1  # 2 of 4 would be 50%
    s = j.stats()
    assert s["dropped_balance"] == 3 and s["meta_pairs_before_balance"] == 6 and s["meta_pairs"] == 3
    two = [_rec(f"t{i}", [[{"text": f"EXCELLENT Score: {b}", "score": float(b)}, {"text": "poor Score: 0", "score": 0.0}]])
           for i, b in enumerate([5, 5, 5, 4])]
    kept = MetaJudge(MetaJudgeConfig(max_class_frac=0.4), generate_fn=_content_meta).score_records(two)
    assert sorted(p["meta"]["chosen_judgement_score"] for p in kept) == [4.0, 5.0]  # 2 classes: f = 0.5


def test_seed_drives_sampling_and_balancing(monkeypatch):
    import selfalign.generation.hf as hf

    seen = []

    class FakeEngine:
        def __init__(self, *a, **k):
            pass

        def generate(self, texts, params, keys=None, on_progress=None):
            seen.append((params.seed, params.temperature, list(keys)))
            return [[{"text": t}] for t in _content_meta(texts, keys)]

    monkeypatch.setattr(hf, "HFEngine", FakeEngine)
    recs = [_rec(f"r{i}", [[{"text": f"EXCELLENT Score: {b}", "score": float(b)}, {"text": "poor Score: 0", "score": 0.0}]])
            for i, b in enumerate([5] * 8 + [4, 4, 3])]
    full = MetaJudge(MetaJudgeConfig(max_class_frac=1.0, seed=5), model=object(), tokenizer=object()).score_records(recs)
    assert seen[-1][0] == 5 and len(set(seen[-1][2])) == 11 * 2  # one seeding key per comparison order
    kept_ids = set()
    for seed in range(6):
        j = MetaJudge(MetaJudgeConfig(max_class_frac=0.4, seed=seed, temperature=0.8), model=object(),
                      tokenizer=object())
        kept = j.score_records(recs)
        assert seen[-1][:2] == (seed, 0.8)  # the sampling seed is the config's seed
        assert kept == balance_by_chosen_score(full, 0.4, seed, key=lambda p: p["meta"]["chosen_judgement_score"])
        assert kept == MetaJudge(MetaJudgeConfig(max_class_frac=0.4, seed=seed), model=object(),
                                 tokenizer=object()).score_records(recs)  # reproducible
        kept_ids.add(tuple(p["id"] for p in kept))
    assert len(kept_ids) > 1  # the balancing shuffle follows the seed


def test_sampling_seed_on_tiny_model(tiny_model):
    def answers(seed):
        j = build_judge({"type": "meta", "model": str(tiny_model), "max_new_tokens": 8, "temperature": 1.0,
                         "seed": seed})
        return j._generate(["Which judgement is better?"] * 2, ["k1", "k2"])

    a = answers(3)
    assert a == answers(3) and a != answers(4)
    assert a[0] != a[1]  # different comparison keys draw different samples


# ------------------------------------------------------------------------------------------ lengths
def _lengths(tok, prompt, texts):
    from selfalign.data.chat import encode_prompt_completion

    out = []
    for t in texts:
        p, c = encode_prompt_completion(tok, prompt, t)
        out.append((len(p), len(p) + len(c)))
    return out


def test_max_length_excludes_long_judgements_never_truncates(tokenizer, tmp_path):
    from selfalign.train.data import load_pairs

    long_fine = "fine reasoning " + "and more words " * 60 + "Score: 3"
    rec = _rec("L", [[{"text": "poor Score: 1", "score": 1.0}, {"text": "EXCELLENT Score: 4", "score": 4.0},
                      {"text": long_fine, "score": 3.0}]])
    plain = MetaJudge(MetaJudgeConfig(), generate_fn=_content_meta)
    jp = plain.judge_prompt(rec["prompt"], rec["responses"][0])
    (p_len, short), (_, best), (_, long_len) = _lengths(tokenizer, jp, [j["text"] for j in rec["responses"][0]["judgements"]])
    assert max(short, best) < long_len
    limit = max(short, best)  # the two short judgements fit exactly, the long one does not
    gen = _Recorder()
    j = MetaJudge(MetaJudgeConfig(max_length=limit, max_class_frac=1.0), tokenizer=tokenizer, generate_fn=gen)
    (pair,) = j.score_records([rec])
    assert pair["chosen"] == "EXCELLENT Score: 4" and set(pair["meta"]["elo"]) == {"0", "1"}
    assert len(gen.texts) == 2 and all("and more words" not in t for t in gen.texts)  # never compared
    s = j.stats()
    assert s["excluded_too_long"] == 1 and s["skipped_too_long"] == 0
    # the trainer reads the pair at that max_length without cutting anything (drop mode drops nothing)
    path = tmp_path / "meta.jsonl"
    path.write_text(json.dumps(pair) + "\n")
    examples, dstats = load_pairs(path, tokenizer, max_length=limit, max_prompt_length=None, truncation="drop")
    assert dstats.used == 1 and dstats.dropped_too_long == 0 and dstats.truncated == 0
    assert examples[0].length <= limit

    # variance > 0 only through a judgement that does not fit → skipped before generating, counted
    rec2 = _rec("L2", [[{"text": "poor Score: 1", "score": 1.0}, {"text": "poor too Score: 1", "score": 1.0},
                        {"text": long_fine, "score": 3.0}]])
    gen2 = _Recorder()
    j2 = MetaJudge(MetaJudgeConfig(max_length=limit), tokenizer=tokenizer, generate_fn=gen2)
    assert j2.score_records([rec2]) == [] and gen2.texts == []
    assert j2.stats()["skipped_too_long"] == 1
    # a judge prompt over max_prompt_length (or prompt alone over max_length) skips the record
    for cfg in (MetaJudgeConfig(max_prompt_length=p_len - 1), MetaJudgeConfig(max_length=p_len)):
        j3 = MetaJudge(cfg, tokenizer=tokenizer, generate_fn=_Recorder())
        assert j3.score_records([rec]) == [] and j3.stats()["skipped_too_long"] == 1


# ------------------------------------------------------------------------------------------- stats
def test_stats_report_every_count():
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta)
    assert j.stats()["elo_gap_mean"] is None and j.stats()["meta_pairs"] == 0
    (pair,) = j.score_records([_scored_record(), _rec("x", [[{"text": "a Score: 2", "score": 2.0}] * 2])])
    s = j.stats()
    for key in ("skipped_no_finished_response", "skipped_few_valid_judgements", "skipped_no_disagreement",
                "skipped_too_long", "judged_prompts", "excluded_unparsed", "excluded_unfinished",
                "excluded_too_long", "dropped_elo_tie", "dropped_equal_scores", "meta_pairs_before_balance",
                "dropped_balance", "meta_pairs", "parse_failures", "parse_failure_rate", "elo_gap_mean"):
        assert key in s, key
    assert s["elo_gap_mean"] == pytest.approx(pair["meta"]["chosen_elo"] - pair["meta"]["rejected_elo"])
    assert s["skipped_no_disagreement"] == 1 and s["meta_pairs"] == 1 and s["score_histogram"] == {"5": 1}
    j.reset_stats()
    assert j.stats()["meta_pairs"] == 0 and j.stats()["records"] == 0


# --------------------------------------------------------------------------------------- real models
def test_meta_on_tiny_model(tiny_model):
    j = build_judge({"type": "meta", "model": str(tiny_model), "max_new_tokens": 4})
    out = j.score_records([_scored_record()])
    s = j.stats()
    assert s["judgements"] == 6 and s["parse_failures"] == 6  # a random model never writes a verdict
    assert out == []
    assert j.output_kind == "preferences"


def test_meta_expected_mode_by_hand(monkeypatch):
    """q(x beats y) = (p_A(x first) + 1 − p_A(y first)) / 2 enters the win matrix as a fraction."""
    j = MetaJudge(MetaJudgeConfig(mode="expected", max_class_frac=1.0))
    # the comparison set in order: poor(1), EXCELLENT(5), fine(3); pairs (0,1), (0,2), (1,2),
    # each asked as (a first) then (b first). P(first shown wins):
    p = {(0, 1): 0.6, (1, 0): 0.9,   # EXCELLENT beats poor: q(poor) = (0.6 + 0.1) / 2 = 0.35
         (0, 2): 0.5, (2, 0): 0.7,   # fine beats poor: q(poor) = 0.4
         (1, 2): 0.8, (2, 1): 0.4}   # EXCELLENT beats fine: q = 0.7
    order = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]
    monkeypatch.setattr(j, "_first_wins_prob", lambda texts: [p[o] for o in order])
    (pair,) = j.score_records([_scored_record()])
    assert pair["chosen"] == "EXCELLENT reasoning Score: 5" and pair["rejected"] == "poor reasoning Score: 1"
    w = np.zeros((3, 3))
    w[0, 1], w[1, 0] = 0.35, 0.65
    w[0, 2], w[2, 0] = 0.4, 0.6
    w[1, 2], w[2, 1] = 0.7, 0.3
    elo = elo_from_wins(w)
    assert pair["meta"]["chosen_elo"] == pytest.approx(elo[1]) and pair["meta"]["rejected_elo"] == pytest.approx(elo[0])
    assert pair["chosen_score"] == pytest.approx((elo[1] - 1000) / 400)
    assert j.stats()["parse_failures"] == 0


def test_meta_expected_mode_on_tiny_model(tiny_model):
    j = build_judge({"type": "meta", "model": str(tiny_model), "mode": "expected", "max_class_frac": 1.0,
                     "max_length": 4096})
    assert j.expected_prefix == "Winner: Judgement "
    out = j.score_records([_scored_record()])
    s = j.stats()
    assert s["judgements"] == 6 and s["parse_failures"] == 0
    assert 0.0 < s["valid_mass_mean"] <= 1.0
    assert s["meta_pairs"] == len(out) <= 1
    assert DEFAULT_WINNER_REGEX  # exported for the recipe
