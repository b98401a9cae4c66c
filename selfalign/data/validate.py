"""Check a data file record by record and report every problem as ``file:line: reason``.

Unlike the loaders (which stop at the first bad record), :func:`validate_file` goes on to the end:
malformed JSON lines, records that do not normalise (missing key, empty prompt, wrong type),
repeated ids (the second and later copies) and preference pairs whose chosen equals rejected are
all listed and counted as bad.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from selfalign.data.formats import COMPLETION_KEYS, KIND_KEYS, detect_preference_format, normalizer
from selfalign.data.io import FILE_EXTENSIONS, _ext, iter_jsonl, iter_records
from selfalign.errors import DataError

__all__ = ["ValidationReport", "detect_kind", "validate_file"]

Kind = Literal["prompt", "sft", "preference"]


@dataclass
class ValidationReport:
    """Counts and problems found in one data file."""

    path: str
    kind: str
    total: int = 0
    valid: int = 0
    bad: int = 0
    duplicate_ids: int = 0
    identical_pairs: int = 0
    errors: list[str] = field(default_factory=list)
    forms: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        """No bad record, and at least one record (an empty file is not valid data)."""
        return self.bad == 0 and self.total > 0

    def summary(self) -> str:
        """One line: ``FILE (preference): 10 records, 9 valid, 1 bad (1 duplicate id, 0 chosen == rejected)``."""
        extra = f"{self.duplicate_ids} duplicate id(s)"
        if self.kind == "preference":
            extra += f", {self.identical_pairs} chosen == rejected"
        line = f"{self.path} ({self.kind}): {self.total} records, {self.valid} valid, {self.bad} bad ({extra})"
        if self.forms:
            line += "; forms: " + ", ".join(f"{k} {v}" for k, v in sorted(self.forms.items()))
        return line


def _lenient_jsonl(path: Path, report: ValidationReport) -> Iterator[tuple[int, dict, Path]]:
    """Like iter_jsonl but a malformed line is reported (counted bad, its error listed) and skipped."""

    def bad_line(err: DataError) -> None:
        report.total += 1
        report.bad += 1
        report.errors.append(str(err))

    for line_no, rec in iter_jsonl(path, on_error=bad_line):
        yield line_no, rec, path


def detect_kind(record: dict) -> Kind:
    """Guess the record kind from its keys: chosen → preference, an answer key → sft, else prompt."""
    if "chosen" in record:
        return "preference"
    if any(k in record for k in COMPLETION_KEYS):
        return "sft"
    msgs = record.get("messages")
    if isinstance(msgs, list) and any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs):
        return "sft"
    return "prompt"


def validate_file(path: str | Path, kind: Kind | Literal["auto"] = "auto", *, split: str | None = None,
                  **keys: str | None) -> ValidationReport:
    """Validate every record of a data file as ``kind`` records; never raises for bad records.

    ``keys`` are the key options of the kind (``prompt_key``; ``completion_key`` for sft;
    ``chosen_key``/``rejected_key`` for preference; ``None`` = default). ``kind="auto"`` guesses the
    kind from the first record and ignores options that do not apply to it.
    A file that cannot be read at all (missing, unknown type) still raises ``DataError``.

    Example: ``validate_file("prefs.jsonl", "preference", rejected_key="reject").errors``
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or folder", path)
    if path.is_file() and _ext(path) not in FILE_EXTENSIONS:
        raise DataError(f"unknown file type {_ext(path) or '(no extension)'!r}; use one of "
                        f"{', '.join(FILE_EXTENSIONS)} or a datasets folder", path)
    report = ValidationReport(str(path), kind)
    lenient = path.is_file() and _ext(path) in (".jsonl", ".ndjson")
    records = _lenient_jsonl(path, report) if lenient else iter_records(path, split=split)
    keys = {k: v for k, v in keys.items() if v is not None}
    fn = normalizer(kind, **keys) if kind != "auto" else None
    seen: dict[str, str] = {}
    try:
        for line, rec, file in records:
            report.total += 1
            if fn is None:
                report.kind = detect_kind(rec)
                keys = {k: v for k, v in keys.items() if k in KIND_KEYS[report.kind]}
                fn = normalizer(report.kind, **keys)  # type: ignore[arg-type]
            try:
                out = fn(rec, file=file, line=line)
                if report.kind == "preference":
                    report.forms[detect_preference_format(rec, **keys).name] += 1
            except DataError as e:
                report.bad += 1
                report.errors.append(str(e))
                continue
            where = f"{file}:{line}"
            if out["id"] in seen:
                report.duplicate_ids += 1
                report.bad += 1
                report.errors.append(f"{where}: id: duplicate id {out['id']!r} (first at {seen[out['id']]})")
                continue
            seen[out["id"]] = where
            if report.kind == "preference" and out["chosen"] == out["rejected"]:
                report.identical_pairs += 1
                report.bad += 1
                report.errors.append(f"{where}: chosen: chosen and rejected are identical")
                continue
            report.valid += 1
    except DataError as e:  # unreadable rest of a non-JSONL file: report and stop
        report.errors.append(str(e))
        report.bad += 1
    if report.total == 0 and not report.errors:
        report.errors.append(str(DataError("no records (the file is empty, blank, or only a header)", path)))
    return report
