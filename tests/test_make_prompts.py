"""The prompt generator (scripts/make_prompts.py): shipped files, IFEval check specs, split transfer,
and a synthetic compliant answer for every generated prompt that passes the official IFEval checker."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"
pytest.importorskip("if_verifiable")


def _load():
    spec = importlib.util.spec_from_file_location("make_prompts", ROOT / "scripts" / "make_prompts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import prompts.constraints as constraints  # on sys.path once make_prompts is loaded
    import prompts.tasks as tasks
    import prompts.topics as topics

    return mod, constraints, tasks, topics


MOD, CONS, TASKS, TOPICS = _load()


@pytest.fixture(scope="module")
def splits():
    return {s: MOD.build_split(MOD.SEED, s) for s in ("train", "heldout")}


def _read(name):
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------------- files and specs
def test_deterministic_and_matches_shipped_files(splits):
    train, held = MOD.build()
    assert (train, held) == MOD.build()
    assert train == MOD.public(splits["train"]) and held == MOD.public(splits["heldout"])
    assert train == _read("prompts_train.jsonl") and held == _read("prompts_heldout.jsonl")
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    assert MOD.summary(train, held) in readme


def test_sizes_ids_and_record_format(splits):
    train, held = splits["train"], splits["heldout"]
    assert len(train) >= 1200 and len(held) >= 240
    recs = train + held
    assert len({r["id"] for r in recs}) == len(recs)
    assert len({r["prompt"] for r in recs}) == len(recs)
    for r in recs:
        meta = r["meta"]
        assert r["prompt"].strip() and meta["category"] and meta["kind"] in ("general", "reasoning")
        assert (meta["kind"] == "reasoning") == (meta["category"] == "math") == ("answer" in meta)
        if "answer" in meta:
            assert isinstance(meta["answer"], int)
    assert all(r["meta"].get("checks") for r in held)
    n_train = Counter(len(r["meta"].get("checks", [])) for r in train)
    n_held = Counter(len(r["meta"].get("checks", [])) for r in held)
    assert 0.07 <= n_train[0] / len(train) <= 0.13
    for counts, total in ((n_held, len(held)), (n_train, len(train) - n_train[0])):
        for n, share in ((1, 0.45), (2, 0.40), (3, 0.15)):
            assert abs(counts[n] / total - share) < 0.06, (n, counts)


def test_every_check_is_a_valid_ifeval_spec(splits):
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_CONFLICTS, INSTRUCTION_DICT

    for r in splits["train"] + splits["heldout"]:
        ids = [c["type"] for c in r["meta"].get("checks", [])]
        assert len(set(ids)) == len(ids)
        for c in r["meta"].get("checks", []):
            assert c["type"] in INSTRUCTION_DICT, c
            kwargs = {k: v for k, v in c.items() if k != "type"}
            inst = INSTRUCTION_DICT[c["type"]](c["type"])
            assert sorted(kwargs) == sorted(inst.get_instruction_args_keys()), (r["id"], c)
            inst.build_description(**kwargs)
            assert inst.get_instruction_args() in (None, {}) or all(
                v is not None for v in inst.get_instruction_args().values())
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                assert b not in INSTRUCTION_CONFLICTS.get(a, ()) and a not in INSTRUCTION_CONFLICTS.get(b, ())
    MOD.validate(MOD.public(splits["train"] + splits["heldout"]))


def test_limits_fit_a_short_answer(splits):
    for r in splits["train"] + splits["heldout"]:
        for c in r["meta"].get("checks", []):
            t = c["type"]
            if t.endswith("number_words") and c["relation"] == "at least":
                assert c["num_words"] <= 120
            if t.endswith("number_sentences") and c["relation"] == "at least":
                assert c["num_sentences"] <= 8
            assert c.get("num_paragraphs", 0) <= 4 and c.get("num_bullets", 0) <= 6
            assert c.get("num_sections", 0) <= 4 and c.get("num_highlights", 0) <= 4
            assert c.get("num_placeholders", 0) <= 4


def test_all_families_in_both_splits_in_similar_proportions(splits):
    wanted = set(CONS.IDS.values())
    shares = {}
    for s, recs in splits.items():
        counts = Counter(c["type"] for r in recs for c in r["meta"].get("checks", []))
        assert set(counts) == wanted, wanted - set(counts)
        total = sum(counts.values())
        shares[s] = {k: v / total for k, v in counts.items()}
        assert counts["language:response_language"] <= 0.01 * len(recs)
        assert {c["postscript_marker"] for r in recs for c in r["meta"].get("checks", [])
                if "postscript_marker" in c} == {"P.S.", "P.P.S"}
        assert {c["section_spliter"] for r in recs for c in r["meta"].get("checks", [])
                if "section_spliter" in c} == {"SECTION", "PART"}
    for k in wanted:
        assert abs(shares["train"][k] - shares["heldout"][k]) < 0.03, k


# ----------------------------------------------------------------------------------- the prompt text
def test_prompt_states_the_checked_values(splits):
    for r in splits["train"] + splits["heldout"]:
        p = r["prompt"]
        for c in r["meta"].get("checks", []):
            for k, v in c.items():
                if k in ("type", "language", "prompt_to_repeat"):
                    continue
                if k.endswith("relation"):
                    alts = (["at least", "or more", "no fewer than"] if v == "at least"
                            else ["fewer than", "under", "below", "shorter than"])
                    assert any(a in p for a in alts), (p, c)
                elif k == "nth_paragraph":
                    assert f"Paragraph {v} " in p or CONS.ORDINALS[v] in p, (p, c)
                else:
                    for x in v if isinstance(v, list) else [v]:
                        assert str(x).lower() in p.lower(), (p, c)
            if c["type"] == "combination:repeat_prompt":
                assert p.startswith(c["prompt_to_repeat"] + " ") and "\n" not in c["prompt_to_repeat"]
            if c["type"] == "detectable_format:title":
                assert "double angula" in p or "double angle" in p


def test_heldout_topics_and_task_phrasings_never_occur_in_train(splits):
    train_text = "\n".join(r["prompt"] for r in splits["train"]).lower()
    held_text = "\n".join(r["prompt"] for r in splits["heldout"]).lower()
    held_topics = {t for r in splits["heldout"] for t in r["_info"]["topics"]}
    train_topics = {t for r in splits["train"] for t in r["_info"]["topics"]}
    assert len(train_topics) >= 300 and len(held_topics) >= 100 and not held_topics & train_topics
    for t in held_topics:
        assert not re.search(rf"\b{re.escape(t.lower())}\b", train_text), t
    for t in train_topics:
        assert not re.search(rf"\b{re.escape(t.lower())}\b", held_text), t
    requests = {sp: [r["prompt"] for r in recs] for sp, recs in splits.items()}
    tables = {cat: by_split for cat, by_split in TASKS.TEMPLATES.items()}
    tables["math"] = {sp: [t for t, _ in TASKS.MATH[sp]] for sp in ("train", "heldout")}
    for cat, by_split in tables.items():
        for sp, other in (("train", "heldout"), ("heldout", "train")):
            for tmpl in by_split[sp]:
                rx = re.compile(".+?".join(re.escape(x) for x in re.split(r"\{\w+\}", tmpl)), re.DOTALL)
                assert any(rx.match(p) for p in requests[sp]), (cat, tmpl)
                assert not any(rx.match(p) for p in requests[other]), (cat, tmpl)


def test_heldout_only_constraint_phrasings(splits):
    train_text = "\n".join(r["prompt"] for r in splits["train"])
    held_text = "\n".join(r["prompt"] for r in splits["heldout"])
    n_held_only = 0
    for opts in CONS.PHRASES.values():
        assert 2 <= len(opts) <= 4
        for o in opts:
            frag = max(re.split(r"\{\w+\}", o.removeprefix("H|")), key=len).strip()
            if o.startswith("H|"):
                assert frag not in train_text, frag
                n_held_only += frag in held_text
    assert n_held_only >= 15


# ------------------------------------------------------------------------ compliance (official checker)
FILLER = [
    "Birds sing in the morning.", "The river runs past the old mill.", "Small steps lead to steady progress.",
    "A warm meal can lift the mood.", "Friends often share their stories.", "The garden grows slowly in spring.",
    "Clear notes help us remember details.", "People learn best when they feel safe.",
    "The path bends around the hill.", "Kind words cost nothing.", "The sun sets behind the tall trees.",
    "Children laugh at the silly clown.", "Fresh bread smells wonderful.", "The old map shows a hidden road.",
    "Careful planning saves time later.", "The cat sleeps on the windowsill.", "Rain taps softly on the roof.",
    "Teachers guide students with patience.", "Music fills the empty hall.", "The boat drifts along the coast.",
    "Honest answers build trust.", "A short walk clears the mind.", "The library opens at nine.",
    "Students write notes in class.", "The train arrives on time.", "Bright colors catch the eye.",
    "Tired hikers rest by the stream.", "The baker opens the shop early.", "Stars shine over the sea.",
    "The team celebrates after the match.",
]
CAPS = ["WOW", "NOW", "BIG", "TOP", "YES", "HEY"]
CANNED = {
    "fr": ["Le soleil brille sur la ville.", "Les enfants jouent dans le parc.", "Nous aimons lire le soir.",
           "La rivière coule sous le pont.", "Le marché ouvre tôt le matin.", "Les oiseaux chantent au printemps."],
    "es": ["El sol brilla sobre la ciudad.", "Los niños juegan en el parque.", "Nos gusta leer por la noche.",
           "El río pasa bajo el puente.", "El mercado abre temprano por la mañana.", "Los pájaros cantan en primavera."],
    "de": ["Die Sonne scheint über der Stadt.", "Die Kinder spielen im Park.", "Wir lesen gern am Abend.",
           "Der Fluss fließt unter der Brücke.", "Der Markt öffnet früh am Morgen.", "Die Vögel singen im Frühling."],
    "it": ["Il sole splende sulla città.", "I bambini giocano nel parco.", "Ci piace leggere la sera.",
           "Il fiume scorre sotto il ponte.", "Il mercato apre presto la mattina.", "Gli uccelli cantano in primavera."],
}


def _pool(ch: dict) -> list[str]:
    if "language" in ch:
        return CANNED[ch["language"]["language"]]
    bad = ch.get("forbidden", {}).get("forbidden_words", [])
    let = ch.get("letter")
    rare = let["letter"] if let and let["let_relation"] == "less than" else None
    freq = ch.get("frequency")
    avoid = freq["keyword"].lower() if freq and freq["relation"] == "less than" else None
    return [s for s in FILLER if not any(re.search(rf"\b{w}\b", s, re.I) for w in bad)
            and not (rare and rare in s.lower()) and not (avoid and avoid in s.lower())]


def _blocks(ch: dict, pool: list[str], extra: int, shift: int) -> list[list[str]]:
    n = 1
    for fam, key in (("paragraphs", "num_paragraphs"), ("nth_para", "num_paragraphs"),
                     ("sections", "num_sections"), ("bullets", "num_bullets")):
        n = ch[fam][key] if fam in ch else n
    it = (pool[(i + shift) % len(pool)] for i in range(10**6))
    blocks = [[next(it)] for _ in range(n)]
    merge = ch.get("sentences", {}).get("relation") == "less than"  # grow sentences, not their number

    def add(block: list[str], sentence: str) -> None:
        if merge:
            block[-1] = block[-1][:-1] + " and " + sentence[0].lower() + sentence[1:]
        else:
            block.append(sentence)

    if "existence" in ch:
        add(blocks[0], "Think of " + " and ".join(ch["existence"]["keywords"]) + ".")
    f = ch.get("frequency")
    if f and f["relation"] == "at least":
        add(blocks[0], "We see " + " and ".join([f["keyword"]] * f["frequency"]) + ".")
    if "placeholders" in ch:
        names = ["name", "place", "date", "time"][: ch["placeholders"]["num_placeholders"]]
        add(blocks[0], "Write to " + " and ".join(f"[{x}]" for x in names) + ".")
    if "highlights" in ch:
        add(blocks[-1], "Note " + " and ".join(["*this part*"] * ch["highlights"]["num_highlights"]) + ".")
    c = ch.get("capfreq")
    if c and c["capital_relation"] == "at least":
        add(blocks[0], "We say " + " ".join(CAPS[: c["capital_frequency"]]) + ".")
    for i in range(extra):
        add(blocks[i % n], next(it))
    if "nth_para" in ch:
        k, w = ch["nth_para"]["nth_paragraph"], ch["nth_para"]["first_word"]
        blocks[k - 1][0] = w.capitalize() + " " + blocks[k - 1][0][0].lower() + blocks[k - 1][0][1:]
    return blocks


def _body(ch: dict, pool: list[str], extra: int, shift: int) -> str:
    blocks = [" ".join(b) for b in _blocks(ch, pool, extra, shift)]
    if "bullets" in ch and "sections" in ch:
        n_s, s = ch["sections"]["num_sections"], ch["sections"]["section_spliter"]
        parts = ["\n".join("* " + b for b in blocks[i::n_s]) or pool[i % len(pool)] for i in range(n_s)]
        text = "\n\n".join(f"{s} {i + 1}\n{b}" for i, b in enumerate(parts))
    elif "bullets" in ch:
        text = "\n".join("* " + b for b in blocks)
        if "quotation" in ch:  # the opening quote would hide the first bullet marker
            text = pool[-1] + "\n" + text
    elif "sections" in ch:
        s = ch["sections"]["section_spliter"]
        text = "\n\n".join(f"{s} {i + 1}\n{b}" for i, b in enumerate(blocks))
    elif "paragraphs" in ch:
        text = "\n***\n".join(blocks)
    else:
        text = "\n\n".join(blocks)
    if "title" in ch:
        text = "<<A Short Title>>\n" + text
    if "postscript" in ch:
        text += f"\n\n{ch['postscript']['postscript_marker']} {pool[(shift + 7) % len(pool)]}"
    return text


def compose(rec: dict, extra: int) -> str:
    """A response built to satisfy every check of ``rec`` (with ``extra`` padding sentences)."""
    ch = {CONS.FAMILY_OF[c["type"]]: c for c in rec["meta"].get("checks", [])}
    if "constrained" in ch:
        return "My answer is yes."
    if "json" in ch:
        return json.dumps({"note": "a reply", **{k: "yes" for k in ch.get("existence", {}).get("keywords", [])}})
    pool = _pool(ch)
    text = _body(ch, pool, extra, 0)
    if "two_resp" in ch:
        text += "\n******\n" + _body(ch, pool, extra, 3)
    if "end" in ch:
        text += " " + ch["end"]["end_phrase"]
    if "repeat" in ch:
        text = ch["repeat"]["prompt_to_repeat"] + "\n" + text
    if "quotation" in ch:
        text = f'"{text}"'
    if "lower" in ch:
        text = text.lower()
    if "capital" in ch:
        text = text.upper()
    return text


@pytest.fixture
def offline_ifeval(monkeypatch):
    """IFEval's sentence / word tokenizers need NLTK punkt data: use the bundled punkt model."""
    punkt = pytest.importorskip("punkt")
    import langdetect
    from if_verifiable.ifeval import instructions_util
    from nltk.tokenize import TreebankWordTokenizer

    sent = punkt.PunktSentenceTokenizer(punkt.load_model("english"))
    words = TreebankWordTokenizer()
    monkeypatch.setattr(instructions_util, "_get_sentence_tokenizer", lambda: sent)
    monkeypatch.setattr(instructions_util.nltk, "word_tokenize",
                        lambda text, *a, **k: [w for s in sent.tokenize(text) for w in words.tokenize(s)])
    monkeypatch.setattr(langdetect.DetectorFactory, "seed", 0)


