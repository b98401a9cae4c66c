"""Intervals and paired tests for held-out pass rates, against hand computations."""

from __future__ import annotations

import json
import math

import pytest

from selfalign.eval.compare import compare_answers, mcnemar_exact, wilson_interval


def test_wilson_interval_by_hand():
    # k = 18, n = 70, z = 1.96: centre = (18 + 1.9208) / 73.8416, half = 1.96 * sqrt(18*52/70 + 0.9604) / 73.8416
    z = 1.959964
    centre = (18 + z * z / 2) / (70 + z * z)
    half = z * math.sqrt(18 * 52 / 70 + z * z / 4) / (70 + z * z)
    lo, hi = wilson_interval(18, 70)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert lo == pytest.approx(0.1693, abs=1e-3) and hi == pytest.approx(0.3703, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) is None


def test_mcnemar_exact_by_hand():
    # b = 2, c = 8: P[X <= 2], X ~ Bin(10, 1/2) = (1 + 10 + 45) / 1024; two-sided = 112 / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(112 / 1024)
    assert mcnemar_exact(8, 2) == mcnemar_exact(2, 8)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0


def test_compare_answers_pairs_by_prompt(tmp_path):
    def rec(i, text):
        return {"id": f"p{i}", "prompt": "x", "meta": {"checks": [{"type": "lowercase"}]},
                "responses": [{"text": text}]}
    a = [rec(0, "yes"), rec(1, "yes"), rec(2, "NO"), rec(3, "yes")]
    b = [rec(0, "NO"), rec(1, "yes"), rec(2, "NO"), rec(4, "yes")]  # p3 / p4 unpaired
    for name, rows in (("a", a), ("b", b)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = compare_answers(tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert res["n"] == 3 and res["rate_a"] == pytest.approx(2 / 3) and res["rate_b"] == pytest.approx(1 / 3)
    assert (res["only_a"], res["only_b"]) == (1, 0) and res["mcnemar_p"] == 1.0
