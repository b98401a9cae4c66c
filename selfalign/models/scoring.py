"""Next-token scoring with a causal LM: log-probabilities of single-token answers after a context.

LLM judges read a verdict from the model's next-token distribution (e.g. P("1") … P("5") after
``"Score: "``): :func:`answer_logprobs` finds the answer tokens (:func:`continuation_ids`) and runs
one batched forward pass per context (:func:`next_token_logprobs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from selfalign.errors import ConfigError
from selfalign.models.batching import padded_batches
from selfalign.models.forward import cache_kwarg, output_cache


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
                    with_top: bool = False, groups: Sequence[Sequence[int]] | None = None) -> torch.Tensor:
    """Log-probs ``[len(contexts), len(answers)]`` (plus the top log-prob column with ``with_top``)
    of each single-token answer right after each context, with a progress bar.

    Every context must end with the same answer prefix (e.g. ``"Score: "``): the answer token ids
    are found once from ``contexts[0]`` (:func:`continuation_ids`); when the tokenizer glues the
    prefix's trailing whitespace to the answer, that whitespace is cut from every context.
    ``groups`` (lists of context indices that share a long common start, e.g. one pair under every
    principle) run that start once per group (:func:`shared_prefix_logprobs`: same numbers, a fraction
    of the compute); ignored with ``with_top``.
    """
    from selfalign.utils.progress import Bar

    if not contexts:
        return torch.empty((0, len(answers) + int(with_top)), device="cpu")
    ctx0, ids = continuation_ids(tokenizer, contexts[0], list(answers), add_special_tokens)
    if ctx0 != contexts[0]:
        cut = len(contexts[0]) - len(ctx0)
        contexts = [c[:-cut] for c in contexts]
    with Bar(label, total=len(contexts), unit="pass") as bar:
        if groups is not None and not with_top:
            return shared_prefix_logprobs(model, tokenizer, contexts, ids, groups, batch_size,
                                          add_special_tokens, on_batch=bar.advance)
        return next_token_logprobs(model, tokenizer, contexts, ids, batch_size, add_special_tokens,
                                   on_batch=bar.advance, with_top=with_top)


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common token prefix of ``seqs``, leaving every sequence ≥ 1 token after it."""
    n = max(min(len(s) for s in seqs) - 1, 0)
    first = seqs[0]
    for k in range(n):
        if any(s[k] != first[k] for s in seqs[1:]):
            return k
    return n


def shared_prefix_logprobs(model: Any, tokenizer: Any, texts: Sequence[str], token_ids: Sequence[int],
                           groups: Sequence[Sequence[int]], batch_size: int = 8, add_special_tokens: bool = False,
                           on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """:func:`next_token_logprobs` for texts in ``groups`` that share a token prefix: per group, the
    common prefix (length ``L``) runs once with the KV cache on, then the suffixes run in batches of
    ``batch_size`` on a copy of that cache (right padding, positions ``L..``, so padding never precedes
    a real token). Every text must be in exactly one group. Cost per group: ``L + Σ suffix`` tokens
    instead of ``n·L + Σ suffix``; the result equals the ungrouped one up to float rounding.
    """
    enc = [list(tokenizer(t, add_special_tokens=add_special_tokens)["input_ids"]) for t in texts]
    if sorted(i for g in groups for i in g) != list(range(len(texts))):
        raise ValueError("groups must cover every text exactly once")
    device = next(model.parameters()).device
    cand = torch.tensor(list(token_ids), dtype=torch.long, device="cpu")
    out = torch.empty((len(texts), len(cand)), dtype=torch.float32, device="cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for g in groups:
                g = list(g)
                L = common_prefix_len([enc[i] for i in g])
                cache = None
                if L:
                    prefix = torch.tensor([enc[g[0]][:L]], device=device)
                    cache = output_cache(model(input_ids=prefix, use_cache=True))
                for k in range(0, len(g), batch_size):
                    rows = g[k:k + batch_size]
                    logits = _suffix_last_logits(model, [enc[i][L:] for i in rows], L, cache, device)
                    out[torch.tensor(rows, device="cpu")] = torch.log_softmax(logits, dim=-1).cpu()[:, cand]
                    if on_batch is not None:
                        on_batch(len(rows))
    finally:
        model.train(was_training)
    return out


def _suffix_last_logits(model: Any, suffixes: list[list[int]], L: int, cache: Any, device) -> torch.Tensor:
    """Logits [b, V] at the last real token of each suffix, run after a cached prefix of length L."""
    import copy

    b, S = len(suffixes), max(len(s) for s in suffixes)
    ids = torch.zeros((b, S), dtype=torch.long, device="cpu")
    mask = torch.zeros((b, L + S), dtype=torch.long, device="cpu")
    mask[:, :L] = 1
    for r, s in enumerate(suffixes):
        ids[r, :len(s)] = torch.tensor(s, dtype=torch.long, device="cpu")
        mask[r, L:L + len(s)] = 1
    kw: dict[str, Any] = {}
    if cache is not None:
        c = copy.deepcopy(cache)
        c.batch_repeat_interleave(b)
        kw[cache_kwarg(model)] = c
    pos = torch.arange(L, L + S, device=device).unsqueeze(0).expand(b, S)
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos,
                   use_cache=cache is not None, **kw).logits
    last = torch.tensor([len(s) - 1 for s in suffixes], device=logits.device)
    return logits[torch.arange(b, device=logits.device), last].float()


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
    cand = torch.tensor(list(token_ids), dtype=torch.long, device="cpu")
    out = torch.empty((len(texts), len(cand) + int(with_top)), dtype=torch.float32, device="cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx, ids, mask in padded_batches(enc, batch_size, pad, left=True):
                logits = _forward_last_logits(model, ids.to(device), mask.to(device))
                logp = torch.log_softmax(logits, dim=-1).cpu()
                rows = logp[:, cand]
                if with_top:
                    rows = torch.cat([rows, logp.max(-1, keepdim=True).values], dim=-1)
                out[torch.tensor(idx, device="cpu")] = rows
                if on_batch is not None:
                    on_batch(len(idx))
    finally:
        model.train(was_training)
    return out
