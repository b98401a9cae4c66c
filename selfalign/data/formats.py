"""Recognise, normalise and load prompt, SFT and preference record formats.

Our canonical records (what every stage reads and writes):

* prompt: ``{"id", "prompt", ...}`` — ``prompt`` is a non-empty string or a list of chat messages
  ``{"role", "content"}`` ending before the answer;
* SFT: ``{"id", "prompt", "completion", ...}`` — TRL's prompt-completion format;
* preference: ``{"id", "prompt", "chosen", "rejected", ...}`` — exactly TRL's *standard* form
  (three strings; ``chosen``/``rejected`` are the completions only) or its *conversational* form
  (``prompt`` a message list, ``chosen``/``rejected`` lists of the assistant turns that follow).

Other keys (``chosen_score``, ``meta``, ...) are kept as they are. A missing ``id`` becomes a short
hash of the record's content (stable across runs); ids are strings.

Preference inputs we recognise (:func:`detect_preference_format`):

* ``trl_standard`` / ``trl_conversational`` — as above;
* ``implicit_prompt`` — no prompt key; ``chosen``/``rejected`` are whole conversations and their
  shared leading messages are the prompt;
* ``llm_on_ray`` — ``instruction`` (optionally ``input``) or ``prompt`` + ``chosen`` + ``rejected``
  strings;
* ``openrlhf`` — configurable keys (``prompt_key``, ``chosen_key``, ``rejected_key``, e.g.
  ``rejected_key="reject"``), values strings or message lists, prompt optional (implicit).

A bad record raises :class:`~selfalign.errors.DataError` naming the key and, when the caller passes
``file``/``line``, where the record is. Writing records back out in those layouts (TRL, OpenRLHF,
llm-on-ray) is :mod:`selfalign.data.convert`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, NamedTuple

from selfalign.errors import DataError

__all__ = [
    "PreferenceForm",
    "detect_preference_format",
    "is_conversational",
    "KIND_KEYS",
    "is_message",
    "normalizer",
    "iter_normalized",
    "load_preferences",
    "load_prompts",
    "load_sft",
    "make_id",
    "normalize_preference",
    "normalize_prompt",
    "normalize_sft",
]

Messages = list[dict[str, Any]]
Text = str | Messages

#: Chat roles a message may have (anything else is a typo or another tool's convention).
ROLES = ("system", "user", "assistant", "tool")
#: Keys tried, in order, for the prompt when none is given.
PROMPT_KEYS = ("prompt", "instruction", "question")
#: Keys tried, in order, for an SFT completion when none is given.
COMPLETION_KEYS = ("completion", "output", "response", "answer")


# ----------------------------------------------------------------------------------------- messages
def is_message(x: Any) -> bool:
    """True for a chat message: a dict with a string ``role`` and a ``content``."""
    return isinstance(x, dict) and isinstance(x.get("role"), str) and "content" in x


def is_conversational(x: Any) -> bool:
    """True for a non-empty list of chat messages."""
    return isinstance(x, list) and len(x) > 0 and all(is_message(m) for m in x)


class _Where(NamedTuple):
    file: str | Path | None
    line: int | None

    def error(self, reason: str, key: str | None = None) -> DataError:
        return DataError(reason, self.file, self.line, key)


def _check_messages(value: Any, key: str, where: _Where) -> Messages:
    if not isinstance(value, list) or not value:
        raise where.error("expected a non-empty list of messages", key)
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise where.error(f"message {i} must be an object, got {type(m).__name__}", key)
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise where.error(f"message {i} has no 'role' string", key)
        if role not in ROLES:
            raise where.error(f"unknown role {role!r}; expected one of {', '.join(ROLES)}", f"{key}[{i}].role")
        if not isinstance(m.get("content"), str):
            got = "missing" if "content" not in m else type(m["content"]).__name__
            raise where.error(f"message {i} 'content' must be a string ({got})", key)
    return value


def _check_text(value: Any, key: str, where: _Where, what: str) -> Text:
    """A non-empty string or a valid message list."""
    if isinstance(value, str):
        if not value.strip():
            raise where.error(f"empty {what}", key)
        return value
    if isinstance(value, list):
        return _check_messages(value, key, where)
    if value is None:
        raise where.error(f"{what} is null", key)
    raise where.error(f"{what} must be a string or a list of messages, got {type(value).__name__}", key)


def _user(text: str) -> Messages:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def _check_completion_turns(msgs: Messages, key: str, where: _Where) -> Messages:
    if msgs[0]["role"] != "assistant":
        raise where.error(f"must start with an assistant message, starts with {msgs[0]['role']!r}", key)
    return msgs


def _check_prompt_turns(msgs: Messages, key: str, where: _Where) -> Messages:
    if msgs[-1]["role"] == "assistant":
        raise where.error("prompt must not end with an assistant message", key)
    return msgs


def make_id(*parts: Any) -> str:
    """Stable short id from content: ``make_id(prompt, chosen)`` → ``'h3f9c0d1e2a4b'``."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def _id_of(record: dict, where: _Where, *content: Any) -> str:
    rid = record.get("id")
    if rid is None:
        return make_id(*content)
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise where.error(f"id must be a string or an integer, got {type(rid).__name__}", "id")
    if isinstance(rid, str) and not rid.strip():
        raise where.error("empty id", "id")
    return str(rid)


