"""Verifiable-instruction checks: programmatic pass/fail tests driven by a prompt's ``meta``.

A prompt carries its constraints in ``meta`` (the idea follows IFEval, arXiv 2311.07911)::

    {"checks": [{"type": "max_words", "n": 50},
                {"type": "include_keywords", "keywords": ["water"]},
                {"type": "detectable_format:number_bullet_lists", "num_bullets": 3}],
     "answer": 42}

:func:`run_checks` returns a :class:`CheckResult`: ``passed_all`` and one ``(type, passed)`` per
check (strict), plus ``("answer", passed)`` when ``meta["answer"]`` is present; ``loose_results``,
``passed_all_loose`` and ``fraction_loose`` give IFEval's loose outcomes (a check passes loosely if
it passes on the response, or on it with the first and/or last line dropped, or with ``*``
removed). docs/checks.md has the same tables with examples.

**IFEval ids.** Every instruction id of Google's IFEval (``if_verifiable.ifeval``'s
``INSTRUCTION_DICT``: ``change_case:english_lowercase``, ``length_constraints:number_words``, ...)
is a check type; its kwargs are sibling keys with IFEval's names, all required, e.g.
``{"type": "length_constraints:number_words", "relation": "less than", "num_words": 60}``. The
official checkers do the work (:mod:`selfalign.checks_ifeval`, loaded on first use).

**Short names** (parameters in brackets) and which implementation runs them

=================== ==================================== =============================================
check               runs as                              why / difference from before
=================== ==================================== =============================================
lowercase           ours: ``str.islower()``              IFEval's ``english_lowercase`` is this AND
                                                         langdetect == "en", which misfires on short
                                                         answers ("yes" -> tr, "all good here" -> cy)
uppercase           ours: ``str.isupper()``              same, for ``english_capital``
max_words [n]       number_words "less than" n+1         words = ``\\w+`` runs ("don't" is 2 words)
min_words [n]       number_words "at least" n            idem
max_sentences [n]   number_sentences "less than" n+1     sentences = Punkt (knows "e.g.", "Dr.")
min_sentences [n]   number_sentences "at least" n        idem
include_keywords    ours: whole words, literal,          IFEval's ``keywords:existence`` is a regex
  [keywords: list]  case-insensitive                     substring search ("cat" in "concatenate")
exclude_keywords    keywords:forbidden_words with the    IFEval matches ``\\b<regex>\\b``: the same as
  [keywords: list]  keywords regex-escaped; ours when    ours for keywords that start and end with a
                    a keyword starts/ends otherwise      word character; not for "C++" (ours kept)
no_commas           punctuation:no_comma, and no         ours also rejects the full-width comma
                    full-width ``，`` either
num_bullets [n]     ours: lines ``* x`` / ``- x``,       IFEval's counts any line starting with ``-``
                    exactly n                            ("---" rules, "-5 C") and ``* * *`` rules
json                detectable_format:json_format        (```json fences allowed in both)
ends_with [phrase]  startend:end_checker                 now also ignores a closing ``"``
starts_with         ours: starts with ``phrase``         no IFEval equivalent (its constrained_start
  [phrase]          (case-insensitive)                   is disabled in IFEval, and regex-based)
title               detectable_format:title              now any non-blank ``<<...>>`` counts
num_paragraphs [n]  ours: exactly n paragraphs split     IFEval splits by ``***`` only
                    by blank lines or ``***``            (number_paragraphs) or blank lines only
=================== ==================================== =============================================

``answer`` (ours; number, string, or a list of accepted alternatives): for a number, the LAST number
in the response must equal it (``1,000`` and ``1000`` alike; relative tolerance 1e-6; a fraction
``3/4`` counts as 0.75); for a string, the normalised answer (lower case, no punctuation or
articles) must occur as a whole phrase in the normalised response.

Loose outcomes of our own checks use the same IFEval transformations, except ``answer`` (loose =
strict: dropping the last line could make an earlier, wrong number "the last number").

An empty (whitespace-only) response fails every check, strict and loose: otherwise "at most 40
words" or "no commas" would reward saying nothing.

``import selfalign.checks`` is stdlib-only and fast; the IFEval backend (a few seconds to import)
loads the first time a check needs it.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfalign import checks_ifeval
from selfalign.errors import DataError

# ------------------------------------------------------------------------------------------ helpers
_BULLET_RE = re.compile(r"^[ \t]*[*-][ \t]+\S")
_RULE_RE = re.compile(r"^[ \t*\-_]+$")
_PARA_SPLIT_RE = re.compile(r"\n\s*\*\*\*+\s*\n|\n\s*\n")
_NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\d])")
_WORD_EDGES_RE = re.compile(r"^\w(?:.*\w)?$", re.DOTALL)


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
IfevalTarget = Callable[[dict], "tuple[str, dict] | None"]


@dataclass(frozen=True)
class CheckType:
    """One check type: its parameters (name -> python type) and how it runs.

    ``backend`` is ``"selfalign"`` (``fn`` is ours), ``"alias"`` (``ifeval(check)`` gives the IFEval
    id and kwargs to run; when it gives None, ``fn`` runs instead) or ``"ifeval"`` (an IFEval id,
    kwargs validated by :func:`selfalign.checks_ifeval.validate`). ``also``: an extra test of ours
    that an alias must pass as well.
    """

    name: str
    fn: Callable[..., bool] | None
    params: dict[str, type]
    doc: str
    backend: str = "selfalign"
    ifeval: IfevalTarget | None = None
    also: Callable[[str], bool] | None = None


CHECKS: dict[str, CheckType] = {}


def _register(name: str, doc: str, **params: type):
    def deco(fn):
        CHECKS[name] = CheckType(name, fn, params, doc)
        return fn

    return deco


def _alias(name: str, doc: str, target: IfevalTarget, fn: Callable[..., bool] | None = None,
           also: Callable[[str], bool] | None = None, **params: type) -> None:
    CHECKS[name] = CheckType(name, fn, params, doc, "alias", target, also)


@_register("lowercase", "the whole answer is in lower case (str.islower: no capital, some letter)")
def _lowercase(r: str) -> bool:
    return r.islower()  # at least one cased letter: "* * *" does not pass


@_register("uppercase", "the whole answer is in capital letters (str.isupper)")
def _uppercase(r: str) -> bool:
    return r.isupper()


_WORDS, _SENTENCES = "length_constraints:number_words", "length_constraints:number_sentences"
_alias("max_words", "at most n words (IFEval counts \\w+ runs)",
       lambda c: (_WORDS, {"relation": "less than", "num_words": c["n"] + 1}), n=int)
_alias("min_words", "at least n words (IFEval counts \\w+ runs)",
       lambda c: (_WORDS, {"relation": "at least", "num_words": c["n"]}), n=int)
_alias("max_sentences", "at most n sentences (Punkt)",
       lambda c: (_SENTENCES, {"relation": "less than", "num_sentences": c["n"] + 1}), n=int)
_alias("min_sentences", "at least n sentences (Punkt)",
       lambda c: (_SENTENCES, {"relation": "at least", "num_sentences": c["n"]}), n=int)


@_register("include_keywords", "every keyword appears (whole words, case-insensitive)", keywords=list)
def _include(r: str, keywords: list) -> bool:
    return all(_keyword_in(str(k), r) for k in keywords)


def _exclude(r: str, keywords: list) -> bool:
    return not any(_keyword_in(str(k), r) for k in keywords)


def _forbidden_words(c: dict) -> tuple[str, dict] | None:
    """exclude_keywords as IFEval's forbidden_words, when its ``\\b..\\b`` equals our whole-word match."""
    kws = [str(k).strip() for k in c["keywords"]]
    if not kws or not all(_WORD_EDGES_RE.match(k) for k in kws):
        return None
    return "keywords:forbidden_words", {"forbidden_words": [re.escape(k) for k in kws]}


