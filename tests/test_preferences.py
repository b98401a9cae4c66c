"""Pair-building strategies: max_min, length_control, all_pairs, best_of_n and their edge cases."""

from __future__ import annotations

import inspect

import pytest
from pydantic import ValidationError

from selfalign import pair_strategies
from selfalign.config import validate
from selfalign.errors import ConfigError, DataError
from selfalign.pair_strategies import (
    Candidates,
    PairOptions,
    Pick,
    get_pair_strategy,
    pair_strategy_names,
    register_pair_strategy,
)
from selfalign.preferences import PairConfig, build_pairs, build_pairs_from_config


def resp(text, score, var=0.0, finish="stop", tokens=None):
    r = {"text": text, "finish": finish, "score": score, "score_var": var}
    if tokens is not None:
        r["num_tokens"] = tokens
    return r


def rec(rid, responses, prompt="Q?", meta=None):
    return {"id": rid, "prompt": prompt, "meta": meta if meta is not None else {"cat": "x"}, "responses": responses}


# ------------------------------------------------------------------------------------------ max_min
def test_max_min_basic_and_output_format():
    recs = [rec("a", [resp("mid", 3.0, tokens=5), resp("best", 5.0, tokens=7), resp("worst", 1.0, tokens=2)])]
    pairs, st = build_pairs(recs, "max_min")
    assert pairs == [{"id": "a", "prompt": "Q?", "chosen": "best", "rejected": "worst", "chosen_score": 5.0,
                      "rejected_score": 1.0, "chosen_length": 7, "rejected_length": 2,
                      "meta": {"cat": "x", "pair": {"prompt_id": "a", "chosen_index": 1, "rejected_index": 2,
                                                    "strategy": "max_min", "length_unit": "tokens"}}}]
    assert recs[0]["meta"] == {"cat": "x"}  # input meta not mutated
    assert st["pairs"] == 1 and st["bad_samples"] == 0 and st["bad_samples_frac"] == 0.0
    assert st["mean_margin"] == 4.0 and st["chosen_score_mean"] == 5.0 and st["rejected_score_mean"] == 1.0
    assert st["chosen_length_mean"] == 7 and st["rejected_length_mean"] == 2 and st["length_unit"] == "tokens"


def test_max_min_ties_broken_by_lowest_variance_then_position():
    r = [resp("top-noisy", 4.0, var=1.0), resp("top-sure", 4.0, var=0.1), resp("low-a", 2.0, var=0.5),
         resp("low-b", 2.0, var=0.0), resp("top-sure-2", 4.0, var=0.1)]
    pairs, _ = build_pairs([rec("t", r)])
    assert pairs[0]["chosen"] == "top-sure" and pairs[0]["rejected"] == "low-b"


def test_bad_samples_all_equal_single_valid_none_scores_and_unfinished():
    recs = [
        rec("equal", [resp("a", 3.0), resp("b", 3.0), resp("c", 3.0)]),
        rec("single", [resp("a", 5.0), resp("b", None), resp("c", 1.0, finish="length")]),
        rec("nones", [resp("a", None), resp("b", None)]),
        rec("empty", []),
        rec("ok", [resp("a", 2.0), resp("b", 1.0)]),
    ]
    pairs, st = build_pairs(recs)
    assert [p["id"] for p in pairs] == ["ok"]
    assert st["bad_samples"] == 4 and st["bad_samples_frac"] == pytest.approx(4 / 5)
    assert st["bad_reasons"] == {"all_equal": 1, "too_few_valid": 3}
    assert st["responses"] == 10
    assert st["bad_ends_frac"] == pytest.approx(1 / 10)
    assert st["unscored_frac"] == pytest.approx(3 / 10)
    # unfinished responses join the pool when asked
    pairs, st = build_pairs(recs, include_unfinished=True)
    assert {p["id"] for p in pairs} == {"single", "ok"}
    assert pairs[0]["rejected"] == "c"


def test_missing_finish_counts_as_ended_and_length_falls_back_to_chars():
    r = [{"text": "long answer", "score": 2.0}, {"text": "ok", "score": 1.0, "num_tokens": 1}]
    pairs, st = build_pairs([rec("x", r)])
    assert pairs[0]["chosen_length"] == len("long answer") and pairs[0]["rejected_length"] == 2
    assert st["length_unit"] == "chars" and st["bad_ends_frac"] == 0.0


def test_min_margin_and_identical_texts():
    recs = [rec("small", [resp("a", 3.0), resp("b", 2.5)]), rec("same", [resp("dup", 5.0), resp("dup", 1.0)]),
            rec("big", [resp("a", 4.0), resp("b", 2.0)])]
    pairs, st = build_pairs(recs, min_margin=1.0)
    assert [p["id"] for p in pairs] == ["big"]
    assert st["bad_reasons"] == {"margin": 1, "identical": 1}
    pairs, _ = build_pairs(recs, min_margin=2.0)  # margin exactly min_margin is kept
    assert [p["id"] for p in pairs] == ["big"]


