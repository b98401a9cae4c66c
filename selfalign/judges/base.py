"""The judge interface shared by every judge, its statistics, and the registry of judge types.

A judge reads **candidate records** and returns **scored records** (or, for the meta-judge,
preference records). Every judge is a subclass of :class:`Judge`:

* ``name`` — shown in statistics tables (defaults to the config ``type``);
* ``output_kind`` — ``"scored"`` (candidates + scores) or ``"preferences"`` (meta-judge);
* ``score_records(records) -> list[dict]`` — returns NEW records (inputs are not mutated);
* ``stats() -> dict`` — what happened: parse-failure rate, score histogram, tie rate, and for
  pairwise judges the position-consistency rate (see :meth:`JudgeStats.as_dict`);
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
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from selfalign.config import StrictModel, format_validation_error
from selfalign.errors import ConfigError, DataError

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
    import re

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


# ------------------------------------------------------------------------------------------ stats
@dataclass
class JudgeStats:
    """Counters a judge fills while it works; :meth:`as_dict` turns them into rates.

    * ``judgements`` — individual judge outputs (one sample, one forward pass, one comparison order);
    * ``parse_failures`` — judgements that yielded no valid score;
    * ``unscored`` — responses left with ``score=None``;
    * ties — pointwise judges: records with ≥2 scored responses whose scores are all equal
      (:meth:`add_record_scores`); pairwise judges: comparisons with preference 0
      (:meth:`add_comparison`);
    * position consistency — pairwise only: comparisons where both orders pick the same winner.
    """

    judge: str
    score_range: tuple[float, float] | None = None
    records: int = 0
    responses: int = 0
    judgements: int = 0
    parse_failures: int = 0
    unscored: int = 0
    scores: list[float] = field(default_factory=list)
    tie_groups: int = 0
    ties: int = 0
    comparisons: int = 0
    consistent: int = 0
    extra: dict[str, list[float]] = field(default_factory=dict)

    def add_judgement(self, parsed: bool) -> None:
        self.judgements += 1
        if not parsed:
            self.parse_failures += 1

    def add_response(self, score: float | None) -> None:
        self.responses += 1
        if score is None:
            self.unscored += 1
        else:
            self.scores.append(float(score))

    def add_record_scores(self, scores: Sequence[float | None]) -> None:
        """Count one record; a tie group when ≥2 responses are scored, a tie when all are equal."""
        self.records += 1
        valid = [s for s in scores if s is not None]
        if len(valid) >= 2:
            self.tie_groups += 1
            if max(valid) == min(valid):
                self.ties += 1

    def add_comparison(self, preference: int) -> None:
        """One both-order pairwise comparison; ``preference`` 1/2 = consistent winner, 0 = none."""
        self.comparisons += 1
        if preference in (1, 2):
            self.consistent += 1
        else:
            self.ties += 1
        self.tie_groups += 1

    def observe(self, key: str, value: float) -> None:
        """Record a judge-specific value (e.g. ``valid_mass``); reported as its mean."""
        self.extra.setdefault(key, []).append(float(value))

    def histogram(self, max_distinct: int = 21, bins: int = 10) -> dict[str, int]:
        """Score counts: one bucket per value when scores are few distinct integers, else ``bins``
        equal-width buckets over the score range (or the observed range)."""
        if not self.scores:
            return {}
        distinct = set(self.scores)
        if len(distinct) <= max_distinct and all(float(s).is_integer() for s in distinct):
            counts = Counter(self.scores)
            return {_fmt(v): counts[v] for v in sorted(counts)}
        lo, hi = self.score_range if self.score_range else (min(self.scores), max(self.scores))
        lo, hi = min(lo, min(self.scores)), max(hi, max(self.scores))
        if hi <= lo:
            return {_fmt(lo): len(self.scores)}
        width = (hi - lo) / bins
        counts = [0] * bins
        for s in self.scores:
            counts[min(int((s - lo) / width), bins - 1)] += 1
        return {f"[{_fmt(lo + i * width)},{_fmt(lo + (i + 1) * width)}{']' if i == bins - 1 else ')'}": c
                for i, c in enumerate(counts)}

    def as_dict(self) -> dict[str, Any]:
        n = len(self.scores)
        mean = sum(self.scores) / n if n else None
        std = math.sqrt(sum((s - mean) ** 2 for s in self.scores) / n) if n else None
        out: dict[str, Any] = {
            "judge": self.judge,
            "records": self.records,
            "responses": self.responses,
            "judgements": self.judgements,
            "parse_failures": self.parse_failures,
            "parse_failure_rate": _rate(self.parse_failures, self.judgements),
            "unscored_responses": self.unscored,
            "unscored_rate": _rate(self.unscored, self.responses),
            "score_mean": mean,
            "score_std": std,
            "score_histogram": self.histogram(),
            "tie_rate": _rate(self.ties, self.tie_groups),
        }
        if self.comparisons:
            out["comparisons"] = self.comparisons
            out["position_consistency"] = _rate(self.consistent, self.comparisons)
        for key, values in self.extra.items():
            out[f"{key}_mean"] = sum(values) / len(values) if values else None
        return out


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.3g}"


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


def register_judge(type_name: str, config_cls: type[JudgeConfig]) -> Callable[[type[Judge]], type[Judge]]:
    """Class decorator: make ``type_name`` buildable by :func:`build_judge`."""

    def deco(cls: type[Judge]) -> type[Judge]:
        cls.type = type_name
        cls.config_cls = config_cls
        _REGISTRY[type_name] = (config_cls, cls)
        return cls

    return deco


def _lookup(type_name: str) -> tuple[type[JudgeConfig], type[Judge]]:
    if type_name not in _REGISTRY:
        module = JUDGE_MODULES.get(type_name)
        if module is None:
            raise ConfigError(f"judge.type: unknown judge type {type_name!r}; expected one of "
                              f"{', '.join(sorted(set(JUDGE_MODULES) | set(_REGISTRY)))}")
        importlib.import_module(module)
        if type_name not in _REGISTRY:
            raise ConfigError(f"judge.type: module {module} did not register judge {type_name!r}")
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
    cfg_cls, _ = _lookup(str(type_name))
    from pydantic import ValidationError, create_model

    try:
        return cfg_cls.model_validate(data)
    except ValidationError:
        # re-validate nested under ``key`` so the message names the full key path (judge.mode)
        wrapper = create_model("JudgeSection", __base__=StrictModel, **{key: (cfg_cls, ...)})
        try:
            wrapper.model_validate({key: data})
        except ValidationError as err:
            raise ConfigError(format_validation_error(err, wrapper, source)) from None
        raise


def build_judge(cfg: dict | JudgeConfig, *, model: Any = None, tokenizer: Any = None) -> Judge:
    """Build a judge from its config (a mapping with ``type`` or a validated config)."""
    cfg = parse_judge_config(cfg)
    _, cls = _lookup(cfg.type)
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
        r = dict(resp)
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


# -------------------------------------------------------------------------------------- templates
def resources_dir() -> Path:
    """Folder of the templates and principle lists shipped with selfalign."""
    return Path(__file__).resolve().parent.parent / "resources"


def load_template(name_or_path: str, required: Sequence[str] = (), kind: str = "templates") -> str:
    """Text of a template: a file path, or the name of one shipped under ``resources/<kind>/``.

    ``required`` placeholders (e.g. ``("{prompt}", "{response}")``) must all occur in it.
    """
    p = Path(name_or_path).expanduser()
    if not p.is_file():
        shipped = resources_dir() / kind / f"{name_or_path}.txt"
        if not shipped.is_file():
            names = sorted(f.stem for f in (resources_dir() / kind).glob("*.txt"))
            raise ConfigError(f"template {name_or_path!r}: no such file and not a shipped template "
                              f"(shipped: {', '.join(names)})")
        p = shipped
    text = p.read_text(encoding="utf-8")
    missing = [ph for ph in required if ph not in text]
    if missing:
        raise ConfigError(f"{p}: template lacks the placeholder(s) {', '.join(missing)}")
    return text


def fill_template(template: str, **values: str) -> str:
    """Replace ``{name}`` placeholders by ``values`` in one pass (braces elsewhere are kept as-is,
    and braces inside the values are never interpreted)."""
    if not values:
        return template
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return pattern.sub(lambda m: str(values[m.group(0)[1:-1]]), template)


def prompt_text(prompt: Any) -> str:
    """A prompt as plain text for a judge template: a string as-is, a single user message as its
    content, a longer conversation as ``Role: content`` paragraphs."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        if len(prompt) == 1 and isinstance(prompt[0], dict):
            return str(prompt[0].get("content", ""))
        return "\n\n".join(f"{str(m.get('role', '')).capitalize()}: {m.get('content', '')}" for m in prompt)
    raise DataError(f"prompt must be a string or a message list (got {type(prompt).__name__})", key="prompt")


