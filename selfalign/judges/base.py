"""The judge interface shared by every judge, the scored-record helpers, and the registry of
judge types. Statistics are in :mod:`selfalign.judges.stats`, prompt templates in
:mod:`selfalign.judges.templates`, next-token scoring in :mod:`selfalign.models.scoring`.

A judge reads **candidate records** and returns **scored records** (or, for the meta-judge,
preference records). Every judge is a subclass of :class:`Judge`:

* ``name`` — shown in statistics tables (defaults to the config ``type``);
* ``output_kind`` — ``"scored"`` (candidates + scores) or ``"preferences"`` (meta-judge);
* ``score_records(records) -> list[dict]`` — returns NEW records (inputs are not mutated);
* ``stats() -> dict`` — what happened: parse-failure rate, score histogram, tie rate, and for
  pairwise judges the position-consistency rate (see :meth:`JudgeStats.as_dict`);
* ``cfg.max_parse_failure_rate`` (every judge, default 0.5) — above it :func:`check_parse_failures`
  warns loudly, and fails where the caller asks (``selfalign judge`` always does);
* ``from_config(cfg, model=None, tokenizer=None)`` — build from its validated config; a recipe may
  pass an already-loaded ``model`` + ``tokenizer`` (e.g. the policy judging itself).

Scored record format (candidates + per response)::

    {"id", "prompt", "meta", "responses": [
        {"text", "finish", "num_tokens",
         "score": float | None,          # None = no valid judgement; never becomes a label
         "score_var": float | None,      # population variance of the valid judgement scores
         "judgements": [ {"score": float | None, ...judge-specific keys...}, ... ]}]}

Each judgement is a dict holding at least ``"score"`` (float or None). Judge-specific keys:
``rubric`` sample mode ``{"text", "score"}``; expected mode ``{"score", "valid_mass", "probs"}``;
``reward_model`` ``{"score"}``; ``function`` whatever its checks report. Pairwise judges also add
a record-level ``"comparisons"`` list (see :mod:`selfalign.judges.pairwise_principle`).

Registry: ``build_judge(cfg)`` dispatches on ``cfg["type"]``. Judge modules are imported lazily
(only the one asked for), and each registers its class with :func:`register_judge`::

    @register_judge("function", FunctionJudgeConfig)
    class FunctionJudge(Judge): ...
"""

from __future__ import annotations

import importlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import Field

from selfalign.config import StrictModel, format_validation_error
from selfalign.distributed.config import DistributedConfig
from selfalign.errors import ConfigError, DataError, SelfalignError
from selfalign.judges.stats import JudgeStats

# type name -> module that defines (and registers) it; imported only when that type is used
JUDGE_MODULES: dict[str, str] = {
    "rubric": "selfalign.judges.rubric",
    "pairwise_principle": "selfalign.judges.pairwise_principle",
    "reward_model": "selfalign.judges.reward_model",
    "function": "selfalign.judges.function",
    "meta": "selfalign.judges.meta",
}

_REGISTRY: dict[str, tuple[type[JudgeConfig], type[Judge]]] = {}


def check_regex(value: str, what: str = "the regex") -> str:
    """Config validator: ``value`` compiles and has a capture group (else ValueError naming it)."""
    try:
        rx = re.compile(value)
    except re.error as e:
        raise ValueError(f"invalid regular expression: {e}") from None
    if rx.groups < 1:
        raise ValueError(f"{what} needs a capture group")
    return value


class JudgeConfig(StrictModel):
    """Fields every judge config has; each judge subclasses it with its own options."""

    type: str
    name: str | None = None  # label in statistics; defaults to ``type``
    max_parse_failure_rate: float = Field(
        0.5, ge=0.0, le=1.0, description="`selfalign judge` fails (and writes nothing) when more "
        "judgements than this fraction could not be parsed; in a recipe's judge stage a rate above it "
        "is a loud warning, and an error only when this key is set in the config")
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, exclude=True, description="backend: ray judges the records in "
        "chunks on num_workers Ray actors, each with its own copy of the judge (and its model)")


# ------------------------------------------------------------------------------------------ judge
class Judge(ABC):
    """Base class of every judge (see the module docstring for the contract)."""

    type: ClassVar[str] = ""
    output_kind: ClassVar[str] = "scored"
    config_cls: ClassVar[type[JudgeConfig]] = JudgeConfig

    def __init__(self, cfg: JudgeConfig):
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        self._stats = JudgeStats(self.name)

    @classmethod
    def from_config(cls, cfg: JudgeConfig, *, model: Any = None, tokenizer: Any = None) -> Judge:
        """Build the judge; ``model``/``tokenizer`` (already loaded) override ``cfg.model``."""
        return cls(cfg)

    @abstractmethod
    def score_records(self, records: list[dict]) -> list[dict]:
        """Judge ``records`` and return new records (scored, or preferences for the meta-judge)."""

    def stats(self) -> dict[str, Any]:
        """Statistics of everything this judge has scored so far."""
        return self._stats.as_dict()

    def reset_stats(self) -> None:
        self._stats = JudgeStats(self.name, self._stats.score_range)

    def stat_parts(self) -> dict[str, JudgeStats]:
        """Every statistics object of this judge (and of a judge it wraps as ``other``), by attribute path."""
        out = {k: v for k, v in vars(self).items() if isinstance(v, JudgeStats)}
        other = getattr(self, "other", None)
        if isinstance(other, Judge):
            out.update({f"other.{k}": v for k, v in other.stat_parts().items()})
        return out

    def merge_stat_parts(self, parts: dict[str, JudgeStats]) -> None:
        """Add the counters of another copy of this judge (:meth:`stat_parts`) to this one's."""
        mine = self.stat_parts()
        for k, v in parts.items():
            mine[k].merge(v)


