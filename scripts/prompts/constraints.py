"""Constraint families (official IFEval instruction ids and kwargs), their phrasings and conflicts.

A family builds the kwargs of one check from a context (the item, the words other checks already
require or forbid) and says it in natural language that matches what the IFEval checker tests.
Phrasings marked ``H|`` are used only in the held-out split. Conflicts are the official
``INSTRUCTION_CONFLICTS`` plus a few of ours (pairs that are satisfiable only by tricks), and
:func:`feasible` rejects combinations that could not fit in about 180 words.
"""

from __future__ import annotations

import random
import re

from .topics import CRUTCH_WORDS, END_PHRASES, FIRST_WORDS, GENERIC_KEYWORDS

IDS = {
    "lower": "change_case:english_lowercase", "capital": "change_case:english_capital",
    "capfreq": "change_case:capital_word_frequency", "placeholders": "detectable_content:number_placeholders",
    "highlights": "detectable_format:number_highlighted_sections",
    "sections": "detectable_format:multiple_sections", "postscript": "detectable_content:postscript",
    "paragraphs": "length_constraints:number_paragraphs",
    "nth_para": "length_constraints:nth_paragraph_first_word", "repeat": "combination:repeat_prompt",
    "two_resp": "combination:two_responses", "quotation": "startend:quotation",
    "letter": "keywords:letter_frequency", "existence": "keywords:existence", "frequency": "keywords:frequency",
    "forbidden": "keywords:forbidden_words", "end": "startend:end_checker", "title": "detectable_format:title",
    "bullets": "detectable_format:number_bullet_lists", "json": "detectable_format:json_format",
    "words": "length_constraints:number_words", "sentences": "length_constraints:number_sentences",
    "no_comma": "punctuation:no_comma", "constrained": "detectable_format:constrained_response",
    "language": "language:response_language",
}
FAMILY_OF = {v: k for k, v in IDS.items()}

