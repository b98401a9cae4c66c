"""Principles as data (SALMON, arXiv 2310.05910): loading lists of principles, the reviewer prompt
of the principle-following reward model, and the RL-time sampling of the principles it is shown.

A principle is ``{"name", "definition", "negative_definition", "weight", "tags"}``. Lists come
from a JSON or YAML file — a list, or a mapping with a ``principles`` list (other top-level keys,
such as ``description``, are allowed) — or are shipped by name (``judging``, ``rl``,
``intervention``; our own wording). Invalid files give one-line :class:`~selfalign.errors.DataError`
messages ``file:line: principles[3].weight: reason``.

Reviewer prompt (:func:`render_reviewer_messages`): a user turn asking a reviewer to judge a
response to an instruction against a bulleted list of guideline definitions (no names), and the
assistant prefix ``"The quality of the output is"`` after which the reward model's score is read.

RL-time principles (:func:`rl_reviewer_definitions`): the intervention principles (always, in
file order) followed by ``k`` principles drawn from the RL list by :func:`sample_weighted`.
"""

from __future__ import annotations

import json
import math
import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from selfalign.config import StrictModel
from selfalign.errors import DataError
from selfalign.judges.templates import fill_template, load_template, prompt_text, resources_dir

__all__ = [
    "REASONING_TAGS",
    "Principle",
    "load_principles",
    "principle_text",
    "prompt_kind",
    "render_reviewer_messages",
    "rl_reviewer_definitions",
    "sample_weighted",
    "shipped_principles",
]

#: principle tags boosted for reasoning prompts, and prompt kinds/tags that count as reasoning
REASONING_TAGS = frozenset({"reasoning", "numerical"})
REVIEWER_PREFIX = "The quality of the output is"
_REVIEWER_PLACEHOLDERS = ("{instruction}", "{response}", "{principles}")

Loc = tuple  # a location in the parsed data: ("principles", 3, "weight")


class Principle(StrictModel):
    """One principle: what a good output does (``definition``) and its opposite."""

    name: str = Field(min_length=1)
    definition: str = Field(min_length=1)
    negative_definition: str = ""
    weight: float = Field(1.0, ge=0.0, allow_inf_nan=False)
    tags: list[str] = Field(default_factory=list)


def shipped_principles() -> list[str]:
    """Names of the principle lists shipped under ``resources/principles/``."""
    return sorted(p.stem for p in (resources_dir() / "principles").glob("*.json"))


# ------------------------------------------------------------------------------------ file parsing
def _line_of(text: str) -> Callable[[int], int]:
    """Function: character offset in ``text`` → 1-based line number."""
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    return lambda pos: bisect_right(starts, pos)


def _json_lines(text: str) -> dict[Loc, int]:
    """Line of every object key and list item in (valid) JSON text, keyed by its path."""
    line_at, dec, lines = _line_of(text), json.JSONDecoder(), {}
    ws = " \t\r\n"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    def walk(i: int, path: Loc) -> int:  # i: start of a value; returns the index after it
        if text[i] not in "{[":
            return dec.raw_decode(text, i)[1]
        close, i = ("}" if text[i] == "{" else "]"), skip(i + 1)
        n = 0
        while text[i] != close:
            if close == "}":
                key, j = json.decoder.scanstring(text, i + 1)
                lines[path + (key,)] = line_at(i)
                i, sub = skip(skip(j) + 1), path + (key,)
            else:
                lines[path + (n,)] = line_at(i)
                sub, n = path + (n,), n + 1
            i = skip(walk(i, sub))
            if text[i] == ",":
                i = skip(i + 1)
        return i + 1

    walk(skip(0), ())
    return lines


def _yaml_lines(node: yaml.Node, path: Loc, lines: dict[Loc, int]) -> None:
    """Line of every mapping key and sequence item under a composed YAML node."""
    if isinstance(node, yaml.MappingNode):
        for k_node, v_node in node.value:
            if not isinstance(k_node, yaml.ScalarNode):
                continue
            sub = path + (k_node.value,)
            lines[sub] = k_node.start_mark.line + 1
            _yaml_lines(v_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for n, item in enumerate(node.value):
            lines[path + (n,)] = item.start_mark.line + 1
            _yaml_lines(item, path + (n,), lines)


def _parse(p: Path) -> tuple[Any, dict[Loc, int]]:
    """(data, {path: line}) of a JSON file, or of a YAML file (``.yaml``/``.yml``)."""
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the file ({e})", p) from None
    if p.suffix.lower() in (".yaml", ".yml"):
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise DataError(f"invalid YAML ({getattr(e, 'problem', None) or e})", p, line) from None
        finally:
            loader.dispose()
        lines: dict[Loc, int] = {}
        if node is not None:
            _yaml_lines(node, (), lines)
        return data, lines
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg})", p, e.lineno) from None
    return data, _json_lines(text)


