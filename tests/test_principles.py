"""Principles as data: loading (JSON/YAML, one-line errors with file:line: key), negation, the
reviewer prompt, and the RL-time weighted sampling without replacement."""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import permutations

import pytest

from selfalign.errors import DataError
from selfalign.judges.pairwise_principle import Principle as ReexportedPrinciple
from selfalign.judges.pairwise_principle import load_principles as reexported_load
from selfalign.principles import (
    Principle,
    load_principles,
    principle_text,
    prompt_kind,
    render_reviewer_messages,
    rl_reviewer_definitions,
    sample_weighted,
    shipped_principles,
)

N = 20000


def _error(path, match=None) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        load_principles(str(path))
    msg = str(info.value)
    assert "\n" not in msg
    return info.value


# ------------------------------------------------------------------------------------------- loading
def test_shipped_lists_load():
    assert shipped_principles() == ["intervention", "judging", "rl"]
    sizes = {n: len(load_principles(n)) for n in shipped_principles()}
    assert sizes == {"judging": 11, "rl": 14, "intervention": 3}
    rl = load_principles("rl")
    assert {t for p in rl for t in p.tags} == {"general", "reasoning"}
    assert reexported_load is load_principles and ReexportedPrinciple is Principle


def test_user_yaml_and_json_load(tmp_path):
    y = tmp_path / "mine.yaml"
    y.write_text("description: two of mine\nprinciples:\n"
                 "  - name: Brief\n    definition: Short.\n    weight: 1e-1\n"
                 "  - name: Kind\n    definition: Polite.\n    negative_definition: Rude.\n    tags: [general]\n")
    ps = load_principles(y)
    assert [p.name for p in ps] == ["Brief", "Kind"]
    assert ps[0].weight == pytest.approx(0.1) and ps[1].weight == 1.0 and ps[1].tags == ["general"]
    yml = tmp_path / "list.yml"
    yml.write_text("- {name: A, definition: Does a.}\n")
    assert [p.name for p in load_principles(yml)] == ["A"]
    j = tmp_path / "mine.json"
    j.write_text(json.dumps({"description": "x", "principles": [{"name": "A", "definition": "a", "weight": 3}]}))
    assert load_principles(str(j))[0].weight == 3.0
    j2 = tmp_path / "list.json"
    j2.write_text(json.dumps([{"name": "B", "definition": "b"}]))
    assert [p.name for p in load_principles(j2)] == ["B"]


def test_yaml_bad_weight_type_names_file_line_and_key(tmp_path):
    y = tmp_path / "bad.yaml"
    y.write_text("principles:\n"
                 "  - name: A\n    definition: a\n"
                 "  - name: B\n    definition: b\n    weight: heavy\n")
    err = _error(y)
    assert err.line == 6 and err.key == "principles[1].weight"
    assert str(err).startswith(f"{y}:6: principles[1].weight: ") and "heavy" in str(err)


def test_yaml_syntax_error_has_line(tmp_path):
    y = tmp_path / "broken.yaml"
    y.write_text("principles:\n  - name: A\n    definition: [unclosed\n")
    err = _error(y, "invalid YAML")
    assert err.line is not None and f"{y}:{err.line}:" in str(err)


def test_json_missing_definition_names_file_line_and_key(tmp_path):
    j = tmp_path / "bad.json"
    j.write_text(json.dumps({"principles": [{"name": "A", "definition": "a"}, {"name": "X", "weight": 1}]},
                            indent=1))
    lines = j.read_text().splitlines()
    item_line = next(n for n, t in enumerate(lines, 1) if '"X"' in t) - 1  # the "{" opening item 1
    assert lines[item_line - 1].strip() == "{"
    err = _error(j, "definition")
    assert err.key == "principles[1].definition" and err.line == item_line
    assert str(err).startswith(f"{j}:{item_line}: principles[1].definition: ")