_alias("exclude_keywords", "no keyword appears (whole words, case-insensitive)", _forbidden_words,
       fn=_exclude, keywords=list)
_alias("no_commas", "no commas (nor the full-width one)", lambda c: ("punctuation:no_comma", {}),
       also=lambda r: "，" not in r)


@_register("num_bullets", "exactly n markdown bullet points", n=int)
def _num_bullets(r: str, n: int) -> bool:
    return count_bullets(r) == n


_alias("json", "the answer is valid JSON (a ```json fence is allowed)",
       lambda c: ("detectable_format:json_format", {}))
_alias("ends_with", "ends with the phrase (case-insensitive)",
       lambda c: ("startend:end_checker", {"end_phrase": c["phrase"]}), phrase=str)


@_register("starts_with", "starts with the phrase (case-insensitive)", phrase=str)
def _starts_with(r: str, phrase: str) -> bool:
    return r.strip().lower().startswith(phrase.strip().lower())


_alias("title", "has a title in double angular brackets <<title>>", lambda c: ("detectable_format:title", {}))


@_register("num_paragraphs", "exactly n paragraphs (blank lines or *** between them)", n=int)
def _num_paragraphs(r: str, n: int) -> bool:
    return len(paragraphs(r)) == n


for _iid, (_doc, _) in checks_ifeval.SCHEMA.items():
    CHECKS[_iid] = CheckType(_iid, None, checks_ifeval.py_types(_iid), _doc, "ifeval")