# (family, variant) -> phrasings; "H|" = held-out only
PHRASES: dict[tuple[str, str], list[str]] = {
    ("lower", ""): [
        "Your entire response should be in English and in lowercase letters only; no capital letters are allowed.",
        "Write everything in lowercase English letters, without a single capital letter.",
        "H|Please reply in English using only lowercase letters (no capitals anywhere, not even at the start "
        "of a sentence)."],
    ("capital", ""): [
        "Your entire response should be in English and in capital letters only.",
        "Write your whole answer in English using ALL CAPITAL LETTERS.",
        "H|Reply in English, and make every letter of your response uppercase."],
    ("capfreq", "at least"): [
        "Use at least {n} words written entirely in capital letters, for emphasis.",
        "Include at least {n} words in ALL CAPS.",
        "H|Somewhere in your answer, at least {n} words should be fully capitalized (like WOW)."],
    ("capfreq", "less than"): [
        "Use fewer than {n} words written entirely in capital letters (the word I counts as one).",
        "Include fewer than {n} all-caps words; a lone capital I counts as one.",
        "H|Keep fully capitalized words, including the word I, to fewer than {n} in total."],
    ("placeholders", ""): [
        "Include at least {n} placeholders in square brackets, such as [name].",
        "Leave at least {n} placeholders for details, written in square brackets like [date].",
        "H|Leave at least {n} blanks for the reader to fill in, written in square brackets like [city]."],
    ("highlights", ""): [
        "Highlight at least {n} {sections} with markdown, i.e. *highlighted section*.",
        "Emphasise at least {n} {parts} of your answer by wrapping {them} in single asterisks, like *this part*.",
        "H|Mark at least {n} key {phrases} with markdown highlighting, for example *a key phrase*."],
    ("sections", ""): [
        "Divide your response into {n} sections and mark the beginning of each one with {s} X, such as "
        "{s} 1, {s} 2.",
        "Organise your answer in {n} sections, each starting with a header line {s} 1, {s} 2 and so on.",
        "H|Split the answer into {n} sections headed {s} 1 to {s} {n}."],
    ("postscript", ""): [
        "At the end of your response, please add a postscript starting with {m}",
        "Close your answer with a postscript that begins with {m}",
        "H|After the main answer, add a short note that starts with {m}"],
    ("paragraphs", ""): [
        "Write exactly {n} paragraphs, separated from each other by the markdown divider ***.",
        "Your answer should have {n} paragraphs. Separate the paragraphs with a line containing only ***.",
        "H|Structure the reply as {n} paragraphs, putting *** between consecutive paragraphs."],
    ("nth_para", ""): [
        'Write exactly {n} paragraphs, separated by a blank line (two line breaks). Paragraph {k} must start '
        'with the word "{w}".',
        'Your answer should consist of {n} paragraphs separated by empty lines, and the {ord} paragraph has '
        'to begin with the word "{w}".',
        'H|Use {n} paragraphs with a blank line between them; start the {ord} paragraph with the word "{w}".'],
    ("repeat", ""): [
        "First repeat the request above word for word without change, then give your answer. Do not say "
        "anything before the repeated request, and do not repeat these instructions.",
        "Begin by copying the request above exactly as written (only the request, not these instructions), "
        "then answer it.",
        "H|Start your reply by restating the request above verbatim, with nothing before it and without "
        "these instructions, and then respond."],
    ("two_resp", ""): [
        "Give two different responses, separated by six asterisks: ******.",
        "Write two different versions of your answer and separate them with a line of six asterisks (******).",
        "H|Offer two alternative answers; put ****** between them and nowhere else."],
    ("quotation", ""): [
        "Wrap your entire response in double quotation marks.",
        'Put your whole answer inside double quotes, so that it starts and ends with ".',
        "H|Enclose the complete response in a pair of double quotation marks."],
    ("letter", "at least"): [
        'The letter "{l}" should appear at least {n} times in your response.',
        "Use the letter {l} at least {n} times.",
        'H|Make sure the letter "{l}" occurs {n} or more times in your reply.'],
    ("letter", "less than"): [
        'The letter "{l}" should appear fewer than {n} times in your response.',
        "Use the letter {l} fewer than {n} times.",
        'H|Keep the number of times the letter "{l}" appears below {n}.'],
    ("existence", ""): [
        "Include the keywords {kws} in your response.",
        "Make sure your answer mentions {kws}.",
        "H|Work the words {kws} into your answer."],
    ("frequency", "at least"): [
        'Use the word "{w}" at least {n} times.',
        'The word "{w}" should appear at least {n} times in your answer.',
        'H|Repeat the word "{w}" {n} or more times.'],
    ("frequency", "less than"): [
        'Use the word "{w}" fewer than {n} times.',
        'The word "{w}" should appear fewer than {n} times in your answer.',
        'H|Mention "{w}" fewer than {n} times in total.'],
    ("forbidden", ""): [
        "Do not include the {words} {ws} in your response.",
        "Avoid using the {words} {ws}.",
        "H|Your answer must not contain the {words} {ws}."],
    ("end", ""): [
        'Your response must end with the exact phrase "{p}" and no other words may follow it.',
        'End your answer with the words "{p}" and nothing after them.',
        'H|The very last words of your reply must be "{p}".'],
    ("title", ""): [
        "Give your answer a title wrapped in double angular brackets, such as <<A Walk in the Rain>>.",
        "Include a title in double angle brackets, for example <<My Title Here>>.",
        "H|Your reply needs a title enclosed in double angular brackets, like <<Notes on a Quiet Morning>>."],
    ("bullets", ""): [
        "Your answer must contain exactly {n} bullet points, using markdown bullets such as:\n* This is a point.",
        'Format the answer as exactly {n} markdown bullet points (lines starting with "* ").',
        'H|Present exactly {n} bullet points, each on its own line beginning with "* ", and no other bullets.'],
    ("json", ""): [
        "Wrap your entire output in JSON format. You may use markdown code fences (```).",
        "Your whole response must be valid JSON; a ```json code block is fine.",
        "H|Reply with JSON only, optionally inside ``` ticks, and no text outside it."],
    ("words", "less than"): [
        "Answer with fewer than {n} words.", "Keep your response under {n} words.",
        "H|Your reply must be shorter than {n} words."],
    ("words", "at least"): [
        "Answer with at least {n} words.", "Write {n} words or more.",
        "H|Your reply should run to no fewer than {n} words."],
    ("sentences", "less than"): [
        "Your response should contain fewer than {n} sentences.", "Use fewer than {n} sentences.",
        "H|Keep it to fewer than {n} sentences in total."],
    ("sentences", "at least"): [
        "Your response should contain at least {n} sentences.", "Write at least {n} sentences.",
        "H|Use {n} or more full sentences."],
    ("no_comma", ""): [
        "Do not use any commas in your response.", "Avoid commas entirely.",
        "H|Write your reply without a single comma."],
    ("constrained", ""): [
        'Answer with one of the following options: "My answer is yes.", "My answer is no.", '
        '"My answer is maybe."',
        'Reply using one of these exact phrases: "My answer is yes.", "My answer is no." or '
        '"My answer is maybe."',
        'H|Respond with one of "My answer is yes.", "My answer is no.", "My answer is maybe." You may add a '
        'short reason afterwards.'],
    ("language", ""): [
        "Respond only in {L}; no other language is allowed.", "Write your entire answer in {L}.",
        "H|Please answer in {L}, without using any English."],
}

