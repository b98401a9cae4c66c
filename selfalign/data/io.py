"""Reading and writing record files, atomically.

Readers return plain ``dict`` records. Supported inputs:

* ``.jsonl`` / ``.ndjson`` (also ``.gz``-compressed): one JSON object per line, blank lines skipped;
* ``.json``: a list of objects, or an object holding such a list under ``"data"`` (a ``.json`` file
  that is really JSON lines is read as JSON lines);
* ``.csv``: one record per row, read strictly (an unclosed quote is an error, not a cell that
  swallows the rest of the file); cells holding a JSON list or object are decoded (this is how
  :func:`write_records` stores nested values);
* ``.parquet`` (pyarrow);
* a folder: a ``datasets`` folder written by ``save_to_disk`` (``datasets.load_from_disk``), or a
  folder of data files in the formats above (read in sorted order and concatenated).

Every bad input raises :class:`~selfalign.errors.DataError` naming the file and, where there is one,
the line (for a byte that is not UTF-8, a JSON line that does not parse: also the column; for
CSV the file line, for JSON lists the line where the record starts, for parquet and
``datasets`` folders the 1-based row number).

Writers never leave a half-written file: they write to a temporary name in the same folder and
``os.replace`` it onto the target (see :func:`atomic_output`).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from selfalign.data.decode import (
    GZ_ERRORS,
    as_record,
    decode_line,
    iter_json_list,
    open_bytes,
    read_error,
    read_text,
)
from selfalign.errors import DataError

__all__ = [
    "FILE_EXTENSIONS",
    "atomic_output",
    "content_hash",
    "iter_jsonl",
    "iter_records",
    "read_records",
    "require_records",
    "write_jsonl",
    "write_records",
    "write_text_atomic",
]

#: Extensions :func:`read_records` understands (a ``.gz`` suffix is allowed on JSON/JSONL/CSV).
FILE_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")
_HF_MARKERS = ("dataset_dict.json", "state.json")


# ------------------------------------------------------------------------------------------ helpers
def _ext(path: Path) -> str:
    """Lower-case data extension of ``path`` ignoring a trailing ``.gz`` (``a.jsonl.gz`` → ``.jsonl``)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _open_text(path: Path, mode: str = "r", csv: bool = False) -> IO[str]:
    """UTF-8 text (a BOM is skipped when reading); ``.gz`` transparently; ``csv`` keeps newlines raw."""
    enc = "utf-8" if "w" in mode else "utf-8-sig"
    newline = "" if ("w" in mode or csv) else None
    if path.suffix.lower() == ".gz":
        return gzip.open(path, mode + "t", encoding=enc, newline=newline)
    return open(path, mode, encoding=enc, newline=newline)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise DataError("no such file or folder", path)


