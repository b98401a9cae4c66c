"""``selfalign tabular``: split, prompts, extract, evaluate — outputs, numbers against the library
functions, and bad input (one line, non-zero exit, nothing written)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from selfalign.cli import main


def _cli(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_split_writes_train_test_and_clients(tmp_path, capsys):
    out = tmp_path / "wine_split"
    assert _cli("tabular", "split", "wine", "--clients", "3", "--alpha", "0.3", "--output-dir", str(out)) == 0
    train, test = pd.read_csv(out / "train.csv"), pd.read_csv(out / "test.csv")
    clients = [pd.read_csv(out / f"client_{k}.csv") for k in range(3)]
    assert len(train) + len(test) == 178 and len(test) == 36  # ceil(0.2 · 178)
    assert sum(len(c) for c in clients) == len(train) and all(len(c) for c in clients)
    summary = json.loads((out / "split.json").read_text())
    assert [c["rows"] for c in summary["clients"]] == [len(c) for c in clients]
    assert sum(sum(c["target"].values()) for c in summary["clients"]) == len(train)
    # the same seed gives the same split
    again = tmp_path / "again"
    assert _cli("tabular", "split", "wine", "--clients", "3", "--alpha", "0.3", "--output-dir", str(again)) == 0
    assert (again / "client_1.csv").read_text() == (out / "client_1.csv").read_text()
    assert "178" not in capsys.readouterr().err


def test_prompts_roles(tmp_path):
    out = tmp_path / "p.jsonl"
    assert _cli("tabular", "prompts", "iris", "--role", "target", "--output", str(out)) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 150 and len(recs[0]["meta"]["neighbours"]) == 5 and recs[0]["meta"]["role"] == "target"
    assert "{" in recs[0]["prompt"] and json.loads(recs[0]["response"])


def test_extract_counts_statuses_and_writes_usable_rows(tmp_path, capsys):
    from selfalign.tabular.tables import load_table

    t = load_table("iris")
    row = {c: (str(v) if t.is_categorical(c) else float(v)) for c, v in t.frame.iloc[0][t.columns].items()}
    texts = [json.dumps(row), "Here: " + json.dumps({**row, "extra": 1}), json.dumps({"sepal length (cm)": 5}),
             "no json at all", json.dumps(row)[:-1]]  # the last one is repaired
    (tmp_path / "gen.jsonl").write_text(json.dumps({"id": "a", "responses": [{"text": x} for x in texts]}) + "\n")
    out, details = tmp_path / "rows.csv", tmp_path / "details.jsonl"
    assert _cli("tabular", "extract", str(tmp_path / "gen.jsonl"), "--table", "iris", "--output", str(out),
                "--details", str(details)) == 0
    rows = pd.read_csv(out)
    assert len(rows) == 3 and list(rows.columns) == t.columns  # SUCCESS ×2 (one repaired) + REDUNDANT_KEY
    statuses = [json.loads(line)["status"] for line in details.read_text().splitlines()]
    assert statuses == ["SUCCESS", "REDUNDANT_KEY", "MISSING_KEY", "INVALID_ANSWER", "SUCCESS"]
    assert "JSON-valid 80.0%" in capsys.readouterr().out


def test_evaluate_matches_the_library(tmp_path):
    from selfalign.tabular.metrics import quality_report
    from selfalign.tabular.tables import load_table, train_test_split_table

    t = load_table("wine")
    train, test = train_test_split_table(t, 0.2, 0)
    syn = train.frame[t.columns].sample(frac=1.0, random_state=1)
    syn.to_csv(tmp_path / "syn.csv", index=False)
    out = tmp_path / "q.json"
    assert _cli("tabular", "evaluate", str(tmp_path / "syn.csv"), "--real", "wine", "--output", str(out)) == 0
    got = json.loads(out.read_text())
    want = quality_report(pd.read_csv(tmp_path / "syn.csv"), train, test, 0)
    assert got["tstr"] == pytest.approx(want["tstr"]) and got["trtr"] == pytest.approx(want["trtr"])
    assert got["dcr"]["copies"] == len(train)  # the synthetic rows are the training rows: all copies
    assert got["synthetic_rows"] == len(train) and "sdmetrics" in got


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "syn.csv").write_text("alcohol,malic_acid\n1,2\n")
    out = tmp_path / "q.json"
    assert _cli("tabular", "evaluate", str(tmp_path / "syn.csv"), "--real", "wine", "--output", str(out)) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "syn.csv" in err[0] and "column missing" in err[0], err
    assert not out.exists()
    # an output onto the input is refused before any work
    assert _cli("tabular", "extract", str(tmp_path / "syn.csv"), "--table", "wine", "--output",
                str(tmp_path / "syn.csv")) != 0
    assert (tmp_path / "syn.csv").read_text() == "alcohol,malic_acid\n1,2\n"
    # a file table needs its target column
    assert _cli("tabular", "prompts", str(tmp_path / "syn.csv"), "--output", str(tmp_path / "p.jsonl")) != 0
    assert not (tmp_path / "p.jsonl").exists()
