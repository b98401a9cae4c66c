"""Verifiable-instruction checks: each type passes and fails where it should."""

from __future__ import annotations

import pytest

from selfalign.checks import (
    CHECKS,
    check_answer,
    count_bullets,
    last_number,
    normalize_answer,
    paragraphs,
    run_checks,
)
from selfalign.errors import DataError


def one(check: dict, response: str) -> bool:
    res = run_checks(response, {"checks": [check]})
    assert res.results == [(check["type"], res.passed_all)]
    assert res.loose_results[0][0] == check["type"] and (res.passed_all <= res.passed_all_loose)
    return res.passed_all


# (check, passing response, failing response) — one row per short-name check type (the IFEval ids
# are tested in tests/test_checks_ifeval.py). Counts now come from the official IFEval checkers
# where a short name is an alias: words are \w+ runs ("well-known don't" is 4 words), sentences
# are Punkt's.
CASES = [
    ({"type": "lowercase"}, "all quiet on the western front.", "All quiet on the western front."),
    ({"type": "uppercase"}, "STOP RIGHT THERE, 2 TIMES!", "STOP right there"),
    ({"type": "max_words", "n": 5}, "one two three four five", "one two three four five six"),
    ({"type": "min_words", "n": 3}, "well-known don't matter", "just two"),
    ({"type": "max_sentences", "n": 2}, "First one. Second one!", "One. Two? Three."),
    ({"type": "min_sentences", "n": 2}, "It is 3.5 kg. That is heavy.", "It is 3.5 kg and heavy."),
    ({"type": "include_keywords", "keywords": ["water", "Salt"]}, "Salt water is dense.",
     "Saltwater is dense."),
    ({"type": "exclude_keywords", "keywords": ["very", "really"]}, "Every answer is fine.",
     "It is Really fine."),
    ({"type": "no_commas"}, "No commas here at all.", "Well, there is one."),
    ({"type": "num_bullets", "n": 3}, "Intro:\n* one\n- two\n  * three\n**bold** text",
     "* one\n* two\n\n---\n* * *"),
    ({"type": "json"}, '```json\n{"a": [1, 2]}\n```', "{'a': 1}"),
    ({"type": "ends_with", "phrase": "Hope this helps."}, "Do X then Y. hope this helps.  \n",
     "Hope this helps. Bye."),
    ({"type": "starts_with", "phrase": "Sure thing"}, "  sure thing, here it is", "Yes, sure thing"),
    ({"type": "title"}, "<<A Day Out>>\nWe went.",
     "<< >> no real title and <single>"),
    ({"type": "num_paragraphs", "n": 2}, "First para\nstill first.\n\nSecond para.",
     "One.\n***\nTwo.\n\nThree."),
]


@pytest.mark.parametrize("check,good,bad", CASES, ids=[c[0]["type"] for c in CASES])
def test_each_check_passes_and_fails(check, good, bad):
    assert one(check, good) is True
    assert one(check, bad) is False


def test_every_registered_check_is_tested():
    assert {c[0]["type"] for c in CASES} == {t for t in CHECKS if ":" not in t}


@pytest.mark.parametrize("check", [c[0] for c in CASES], ids=[c[0]["type"] for c in CASES])
def test_empty_response_fails_every_check(check):
    assert one(check, "   \n") is False


def test_helpers():
    # words() / count_sentences() are gone: word and sentence counts are IFEval's now (see
    # test_counts_follow_ifeval below)
    assert count_bullets("- a\n-b\n*  c\n--- \n") == 2
    assert paragraphs("a\n\n\n b \n  \n c\n***\nd") == ["a", "b", "c", "d"]


def test_case_checks_need_letters():
    assert not one({"type": "uppercase"}, "* * *\n* 1 2 3")
    assert not one({"type": "lowercase"}, "42!")
    assert one({"type": "lowercase"}, "ok 42!")  # no language test (IFEval's english_lowercase: "sk")
    assert one({"type": "lowercase"}, "yes")


def test_counts_follow_ifeval():
    # IFEval counts words as \w+ runs: "don't" and "well-known" are 2 words each, "3.5" too
    assert one({"type": "max_words", "n": 4}, "well-known don't")
    assert not one({"type": "max_words", "n": 3}, "well-known don't")
    assert not one({"type": "max_words", "n": 2}, "It is 3.5")
    assert one({"type": "min_words", "n": 0}, "!!!")
    # sentences are Punkt's: "Dr." and "3.5" do not end a sentence
    assert one({"type": "max_sentences", "n": 2}, "Dr. Smith came at 3.5 p.m. on Monday. He left!")
    assert not one({"type": "max_sentences", "n": 1}, "Dr. Smith came at 3.5 p.m. on Monday. He left!")
    assert one({"type": "min_sentences", "n": 3}, "Hi. Yes. Done")


