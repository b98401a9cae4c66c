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
                out[torch.tensor(idx)] = rows
                if on_batch is not None:
                    on_batch(len(idx))
    finally:
        model.train(was_training)
    return out
