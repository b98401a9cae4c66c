"""Bytes → text → JSON records with exact locations: the decoding half of :mod:`selfalign.data.io`.

* a ``.gz`` file is decompressed on the fly, and a corrupt or truncated one is one
  :class:`~selfalign.errors.DataError` naming the file (never a bare ``zlib.error``/``EOFError``);
* a byte that is not UTF-8 is reported at its own line and column (JSON lines are decoded line by
  line; whole files are decoded at once and the position mapped back to a line);
* a JSON list is scanned element by element so every record, and every syntax error, has its line
  and column.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from selfalign.errors import DataError

__all__ = ["GZ_ERRORS", "as_record", "decode_line", "iter_json_list", "open_bytes", "read_error",
           "read_text"]


def as_record(obj: Any, path: Path, line: int | None) -> dict:
    """``obj`` when it is a JSON object, else a ``DataError`` at ``path:line``."""
    if not isinstance(obj, dict):
        raise DataError(f"record must be a JSON object, got {type(obj).__name__}", path, line)
    return obj


#: What a corrupt or truncated ``.gz`` file raises while it is read.
GZ_ERRORS = (OSError, EOFError, zlib.error)


def open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes (``.gz`` decompressed on the fly)."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def read_error(path: Path, e: BaseException) -> DataError:
    """One line for an unreadable file: a corrupt ``.gz`` or an OS error."""
    if path.suffix.lower() == ".gz" and not isinstance(e, (FileNotFoundError, PermissionError)):
        return DataError(f"corrupt or truncated gzip file ({e})", path)
    return DataError(f"cannot read: {e}", path)


def _utf8_error(data: bytes, e: UnicodeDecodeError, path: Path, first_line: int = 1) -> DataError:
    """``file:LINE: not UTF-8 text ... (column C)`` for a bad byte at ``e.start`` of ``data``."""
    line = first_line + data.count(b"\n", 0, e.start)
    start = data.rfind(b"\n", 0, e.start) + 1
    col = len(data[start:e.start].decode("utf-8", errors="replace")) + 1
    return DataError(f"not UTF-8 text: {e.reason} (byte 0x{data[e.start]:02x}, column {col})", path, line)


def decode_line(raw: bytes, path: Path, line_no: int) -> str:
    """UTF-8 text of one line (a BOM on the first line is dropped); errors name line and column."""
    if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _utf8_error(raw, e, path, line_no) from None


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text (BOM dropped, ``.gz`` aware); errors name the line."""
    try:
        with open_bytes(path) as f:
            data = f.read()
    except GZ_ERRORS as e:
        raise read_error(path, e) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _utf8_error(data, e, path) from None


def _line_of(text: str, pos: int, cache: list[int]) -> int:
    """1-based line of character ``pos``; ``cache`` = [last_pos, last_line] makes forward scans O(n)."""
    last_pos, last_line = cache
    line = last_line + text.count("\n", last_pos, pos)
    cache[0], cache[1] = pos, line
    return line


def iter_json_list(text: str, start: int, path: Path) -> Iterator[tuple[int, dict]]:
    """Scan a JSON array element by element from ``text[start] == '['`` so each record has its line."""
    dec = json.JSONDecoder()
    cache = [0, 1]
    n = len(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    i = skip_ws(start + 1)
    if i < n and text[i] == "]":
        i += 1
    else:
        while True:
            line = _line_of(text, i, cache)
            try:
                obj, i = dec.raw_decode(text, i)
            except json.JSONDecodeError as e:
                ln = _line_of(text, e.pos, cache)
                col = e.pos - text.rfind("\n", 0, e.pos)
                raise DataError(f"invalid JSON: {e.msg} (column {col})", path, ln) from None
            yield line, as_record(obj, path, line)
            i = skip_ws(i)
            if i < n and text[i] == ",":
                i = skip_ws(i + 1)
                continue
            if i < n and text[i] == "]":
                i += 1
                break
            raise DataError("invalid JSON: expected ',' or ']' in the list", path, _line_of(text, min(i, n), cache))
    if skip_ws(i) != n:
        raise DataError("invalid JSON: extra data after the list", path, _line_of(text, skip_ws(i), cache))
