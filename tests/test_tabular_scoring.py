"""SynFed data layer, part 2: extraction statuses, preference pairs, quality metrics (tiny tables)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from selfalign.errors import DataError, SelfalignError
from selfalign.tabular.extract import Status, extract_row, first_json_object, status_score
from selfalign.tabular.metrics import (
    column_distances,
    dcr_summary,
    distance_to_closest_record,
    quality_report,
    sdmetrics_quality,
    trtr,
    tstr,
)
from selfalign.tabular.preferences import compare, group_pairs, preference_pairs
from selfalign.tabular.tables import table_from_frame, train_test_split_table


# ------------------------------------------------------------------------------------ extraction
def test_status_scores_follow_spec_order():
    assert [status_score(s) for s in Status] == [5, 3, 2, 1, 0]
    assert [s.value for s in Status] == ["SUCCESS", "REDUNDANT_KEY", "MISSING_KEY", "CONVERSION_ERROR",
                                         "INVALID_ANSWER"]


def test_success_and_casting(patients):
    out = extract_row('Sure! {"age": 41.6, "bmi": "22.5", "sex": "Male", "outcome": "yes"} Hope it helps {"x": 1}',
                      patients)
    assert out.status is Status.SUCCESS and out.score == 5 and not out.repaired
    assert out.row == {"age": 42, "bmi": 22.5, "sex": "male", "outcome": "yes"}
    assert isinstance(out.row["age"], int)
    assert out.to_record()["status"] == "SUCCESS"


def test_repaired_json_and_loose_keys(patients):
    text = "{'AGE': '41', 'B-M I': 22.5, 'Sex ': 'MALE', 'Out_come': 'Yes',}"
    out = extract_row(text, patients)
    assert out.status is Status.SUCCESS and out.repaired
    assert out.row == {"age": 41, "bmi": 22.5, "sex": "male", "outcome": "yes"}
    cut_off = 'row: {"age": 41, "bmi": 22.5, "sex": "male", "outcome": "no"'
    out = extract_row(cut_off, patients)
    assert out.status is Status.SUCCESS and out.repaired


def test_every_failure_status(patients):
    base = '"age": 41, "bmi": 22.5, "sex": "male"'
    out = extract_row('{' + base + ', "outcome": "yes", "note": "a } brace"}', patients)
    assert out.status is Status.REDUNDANT_KEY and out.score == 3 and out.extra == ("note",)
    out = extract_row('{' + base + '}', patients)
    assert out.status is Status.MISSING_KEY and out.score == 2 and out.missing == ("outcome",)
    out = extract_row('{"age": "abc", "bmi": 22.5, "sex": "male", "outcome": "yes"}', patients)
    assert out.status is Status.CONVERSION_ERROR and out.score == 1 and set(out.errors) == {"age"}
    out = extract_row('{"age": 41, "bmi": 22.5, "sex": "robot", "outcome": "yes"}', patients)
    assert out.status is Status.CONVERSION_ERROR and "sex" in out.errors
    out = extract_row("age 41, bmi 22.5, a man, outcome yes", patients)
    assert out.status is Status.INVALID_ANSWER and out.score == 0 and out.row is None


def test_precedence_most_severe_wins(patients):
    out = extract_row('{"age": 41, "bmi": 22.5, "sex": "male", "extra": 1}', patients)
    assert out.status is Status.MISSING_KEY and out.extra == ("extra",)
    out = extract_row('{"age": "old", "bmi": 22.5, "extra": 1}', patients)
    assert out.status is Status.CONVERSION_ERROR and len(out.problems) == 4   # 1 bad value, 2 missing, 1 extra
    out = extract_row('{"age": 41, "Age": 42, "bmi": 22.5, "sex": "male", "outcome": "no"}', patients)
    assert out.status is Status.REDUNDANT_KEY and out.row["age"] == 41


def test_first_json_object_respects_strings():
    assert first_json_object('x {"a": "}{", "b": {"c": 1}} {"d": 2}') == '{"a": "}{", "b": {"c": 1}}'
    assert first_json_object("no braces") is None
    assert first_json_object('a {"b": 1') == '{"b": 1'


# ------------------------------------------------------------------------------------ preferences
def _group(samples, table="patients", gid="g0"):
    return {"id": gid, "prompt": "make a row", "meta": {"table": table},
            "samples": [{"text": f"s{i}", **s} for i, s in enumerate(samples)]}


GROUP = _group([
    {"status": "SUCCESS", "gain": 0.2},          # 0
    {"status": "SUCCESS", "gain": 0.1},          # 1
    {"status": "MISSING_KEY", "gain": None},     # 2
    {"status": "MISSING_KEY"},                   # 3
    {"status": "INVALID_ANSWER"},                # 4
])


def test_preference_rule_by_hand():
    pairs, ties = group_pairs(GROUP["samples"])
    assert ties == 1                                             # 2 vs 3: equal status
    assert pairs == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 4), (3, 4)]
    assert compare({"status": "SUCCESS", "gain": -1.0}, {"status": "REDUNDANT_KEY", "gain": 9.0}) == 1
    assert compare({"status": "SUCCESS", "gain": 0.3}, {"status": "SUCCESS", "gain": 0.3}) == 0
    with pytest.raises(DataError, match="numeric gain"):
        compare({"status": "SUCCESS"}, {"status": "SUCCESS", "gain": 0.1})
    with pytest.raises(DataError, match="unknown status"):
        compare({"status": "GREAT"}, {"status": "SUCCESS", "gain": 0.1})


def test_fewer_pairs_than_asked_and_sampling():
    other = _group([{"status": "SUCCESS", "gain": 0.5}, {"status": "SUCCESS", "gain": 0.5}], "bank", "g1")
    records, stats = preference_pairs([GROUP, other], pairs_per_table=100, seed=0)
    assert len(records) == 9 and stats["ties"] == 2
    assert stats["tables"]["patients"] == {"available": 9, "kept": 9, "asked": 100}
    assert stats["tables"]["bank"]["kept"] == 0 and set(stats["short"]) == {"patients", "bank"}
    first = records[0]
    assert first["chosen"] == "s0" and first["rejected"] == "s1" and first["prompt"] == "make a row"
    assert first["meta"]["table"] == "patients" and first["meta"]["pair"]["chosen_gain"] == 0.2

    few, stats = preference_pairs([GROUP], pairs_per_table=3, seed=5)
    assert len(few) == 3 and stats["short"] == []
    assert few == preference_pairs([GROUP], pairs_per_table=3, seed=5)[0]
    picked = {tuple(preference_pairs([GROUP], 3, seed=s)[0][0].values())[:3] for s in range(10)}
    assert len(picked) > 1


def test_openrlhf_format_and_reject_key():
    records, _ = preference_pairs([GROUP], pairs_per_table=1, fmt="openrlhf", seed=0)
    rec = records[0]
    assert set(rec) == {"chosen", "reject"}
    assert rec["chosen"][0] == {"role": "user", "content": "make a row"}
    assert rec["chosen"][1]["role"] == "assistant"
    records, _ = preference_pairs([GROUP], 1, fmt="openrlhf", rejected_key="rejected")
    assert set(records[0]) == {"chosen", "rejected"}
    records, _ = preference_pairs([GROUP], 1, rejected_key="reject")
    assert set(records[0]) == {"prompt", "chosen", "reject", "meta"}


# ------------------------------------------------------------------------------------ metrics
def _blobs(task: str, n: int = 60):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    frame = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "grp": rng.choice(["u", "v"], n)})
    if task == "classification":
        frame["y"] = np.where(x[:, 0] + x[:, 1] > 0, "pos", "neg")
    else:
        frame["y"] = 2 * x[:, 0] - x[:, 1] + 0.1 * rng.normal(size=n)
    return train_test_split_table(table_from_frame(frame, "y"), 0.3, seed=0)


def test_tstr_equals_real_baseline_on_real_rows():
    train, test = _blobs("classification")
    for model in ("random_forest", "logistic"):
        assert tstr(train.frame.copy(), test, model) == trtr(train, test, model)
    assert trtr(train, test, "logistic") > 0.5
    train, test = _blobs("regression")
    for model in ("random_forest", "ridge"):
        assert tstr(train.frame.copy(), test, model) == trtr(train, test, model)
    assert trtr(train, test, "ridge") > 0.9


def test_tstr_edge_cases():
    train, test = _blobs("classification")
    one_class = train.frame[train.frame["y"] == "pos"]
    assert tstr(one_class, test) == 0.0
    with pytest.raises(DataError, match="x2: column missing"):
        tstr(train.frame.drop(columns=["x2"]), test)


def test_dcr_zero_for_copies_and_report():
    train, test = _blobs("classification")
    copies = train.frame.sample(10, random_state=0)
    d = distance_to_closest_record(copies, train)
    assert np.allclose(d, 0) and dcr_summary(d)["copies"] == 10
    shifted = copies.assign(x1=copies["x1"] + 100.0)
    summary = dcr_summary(distance_to_closest_record(shifted, train))
    assert summary["median"] > 10 and summary["p5"] > 10
    assert all(v["distance"] == 0 for v in column_distances(train, train).values())
    report = quality_report(train.frame, train, test, models=("logistic",))
    assert report["tstr"] == report["trtr"] and report["dcr"]["median"] == 0


def test_sdmetrics_guarded():
    train, _ = _blobs("classification")
    try:
        import sdmetrics  # noqa: F401
    except ImportError:
        with pytest.raises(SelfalignError, match="pip install sdmetrics"):
            sdmetrics_quality(train, train)
    else:  # pragma: no cover - only where sdmetrics is installed
        assert 0.9 < sdmetrics_quality(train, train)["score"] <= 1.0