def test_conversational_prompt_gives_message_lists():
    msgs = [{"role": "user", "content": "hi"}]
    pairs, _ = build_pairs([rec("c", [resp("good", 2.0), resp("bad", 1.0)], prompt=msgs)])
    assert pairs[0]["prompt"] == msgs
    assert pairs[0]["chosen"] == [{"role": "assistant", "content": "good"}]
    assert pairs[0]["rejected"] == [{"role": "assistant", "content": "bad"}]


def test_empty_input_stats():
    pairs, st = build_pairs([])
    assert pairs == [] and st["pairs"] == 0 and st["bad_samples_frac"] is None and st["mean_margin"] is None


# ----------------------------------------------------------------------------------- length_control
LC = [resp("best-long", 5.0, tokens=50), resp("best-short", 4.6, tokens=10), resp("mid", 3.0, tokens=5),
      resp("worst-short", 1.0, tokens=3), resp("worst-long", 1.4, tokens=40)]


def test_length_control_rho_zero_equals_max_min():
    a, _ = build_pairs([rec("l", LC)], "length_control", rho=0.0)
    b, _ = build_pairs([rec("l", LC)], "max_min")
    assert a[0]["chosen"] == b[0]["chosen"] == "best-long"
    assert a[0]["rejected"] == b[0]["rejected"] == "worst-short"


def test_length_control_picks_shortest_top_and_longest_bottom():
    # range [1, 5]; rho=0.1 → top band [4.6, 5], bottom band [1, 1.4] (both edges inclusive)
    pairs, st = build_pairs([rec("l", LC)], "length_control", rho=0.1)
    assert pairs[0]["chosen"] == "best-short" and pairs[0]["rejected"] == "worst-long"
    assert pairs[0]["chosen_length"] == 10 and pairs[0]["rejected_length"] == 40
    assert st["mean_margin"] == pytest.approx(4.6 - 1.4)
    # a slightly smaller rho excludes both boundary responses
    pairs, _ = build_pairs([rec("l", LC)], "length_control", rho=0.09)
    assert pairs[0]["chosen"] == "best-long" and pairs[0]["rejected"] == "worst-short"


def test_length_control_wide_bands_and_overlap():
    # rho=0.5: top band [3, 5] → shortest is "mid" (5 tokens); bottom band [1, 3] → longest is worst-long
    pairs, _ = build_pairs([rec("l", LC)], "length_control", rho=0.5)
    assert pairs[0]["chosen"] == "mid" and pairs[0]["rejected"] == "worst-long"
    # rho=1: whole range in both bands; shortest overall (worst-short, 1.0) vs longest (best-long, 5.0)
    pairs, st = build_pairs([rec("l", LC)], "length_control", rho=1.0)
    assert pairs == [] and st["bad_reasons"] == {"band_overlap": 1}


def test_length_control_band_edge_survives_rounding():
    # (1-0.1)*3 + 0.1*1 == 2.8000000000000003 in floating point; a score of 2.8 is on the edge
    r = [resp("top-long", 3.0, tokens=30), resp("edge-short", 2.8, tokens=4), resp("low", 1.0, tokens=9)]
    pairs, _ = build_pairs([rec("e", r)], "length_control", rho=0.1)
    assert pairs[0]["chosen"] == "edge-short"


def test_length_control_length_ties_prefer_higher_score_for_chosen():
    r = [resp("a", 5.0, tokens=10), resp("b", 4.9, tokens=10), resp("c", 1.0, tokens=10), resp("d", 1.05, tokens=10)]
    pairs, _ = build_pairs([rec("t", r)], "length_control", rho=0.1)
    assert pairs[0]["chosen"] == "a" and pairs[0]["rejected"] == "c"


def test_rho_validation_and_per_iteration_config():
    with pytest.raises(ConfigError, match="rho"):
        build_pairs([], "length_control", rho=1.5)
    with pytest.raises(ConfigError, match="only the length_control"):
        build_pairs([], "max_min", rho=0.1)
    with pytest.raises(ConfigError, match="unknown strategy"):
        build_pairs([], "best_worst")
    cfg = PairConfig(strategy="length_control", rho=[0.0, 0.0, 0.1])
    first, _ = build_pairs_from_config([rec("l", LC)], cfg, iteration=0)
    third, _ = build_pairs_from_config([rec("l", LC)], cfg, iteration=5)
    assert first[0]["chosen"] == "best-long" and third[0]["chosen"] == "best-short"


