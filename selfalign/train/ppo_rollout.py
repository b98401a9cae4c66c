"""PPO rollouts: prompts → sampled responses (token ids) → padded tensors → log-probs, values.

Layout of a rollout batch (``N`` responses): ``input_ids`` [N, P + T] = the prompt **left-padded** to
``P`` tokens, then the response **right-padded** to ``T`` tokens, as the generation engine saw them;
``position_ids`` count real tokens only. Response token ``t`` sits at column ``P + t`` and is predicted
by the hidden state at column ``P + t − 1``, which also gives the critic's value of that state.
``response_mask`` [N, T] marks real response tokens. Every tensor lives on the models' device.

The models are run through their backbone (``model.model`` of a causal LM): the LM head and the value
head see only the ``T`` hidden states that predict response tokens, never the prompt's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from selfalign.errors import DataError
from selfalign.train import losses, rl_losses
from selfalign.train.data import DataStats, fit


# ------------------------------------------------------------------------------------------ prompts
@dataclass
class PromptExample:
    """A prompt record with its token ids (after truncation)."""

    record: dict
    ids: list[int]

    @property
    def length(self) -> int:
        return len(self.ids)

    @property
    def num_tokens(self) -> int:
        return len(self.ids)


@dataclass
class PromptStats(DataStats):
    """What happened to the records of one prompt file (``unscorable``: no reward source applies)."""

    unscorable: int = 0


def load_prompt_examples(path: str, tokenizer, cfg, applicable) -> tuple[list[PromptExample], PromptStats]:
    """Read and tokenise a prompt file for PPO (any format ``selfalign.data`` reads).

    Prompts keep their last ``max_length − max_new_tokens`` tokens (``max_prompt_length`` first), or are
    dropped with ``truncation: drop``; prompts a reward source cannot score (``applicable``) are dropped
    and counted. No usable prompt → :class:`DataError` naming the file.
    """
    from selfalign.data.chat import encode_prompt
    from selfalign.data.formats import iter_normalized

    budget = cfg.max_length - cfg.generation.max_new_tokens
    stats = PromptStats()
    out: list[PromptExample] = []
    why: dict[str, int] = {}
    for _line, rec, _file in iter_normalized(path, "prompt", prompt_key=cfg.prompt_key):
        stats.read += 1
        key = applicable(rec)
        if key is not None:
            stats.unscorable += 1
            why[key] = why.get(key, 0) + 1
            continue
        ids = encode_prompt(tokenizer, rec["prompt"])
        res = fit(ids, [[0]], budget + 1, cfg.max_prompt_length, "drop" if cfg.truncation == "drop" else "left")
        if res is None:
            stats.dropped_too_long += 1
            continue
        ids, _, cut = res
        stats.truncated += int(cut)
        out.append(PromptExample({"id": str(rec["id"]), "prompt": rec["prompt"], "meta": rec.get("meta") or {}},
                                 ids))
    stats.used = len(out)
    if not out:
        if stats.read == 0:
            raise DataError("no records: the dataset is empty (expected prompts)", path)
        notes = [f"{stats.dropped_too_long} longer than max_length − max_new_tokens ({budget} tokens) with "
                 "truncation=drop"] + [f"{n} that {k} cannot score (no meta.checks / meta.answer; set "
                                       f"{k}.none_score to keep them)" for k, n in why.items()]
        raise DataError(f"no usable prompts among {stats.read} records ({'; '.join(notes)})", path)
    return out, stats


# ------------------------------------------------------------------------------------------- models
def model_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``(backbone, lm_head)`` of a causal LM (inside its peft wrapper, adapters still active)."""
    get_base = getattr(model, "get_base_model", None)
    inner = get_base() if callable(get_base) else model
    backbone = getattr(inner, inner.base_model_prefix)
    return backbone, inner.get_output_embeddings()