def _rest(record: dict, used: Iterable[str | None]) -> dict:
    drop = {k for k in used if k} | {"id"}
    return {k: v for k, v in record.items() if k not in drop}


def _pick_prompt(record: dict, prompt_key: str | None, where: _Where, *, with_input: bool = True
                 ) -> tuple[str | None, list[str], Any]:
    """Find the prompt: returns (key used, keys consumed, value) or (None, [], None) when absent.

    ``instruction`` + a non-empty ``input`` are joined with a blank line (Alpaca style).
    """
    if prompt_key is not None:
        if prompt_key not in record:
            raise where.error("missing key", prompt_key)
        key = prompt_key
    else:
        key = next((k for k in PROMPT_KEYS if k in record), None)
        if key is None:
            return None, [], None
    value = record[key]
    used = [key]
    if with_input and key == "instruction" and "input" in record:
        used.append("input")
        extra = record["input"]
        if extra is not None and not isinstance(extra, str):
            raise where.error(f"must be a string, got {type(extra).__name__}", "input")
        if isinstance(value, str) and extra and extra.strip():
            value = f"{value}\n\n{extra}"
    return key, used, value


# ------------------------------------------------------------------------------------------ prompts
def normalize_prompt(record: dict, prompt_key: str | None = None, *, file: str | Path | None = None,
                     line: int | None = None) -> dict:
    """Canonical prompt record ``{"id", "prompt", ...}`` from any supported prompt form.

    Accepts ``prompt`` (string or messages), ``instruction`` (+ optional ``input``), ``question``, or
    ``messages`` (the turns up to and including the last user turn), or ``prompt_key``.

    Example: ``normalize_prompt({"instruction": "Add", "input": "2+2"})["prompt"] == "Add\\n\\n2+2"``
    """
    where = _Where(file, line)
    if not isinstance(record, dict):
        raise where.error(f"record must be an object, got {type(record).__name__}")
    key, used, value = _pick_prompt(record, prompt_key, where)
    if key is None:
        if "messages" not in record:
            raise where.error(f"missing key (one of {', '.join(PROMPT_KEYS)}, messages)", "prompt")
        key, used = "messages", ["messages"]
        msgs = _check_messages(record["messages"], key, where)
        last_user = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=None)
        if last_user is None:
            raise where.error("no user message", key)
        value = msgs[: last_user + 1]
    prompt = _check_text(value, key, where, "prompt")
    if isinstance(prompt, list):
        _check_prompt_turns(prompt, key, where)
    return {"id": _id_of(record, where, prompt), "prompt": prompt, **_rest(record, [*used, "prompt"])}


