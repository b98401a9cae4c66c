"""Preference / prompt / SFT record formats: detection, normalisation, conversions both ways."""

from __future__ import annotations

import copy

import pytest

from selfalign.data.convert import (
    from_llm_on_ray,
    from_openrlhf,
    from_trl,
    to_llm_on_ray,
    to_openrlhf,
    to_trl,
)
from selfalign.data.formats import (
    detect_preference_format,
    load_preferences,
    load_prompts,
    load_sft,
    make_id,
    normalize_preference,
    normalize_prompt,
    normalize_sft,
)
from selfalign.data.io import write_jsonl
from selfalign.errors import DataError


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


SYS = {"role": "system", "content": "Be brief."}

STANDARD = [
    {"id": "s1", "prompt": "What is 2+2?", "chosen": "4.", "rejected": "5.", "chosen_score": 5.0,
     "rejected_score": 1.0, "meta": {"round": 1}},
    {"id": "s2", "prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome.",
     "chosen_score": 4.0, "rejected_score": 2.0, "meta": {}},
]
CONVERSATIONAL = [
    {"id": "c1", "prompt": [SYS, U("What is 2+2?")], "chosen": [A("4.")], "rejected": [A("5.")],
     "meta": {"src": "x"}},
    {"id": "c2", "prompt": [U("Hi"), A("Hello!"), U("Capital of France?")], "chosen": [A("Paris.")],
     "rejected": [A("Rome.")], "meta": {}},
]


# ---------------------------------------------------------------------------------------- detection
@pytest.mark.parametrize("record, kw, name, style", [
    ({"prompt": "q", "chosen": "a", "rejected": "b"}, {}, "trl_standard", "standard"),
    ({"prompt": [U("q")], "chosen": [A("a")], "rejected": [A("b")]}, {}, "trl_conversational",
     "conversational"),
    ({"chosen": [U("q"), A("a")], "rejected": [U("q"), A("b")]}, {}, "implicit_prompt", "implicit"),
    ({"instruction": "q", "chosen": "a", "rejected": "b"}, {}, "llm_on_ray", "standard"),
    ({"prompt": "q", "chosen": "a", "reject": "b"}, {}, "openrlhf", "standard"),
    ({"input": [U("q")], "good": [A("a")], "bad": [A("b")]},
     {"prompt_key": "input", "chosen_key": "good", "rejected_key": "bad"}, "openrlhf", "conversational"),
])
def test_detect(record, kw, name, style):
    form = detect_preference_format(record, **kw)
    assert (form.name, form.style) == (name, style)


# ----------------------------------------------------------------------------------- normalisation
def test_normalize_is_identity_on_canonical_and_idempotent():
    for rec in STANDARD + CONVERSATIONAL:
        assert normalize_preference(copy.deepcopy(rec)) == rec
        assert normalize_preference(normalize_preference(rec)) == rec


def test_normalize_llm_on_ray_with_input_and_openrlhf_reject():
    rec = {"instruction": "Translate to French.", "input": "cat", "chosen": "chat", "rejected": "chien"}
    out = normalize_preference(rec)
    assert out["prompt"] == "Translate to French.\n\ncat"
    assert set(out) == {"id", "prompt", "chosen", "rejected"}
    out = normalize_preference({"id": 3, "prompt": "q", "chosen": "a", "reject": "b", "x": 1})
    assert out == {"id": "3", "prompt": "q", "chosen": "a", "rejected": "b", "x": 1}


def test_implicit_prompt_is_extracted():
    rec = {"chosen": [SYS, U("q"), A("good")], "rejected": [SYS, U("q"), A("bad")]}
    out = normalize_preference(rec)
    assert out["prompt"] == [SYS, U("q")]
    assert out["chosen"] == [A("good")] and out["rejected"] == [A("bad")]
    # shared first answer, different follow-ups: prompt stops before the assistant turn
    rec = {"chosen": [U("q"), A("a"), U("more"), A("x")], "rejected": [U("q"), A("a"), U("more"), A("y")]}
    out = normalize_preference(rec)
    assert out["prompt"] == [U("q"), A("a"), U("more")]
    assert out["chosen"] == [A("x")]
    rec = {"chosen": [U("q"), A("a")], "rejected": [U("other"), A("b")]}
    with pytest.raises(DataError, match="share no prompt"):
        normalize_preference(rec)


def test_mixed_string_and_messages_become_conversational():
    out = normalize_preference({"prompt": "q", "chosen": [A("a")], "rejected": "b"})
    assert out["prompt"] == [U("q")] and out["rejected"] == [A("b")]


def test_missing_id_is_a_stable_content_hash():
    a = normalize_preference({"prompt": "q", "chosen": "a", "rejected": "b"})
    b = normalize_preference({"prompt": "q", "chosen": "a", "rejected": "b"})
    c = normalize_preference({"prompt": "q", "chosen": "a", "rejected": "c"})
    assert a["id"] == b["id"] == make_id("q", "a", "b") and a["id"] != c["id"]


