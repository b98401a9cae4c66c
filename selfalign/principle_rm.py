"""The principle-following reward model's inputs and checks (SALMON stages 2–3, arXiv 2310.05910).

The reward model reads one text per response: the reviewer prompt (``resources/templates/reviewer.txt``:
the instruction, the principle definitions as bullets without names, the response) rendered with the
chat template, with the assistant turn opened on ``"The quality of the output is"``; the reward is the
scalar head on the last token. That text is split at the response into ``(prefix, response + suffix)``
— the prefix is shared by the two responses of a pair — and trained / scored as plain text
(``chat_template: false``), so ``train rm`` and the PPO reward source encode it identically:

* :func:`rm_pair_records` — aggregated SALMON examples (:mod:`selfalign.principle_labels`) → preference
  records for ``selfalign train rm`` (``prompt`` = prefix, ``chosen``/``rejected`` = response + suffix);
* :class:`RLReviewer` — at RL time, the intervention principles then ``k`` principles sampled ∝ weight
  per prompt (seeded by ``(seed, prompt id)``), as :class:`~selfalign.train.config.ReviewerConfig` says;
* :func:`rm_checks` — held-out accuracy on the aggregated labels, and the principle-following property
  measured: how often the RM's preference between two responses flips when the deciding principle is
  replaced by its negation (a model that reads the principles flips; one that ignores them never does).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from selfalign.data.chat import render_continuation
from selfalign.principle_labels import instruction_of
from selfalign.principles import (
    Principle,
    load_principles,
    principle_text,
    prompt_kind,
    render_reviewer_messages,
    rl_reviewer_definitions,
)

_SENTINEL = "\u2063RESPONSE\u2063"  # invisible separator: never in a model's answer


def reviewer_parts(tokenizer: Any, instruction: str, response: str, definitions: Sequence[str],
                   template: str = "reviewer") -> tuple[str, str]:
    """``(prefix, response + suffix)`` of the rendered reviewer text (see the module docstring)."""
    msgs = render_reviewer_messages(instruction, _SENTINEL, list(definitions), template=template)
    text = render_continuation(tokenizer, msgs)
    if text.count(_SENTINEL) != 1:
        raise ValueError(f"reviewer template {template!r} must contain {{response}} exactly once")
    prefix, suffix = text.split(_SENTINEL)
    return prefix, response + suffix


def example_definitions(example: dict, by_name: dict[str, Principle]) -> list[str]:
    """The definitions of an aggregated example's sampled principles (negative ones when negated)."""
    return [principle_text(by_name[p["name"]], p["negated"]) for p in example["principles"]]


def rm_pair_records(examples: Sequence[dict], principles: Sequence[Principle], tokenizer: Any,
                    template: str = "reviewer") -> list[dict]:
    """Preference records for ``train rm`` (``chat_template: false``) from aggregated examples."""
    by_name = {p.name: p for p in principles}
    out = []
    for ex in examples:
        defs = example_definitions(ex, by_name)
        prefix, a = reviewer_parts(tokenizer, ex["instruction"], ex["response_a"], defs, template)
        _, b = reviewer_parts(tokenizer, ex["instruction"], ex["response_b"], defs, template)
        chosen, rejected = (a, b) if ex["preferred"] == "a" else (b, a)
        out.append({"id": ex["id"], "prompt": prefix, "chosen": chosen, "rejected": rejected,
                    "meta": {"source_id": ex["source_id"], "label_source": ex["label_source"],
                             "label_principle": ex.get("label_principle"),
                             "principles": ex["principles"]}})
    return out


class RLReviewer:
    """Reviewer texts at RL time: intervention principles, then ``num_sampled`` drawn per prompt."""

    def __init__(self, cfg: Any, tokenizer: Any):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.rl = load_principles(cfg.principles)
        self.intervention = load_principles(cfg.intervention) if cfg.intervention else []

    def definitions(self, record: dict) -> list[str]:
        """Definitions for one prompt record, drawn from ``random.Random(f"{seed}:{id}")``."""
        rng = random.Random(f"{self.cfg.seed}:{record.get('id')}")
        kind = prompt_kind(record.get("meta"), self.cfg.kind_key)
        return rl_reviewer_definitions(self.intervention, self.rl, rng, k=self.cfg.num_sampled, kind=kind,
                                       reasoning_boost=self.cfg.reasoning_boost)

    def items(self, records: Sequence[dict], texts: Sequence[str]) -> list[tuple[str, str]]:
        """``(prefix, response + suffix)`` per response, for ``RewardModel.score(chat_template=False)``."""
        return [reviewer_parts(self.tokenizer, instruction_of(r), t, self.definitions(r),
                               self.cfg.template) for r, t in zip(records, texts, strict=True)]


def rm_checks(rm: Any, examples: Sequence[dict], principles: Sequence[Principle], template: str = "reviewer",
              batch_size: int = 8, max_length: int | None = None) -> dict[str, float | int]:
    """Held-out checks of a principle-following RM on aggregated examples.

    * ``rm_heldout_acc`` = mean over examples of 1[r(preferred) > r(other)] under the example's own
      sampled principles (the aggregated label it was trained to predict);
    * ``rm_negation_flip_rate`` — over examples decided by a principle P: with P alone as the only
      bullet, d = r(a) − r(b); with P's negative definition alone, d'; the rate of sign(d) ≠ sign(d').
      ``rm_negation_follow_rate``: the share where the preference under P in the form the example was
      labelled with (negated or not) agrees with P's verdict (the label before label noise) *and* flips
      under the other form (the property the RM is trained for). Only examples decided by a principle
      (not by a rule) that has a negative definition take part.
    """
    by_name = {p.name: p for p in principles}
    tok = rm.tokenizer
    items: list[tuple[str, str]] = []
    for ex in examples:
        defs = example_definitions(ex, by_name)
        items += [reviewer_parts(tok, ex["instruction"], ex[f"response_{s}"], defs, template) for s in "ab"]
    decided = [ex for ex in examples if ex.get("label_source") == "principle"
               and ex.get("label_principle") in by_name and by_name[ex["label_principle"]].negative_definition]
    for ex in decided:
        p = by_name[ex["label_principle"]]
        for negated in (False, True):
            d = [principle_text(p, negated)]
            items += [reviewer_parts(tok, ex["instruction"], ex[f"response_{s}"], d, template) for s in "ab"]
    r = rm.score(items, batch_size=batch_size, max_length=max_length, chat_template=False)
    n = len(examples)
    correct = sum((r[2 * i] > r[2 * i + 1]) == (ex["preferred"] == "a") for i, ex in enumerate(examples))
    # the principle's own verdict is the label before label noise flipped it
    said_a = {id(ex): (ex["preferred"] == "a") != bool(ex.get("noise_flipped")) for ex in decided}
    flips = follows = 0
    base = 2 * n
    for k, ex in enumerate(decided):
        pa, pb, na, nb = r[base + 4 * k: base + 4 * k + 4]
        flipped = (pa > pb) != (na > nb)
        flips += flipped
        as_labelled = next(q["negated"] for q in ex["principles"] if q["name"] == ex["label_principle"])
        follows += flipped and (((na > nb) if as_labelled else (pa > pb)) == said_a[id(ex)])
    m = len(decided)
    return {"rm_heldout_examples": n, "rm_heldout_acc": correct / n if n else float("nan"),
            "rm_negation_examples": m, "rm_negation_flip_rate": flips / m if m else float("nan"),
            "rm_negation_follow_rate": follows / m if m else float("nan")}
