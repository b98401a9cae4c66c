"""The ``function`` judge: built-in verifiable scorer, module:function callables, combining scores."""

from __future__ import annotations

import textwrap

import pytest

from selfalign.errors import ConfigError, DataError, SelfalignError
from selfalign.judges import build_judge
from selfalign.judges.function import FunctionJudge, combine_scores, load_callable, verifiable_score

USER_MODULE = textwrap.dedent('''
    def length_score(prompt, response, meta):
        """1 point per word, None for an empty response."""
        n = len(response.split())
        return float(n) if n else None

    def echo_meta(prompt, response, meta):
        return meta.get("bonus", 0) + (1 if isinstance(prompt, list) else 0)

    def bad_type(prompt, response, meta):
        return "high"

    def boom(prompt, response, meta):
        raise ZeroDivisionError("oops")

    def as_bool(prompt, response, meta):
        return "yes" in response

    NOT_CALLABLE = 3
''')


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "sa_user_scores.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path / "sa_user_scores.py"


def cand(rid, texts, meta=None, prompt="Say something."):
    return {"id": rid, "prompt": prompt, "meta": meta or {},
            "responses": [{"text": t, "finish": "stop", "num_tokens": len(t.split())} for t in texts]}


CHECK_META = {"checks": [{"type": "max_words", "n": 3}, {"type": "no_commas"}, {"type": "lowercase"}]}


def test_verifiable_fraction_and_all_modes():
    recs = [cand("p1", ["all good here", "Too, many words in this", "Nope, Upper"], CHECK_META),
            cand("p2", ["no checks here"])]
    judge = build_judge({"type": "function"})
    assert isinstance(judge, FunctionJudge)
    out = judge.score_records(recs)
    assert [r["score"] for r in out[0]["responses"]] == pytest.approx([1.0, 0.0, 1 / 3])
    assert out[0]["responses"][0]["score_var"] == 0.0
    assert out[0]["responses"][2]["judgements"][0]["checks"] == [["max_words", True], ["no_commas", False],
                                                                 ["lowercase", False]]
    assert [r["score"] for r in out[1]["responses"]] == [None]
    assert out[1]["responses"][0]["score_var"] is None
    assert "score" not in recs[0]["responses"][0]  # inputs untouched

    strict = build_judge({"type": "function", "mode": "all"}).score_records(recs)
    assert [r["score"] for r in strict[0]["responses"]] == [1.0, 0.0, 0.0]

    st = judge.stats()
    assert st["judge"] == "function"
    assert st["responses"] == 4 and st["unscored_responses"] == 1
    assert st["judgements"] == 3 and st["parse_failure_rate"] == 0.0
    assert st["pass_no_commas_mean"] == pytest.approx(1 / 3)
    assert st["pass_all_mean"] == pytest.approx(1 / 3)
    assert st["tie_rate"] == 0.0


def test_verifiable_score_helper_and_answer():
    assert verifiable_score("q", "It is 4.", {"answer": 4}) == 1.0
    assert verifiable_score("q", "It is 5.", {"answer": 4}) == 0.0
    assert verifiable_score("q", "x", {"category": "math"}) is None


def test_unknown_check_type_in_records_is_a_data_error():
    judge = build_judge({"type": "function"})
    with pytest.raises(DataError, match="p9.*unknown check type 'shout'"):
        judge.score_records([cand("p9", ["hi"], {"checks": [{"type": "shout"}]})])


def test_module_function_callable(user_module):
    judge = build_judge({"type": "function", "function": "sa_user_scores:length_score", "name": "len"})
    out = judge.score_records([cand("a", ["one two", "", "one two three"]), cand("b", ["x y", "z w"])])
    assert [r["score"] for r in out[0]["responses"]] == [2.0, None, 3.0]
    assert out[0]["responses"][0]["judgements"] == [{"score": 2.0}]
    st = judge.stats()
    assert st["judge"] == "len"
    assert st["parse_failure_rate"] == pytest.approx(1 / 5)
    assert st["tie_rate"] == pytest.approx(1 / 2)  # record b: both 2 words
    assert st["score_histogram"] == {"2": 3, "3": 1}

    msgs = [{"role": "user", "content": "hi"}]
    out = build_judge({"type": "function", "function": "sa_user_scores:echo_meta"}).score_records(
        [cand("c", ["r"], {"bonus": 2}, prompt=msgs)])
    assert out[0]["responses"][0]["score"] == 3.0
    out = build_judge({"type": "function", "function": "sa_user_scores:as_bool"}).score_records(
        [cand("d", ["yes", "no"])])
    assert [r["score"] for r in out[0]["responses"]] == [1.0, 0.0]


def test_file_path_callable(user_module):
    fn = load_callable(f"{user_module}:length_score")
    assert fn("p", "a b c", {}) == 3.0