# ---------------------------------------------------------------------------------------------- SFT
def normalize_sft(record: dict, prompt_key: str | None = None, completion_key: str | None = None, *,
                  file: str | Path | None = None, line: int | None = None) -> dict:
    """Canonical SFT record ``{"id", "prompt", "completion", ...}``.

    Accepts ``prompt`` + ``completion`` (strings or messages), ``messages`` (the last assistant turn
    is the completion, the turns before it the prompt), or ``instruction`` (+ ``input``) +
    ``output``/``response``; ``prompt_key``/``completion_key`` name other keys.
    A string prompt with a message-list completion (or the reverse) becomes conversational.

    Example: ``normalize_sft({"instruction": "Say hi", "output": "Hi!"})``
    """
    where = _Where(file, line)
    if not isinstance(record, dict):
        raise where.error(f"record must be an object, got {type(record).__name__}")
    pkey, used, prompt = _pick_prompt(record, prompt_key, where)
    if pkey is None:
        if "messages" not in record:
            raise where.error(f"missing key (one of {', '.join(PROMPT_KEYS)}, messages)", "prompt")
        msgs = _check_messages(record["messages"], "messages", where)
        last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        if last is None or last == 0:
            raise where.error("needs a prompt turn followed by an assistant message", "messages")
        prompt, completion = msgs[:last], msgs[last:last + 1]
        pkey, ckey, used = "messages", "messages", ["messages"]
        if completion[0]["content"].strip() == "":
            raise where.error("empty completion", ckey)
    else:
        if completion_key is not None:
            if completion_key not in record:
                raise where.error("missing key", completion_key)
            ckey = completion_key
        else:
            ckey = next((k for k in COMPLETION_KEYS if k in record), None)
            if ckey is None:
                raise where.error(f"missing key (one of {', '.join(COMPLETION_KEYS)})", "completion")
        used.append(ckey)
        completion = _check_text(record[ckey], ckey, where, "completion")
    prompt = _check_text(prompt, pkey, where, "prompt")
    prompt, (completion,) = _same_style(prompt, [completion])
    if isinstance(prompt, list):
        _check_prompt_turns(prompt, pkey, where)
        _check_completion_turns(completion, ckey, where)
    out = {"id": _id_of(record, where, prompt, completion), "prompt": prompt, "completion": completion}
    return {**out, **_rest(record, [*used, "prompt", "completion"])}


def _same_style(prompt: Text, completions: list[Text]) -> tuple[Text, list[Text]]:
    """Make prompt and completions all strings or all messages (strings lift to one turn)."""
    if isinstance(prompt, str) and all(isinstance(c, str) for c in completions):
        return prompt, completions
    p = _user(prompt) if isinstance(prompt, str) else prompt
    return p, [_assistant(c) if isinstance(c, str) else c for c in completions]


# -------------------------------------------------------------------------------------- preferences
class PreferenceForm(NamedTuple):
    """How a preference record is laid out.

    ``style`` is ``standard`` (strings), ``conversational`` (message lists) or ``implicit`` (no
    prompt key; whole conversations). ``name`` is the family it matches.
    """

    style: Literal["standard", "conversational", "implicit"]
    prompt_key: str | None
    chosen_key: str
    rejected_key: str

    @property
    def name(self) -> str:
        """``trl_standard``, ``trl_conversational``, ``implicit_prompt``, ``llm_on_ray`` or ``openrlhf``."""
        if (self.chosen_key, self.rejected_key) != ("chosen", "rejected") or self.prompt_key not in (
                "prompt", "instruction", None):
            return "openrlhf"
        if self.prompt_key == "instruction":
            return "llm_on_ray"
        if self.style == "implicit":
            return "implicit_prompt"
        return f"trl_{self.style}"


