"""Verifiable-instruction checks: programmatic pass/fail tests driven by a prompt's ``meta``.

A prompt carries its constraints in ``meta`` (the idea follows IFEval, arXiv 2311.07911; the code
is ours)::

    {"checks": [{"type": "max_words", "n": 50},
                {"type": "include_keywords", "keywords": ["water"]}],
     "answer": 42}

:func:`run_checks` returns a :class:`CheckResult`: ``passed_all`` and one ``(type, passed)`` per
check, plus ``("answer", passed)`` when ``meta["answer"]`` is present.

Check types (parameters in brackets)

=================== ===========================================================================
lowercase           no upper-case letter anywhere (and at least one letter)
uppercase           no lower-case letter anywhere (and at least one letter)
max_words [n]       at most ``n`` words          min_words [n]      at least ``n`` words
max_sentences [n]   at most ``n`` sentences      min_sentences [n]  at least ``n`` sentences
include_keywords    every keyword appears (case-insensitive, whole words) [keywords: list]
exclude_keywords    no keyword appears (case-insensitive, whole words) [keywords: list]
no_commas           no ``,`` (nor the full-width ``，``)
num_bullets [n]     exactly ``n`` markdown bullet lines (``* `` or ``- ``)
json                the response (optionally inside a ```json fence) parses as JSON
ends_with [phrase]  ends with ``phrase`` (case-insensitive, trailing whitespace ignored)
starts_with [phrase] starts with ``phrase`` (case-insensitive, leading whitespace ignored)
title               contains a title in double angular brackets, e.g. ``<<My title>>``
num_paragraphs [n]  exactly ``n`` paragraphs, separated by blank lines or ``***`` lines
=================== ===========================================================================

``answer`` (number, string, or a list of accepted alternatives): for a number, the LAST number in
the response must equal it (``1,000`` and ``1000`` alike; relative tolerance 1e-6; a fraction
``3/4`` counts as 0.75); for a string, the normalised answer (lower case, no punctuation or
articles) must occur as a whole phrase in the normalised response.

An empty (whitespace-only) response fails every check: otherwise "at most 40 words" or "no commas"
would reward saying nothing.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selfalign.errors import DataError

# ------------------------------------------------------------------------------------------ helpers
_WORD_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*", re.UNICODE)
_SENT_END_RE = re.compile(r"[.!?…]+(?=[\s\"'”’)\]]|$)")
_BULLET_RE = re.compile(r"^[ \t]*[*-][ \t]+\S")
_RULE_RE = re.compile(r"^[ \t*\-_]+$")
_PARA_SPLIT_RE = re.compile(r"\n\s*\*\*\*+\s*\n|\n\s*\n")
_TITLE_RE = re.compile(r"<<[^<>\n]*[^\W_][^<>\n]*>>")
_FENCE_RE = re.compile(r"^\s*```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```\s*$", re.DOTALL)
_NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\d])")


def words(text: str) -> list[str]:
    """Words of ``text``: runs of letters/digits, keeping inner apostrophes and hyphens."""
    return _WORD_RE.findall(text)


def count_sentences(text: str) -> int:
    """Sentences = segments ending in ``. ! ? …`` (or at the end of text) that contain a word."""
    parts = _SENT_END_RE.split(text.strip())
    return sum(1 for p in parts if _WORD_RE.search(p))


def count_bullets(text: str) -> int:
    """Lines starting with a markdown bullet ``* `` or ``- `` (indentation allowed)."""
    # "**bold**" at a line start is not a bullet (the marker must be followed by a space), nor is
    # a horizontal rule such as "* * *".
    return sum(1 for ln in text.splitlines() if _BULLET_RE.match(ln) and not _RULE_RE.match(ln))


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs, separated by blank lines or by ``***`` divider lines."""
    t = "\n" + text.strip() + "\n"
    return [p.strip() for p in _PARA_SPLIT_RE.split(t) if p.strip()]


def _keyword_in(keyword: str, text: str) -> bool:
    kw = keyword.strip()
    if not kw:
        return True
    left = r"(?<!\w)" if kw[0].isalnum() or kw[0] == "_" else ""
    right = r"(?!\w)" if kw[-1].isalnum() or kw[-1] == "_" else ""
    return re.search(left + re.escape(kw) + right, text, flags=re.IGNORECASE) is not None