LANGUAGES = {"fr": "French", "es": "Spanish", "de": "German", "it": "Italian"}
ORDINALS = {1: "first", 2: "second", 3: "third", 4: "fourth"}
# common letters with roughly how often each appears per English word; rare letters for "fewer than"
COMMON_LETTERS = {"e": 0.55, "t": 0.45, "a": 0.4, "o": 0.38, "i": 0.35, "n": 0.35, "s": 0.32, "r": 0.3, "l": 0.2}
RARE_LETTERS = "zqxj"
SHORT = {"math", "rewrite", "yesno", "json"}  # no "at least N words / sentences" for these

# ours, on top of the official conflicts: combinations that only work by tricks or read oddly
EXTRA_CONFLICTS = [
    ("lower", "sections"), ("lower", "postscript"), ("capfreq", "sections"), ("capfreq", "postscript"),
    ("end", "postscript"), ("postscript", "nth_para"), ("title", "nth_para"), ("sections", "paragraphs"),
    ("sections", "nth_para"), ("bullets", "paragraphs"), ("bullets", "nth_para"), ("language", "quotation"),
    ("language", "letter"), ("language", "capfreq"), ("language", "title"), ("language", "nth_para"),
]

# families each task type may draw from: base weights (balanced further at run time)
_TEXT = ["lower", "capital", "capfreq", "highlights", "postscript", "quotation", "letter", "existence",
         "frequency", "forbidden", "end", "title", "words", "sentences", "no_comma", "repeat"]
_EXTRA = {
    "explain": ["paragraphs", "nth_para", "sections", "bullets", "two_resp", "json", "language"],
    "list": ["bullets", "sections", "json", "two_resp"],
    "story": ["paragraphs", "nth_para", "sections", "placeholders", "two_resp"],
    "poem": ["paragraphs", "two_resp"],
    "letter": ["paragraphs", "nth_para", "placeholders", "two_resp"],
    "advice": ["bullets", "paragraphs", "nth_para", "sections", "placeholders", "two_resp", "language"],
    "compare": ["bullets", "paragraphs", "nth_para", "sections", "json"],
    "describe": ["paragraphs", "nth_para", "sections", "bullets", "two_resp", "json", "language"],
    "argue": ["paragraphs", "nth_para", "sections", "bullets"],
    "plan": ["bullets", "sections", "placeholders", "json", "paragraphs"],
    "dialogue": ["placeholders", "two_resp"],
    "product": ["bullets", "placeholders", "two_resp", "json", "paragraphs"],
    "summarise": ["bullets", "two_resp", "paragraphs", "nth_para", "json"],
    "howto": ["bullets", "sections", "paragraphs", "placeholders", "json"],
}
CATEGORY_FAMILIES = {cat: _TEXT + extra for cat, extra in _EXTRA.items()}
CATEGORY_FAMILIES["rewrite"] = ["lower", "capital", "capfreq", "quotation", "letter", "existence", "forbidden",
                                "end", "words", "no_comma", "repeat", "two_resp", "postscript", "highlights",
                                "title"]