def _passes(rec: dict, response: str) -> bool:
    from if_verifiable.common import evaluate_instructions
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT

    checks = rec["meta"]["checks"]
    ids = [c["type"] for c in checks]
    kwargs = [{k: v for k, v in c.items() if k != "type"} for c in checks]
    results, scores = evaluate_instructions(response, ids, kwargs, rec["prompt"], INSTRUCTION_DICT)
    return len(results) == len(ids) and scores.binary_strict == 1.0


def test_every_prompt_has_a_compliant_answer(splits, offline_ifeval):
    """Wording and checks agree, and every combination is satisfiable: a synthetic answer passes."""
    failed, per_family = [], Counter()
    for r in splits["train"] + splits["heldout"]:
        if not r["meta"].get("checks"):
            continue
        ok = any(_passes(r, compose(r, extra)) for extra in (0, 1, 2, 3, 5, 8, 12, 16, 20, 25, 30))
        if ok:
            per_family.update(c["type"] for c in r["meta"]["checks"])
        else:
            failed.append((r["id"], r["meta"]["checks"], compose(r, 0)))
    assert not failed, failed[:3]
    assert set(per_family) == set(CONS.IDS.values())


def test_composer_is_not_trivially_passing(offline_ifeval):
    rec = {"prompt": "x", "meta": {"checks": [{"type": "length_constraints:number_words", "num_words": 50,
                                               "relation": "at least"}, {"type": "punctuation:no_comma"}]}}
    assert not _passes(rec, "Too short, with a comma.")
    assert _passes(rec, compose(rec, 12))
