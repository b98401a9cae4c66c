"""Task phrasings (sentence templates) and the base items (request + provenance) built from them.

Each task type has train templates and held-out templates; the two lists share no sentence, so the
held-out split tests transfer to unseen task phrasings as well as unseen topics.
"""

from __future__ import annotations

import random

from .topics import HOWTOS, PASSAGES, REWRITE_SENTENCES, TOPICS

# {t} = topic phrase; compare uses {a} and {b}
TEMPLATES: dict[str, dict[str, list[str]]] = {
    "explain": {
        "train": ["Explain {t} to a ten-year-old.", "Give a short, clear explanation of {t}.",
                  "What is the most important thing to understand about {t}?",
                  "Explain {t} as if you were chatting with a curious neighbour."],
        "heldout": ["Help me finally make sense of {t}.", "Teach me the basics of {t} in plain language."],
    },
    "list": {
        "train": ["List some interesting facts about {t}.", "Give me a few practical tips related to {t}.",
                  "Name several common misconceptions about {t}."],
        "heldout": ["Jot down the key points a newcomer should know about {t}.",
                    "What are a handful of surprising things about {t}?"],
    },
    "story": {
        "train": ["Write a very short story in which {t} plays an important role.",
                  "Tell a short tale about a character who becomes fascinated by {t}.",
                  "Write a bedtime story that involves {t}."],
        "heldout": ["Invent a brief adventure for two children that centres on {t}."],
    },
    "poem": {
        "train": ["Write a short poem about {t}.", "Compose a few lines of verse inspired by {t}.",
                  "Write a playful rhyming poem about {t}."],
        "heldout": ["Craft a gentle, reflective poem whose subject is {t}."],
    },
    "letter": {
        "train": ["Write a short email to a friend telling them what you recently learned about {t}.",
                  "Write a letter to your local newspaper about {t}.",
                  "Write a note to a colleague suggesting a lunchtime talk on {t}."],
        "heldout": ["Draft a message to your cousin encouraging them to look into {t}."],
    },
    "advice": {
        "train": ["What advice would you give to someone who is new to {t}?",
                  "My friend wants to get into {t}. What should they keep in mind?",
                  "Give some practical advice about {t}."],
        "heldout": ["Suppose a teenager asks you how to get started with {t}. What would you tell them?"],
    },
    "compare": {
        "train": ["Compare {a} and {b}.", "What do {a} and {b} have in common, and how do they differ?",
                  "Explain the main differences between {a} and {b}."],
        "heldout": ["Set {a} side by side with {b} and point out what stands out."],
    },
    "describe": {
        "train": ["Describe {t} to someone who has never heard of it.", "Paint a vivid picture of {t} in words.",
                  "Describe what makes {t} interesting."],
        "heldout": ["Give a portrait of {t} for a visitor from another century."],
    },
    "argue": {
        "train": ["Argue that every school should teach students about {t}.",
                  "Make the case for why people should pay more attention to {t}.",
                  "Write a short opinion piece about {t}."],
        "heldout": ["Convince a skeptical reader that {t} matters more than they think."],
    },
    "plan": {
        "train": ["Plan a one-week project for a small group to learn about {t}.",
                  "Draft a simple plan for a weekend workshop on {t}.",
                  "Outline a lesson plan on {t} for a class of twelve-year-olds."],
        "heldout": ["Sketch a month-long self-study schedule for someone curious about {t}."],
    },
    "dialogue": {
        "train": ["Write a short dialogue between two friends discussing {t}.",
                  "Write a conversation between a grandparent and a grandchild about {t}."],
        "heldout": ["Script a brief exchange between a radio host and a caller who has a question about {t}."],
    },
    "product": {
        "train": ["Write a product description for a board game about {t}.",
                  "Write a short advertisement for a beginner's book on {t}.",
                  "Write the description of an app that helps people learn about {t}."],
        "heldout": ["Write the back-cover blurb for a documentary film about {t}."],
    },
    "yesno": {
        "train": ["Is {t} worth learning about as a hobby?",
                  "Would a ten-year-old enjoy a school trip focused on {t}?",
                  "Is {t} something most adults understand well?"],
        "heldout": ["Could {t} make a good theme for a family quiz night?"],
    },
    "json": {
        "train": ['Describe {t} as a JSON object with the keys "name", "summary" and "fun_fact".',
                  'Create a JSON object about {t} with the keys "topic", "key_points" and "difficulty".'],
        "heldout": ['Give a JSON record for {t} that has the fields "title", "why_it_matters" and '
                    '"related_words".'],
    },
    "summarise": {
        "train": ["Summarize the following text.\n\n{p}", "Give a short summary of this passage:\n\n{p}",
                  "What is the main point of this text?\n\n{p}"],
        "heldout": ["Read the passage below and tell me what it is about in your own words.\n\n{p}",
                    "Condense this paragraph for a busy reader:\n\n{p}"],
    },
    "howto": {
        "train": ["Explain step by step how to {h}.", "Write recipe-style steps for how to {h}.",
                  "Write simple instructions for how to {h}."],
        "heldout": ["Walk a complete beginner through how to {h}."],
    },
    "rewrite": {
        "train": ["Rewrite this sentence to sound more polite: '{s}'", "Rewrite this sentence in simpler words: '{s}'",
                  "Make this sentence more formal: '{s}'", "Rewrite this sentence in the past tense: '{s}'"],
        "heldout": ["Rephrase the following so it sounds cheerful and warm: '{s}'",
                    "Turn this line into something a sports commentator might say: '{s}'"],
    },
}