CATEGORY_FAMILIES["math"] = ["no_comma", "lower", "capital", "words", "sentences", "quotation", "end", "title",
                             "existence", "forbidden", "postscript", "highlights", "letter", "repeat"]
CATEGORY_FAMILIES["yesno"] = ["constrained"]
CATEGORY_FAMILIES["json"] = ["json", "existence", "forbidden"]
BASE_WEIGHT = {f: 1.0 for f in IDS}
BASE_WEIGHT.update({"json": 0.5, "language": 0.15, "two_resp": 0.8, "repeat": 0.8})
# rough natural length (words) of an answer to each task type
BASE_WORDS = {"math": 3, "rewrite": 5, "yesno": 4, "json": 5, "list": 10, "poem": 20, "story": 35, "letter": 25,
              "dialogue": 25, "summarise": 12, "howto": 20}


def official_conflicts() -> dict[str, set[str]]:
    from if_verifiable.ifeval import instructions_registry as reg

    conf = {k: set(v) for k, v in reg.INSTRUCTION_CONFLICTS.items()}
    for k in list(conf):
        for o in list(conf[k]):
            conf.setdefault(o, set()).add(k)
        conf[k].add(k)
    return conf


def conflict_pairs() -> set[frozenset]:
    conf = official_conflicts()
    pairs = {frozenset((FAMILY_OF[a], FAMILY_OF[b])) for a, bs in conf.items() for b in bs
             if a in FAMILY_OF and b in FAMILY_OF}
    pairs |= {frozenset(p) for p in EXTRA_CONFLICTS}
    return pairs


def quote_list(words: list[str], joiner: str = "and") -> str:
    q = [f'"{w}"' for w in words]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + f" {joiner} {q[-1]}"


# ------------------------------------------------------------------------------------ kwargs builders
def _pick_word(rng: random.Random, ctx: dict, pool: list[str]) -> str:
    kw = ctx.get("kw")
    if kw and kw not in ctx["taken"] and rng.random() < 0.6:
        return kw
    return rng.choice([w for w in pool if w not in ctx["taken"]])