def test_json_wrong_value_points_at_its_key_line(tmp_path):
    j = tmp_path / "bad.json"
    j.write_text('[\n {"name": "A", "definition": "a"},\n {"name": "B",\n  "definition": "b",\n'
                 '  "tags": ["ok", 5]}\n]\n')
    err = _error(j)
    assert err.key == "principles[1].tags[1]" and err.line == 5 and f"{j}:5:" in str(err)


def test_json_syntax_error_has_line(tmp_path):
    j = tmp_path / "broken.json"
    j.write_text('{"principles": [\n {"name": "A",\n  "definition": "a",,}\n]}\n')
    err = _error(j, "invalid JSON")
    assert err.line == 3 and f"{j}:3:" in str(err)


def test_duplicate_names_name_both_lines(tmp_path):
    y = tmp_path / "dup.yaml"
    y.write_text("principles:\n  - name: A\n    definition: a\n  - name: B\n    definition: b\n"
                 "  - name: A\n    definition: again\n")
    err = _error(y, "duplicate principle name 'A'")
    assert err.line == 6 and "line 2" in str(err) and str(err).startswith(f"{y}:6: principles[2].name: ")
    j = tmp_path / "dup.json"
    j.write_text('[\n{"name": "A", "definition": "a"},\n{"name": "A", "definition": "b"}\n]')
    err = _error(j, "duplicate")
    assert err.line == 3 and "line 2" in str(err) and f"{j}:3:" in str(err)


def test_empty_list_and_negative_weight_and_unknown_name(tmp_path):
    e = tmp_path / "empty.json"
    e.write_text('{"description": "none",\n "principles": []}')
    err = _error(e, "empty")
    assert err.line == 2 and f"{e}:2: principles: " in str(err)
    e2 = tmp_path / "empty.yaml"
    e2.write_text("[]\n")
    assert "empty.yaml" in str(_error(e2, "empty"))
    n = tmp_path / "neg.yaml"
    n.write_text("principles:\n  - name: A\n    definition: a\n    weight: -1\n")
    err = _error(n, "greater than or equal to 0")
    assert err.line == 4 and str(err).startswith(f"{n}:4: principles[0].weight: ")
    nokey = tmp_path / "nokey.yaml"
    nokey.write_text("description: x\n")
    assert "principles" in str(_error(nokey))
    err = _error("no_such_list", "shipped")
    assert "judging" in str(err) and "no_such_list" in str(err)


def test_principle_text_and_negation():
    p = Principle(name="Brief", definition="Short.", negative_definition="Long-winded.")
    assert principle_text(p) == "Short." and principle_text(p, negated=True) == "Long-winded."
    with pytest.raises(DataError, match="'Plain' has no negative_definition"):
        principle_text(Principle(name="Plain", definition="x"), negated=True)
    assert all(principle_text(p, negated=True) for p in load_principles("rl"))


# -------------------------------------------------------------------------------------------- reviewer
def test_reviewer_messages():
    defs = ["First rule.", "Second rule\n  spans lines.", "Third rule."]
    msgs = render_reviewer_messages("Write {x} please.", "Here is {x} and {principles} and }{.", defs)
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[1]["content"] == "The quality of the output is"
    user = msgs[0]["content"]
    assert "- First rule.\n- Second rule spans lines.\n- Third rule." in user
    assert "Write {x} please." in user and "Here is {x} and {principles} and }{." in user
    assert user.index("Write {x}") < user.index("Here is {x}") < user.index("- First rule.")
    assert "{instruction}" not in user and "{response}" not in user
    rl = load_principles("rl")[:3]
    user = render_reviewer_messages("Q", "A", [p.definition for p in rl])[0]["content"]
    assert not any(p.name in user for p in rl)
    with pytest.raises(ValueError):
        render_reviewer_messages("Q", "A", [])


# -------------------------------------------------------------------------------------------- sampling
def _ps(weights, tags=None):
    tags = tags or [[] for _ in weights]
    return [Principle(name=f"p{i}", definition=f"d{i}", weight=w, tags=t)
            for i, (w, t) in enumerate(zip(weights, tags))]


