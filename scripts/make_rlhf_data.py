"""Write the RLHF example data (examples/rlhf/data/): preference pairs for the reward model and
prompts for PPO, from our own shipped instruction prompts (examples/data/prompts_*.jsonl).

    python scripts/make_rlhf_data.py        (deterministic; rewrites the four files)

Prompts with exactly one constraint from seven families whose answers can be built by a rule
(all capitals, all lowercase, no commas, wrapped in quotation marks, a given end phrase, a P.S.,
a <<title>>). For each prompt a plain answer is written from one of several templates around the
prompt's task; *chosen* is that answer transformed to satisfy the constraint, *rejected* is the plain
answer and, as a second pair, the answer transformed for another family (so "always shout" is not a
winning rule). Every pair is checked with the official IFEval checkers: chosen passes, rejected fails
(pairs that do not are dropped). PPO prompts: the same train prompts; validation: the held-out ones
(their topics and phrasings never occur in train). Records use the original's keys: reward data
``{"instruction", "chosen", "rejected"}``, PPO data ``{"prompt"}`` (+ ``id``, ``meta.checks``, so the
policy can also be scored by the checkers with ``selfalign eval``).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("change_case:english_capital", "change_case:english_lowercase", "punctuation:no_comma",
            "startend:quotation", "startend:end_checker", "detectable_content:postscript", "detectable_format:title")
TEMPLATES = (
    "You asked me to {task}. Start with the basics, and build from there. A short plan helps a lot, "
    "because small steps are easier to keep. Check your progress every week, and adjust what does not work. "
    "In the end, patience matters more than speed.",
    "Here is how I would {task}. First, think about who it is for and what they need. Second, keep the main idea "
    "simple, clear and honest. Third, add one concrete example, since examples make ideas stick. That is "
    "usually enough to get a good result.",
    "Sure, let me {task}. Most people find it easier than they expect. Pick one goal, write it down, and give it a "
    "little time each day. Ask a friend for feedback, and listen carefully. Over a month, the difference is "
    "easy to see.",
)


def task_of(prompt: str) -> str:
    first = re.split(r"(?<=[.!?])\s", prompt.strip())[0].rstrip(".!?")
    return first[0].lower() + first[1:] if first else "this"


def transform(family: str, text: str, check: dict) -> str:
    if family == "change_case:english_capital":
        return text.upper()
    if family == "change_case:english_lowercase":
        return text.lower()
    if family == "punctuation:no_comma":
        return text.replace(",", "")
    if family == "startend:quotation":
        return f'"{text}"'
    if family == "startend:end_checker":
        return f"{text} {check.get('end_phrase', '')}".strip()
    if family == "detectable_content:postscript":
        return f"{text}\n\n{check.get('postscript_marker', 'P.S.')} Thank you for reading."
    if family == "detectable_format:title":
        return f"<<A Short Guide>>\n\n{text}"
    raise ValueError(family)


def pairs_for(rec: dict, rng: random.Random) -> list[dict]:
    from selfalign.checks import run_checks

    check = rec["meta"]["checks"][0]
    family = check["type"]
    plain = rng.choice(TEMPLATES).format(task=task_of(rec["prompt"]))
    chosen = transform(family, plain, check)
    other = rng.choice([f for f in FAMILIES if f != family])
    out = []
    for rejected in (plain, transform(other, plain, {})):
        if rejected == chosen:
            continue
        if run_checks(chosen, rec["meta"]).passed_all and not run_checks(rejected, rec["meta"]).passed_all:
            out.append({"id": f"{rec['id']}-{len(out)}", "instruction": rec["prompt"], "chosen": chosen,
                        "rejected": rejected, "meta": {"family": family}})
    return out


def eligible(path: Path) -> list[dict]:
    recs = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [r for r in recs if len(r["meta"].get("checks", [])) == 1 and r["meta"]["checks"][0]["type"] in FAMILIES]


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{path.relative_to(ROOT)}: {len(rows)} records")


def main() -> None:
    rng = random.Random(0)
    out = ROOT / "examples" / "rlhf" / "data"
    for split, name in (("train", "prompts_train.jsonl"), ("heldout", "prompts_heldout.jsonl")):
        recs = eligible(ROOT / "examples" / "data" / name)
        write(out / f"rm_{split}.jsonl", [p for r in recs for p in pairs_for(r, rng)])
        write(out / f"ppo_{split}.jsonl", [{"id": r["id"], "prompt": r["prompt"], "meta": r["meta"]} for r in recs])


if __name__ == "__main__":
    main()