def register_judge(type_name: str, config_cls: type[JudgeConfig]) -> Callable[[type[Judge]], type[Judge]]:
    """Class decorator: make ``type_name`` buildable by :func:`build_judge`."""

    def deco(cls: type[Judge]) -> type[Judge]:
        cls.type = type_name
        cls.config_cls = config_cls
        _REGISTRY[type_name] = (config_cls, cls)
        return cls

    return deco


def _lookup(type_name: str, key: str = "judge") -> tuple[type[JudgeConfig], type[Judge]]:
    if type_name not in _REGISTRY:
        module = JUDGE_MODULES.get(type_name)
        if module is None:
            raise ConfigError(f"{key}.type: unknown judge type {type_name!r}; expected one of "
                              f"{', '.join(sorted(set(JUDGE_MODULES) | set(_REGISTRY)))}")
        importlib.import_module(module)
        if type_name not in _REGISTRY:
            raise ConfigError(f"{key}.type: module {module} did not register judge {type_name!r}")
    return _REGISTRY[type_name]


def parse_judge_config(data: dict | JudgeConfig, source: str = "", key: str = "judge") -> JudgeConfig:
    """Validate a judge config mapping against the schema of its ``type`` (unknown keys are errors)."""
    if isinstance(data, JudgeConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{key}: expected a mapping with a 'type' key (got {type(data).__name__})")
    type_name = data.get("type")
    if not type_name:
        raise ConfigError(f"{key}.type: missing; expected one of {', '.join(sorted(JUDGE_MODULES))}")
    cfg_cls, _ = _lookup(str(type_name), key)
    from pydantic import ValidationError

    try:
        return cfg_cls.model_validate(data)
    except ValidationError as err:  # the message names the full key path (judge.mode)
        raise ConfigError(format_validation_error(err, cfg_cls, source, prefix=key)) from None


def build_judge(cfg: dict | JudgeConfig, *, model: Any = None, tokenizer: Any = None) -> Judge:
    """Build a judge from its config (a mapping with ``type`` or a validated config)."""
    cfg = parse_judge_config(cfg)
    _, cls = _lookup(cfg.type)
    if cfg.distributed.enabled:
        if model is not None:
            raise ConfigError("distributed: Ray actors load the judge's model themselves; give a model spec")
        from selfalign.distributed.actors import RayJudge

        return RayJudge(cfg)  # type: ignore[return-value]  (the Judge interface: score_records, stats, cfg)
    return cls.from_config(cfg, model=model, tokenizer=tokenizer)


# ---------------------------------------------------------------------------------------- helpers
def mean_var(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and population variance of the non-None values; ``(None, None)`` when there are none."""
    valid = [float(v) for v in values if v is not None]
    if not valid:
        return None, None
    m = sum(valid) / len(valid)
    return m, sum((v - m) ** 2 for v in valid) / len(valid)


def with_scores(record: dict, judgements: Sequence[Sequence[dict]], stats: JudgeStats | None = None) -> dict:
    """Copy ``record`` and set each response's ``judgements``, ``score`` (mean of valid judgement
    scores, None if none) and ``score_var``; update ``stats`` (responses, ties) when given."""
    out = dict(record)
    responses = []
    for resp, js in zip(record.get("responses", []), judgements, strict=True):
        score, var = mean_var([j.get("score") for j in js])
        r = {"text": resp} if isinstance(resp, str) else dict(resp)  # plain-string responses are accepted
        r["judgements"] = list(js)
        r["score"] = score
        r["score_var"] = var
        responses.append(r)
        if stats is not None:
            stats.add_response(score)
    out["responses"] = responses
    if stats is not None:
        stats.add_record_scores([r["score"] for r in responses])
    return out


def response_text(resp: Any) -> str:
    """The text of a response entry (a dict with ``text`` or a bare string)."""
    if isinstance(resp, str):
        return resp
    if isinstance(resp, dict) and isinstance(resp.get("text"), str):
        return resp["text"]
    raise DataError(f"response must be a string or a mapping with 'text' (got {type(resp).__name__})",
                    key="responses")


def worst_parse_failures(stats: dict[str, Any]) -> tuple[float, int]:
    """The highest ``parse_failure_rate`` in judge statistics (also in nested sub-judges' dicts,
    e.g. a combined function judge's ``other``) and its number of judgements; ``(0.0, 0)`` if none."""
    best = (0.0, 0)
    rate = stats.get("parse_failure_rate")
    if isinstance(rate, (int, float)):
        best = (float(rate), int(stats.get("judgements") or 0))
    for v in stats.values():
        if isinstance(v, dict):
            sub = worst_parse_failures(v)
            if sub[0] > best[0]:
                best = sub
    return best


def check_parse_failures(cfg: JudgeConfig, stats: dict[str, Any], fail: bool = True) -> str | None:
    """Compare the judge's parse-failure rate with ``cfg.max_parse_failure_rate``.

    Returns None when within the limit; else the warning text, after raising it as a
    :class:`SelfalignError` when ``fail``. Used by ``selfalign judge`` (fail) and the judge stage.
    """
    rate, n = worst_parse_failures(stats)
    limit = cfg.max_parse_failure_rate
    if n == 0 or rate <= limit:
        return None
    msg = (f"judge {cfg.name or cfg.type}: {rate:.0%} of {n} judgements could not be parsed (limit "
           f"max_parse_failure_rate={limit:g}); its scores are mostly missing. Try a judge mode that "
           "reads the verdict from the next-token distribution (rubric mode=expected), a larger judge "
           "model, or raise judge.max_parse_failure_rate")
    if fail:
        raise SelfalignError(msg)
    return msg
