"""IFEval-id checks: the official checkers (if-verifiable) behind meta.checks, run offline."""

from __future__ import annotations

import pytest

from selfalign import checks_ifeval
from selfalign.checks import CHECKS, run_checks, validate_checks
from selfalign.errors import DataError

SURE = ("Sure! Here is my answer, I hope that you will like it and that it helps you with the question "
        "you asked.\n")
FR = "Bonjour, je suis très content de vous voir."

# (id, kwargs, passing answer, failing answer, loose-only answer or None). The loose-only answer
# fails strict and passes loose (IFEval's rule: drop the first/last line, or strip "*"). None
# where no loose variant can pass an "at least" count or a check the variants cannot help.
CASES = [
    ("change_case:english_lowercase", {}, "the quick brown fox jumps over the lazy dog and runs far away.",
     "The quick brown fox jumps over the lazy dog.",
     "Sure!\nthe quick brown fox jumps over the lazy dog and runs far away."),
    ("change_case:english_capital", {}, "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
     "THE QUICK brown FOX JUMPS.", "Sure!\nTHE QUICK BROWN FOX JUMPS OVER THE LAZY DOG."),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "i am VERY HAPPY today.", "i am very HAPPY today.", None),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "nothing shouts here.", "STOP NOW please.", "NOTE: FYI\nnothing shouts here."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], meet me at [place].",
     "Dear [name], meet me there.", None),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "This is *one* and **two**.", "Only *one* here, ** ** is blank.", None),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nIntro.\nSection 2\nEnd.", "Section 1\nOnly one.", None),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. see you soon.",
     "Hello, no postscript.", "Hello.\nP.*S*. see you soon."),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hi.\nP.P.S. bring cake.",
     "Hi.\nP.S. bring cake.", None),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\nSecond.",
     "First.\n***\nSecond.\n***\nThird.", "Sure!\n***\nFirst.\n***\nSecond."),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
     "First we go.\n\n\"Then\" we rest.", "First we go.\n\nAnd then we rest.",
     "Sure!\n\nFirst we go.\n\nThen we rest."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a haiku about rain."},
     "write a haiku about rain. Soft rain falls all night.", "Here is a haiku: soft rain falls.",
     "Sure!\nWrite a haiku about rain.\nSoft rain falls."),
    ("combination:two_responses", {}, "Rainy day.\n******\nSunny day.", "Same.\n******\nSame.",
     "Here are two:\n******\nRainy.\n******\nSunny."),
    ("startend:quotation", {}, '  "All good."  ', "All good.", 'Sure!\n"All good."'),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "at least"},
     "Zigzag.", "Zero.", None),
    ("keywords:letter_frequency", {"letter": "A", "let_frequency": 3, "let_relation": "less than"},
     "Bob ran far.", "Banana.", "aaaa\nBob ran far."),
    ("keywords:existence", {"keywords": ["rain", "cloud"]}, "Clouds bring RAIN.", "Sun only, no clouds.",
     None),
    ("keywords:frequency", {"keyword": "rain", "frequency": 2, "relation": "at least"},
     "Rain, rain, go away.", "Rain stops.", None),
    ("keywords:frequency", {"keyword": "very", "frequency": 2, "relation": "less than"},
     "A very good day.", "A very very good day.", "Very well!\nA very good day."),
    ("keywords:forbidden_words", {"forbidden_words": ["rain"]}, "Sunny and raining.", "Rain today.",
     "No rain, ok?\nSunny all week."),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, 'Done. any other questions?"',
     "Any other questions? Bye.", "Done. Any other questions?\nCheers!"),
    ("detectable_format:title", {}, "<<Rain>>\nIt rains.", "<< >> and <single>", None),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* a\n- b", "* a\n* b\n* c",
     "Here:\n* a\n* b\n- end"),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', "{'a': 1}", 'Sure!\n{"a": 1}'),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "one two three", "one two",
     None),
    ("length_constraints:number_words", {"num_words": 4, "relation": "less than"}, "one two three",
     "one two three four", "one two three\nfour five"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     "Dr. Smith is here.", "One. Two.", "Sure! Okay.\nDr. Smith is here."),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "at least"}, "One. Two.",
     "Dr. Smith is here.", None),
    ("punctuation:no_comma", {}, "No commas here.", "Yes, commas.", "Sure, here:\nNo commas here."),
    ("language:response_language", {"language": "fr"}, FR, "Hello, I am very happy to see you today.",
     SURE + FR),
    ("detectable_format:constrained_response", {}, "I thought long. My answer is yes.", "Yes.",
     "My answer is *yes*."),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


def outcome(check: dict, response: str) -> tuple[bool, bool]:
    res = run_checks(response, {"checks": [check]})
    assert [t for t, _ in res.results] == [t for t, _ in res.loose_results] == [check["type"]]
    assert res.passed_all == res.results[0][1] and res.passed_all_loose == res.loose_results[0][1]
    return res.results[0][1], res.loose_results[0][1]


