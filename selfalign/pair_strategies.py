"""Pair strategies: small functions registered by name, used by :func:`selfalign.preferences.build_pairs`.

A strategy is a select function ``(Candidates, PairOptions) -> list[Pick] | reason``, registered
with :func:`register_pair_strategy` (plus an optional finalize step over all picks, e.g. caps).
:func:`selfalign.preferences.build_pairs` does everything common — option checks, valid responses,
bad-sample counting, output records, statistics — so a strategy states only its rule::

    @register_pair_strategy("max_min")
    def _max_min(c: Candidates, o: PairOptions) -> list[Pick] | str:
        chosen, rejected = select_pair(c.responses, 0.0)
        return pair_problem(chosen, rejected, o.min_margin) or [Pick(chosen, rejected, c.rid)]

:func:`pair_strategy_names` is the one list of valid names (CLI help, config validation).
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from selfalign.errors import ConfigError, DataError


# ---------------------------------------------------------------------------------------- helpers
class Response:
    """A valid response: position, text, score, judge variance, length (tokens or chars)."""

    __slots__ = ("index", "text", "score", "var", "length")

    def __init__(self, index: int, text: str, score: float, var: float, length: int):
        self.index, self.text, self.score, self.var, self.length = index, text, score, var, length


def _lookup(rec: dict, path: str) -> Any:
    """The value at a dotted path of a record (``meta.dataset``); a DataError naming it if absent."""
    cur: Any = rec
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise DataError(f"record {rec.get('id')!r} has no {path!r} (group_key)", key=path)
        cur = cur[part]
    return cur


def _top(resps: Sequence[Response]) -> Response:
    """Highest score; ties → lowest variance, then first."""
    return min(resps, key=lambda x: (-x.score, x.var, x.index))


def _bottom(resps: Sequence[Response]) -> Response:
    """Lowest score; ties → lowest variance, then first."""
    return min(resps, key=lambda x: (x.score, x.var, x.index))


def select_pair(resps: Sequence[Response], rho: float = 0.0) -> tuple[Response, Response]:
    """Chosen and rejected among valid responses (``max_min`` when ρ = 0, else length control).

    Band edges are inclusive, with a tolerance of 1e-9 relative to the score scale so that a score
    exactly on ``(1-ρ)·max + ρ·min`` is not lost to rounding.
    """
    if rho == 0:
        return _top(resps), _bottom(resps)
    hi = max(x.score for x in resps)
    lo = min(x.score for x in resps)
    eps = 1e-9 * max(1.0, abs(hi), abs(lo))
    top_edge = (1 - rho) * hi + rho * lo
    bottom_edge = (1 - rho) * lo + rho * hi
    top = [x for x in resps if x.score >= top_edge - eps]
    bottom = [x for x in resps if x.score <= bottom_edge + eps]
    chosen = min(top, key=lambda x: (x.length, -x.score, x.var, x.index))
    rejected = min(bottom, key=lambda x: (-x.length, x.score, x.var, x.index))
    return chosen, rejected


def pair_problem(chosen: Response, rejected: Response, min_margin: float) -> str | None:
    """Why a chosen/rejected pair is unusable (a bad-sample reason), or None when it is fine.

    In this order: margin ≤ 0 → ``band_overlap``; margin < ``min_margin`` → ``margin`` (a margin
    equal to ``min_margin`` is kept); same text → ``identical``.
    """
    margin = chosen.score - rejected.score
    if margin <= 0:
        return "band_overlap"
    if margin < min_margin:
        return "margin"
    return "identical" if chosen.text == rejected.text else None


# --------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class PairOptions:
    """Resolved options every strategy receives (one iteration: ``rho`` is a single number)."""

    rho: float = 0.0
    min_margin: float = 0.0
    include_unfinished: bool = False
    group_key: str = "id"
    max_pairs_per_group: int | None = None
    max_pairs: int | None = None
    seed: int = 0
    min_score: float | None = None


@dataclass(frozen=True)
class Candidates:
    """One prompt's valid responses: ``rid`` = output id (record ``id``, else its position)."""

    record: dict
    rid: Any
    responses: list[Response]
    unit: str  # "tokens" or "chars"


class Pick(NamedTuple):
    """One output: ``rejected`` None = an SFT record (best-of-n); ``id`` = the output record id."""

    chosen: Response
    rejected: Response | None
    id: Any


Entry = tuple[Candidates, Pick]
SelectFn = Callable[[Candidates, PairOptions], "list[Pick] | str"]
FinalizeFn = Callable[[list[Entry], PairOptions], "tuple[list[Entry], dict[str, Any]]"]


@dataclass(frozen=True)
class PairStrategy:
    """A registered strategy.

    ``select(candidates, options)`` returns a non-empty list of picks or a bad-sample reason. It
    only sees prompts with at least ``min_valid`` valid responses and, when ``needs_spread``, not
    all of the same score (the others are counted as ``too_few_valid`` / ``all_equal`` for it).
    ``finalize(entries, options)``, when given, sees every pick of the run and returns the ones to
    keep plus extra statistics. ``uses_rho``: ``rho`` may be non-zero only for such strategies.
    """

    name: str
    select: SelectFn
    min_valid: int = 2
    needs_spread: bool = True
    uses_rho: bool = False
    finalize: FinalizeFn | None = None


_STRATEGIES: dict[str, PairStrategy] = {}