# ------------------------------------------------------------------------------------ judge model
def load_judge_lm(spec: str | None, model: Any = None, tokenizer: Any = None, dtype: str = "float32",
                  device: str | None = None) -> tuple[Any, Any]:
    """(model, tokenizer) for an LLM judge: the ones passed in, else loaded from ``spec``."""
    if model is not None:
        if tokenizer is None:
            raise ConfigError("a judge given a loaded model also needs its tokenizer")
        return model, tokenizer
    if not spec:
        raise ConfigError("judge.model: required (a registry name, model folder or hub id)")
    from selfalign.models.load import load_causal_lm, load_tokenizer
    from selfalign.utils.progress import status

    with status(f"loading judge model {spec}"):
        tok = tokenizer if tokenizer is not None else load_tokenizer(spec)
        lm = load_causal_lm(spec, dtype=dtype, device=device)
    return lm, tok


def render_user_turn(tokenizer: Any, text: str) -> tuple[str, bool]:
    """``text`` as one user turn followed by the assistant's generation prompt (chat template when
    the tokenizer has one); returns (rendered text, add_special_tokens when encoding)."""
    from selfalign.data.chat import has_chat_template, render_prompt

    if has_chat_template(tokenizer):
        return render_prompt(tokenizer, [{"role": "user", "content": text}]), False
    return text + "\n\n", True


