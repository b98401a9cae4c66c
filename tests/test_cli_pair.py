"""``selfalign pair`` in-process: writes pairs atomically, prints statistics, fails cleanly."""

from __future__ import annotations

import json

import pytest

from selfalign.cli import main


def run(argv):
    try:
        main(argv)
    except SystemExit as e:
        return e.code or 0
    return 0


def write_scored(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def scored(rid, items):
    return {"id": rid, "prompt": f"prompt {rid}", "meta": {},
            "responses": [{"text": t, "finish": f, "num_tokens": n, "score": s, "score_var": 0.0}
                          for t, s, n, f in items]}


RECORDS = [
    scored("a", [("long good", 5.0, 40, "stop"), ("short good", 4.6, 5, "stop"), ("bad", 1.0, 8, "stop"),
                 ("long bad", 1.3, 30, "stop")]),
    scored("b", [("same", 3.0, 3, "stop"), ("same too", 3.0, 3, "stop")]),
    scored("c", [("cut", 5.0, 64, "length"), ("fine", 2.0, 4, "stop"), ("worse", 1.0, 4, "stop")]),
]


def test_pair_length_control_writes_pairs_and_stats(tmp_path, capsys):
    inp, out, st = tmp_path / "scored.jsonl", tmp_path / "prefs.jsonl", tmp_path / "stats.json"
    write_scored(inp, RECORDS)
    code = run(["pair", str(inp), str(out), "--strategy", "length_control", "--rho", "0.1",
                "--stats-json", str(st)])
    assert code == 0
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(p["id"], p["chosen"], p["rejected"]) for p in pairs] == [("a", "short good", "long bad"),
                                                                       ("c", "fine", "worse")]
    stats = json.loads(st.read_text())
    assert stats["pairs"] == 2 and stats["bad_samples"] == 1 and stats["bad_reasons"] == {"all_equal": 1}
    assert stats["bad_ends_frac"] == pytest.approx(1 / 9)
    shown = capsys.readouterr().out
    assert "bad_samples_frac" in shown and "mean_margin" in shown
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_pair_all_pairs_and_best_of_n(tmp_path):
    inp = tmp_path / "scored.jsonl"
    write_scored(inp, RECORDS)
    out = tmp_path / "all.jsonl"
    assert run(["pair", str(inp), str(out), "--strategy", "all_pairs", "--max-pairs", "3", "--seed", "7"]) == 0
    assert len(out.read_text().splitlines()) == 3
    out = tmp_path / "bon.jsonl"
    assert run(["pair", str(inp), str(out), "--strategy", "best_of_n", "--include-unfinished"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["completion"] for r in recs] == ["long good", "same", "cut"]


def test_pair_errors_are_one_line(tmp_path, capsys):
    inp = tmp_path / "scored.jsonl"
    write_scored(inp, RECORDS)
    out = tmp_path / "prefs.jsonl"
    assert run(["pair", str(inp), str(out), "--strategy", "nope"]) == 2
    assert "unknown strategy 'nope'" in capsys.readouterr().err
    assert run(["pair", str(tmp_path / "missing.jsonl"), str(out)]) == 1
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "prompt": "p", "responses": [{"text": "a"}]}\n')
    assert run(["pair", str(bad), str(out)]) == 1
    err = capsys.readouterr().err
    assert "judge the candidates first" in err and "Traceback" not in err
    assert not out.exists()


def test_pair_strategy_names_come_from_the_registry(tmp_path, capsys, monkeypatch):
    inp = tmp_path / "scored.jsonl"
    write_scored(inp, RECORDS)
    assert run(["pair", str(inp), str(tmp_path / "o.jsonl"), "--strategy", "max_mn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'max_min'" in err
    monkeypatch.setenv("COLUMNS", "250")
    assert run(["pair", "--help"]) == 0
    assert "max_min, length_control, all_pairs, best_of_n" in capsys.readouterr().out
