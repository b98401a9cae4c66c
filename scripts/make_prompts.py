"""Generate the prompt sets shipped in ``examples/data/`` (deterministic, seeded).

    python scripts/make_prompts.py            # writes examples/data/prompts_{train,heldout}.jsonl + README.md

Prompts combine a task (explain, list, story, poem, letter, advice, compare, describe, argue, plan,
dialogue, product description, yes/no question, JSON, summary of a given passage, how-to steps,
rewrite, arithmetic) about one of several hundred topics with zero to three verifiable constraints.
Each constraint is stated in the prompt and recorded in ``meta.checks`` as
``{"type": <official IFEval instruction id>, <IFEval kwargs>}``; arithmetic prompts also carry
``meta.answer``. The held-out split uses topics, passages and task phrasings never seen in train,
and some constraint phrasings that only it uses. The code lives in ``scripts/prompts/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prompts.make import SEED, build, build_split, main, public, summary, validate  # noqa: E402

__all__ = ["SEED", "build", "build_split", "main", "public", "summary", "validate"]

if __name__ == "__main__":
    raise SystemExit(main())
