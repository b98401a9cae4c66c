"""Turn a generated text into a table row (step r1s1 "extract") with a status and a status score.

1. **Find** the first JSON object: from the first ``{``, count braces outside strings (``"`` or
   ``'`` strings, backslash escapes respected) until the depth returns to 0. An object that never
   closes (a cut-off generation) is taken to the end of the text. No ``{`` → INVALID_ANSWER.
2. **Parse** with :func:`json.loads`; if that fails, **repair** with ``json_repair.loads``
   (single quotes, trailing commas, unquoted keys, missing closing braces, ...). Anything that is
   still not a JSON object → INVALID_ANSWER.
3. **Match keys** to the schema columns ignoring case, spaces, ``_`` and ``-``
   (``"Bill Length-MM"`` = ``bill_length_mm``). Unmatched keys, and a second key that matches an
   already matched column, are *extra*.
4. **Cast**: numeric columns → ``float`` (``int``, rounded, for whole-number columns); bools, nulls,
   nested values, non-finite numbers and text that is not a number fail. Categorical columns → the
   known category whose text equals the value's text, case-insensitively (``1.0`` also matches
   category ``1``); an unknown category fails.

**Status** (spec ``workflows.md`` §4, r1s1): SUCCESS | REDUNDANT_KEY | MISSING_KEY |
CONVERSION_ERROR | INVALID_ANSWER. **Status score** 5/3/2/1/0 in that same order (spec r1s4:
"status score 5/3/2/1/0 by status"; the spec lists the statuses in this order; the seed does not
give the mapping). **Precedence** when several problems occur: the most severe — the lowest
score — wins: INVALID_ANSWER > CONVERSION_ERROR > MISSING_KEY > REDUNDANT_KEY, so one more problem
can never raise a sample's score. Every problem found is still listed in ``problems``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from selfalign.tabular.neighbours import json_value
from selfalign.tabular.tables import Table


class Status(str, Enum):
    """Extraction outcome, best first."""

    SUCCESS = "SUCCESS"
    REDUNDANT_KEY = "REDUNDANT_KEY"
    MISSING_KEY = "MISSING_KEY"
    CONVERSION_ERROR = "CONVERSION_ERROR"
    INVALID_ANSWER = "INVALID_ANSWER"


STATUS_SCORE: dict[Status, int] = {
    Status.SUCCESS: 5, Status.REDUNDANT_KEY: 3, Status.MISSING_KEY: 2,
    Status.CONVERSION_ERROR: 1, Status.INVALID_ANSWER: 0,
}


def status_score(status: Status | str) -> int:
    """5/3/2/1/0 for SUCCESS/REDUNDANT_KEY/MISSING_KEY/CONVERSION_ERROR/INVALID_ANSWER."""
    return STATUS_SCORE[Status(status)]


@dataclass(frozen=True)
class Extraction:
    """Result of :func:`extract_row`. ``row`` holds the cast values of the columns that cast
    (None for INVALID_ANSWER); ``errors`` maps a column to why its value did not cast."""

    status: Status
    row: dict[str, Any] | None = None
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    errors: dict[str, str] = field(default_factory=dict)
    repaired: bool = False
    problems: tuple[str, ...] = ()

    @property
    def score(self) -> int:
        return STATUS_SCORE[self.status]

    def to_record(self) -> dict[str, Any]:
        """JSON-ready dict: status, status_score, row, missing, extra, errors, repaired, problems."""
        return {"status": self.status.value, "status_score": self.score, "row": self.row,
                "missing": list(self.missing), "extra": list(self.extra), "errors": dict(self.errors),
                "repaired": self.repaired, "problems": list(self.problems)}


# ------------------------------------------------------------------------------ find + parse
def first_json_object(text: str) -> str | None:
    """The first ``{...}`` of ``text`` with balanced braces outside strings; the rest of the text
    from the first ``{`` when it never closes; None when there is no ``{``."""
    start = text.find("{")
    if start < 0:
        return None
    depth, quote, escaped = 0, "", False
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return text[start:]


def parse_object(candidate: str) -> tuple[dict[str, Any] | None, bool]:
    """``(object, repaired)``: strict JSON first, then ``json_repair``; None if no object."""
    try:
        value = json.loads(candidate)
        if isinstance(value, dict):
            return value, False
    except ValueError:
        pass
    from json_repair import loads as repair_loads

    try:
        value = repair_loads(candidate)
    except Exception:  # the repairer gives up in its own ways
        return None, True
    return (value, True) if isinstance(value, dict) else (None, True)


# ------------------------------------------------------------------------------ keys + types
def normalise_key(key: str) -> str:
    """Lower case with spaces, underscores and hyphens removed."""
    return re.sub(r"[\s_\-]+", "", str(key)).lower()


def match_keys(obj: dict[str, Any], columns: list[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    """``(values by column, missing columns, extra keys)`` for a parsed object (module docstring)."""
    by_norm = {normalise_key(c): c for c in columns}
    values: dict[str, Any] = {}
    extra: list[str] = []
    for key, value in obj.items():
        col = by_norm.get(normalise_key(key))
        if col is None or col in values:
            extra.append(str(key))
        else:
            values[col] = value
    return values, [c for c in columns if c not in values], extra


_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?")


def cast_number(value: Any, integer: bool = False) -> int | float:
    """A numeric cell from a generated value; raises ValueError with the reason."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        raise ValueError(f"{json.dumps(value)} is not a number")
    if isinstance(value, str):
        text = value.strip()
        if _THOUSANDS.fullmatch(text):
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return int(round(number)) if integer else number


def _texts(value: Any) -> list[str]:
    """Candidate texts of a generated categorical value (``1.0`` also as ``1``)."""
    texts = [str(value).strip().lower()]
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
            if math.isfinite(number) and number.is_integer():
                texts.append(str(int(number)))
        except ValueError:
            pass
    return texts


def cast_category(value: Any, categories: list[Any]) -> Any:
    """The known category matching ``value`` case-insensitively; raises ValueError otherwise."""
    if value is None or isinstance(value, (dict, list)):
        raise ValueError(f"{json.dumps(value)} is not a category")
    known = {str(json_value(c)).strip().lower(): c for c in categories}
    for text in _texts(value):
        if text in known:
            return json_value(known[text])
    shown = ", ".join(str(json_value(c)) for c in categories[:10])
    raise ValueError(f"{value!r} is not a known category ({shown}{', ...' if len(categories) > 10 else ''})")


def cast_row(values: dict[str, Any], table: Table) -> tuple[dict[str, Any], dict[str, str]]:
    """``(cast values, errors by column)`` for matched values."""
    row: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for col, value in values.items():
        try:
            if table.is_categorical(col):
                row[col] = cast_category(value, table.categories(col))
            else:
                row[col] = cast_number(value, table.is_integer(col))
        except ValueError as err:
            errors[col] = str(err)
    return row, errors


# ------------------------------------------------------------------------------ main entry
def extract_row(text: str, table: Table) -> Extraction:
    """Extract, repair, match and cast one generated row against ``table``'s schema."""
    candidate = first_json_object(text)
    if candidate is None:
        return Extraction(Status.INVALID_ANSWER, problems=("no JSON object in the text",))
    obj, repaired = parse_object(candidate)
    if obj is None:
        return Extraction(Status.INVALID_ANSWER, repaired=repaired,
                          problems=("the JSON object could not be parsed or repaired",))
    values, missing, extra = match_keys(obj, table.columns)
    row, errors = cast_row(values, table)
    problems = [f"{c}: {e}" for c, e in errors.items()]
    problems += [f"missing key {c!r}" for c in missing] + [f"extra key {k!r}" for k in extra]
    if errors:
        status = Status.CONVERSION_ERROR
    elif missing:
        status = Status.MISSING_KEY
    elif extra:
        status = Status.REDUNDANT_KEY
    else:
        status = Status.SUCCESS
    return Extraction(status, row, tuple(missing), tuple(extra), errors, repaired, tuple(problems))
