"""SALMON stage 2 aggregation (selfalign.principle_labels) on hand-made (s12, s21) tables."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import ValidationError

from selfalign.principle_labels import (
    AggregateConfig,
    aggregate,
    aggregate_example,
    label_example,
    language_of,
    principle_score,
    principle_variances,
    rule_label,
    sample_principles,
    says_ai_phrase,
)

INSTRUCTION = "Please explain in a few sentences why the sky appears blue during a clear day."
EN0 = "The sky looks blue because air molecules scatter short blue wavelengths of sunlight more strongly."
EN1 = "Sunlight is scattered by the atmosphere, and the blue part of the spectrum is scattered the most."
DE = ("Der Himmel ist blau, weil die Luftmoleküle das kurzwellige blaue Licht der Sonne viel stärker "
      "streuen als das rote Licht.")
AI = "As an AI language model, I can tell you that the sky is blue because of Rayleigh scattering of light."


def record(rid, table, texts=(EN0, EN1), prompt=INSTRUCTION):
    """A judge record whose (0, 1) comparisons are ``{principle: (s12, s21)}``."""
    comps = [{"i": 0, "j": 1, "principle": n, "s12": s12, "s21": s21, "preference": 1 if s12 > 0 else 2}
             for n, (s12, s21) in table.items()]
    return {"id": rid, "prompt": prompt, "responses": [{"text": t, "finish": "stop"} for t in texts],
            "comparisons": comps, "meta": {}}


def cfg(**kw):
    base = {"passes": 1, "negate_prob": 0.0, "label_noise": 0.0, "rule_label_noise": 0.0,
            "swap_prob": 0.0, "language_rule": False}
    base.update(kw)
    return AggregateConfig(**base)


# ------------------------------------------------------------------------------------------ config
def test_config_validates_probabilities_and_keys():
    assert AggregateConfig().passes == 2 and AggregateConfig().geometric_p == 0.2
    for bad in ({"label_noise": 1.5}, {"swap_prob": -0.1}, {"geometric_p": 0.0}, {"passes": 0},
                {"max_principles": 0}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            AggregateConfig(**bad)


# ----------------------------------------------------------------------------------------- scoring
def test_negation_flips_score_and_label():
    assert principle_score(0.8, 0.4, 1.0, False) == pytest.approx(0.6)
    assert principle_score(0.8, 0.4, 1.0, True) == pytest.approx(-0.6)
    assert principle_score(-0.8, -0.4, 2.0, True) == pytest.approx(0.3)
    rec = record("r", {"Concise": (0.8, 0.4)})
    plain, _ = aggregate([rec], cfg(negate_prob=0.0))
    negated, _ = aggregate([rec], cfg(negate_prob=1.0))
    assert plain[0]["preferred"] == "a" and plain[0]["scores"] == {"Concise": pytest.approx(0.6)}
    assert negated[0]["preferred"] == "b" and negated[0]["scores"] == {"Concise": pytest.approx(-0.6)}
    assert negated[0]["principles"] == [{"name": "Concise", "negated": True}]
    assert negated[0]["label_principle"] == "Concise" and negated[0]["label_source"] == "principle"


def test_disagreeing_orders_give_no_signal():
    assert principle_score(0.8, -0.3, 1.0, False) == 0.0
    assert principle_score(0.0, 0.5, 1.0, True) == 0.0
    rec = record("r", {"Honest": (0.8, -0.3)})
    ex, reason = label_example(rec, {"Honest": 1.0}, random.Random(0), cfg())
    assert ex is None and reason == "no_signal"
    examples, stats = aggregate([rec], cfg(passes=3))
    assert examples == [] and stats["skipped_no_signal"] == 3 and stats["examples"] == 0


def test_variance_normalisation_beats_raw_mean():
    # Wide: m = +2 (t), -2 (u) -> mean 0, Var = 4;      score_t = 2 / 4 = 0.5 (favours response 0)
    # Tight: m = -1 (t), -0.5 (u) -> mean -0.75, Var = 0.0625; score_t = -1 / 0.0625 = -16 (favours 1)
    t = record("t", {"Wide": (2.0, 2.0), "Tight": (-1.5, -0.5)})
    u = record("u", {"Wide": (-2.0, -2.0), "Tight": (-0.5, -0.5)})
    variances = principle_variances([t, u])
    assert variances == {"Wide": pytest.approx(4.0), "Tight": pytest.approx(0.0625)}
    examples, _ = aggregate([t, u], cfg(passes=300, geometric_p=0.3))
    both = [ex for ex in examples if ex["source_id"] == "t" and len(ex["principles"]) == 2]
    assert both, "some examples must sample both principles"
    for ex in both:
        assert ex["scores"] == {"Wide": pytest.approx(0.5), "Tight": pytest.approx(-16.0)}
        assert ex["label_principle"] == "Tight" and ex["preferred"] == "b"


def test_variance_defaults_to_one():
    recs = [record("a", {"Same": (0.5, 0.5), "Once": (1.0, 1.0)}), record("b", {"Same": (0.5, 0.5)})]
    assert principle_variances(recs) == {"Same": 1.0, "Once": 1.0}


def test_only_pair_zero_one_counts():
    rec = record("r", {"Concise": (0.8, 0.4)})
    rec["comparisons"].append({"i": 1, "j": 0, "principle": "Concise", "s12": -9.0, "s21": -9.0})
    rec["comparisons"].append({"i": 1, "j": 0, "principle": "Other", "s12": 5.0, "s21": 5.0})
    examples, _ = aggregate([rec], cfg())
    assert examples[0]["scores"] == {"Concise": pytest.approx(0.6)}
    only_reverse = record("x", {})
    only_reverse["comparisons"] = [{"i": 1, "j": 0, "principle": "Concise", "s12": 1.0, "s21": 1.0}]
    _, stats = aggregate([only_reverse], cfg())
    assert stats["skipped_no_pair"] == 1


# ---------------------------------------------------------------------------------------- sampling
def test_geometric_truncated_mean_and_bounds():
    c = AggregateConfig(geometric_p=0.2, max_principles=8, negate_prob=0.5)
    names = [f"p{i}" for i in range(12)]
    rng = random.Random(1)
    draws = [sample_principles(names, rng, c) for _ in range(20000)]
    ks = [len(d) for d in draws]
    p = 0.2
    expected = sum(min(k, 8) * (1 - p) ** (k - 1) * p for k in range(1, 2000))
    assert expected == pytest.approx((1 - 0.8 ** 8) / 0.2)
    assert abs(sum(ks) / len(ks) - expected) < 0.08
    assert min(ks) == 1 and max(ks) == 8
    assert abs(ks.count(1) / len(ks) - 0.2) < 0.015
    assert all(len({n for n, _ in d}) == len(d) for d in draws)
    negated = [neg for d in draws for _, neg in d]
    assert abs(sum(negated) / len(negated) - 0.5) < 0.02
    few = [len(sample_principles(["a", "b", "c"], rng, c)) for _ in range(2000)]
    assert max(few) == 3
    assert names == [f"p{i}" for i in range(12)]  # shuffles a copy


# ------------------------------------------------------------------------------------------- rules
def test_ai_phrase_detection_and_language():
    assert says_ai_phrase("well, AS AN AI LANGUAGE MODEL I cannot", "As an AI language model")
    assert not says_ai_phrase(EN0, "As an AI language model")
    assert language_of(DE) == "de"
    assert language_of(EN0) == "en"
    assert language_of("Hi!") is None and language_of("ok 42") is None
    # JSON and number lists get some language with low confidence: unknown, so they never "differ"
    assert language_of('{\n  "animals": [\n    {\n      "name": "Gazelle"\n    },') is None
    assert language_of("Celsius: 0\n\nCelsius: 1\nCelsius: 1.000000162955") is None


def test_ai_phrase_rule_rate():
    rng = random.Random(3)
    c = cfg(ai_phrase_prob=0.5)
    fired = [rule_label(INSTRUCTION, AI, EN1, rng, c) for _ in range(4000)]
    hits = [f for f in fired if f is not None]
    assert all(f == (1, "ai_phrase") for f in hits)
    assert abs(len(hits) / len(fired) - 0.5) < 0.03
    # The principle favours the phrase response (0); the other wins only through the rule.
    rec = record("r", {"Helpful": (0.9, 0.7)}, texts=(AI, EN1))
    examples, stats = aggregate([rec], cfg(passes=4000, ai_phrase_prob=0.3))
    b_rate = sum(ex["preferred"] == "b" for ex in examples) / len(examples)
    assert abs(b_rate - 0.3) < 0.03
    assert stats["rule_ai_phrase"] == sum(ex["preferred"] == "b" for ex in examples)
    assert all(ex["label_principle"] is None for ex in examples if ex["label_source"] == "ai_phrase")


def test_both_with_phrase_no_rule():
    c = cfg(ai_phrase_prob=1.0, language_rule=True)
    rng = random.Random(0)
    assert rule_label(INSTRUCTION, AI, AI + " Also more.", rng, c) is None
    assert rule_label(INSTRUCTION, EN0, EN1, rng, c) is None


def test_language_rule_other_language_loses():
    c = cfg(language_rule=True)
    assert rule_label(INSTRUCTION, DE, EN1, random.Random(0), c) == (1, "language")
    assert rule_label(INSTRUCTION, EN0, DE, random.Random(0), c) == (0, "language")
    assert rule_label("Hi", DE, EN1, random.Random(0), c) is None  # instruction language unknown
    assert rule_label(INSTRUCTION, DE, DE, random.Random(0), c) is None  # both differ
    rec = record("r", {"Helpful": (0.9, 0.7)}, texts=(DE, EN1))
    examples, stats = aggregate([rec], cfg(passes=20, language_rule=True))
    assert all(ex["label_source"] == "language" and ex["preferred"] == "b" for ex in examples)
    assert stats["rule_language"] == 20


# ------------------------------------------------------------------------------------ noise & swap
def test_label_noise_rate_principle():
    rec = record("r", {"Helpful": (0.9, 0.7)})
    examples, stats = aggregate([rec], cfg(passes=4000, label_noise=0.1))
    rate = stats["noise_flipped"] / stats["examples"]
    assert abs(rate - 0.1) < 0.02
    assert all((ex["preferred"] == "b") == ex["noise_flipped"] for ex in examples)


def test_label_noise_rate_rule():
    rec = record("r", {"Helpful": (0.9, 0.7)}, texts=(AI, EN1))
    examples, stats = aggregate([rec], cfg(passes=4000, ai_phrase_prob=1.0, label_noise=0.0,
                                           rule_label_noise=0.25))
    assert stats["rule_ai_phrase"] == 4000
    assert abs(stats["noise_flipped"] / 4000 - 0.25) < 0.02
    assert all((ex["preferred"] == "a") == ex["noise_flipped"] for ex in examples)


def test_swap_balances_positions():
    rec = record("r", {"Helpful": (0.9, 0.7)})
    examples, stats = aggregate([rec], cfg(passes=4000, swap_prob=0.5))
    assert abs(stats["label_a_fraction"] - 0.5) < 0.03
    for ex in examples:  # the preferred text is always response 0 (no noise)
        assert ex["response_" + ex["preferred"]] == EN0
    fixed, stats0 = aggregate([rec], cfg(passes=200, swap_prob=0.0))
    assert stats0["label_a_fraction"] == 1.0
    assert all(ex["preferred"] == "a" and ex["response_a"] == EN0 for ex in fixed)


# ------------------------------------------------------------------------------------ skips & misc
def test_short_and_missing_pairs_are_counted():
    short = record("s", {"Helpful": (0.9, 0.7)}, texts=(EN0, "  too short   "))
    single = record("o", {"Helpful": (0.9, 0.7)}, texts=(EN0,))
    ok = record("k", {"Helpful": (0.9, 0.7)})
    assert aggregate_example(short, {}, random.Random(0), cfg()) is None
    examples, stats = aggregate([short, single, ok], cfg(passes=2))
    assert stats["skipped_short"] == 2 and stats["skipped_no_pair"] == 2 and stats["examples"] == 2
    assert [ex["id"] for ex in examples] == ["k#p0", "k#p1"]
    assert stats["records"] == 3 and stats["passes"] == 2


def test_deterministic_and_json_serialisable():
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": INSTRUCTION},
            {"role": "assistant", "content": "..."}]
    recs = [record("a", {"Helpful": (0.9, 0.7), "Concise": (-0.4, -0.2), "Honest": (0.3, -0.1)}),
            record("b", {"Helpful": (-0.2, -0.6), "Concise": (0.5, 0.1)}, prompt=chat),
            record("c", {"Helpful": (0.4, 0.4), "Concise": (0.2, 0.6)}, texts=(AI, DE))]
    c = AggregateConfig(passes=5, seed=7)
    out1, stats1 = aggregate(recs, c)
    out2, stats2 = aggregate(recs, c)
    assert out1 == out2 and stats1 == stats2
    assert json.loads(json.dumps(out1)) == out1 and json.loads(json.dumps(stats1)) == stats1
    assert all(ex["instruction"] == INSTRUCTION for ex in out1)
    assert aggregate(recs, AggregateConfig(passes=5, seed=8))[0] != out1
    keys = {"id", "source_id", "instruction", "response_a", "response_b", "preferred", "principles",
            "label_source", "label_principle", "noise_flipped", "scores"}
    assert all(set(ex) == keys for ex in out1)
    assert stats1["examples"] + stats1["skipped_no_signal"] == 15
    n_principles = sum(len(ex["principles"]) for ex in out1)
    assert stats1["mean_principles_per_example"] == pytest.approx(n_principles / len(out1))