def _strip_fence(text: str) -> str:
    m = _FENCE_RE.match(text)
    return m.group(1) if m else text.strip()


def parse_number(text: str) -> float | None:
    """A number written as ``-1,234.5``, ``12`` or ``3/4``; None if it is not one."""
    t = text.strip().replace(" ", "")
    if "/" in t:
        num, _, den = t.partition("/")
        a, b = parse_number(num), parse_number(den)
        return a / b if a is not None and b not in (None, 0) else None
    t = t.replace(",", "")
    try:
        v = float(t)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def last_number(text: str) -> float | None:
    """The last number that appears in ``text`` (thousands separators and fractions understood)."""
    found = _NUMBER_RE.findall(text)
    for cand in reversed(found):
        v = parse_number(cand)
        if v is not None:
            return v
    return None


_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """Lower case, punctuation removed, articles dropped, whitespace collapsed."""
    t = text.lower()
    t = "".join(" " if ch in string.punctuation or ch in "“”‘’" else ch for ch in t)
    return " ".join(w for w in t.split() if w not in _ARTICLES)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_answer(response: str, answer: Any) -> bool:
    """Does ``response`` give ``answer`` (see the module docstring)? A list = any alternative."""
    if isinstance(answer, (list, tuple)):
        return any(check_answer(response, a) for a in answer)
    if not response.strip():
        return False
    if _is_number(answer):
        target = float(answer)
    else:
        target = parse_number(str(answer))
    if target is not None:
        got = last_number(response)
        return got is not None and math.isclose(got, target, rel_tol=1e-6, abs_tol=1e-9)
    want = normalize_answer(str(answer))
    if not want:
        return False
    return re.search(r"(?<!\S)" + re.escape(want) + r"(?!\S)", normalize_answer(response)) is not None


# --------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class CheckType:
    """One check type: its test and the parameters it needs (name → expected python type)."""

    name: str
    fn: Callable[..., bool]
    params: dict[str, type]
    doc: str


CHECKS: dict[str, CheckType] = {}


def _register(name: str, doc: str, **params: type):
    def deco(fn):
        CHECKS[name] = CheckType(name, fn, params, doc)
        return fn

    return deco


@_register("lowercase", "the whole answer is in lower case")
def _lowercase(r: str) -> bool:
    return r == r.lower() and r != r.upper()  # at least one letter: "* * *" does not pass


@_register("uppercase", "the whole answer is in capital letters")
def _uppercase(r: str) -> bool:
    return r == r.upper() and r != r.lower()


@_register("max_words", "at most n words", n=int)
def _max_words(r: str, n: int) -> bool:
    return len(words(r)) <= n


@_register("min_words", "at least n words", n=int)
def _min_words(r: str, n: int) -> bool:
    return len(words(r)) >= n


@_register("max_sentences", "at most n sentences", n=int)
def _max_sentences(r: str, n: int) -> bool:
    return count_sentences(r) <= n


@_register("min_sentences", "at least n sentences", n=int)
def _min_sentences(r: str, n: int) -> bool:
    return count_sentences(r) >= n


@_register("include_keywords", "every keyword appears", keywords=list)
def _include(r: str, keywords: list) -> bool:
    return all(_keyword_in(str(k), r) for k in keywords)


@_register("exclude_keywords", "no keyword appears", keywords=list)
def _exclude(r: str, keywords: list) -> bool:
    return not any(_keyword_in(str(k), r) for k in keywords)


@_register("no_commas", "no commas")
def _no_commas(r: str) -> bool:
    return "," not in r and "，" not in r


@_register("num_bullets", "exactly n markdown bullet points", n=int)
def _num_bullets(r: str, n: int) -> bool:
    return count_bullets(r) == n


@_register("json", "the answer is valid JSON (a ```json fence is allowed)")
def _json(r: str) -> bool:
    try:
        json.loads(_strip_fence(r))
    except ValueError:
        return False
    return True