def detect_preference_format(record: dict, *, prompt_key: str | None = None, chosen_key: str = "chosen",
                             rejected_key: str = "rejected", file: str | Path | None = None,
                             line: int | None = None) -> PreferenceForm:
    """Recognise the layout of one preference record (see the module docstring).

    With the default ``rejected_key`` a record that has ``reject`` instead (OpenRLHF exports) is
    accepted. ``prompt_key=None`` tries ``prompt``, ``instruction``, ``question``, then implicit.

    Example: ``detect_preference_format({"prompt": "q", "chosen": "a", "reject": "b"}).name == "openrlhf"``
    """
    where = _Where(file, line)
    if not isinstance(record, dict):
        raise where.error(f"record must be an object, got {type(record).__name__}")
    if rejected_key == "rejected" and "rejected" not in record and "reject" in record:
        rejected_key = "reject"
    for k in (chosen_key, rejected_key):
        if k not in record:
            raise where.error("missing key", k)
    pkey, _, prompt = _pick_prompt(record, prompt_key, where, with_input=False)
    values = [record[chosen_key], record[rejected_key]]
    if pkey is None:
        if all(isinstance(v, list) for v in values):
            return PreferenceForm("implicit", None, chosen_key, rejected_key)
        raise where.error(f"missing key (one of {', '.join(PROMPT_KEYS)}); chosen/rejected are not "
                          "conversations to take the prompt from", "prompt")
    style = "conversational" if any(isinstance(v, list) for v in [prompt, *values]) else "standard"
    return PreferenceForm(style, pkey, chosen_key, rejected_key)


