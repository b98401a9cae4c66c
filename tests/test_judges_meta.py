"""Meta-judge: Elo fit, both-order outcomes, index alignment, drop rules, class balance."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from selfalign.judges import build_judge
from selfalign.judges.meta import (
    MetaJudge,
    MetaJudgeConfig,
    balance_by_chosen_score,
    both_order_outcome,
    elo_from_wins,
    parse_winner,
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


# ------------------------------------------------------------------------------------------- parsing
def test_parse_strip_outcome():
    assert parse_winner("blah\nWinner: Judgement B") == "B"
    assert parse_winner("winner: judgement a.") == "A"
    assert parse_winner("**Winner:** Judgement A") is None or parse_winner("**Winner:** Judgement A") == "A"
    assert parse_winner("Winner: Judgement C") is None and parse_winner("no verdict") is None
    assert strip_score("Good points.\nScore: 4") == "Good points."
    assert "Score" not in strip_score("score: 3 then more text")
    assert both_order_outcome("A", "B") == 1 and both_order_outcome("B", "A") == 2
    assert both_order_outcome("A", "A") == 0 and both_order_outcome(None, "B") == 0


# ------------------------------------------------------------------------------------------- balance
def test_balance_by_chosen_score():
    pairs = [{"id": i, "chosen_score": s} for i, s in enumerate([5] * 10 + [4] * 3 + [3] * 3 + [2] * 2)]
    kept = balance_by_chosen_score(pairs, 0.4, seed=1)
    counts = Counter(p["chosen_score"] for p in kept)
    assert max(counts.values()) <= 0.4 * len(kept)
    assert counts[4] == 3 and counts[3] == 3 and counts[2] == 2  # only the big class shrinks
    assert [p["id"] for p in kept] == sorted(p["id"] for p in kept)  # input order kept
    assert kept == balance_by_chosen_score(pairs, 0.4, seed=1)
    balanced = [{"chosen_score": s} for s in [1, 2, 3, 4, 5]]
    assert balance_by_chosen_score(balanced, 0.4) == balanced
    assert balance_by_chosen_score([{"chosen_score": 5}, {"chosen_score": 4}] * 3, 0.4) == []  # 2 classes


def test_balance_property_random():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pairs = [{"chosen_score": int(s)} for s in rng.integers(1, 6, size=int(rng.integers(1, 40)))]
        kept = balance_by_chosen_score(pairs, 0.4)
        if kept:
            assert max(Counter(p["chosen_score"] for p in kept).values()) <= 0.4 * len(kept) + 1e-9


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
        out.append("Winner: Judgement A" if _quality(a) >= _quality(b) else "Reasoning...\nWinner: Judgement B")
    return out


def _position_meta(texts, keys):
    return ["Winner: Judgement A"] * len(texts)


def _rec(rid, judgements_per_response):
    return {"id": rid, "prompt": f"Question {rid}?",
            "responses": [{"text": f"answer {k}", "judgements": js} for k, js in enumerate(judgements_per_response)]}


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
    assert pair["chosen_score"] == 5.0 and pair["rejected_score"] == 1.0
    m = pair["meta"]
    assert m["kind"] == "meta_judge" and m["source_id"] == "a" and m["response_index"] == 1
    assert m["judgement_indices"] == [2, 1]  # positions in the original judgements list
    assert m["elo"]["2"] > m["elo"]["3"] > m["elo"]["1"]
    assert "Question a?" in pair["prompt"] and "answer 1" in pair["prompt"]
    s = j.stats()
    assert s["judgements"] == 6 and s["parse_failures"] == 0  # 3 judgement pairs × 2 orders
    assert s["position_consistency"] == 1.0 and s["meta_pairs"] == 1


def test_meta_drop_rules_and_skips():
    tie = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_position_meta)
    assert tie.score_records([_scored_record()]) == []
    st = tie.stats()
    assert st["dropped_elo_tie"] == 1 and st["position_consistency"] == 0.0 and st["tie_rate"] == 1.0

    same_scores = _rec("b", [[{"text": "EXCELLENT Score: 4", "score": 4.0}, {"text": "poor Score: 2", "score": 2.0},
                              {"text": "fine Score: 4", "score": 4.0}]])
    same_scores["responses"][0]["judgements"][1]["score"] = 4.0  # best and worst now share score 4
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta)
    assert j.score_records([same_scores]) == []
    assert j.stats()["dropped_equal_scores"] == 1

    unparsed = _rec("c", [[{"text": "EXCELLENT Score: 4", "score": 4.0}, {"text": "fine Score: 2", "score": 2.0},
                           {"text": "poor, no number", "score": None}]])
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=_content_meta)
    assert j.score_records([unparsed]) == []
    assert j.stats()["dropped_unparsed_score"] == 1

    agree = _rec("d", [[{"text": "x Score: 3", "score": 3.0}, {"text": "y Score: 3", "score": 3.0}],
                       [{"text": "z Score: 2", "score": 2.0}]])
    j = MetaJudge(MetaJudgeConfig(), generate_fn=_content_meta)
    assert j.score_records([agree]) == []
    st = j.stats()  # variance 0 with 2 valid judgements still qualifies, then drops (no preference)
    assert st["skipped_no_disagreement"] == 0 and st["dropped_elo_tie"] + st["dropped_equal_scores"] == 1
    assert MetaJudge.select_response(_rec("e", [[{"text": "x", "score": 3.0}]])) is None


def test_meta_parse_failures_are_ties():
    j = MetaJudge(MetaJudgeConfig(max_class_frac=1.0), generate_fn=lambda t, k: ["I cannot decide"] * len(t))
    assert j.score_records([_scored_record()]) == []
    s = j.stats()
    assert s["parse_failures"] == 6 and s["parse_failure_rate"] == 1.0 and s["dropped_elo_tie"] == 1


def test_meta_balance_applied_across_records():
    recs = []
    for i, best in enumerate([5, 5, 5, 5, 4, 3]):
        recs.append(_rec(f"r{i}", [[{"text": f"EXCELLENT Score: {best}", "score": float(best)},
                                    {"text": "poor Score: 0", "score": 0.0}]]))
    j = MetaJudge(MetaJudgeConfig(max_class_frac=0.4, seed=0), generate_fn=_content_meta)
    pairs = j.score_records(recs)
    counts = Counter(p["chosen_score"] for p in pairs)
    assert max(counts.values()) <= 0.4 * len(pairs)
    assert counts[5] == 1 and counts[4] == 1 and counts[3] == 1  # 2 of 4 would be 50%
    assert j.stats()["dropped_balance"] == 3


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
    # the case's judgements in order: poor(1), EXCELLENT(5), fine(3); pairs (0,1), (0,2), (1,2),
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
    assert j.stats()["parse_failures"] == 0


def test_meta_expected_mode_on_tiny_model(tiny_model):
    j = build_judge({"type": "meta", "model": str(tiny_model), "mode": "expected", "max_class_frac": 1.0})
    out = j.score_records([_scored_record()])
    s = j.stats()
    assert s["judgements"] == 6 and s["parse_failures"] == 0
    assert 0.0 < s["valid_mass_mean"] <= 1.0
    assert s["meta_pairs"] == len(out) <= 1
