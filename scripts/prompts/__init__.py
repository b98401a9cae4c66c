"""Deterministic generator for the shipped prompt sets (see ``scripts/make_prompts.py``).

* :mod:`prompts.topics` — topic, passage, how-to and rewrite tables, split into train / held-out;
* :mod:`prompts.tasks` — task phrasings (sentence templates) and base-item builders;
* :mod:`prompts.constraints` — IFEval-style constraint families, their phrasings and conflicts;
* :mod:`prompts.make` — assembles records, validates them against the official IFEval registry,
  writes the JSONL files and the summary.
"""