def _freqs(principles, k, seed=0, **kw):
    rng = random.Random(seed)
    return Counter(tuple(p.name for p in sample_weighted(principles, k, rng, **kw)) for _ in range(N))


def test_single_draw_frequencies():
    c = _freqs(_ps([2, 1, 1]), 1)
    for name, p in (("p0", 0.5), ("p1", 0.25), ("p2", 0.25)):
        assert abs(c[(name,)] / N - p) < 0.015


def test_pair_frequencies_match_sequential_without_replacement():
    w = [2.0, 1.0, 1.0]
    c = _freqs(_ps(w), 2, seed=1)
    total = sum(w)
    for i, j in permutations(range(3), 2):
        exact = w[i] / total * w[j] / (total - w[i])  # 0.25, 0.25, 1/6, 1/12, 1/6, 1/12
        assert abs(c[(f"p{i}", f"p{j}")] / N - exact) < 0.015
    assert sum(c.values()) == N and all(a != b for a, b in c)


def test_reasoning_boost_exact_expectation():
    ps = _ps([1, 1, 2], [["general"], ["reasoning"], ["Numerical"]])
    boosted = _freqs(ps, 1, seed=2, kind="reasoning", reasoning_boost=2.0)
    for name, p in (("p0", 1 / 7), ("p1", 2 / 7), ("p2", 4 / 7)):  # effective weights 1, 2, 4
        assert abs(boosted[(name,)] / N - p) < 0.015
    plain = _freqs(ps, 1, seed=2, kind="general", reasoning_boost=2.0)
    for name, p in (("p0", 0.25), ("p1", 0.25), ("p2", 0.5)):
        assert abs(plain[(name,)] / N - p) < 0.015


def test_zero_weight_never_drawn_and_k_too_large():
    ps = _ps([1, 0, 1])
    c = _freqs(ps, 2, seed=3)
    assert not any("p1" in pair for pair in c)
    with pytest.raises(ValueError, match="cannot draw 3 distinct principles: only 2"):
        sample_weighted(ps, 3, random.Random(0))
    ps = _ps([1, 1], [["reasoning"], []])
    with pytest.raises(ValueError, match="only 1"):
        sample_weighted(ps, 2, random.Random(0), kind="reasoning", reasoning_boost=0.0)
    with pytest.raises(ValueError, match="kind"):
        sample_weighted(ps, 1, random.Random(0), kind="maths")
    assert sample_weighted(ps, 0, random.Random(0)) == []


def test_deterministic_for_a_seed():
    rl = load_principles("rl")
    a = [p.name for _ in range(20) for p in sample_weighted(rl, 3, random.Random(7))]
    b = [p.name for _ in range(20) for p in sample_weighted(rl, 3, random.Random(7))]
    assert a == b
    seq = random.Random(7)
    runs = [[p.name for p in sample_weighted(rl, 3, seq)] for _ in range(20)]
    assert len({tuple(r) for r in runs}) > 1 and all(len(set(r)) == 3 for r in runs)


def test_rl_reviewer_definitions():
    inter, rl = load_principles("intervention"), load_principles("rl")
    defs = rl_reviewer_definitions(inter, rl, random.Random(0), k=3, kind="reasoning")
    assert defs[:3] == [p.definition for p in inter]
    rl_defs = {p.definition for p in rl}
    assert len(defs) == 6 and len(set(defs[3:])) == 3 and set(defs[3:]) <= rl_defs
    assert defs == rl_reviewer_definitions(inter, rl, random.Random(0), k=3, kind="reasoning")


def test_prompt_kind():
    assert prompt_kind(None) == "general"
    assert prompt_kind({}) == "general"
    assert prompt_kind({"kind": "reasoning"}) == "reasoning"
    assert prompt_kind({"kind": "Reasoning "}) == "reasoning"
    assert prompt_kind({"kind": "chat"}) == "general"
    assert prompt_kind({"tags": ["math", "reasoning"]}) == "reasoning"
    assert prompt_kind({"type": "reasoning"}, key="type") == "reasoning"
    assert prompt_kind({"type": "reasoning"}) == "general"