@pytest.mark.parametrize("record, kw, pattern", [
    ({"prompt": "q", "chosen": "a"}, {}, "rejected: missing key"),
    ({"prompt": "q", "chosen": "a", "reject": "b"}, {"rejected_key": "bad"}, "bad: missing key"),
    ({"prompt": "  ", "chosen": "a", "rejected": "b"}, {}, "prompt: empty prompt"),
    ({"prompt": "q", "chosen": "", "rejected": "b"}, {}, "chosen: empty chosen"),
    ({"prompt": 5, "chosen": "a", "rejected": "b"}, {}, "prompt: prompt must be a string or a list"),
    ({"prompt": "q", "chosen": None, "rejected": "b"}, {}, "chosen: chosen is null"),
    ({"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}, {}, "content' must be a string"),
    ({"prompt": [U("q")], "chosen": [U("a")], "rejected": [A("b")]}, {}, "must start with an assistant"),
    ({"prompt": [U("q"), A("x")], "chosen": [A("a")], "rejected": [A("b")]}, {},
     "must not end with an assistant"),
    ({"chosen": "a", "rejected": "b"}, {}, "prompt: missing key"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "id": 1.5}, {}, "id: id must be a string"),
    (["not", "a", "dict"], {}, "record must be an object"),
])
def test_bad_preference_records(record, kw, pattern):
    with pytest.raises(DataError, match=pattern):
        normalize_preference(record, file="f.jsonl", line=7, **kw)
    with pytest.raises(DataError) as e:
        normalize_preference(record, file="f.jsonl", line=7, **kw)
    assert str(e.value).startswith("f.jsonl:7: ") and e.value.line == 7


# -------------------------------------------------------------------------------------- round trips
def test_trl_both_ways():
    for data in (STANDARD, CONVERSATIONAL):
        assert to_trl(copy.deepcopy(data)) == data
        assert from_trl(to_trl(data)) == data
    implicit = [{"id": "i", "chosen": [U("q"), A("a")], "rejected": [U("q"), A("b")]}]
    assert to_trl(implicit) == [{"id": "i", "prompt": [U("q")], "chosen": [A("a")], "rejected": [A("b")]}]


def test_trl_style_switch_round_trip():
    conv = to_trl(STANDARD, conversational=True)
    assert conv[0]["prompt"] == [U("What is 2+2?")] and conv[0]["chosen"] == [A("4.")]
    assert to_trl(conv, conversational=False) == STANDARD
    with pytest.raises(DataError, match="cannot turn a 2-message conversation"):
        to_trl(CONVERSATIONAL, conversational=False)
    mixed = to_trl([STANDARD[0], CONVERSATIONAL[0]])
    assert all(isinstance(r["prompt"], list) for r in mixed)


@pytest.mark.parametrize("keys", [
    {},
    {"rejected_key": "reject"},
    {"prompt_key": "context_messages", "chosen_key": "win", "rejected_key": "lose"},
])
def test_openrlhf_both_ways(keys):
    for data in (STANDARD, CONVERSATIONAL):
        rows = to_openrlhf(data, **keys)
        pk, ck, rk = keys.get("prompt_key", "prompt"), keys.get("chosen_key", "chosen"), keys.get(
            "rejected_key", "rejected")
        assert rows[0][pk] == data[0]["prompt"] and rows[0][ck] == data[0]["chosen"]
        assert rows[0][rk] == data[0]["rejected"] and rows[0]["meta"] == data[0]["meta"]
        assert from_openrlhf(rows, **keys) == data
        assert to_openrlhf(from_openrlhf(rows, **keys), **keys) == rows


def test_openrlhf_implicit_both_ways():
    rows = to_openrlhf(CONVERSATIONAL, prompt_key=None, rejected_key="reject")
    assert rows[1]["chosen"] == [U("Hi"), A("Hello!"), U("Capital of France?"), A("Paris.")]
    assert rows[1]["reject"][-1] == A("Rome.") and "prompt" not in rows[1]
    assert from_openrlhf(rows, prompt_key=None, rejected_key="reject") == CONVERSATIONAL
    # string records are lifted to one-turn conversations
    lifted = from_openrlhf(to_openrlhf(STANDARD, prompt_key=None), prompt_key=None)
    assert to_trl(lifted, conversational=False) == STANDARD


def test_llm_on_ray_both_ways():
    rows = to_llm_on_ray(STANDARD)
    assert rows[0]["instruction"] == "What is 2+2?" and "prompt" not in rows[0]
    assert from_llm_on_ray(rows) == STANDARD
    assert to_llm_on_ray(from_llm_on_ray(rows)) == rows
    as_prompt = to_llm_on_ray(STANDARD, prompt_key="prompt")  # the original's own sample data
    assert from_llm_on_ray(as_prompt) == STANDARD
    one_turn = [{"id": "x", "prompt": [U("q")], "chosen": [A("a")], "rejected": [A("b")]}]
    assert from_llm_on_ray(to_llm_on_ray(one_turn)) == to_trl(one_turn, conversational=False)
    with pytest.raises(DataError, match="<records>:1: prompt: cannot turn"):
        to_llm_on_ray(CONVERSATIONAL)


# ------------------------------------------------------------------------------------------ prompts
@pytest.mark.parametrize("record, kw, expected", [
    ({"prompt": "Hi"}, {}, "Hi"),
    ({"prompt": [U("Hi")]}, {}, [U("Hi")]),
    ({"instruction": "Add.", "input": "2+2"}, {}, "Add.\n\n2+2"),
    ({"instruction": "Add 2+2.", "input": ""}, {}, "Add 2+2."),
    ({"question": "2+2?", "answer": "4"}, {}, "2+2?"),
    ({"messages": [SYS, U("a"), A("b"), U("c"), A("d")]}, {}, [SYS, U("a"), A("b"), U("c")]),
    ({"query": "x"}, {"prompt_key": "query"}, "x"),
])
def test_normalize_prompt_forms(record, kw, expected):
    out = normalize_prompt(record, **kw)
    assert out["prompt"] == expected
    assert out["id"] == make_id(expected)
    for k in ("instruction", "input", "question", "messages", "query"):
        assert k not in out
    if "answer" in record:
        assert out["answer"] == record["answer"]  # other keys are kept


@pytest.mark.parametrize("record, pattern", [
    ({"text": "x"}, "prompt: missing key"),
    ({"prompt": ""}, "empty prompt"),
    ({"prompt": {"a": 1}}, "must be a string or a list"),
    ({"messages": [A("only answer")]}, "no user message"),
    ({"instruction": "x", "input": 3}, "input: must be a string"),
])
def test_bad_prompt_records(record, pattern):
    with pytest.raises(DataError, match=pattern):
        normalize_prompt(record)


# ---------------------------------------------------------------------------------------------- SFT
@pytest.mark.parametrize("record, prompt, completion", [
    ({"prompt": "Hi", "completion": "Hello"}, "Hi", "Hello"),
    ({"prompt": [U("Hi")], "completion": [A("Hello")]}, [U("Hi")], [A("Hello")]),
    ({"prompt": [U("Hi")], "completion": "Hello"}, [U("Hi")], [A("Hello")]),
    ({"messages": [SYS, U("Hi"), A("Hello"), U("Bye"), A("Ciao")]}, [SYS, U("Hi"), A("Hello"), U("Bye")],
     [A("Ciao")]),
    ({"instruction": "Say hi", "input": "politely", "output": "Hello"}, "Say hi\n\npolitely", "Hello"),
    ({"instruction": "Say hi", "response": "Hi"}, "Say hi", "Hi"),
    ({"question": "2+2?", "answer": "4"}, "2+2?", "4"),
])
def test_normalize_sft_forms(record, prompt, completion):
    out = normalize_sft(record)
    assert (out["prompt"], out["completion"]) == (prompt, completion)
    assert set(out) == {"id", "prompt", "completion"}


def test_normalize_sft_custom_keys_and_errors():
    out = normalize_sft({"q": "x", "a": "y", "meta": {}}, prompt_key="q", completion_key="a")
    assert (out["prompt"], out["completion"], out["meta"]) == ("x", "y", {})
    with pytest.raises(DataError, match="completion: missing key"):
        normalize_sft({"prompt": "x"})
    with pytest.raises(DataError, match="needs a prompt turn followed by an assistant"):
        normalize_sft({"messages": [U("x")]})
    with pytest.raises(DataError, match="empty completion"):
        normalize_sft({"prompt": "x", "completion": " "})


# ------------------------------------------------------------------------------------------ loaders
def test_loaders_report_file_and_line(tmp_path):
    p = tmp_path / "prefs.jsonl"
    write_jsonl(p, [{"prompt": "q", "chosen": "a", "reject": "b"}, {"prompt": "q", "chosen": "a"}])
    with pytest.raises(DataError) as e:
        load_preferences(p)
    assert str(e.value) == f"{p}:2: rejected: missing key"
    write_jsonl(p, [{"prompt": "q", "good": "a", "bad": "b"}])
    assert load_preferences(p, chosen_key="good", rejected_key="bad")[0]["chosen"] == "a"
    write_jsonl(p, [{"instruction": "x"}, {"question": "y"}])
    assert [r["prompt"] for r in load_prompts(p)] == ["x", "y"]
    write_jsonl(p, [{"instruction": "x", "output": "y"}])
    assert load_sft(p)[0]["completion"] == "y"