# task types applied to topics, with their share of the topic deck
TOPIC_TASKS = {"explain": 3, "list": 3, "story": 2, "poem": 2, "letter": 2, "advice": 3, "compare": 2,
               "describe": 2, "argue": 2, "plan": 2, "dialogue": 2, "product": 2, "yesno": 1, "json": 1}
# task types that read oddly with some domains ("advice about black holes")
SKIP_DOMAINS = {"advice": {"science", "history", "nature"}}

# ------------------------------------------------------------------------------------------- math
NAMES = ["Sara", "Tom", "Aisha", "Ken", "Lena", "Omar", "Mia", "Raj", "Zoe", "Ivan", "Nora", "Leo"]
OBJECTS = ["apples", "marbles", "stamps", "shells", "cards", "stickers"]
# (template, answer from the numbers); a, b in 2..40, c = a + b + 10, p = a * b, d in 2..9
MATH = {
    "train": [
        ("What is {a} + {b}?", lambda v: v["a"] + v["b"]),
        ("What is {a} times {b}?", lambda v: v["a"] * v["b"]),
        ("What is {c} minus {b}?", lambda v: v["c"] - v["b"]),
        ("What is {p} divided by {b}?", lambda v: v["a"]),
        ("{name} has {a} {obj} and gets {b} more. How many {obj} does {name} have now?",
         lambda v: v["a"] + v["b"]),
        ("A pencil costs {b} dollars. How much do {a} pencils cost, in dollars?", lambda v: v["a"] * v["b"]),
        ("{name} reads {b} pages every day for {d} days. How many pages is that in total?",
         lambda v: v["b"] * v["d"]),
        ("There are {p} cookies shared equally among {b} children. How many cookies does each child get?",
         lambda v: v["a"]),
        ("A rectangle is {a} cm long and {b} cm wide. What is its area in square centimeters?",
         lambda v: v["a"] * v["b"]),
        ("{name} had {c} {obj} and gave away {b}. How many {obj} are left?", lambda v: v["c"] - v["b"]),
        ("A bus has {c} passengers. At the next stop {b} get off and {d} get on. How many passengers are on "
         "the bus now?", lambda v: v["c"] - v["b"] + v["d"]),
        ("What is {pc}% of {base}?", lambda v: v["pc"] * v["base"] // 100),
    ],
    "heldout": [
        ("Add {a} and {b}. What do you get?", lambda v: v["a"] + v["b"]),
        ("If a box holds {b} {obj} and you fill {a} boxes, how many {obj} do you have?",
         lambda v: v["a"] * v["b"]),
        ("A baker made {p} rolls and packed them in bags of {b}. How many bags did the baker fill?",
         lambda v: v["a"]),
        ("{name} saved {a} dollars in March and {b} dollars in April. How many dollars did {name} save over "
         "the two months?", lambda v: v["a"] + v["b"]),
        ("Subtract {b} from {c}. What is the result?", lambda v: v["c"] - v["b"]),
        ("A garden has {a} rows with {d} plants in each row. How many plants are there altogether?",
         lambda v: v["a"] * v["d"]),
    ],
}


def _item(category: str, split: str, tid: int, text: str, **kw) -> dict:
    return {"category": category, "text": text, "template": f"{category}:{split}:{tid}", **kw}


def topic_items(rng: random.Random, split: str) -> list[dict]:
    """Topic-based requests: each topic gets 3-4 (train) or 2 (held-out) different task types."""
    topics = TOPICS[split]
    deck_base = [t for t, w in sorted(TOPIC_TASKS.items()) for _ in range(w)]
    deck: list[str] = []
    items = []
    by_domain: dict[str, list[tuple[str, str]]] = {}
    for dom, phrase, kw in topics:
        by_domain.setdefault(dom, []).append((phrase, kw))
    for i, (dom, phrase, kw) in enumerate(topics):
        k = (3 + i % 2) if split == "train" else 2
        chosen: list[str] = []
        while len(chosen) < k:
            usable = [j for j, t in enumerate(deck) if t not in chosen and dom not in SKIP_DOMAINS.get(t, ())]
            if not usable:
                fresh = deck_base[:]
                rng.shuffle(fresh)
                deck = fresh + deck
                continue
            chosen.append(deck.pop(usable[-1]))
        for task in chosen:
            tid = rng.randrange(len(TEMPLATES[task][split]))
            tmpl = TEMPLATES[task][split][tid]
            extra = {}
            if task == "compare":
                others = [p for p in by_domain[dom] if p[0] != phrase]
                other = rng.choice(others)
                text = tmpl.format(a=phrase, b=other[0])
                extra["topics"] = [phrase, other[0]]
            else:
                text = tmpl.format(t=phrase)
                extra["topics"] = [phrase]
            items.append(_item(task, split, tid, text, kw=kw, domain=dom, **extra))
    return items


def table_items(rng: random.Random, split: str) -> list[dict]:
    """Summaries of passages, how-to steps and rewrites: 2 (train) or 1-2 (held-out) phrasings each."""
    items = []
    tables = (("summarise", PASSAGES[split], "p"), ("howto", HOWTOS[split], "h"),
              ("rewrite", [(s, None) for s in REWRITE_SENTENCES[split]], "s"))
    for task, rows, field in tables:
        tmpls = TEMPLATES[task][split]
        for i, (value, kw) in enumerate(rows):
            n = 2 if split == "train" or i % 2 == 0 else 1
            for tid in rng.sample(range(len(tmpls)), min(n, len(tmpls))):
                text = tmpls[tid].format(**{field: value})
                domain = {"summarise": "news", "howto": "how-to", "rewrite": "language"}[task]
                items.append(_item(task, split, tid, text, kw=kw, domain=domain, topics=[value]))
    return items


def math_items(rng: random.Random, split: str, n: int) -> list[dict]:
    """Arithmetic questions and word problems with exact integer answers."""
    items = []
    tmpls = MATH[split]
    for i in range(n):
        tid = i % len(tmpls)
        tmpl, fn = tmpls[tid]
        a, b, d = rng.randint(3, 40), rng.randint(2, 12), rng.randint(2, 9)
        v = {"a": a, "b": b, "d": d, "c": a + b + 10, "p": a * b, "name": NAMES[i % len(NAMES)],
             "obj": rng.choice(OBJECTS), "pc": rng.choice([10, 20, 25, 50]),
             "base": rng.choice([40, 80, 120, 200, 300])}
        items.append(_item("math", split, tid, tmpl.format(**v), kw=None, domain="math", answer=fn(v),
                           topics=[]))
    return items


def base_items(rng: random.Random, split: str) -> list[dict]:
    n_math = 96 if split == "train" else 24
    return topic_items(rng, split) + table_items(rng, split) + math_items(rng, split, n_math)
