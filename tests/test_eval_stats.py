"""Bootstrap intervals, paired bootstrap and summaries against hand computations and known values."""

from __future__ import annotations

import math

import pytest

from selfalign.eval.compare import compare_outcomes
from selfalign.eval.stats import bootstrap_ci, excludes_zero, mcnemar_exact, paired_bootstrap
from selfalign.eval.verifiable import Outcome, summarize


def test_bootstrap_ci_constant_and_empty():
    assert bootstrap_ci([1.0] * 30) == (1.0, 1.0)
    assert bootstrap_ci([]) is None


def test_bootstrap_ci_matches_the_normal_interval_of_a_proportion():
    # n = 400, 120 successes: the bootstrap distribution of the mean is ≈ N(0.3, 0.3·0.7/400), so the
    # percentile interval ≈ 0.3 ± 1.96·√(0.21/400) = [0.2551, 0.3449] (resampling error ≈ 0.003)
    x = [1.0] * 120 + [0.0] * 280
    lo, hi = bootstrap_ci(x, seed=3)
    half = 1.959964 * math.sqrt(0.21 / 400)
    assert lo == pytest.approx(0.3 - half, abs=0.006) and hi == pytest.approx(0.3 + half, abs=0.006)
    assert bootstrap_ci(x, seed=3) == (lo, hi)  # seeded
    lo90, hi90 = bootstrap_ci(x, level=0.90, seed=3)
    assert lo < lo90 < hi90 < hi


def test_paired_bootstrap_identical_models():
    a = [1, 0, 1, 1, 0, 0, 1]
    res = paired_bootstrap(a, a)
    assert res == {"n": 7, "diff": 0.0, "ci": (0.0, 0.0), "p": 1.0}
    assert not excludes_zero(res["ci"])


def test_paired_bootstrap_one_sided_gain():
    # 100 prompts, A passes 20 that B fails, nothing else differs: d̄ = 0.2, sd(d) = 0.4 → interval
    # ≈ 0.2 ± 1.96·0.04 = [0.1216, 0.2784]; no resample has d̄* ≤ 0 (P = 0.8^100 ≈ 2e-10) → p = 0
    a = [1] * 20 + [1] * 30 + [0] * 50
    b = [0] * 20 + [1] * 30 + [0] * 50
    res = paired_bootstrap(a, b, seed=1)
    assert res["diff"] == pytest.approx(0.2) and res["p"] == 0.0
    assert res["ci"][0] == pytest.approx(0.1216, abs=0.015) and res["ci"][1] == pytest.approx(0.2784, abs=0.015)
    assert excludes_zero(res["ci"])
    flipped = paired_bootstrap(b, a, seed=1)
    assert flipped["diff"] == pytest.approx(-0.2) and excludes_zero(flipped["ci"])


def test_paired_bootstrap_agrees_with_mcnemar_on_a_borderline_case():
    # 70 prompts: 8 gained, 2 lost (the SALMON run): exact McNemar p = 2·P[Bin(10, ½) ≤ 2] = 0.109;
    # the bootstrap p of d̄ = 6/70 is of the same size (normal approximation: 2·Φ(−1.93) ≈ 0.054–0.11)
    a = [1] * 8 + [0] * 2 + [1] * 16 + [0] * 44
    b = [0] * 8 + [1] * 2 + [1] * 16 + [0] * 44
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    res = paired_bootstrap(a, b, seed=0)
    assert 0.03 < res["p"] < 0.15
    assert res["ci"][0] <= 0.0 + 0.02


def test_paired_bootstrap_needs_pairs():
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1, 0], [1])
    assert paired_bootstrap([], [])["ci"] is None


def _o(i, strict, checks, tokens=None, cut=False, loose=None):
    frac = sum(ok for _, ok in checks) / len(checks)
    return Outcome(f"p{i}", strict, strict if loose is None else loose, frac, frac, checks, tokens, cut)


def test_summarize_by_hand():
    outs = [_o(0, True, [("a", True), ("b", True)], 10, False),
            _o(1, False, [("a", True), ("b", False)], 30, True, loose=True),
            _o(2, False, [("a", False)], 20, False)]
    s = summarize(outs)
    assert s["n"] == 3 and s["strict"] == pytest.approx(1 / 3) and s["loose"] == pytest.approx(2 / 3)
    assert s["instruction_strict"] == pytest.approx(3 / 5)  # pooled: 3 of 5 checks
    assert s["per_family"]["a"]["rate"] == pytest.approx(2 / 3) and s["per_family"]["b"]["n"] == 2
    assert s["mean_tokens"] == pytest.approx(20.0) and s["cut_rate"] == pytest.approx(1 / 3)
    lo, hi = s["strict_ci"]
    assert 0.0 <= lo <= 1 / 3 <= hi <= 1.0


def test_compare_outcomes_pairs_by_id_and_flags_improvement():
    new = [_o(i, i < 30, [("a", i < 30)]) for i in range(60)]
    old = [_o(i, i < 10, [("a", i < 10)]) for i in range(60)] + [_o(99, True, [("a", True)])]
    res = compare_outcomes(new, old)
    assert res["n"] == 60 and (res["only_a"], res["only_b"]) == (20, 0)
    assert res["diff"] == pytest.approx(20 / 60) and res["improved"]
    assert res["mcnemar_p"] == pytest.approx(2 / 2 ** 20)
    same = compare_outcomes(old, old)
    assert not same["improved"] and same["p_bootstrap"] == 1.0


def test_bootstrap_ratio_ci_by_hand():
    from selfalign.eval.stats import bootstrap_ratio_ci

    # every prompt passes half its checks: every resample's pooled ratio is exactly 0.5
    assert bootstrap_ratio_ci([1, 2, 3], [2, 4, 6]) == (0.5, 0.5)
    assert bootstrap_ratio_ci([], []) is None and bootstrap_ratio_ci([0, 0], [0, 0]) is None
    lo, hi = bootstrap_ratio_ci([1, 0, 2, 1] * 25, [2, 1, 2, 3] * 25, seed=2)
    assert lo < 4 / 8 < hi