@_register("ends_with", "ends with the phrase", phrase=str)
def _ends_with(r: str, phrase: str) -> bool:
    return r.strip().lower().endswith(phrase.strip().lower())


@_register("starts_with", "starts with the phrase", phrase=str)
def _starts_with(r: str, phrase: str) -> bool:
    return r.strip().lower().startswith(phrase.strip().lower())


@_register("title", "has a title in double angular brackets <<title>>")
def _title(r: str) -> bool:
    return _TITLE_RE.search(r) is not None


@_register("num_paragraphs", "exactly n paragraphs (blank lines or *** between them)", n=int)
def _num_paragraphs(r: str, n: int) -> bool:
    return len(paragraphs(r)) == n


# ------------------------------------------------------------------------------------------- API
@dataclass
class CheckResult:
    """Outcome of all checks of one prompt on one response."""

    passed_all: bool
    results: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def fraction(self) -> float | None:
        """Fraction of checks passed (None when there were none)."""
        return sum(ok for _, ok in self.results) / len(self.results) if self.results else None

    @property
    def num_passed(self) -> int:
        return sum(ok for _, ok in self.results)


def validate_checks(meta: dict | None, file: str | None = None, line: int | None = None) -> list[dict]:
    """Validate ``meta["checks"]`` and return it; raises DataError naming the bad check and key."""
    if not meta:
        return []
    if not isinstance(meta, dict):
        raise DataError(f"meta must be a mapping, got {type(meta).__name__}", file, line, "meta")
    checks = meta.get("checks")
    if checks is None:
        checks = []
    if not isinstance(checks, list):
        raise DataError("must be a list of {type: ..., ...} mappings", file, line, "meta.checks")
    for i, c in enumerate(checks):
        key = f"meta.checks[{i}]"
        if not isinstance(c, dict) or "type" not in c:
            raise DataError("each check must be a mapping with a 'type'", file, line, key)
        ct = CHECKS.get(c["type"])
        if ct is None:
            raise DataError(f"unknown check type {c['type']!r} (known: {', '.join(sorted(CHECKS))})",
                            file, line, f"{key}.type")
        for pname, ptype in ct.params.items():
            if pname not in c:
                raise DataError(f"check {ct.name!r} needs {pname!r}", file, line, f"{key}.{pname}")
            v = c[pname]
            ok = isinstance(v, ptype) and not (ptype is int and isinstance(v, bool))
            if ptype is int and ok and v < 0:
                ok = False
            if not ok:
                raise DataError(f"check {ct.name!r}: {pname!r} must be a {'non-negative ' if ptype is int else ''}"
                                f"{ptype.__name__}, got {v!r}", file, line, f"{key}.{pname}")
        extra = set(c) - {"type"} - set(ct.params)
        if extra:
            raise DataError(f"check {ct.name!r} takes no {sorted(extra)[0]!r} "
                            f"(parameters: {', '.join(ct.params) or 'none'})", file, line, key)
    if "answer" in meta:
        a = meta["answer"]
        alts = a if isinstance(a, list) else [a]
        if not alts or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in alts):
            raise DataError("must be a number, a string or a list of them", file, line, "meta.answer")
    return checks


def has_checks(meta: dict | None) -> bool:
    """True if the prompt carries any check or an expected answer."""
    return bool(meta) and isinstance(meta, dict) and (bool(meta.get("checks")) or "answer" in meta)


def run_checks(response: str, meta: dict | None) -> CheckResult:
    """Run every check in ``meta["checks"]`` (and ``meta["answer"]``) on ``response``.

    Unknown check types or missing parameters raise :class:`DataError`. With no checks at all the
    result is ``CheckResult(passed_all=True, results=[])``; use :func:`has_checks` to tell.
    """
    checks = validate_checks(meta)
    empty = not response.strip()
    results: list[tuple[str, bool]] = []
    for c in checks:
        ct = CHECKS[c["type"]]
        ok = False if empty else bool(ct.fn(response, **{p: c[p] for p in ct.params}))
        results.append((ct.name, ok))
    if meta and "answer" in meta:
        results.append(("answer", check_answer(response, meta["answer"])))
    return CheckResult(passed_all=all(ok for _, ok in results), results=results)