def _resolve(name_or_path: str | Path) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    shipped = resources_dir() / "principles" / f"{name_or_path}.json"
    if not shipped.is_file():
        raise DataError(f"no such file and not a shipped principle list (shipped: "
                        f"{', '.join(shipped_principles())})", str(name_or_path))
    return shipped


def _key(path: Loc) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _nearest_line(lines: dict[Loc, int], path: Loc) -> int | None:
    """Line of ``path``, else of its closest enclosing item (a missing key → its principle)."""
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_principles(name_or_path: str | Path) -> list[Principle]:
    """Principles from a JSON/YAML file, or a shipped list by name (``judging``, ``rl``, ``intervention``).

    The file holds a list of principles or a mapping with a ``principles`` list. Errors name the
    file, the line of the offending principle or key and the key (``principles[3].weight``);
    duplicate names name both lines; an empty list is an error.
    """
    p = _resolve(name_or_path)
    data, lines = _parse(p)
    prefix: Loc = ("principles",)
    if isinstance(data, dict):
        if "principles" not in data:
            raise DataError("expected a list of principles or a mapping with a 'principles' list "
                            f"(top-level keys: {', '.join(map(str, data)) or 'none'})", p, 1)
        items = data["principles"]
    else:
        items, lines = data, {prefix + k: v for k, v in lines.items()}
    line = lines.get(prefix, 1)
    if not isinstance(items, list):
        raise DataError(f"expected a list of principles (got {type(items).__name__})", p, line, "principles")
    if not items:
        raise DataError("the list of principles is empty", p, line, "principles")
    out: list[Principle] = []
    first_line: dict[str, tuple[int, int | None]] = {}
    for k, item in enumerate(items):
        try:
            pr = Principle.model_validate(item)
        except ValidationError as err:
            e = err.errors()[0]
            where = prefix + (k,) + tuple(e["loc"])
            got = f" (got {_short(e['input'])})" if e["type"] != "missing" else ""
            raise DataError(f"{e['msg']}{got}", p, _nearest_line(lines, where), _key(where)) from None
        item_line = lines.get(prefix + (k,))
        if pr.name in first_line:
            j, j_line = first_line[pr.name]
            raise DataError(f"duplicate principle name {pr.name!r} (also principles[{j}] at line {j_line})",
                            p, _nearest_line(lines, prefix + (k, "name")), _key(prefix + (k, "name")))
        first_line[pr.name] = (k, _nearest_line(lines, prefix + (k, "name")) or item_line)
        out.append(pr)
    return out


def principle_text(p: Principle, negated: bool = False) -> str:
    """``p.definition``, or ``p.negative_definition`` when ``negated`` (an error when it has none)."""
    if not negated:
        return p.definition
    if not p.negative_definition.strip():
        raise DataError(f"principle {p.name!r} has no negative_definition, so it cannot be negated",
                        key="negative_definition")
    return p.negative_definition


# ----------------------------------------------------------------------------------- reviewer prompt
def render_reviewer_messages(instruction: str, response: str, definitions: list[str],
                             template: str = "reviewer") -> list[dict]:
    """The principle-following reward model's input as two chat messages.

    ``[{"role": "user", "content": <template filled>}, {"role": "assistant", "content":
    "The quality of the output is"}]``. The template (a shipped name or a file) must contain
    ``{instruction}``, ``{response}`` and ``{principles}``; the principles are the definitions as
    ``- <definition>`` bullets, one per line, in the given order, without names. Filling is one
    pass, so braces inside the instruction or response are kept verbatim. ``instruction`` may
    also be a message list (rendered by :func:`~selfalign.judges.templates.prompt_text`).
    """
    if not definitions:
        raise ValueError("render_reviewer_messages: no principle definitions given")
    text = load_template(template, _REVIEWER_PLACEHOLDERS)
    bullets = "\n".join("- " + " ".join(str(d).split()) for d in definitions)
    content = fill_template(text, instruction=prompt_text(instruction), response=response,
                            principles=bullets).rstrip()
    return [{"role": "user", "content": content}, {"role": "assistant", "content": REVIEWER_PREFIX}]