# ------------------------------------------------------------------------------------------ readers
def iter_jsonl(path: str | Path, on_error: Callable[[DataError], None] | None = None
               ) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-blank line of a JSON-lines file (1-based).

    Raises ``DataError`` (``file:LINE: invalid JSON: ... (column C)``) on a malformed line, on a
    line that is not a JSON object and on a line that is not UTF-8 — or, with ``on_error``, hands
    that error to ``on_error`` and goes on with the next line (e.g. to skip a line cut by a crash,
    or to list every bad line). A corrupt ``.gz`` file is one ``DataError`` naming the file.
    Lines are decoded one by one, so the line number of a bad byte is exact.

    Example: ``for line, rec in iter_jsonl("prompts.jsonl"): ...``
    """
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        raise DataError("is a folder, expected a JSON-lines file", path)
    try:
        f = open_bytes(path)
    except OSError as e:
        raise read_error(path, e) from None
    with f:
        line_no = 0
        while True:
            try:
                raw = f.readline()
            except GZ_ERRORS as e:
                raise read_error(path, e) from None
            if not raw:
                return
            line_no += 1
            try:
                line = decode_line(raw, path, line_no).rstrip("\r\n")  # so a cut line's column is real
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, line_no) from None
                rec = as_record(obj, path, line_no)
            except DataError as e:
                if on_error is None:
                    raise
                on_error(e)
                continue
            yield line_no, rec


def _iter_json(path: Path) -> Iterator[tuple[int, dict]]:
    text = read_text(path)
    stripped = text.lstrip()
    if not stripped:
        return
    if stripped[0] == "[":
        yield from iter_json_list(text, len(text) - len(stripped), path)
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # JSON lines saved as .json (common for HF exports)
            yield from iter_jsonl(path)
            return
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path, e.lineno) from None
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        for i, rec in enumerate(obj["data"], start=1):
            yield i, as_record(rec, path, i)
        return
    if isinstance(obj, dict):  # a single record
        yield 1, obj
        return
    raise DataError(f"expected a list of objects or {{\"data\": [...]}}, got {type(obj).__name__}", path)


def _decode_cell(value: str) -> Any:
    s = value.strip()
    if s[:1] in ("[", "{"):
        try:
            obj = json.loads(s)
        except json.JSONDecodeError:
            return value
        if isinstance(obj, (list, dict)):
            return obj
    return value


def _iter_csv(path: Path) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV file, read strictly: an unterminated quote is an error at the line where the
    quoted cell starts (a lenient reader would swallow the rest of the file into one cell)."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    prev_end = 0
    try:
        header = next(reader, None)
        if header is None:
            return
        if len(set(header)) != len(header):
            raise DataError("duplicate column names in the header", path, 1)
        prev_end = reader.line_num
        for row in reader:
            start, prev_end = prev_end + 1, reader.line_num
            if not row or all(c == "" for c in row):
                continue
            if len(row) != len(header):
                raise DataError(f"row has {len(row)} cells, header has {len(header)}", path, start)
            yield start, {k: _decode_cell(v) for k, v in zip(header, row)}
    except csv.Error as e:
        hint = " (a quote is never closed?)" if "end of data" in str(e) else ""
        raise DataError(f"invalid CSV: {e}{hint}", path, prev_end + 1) from None


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"invalid parquet: {e}", path) from None
    row = 0
    batches = pf.iter_batches()
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"invalid parquet after row {row}: {e}", path) from None
        if batch is None:
            return
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


def _iter_hf_folder(path: Path, split: str | None) -> Iterator[tuple[int, dict]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several unrelated types here
        raise DataError(f"cannot load datasets folder: {e}", path) from None
    if isinstance(ds, datasets.DatasetDict):
        names = list(ds.keys())
        if split is None:
            split = "train" if "train" in ds else (names[0] if len(names) == 1 else None)
        if split not in ds:
            raise DataError(f"choose a split with split=...; this folder has {names}", path)
        ds = ds[split]
    for i, rec in enumerate(ds, start=1):
        yield i, dict(rec)


def _data_files(folder: Path, split: str | None) -> list[Path]:
    files = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if _ext(p) in FILE_EXTENSIONS and (split is None or split in rel.as_posix()):
            files.append(p)
    return files


def iter_records(path: str | Path, *, split: str | None = None) -> Iterator[tuple[int, dict, Path]]:
    """Yield ``(line, record, file)`` for every record of a data file or folder.

    ``line`` locates the record in ``file`` (see the module docstring). ``split`` picks a split of a
    ``DatasetDict`` folder (default ``train`` or the only one) or, for a folder of data files, keeps
    the files whose relative path contains it.
    """
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        if any((path / m).exists() for m in _HF_MARKERS):
            for line, rec in _iter_hf_folder(path, split):
                yield line, rec, path
            return
        files = _data_files(path, split)
        if not files:
            raise DataError(f"folder has no data files ({', '.join(FILE_EXTENSIONS)}) and is not a "
                            "datasets folder", path)
        for f in files:
            yield from iter_records(f)
        return
    ext = _ext(path)
    if ext in (".jsonl", ".ndjson"):
        it = iter_jsonl(path)
    elif ext == ".json":
        it = _iter_json(path)
    elif ext == ".csv":
        it = _iter_csv(path)
    elif ext == ".parquet":
        it = _iter_parquet(path)
    else:
        raise DataError(f"unknown file type {ext or '(no extension)'!r}; use one of "
                        f"{', '.join(FILE_EXTENSIONS)} or a datasets folder", path)
    for line, rec in it:
        yield line, rec, path


def read_records(path: str | Path, *, split: str | None = None) -> list[dict]:
    """Read every record of a JSONL/JSON/CSV/parquet file or a datasets folder into a list.

    Example: ``prompts = read_records("examples/data/prompts.jsonl")``
    """
    return [rec for _, rec, _ in iter_records(path, split=split)]


def require_records(records: list, path: str | Path) -> list:
    """``records`` unchanged, or ``DataError("no records ...")`` naming ``path`` when it is empty
    (an empty or blank file, a CSV with only a header, a parquet file with zero rows)."""
    if not records:
        raise DataError("no records (the file is empty, blank, or only a header)", path)
    return records


# ------------------------------------------------------------------------------------------ writers
def _temp_sibling(path: Path) -> Path:
    """A fresh hidden name next to ``path`` keeping its extension (``.tmp-out.1a2b3c4d.jsonl``).

    Every temporary name starts with ``.tmp-``, so readers of a folder can skip them.
    """
    ext = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    return path.with_name(f".tmp-{stem}.{uuid.uuid4().hex[:8]}{ext}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    Write a file or create a folder at the yielded path. When the block ends without an exception
    the result replaces ``path`` (an existing file or folder there is replaced). On an exception
    the temporary file or folder is removed and the exception propagates, so ``path`` is either
    the old content or the complete new one, never half-written. A file is never put over an
    existing folder (``DataError``; a folder may replace a folder). The temporary name keeps the
    target's extension, so writers that choose a format by extension still work.

    Example::

        with atomic_output("run/r1s1-generate/data.jsonl") as tmp:
            tmp.write_text(...)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not (tmp.exists() or tmp.is_symlink()):
        raise DataError("nothing was written to the temporary output", path)
    if path.is_dir() and not path.is_symlink() and not tmp.is_dir():
        _remove(tmp)
        raise DataError("is an existing folder; a file is never written over it", path)
    if (tmp.is_dir() or path.is_dir()) and path.exists() and not path.is_symlink():
        # os.replace cannot put a folder over a file or a non-empty folder: move the old one aside.
        old = path.with_name(f".tmp-{path.name}.old{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`).

    Example: ``write_text_atomic(run / "index.json", json.dumps(index))``
    """
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _dumps(rec: Any) -> str:
    return json.dumps(rec, ensure_ascii=False, allow_nan=False)