def register_pair_strategy(name: str, *, min_valid: int = 2, needs_spread: bool = True,
                           uses_rho: bool = False, finalize: FinalizeFn | None = None
                           ) -> Callable[[SelectFn], SelectFn]:
    """Decorator: register a select function as the pair strategy ``name`` (see :class:`PairStrategy`)."""

    def deco(fn: SelectFn) -> SelectFn:
        if name in _STRATEGIES:
            raise ValueError(f"pair strategy {name!r} is already registered")
        _STRATEGIES[name] = PairStrategy(name, fn, min_valid, needs_spread, uses_rho, finalize)
        return fn

    return deco


def pair_strategy_names() -> tuple[str, ...]:
    """Names of the registered strategies, in registration order (the one list of valid names)."""
    return tuple(_STRATEGIES)


def unknown_strategy_message(name: Any) -> str:
    """``unknown strategy 'x'; did you mean 'y'? (expected one of ...)`` (closest name by difflib)."""
    close = difflib.get_close_matches(str(name), list(_STRATEGIES), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown strategy {name!r}{hint} (expected one of {', '.join(_STRATEGIES)})"


def get_pair_strategy(name: str) -> PairStrategy:
    """The strategy registered as ``name``; else a one-line ConfigError naming the closest name."""
    if not isinstance(name, str) or name not in _STRATEGIES:
        raise ConfigError(f"pair.strategy: {unknown_strategy_message(name)}")
    return _STRATEGIES[name]


def rho_strategy_names() -> str:
    """The strategies that use ``rho``, comma-separated (for error messages)."""
    return ", ".join(s.name for s in _STRATEGIES.values() if s.uses_rho) or "no"


# ------------------------------------------------------------------------------------- strategies
@register_pair_strategy("max_min")
def _max_min(c: Candidates, o: PairOptions) -> list[Pick] | str:
    """One pair per prompt: a top-score response vs a bottom-score one; ties → lowest judge
    variance (``score_var``; missing = 0), then position."""
    chosen, rejected = select_pair(c.responses, 0.0)
    return pair_problem(chosen, rejected, o.min_margin) or [Pick(chosen, rejected, c.rid)]


@register_pair_strategy("length_control", uses_rho=True)
def _length_control(c: Candidates, o: PairOptions) -> list[Pick] | str:
    """Length-controlled pair: ρ = 0 is max_min; ρ > 0: the SHORTEST response scoring in the top band
    ``[(1-ρ)·max + ρ·min, max]`` vs the LONGEST in the bottom band ``[min, (1-ρ)·min + ρ·max]``.

    Length ties: the chosen prefers the higher score, the rejected the lower; then variance, position.
    """
    chosen, rejected = select_pair(c.responses, o.rho)
    return pair_problem(chosen, rejected, o.min_margin) or [Pick(chosen, rejected, c.rid)]


def _cap_all_pairs(entries: list[Entry], o: PairOptions) -> tuple[list[Entry], dict[str, Any]]:
    """Group picks by ``group_key`` (a dotted record path, first-seen order), keep at most
    ``max_pairs_per_group`` per group (sampled with ``Random(f"{seed}:{group}")``), then at most
    ``max_pairs`` in all (``Random(seed)``); kept picks stay in order. Adds ``dropped_by_cap``."""
    groups: dict[Any, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(_lookup(entry[0].record, o.group_key), []).append(entry)
    kept: list[Entry] = []
    dropped = 0
    for gkey, items in groups.items():
        if o.max_pairs_per_group is not None and len(items) > o.max_pairs_per_group:
            keep = sorted(random.Random(f"{o.seed}:{gkey}").sample(range(len(items)), o.max_pairs_per_group))
            dropped += len(items) - len(keep)
            items = [items[k] for k in keep]
        kept.extend(items)
    if o.max_pairs is not None and len(kept) > o.max_pairs:
        keep = sorted(random.Random(o.seed).sample(range(len(kept)), o.max_pairs))
        dropped += len(kept) - len(keep)
        kept = [kept[k] for k in keep]
    return kept, {"dropped_by_cap": dropped}


@register_pair_strategy("all_pairs", finalize=_cap_all_pairs)
def _all_pairs(c: Candidates, o: PairOptions) -> list[Pick] | str:
    """Every pair of valid responses with different scores (the higher one chosen), id
    ``"{id}/{chosen}-{rejected}"``; then capped per group and in total.

    A prompt with no usable pair is bad for ``margin`` if any pair missed ``min_margin``, else for
    ``identical``.
    """
    picks: list[Pick] = []
    reason = "all_equal"
    for a, x in enumerate(c.responses):
        for y in c.responses[a + 1:]:
            if x.score == y.score:
                continue
            hi, lo = (x, y) if x.score > y.score else (y, x)
            problem = pair_problem(hi, lo, o.min_margin)
            if problem is None:
                picks.append(Pick(hi, lo, f"{c.rid}/{hi.index}-{lo.index}"))
            elif problem == "margin" or reason == "all_equal":
                reason = problem
    return picks or reason


@register_pair_strategy("best_of_n", min_valid=1, needs_spread=False)
def _best_of_n(c: Candidates, o: PairOptions) -> list[Pick] | str:
    """Rejection sampling: the top-score response of each prompt (ties as in max_min) as an SFT
    record, only if it scores at least ``min_score`` when that is set."""
    best = _top(c.responses)
    if o.min_score is not None and best.score < o.min_score:
        return "below_min_score"
    return [Pick(best, None, c.rid)]