@pytest.mark.parametrize("spec,needle", [
    ("sa_user_scores", "module:function"),
    ("sa_no_such_module_xyz:f", "cannot import module"),
    ("sa_user_scores:missing", "no callable 'missing'"),
    ("sa_user_scores:NOT_CALLABLE", "no callable"),
    ("/no/such/file.py:f", "no such file"),
    ("os:system; rm", "module:function"),
])
def test_bad_callable_specs(user_module, spec, needle):
    with pytest.raises(ConfigError, match=needle):
        build_judge({"type": "function", "function": spec})


def test_bad_return_and_raising_function(user_module):
    with pytest.raises(DataError, match="returned str"):
        build_judge({"type": "function", "function": "sa_user_scores:bad_type"}).score_records([cand("a", ["x"])])
    with pytest.raises(SelfalignError, match="ZeroDivisionError: oops"):
        build_judge({"type": "function", "function": "sa_user_scores:boom"}).score_records([cand("a", ["x"])])


def test_unknown_config_key():
    with pytest.raises(ConfigError, match="modee"):
        build_judge({"type": "function", "modee": "all"})


def scored(rid, scores, vars_=None, texts=None):
    texts = texts or [f"t{i}" for i in range(len(scores))]
    vars_ = vars_ or [0.0] * len(scores)
    return {"id": rid, "prompt": "p", "meta": {},
            "responses": [{"text": t, "score": s, "score_var": v} for t, s, v in zip(texts, scores, vars_)]}


def test_combine_scores_weights_none_and_variance():
    a = [scored("x", [4.0, 2.0, None], [0.5, 0.0, None]), scored("y", [1.0])]
    b = [scored("y", [0.5], [0.0]), scored("x", [1.0, None, 0.0], [0.0, None, 0.0])]
    out = combine_scores(a, b, (1.0, 2.0), names=("rubric", "checks"))
    assert [r["score"] for r in out[0]["responses"]] == [6.0, 2.0, None]
    assert out[0]["responses"][0]["score_var"] == 0.5
    assert out[0]["responses"][0]["components"] == {"rubric": 4.0, "checks": 1.0}
    assert out[1]["responses"][0]["score"] == 2.0
    strict = combine_scores(a, b, (1.0, 2.0), optional_b=False)
    assert [r["score"] for r in strict[0]["responses"]] == [6.0, None, None]
    weighted = combine_scores([scored("z", [2.0], [1.0])], [scored("z", [1.0], [1.0])], (0.5, 3.0))
    assert weighted[0]["responses"][0]["score"] == 4.0
    assert weighted[0]["responses"][0]["score_var"] == pytest.approx(0.25 + 9.0)


@pytest.mark.parametrize("b,needle", [
    ([scored("other", [1.0])], "no scores"),
    ([scored("x", [1.0, 2.0])], "responses"),
    ([scored("x", [1.0], texts=["different"])], "differs"),
    ([scored("x", [1.0]), scored("x", [1.0])], "duplicate id"),
])
def test_combine_scores_mismatch(b, needle):
    with pytest.raises(DataError, match=needle):
        combine_scores([scored("x", [1.0])], b)


def test_function_judge_combined_with_another_judge(user_module):
    cfg = {"type": "function", "function": "verifiable",
           "combine": {"with": {"type": "function", "function": "sa_user_scores:length_score", "name": "len"},
                       "weight": 0.5, "self_weight": 10.0}}
    judge = build_judge(cfg)
    recs = [cand("p1", ["all good here", "Too, many words in this"], CHECK_META), cand("p2", ["a b", ""])]
    out = judge.score_records(recs)
    assert [r["score"] for r in out[0]["responses"]] == pytest.approx([0.5 * 3 + 10.0, 0.5 * 5 + 0.0])
    # p2 has no checks: the length score alone; an empty response stays unscored
    assert [r["score"] for r in out[1]["responses"]] == [1.0, None]
    assert out[0]["responses"][0]["components"] == {"len": 3.0, "verifiable": 1.0}
    st = judge.stats()
    assert st["responses"] == 4 and st["unscored_responses"] == 1
    assert st["function"]["pass_all_mean"] == 0.5
    assert st["other"]["judge"] == "len"

    cfg["combine"]["required"] = True
    out = build_judge(cfg).score_records(recs)
    assert [r["score"] for r in out[1]["responses"]] == [None, None]


def test_combine_config_is_validated():
    with pytest.raises(ConfigError, match="combine"):
        build_judge({"type": "function", "combine": {"with": {"type": "function", "bogus": 1}}})
    with pytest.raises(ConfigError, match="with"):
        build_judge({"type": "function", "combine": {"weight": 1.0}})


def test_plain_string_responses_are_scored():
    from selfalign.judges import build_judge

    rec = {"id": "a", "prompt": "say hi in lowercase", "meta": {"checks": [{"type": "lowercase"}]},
           "responses": ["hi there", "HI"]}
    out = build_judge({"type": "function", "function": "verifiable"}).score_records([rec])
    assert [r["text"] for r in out[0]["responses"]] == ["hi there", "HI"]
    assert [r["score"] for r in out[0]["responses"]] == [1.0, 0.0]
    assert rec["responses"] == ["hi there", "HI"]  # the input is not modified