# ---------------------------------------------------------------------------------- RL-time sampling
def _effective_weights(principles: Sequence[Principle], kind: str, reasoning_boost: float) -> list[float]:
    if kind not in ("general", "reasoning"):
        raise ValueError(f"kind must be 'general' or 'reasoning' (got {kind!r})")
    if not (math.isfinite(reasoning_boost) and reasoning_boost >= 0):
        raise ValueError(f"reasoning_boost must be a finite number >= 0 (got {reasoning_boost!r})")
    out = []
    for p in principles:
        boosted = kind == "reasoning" and any(t.lower() in REASONING_TAGS for t in p.tags)
        out.append(p.weight * (reasoning_boost if boosted else 1.0))
    return out


def sample_weighted(principles: Sequence[Principle], k: int, rng: random.Random, kind: str = "general",
                    reasoning_boost: float = 2.0) -> list[Principle]:
    """``k`` distinct principles, drawn one after another with probability ∝ effective weight.

    Effective weight ``v_i = w_i · b_i`` with ``b_i = reasoning_boost`` when ``kind == "reasoning"``
    and principle i is tagged ``reasoning`` or ``numerical`` (case-insensitive), else ``b_i = 1``.
    The first draw picks i with probability ``v_i / Σ_j v_j``; each later draw renormalises over the
    principles not drawn yet (sequential sampling without replacement), so e.g. for k = 2 the
    ordered pair (i, j) has probability ``v_i/V · v_j/(V − v_i)``. Principles with ``v_i = 0`` are
    never drawn; ``k`` larger than the number with ``v_i > 0`` is a ``ValueError``. Returned in
    draw order. Deterministic given the state of ``rng`` (pure Python, one ``rng.random()`` per draw).

    Where the original differs: SALMON also shows a random subset of its RL principles per prompt
    and favours the reasoning-related ones for reasoning prompts, but its weights, its selection
    scheme and its principle wording are not reproduced here — the weights are those of our shipped
    list and the favouring is this one multiplicative ``reasoning_boost``.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0 (got {k})")
    weights = _effective_weights(principles, kind, reasoning_boost)
    pool = [i for i, v in enumerate(weights) if v > 0]
    if k > len(pool):
        raise ValueError(f"cannot draw {k} distinct principles: only {len(pool)} of {len(principles)} "
                         f"have a positive weight (kind={kind!r})")
    chosen: list[Principle] = []
    for _ in range(k):
        total = math.fsum(weights[i] for i in pool)
        u, acc, pick = rng.random() * total, 0.0, len(pool) - 1
        for n, i in enumerate(pool):
            acc += weights[i]
            if u < acc:
                pick = n
                break
        chosen.append(principles[pool.pop(pick)])
    return chosen


def rl_reviewer_definitions(intervention: Sequence[Principle], rl: Sequence[Principle], rng: random.Random,
                            k: int = 3, kind: str = "general", reasoning_boost: float = 2.0) -> list[str]:
    """The definitions shown to the reward model for one RL prompt: every intervention principle
    (file order), then ``k`` RL principles from :func:`sample_weighted` (draw order)."""
    sampled = sample_weighted(rl, k, rng, kind=kind, reasoning_boost=reasoning_boost)
    return [p.definition for p in intervention] + [p.definition for p in sampled]


def prompt_kind(meta: dict | None, key: str = "kind") -> str:
    """``"reasoning"`` if ``meta[key]`` (a string or a list of strings) or the ``meta["tags"]`` list
    names ``reasoning`` (or ``numerical``; case-insensitive), else ``"general"``."""
    if not isinstance(meta, dict):
        return "general"
    labels: list[Any] = []
    for v in (meta.get(key), meta.get("tags")):
        if isinstance(v, str):
            labels.append(v)
        elif isinstance(v, (list, tuple)):
            labels.extend(v)
    hit = any(isinstance(x, str) and x.strip().lower() in REASONING_TAGS for x in labels)
    return "reasoning" if hit else "general"
