"""SynFed data layer, part 1: tables, schema, errors, neighbours, splits, anchors (tiny tables)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from selfalign.errors import DataError
from selfalign.tabular.anchors import nearest_distinct, select_anchors
from selfalign.tabular.neighbours import (
    feature_matrix,
    leave_one_table_out,
    neighbour_indices,
    sft_records,
    similarity_matrix,
    table_neighbours,
)
from selfalign.tabular.split import (
    client_task_records,
    dirichlet_split,
    full_split,
    quantile_bins,
    split_clients,
    split_labels,
)
from selfalign.tabular.tables import infer_schema, load_table, table_from_frame, train_test_split_table


# ------------------------------------------------------------------------------------ schema
def test_infer_schema_rule_and_task():
    frame = pd.DataFrame({
        "age": [23, 35, 47, 51, 62, 29, 44, 38],          # whole numbers, 8 distinct of 8 → numeric
        "smoker": [0, 1, 0, 1, 1, 0, 0, 1],                # whole numbers, 2 distinct → categorical
        "city": list("abcabcab"),                          # text → categorical
        "bmi": [21.5, 30.1, 25.0, 27.3, 22.2, 24.8, 31.0, 26.4],
        "flag": [True, False] * 4,                         # bool → categorical
        "label": ["no", "yes"] * 4,
    })
    _, num, cat, task = infer_schema(frame, "label")
    assert num == ["age", "bmi"] and cat == ["smoker", "city", "flag"] and task == "classification"
    _, num, cat, task = infer_schema(frame, "bmi")
    assert task == "regression" and "bmi" not in num + cat
    _, _, _, task = infer_schema(frame, "smoker")
    assert task == "classification"
    _, _, _, task = infer_schema(frame, "smoker", task="regression")   # override
    assert task == "regression"
    _, num, cat, _ = infer_schema(frame, "label", categorical=["age"], numeric=["smoker"])
    assert "age" in cat and "smoker" in num
    with pytest.raises(DataError, match="cannot be a regression"):
        infer_schema(frame, "label", task="regression")
    table = table_from_frame(frame, "label", name="t")
    assert table.features == ["age", "smoker", "city", "bmi", "flag"]
    assert table.columns[-1] == "label" and table.is_categorical("label")


def test_numeric_text_column_converted():
    frame = pd.DataFrame({"x": ["1.5", "2.5", None, "4"], "y": ["a", "b", "a", "b"]})
    table = table_from_frame(frame, "y")
    assert table.numeric == ("x",) and table.frame["x"].dtype.kind == "f"


def test_builtin_tables_load_offline():
    iris = load_table("sklearn:iris")
    assert len(iris) == 150 and iris.target == "species" and iris.task == "classification"
    assert set(iris.categories("species")) == {"setosa", "versicolor", "virginica"}
    assert load_table("diabetes").task == "regression"
    pytest.importorskip("palmerpenguins")
    penguins = load_table("penguins")
    assert penguins.target == "species" and "island" in penguins.categorical
    assert not penguins.frame.isna().any().any()


def test_train_test_split_stratified_and_seeded():
    frame = pd.DataFrame({"x": np.arange(40) * 0.5, "y": ["a"] * 20 + ["b"] * 20})
    table = table_from_frame(frame, "y")
    train, test = train_test_split_table(table, 0.25, seed=3)
    assert len(train) == 30 and len(test) == 10
    assert test.frame["y"].value_counts().to_dict() == {"a": 5, "b": 5}
    again = train_test_split_table(table, 0.25, seed=3)[1]
    assert test.frame.equals(again.frame)


# ------------------------------------------------------------------------------------ errors
def _csv(tmp_path, text: str, name: str = "data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(*args, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        load_table(*args, **kwargs)
    return str(info.value)


def test_errors_name_file_column_and_row(tmp_path):
    empty = _csv(tmp_path, "", "empty.csv")
    assert "empty.csv" in _error(empty, "y") and "empty" in _error(empty, "y")
    header_only = _csv(tmp_path, "x,y\n", "header.csv")
    msg = _error(header_only, "y")
    assert "header.csv" in msg and "y:" in msg

    good = _csv(tmp_path, "age,outcome\n1.5,a\n2.5,b\n3.5,a\n")
    msg = _error(good, "outcom")
    assert str(good) in msg and "outcom:" in msg and "did you mean 'outcome'" in msg
    msg = _error(good, "outcome", min_rows=10)
    assert str(good) in msg and "outcome:" in msg and "3 rows" in msg and "10" in msg

    const = _csv(tmp_path, "age,outcome\n1.5,a\n2.5,a\n", "const.csv")
    msg = _error(const, "outcome")
    assert "const.csv" in msg and "outcome:" in msg and "constant" in msg
    blank = _csv(tmp_path, "age,outcome\n1.5,\n2.5,\n", "blank.csv")
    msg = _error(blank, "outcome")
    assert "blank.csv" in msg and "outcome:" in msg and "empty" in msg

    garbage = _csv(tmp_path, "age,outcome\n1.5,a\n2.5,b\nabc,a\n4.5,b\n", "garbage.csv")
    msg = _error(garbage, "outcome")
    # row 2 (0-based data row) is line 4 of the file (header = line 1)
    assert msg.startswith(f"{garbage}:4: age: row 2") and "'abc'" in msg
    assert "no target" in _error(good)


def test_error_for_unknown_builtin():
    assert "did you mean 'sklearn:wine'" in _error("sklearn:wines")


# ------------------------------------------------------------------------------------ neighbours
ANGLES = [0, 10, 20, 70, 80, 90, 180, 190, 200, 250, 260, 270]


def _angle_table():
    """Unit vectors at these angles: both columns have mean 0 and equal spread, so standardising
    keeps the angles and cosine similarity = cos(angle difference) — neighbours known by hand."""
    rad = np.radians(ANGLES)
    frame = pd.DataFrame({"u": np.cos(rad), "v": np.sin(rad), "y": ["a", "b"] * 6})
    return table_from_frame(frame, "y", name="angles")


def test_feature_matrix_standardised_plus_one_hot():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "c": ["p", "q", "p", None], "y": [0.1, 0.2, 0.3, 0.4]})
    table = table_from_frame(frame, "y")
    x = feature_matrix(table)
    assert x.shape == (4, 1 + 3)                       # x + one-hot of {p, q, <missing>}
    assert abs(x[:, 0].mean()) < 1e-12 and abs(x[:, 0].std() - 1) < 1e-12
    assert feature_matrix(table, include_target=True).shape == (4, 5)


def test_neighbours_known_by_hand():
    table = _angle_table()
    sim = similarity_matrix(feature_matrix(table))
    assert np.allclose(sim[0, 1], math.cos(math.radians(10)))
    training = table_neighbours(table, "training")
    assert training[0].tolist() == [1, 2, 3, 4, 6]      # 10°, 20°, 70°, 80° + the opposite 180°
    assert training[2].tolist() == [1, 0, 3, 4, 8]      # ..., least similar = 200°
    assert table_neighbours(table, "target")[2].tolist() == [1, 0, 3, 4, 5]
    for role in ("training", "target"):
        nb = table_neighbours(table, role)
        assert all(i not in nb[i] for i in range(len(table)))
        assert all(len(set(row)) == 5 for row in nb)
    with pytest.raises(ValueError, match="too few"):
        neighbour_indices(np.eye(5), 4, 1)


def test_sft_records_shuffled_and_seeded():
    table = _angle_table()
    records = sft_records(table, "training", seed=7)
    assert records == sft_records(table, "training", seed=7)
    assert records != sft_records(table, "training", seed=8)
    rec = records[0]
    assert rec["id"] == "angles/0" and rec["meta"]["table"] == "angles" and rec["meta"]["row"] == 0
    assert json.loads(rec["response"]) == {"u": 1.0, "v": 0.0, "y": "a"}
    assert "classification task" in rec["prompt"] and "- u (numeric)" in rec["prompt"]
    shown = [json.loads(line) for line in rec["prompt"].splitlines() if line.startswith("{")]
    expected = [json.loads(sft_row) for sft_row in (records[j]["response"] for j in [1, 2, 3, 4, 6])]
    assert sorted(json.dumps(r, sort_keys=True) for r in shown) == \
        sorted(json.dumps(r, sort_keys=True) for r in expected)
    orders = {tuple(json.loads(line)) for r in records for line in r["prompt"].splitlines()
              if line.startswith("{")}
    assert len(orders) > 1                               # keys are shuffled per row
    positions = {tuple(r["meta"]["neighbours"]) for r in records}
    assert len(positions) == len(records)


def test_leave_one_table_out():
    a = _angle_table()
    b = table_from_frame(a.frame.copy(), "y", name="other")
    c = table_from_frame(a.frame.copy(), "y", name="target_domain")
    records = leave_one_table_out([a, b, c], "target_domain")
    assert {r["meta"]["table"] for r in records} == {"angles", "other"}
    assert len(records) == 2 * len(a)
    with pytest.raises(DataError, match="did you mean 'target_domain'"):
        leave_one_table_out([a, b, c], "target_domian")


# ------------------------------------------------------------------------------------ splits
def test_dirichlet_shares_follow_drawn_proportions():
    n = 12000
    frame = pd.DataFrame({"x": np.linspace(0, 1, n), "y": ["a", "b", "c"] * (n // 3)})
    table = table_from_frame(frame, "y")
    split = dirichlet_split(table, n_clients=4, alpha=0.5, seed=1)
    labels = split_labels(table)
    assert sorted(np.concatenate(split.clients).tolist()) == list(range(n))   # a partition
    for c, cls in enumerate(split.classes):
        n_c = int(np.sum(labels == cls))
        shares = [np.sum(labels[rows] == cls) / n_c for rows in split.clients]
        assert np.allclose(shares, split.proportions[c], atol=2e-3)
    again = dirichlet_split(table, 4, 0.5, seed=1)
    assert all(np.array_equal(x, y) for x, y in zip(split.clients, again.clients))


def test_every_client_non_empty_and_full_copies():
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "y": ["a", "b"] * 3})
    table = table_from_frame(frame, "y")
    for seed in range(20):
        split = dirichlet_split(table, n_clients=6, alpha=0.05, seed=seed)
        assert all(len(rows) >= 1 for rows in split.clients)
        assert sorted(np.concatenate(split.clients).tolist()) == list(range(6))
    with pytest.raises(DataError, match="fewer than the 7 clients"):
        dirichlet_split(table, 7)
    full = full_split(table, 3)
    assert all(rows.tolist() == list(range(6)) for rows in full.clients)
    clients = split_clients(table, 3, method="full")
    assert [c.name for c in clients] == ["table/c0", "table/c1", "table/c2"]


def test_regression_targets_binned_into_four():
    assert np.bincount(quantile_bins(np.arange(100.0))).tolist() == [25] * 4
    assert np.bincount(quantile_bins(np.ones(8))).tolist() == [2] * 4      # ties broken by rank
    frame = pd.DataFrame({"x": np.arange(40) % 3 + 0.5, "y": np.linspace(0, 10, 40)})
    table = table_from_frame(frame, "y")
    assert table.task == "regression"
    split = dirichlet_split(table, 3, seed=0)
    assert split.classes == [0, 1, 2, 3] and split.proportions.shape == (4, 3)


def test_client_task_records_leave_out_target():
    frame = pd.DataFrame({"age": [30.5, 40.5, 50.5, 60.5], "sex": ["m", "f", "m", "f"],
                          "label": ["yes", "no", "no", "yes"]})
    table = table_from_frame(frame, "label", name="t")
    split = dirichlet_split(table, 2, seed=0)
    per_client = client_task_records(table, split)
    assert sum(len(r) for r in per_client) == 4
    rec = per_client[0][0]
    row = rec["meta"]["row"]
    assert rec["response"] == frame["label"][row] and rec["meta"]["client"] == 0
    first_line = rec["prompt"].splitlines()[0]
    assert first_line == f"age: {frame['age'][row]}; sex: {frame['sex'][row]}" and "label" not in first_line
    assert "one of: no, yes" in rec["prompt"]


# ------------------------------------------------------------------------------------ anchors
def test_anchors_are_cluster_centres():
    centres = [(0.0, 0.0), (20.0, 0.0), (0.0, 20.0)]
    points, centre_rows = [], []
    for cx, cy in centres:
        for dx, dy in [(0.5, 0), (-0.5, 0), (0, 0), (0, 0.5), (0, -0.5)]:
            if (dx, dy) == (0, 0):
                centre_rows.append(len(points))
            points.append((cx + dx, cy + dy))
    order = np.random.default_rng(0).permutation(len(points))
    frame = pd.DataFrame([points[i] for i in order], columns=["a", "b"])
    frame["y"] = ["p", "q", "r"] * 5
    table = table_from_frame(frame, "y")
    expected = {int(np.flatnonzero(order == r)[0]) for r in centre_rows}
    anchors = select_anchors(table, num_clusters=3, seed=0)
    assert set(anchors.tolist()) == expected and len(set(anchors.tolist())) == 3
    with pytest.raises(DataError, match="fewer than num_clusters=16"):
        select_anchors(table, num_clusters=16)


def test_nearest_distinct_never_repeats_a_row():
    points = np.array([[0.0], [0.1], [5.0]])
    assert nearest_distinct(points, np.array([[0.0], [0.01]])).tolist() == [0, 1]
