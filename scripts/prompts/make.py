"""Assemble, validate, write and summarise the train / held-out prompt sets."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from .constraints import IDS, LANGUAGES, choose, conflict_pairs, phrase
from .tasks import base_items

SEED = 20240611
# share of prompts with 0 / 1 / 2 / 3 constraints
SHARES = {"train": {0: 0.10, 1: 0.405, 2: 0.36, 3: 0.135}, "heldout": {1: 0.45, 2: 0.40, 3: 0.15}}
ROOT = Path(__file__).resolve().parents[2]


def _quota(rng: random.Random, split: str, n_items: int) -> list[int]:
    shares = SHARES[split]
    counts = {k: round(v * n_items) for k, v in shares.items()}
    counts[1] += n_items - sum(counts.values())
    out = [k for k, c in sorted(counts.items()) for _ in range(c)]
    rng.shuffle(out)
    return out


def _assemble(item: dict, built: list[tuple], rng: random.Random, split: str) -> tuple[str, list[dict]]:
    """Prompt text (request, then the constraint sentences) and the checks, in the same order."""
    texts = []
    for fam, kwargs, variant, fmt in built:
        texts.append((fam, phrase(fam, variant, fmt, kwargs, rng, split)))
    rng.shuffle(texts)
    # the repeat instruction refers to "the request above": it comes right after the request
    texts.sort(key=lambda t: (t[0] != "repeat", "\n" in t[1]))
    order = [fam for fam, _ in texts]
    checks = [{"type": IDS[fam], **kw} for fam, kw, _, _ in sorted(built, key=lambda b: order.index(b[0]))]
    if not texts:
        return item["text"], checks
    sep = "\n\n" if "\n" in item["text"] else " "
    return item["text"] + sep + " ".join(t for _, t in texts), checks


def build_split(seed: int, split: str) -> list[dict]:
    """Records of one split, each with a private ``_info`` (template, topics, domain, families)."""
    rng = random.Random(f"{seed}:{split}")
    items, seen = [], set()
    for it in base_items(rng, split):
        if it["text"] not in seen:
            seen.add(it["text"])
            items.append(it)
    n_items = len(items)
    caps = {"language": max(1, int(0.007 * n_items))}
    pairs = conflict_pairs()
    counts: Counter = Counter()
    records = []
    for it, n in zip(items, _quota(rng, split, n_items)):
        built = choose(rng, it, n, counts, caps, pairs) if n else []
        counts.update(f for f, *_ in built)
        prompt, checks = _assemble(it, built, rng, split)
        meta: dict = {"category": it["category"]}
        if checks:
            meta["checks"] = checks
        if "answer" in it:
            meta["answer"] = it["answer"]
        meta["kind"] = "reasoning" if it["category"] == "math" else "general"
        info = {"template": it["template"], "topics": it["topics"], "domain": it["domain"]}
        records.append({"prompt": prompt, "meta": meta, "_info": info})
    rng.shuffle(records)
    width = 4 if split == "train" else 3
    for i, r in enumerate(records):
        r["id"] = f"{split}-{i:0{width}d}"
    return records


def public(records: list[dict]) -> list[dict]:
    return [{"id": r["id"], "prompt": r["prompt"], "meta": r["meta"]} for r in records]


def build(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """Return (train, heldout) prompt records."""
    return public(build_split(seed, "train")), public(build_split(seed, "heldout"))


def validate(records: list[dict]) -> None:
    """Every check uses an official IFEval id with exactly its kwargs, and no two checks conflict."""
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_CONFLICTS, INSTRUCTION_DICT

    for r in records:
        ids = []
        for c in r["meta"].get("checks", []):
            cls = INSTRUCTION_DICT.get(c["type"])
            if cls is None:
                raise ValueError(f"{r['id']}: unknown IFEval id {c['type']!r}")
            kwargs = {k: v for k, v in c.items() if k != "type"}
            inst = cls(c["type"])
            inst.build_description(**kwargs)
            if sorted(kwargs) != sorted(inst.get_instruction_args_keys()):
                raise ValueError(f"{r['id']}: {c['type']} kwargs {sorted(kwargs)}")
            ids.append(c["type"])
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if b in INSTRUCTION_CONFLICTS.get(a, ()) or a in INSTRUCTION_CONFLICTS.get(b, ()):
                    raise ValueError(f"{r['id']}: conflicting {a} and {b}")


def summary(train: list[dict], heldout: list[dict]) -> str:
    """Markdown tables: counts per family, per number of constraints, per category."""
    splits = {"train": train, "held-out": heldout}
    fam_counts = {s: Counter(c["type"] for r in rs for c in r["meta"].get("checks", [])) for s, rs in splits.items()}
    lines = [f"train: {len(train)} prompts, held-out: {len(heldout)} prompts", "",
             "| constraints per prompt | train | held-out |", "|---|---|---|"]
    n_counts = {s: Counter(len(r["meta"].get("checks", [])) for r in rs) for s, rs in splits.items()}
    for n in range(4):
        lines.append(f"| {n} | {n_counts['train'][n]} | {n_counts['held-out'][n]} |")
    lines += ["", "| family (IFEval id) | train | held-out |", "|---|---|---|"]
    for fid in sorted(IDS.values()):
        lines.append(f"| `{fid}` | {fam_counts['train'][fid]} | {fam_counts['held-out'][fid]} |")
    lines += ["", "| category | train | held-out |", "|---|---|---|"]
    cat_counts = {s: Counter(r["meta"]["category"] for r in rs) for s, rs in splits.items()}
    for cat in sorted(cat_counts["train"]):
        lines.append(f"| {cat} | {cat_counts['train'][cat]} | {cat_counts['held-out'][cat]} |")
    answers = {s: sum("answer" in r["meta"] for r in rs) for s, rs in splits.items()}
    lines += ["", f"with `meta.answer` (math): train {answers['train']}, held-out {answers['held-out']}"]
    return "\n".join(lines)


README_HEAD = """# Shipped prompt sets