def build_kwargs(fam: str, rng: random.Random, ctx: dict) -> tuple[dict, str, dict]:
    """(kwargs for the IFEval checker, phrasing variant, extra format values) of one family."""
    short = ctx["category"] in SHORT
    rel = rng.choice(["at least", "less than"])
    if fam in ("lower", "capital", "quotation", "two_resp", "title", "json", "no_comma", "constrained"):
        return {}, "", {}
    if fam == "capfreq":
        n = rng.choice([2, 3, 4, 5] if rel == "at least" else [3, 4, 5])
        return {"capital_frequency": n, "capital_relation": rel}, rel, {"n": n}
    if fam in ("placeholders", "highlights"):
        n = rng.choice([1, 2, 2, 3, 3, 4] if fam == "highlights" else [2, 2, 3, 3, 4])
        key = "num_placeholders" if fam == "placeholders" else "num_highlights"
        plural = {"sections": "sections", "parts": "parts", "them": "them", "phrases": "phrases"}
        if n == 1:
            plural = {"sections": "section", "parts": "part", "them": "it", "phrases": "phrase"}
        return {key: n}, "", {"n": n, **plural}
    if fam == "sections":
        n, s = rng.choice([2, 3, 3, 4]), rng.choice(["SECTION", "PART"])
        return {"section_spliter": s, "num_sections": n}, "", {"n": n, "s": s}
    if fam == "postscript":
        m = rng.choice(["P.S.", "P.P.S"])
        return {"postscript_marker": m}, "", {"m": m if m.endswith(".") else m + "."}
    if fam in ("paragraphs", "bullets"):
        n = rng.choice([2, 3, 3, 4] if fam == "paragraphs" else [2, 3, 3, 4, 5, 6])
        return {"num_paragraphs" if fam == "paragraphs" else "num_bullets": n}, "", {"n": n}
    if fam == "nth_para":
        n = rng.choice([2, 3, 3, 4])
        k, w = rng.randint(1, n), rng.choice(FIRST_WORDS)
        return ({"num_paragraphs": n, "nth_paragraph": k, "first_word": w.lower()}, "",
                {"n": n, "k": k, "w": w, "ord": ORDINALS[k]})
    if fam == "repeat":
        return {"prompt_to_repeat": ctx["request"]}, "", {}
    if fam == "letter":
        if rel == "at least":
            let, n = rng.choice(sorted(COMMON_LETTERS)), rng.choice([5, 8, 10, 15, 20, 25])
        else:
            let, n = rng.choice(RARE_LETTERS), rng.choice([2, 3, 4, 5])
        return {"letter": let, "let_frequency": n, "let_relation": rel}, rel, {"l": let, "n": n}
    if fam == "existence":
        kws = [_pick_word(rng, ctx, GENERIC_KEYWORDS)]
        if rng.random() < 0.6:
            kws.append(rng.choice([w for w in GENERIC_KEYWORDS if w not in kws and w not in ctx["taken"]]))
        ctx["taken"].update(kws)
        return {"keywords": kws}, "", {"kws": quote_list(kws)}
    if fam == "frequency":
        w = _pick_word(rng, ctx, GENERIC_KEYWORDS)
        ctx["taken"].add(w)
        n = rng.choice([2, 3, 4] if rel == "at least" else [2, 3])
        return {"keyword": w, "frequency": n, "relation": rel}, rel, {"w": w, "n": n}
    if fam == "forbidden":
        if ctx.get("kw") and ctx["kw"] not in ctx["taken"] and rng.random() < 0.5:
            ws = [ctx["kw"]]
        else:
            ws = rng.sample([w for w in CRUTCH_WORDS if w not in ctx["taken"]], rng.choice([1, 2, 2, 3]))
        ctx["taken"].update(ws)
        return ({"forbidden_words": ws}, "",
                {"ws": quote_list(ws, "or"), "words": "word" if len(ws) == 1 else "words"})
    if fam == "end":
        p = rng.choice(END_PHRASES)
        return {"end_phrase": p}, "", {"p": p}
    if fam == "words":
        if rel == "at least" and not short:
            n = rng.choice([50, 60, 80, 100, 120])
        else:
            rel, n = "less than", rng.choice([15, 20, 25, 30] if short else [30, 40, 50, 60, 80, 100, 150])
        return {"num_words": n, "relation": rel}, rel, {"n": n}
    if fam == "sentences":
        if rel == "at least" and not short:
            n = rng.choice([3, 4, 5, 6, 8])
        else:
            rel, n = "less than", rng.choice([2, 3] if short else [2, 3, 4, 5, 6])
        return {"num_sentences": n, "relation": rel}, rel, {"n": n}
    if fam == "language":
        code = rng.choice(sorted(LANGUAGES))
        return {"language": code}, "", {"L": LANGUAGES[code]}
    raise KeyError(fam)


def phrase(fam: str, variant: str, fmt: dict, kwargs: dict, rng: random.Random, split: str) -> str:
    opts = [p for p in PHRASES[(fam, variant)] if split == "heldout" or not p.startswith("H|")]
    return rng.choice(opts).removeprefix("H|").format(**{**kwargs, **fmt})


# -------------------------------------------------------------------------------------- feasibility
def _required_strings(chosen: dict[str, dict]) -> list[str]:
    """Text a compliant answer must contain verbatim (keywords, end phrase, markers, ...)."""
    req = list(chosen.get("existence", {}).get("keywords", []))
    f = chosen.get("frequency")
    if f and f["relation"] == "at least":
        req.append(f["keyword"])
    for fam, key in (("end", "end_phrase"), ("nth_para", "first_word"), ("postscript", "postscript_marker"),
                     ("sections", "section_spliter"), ("repeat", "prompt_to_repeat")):
        if fam in chosen:
            req.append(chosen[fam][key])
    return req