@pytest.mark.parametrize("iid,kwargs,good,bad,loose_only", CASES, ids=IDS)
def test_each_ifeval_check(iid, kwargs, good, bad, loose_only):
    check = {"type": iid, **kwargs}
    validate_checks({"checks": [check]})
    assert outcome(check, good) == (True, True)
    assert outcome(check, bad)[0] is False
    if loose_only is not None:
        assert outcome(check, loose_only) == (False, True)
    assert outcome(check, "  \n ") == (False, False)  # an empty response fails, strict and loose


def test_every_ifeval_id_is_registered_and_tested():
    registry = checks_ifeval.backend().registry
    assert set(checks_ifeval.SCHEMA) == set(registry) == {t for t in CHECKS if ":" in t}
    assert {c[0] for c in CASES} == set(registry)


@pytest.mark.parametrize("iid", sorted(checks_ifeval.SCHEMA))
def test_schema_mirrors_ifeval_kwargs(iid):
    from if_verifiable.ifeval import instructions

    assert checks_ifeval.RELATIONS == instructions._COMPARISON_RELATION
    checker = checks_ifeval.backend().registry[iid](iid)
    assert set(checker.get_instruction_args_keys()) == set(checks_ifeval.SCHEMA[iid][1])


def test_loose_rule_of_a_whole_prompt():
    meta = {"checks": [{"type": "punctuation:no_comma"}, {"type": "detectable_format:title"}]}
    res = run_checks("Sure, here it is:\n<<Rain>>\nIt rains.", meta)
    assert res.results == [("punctuation:no_comma", False), ("detectable_format:title", True)]
    assert res.passed_all_loose and not res.passed_all
    assert res.fraction == 0.5 and res.fraction_loose == 1.0


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize("check,key,needle", [
    ({"type": "length_constraints:number_wordz", "num_words": 3}, "meta.checks[0].type", "unknown check type"),
    ({"type": "keywords:existence"}, "meta.checks[0].keywords", "needs 'keywords'"),
    ({"type": "keywords:existence", "keywords": None}, "meta.checks[0].keywords", "needs 'keywords'"),
    ({"type": "keywords:existence", "keywords": []}, "meta.checks[0].keywords", "non-empty list"),
    ({"type": "keywords:existence", "keywords": ["(rain"]}, "meta.checks[0].keywords", "regular expression"),
    ({"type": "length_constraints:number_words", "num_words": 3}, "meta.checks[0].relation", "needs 'relation'"),
    ({"type": "length_constraints:number_words", "num_words": 3, "relation": "at most"},
     "meta.checks[0].relation", "'less than', 'at least'"),
    ({"type": "length_constraints:number_words", "num_words": -1, "relation": "at least"},
     "meta.checks[0].num_words", "non-negative int"),
    ({"type": "length_constraints:number_words", "num_words": True, "relation": "at least"},
     "meta.checks[0].num_words", "non-negative int"),
    ({"type": "length_constraints:number_words", "num_words": 3, "relation": "at least", "n": 2},
     "meta.checks[0]", "takes no 'n'"),
    ({"type": "punctuation:no_comma", "language": "en"}, "meta.checks[0]", "takes no 'language'"),
    ({"type": "keywords:letter_frequency", "letter": "ab", "let_frequency": 1, "let_relation": "at least"},
     "meta.checks[0].letter", "single ASCII letter"),
    ({"type": "language:response_language", "language": "english"}, "meta.checks[0].language", "langdetect"),
    ({"type": "length_constraints:nth_paragraph_first_word", "num_paragraphs": 2, "nth_paragraph": 3,
      "first_word": "so"}, "meta.checks[0].nth_paragraph", "1..num_paragraphs"),
    ({"type": "combination:repeat_prompt", "prompt_to_repeat": "  "}, "meta.checks[0].prompt_to_repeat",
     "non-empty str"),
    ({"type": "detectable_content:postscript", "postscript_marker": "(P.S."},
     "meta.checks[0].postscript_marker", "regular expression"),
])
def test_validation_errors_name_file_line_and_key(check, key, needle):
    with pytest.raises(DataError) as ei:
        validate_checks({"checks": [{"type": "punctuation:no_comma"}, check][1:]}, file="p.jsonl", line=7)
    e = ei.value
    assert (e.file, e.line, e.key) == ("p.jsonl", 7, key)
    assert needle in str(e) and str(e).startswith(f"p.jsonl:7: {key}: ") and "\n" not in str(e)
    with pytest.raises(DataError):
        run_checks("text", {"checks": [check]})


def test_null_kwargs_count_as_absent():
    # Hugging Face's google/IFEval rows carry every kwarg name, null where unused
    check = {"type": "punctuation:no_comma", "num_words": None, "relation": None}
    assert validate_checks({"checks": [check]}) == [check]
    assert outcome(check, "No commas") == (True, True)