`prompts_train.jsonl` and `prompts_heldout.jsonl` are written by `python scripts/make_prompts.py`
(deterministic, seeded; code in `scripts/prompts/`). Each record is
`{{"id", "prompt", "meta": {{"category", "kind", "checks"?, "answer"?}}}}`; a check is
`{{"type": <IFEval instruction id>, <kwargs with IFEval's names>}}`, checked by the official IFEval
code (package `if-verifiable`). Math prompts carry `meta.answer` (checked by `selfalign.checks`).

* Topics: {n_topics_train} train topics and {n_topics_held} held-out topics over {n_domains} domains,
  plus passages to summarise, how-to activities, sentences to rewrite and arithmetic.
* Held-out tests transfer: its topics, passages, activities and sentences never occur in train, and
  its task phrasings (sentence templates) are disjoint from train's. It covers the same constraint
  families in similar proportions, and about a third of its constraint sentences use phrasings that
  appear only in held-out. Every held-out prompt has at least one check; about 10% of train prompts
  have none.
* Conflicting instructions (IFEval's `INSTRUCTION_CONFLICTS`, plus a few pairs that are only
  satisfiable by tricks) are never combined, and every combination fits in about 180 words.
* Languages for `language:response_language` (rare): {languages}.

## Summary

"""


def write(out: Path, train: list[dict], heldout: list[dict]) -> str:
    from .topics import TOPICS

    out.mkdir(parents=True, exist_ok=True)
    for name, recs in (("prompts_train.jsonl", train), ("prompts_heldout.jsonl", heldout)):
        tmp = out / f".{name}.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
        tmp.replace(out / name)
    text = summary(train, heldout)
    head = README_HEAD.format(n_topics_train=len(TOPICS["train"]), n_topics_held=len(TOPICS["heldout"]),
                              n_domains=len({d for d, _, _ in TOPICS["train"]}),
                              languages=", ".join(sorted(LANGUAGES.values())))
    (out / "README.md").write_text(head + text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write examples/data/prompts_{train,heldout}.jsonl.")
    ap.add_argument("--out", default=str(ROOT / "examples" / "data"))
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    train, heldout = build(args.seed)
    validate(train + heldout)
    print(write(Path(args.out), train, heldout))
    return 0