def continuation_ids(tokenizer: Any, context: str, continuations: Sequence[str],
                     add_special_tokens: bool = False) -> tuple[str, list[int]]:
    """Token ids such that ``context`` followed by ``continuations[i]`` is ``context`` + one token.

    Tries ``context`` as given, then with its trailing whitespace moved onto the continuations
    (tokenizers that glue a space to the next word). Returns (context to use, ids) or raises
    :class:`ConfigError` when a continuation is not a single token after the context.
    """
    tries = [(context, list(continuations))]
    stripped = context.rstrip()
    if stripped != context:
        ws = context[len(stripped):]
        tries.append((stripped, [ws + c for c in continuations]))
    for ctx, conts in tries:
        base = tokenizer(ctx, add_special_tokens=add_special_tokens)["input_ids"]
        ids = []
        for c in conts:
            full = tokenizer(ctx + c, add_special_tokens=add_special_tokens)["input_ids"]
            if len(full) == len(base) + 1 and full[:len(base)] == base:
                ids.append(full[-1])
            else:
                break
        if len(ids) == len(conts) and len(set(ids)) == len(ids):
            return ctx, ids
    raise ConfigError(f"the judge's answer tokens {list(continuations)!r} are not single distinct tokens "
                      f"after the prefix {context[-30:]!r} for this tokenizer; change the prefix")


def answer_logprobs(model: Any, tokenizer: Any, contexts: Sequence[str], answers: Sequence[str], *,
                    batch_size: int = 8, add_special_tokens: bool = False, label: str = "judging",
                    with_top: bool = False) -> torch.Tensor:
    """Log-probs ``[len(contexts), len(answers)]`` (plus the top log-prob column with ``with_top``)
    of each single-token answer right after each context, with a progress bar.

    Every context must end with the same answer prefix (e.g. ``"Score: "``): the answer token ids
    are found once from ``contexts[0]`` (:func:`continuation_ids`); when the tokenizer glues the
    prefix's trailing whitespace to the answer, that whitespace is cut from every context.
    """
    from selfalign.utils.progress import Bar

    if not contexts:
        return torch.empty((0, len(answers) + int(with_top)))
    ctx0, ids = continuation_ids(tokenizer, contexts[0], list(answers), add_special_tokens)
    if ctx0 != contexts[0]:
        cut = len(contexts[0]) - len(ctx0)
        contexts = [c[:-cut] for c in contexts]
    with Bar(label, total=len(contexts), unit="pass") as bar:
        return next_token_logprobs(model, tokenizer, contexts, ids, batch_size, add_special_tokens,
                                   on_batch=bar.advance, with_top=with_top)


def _forward_last_logits(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1)
    except TypeError:  # models without logits_to_keep
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    return out.logits[:, -1, :].float()


def next_token_logprobs(model: Any, tokenizer: Any, texts: Sequence[str], token_ids: Sequence[int],
                        batch_size: int = 8, add_special_tokens: bool = False,
                        on_batch: Callable[[int], None] | None = None,
                        with_top: bool = False) -> torch.Tensor:
    """Log-probabilities [len(texts), len(token_ids)] of ``token_ids`` as the next token after each
    text (log-softmax over the whole vocabulary, one forward pass per text, batched with left
    padding; texts sorted by length to limit padding). ``with_top`` appends one more column: the
    largest log-probability over the whole vocabulary (the model's own first choice)."""
    enc = [list(tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"]) for t in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    cand = torch.tensor(list(token_ids), dtype=torch.long)
    out = torch.empty((len(texts), len(cand) + int(with_top)), dtype=torch.float32)
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                width = max(len(enc[i]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    ids[row, width - len(enc[i]):] = torch.tensor(enc[i], dtype=torch.long)
                    mask[row, width - len(enc[i]):] = 1
                logits = _forward_last_logits(model, ids.to(device), mask.to(device))
                logp = torch.log_softmax(logits, dim=-1).cpu()
                rows = logp[:, cand]
                if with_top:
                    rows = torch.cat([rows, logp.max(-1, keepdim=True).values], dim=-1)
                out[torch.tensor(idx)] = rows
                if on_batch is not None:
                    on_batch(len(idx))
    finally:
        model.train(was_training)
    return out