def test_bad_score_types_raise():
    with pytest.raises(DataError, match="score must be a number"):
        build_pairs([rec("b", [resp("a", "5"), resp("b", 1.0)])])
    with pytest.raises(DataError, match="no 'score'"):
        build_pairs([rec("b", [{"text": "a"}, {"text": "b"}])])
    with pytest.raises(DataError, match="no 'responses'"):
        build_pairs([{"id": "x", "prompt": "p"}])


# ----------------------------------------------------------------------------------------- all_pairs
def test_all_pairs_every_distinct_score_pair():
    r = [resp("a", 3.0), resp("b", 1.0), resp("c", 3.0), resp("d", None), resp("e", 2.0)]
    pairs, st = build_pairs([rec("p", r)], "all_pairs")
    got = {(p["chosen"], p["rejected"]) for p in pairs}
    assert got == {("a", "b"), ("a", "e"), ("c", "b"), ("c", "e"), ("e", "b")}
    assert {p["id"] for p in pairs} == {"p/0-1", "p/0-4", "p/2-1", "p/2-4", "p/4-1"}
    assert all(p["chosen_score"] > p["rejected_score"] for p in pairs)
    assert st["pairs"] == 5 and st["dropped_by_cap"] == 0
    pairs, _ = build_pairs([rec("p", r)], "all_pairs", min_margin=1.5)
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {("a", "b"), ("c", "b")}


def many(n_rec, n_resp, key=None):
    return [rec(f"r{i}", [resp(f"r{i}-{j}", float(j)) for j in range(n_resp)],
                meta={"dataset": key(i)} if key else {}) for i in range(n_rec)]


def test_all_pairs_caps_and_seed_determinism():
    recs = many(6, 4)  # 6 pairs each
    a, st = build_pairs(recs, "all_pairs", max_pairs_per_group=2, seed=1)
    assert st["pairs"] == 12 and st["dropped_by_cap"] == 24
    assert all(sum(p["meta"]["pair"]["prompt_id"] == f"r{i}" for p in a) == 2 for i in range(6))
    b, _ = build_pairs(recs, "all_pairs", max_pairs_per_group=2, seed=1)
    assert [p["id"] for p in a] == [p["id"] for p in b]
    seeds = {tuple(p["id"] for p in build_pairs(recs, "all_pairs", max_pairs_per_group=2, seed=s)[0])
             for s in range(6)}
    assert len(seeds) > 1
    c, st = build_pairs(recs, "all_pairs", max_pairs_per_group=2, max_pairs=5, seed=1)
    assert len(c) == 5 and st["dropped_by_cap"] == 31
    assert set(p["id"] for p in c) <= set(p["id"] for p in a)
    # fewer candidates than the cap: everything is kept, no crash
    d, st = build_pairs(recs[:1], "all_pairs", max_pairs_per_group=100, max_pairs=100)
    assert len(d) == 6 and st["dropped_by_cap"] == 0


def test_all_pairs_group_key_caps_per_dataset():
    recs = many(6, 3, key=lambda i: "adult" if i < 4 else "heart")  # 3 pairs per record
    pairs, _ = build_pairs(recs, "all_pairs", group_key="meta.dataset", max_pairs_per_group=4, seed=0)
    ds = [p["meta"]["dataset"] for p in pairs]
    assert ds.count("adult") == 4 and ds.count("heart") == 4
    with pytest.raises(DataError, match="meta.nope"):
        build_pairs(recs, "all_pairs", group_key="meta.nope")


def test_all_pairs_bad_samples():
    recs = [rec("eq", [resp("a", 1.0), resp("b", 1.0)]), rec("dup", [resp("x", 2.0), resp("x", 1.0)]),
            rec("one", [resp("a", 1.0)])]
    pairs, st = build_pairs(recs, "all_pairs")
    assert pairs == [] and st["bad_reasons"] == {"all_equal": 1, "identical": 1, "too_few_valid": 1}


# ---------------------------------------------------------------------------------------- best_of_n
def test_best_of_n():
    recs = [rec("a", [resp("meh", 2.0, tokens=3), resp("great", 4.0, var=0.5, tokens=9),
                      resp("great2", 4.0, var=0.0, tokens=12)]),
            rec("single", [resp("only", 3.0, tokens=2)]),
            rec("low", [resp("bad", 0.5, tokens=1)]),
            rec("none", [resp("x", None)])]
    out, st = build_pairs(recs, "best_of_n", min_score=1.0)
    assert [o["completion"] for o in out] == ["great2", "only"]
    assert out[0] == {"id": "a", "prompt": "Q?", "completion": "great2", "score": 4.0, "length": 12,
                      "meta": {"cat": "x", "pair": {"prompt_id": "a", "chosen_index": 2, "strategy": "best_of_n",
                                                    "length_unit": "tokens"}}}
    assert st["pairs"] == 2 and st["bad_reasons"] == {"below_min_score": 1, "too_few_valid": 1}
    assert st["chosen_score_mean"] == 3.5 and st["rejected_score_mean"] is None and st["mean_margin"] is None


