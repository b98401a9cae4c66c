"""Convert canonical preference records to and from TRL, OpenRLHF and llm-on-ray layouts.

Every ``to_*`` / ``*_record`` function first normalises its input with
:func:`selfalign.data.formats.normalize_preference` (so any recognised form is accepted), then
writes the target layout; every ``from_*`` function reads that layout back into canonical records.
The list functions name a bad record ``<records>:N`` (N counting from 1); the one-record functions
take ``file``/``line`` for that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from selfalign.data.formats import Text, _rest, _same_style, _user, _Where, normalize_preference

__all__ = [
    "from_llm_on_ray",
    "from_openrlhf",
    "from_trl",
    "llm_on_ray_record",
    "openrlhf_record",
    "to_llm_on_ray",
    "to_openrlhf",
    "to_trl",
    "trl_record",
]


def _flatten(value: Text, key: str, role: str, where: _Where) -> str:
    """A one-turn message list → its text (for string-only formats)."""
    if isinstance(value, str):
        return value
    if len(value) == 1 and value[0]["role"] == role:
        return value[0]["content"]
    raise where.error(f"cannot turn a {len(value)}-message conversation into plain text; keep a "
                      "conversational format (trl/openrlhf)", key)


def _records(records: Iterable[dict] | dict) -> Iterator[tuple[int, dict]]:
    """Number records 1.. (the number is used as the line in errors, file ``<records>``)."""
    yield from enumerate([records] if isinstance(records, dict) else records, start=1)


_LIST = "<records>"


def trl_record(record: dict, conversational: bool | None = None, *, file: str | Path | None = None,
               line: int | None = None, **keys: str | None) -> dict:
    """One preference record (any recognised form; ``keys`` as in :func:`normalize_preference`) → TRL.

    ``conversational``: ``None`` keeps the style, ``True`` lifts strings to one-turn messages,
    ``False`` flattens one-turn conversations to strings (multi-turn ones are an error).
    """
    where = _Where(file, line)
    r = normalize_preference(record, file=file, line=line, **{k: v for k, v in keys.items() if v is not None})
    if conversational is True:
        prompt = _user(r["prompt"]) if isinstance(r["prompt"], str) else r["prompt"]
        r["prompt"], (r["chosen"], r["rejected"]) = _same_style(prompt, [r["chosen"], r["rejected"]])
    elif conversational is False:
        r["prompt"] = _flatten(r["prompt"], "prompt", "user", where)
        r["chosen"] = _flatten(r["chosen"], "chosen", "assistant", where)
        r["rejected"] = _flatten(r["rejected"], "rejected", "assistant", where)
    return r


def to_trl(records: Iterable[dict], conversational: bool | None = None, *, prompt_key: str | None = None,
           chosen_key: str = "chosen", rejected_key: str = "rejected") -> list[dict]:
    """Preference records (any recognised form) → TRL preference records.

    ``conversational=None`` keeps each record's style unless the data mixes styles; then all become
    conversational (TRL wants one style per dataset). See :func:`trl_record` for ``True``/``False``.

    Example: ``to_trl(read_records("prefs_openrlhf.jsonl"), rejected_key="reject")``
    """
    keys = {"prompt_key": prompt_key, "chosen_key": chosen_key, "rejected_key": rejected_key}
    out = [trl_record(r, conversational, file=_LIST, line=i, **keys) for i, r in _records(records)]
    styles = {isinstance(r["prompt"], list) for r in out}
    if conversational is None and len(styles) > 1:
        out = [trl_record(r, True, file=_LIST, line=i) for i, r in enumerate(out, start=1)]
    return out


def from_trl(records: Iterable[dict]) -> list[dict]:
    """TRL preference records (standard, conversational or implicit-prompt) → canonical records."""
    return [normalize_preference(r, file=_LIST, line=i) for i, r in _records(records)]


def openrlhf_record(record: dict, prompt_key: str | None = "prompt", chosen_key: str = "chosen",
                    rejected_key: str = "rejected", *, file: str | Path | None = None,
                    line: int | None = None) -> dict:
    """One canonical preference record → OpenRLHF layout with the given keys (see :func:`to_openrlhf`)."""
    r = normalize_preference(record, file=file, line=line)
    rest = _rest(r, ["prompt", "chosen", "rejected"])
    if prompt_key is None:
        prompt = _user(r["prompt"]) if isinstance(r["prompt"], str) else r["prompt"]
        p, (c, rj) = _same_style(prompt, [r["chosen"], r["rejected"]])
        row = {"id": r["id"], chosen_key: p + c, rejected_key: p + rj}
    else:
        row = {"id": r["id"], prompt_key: r["prompt"], chosen_key: r["chosen"], rejected_key: r["rejected"]}
    return {**row, **rest}


def to_openrlhf(records: Iterable[dict], prompt_key: str | None = "prompt", chosen_key: str = "chosen",
                rejected_key: str = "rejected") -> list[dict]:
    """Canonical preference records → OpenRLHF records with the given keys.

    ``prompt_key=None`` writes the implicit form (OpenRLHF without ``--prompt_key``): chosen and
    rejected are whole conversations (prompt turns + answer); string records are lifted to messages.

    Example: ``to_openrlhf(prefs, rejected_key="reject")`` → ``{"prompt", "chosen", "reject", ...}``
    """
    return [openrlhf_record(r, prompt_key, chosen_key, rejected_key, file=_LIST, line=i)
            for i, r in _records(records)]


def from_openrlhf(records: Iterable[dict], prompt_key: str | None = "prompt", chosen_key: str = "chosen",
                  rejected_key: str = "rejected") -> list[dict]:
    """OpenRLHF preference records (given keys; ``prompt_key=None`` = implicit) → canonical records.

    Example: ``from_openrlhf(rows, rejected_key="reject")``
    """
    return [normalize_preference(r, prompt_key=prompt_key, chosen_key=chosen_key, rejected_key=rejected_key,
                                 file=_LIST, line=i) for i, r in _records(records)]


def llm_on_ray_record(record: dict, prompt_key: str = "instruction", *, file: str | Path | None = None,
                      line: int | None = None) -> dict:
    """One canonical preference record → llm-on-ray layout (plain text; see :func:`to_llm_on_ray`)."""
    where = _Where(file, line)
    r = normalize_preference(record, file=file, line=line)
    row = {"id": r["id"], prompt_key: _flatten(r["prompt"], "prompt", "user", where),
           "chosen": _flatten(r["chosen"], "chosen", "assistant", where),
           "rejected": _flatten(r["rejected"], "rejected", "assistant", where)}
    return {**row, **_rest(r, ["prompt", "chosen", "rejected"])}


def to_llm_on_ray(records: Iterable[dict], prompt_key: str = "instruction") -> list[dict]:
    """Canonical preference records → llm-on-ray reward data ``{"instruction", "chosen", "rejected"}``.

    llm-on-ray takes plain text: one-turn conversations are flattened, longer ones are an error.

    Example: ``to_llm_on_ray(prefs)``
    """
    return [llm_on_ray_record(r, prompt_key, file=_LIST, line=i) for i, r in _records(records)]


def from_llm_on_ray(records: Iterable[dict]) -> list[dict]:
    """llm-on-ray reward records (``instruction`` [+ ``input``] or ``prompt``) → canonical records."""
    out = []
    for i, rec in _records(records):
        key = "instruction" if isinstance(rec, dict) and "instruction" in rec else "prompt"
        out.append(normalize_preference(rec, prompt_key=key, file=_LIST, line=i))
    return out
