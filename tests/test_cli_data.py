"""``selfalign data convert|validate`` in-process, and validate_file itself."""

from __future__ import annotations

import json

import pytest

from selfalign.cli import main
from selfalign.data.io import read_records, write_jsonl
from selfalign.data.validate import validate_file
from selfalign.errors import DataError


def run(argv):
    try:
        main(argv)
    except SystemExit as e:
        return e.code or 0
    return 0


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


PAIRS = [
    {"id": "1", "prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "chosen_score": 5.0,
     "rejected_score": 1.0, "meta": {}},
    {"id": "2", "prompt": "Capital of France?", "chosen": "Paris", "rejected": "Rome", "chosen_score": 4.0,
     "rejected_score": 2.0, "meta": {}},
]
CONV = [{"id": "c", "prompt": [U("Hi")], "chosen": [A("Hello!")], "rejected": [A("Go away.")], "meta": {}}]


# ---------------------------------------------------------------------------------------- convert
def test_convert_to_openrlhf_and_back(tmp_path, capsys):
    src, mid, back = tmp_path / "p.jsonl", tmp_path / "o.jsonl", tmp_path / "t.jsonl"
    write_jsonl(src, PAIRS)
    assert run(["data", "convert", str(src), str(mid), "--to", "openrlhf", "--rejected-key", "reject"]) == 0
    rows = read_records(mid)
    assert [set(r) for r in rows] == [{"id", "prompt", "chosen", "reject", "chosen_score", "rejected_score",
                                       "meta"}] * 2
    assert [r["reject"] for r in rows] == ["5", "Rome"]
    out = capsys.readouterr().out
    assert f"read 2 records from {src} (trl_standard 2)" in out and "wrote 2 records" in out
    assert run(["data", "convert", str(mid), str(back), "--to", "trl", "--rejected-key", "reject"]) == 0
    assert read_records(back) == PAIRS
    assert "(openrlhf 2)" in capsys.readouterr().out
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["o.jsonl", "p.jsonl", "t.jsonl"]


def test_convert_implicit_openrlhf_and_llm_on_ray(tmp_path):
    src, imp, back = tmp_path / "c.jsonl", tmp_path / "imp.json", tmp_path / "back.jsonl"
    write_jsonl(src, CONV)
    assert run(["data", "convert", str(src), str(imp), "--to", "openrlhf", "--implicit"]) == 0
    row = json.loads(imp.read_text())[0]
    assert row["chosen"] == [U("Hi"), A("Hello!")] and "prompt" not in row
    assert run(["data", "convert", str(imp), str(back), "--to", "trl"]) == 0
    assert read_records(back) == CONV
    ray = tmp_path / "ray.csv"
    assert run(["data", "convert", str(back), str(ray), "--to", "llm-on-ray"]) == 0
    assert read_records(ray)[0]["instruction"] == "Hi"
    assert run(["data", "convert", str(ray), str(back), "--to", "trl", "--style", "conversational"]) == 0
    assert [(r["prompt"], r["chosen"]) for r in read_records(back)] == [([U("Hi")], [A("Hello!")])]


def test_convert_to_parquet(tmp_path):
    src, dst = tmp_path / "p.json", tmp_path / "p.parquet"
    src.write_text(json.dumps([{"instruction": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}
                               for p in PAIRS]))
    assert run(["data", "convert", str(src), str(dst), "--to", "trl"]) == 0
    assert [r["prompt"] for r in read_records(dst)] == ["What is 2+2?", "Capital of France?"]


def test_convert_bad_record_names_file_line_and_writes_nothing(tmp_path, capsys):
    src, dst = tmp_path / "p.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, [PAIRS[0], {"prompt": "q", "chosen": "a"}])
    assert run(["data", "convert", str(src), str(dst), "--to", "openrlhf"]) == 1
    assert f"{src}:2: rejected: missing key" in capsys.readouterr().err
    assert not dst.exists() and [p.name for p in tmp_path.iterdir()] == ["p.jsonl"]