def _split_implicit(chosen: Messages, rejected: Messages, form: PreferenceForm, where: _Where
                    ) -> tuple[Messages, Messages, Messages]:
    """Shared leading messages → prompt; the rest (from an assistant turn) → the completions."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    while n > 0 and chosen[n - 1]["role"] == "assistant":  # completions start at an assistant turn
        n -= 1
    if n == 0:
        raise where.error("chosen and rejected share no prompt turns", form.chosen_key)
    prompt, c, r = chosen[:n], chosen[n:], rejected[n:]
    for key, msgs in ((form.chosen_key, c), (form.rejected_key, r)):
        if not msgs:
            raise where.error("no answer after the shared prompt turns", key)
    return prompt, c, r


def normalize_preference(record: dict, *, prompt_key: str | None = None, chosen_key: str = "chosen",
                         rejected_key: str = "rejected", file: str | Path | None = None,
                         line: int | None = None) -> dict:
    """Canonical preference record ``{"id", "prompt", "chosen", "rejected", ...}`` (TRL format).

    Strings stay strings (standard); if any of prompt/chosen/rejected is a message list, all become
    message lists (conversational). An implicit prompt is extracted from the shared turns.
    Source keys (``instruction``, ``input``, ``reject``, ...) are replaced by the canonical ones.

    Example: ``normalize_preference({"instruction": "q", "chosen": "a", "rejected": "b"})``
    """
    where = _Where(file, line)
    form = detect_preference_format(record, prompt_key=prompt_key, chosen_key=chosen_key,
                                    rejected_key=rejected_key, file=file, line=line)
    ck, rk = form.chosen_key, form.rejected_key
    chosen = _check_text(record[ck], ck, where, "chosen")
    rejected = _check_text(record[rk], rk, where, "rejected")
    if form.style == "implicit":
        prompt, chosen, rejected = _split_implicit(chosen, rejected, form, where)
        used: list[str | None] = [ck, rk]
        pkey = ck
    else:
        pkey, used_p, prompt = _pick_prompt(record, form.prompt_key, where)
        used = [*used_p, ck, rk]
        prompt = _check_text(prompt, pkey, where, "prompt")
        prompt, (chosen, rejected) = _same_style(prompt, [chosen, rejected])
    if isinstance(prompt, list):
        _check_prompt_turns(prompt, pkey, where)
        _check_completion_turns(chosen, ck, where)
        _check_completion_turns(rejected, rk, where)
    out = {"id": _id_of(record, where, prompt, chosen, rejected), "prompt": prompt, "chosen": chosen,
           "rejected": rejected}
    return {**out, **_rest(record, [*used, "chosen", "rejected", "prompt"])}


# ------------------------------------------------------------------------------------------ loading
Kind = Literal["prompt", "sft", "preference"]


#: The key options each record kind takes.
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt_key",),
    "sft": ("prompt_key", "completion_key"),
    "preference": ("prompt_key", "chosen_key", "rejected_key"),
}


def normalizer(kind: Kind, **keys: str | None):
    """The normalising function for ``kind`` with its key options bound (``prompt_key``, ...).

    Options set to ``None`` mean "the default"; an option that does not apply to ``kind`` is an error.
    """
    if kind not in KIND_KEYS:
        raise DataError(f"unknown record kind {kind!r}; use prompt, sft or preference")
    keys = {k: v for k, v in keys.items() if v is not None}
    bad = sorted(set(keys) - set(KIND_KEYS[kind]))
    if bad:
        raise DataError(f"option(s) {', '.join(bad)} do not apply to {kind} records")
    fn = {"prompt": normalize_prompt, "sft": normalize_sft, "preference": normalize_preference}[kind]

    def apply(record: dict, *, file: str | Path | None = None, line: int | None = None) -> dict:
        return fn(record, file=file, line=line, **keys)

    return apply


def iter_normalized(path: str | Path, kind: Kind, *, split: str | None = None, **keys: str | None
                    ) -> Iterator[tuple[int, dict, Path]]:
    """Yield ``(line, canonical_record, file)`` for every record of a data file (errors name file:line)."""
    from selfalign.data.io import iter_records

    fn = normalizer(kind, **keys)
    for line, rec, file in iter_records(path, split=split):
        yield line, fn(rec, file=file, line=line), file


def load_prompts(path: str | Path, prompt_key: str | None = None, *, split: str | None = None) -> list[dict]:
    """Read a prompt file of any supported format/layout into canonical prompt records.

    Every id must be unique (a duplicate names both lines) and the file must hold a record.

    Example: ``load_prompts("examples/data/prompts.jsonl")``
    """
    out, seen = [], {}
    for line, rec, file in iter_normalized(path, "prompt", split=split, prompt_key=prompt_key):
        first = seen.setdefault(rec["id"], (file, line))
        if first != (file, line):
            at = f"line {first[1]}" if first[0] == file else f"{first[0]}:{first[1]}"
            raise DataError(f"duplicate id {rec['id']!r} (first at {at}); ids must be unique", file, line, "id")
        out.append(rec)
    if not out:
        raise DataError("no records (the file is empty, blank, or only a header)", path)
    return out


def load_sft(path: str | Path, prompt_key: str | None = None, completion_key: str | None = None, *,
             split: str | None = None) -> list[dict]:
    """Read an SFT file into canonical ``{"id", "prompt", "completion"}`` records."""
    return [r for _, r, _ in iter_normalized(path, "sft", split=split, prompt_key=prompt_key,
                                             completion_key=completion_key)]


def load_preferences(path: str | Path, prompt_key: str | None = None, chosen_key: str = "chosen",
                     rejected_key: str = "rejected", *, split: str | None = None) -> list[dict]:
    """Read a preference file (TRL / OpenRLHF / llm-on-ray / implicit) into canonical records.

    Example: ``load_preferences("pairs.jsonl", rejected_key="reject")``
    """
    return [r for _, r, _ in iter_normalized(path, "preference", split=split, prompt_key=prompt_key,
                                             chosen_key=chosen_key, rejected_key=rejected_key)]
