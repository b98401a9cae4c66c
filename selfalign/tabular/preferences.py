"""Preference pairs from scored synthetic rows (step r1s5), as pure functions.

Input: prompt groups ``{"id", "prompt", "meta": {"table", ...}, "samples": [{"text", "status",
"gain"}, ...]}`` — ``status`` one of :class:`~.extract.Status`, ``gain = score(ds1) − score(ds0)``
(needed for SUCCESS samples only).

**Rule** (:func:`compare`) for two samples of one group: if both are SUCCESS the higher ``gain``
wins; otherwise the higher status score (5/3/2/1/0, :data:`~.extract.STATUS_SCORE`) wins. When the
compared quantity is equal (equal gains of two SUCCESS samples, or equal status scores otherwise)
the pair is a **tie and is skipped**. Every unordered pair ``i < j`` of a group is compared.

**Sampling** (:func:`preference_pairs`): all winning pairs of a table (``meta.table``) are pooled;
if there are more than ``pairs_per_table`` a seeded ``random.Random(f"{seed}:{table}")`` keeps that
many (kept pairs stay in input order); if there are fewer, all are returned and the shortfall is
reported in the statistics — never an error.

**Formats**: ``"pairs"`` → ``{"prompt", "chosen", "rejected", "meta"}`` (meta = the group's meta +
``pair``: group id, indices, statuses, gains); ``"openrlhf"`` → conversational
``{"chosen": [user, assistant], "reject": [user, assistant]}`` as the original code wrote it (run
OpenRLHF with ``--rejected_key reject``). ``rejected_key`` renames the rejected field in both.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from selfalign.errors import DataError
from selfalign.tabular.extract import STATUS_SCORE, Status

Format = Literal["pairs", "openrlhf"]


def _status(sample: Mapping[str, Any], where: str) -> Status:
    try:
        return Status(sample.get("status"))
    except ValueError:
        names = ", ".join(s.value for s in Status)
        raise DataError(f"unknown status {sample.get('status')!r} (one of {names})",
                        key=f"{where}.status") from None


def _gain(sample: Mapping[str, Any], where: str) -> float:
    gain = sample.get("gain")
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or math.isnan(gain):
        raise DataError(f"a SUCCESS sample needs a numeric gain, not {gain!r}", key=f"{where}.gain")
    return float(gain)


def compare(a: Mapping[str, Any], b: Mapping[str, Any], where: str = "samples") -> int:
    """+1 if ``a`` wins, -1 if ``b`` wins, 0 for a tie (rule in the module docstring)."""
    sa, sb = _status(a, where), _status(b, where)
    if sa is Status.SUCCESS and sb is Status.SUCCESS:
        x, y = _gain(a, where), _gain(b, where)
    else:
        x, y = STATUS_SCORE[sa], STATUS_SCORE[sb]
    return (x > y) - (x < y)


def group_pairs(samples: Sequence[Mapping[str, Any]], where: str = "samples") -> tuple[list[tuple[int, int]], int]:
    """``([(winner, loser), ...], n_ties)`` over all pairs ``i < j`` of one group."""
    pairs: list[tuple[int, int]] = []
    ties = 0
    for i in range(len(samples)):
        for j in range(i + 1, len(samples)):
            c = compare(samples[i], samples[j], f"{where}[{i}|{j}]")
            if c == 0:
                ties += 1
            else:
                pairs.append((i, j) if c > 0 else (j, i))
    return pairs, ties


def _table_of(group: Mapping[str, Any], g: int) -> str:
    table = (group.get("meta") or {}).get("table", group.get("table"))
    if table is None:
        raise DataError("the group has no meta.table", key=f"groups[{g}].meta.table")
    return str(table)


def _messages(prompt: Any, answer: str) -> list[dict[str, str]]:
    head = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    return [*head, {"role": "assistant", "content": answer}]


def format_pair(group: Mapping[str, Any], winner: int, loser: int, fmt: Format = "pairs",
                rejected_key: str | None = None) -> dict[str, Any]:
    """One output record for ``samples[winner]`` over ``samples[loser]`` of ``group``."""
    w, l_ = group["samples"][winner], group["samples"][loser]
    if fmt == "openrlhf":
        return {"chosen": _messages(group["prompt"], w["text"]),
                rejected_key or "reject": _messages(group["prompt"], l_["text"])}
    if fmt != "pairs":
        raise DataError(f"format must be 'pairs' or 'openrlhf', not {fmt!r}", key="format")
    pair = {"group_id": group.get("id"), "chosen_index": winner, "rejected_index": loser,
            "chosen_status": w["status"], "rejected_status": l_["status"],
            "chosen_gain": w.get("gain"), "rejected_gain": l_.get("gain")}
    return {"prompt": group["prompt"], "chosen": w["text"], rejected_key or "rejected": l_["text"],
            "meta": {**(group.get("meta") or {}), "pair": pair}}


def preference_pairs(groups: Sequence[Mapping[str, Any]], pairs_per_table: int, seed: int = 0,
                     fmt: Format = "pairs", rejected_key: str | None = None,
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(records, stats)``: all-pairs preferences per group, sampled per table (module docstring).

    ``stats = {"ties": n, "tables": {table: {"available", "kept", "asked"}}, "short": [tables with
    fewer pairs than asked]}``."""
    if pairs_per_table < 0:
        raise DataError(f"pairs_per_table must be >= 0, not {pairs_per_table}", key="pairs_per_table")
    pooled: dict[str, list[tuple[int, int, int]]] = {}
    ties = 0
    for g, group in enumerate(groups):
        table = _table_of(group, g)
        pairs, n_ties = group_pairs(group.get("samples") or [], f"groups[{g}].samples")
        ties += n_ties
        pooled.setdefault(table, []).extend((g, w, lo) for w, lo in pairs)
    records: list[dict[str, Any]] = []
    tables: dict[str, dict[str, int]] = {}
    for table, items in pooled.items():
        if len(items) > pairs_per_table:
            keep = sorted(random.Random(f"{seed}:{table}").sample(range(len(items)), pairs_per_table))
            items = [items[k] for k in keep]
        tables[table] = {"available": len(pooled[table]), "kept": len(items), "asked": pairs_per_table}
        records.extend(format_pair(groups[g], w, lo, fmt, rejected_key) for g, w, lo in items)
    short = [t for t, s in tables.items() if s["available"] < pairs_per_table]
    return records, {"ties": ties, "tables": tables, "short": short}