def test_convert_multi_turn_to_llm_on_ray_fails_cleanly(tmp_path, capsys):
    src, dst = tmp_path / "p.jsonl", tmp_path / "out.jsonl"
    write_jsonl(src, [{"prompt": [U("a"), A("b"), U("c")], "chosen": [A("d")], "rejected": [A("e")]}])
    assert run(["data", "convert", str(src), str(dst), "--to", "llm-on-ray"]) == 1
    assert f"{src}:1: prompt: cannot turn a 3-message conversation" in capsys.readouterr().err
    assert not dst.exists()


# --------------------------------------------------------------------------------------- validate
def _bad_file(tmp_path):
    p = tmp_path / "prefs.jsonl"
    lines = [json.dumps(PAIRS[0]),
             '{"prompt": "q", "chosen": "a", oops}',
             "",
             json.dumps({"prompt": "q", "chosen": "a"}),
             json.dumps({"id": "1", "prompt": "x", "chosen": "y", "rejected": "z"}),
             json.dumps({"prompt": "same", "chosen": "s", "rejected": "s"}),
             json.dumps(PAIRS[1]),
             json.dumps({"prompt": "", "chosen": "a", "rejected": "b"})]
    p.write_text("\n".join(lines) + "\n")
    return p


def test_validate_file_reports_every_problem(tmp_path):
    p = _bad_file(tmp_path)
    rep = validate_file(p, "preference")
    assert (rep.total, rep.valid, rep.bad) == (7, 2, 5)
    assert (rep.duplicate_ids, rep.identical_pairs) == (1, 1)
    assert [e.split(": ")[0] for e in rep.errors] == [f"{p}:{n}" for n in (2, 4, 5, 6, 8)]
    assert rep.errors[0].startswith(f"{p}:2: invalid JSON:")
    assert rep.errors[1] == f"{p}:4: rejected: missing key"
    assert rep.errors[2] == f"{p}:5: id: duplicate id '1' (first at {p}:1)"
    assert rep.errors[3] == f"{p}:6: chosen: chosen and rejected are identical"
    assert rep.errors[4] == f"{p}:8: prompt: empty prompt"
    assert not rep.ok and rep.forms["trl_standard"] == 4


def test_validate_file_kinds_and_formats(tmp_path):
    p = tmp_path / "sft.json"
    p.write_text(json.dumps([{"instruction": "a", "output": "b"}, {"messages": [U("q"), A("r")]},
                             {"instruction": "c"}], indent=1))
    rep = validate_file(p)  # auto → sft
    assert rep.kind == "sft" and (rep.total, rep.valid, rep.bad) == (3, 2, 1)
    third = [i for i, line in enumerate(p.read_text().splitlines(), start=1) if line == " {"][-1]
    assert rep.errors == [f"{p}:{third}: completion: missing key (one of completion, output, response, answer)"]
    q = tmp_path / "prompts.csv"
    q.write_text("id,prompt\n1,hello\n2,\n1,again\n")
    rep = validate_file(q, "prompt")
    assert (rep.valid, rep.bad, rep.duplicate_ids) == (1, 2, 1)
    assert rep.errors == [f"{q}:3: prompt: empty prompt", f"{q}:4: id: duplicate id '1' (first at {q}:2)"]
    with pytest.raises(DataError, match="no such file"):
        validate_file(tmp_path / "missing.jsonl", "prompt")
    with pytest.raises(DataError, match="completion_key do not apply to prompt"):
        validate_file(q, "prompt", completion_key="x")


def test_cli_validate_exit_codes_and_output(tmp_path, capsys):
    p = _bad_file(tmp_path)
    assert run(["data", "validate", str(p), "--kind", "preference"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{p}:2: invalid JSON:")
    assert f"{p}:4: rejected: missing key" in out
    assert out[-1].startswith(f"{p} (preference): 7 records, 2 valid, 5 bad (1 duplicate id(s), "
                              "1 chosen == rejected)")
    good = tmp_path / "good.jsonl"
    write_jsonl(good, [{"prompt": "q", "good": "a", "bad": "b"}])
    assert run(["data", "validate", str(good), "--kind", "preference", "--chosen-key", "good",
                "--rejected-key", "bad"]) == 0
    assert "1 records, 1 valid, 0 bad" in capsys.readouterr().out
    assert run(["data", "validate", str(good), "--kind", "prompt", "--chosen-key", "good"]) == 1
    assert "chosen_key do not apply to prompt" in capsys.readouterr().err
    assert run(["data", "validate", str(tmp_path / "nope.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().err
