"""Readers, atomic writers and content hashes in selfalign.data.io."""

from __future__ import annotations

import gzip
import json

import pytest

from selfalign.data.io import (
    atomic_output,
    content_hash,
    iter_jsonl,
    iter_records,
    read_records,
    write_jsonl,
    write_records,
    write_text_atomic,
)
from selfalign.errors import DataError

RECORDS = [
    {"id": "a", "prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "chosen_score": 5.0},
    {"id": "b", "prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Dog.", "chosen_score": 4.5},
]


# ------------------------------------------------------------------------------------------ readers
def test_jsonl_roundtrip_and_line_numbers(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(RECORDS[0]) + "\n\n   \n" + json.dumps(RECORDS[1]) + "\n", encoding="utf-8")
    assert read_records(p) == RECORDS
    assert [ln for ln, _ in iter_jsonl(p)] == [1, 4]


def test_write_jsonl_then_read(tmp_path):
    p = tmp_path / "sub" / "out.jsonl"
    recs = RECORDS + [{"id": "ü", "prompt": [{"role": "user", "content": "héllo"}]}]
    assert write_jsonl(p, recs) == 3
    assert read_records(p) == recs
    assert "héllo" in p.read_text(encoding="utf-8")  # unicode kept readable
    assert [f.name for f in p.parent.iterdir()] == ["out.jsonl"]  # no temp left behind


def test_jsonl_gz(tmp_path):
    p = tmp_path / "d.jsonl.gz"
    with gzip.open(p, "wt", encoding="utf-8") as f:
        for r in RECORDS:
            f.write(json.dumps(r) + "\n")
    assert read_records(p) == RECORDS


def test_malformed_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(RECORDS[0]) + "\n\n{\"id\": \"b\", oops}\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_records(p)
    assert str(e.value).startswith(f"{p}:3: invalid JSON:")
    assert e.value.line == 3


def test_non_object_record(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(RECORDS[0]) + "\n[1, 2]\n", encoding="utf-8")
    with pytest.raises(DataError, match=r":2: record must be a JSON object, got list"):
        read_records(p)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_records(tmp_path / "nope.jsonl")
    p = tmp_path / "d.txt"
    p.write_text("hi")
    with pytest.raises(DataError, match="unknown file type '.txt'"):
        read_records(p)


def test_json_list_with_record_lines(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(RECORDS, indent=2), encoding="utf-8")
    assert read_records(p) == RECORDS
    lines = [ln for ln, _, _ in iter_records(p)]
    text_lines = p.read_text().splitlines()
    assert [text_lines[ln - 1].strip() for ln in lines] == ["{", "{"]
    assert lines[0] == 2 and lines[1] > lines[0]


def test_json_data_wrapper_and_jsonl_named_json(tmp_path):
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"data": RECORDS}), encoding="utf-8")
    assert read_records(p) == RECORDS
    q = tmp_path / "lines.json"
    q.write_text("\n".join(json.dumps(r) for r in RECORDS), encoding="utf-8")
    assert read_records(q) == RECORDS