def response_hidden(backbone: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Hidden states [N, T, H] at the columns that predict the response tokens."""
    out = backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"], use_cache=False)
    hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    P, T = batch["prompt_width"], batch["response_mask"].shape[1]
    return hidden[:, P - 1:P - 1 + T]


def policy_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor], temperature: float,
                 with_entropy: bool = False, value_head: torch.nn.Module | None = None,
                 entropy_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(log π(response tokens) [N, T] fp32, entropy [N, T] or None, values [N, T] or None)``.

    Log-probs come from ``logits / temperature`` (the distribution the rollout sampled from, before
    top-k/top-p); ``value_head`` (shared critic) reads the same hidden states. ``entropy_grad=False``
    computes the entropy without an autograd graph (a metric only).
    """
    backbone, head = model_parts(model)
    hidden = response_hidden(backbone, batch)
    logits = head(hidden)
    if temperature != 1.0:
        logits = logits / temperature
    mask = batch["response_mask"]
    logp = losses.token_logps(logits, batch["response_ids"], mask)
    ent = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            ent = rl_losses.entropy_from_logits(logits if entropy_grad else logits.detach(), mask)
    values = value_head(hidden).squeeze(-1).float() * mask.to(torch.float32) if value_head is not None else None
    return logp, ent, values


class ValueModel(torch.nn.Module):
    """Critic: a transformer backbone and a new linear value head (zero-initialised: V = 0 at the start).

    ``forward(batch) -> values [N, T]`` (fp32) at the states that predict each response token.
    """

    def __init__(self, backbone: torch.nn.Module, hidden_size: int):
        super().__init__()
        self.backbone = backbone
        self.value_head = new_value_head(hidden_size, next(backbone.parameters()))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = response_hidden(self.backbone, batch)
        return self.value_head(hidden).squeeze(-1).float() * batch["response_mask"].to(torch.float32)


def new_value_head(hidden_size: int, like: torch.Tensor) -> torch.nn.Linear:
    """A ``Linear(hidden, 1)`` with zero weight and bias, on ``like``'s device and dtype."""
    head = torch.nn.Linear(hidden_size, 1, device=like.device, dtype=like.dtype)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head


# ------------------------------------------------------------------------------------------ rollout
@dataclass
class Rollout:
    """One step's responses: tensors (see the module docstring) and per-response Python values."""

    tensors: dict[str, torch.Tensor]
    prompt_width: int
    records: list[dict]
    texts: list[str]
    finished: list[bool]
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.texts)

    def lengths(self) -> list[int]:
        return self.tensors["response_mask"].sum(-1).tolist()

    def batch(self, rows: list[int] | None = None, keys: tuple[str, ...] = ()) -> dict[str, Any]:
        """The model inputs (plus ``keys``) of ``rows``, trimmed to their own padding."""
        t = self.tensors
        idx = torch.arange(self.size, device=t["input_ids"].device) if rows is None else \
            torch.tensor(rows, dtype=torch.long, device=t["input_ids"].device)
        P = self.prompt_width
        am = t["attention_mask"][idx]
        left = int((am[:, :P].sum(-1)).max())  # longest real prompt among the rows
        width = max(1, int(t["response_mask"][idx].sum(-1).max()))
        cols = slice(P - left, P + width)
        out: dict[str, Any] = {"input_ids": t["input_ids"][idx, cols], "attention_mask": am[:, cols],
                               "position_ids": t["position_ids"][idx, cols], "prompt_width": left,
                               "response_ids": t["response_ids"][idx, :width],
                               "response_mask": t["response_mask"][idx, :width]}
        for k in keys:
            out[k] = t[k][idx, :width]
        return out


def encode_rollout(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device
                   ) -> tuple[dict[str, torch.Tensor], int]:
    """Pad prompts (left) and responses (right) into the rollout tensors; returns ``(tensors, P)``."""
    P = max(len(p) for p in prompts)
    T = max(len(r) for r in responses)
    n = len(prompts)
    ids = torch.full((n, P + T), pad_id, dtype=torch.long, device="cpu")
    am = torch.zeros((n, P + T), dtype=torch.long, device="cpu")
    rmask = torch.zeros((n, T), dtype=torch.long, device="cpu")
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        ids[i, P - len(p):P] = torch.tensor(p, dtype=torch.long, device="cpu")
        ids[i, P:P + len(r)] = torch.tensor(r, dtype=torch.long, device="cpu")
        am[i, P - len(p):P + len(r)] = 1
        rmask[i, :len(r)] = 1
    pos = (am.cumsum(-1) - 1).clamp(min=0)
    tensors = {"input_ids": ids, "attention_mask": am, "position_ids": pos, "response_ids": ids[:, P:].clone(),
               "response_mask": rmask}
    return {k: v.to(device) for k, v in tensors.items()}, P


def generate_rollout(engine, prompts: list[PromptExample], params, step: int, pad_id: int, device) -> Rollout:
    """Sample ``params.num_samples`` responses per prompt with the batched engine (seeded per prompt id
    and step, so a resumed run samples the same tokens) and pad them into a :class:`Rollout`."""
    import time

    from selfalign.generation.hf import parse_row, row_seed

    rows, seeds, records = [], [], []
    for p in prompts:
        for k in range(params.num_samples):
            rows.append(p.ids)
            seeds.append(row_seed(params.seed, f"{step}\x1f{p.record['id']}", k))
            records.append(p.record)
    t0 = time.perf_counter()
    gen = engine.generate_ids(rows, seeds, params)
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    eos = set(engine.eos_ids)
    end = eos | {engine.pad_id}
    texts, finished, responses = [], [], []
    for g in gen:
        parsed = parse_row(engine.tokenizer, g, eos, end, params.stop)
        texts.append(parsed["text"])
        finished.append(parsed["finish"] == "stop")
        responses.append(list(g[:max(1, parsed["num_tokens"])]))  # ≥ 1 token: the score needs a position
    tensors, P = encode_rollout(rows, responses, pad_id, device)
    return Rollout(tensors, P, records, texts, finished, seconds, {"generated_tokens": sum(len(g) for g in gen)})


@torch.no_grad()
def forward_rollout(rollout: Rollout, micro: int, fn, autocast) -> list[torch.Tensor]:
    """Run ``fn(batch) -> tuple of [n, t] tensors`` over the rollout in micro-batches of ``micro`` rows and
    stitch each output back into ``[N, T]`` (0 on padding)."""
    N, T = rollout.tensors["response_mask"].shape
    outs: list[torch.Tensor] | None = None
    for s in range(0, N, micro):
        rows = list(range(s, min(N, s + micro)))
        b = rollout.batch(rows)
        with autocast():
            parts = fn(b)
        if outs is None:
            outs = [torch.zeros((N, T), dtype=torch.float32, device=p.device) for p in parts]
        for o, p in zip(outs, parts, strict=True):
            o[s:s + len(rows), :p.shape[1]] = p.float()
    return outs or []