def _words_ok(chosen: dict[str, dict]) -> bool:
    req = _required_strings(chosen)
    low = " ".join(req).lower()
    for w in chosen.get("forbidden", {}).get("forbidden_words", []):
        if any(re.search(rf"\b{w}\b", s, flags=re.IGNORECASE) for s in req):
            return False
    f = chosen.get("frequency")
    if f and f["relation"] == "less than" and f["keyword"].lower() in low:
        return False
    let = chosen.get("letter")
    if let and let["let_relation"] == "less than" and let["letter"] in low:
        return False
    if "no_comma" in chosen and "," in low:
        return False
    cap = chosen.get("capfreq")
    if cap and cap["capital_relation"] == "less than":
        n_caps = sum(t.isupper() for s in req for t in re.findall(r"[A-Za-z]+", s))
        if n_caps > cap["capital_frequency"] - 2:
            return False
    return True


def _length_ok(chosen: dict[str, dict], category: str) -> bool:
    """Rough lower/upper bounds on words and sentences; all must fit in ~180 words."""
    lb = BASE_WORDS.get(category, 20)
    blocks = 1
    for fam in ("paragraphs", "nth_para", "sections", "bullets"):
        if fam in chosen:
            n = chosen[fam].get("num_paragraphs", chosen[fam].get("num_sections", chosen[fam].get("num_bullets")))
            blocks = max(blocks, n)
            lb = max(lb, n * (5 if fam == "bullets" else 12))
    lb += 3 * chosen.get("highlights", {}).get("num_highlights", 0)
    lb += 2 * chosen.get("placeholders", {}).get("num_placeholders", 0)
    lb += 5 * ("postscript" in chosen) + 3 * ("title" in chosen)
    lb += len(chosen.get("repeat", {}).get("prompt_to_repeat", "").split())
    f = chosen.get("frequency")
    lb += 6 * f["frequency"] if f and f["relation"] == "at least" else 0
    let = chosen.get("letter")
    if let and let["let_relation"] == "at least":
        lb = max(lb, int(let["let_frequency"] / COMMON_LETTERS[let["letter"]]))
    # punkt often splits "P.S." off as a sentence of its own
    min_sent = max(blocks, 2 if "two_resp" in chosen else 1) + 2 * ("postscript" in chosen) + ("end" in chosen)
    min_sent += "repeat" in chosen
    if "two_resp" in chosen:
        lb *= 2
    ub = 180
    w, s = chosen.get("words"), chosen.get("sentences")
    if w:
        lb, ub = (max(lb, w["num_words"]), ub) if w["relation"] == "at least" else (lb, w["num_words"] - 1)
    if s and s["relation"] == "at least":
        lb, min_sent = max(lb, 6 * s["num_sentences"]), max(min_sent, s["num_sentences"])
    if s and s["relation"] == "less than":
        ub = min(ub, 22 * (s["num_sentences"] - 1))
        if min_sent > s["num_sentences"] - 1:
            return False
    return lb <= 150 and lb * 1.25 <= ub


def feasible(chosen: dict[str, dict], category: str) -> bool:
    return _words_ok(chosen) and _length_ok(chosen, category)


# ---------------------------------------------------------------------------------------- selection
def choose(rng: random.Random, item: dict, n: int, counts: dict, caps: dict, pairs: set) -> list[tuple]:
    """Pick up to ``n`` compatible, feasible families for ``item``; returns [(fam, kwargs, variant, fmt)]."""
    cat = item["category"]
    allowed = [f for f in CATEGORY_FAMILIES[cat] if counts.get(f, 0) < caps.get(f, 10**9)]
    if "\n" in item["text"]:
        allowed = [f for f in allowed if f != "repeat"]
    forced = {"yesno": ["constrained"], "json": ["json"]}.get(cat, [])
    n = max(n, len(forced))
    for _ in range(40):
        fams = forced[:]
        while len(fams) < n:
            cands = [f for f in allowed if f not in fams and all(frozenset((f, c)) not in pairs for c in fams)]
            if not cands:
                break
            ws = [BASE_WEIGHT[f] / (1 + counts.get(f, 0)) for f in cands]
            fams.append(rng.choices(cands, weights=ws)[0])
        ctx = {"category": cat, "kw": item.get("kw"), "request": item["text"], "taken": set()}
        built = [(f, *build_kwargs(f, rng, ctx)) for f in fams]
        if feasible({f: kw for f, kw, _, _ in built}, cat):
            return built
    return choose(rng, item, n - 1, counts, caps, pairs) if n > max(1, len(forced)) else []