def test_loose_results_forgive_a_leading_line():
    meta = {"checks": [{"type": "starts_with", "phrase": "Paris"}, {"type": "max_words", "n": 3},
                       {"type": "no_commas"}], "answer": "Paris"}
    res = run_checks("Sure, here it is:\nParis is lovely", meta)
    assert res.results == [("starts_with", False), ("max_words", False), ("no_commas", False), ("answer", True)]
    assert res.loose_results == [("starts_with", True), ("max_words", True), ("no_commas", True),
                                 ("answer", True)]
    assert not res.passed_all and res.passed_all_loose
    assert res.fraction == 0.25 and res.fraction_loose == 1.0
    # answer: loose = strict (dropping the last line would make 5 "the last number")
    res = run_checks("2 + 2 = 5\nno wait, 4", {"answer": 5})
    assert res.results == res.loose_results == [("answer", False)]


def test_no_commas_also_rejects_the_full_width_comma():
    assert not one({"type": "no_commas"}, "一，二")


def test_exclude_keywords_whole_words_and_special_characters():
    assert one({"type": "exclude_keywords", "keywords": ["cat"]}, "concatenate")  # IFEval forbidden_words
    assert not one({"type": "exclude_keywords", "keywords": ["e.g."]}, "as in, E.G. this")  # ours
    assert one({"type": "exclude_keywords", "keywords": ["e.g."]}, "as in eggs")  # "." is no wildcard
    assert not one({"type": "exclude_keywords", "keywords": ["C++"]}, "I like c++ a lot")
    assert one({"type": "exclude_keywords", "keywords": []}, "anything")


def test_json_variants():
    assert one({"type": "json"}, '  [1, 2, 3]  ')
    assert one({"type": "json"}, '```\n{"x": null}\n```')
    assert not one({"type": "json"}, 'Here is JSON: {"x": 1}')
    assert not one({"type": "json"}, '```json\n{"x": 1,}\n```')


def test_include_keywords_whole_words_and_punctuation():
    assert one({"type": "include_keywords", "keywords": ["C++"]}, "I like c++ a lot")
    assert not one({"type": "include_keywords", "keywords": ["cat"]}, "concatenate")


def test_answer_numbers_take_the_last_number():
    assert check_answer("First 3 apples, then 4, so the answer is 1,200.", 1200)
    assert check_answer("x = -7", -7)
    assert check_answer("It is 3/4 of the cake", 0.75)
    assert check_answer("It costs 12.50 dollars.", "12.5")
    assert not check_answer("The answer is 12, not 13.", 12)
    assert not check_answer("No number here", 3)
    assert not check_answer("H2O", 2)
    assert last_number("5-3 equals 2.") == 2.0


def test_answer_strings_and_alternatives():
    assert check_answer("The capital of France is Paris!", "Paris")
    assert check_answer("It's the Pacific Ocean.", ["Pacific", "Pacific Ocean"])
    assert not check_answer("It is Parisian food.", "Paris")
    assert not check_answer("", "Paris")
    assert normalize_answer("The  Great, Wall!") == "great wall"


def test_run_checks_combines_results_and_answer():
    meta = {"checks": [{"type": "max_words", "n": 10}, {"type": "no_commas"}], "answer": 4}
    res = run_checks("Two plus two is 4.", meta)
    assert res.passed_all and res.results == [("max_words", True), ("no_commas", True), ("answer", True)]
    res = run_checks("Two, plus two, is 5.", meta)
    assert not res.passed_all
    assert res.results == [("max_words", True), ("no_commas", False), ("answer", False)]
    assert res.fraction == pytest.approx(1 / 3) and res.num_passed == 1


def test_no_checks():
    for meta in (None, {}, {"category": "x"}, {"checks": []}):
        res = run_checks("anything", meta)
        assert res.passed_all and res.results == [] and res.fraction is None
        assert res.passed_all_loose and res.loose_results == [] and res.fraction_loose is None


@pytest.mark.parametrize("meta,key,needle", [
    ({"checks": [{"type": "max_wordz", "n": 3}]}, "meta.checks[0].type", "max_wordz"),
    ({"checks": [{"type": "lowercase"}, {"type": "max_words"}]}, "meta.checks[1].n", "needs 'n'"),
    ({"checks": [{"type": "max_words", "n": "3"}]}, "meta.checks[0].n", "must be"),
    ({"checks": [{"type": "max_words", "n": -1}]}, "meta.checks[0].n", "non-negative"),
    ({"checks": [{"type": "include_keywords", "keywords": "water"}]}, "meta.checks[0].keywords", "list"),
    ({"checks": [{"type": "no_commas", "n": 2}]}, "meta.checks[0]", "takes no 'n'"),
    ({"checks": {"type": "no_commas"}}, "meta.checks", "list"),
    ({"checks": ["no_commas"]}, "meta.checks[0]", "mapping"),
    ({"checks": [{"type": ["no_commas"]}]}, "meta.checks[0].type", "unknown check type"),
    ({"answer": {"x": 1}}, "meta.answer", "number"),
])
def test_bad_specs_raise_data_error(meta, key, needle):
    with pytest.raises(DataError) as ei:
        run_checks("text", meta)
    assert ei.value.key == key
    assert needle in str(ei.value)