def write_jsonl(path: str | Path, records: Iterable[dict]) -> int:
    """Write records as JSON lines, atomically; return how many were written.

    Example: ``write_jsonl("out/prefs.jsonl", pairs)``
    """
    path = Path(path)
    n = 0
    with atomic_output(path) as tmp, _open_text(tmp, "w") as f:
        for rec in records:
            try:
                f.write(_dumps(rec) + "\n")
            except (TypeError, ValueError) as e:
                raise DataError(f"record {n + 1} cannot be written as JSON: {e}", path) from None
            n += 1
        f.flush()
        if isinstance(f, io.TextIOWrapper) and hasattr(f.buffer, "fileno"):
            os.fsync(f.fileno())
    return n


def _write_json(path: Path, records: list[dict]) -> None:
    with atomic_output(path) as tmp, _open_text(tmp, "w") as f:
        try:
            json.dump(records, f, ensure_ascii=False, indent=1, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise DataError(f"records cannot be written as JSON: {e}", path) from None
        f.write("\n")


def _write_csv(path: Path, records: list[dict]) -> None:
    columns: dict[str, None] = {}
    for rec in records:
        columns.update(dict.fromkeys(rec))
    with atomic_output(path) as tmp, _open_text(tmp, "w") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for rec in records:
            row = []
            for c in columns:
                v = rec.get(c)
                row.append("" if v is None else _dumps(v) if isinstance(v, (list, dict)) else v)
            w.writerow(row)


def _write_parquet(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.Table.from_pylist(records)
    except (pa.ArrowException, TypeError, ValueError) as e:
        raise DataError(f"records do not fit one parquet schema ({e}); write .jsonl instead", path) from None
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)


def write_records(path: str | Path, records: Iterable[dict]) -> int:
    """Write records atomically in the format named by the extension (.jsonl/.json/.csv/.parquet).

    CSV stores nested values (lists, dicts) as JSON text and ``None`` as an empty cell; parquet needs
    one consistent type per column (a mix of text and message-list prompts does not fit).

    Example: ``write_records("prefs.parquet", pairs)``
    """
    path = Path(path)
    ext = _ext(path)
    if ext in (".jsonl", ".ndjson"):
        return write_jsonl(path, records)
    records = list(records)
    if ext == ".json":
        _write_json(path, records)
    elif ext == ".csv":
        _write_csv(path, records)
    elif ext == ".parquet":
        _write_parquet(path, records)
    else:
        raise DataError(f"cannot write file type {ext or '(no extension)'!r}; use one of "
                        f"{', '.join(FILE_EXTENSIONS)}", path)
    return len(records)


# ------------------------------------------------------------------------------------------ hashing
def content_hash(path: str | Path, length: int = 16) -> str:
    """Short sha256 hex of a file's bytes or of a folder's files (relative names + bytes, sorted).

    Two folders with the same files and contents hash the same wherever they live.

    Example: ``content_hash("runs/x/r1s1-generate/data.jsonl")`` → ``'3f9c0d1e2a4b5c6d'``
    """
    path = Path(path)
    _check_exists(path)
    h = hashlib.sha256()

    def feed(file: Path) -> None:
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)

    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for p in files:
            rel = p.relative_to(path).as_posix().encode()
            h.update(b"F" + len(rel).to_bytes(8, "little") + rel + p.stat().st_size.to_bytes(8, "little"))
            feed(p)
    else:
        feed(path)
    return h.hexdigest()[:length]