# ------------------------------------------------------------------------------------------ registry
def test_registry_names_and_closest_name_errors():
    assert pair_strategy_names() == ("max_min", "length_control", "all_pairs", "best_of_n")
    with pytest.raises(ConfigError, match=r"pair\.strategy: unknown strategy 'max_mn'; did you mean 'max_min'\?"):
        build_pairs([], "max_mn")
    with pytest.raises(ConfigError, match="did you mean 'length_control'"):
        get_pair_strategy("lenght_control")
    with pytest.raises(ConfigError) as e:
        validate(PairConfig, {"strategy": "al_pairs"}, "recipe.yaml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("recipe.yaml: strategy:") and "did you mean 'all_pairs'" in msg
    with pytest.raises(ValueError, match="already registered"):
        register_pair_strategy("max_min")(lambda c, o: "all_equal")


def test_stats_are_the_same_for_every_strategy():
    recs = [rec("a", [resp("x", 3.0, tokens=4), resp("y", 1.0, tokens=2)]), rec("b", [resp("z", None)])]
    keys = {name: list(build_pairs(recs, name)[1]) for name in pair_strategy_names()}
    base = keys["max_min"]
    assert keys["length_control"] == keys["best_of_n"] == base
    assert keys["all_pairs"] == [*base, "dropped_by_cap"]


def test_custom_strategy_gets_shared_checks_records_and_stats(monkeypatch):
    monkeypatch.setattr(pair_strategies, "_STRATEGIES", dict(pair_strategies._STRATEGIES))

    @register_pair_strategy("top_two", min_valid=3)
    def _top_two(c: Candidates, o: PairOptions) -> list[Pick] | str:
        """Best vs second best."""
        first, second = sorted(c.responses, key=lambda x: -x.score)[:2]
        return "margin" if first.score == second.score else [Pick(first, second, c.rid)]

    recs = [rec("a", [resp("lo", 1.0), resp("hi", 5.0, tokens=None), resp("mid", 4.0)]),
            rec("two", [resp("a", 2.0), resp("b", 1.0)]),  # too few valid for this strategy
            rec("flat", [resp("a", 2.0), resp("b", 2.0), resp("c", 2.0)]),  # all equal: never reaches it
            rec("tie", [resp("a", 3.0), resp("b", 3.0), resp("c", 1.0)])]
    pairs, st = build_pairs(recs, "top_two")
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("hi", "mid")]
    assert pairs[0]["meta"]["pair"]["strategy"] == "top_two" and pairs[0]["chosen_length"] == 2
    assert st["bad_reasons"] == {"too_few_valid": 1, "all_equal": 1, "margin": 1}
    assert st["mean_margin"] == 1.0 and st["length_unit"] == "chars"
    assert PairConfig(strategy="top_two").at_iteration(0)["strategy"] == "top_two"
    with pytest.raises(ConfigError, match="only the length_control strategy uses rho"):
        build_pairs(recs, "top_two", rho=0.2)


def test_pair_config_at_iteration_resolves_rho():
    cfg = PairConfig(strategy="length_control", rho=[0, 0.1], min_margin=0.5)
    opts = cfg.at_iteration(0)
    assert set(opts) == set(inspect.signature(build_pairs).parameters) - {"records"}
    assert opts["strategy"] == "length_control" and opts["rho"] == 0.0 and opts["min_margin"] == 0.5
    assert [cfg.at_iteration(t)["rho"] for t in range(4)] == [0.0, 0.1, 0.1, 0.1]
    first, _ = build_pairs([rec("l", LC)], **cfg.at_iteration(0))
    second, _ = build_pairs([rec("l", LC)], **cfg.at_iteration(1))
    assert first[0]["chosen"] == "best-long" and second[0]["chosen"] == "best-short"
    assert PairConfig().at_iteration(3) == {**PairConfig().model_dump(), "rho": 0.0}
    with pytest.raises(ValueError, match="0-based"):
        cfg.at_iteration(-1)


def test_pair_config_validation():
    for bad in ({"strategy": "length_control", "rho": [0.0, 1.5]}, {"strategy": "length_control", "rho": []},
                {"strategy": "max_min", "rho": [0.0, 0.1]}, {"min_margin": -1}, {"max_pairs": -1},
                {"strategy": "max_min", "unknown": 1}):
        with pytest.raises(ValidationError):
            PairConfig(**bad)
    with pytest.raises(ConfigError, match=r"^cfg.yaml: rho: .*only the length_control strategy uses rho"):
        validate(PairConfig, {"rho": 0.1}, "cfg.yaml")
    assert PairConfig(strategy="max_min", rho=[0, 0]).at_iteration(1)["rho"] == 0.0