# ---------------------------------------------------------------------------------------- aliases
@pytest.mark.parametrize("alias,ifeval,texts", [
    ({"type": "max_words", "n": 3}, {"type": "length_constraints:number_words", "relation": "less than",
                                     "num_words": 4}, ["one two three", "one two three four", "don't go", "a"]),
    ({"type": "min_words", "n": 3}, {"type": "length_constraints:number_words", "relation": "at least",
                                     "num_words": 3}, ["one two three", "one two", "don't go"]),
    ({"type": "max_sentences", "n": 1}, {"type": "length_constraints:number_sentences", "relation": "less than",
                                         "num_sentences": 2}, ["One.", "One. Two.", "Sure!\nOne."]),
    ({"type": "min_sentences", "n": 2}, {"type": "length_constraints:number_sentences", "relation": "at least",
                                         "num_sentences": 2}, ["One.", "One. Two.", "Dr. Who. Yes."]),
    ({"type": "no_commas"}, {"type": "punctuation:no_comma"}, ["a b", "a, b", "Sure, ok\nno commas"]),
    ({"type": "exclude_keywords", "keywords": ["rain", "ice cream"]},
     {"type": "keywords:forbidden_words", "forbidden_words": ["rain", "ice cream"]},
     ["Sunny", "Rain!", "raining", "I like ICE CREAM.", "No rain\nsun"]),
    ({"type": "json"}, {"type": "detectable_format:json_format"}, ['{"a": 1}', "{a: 1}", 'Sure!\n[1]']),
    ({"type": "ends_with", "phrase": "Bye."}, {"type": "startend:end_checker", "end_phrase": "Bye."},
     ["Ok. bye.", "Bye. Ok.", 'He said "ok bye."', "Ok bye.\nP.S."]),
    ({"type": "title"}, {"type": "detectable_format:title"}, ["<<T>>", "<< >>", "no"]),
])
def test_aliases_equal_their_ifeval_checks(alias, ifeval, texts):
    assert CHECKS[alias["type"]].backend == "alias"
    for t in texts:
        a = run_checks(t, {"checks": [alias]})
        b = run_checks(t, {"checks": [ifeval]})
        assert (a.results[0][1], a.loose_results[0][1]) == (b.results[0][1], b.loose_results[0][1]), t


# ------------------------------------------------------------------------------ the offline set-up
def test_patches_are_offline_pickle_free_and_local():
    import nltk
    from if_verifiable.ifeval import instructions_util

    checks_ifeval.backend()
    assert instructions_util._get_sentence_tokenizer is checks_ifeval.sentence_tokenizer
    assert instructions_util.count_sentences("Dr. Smith came. He left!") == 2
    shim = instructions_util.nltk
    assert shim is not nltk and shim.word_tokenize is checks_ifeval.word_tokenize
    assert shim.tokenize.RegexpTokenizer is nltk.tokenize.RegexpTokenizer  # the rest is real nltk
    assert nltk.word_tokenize is not checks_ifeval.word_tokenize  # the global module is untouched
    assert checks_ifeval.word_tokenize("Don't stop. U.S.A. is big!") == [
        "Do", "n't", "stop", ".", "U.S.A.", "is", "big", "!"]
    assert checks_ifeval.word_tokenize("a. b", preserve_line=True) == ["a.", "b"]


def test_language_detection_is_deterministic():
    import langdetect

    checks_ifeval.backend()
    assert langdetect.DetectorFactory.seed == 0
    # ambiguous short texts: unseeded, langdetect answers differ between calls ("pizza pasta": lv
    # or it, "a b c": ca or cy, seen over 40 calls); seeded, they never do
    for text in ("pizza pasta", "a b c", "bien"):
        assert len({langdetect.detect(text) for _ in range(40)}) == 1
    check = {"type": "language:response_language", "language": "it"}
    assert len({outcome(check, "pizza pasta") for _ in range(20)}) == 1


def test_checkers_are_built_once():
    checks_ifeval._checker.cache_clear()
    check = {"type": "keywords:existence", "keywords": ["rain"]}
    for t in ("rain", "sun", "rain rain"):
        run_checks(t, {"checks": [check]})
    info = checks_ifeval._checker.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_importing_and_validating_stay_light():
    # benchmarks/peers/trl_ppo.py imports selfalign.checks in a venv of its own: importing it, and
    # validating IFEval checks, must not load IFEval, nltk or datasets (seconds of import time)
    import subprocess
    import sys

    code = ("import sys; from selfalign.checks import validate_checks; validate_checks({'checks': ["
            "{'type': 'language:response_language', 'language': 'fr'}, {'type': 'max_words', 'n': 3}]}); "
            "print(sorted(m for m in ('if_verifiable', 'nltk', 'datasets', 'punkt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