# ------------------------------------------------------------------ eval.verifiable (uses the checks)
def test_pass_rate_per_type_strict_loose_pass_at_n():
    from selfalign.eval.verifiable import pass_rate

    meta = {"checks": [{"type": "no_commas"}, {"type": "max_words", "n": 3}]}
    recs = [
        {"id": "a", "meta": meta, "responses": [{"text": "fine and short"}, {"text": "a, b"}]},
        {"id": "b", "meta": meta, "response": "far too many words here, sorry"},
        {"id": "c", "meta": {"answer": 4}, "completion": [{"role": "assistant", "content": "It is 4"}]},
        {"id": "d", "meta": {}, "response": "no checks"},
    ]
    out = pass_rate(recs)
    assert out["prompts"] == 3 and out["responses"] == 4 and out["skipped"] == 1
    assert out["strict"] == pytest.approx(2 / 4)
    assert out["loose"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert out["pass_at_n"] == pytest.approx(2 / 3)
    assert out["per_type"] == {"answer": 1.0, "max_words": pytest.approx(2 / 3), "no_commas": pytest.approx(1 / 3)}
    assert out["per_type_n"] == {"answer": 1, "max_words": 3, "no_commas": 3}
    assert pass_rate([])["strict"] is None
    with pytest.raises(DataError, match="no 'responses'"):
        pass_rate([{"id": "x", "meta": meta}])


def test_judge_agreement_pairs_ties_top_and_correlation():
    from selfalign.eval.verifiable import judge_agreement, spearman

    out = judge_agreement([[3.0, 1.0, 2.0], [5.0, 5.0], [1.0, None, 2.0], [4.0, 4.0]],
                          [[1.0, 0.0, 0.5], [1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5]])
    # prompt 0: 3 agreeing pairs; prompt 1: one judge tie; prompt 2: one disagreeing pair
    assert out["pairs"] == 5
    assert out["strict_agreement"] == pytest.approx(3 / 5)
    assert out["agreement"] == pytest.approx(3.5 / 5)
    assert out["judge_tie_rate"] == pytest.approx(1 / 5)
    assert out["top_prompts"] == 3 and out["top_agreement"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert out["pearson"] is not None and -1 <= out["pearson"] <= 1
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [5, 5, 5]) is None
    with pytest.raises(DataError):
        judge_agreement([[1.0]], [[1.0, 0.0]])


def test_judge_agreement_from_records():
    from selfalign.eval.verifiable import judge_agreement_from_records

    meta = {"checks": [{"type": "lowercase"}, {"type": "no_commas"}]}
    recs = [{"id": "a", "meta": meta, "responses": [{"text": "ok fine", "score": 4.0},
                                                    {"text": "Not, ok", "score": 2.0},
                                                    {"text": "Half ok", "score": 5.0}]},
            {"id": "b", "meta": {}, "responses": [{"text": "x", "score": 1.0}]}]
    out = judge_agreement_from_records(recs)
    assert out["prompts"] == 1 and out["pairs"] == 3
    assert out["strict_agreement"] == pytest.approx(2 / 3)
    out = judge_agreement_from_records(recs, metric="all")
    assert out["pairs"] == 2 and out["strict_agreement"] == pytest.approx(1 / 2)


# -------------------------------------------------------------------------- the shipped prompt set
def _shipped():
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples" / "data"
    return {split: [json.loads(line) for line in (root / f"prompts_{split}.jsonl").read_text().splitlines()]
            for split in ("train", "heldout")}


def test_shipped_prompt_set_is_valid_and_balanced():
    from selfalign.checks import validate_checks

    data = _shipped()
    train, held = data["train"], data["heldout"]
    assert len(train) >= 1000 and len(held) >= 200
    for recs in (train, held):
        for r in recs:
            assert set(r) == {"id", "prompt", "meta"} and r["prompt"].strip() and r["meta"].get("category")
            validate_checks(r["meta"], file=r["id"])
            run_checks("probe", r["meta"])
        assert sum(bool(r["meta"].get("checks")) for r in recs) >= 0.6 * len(recs)
    assert len({r["id"] for r in train + held}) == len(train) + len(held)
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in held}
    assert {r["meta"]["category"] for r in train} == {r["meta"]["category"] for r in held}


def test_prompt_generator_is_deterministic_and_matches_shipped_files():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "make_prompts.py"
    spec = importlib.util.spec_from_file_location("make_prompts", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    train, held = mod.build()
    assert (train, held) == mod.build()
    shipped = _shipped()
    assert train == shipped["train"] and held == shipped["heldout"]