def test_json_list_errors(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[\n {"id": 1},\n 7\n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"d.json:3: record must be a JSON object"):
        read_records(p)
    p.write_text('[\n {"id": 1},\n {"id": \n]', encoding="utf-8")
    with pytest.raises(DataError, match=r"d.json:4: invalid JSON"):
        read_records(p)
    p.write_text('"just a string"', encoding="utf-8")
    with pytest.raises(DataError, match="expected a list of objects"):
        read_records(p)


def test_csv_roundtrip_with_nested_cells(tmp_path):
    p = tmp_path / "d.csv"
    recs = [{"id": "1", "prompt": [{"role": "user", "content": "hi, there"}], "chosen": "multi\nline"},
            {"id": "2", "prompt": "[not json", "chosen": "x"}]
    write_records(p, recs)
    assert read_records(p) == recs
    # multi-line cell: the second record starts on line 4 of the file (header, 2 lines, then it)
    assert [ln for ln, _, _ in iter_records(p)] == [2, 4]


def test_csv_ragged_row(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("id,prompt\n1,hello\n2,hi,extra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d.csv:3: row has 3 cells, header has 2"):
        read_records(p)


def test_parquet_roundtrip(tmp_path):
    p = tmp_path / "d.parquet"
    assert write_records(p, RECORDS) == 2
    assert read_records(p) == RECORDS
    conv = [{"id": "c", "prompt": [{"role": "user", "content": "hi"}],
             "chosen": [{"role": "assistant", "content": "hello"}]}]
    write_records(p, conv)
    assert read_records(p) == conv


def test_parquet_mixed_types_is_a_data_error(tmp_path):
    p = tmp_path / "d.parquet"
    with pytest.raises(DataError, match="parquet"):
        write_records(p, [{"prompt": "a"}, {"prompt": [{"role": "user", "content": "b"}]}])
    assert not p.exists() and list(tmp_path.iterdir()) == []


def test_hf_datasets_folder(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(RECORDS)
    ds.save_to_disk(str(tmp_path / "hf"))
    assert read_records(tmp_path / "hf") == RECORDS
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([1])})
    dd.save_to_disk(str(tmp_path / "hfdict"))
    assert read_records(tmp_path / "hfdict") == RECORDS
    assert read_records(tmp_path / "hfdict", split="test") == RECORDS[1:]
    with pytest.raises(DataError, match="split"):
        read_records(tmp_path / "hfdict", split="validation")


def test_folder_of_data_files(tmp_path):
    d = tmp_path / "data"
    write_jsonl(d / "train-000.jsonl", RECORDS[:1])
    write_records(d / "train-001.parquet", RECORDS[1:])
    write_jsonl(d / "test-000.jsonl", [{"id": "t"}])
    (d / "README.md").write_text("not data")
    assert [r["id"] for r in read_records(d)] == ["t", "a", "b"]
    assert read_records(d, split="train") == RECORDS
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no data files"):
        read_records(tmp_path / "empty")


# ------------------------------------------------------------------------------------------ atomic
def test_atomic_output_file_success_and_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".jsonl" and tmp != target
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    with atomic_output(target) as tmp:
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_atomic_output_directory(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.mkdir()
        (tmp / "weights.bin").write_bytes(b"123")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    for content in (b"first", b"second"):  # second run replaces an existing non-empty folder
        with atomic_output(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(content)
        assert (target / "weights.bin").read_bytes() == content
        assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_output_nothing_written(tmp_path):
    with pytest.raises(DataError, match="nothing was written"), atomic_output(tmp_path / "x.jsonl"):
        pass


def test_atomic_temp_names_are_hidden_tmp_siblings(tmp_path):
    for name in ("out.jsonl", "d.jsonl.gz", "step-00000003"):
        with atomic_output(tmp_path / name) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-")
            tmp.write_text("x")
    write_text_atomic(tmp_path / "sub" / "index.json", '{"a": "é"}')
    assert json.loads((tmp_path / "sub" / "index.json").read_text(encoding="utf-8")) == {"a": "é"}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["index.json"]


def test_iter_jsonl_on_error_skips_bad_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n{"a": 2, "cut by a cr\n[1, 2]\n\n{"a": 3}\n')
    errors = []
    assert [(n, r["a"]) for n, r in iter_jsonl(p, on_error=errors.append)] == [(1, 1), (5, 3)]
    assert [e.line for e in errors] == [2, 3] and "invalid JSON" in str(errors[0])
    with pytest.raises(DataError, match=":2: invalid JSON"):
        list(iter_jsonl(p))


def test_write_jsonl_failure_keeps_old_file(tmp_path):
    p = tmp_path / "o.jsonl"
    write_jsonl(p, RECORDS)

    def gen():
        yield RECORDS[0]
        raise ValueError("generator broke")

    with pytest.raises(ValueError):
        write_jsonl(p, gen())
    assert read_records(p) == RECORDS
    with pytest.raises(DataError, match="cannot be written as JSON"):
        write_jsonl(p, [{"x": object()}])
    assert read_records(p) == RECORDS and [f.name for f in tmp_path.iterdir()] == ["o.jsonl"]


# ------------------------------------------------------------------------------------------ hashing
def test_content_hash_file_and_folder(tmp_path):
    a = tmp_path / "a.jsonl"
    write_jsonl(a, RECORDS)
    h = content_hash(a)
    assert len(h) == 16 and int(h, 16) >= 0
    assert content_hash(a) == h
    write_jsonl(a, RECORDS[:1])
    assert content_hash(a) != h

    def make(root, text):
        (root / "sub").mkdir(parents=True)
        (root / "x.txt").write_text("x")
        (root / "sub" / "y.txt").write_text(text)

    make(tmp_path / "d1", "y")
    make(tmp_path / "d2", "y")
    make(tmp_path / "d3", "z")
    assert content_hash(tmp_path / "d1") == content_hash(tmp_path / "d2")
    assert content_hash(tmp_path / "d1") != content_hash(tmp_path / "d3")
    (tmp_path / "d2" / "sub" / "y.txt").rename(tmp_path / "d2" / "sub" / "w.txt")  # renamed file
    assert content_hash(tmp_path / "d1") != content_hash(tmp_path / "d2")
    with pytest.raises(DataError):
        content_hash(tmp_path / "missing")


def test_utf8_bom_is_skipped(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("\ufeffid,prompt\n1,héllo\n".encode())
    assert read_records(p) == [{"id": "1", "prompt": "héllo"}]
    q = tmp_path / "bom.jsonl"
    q.write_bytes(("\ufeff" + json.dumps(RECORDS[0]) + "\n").encode())
    assert read_records(q) == RECORDS[:1]