# ------------------------------------------------------------------------------------------- API
class CheckResult:
    """Outcome of all checks of one prompt on one response.

    ``results`` are strict, ``loose_results`` loose (IFEval's rule), both ``(type, passed)`` in the
    same order. ``loose_results`` defaults to a copy of ``results``; :func:`run_checks` passes a
    ``loose`` function instead, called on first access (loose needs up to 7 more runs of each
    failed check, and most callers read only the strict outcomes).
    """

    def __init__(self, passed_all: bool, results: list[tuple[str, bool]] | None = None,
                 loose_results: list[tuple[str, bool]] | None = None,
                 loose: Callable[[], list[tuple[str, bool]]] | None = None):
        self.passed_all = passed_all
        self.results = list(results or [])
        self._loose_results = loose_results
        self._loose = loose

    @property
    def loose_results(self) -> list[tuple[str, bool]]:
        """``(type, passed loosely)`` per check, in the order of :attr:`results`."""
        if self._loose_results is None:
            self._loose_results = self._loose() if self._loose else list(self.results)
            self._loose = None
        return self._loose_results

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckResult):
            return NotImplemented
        return (self.passed_all, self.results, self.loose_results) == \
            (other.passed_all, other.results, other.loose_results)

    def __repr__(self) -> str:
        return (f"CheckResult(passed_all={self.passed_all!r}, results={self.results!r}, "
                f"loose_results={self.loose_results!r})")

    @property
    def fraction(self) -> float | None:
        """Fraction of checks passed, strict (None when there were none)."""
        return sum(ok for _, ok in self.results) / len(self.results) if self.results else None

    @property
    def num_passed(self) -> int:
        """Number of checks passed, strict."""
        return sum(ok for _, ok in self.results)

    @property
    def passed_all_loose(self) -> bool:
        """Every check passed loosely (True when there were none)."""
        return all(ok for _, ok in self.loose_results)

    @property
    def fraction_loose(self) -> float | None:
        """Fraction of checks passed loosely (None when there were none)."""
        lr = self.loose_results
        return sum(ok for _, ok in lr) / len(lr) if lr else None


def _validate_params(ct: CheckType, c: dict, file: str | None, line: int | None, key: str) -> None:
    """Validate the parameters of one of our short-name checks (types, non-negative ints, extras)."""
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


def validate_checks(meta: dict | None, file: str | None = None, line: int | None = None) -> list[dict]:
    """Validate ``meta["checks"]`` and return it; raises DataError naming the bad check and key.

    Short names: parameters present, of the right type, no others. IFEval ids: see
    :func:`selfalign.checks_ifeval.validate` (every kwarg required, values in range, no others).
    """
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
        ct = CHECKS.get(c["type"]) if isinstance(c["type"], str) else None
        if ct is None:
            raise DataError(f"unknown check type {c['type']!r} (known: {', '.join(sorted(CHECKS))})",
                            file, line, f"{key}.type")
        if ct.backend == "ifeval":
            checks_ifeval.validate(c, file, line, key)
        else:
            _validate_params(ct, c, file, line, key)
    if "answer" in meta:
        a = meta["answer"]
        alts = a if isinstance(a, list) else [a]
        if not alts or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in alts):
            raise DataError("must be a number, a string or a list of them", file, line, "meta.answer")
    return checks


def has_checks(meta: dict | None) -> bool:
    """True if the prompt carries any check or an expected answer."""
    return bool(meta) and isinstance(meta, dict) and (bool(meta.get("checks")) or "answer" in meta)


def _tester(ct: CheckType, c: dict) -> Callable[[str], bool]:
    """A predicate ``text -> passed`` for one validated check (blank text fails)."""
    if ct.backend == "ifeval":
        return checks_ifeval.tester(ct.name, checks_ifeval.kwargs_of(c))
    target = ct.ifeval(c) if ct.ifeval is not None else None
    if target is not None:
        return checks_ifeval.tester(*target, also=ct.also)
    args = {p: c[p] for p in ct.params}
    return lambda text: bool(text.strip()) and bool(ct.fn(text, **args))


def run_checks(response: str, meta: dict | None) -> CheckResult:
    """Run every check in ``meta["checks"]`` (and ``meta["answer"]``) on ``response``.

    Returns strict outcomes, and loose ones computed when first read (see :class:`CheckResult`):
    a check passes loosely if it passes on ``response`` or on one of IFEval's loose variants of
    it; ``answer`` loose = strict. Unknown check types or bad parameters raise
    :class:`DataError`. With no checks at all the result is ``CheckResult(passed_all=True,
    results=[])``; use :func:`has_checks` to tell. A blank response fails every check.
    """
    checks = validate_checks(meta)
    empty = not response.strip()
    tests = [(CHECKS[c["type"]].name, _tester(CHECKS[c["type"]], c)) for c in checks]
    strict = [(name, not empty and ok(response)) for name, ok in tests]
    answer = [("answer", check_answer(response, meta["answer"]))] if meta and "answer" in meta else []

    def loose() -> list[tuple[str, bool]]:
        variants = () if empty else checks_ifeval.loose_variants(response)[1:]
        out = [(name, s or any(ok(v) for v in variants)) for (name, ok), (_, s) in zip(tests, strict)]
        return out + answer

    results = strict + answer
    return CheckResult(passed_all=all(ok for _, ok in results), results=results, loose=loose)
