"""Training losses as pure functions: tensors in, tensors out (imports only torch).

Conventions used throughout:

* ``B`` = batch size, ``T`` = sequence length, ``V`` = vocabulary size.
* **Labels are already aligned with the logits**: ``labels[b, t]`` is the token that
  ``logits[b, t]`` predicts. For a causal LM whose ``logits`` come from ``input_ids`` use
  :func:`shift_for_causal_lm` (``logits[:, :-1]`` predicts ``input_ids[:, 1:]``) or
  :func:`next_token_targets` (same targets, shifted labels instead of sliced logits).
* ``mask[b, t]`` is 1 for tokens that count (completion tokens), 0 elsewhere (prompt, padding);
  labels under a 0 mask may hold anything (e.g. ``-100``).
* Pairwise losses return **per-example** losses (shape ``[B]``), never reduced, so the caller
  decides how to normalise across micro-batches and processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo", "hinge", "scale", "rpo_sq", "rpo_fwd_kl", "rpo_bwd_kl")
_NEEDS_JUDGE = ("scale", "rpo_sq", "rpo_fwd_kl", "rpo_bwd_kl")


# ------------------------------------------------------------------------------------- log-probs
def shift_for_causal_lm(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align a causal LM's outputs with their targets.

    Shapes: ``logits`` [B, T, V], ``input_ids`` [B, T], ``mask`` [B, T] (1 on the tokens to
    score, i.e. completion tokens, in input positions). Returns ``(logits[:, :-1],
    input_ids[:, 1:], mask[:, 1:])`` — views, no copies.
    """
    return logits[:, :-1], input_ids[:, 1:], mask[:, 1:]


def next_token_targets(input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets aligned with the *unsliced* logits of a causal LM: ``labels[:, t] = input_ids[:, t+1]``.

    Shapes: ``input_ids``/``mask`` [B, T] → ``(labels, mask)`` [B, T], where the last position gets
    label 0 and mask 0. Equivalent to :func:`shift_for_causal_lm` but keeps ``logits`` whole, which
    avoids autograd materialising a zero-filled ``[B, T, V]`` gradient for the slice.
    """
    labels = torch.cat([input_ids[:, 1:], torch.zeros_like(input_ids[:, :1])], dim=1)
    mask = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
    return labels, mask


def completion_logits(model, input_ids: torch.Tensor, loss_mask: torch.Tensor, **model_kwargs
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run a causal LM and return ``(logits, labels, mask)`` for the positions that predict a
    completion token only.

    Only positions ``t >= s`` can predict a masked token, where ``s`` = the first position (over the
    whole batch) whose next token has ``loss_mask`` 1. The model is asked for the logits of the last
    ``T - s`` positions (``logits_to_keep``), so the LM head and the ``[B, T, V]`` logits are never
    computed for the prompt: with prompts half of each sequence this halves the LM-head work and
    the logits memory. ``labels``/``mask`` are :func:`next_token_targets` cut to the same positions.
    A model without ``logits_to_keep`` gives all positions (same result, more work).
    """
    labels, mask = next_token_targets(input_ids, loss_mask)
    any_pos = mask.any(0)
    start = int(any_pos.nonzero()[0, 0]) if bool(any_pos.any()) else input_ids.shape[1] - 1
    keep = input_ids.shape[1] - start
    try:
        logits = model(input_ids=input_ids, use_cache=False, logits_to_keep=keep, **model_kwargs).logits
    except TypeError:  # models without logits_to_keep
        logits = model(input_ids=input_ids, use_cache=False, **model_kwargs).logits
    k = logits.shape[1]
    return logits, labels[:, -k:], mask[:, -k:]


def _chunk_len(batch: int, vocab: int, budget: int) -> int:
    return max(1, budget // max(1, batch * vocab))


class _LabelLogProb(torch.autograd.Function):
    """log softmax(logits)[label] per position, computed in fp32 chunk by chunk.

    Forward: ``logit[label] - logsumexp(logits)``. Backward: ``g * (onehot(label) - softmax)``,
    recomputed chunk by chunk, so neither pass holds a full ``[B, T, V]`` fp32 copy (only the
    gradient itself, in the logits' dtype).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor, budget: int) -> torch.Tensor:
        B, T, V = logits.shape
        acc = torch.promote_types(logits.dtype, torch.float32)  # fp32, or fp64 for fp64 input
        out = torch.empty(B, T, dtype=acc, device=logits.device)
        step = _chunk_len(B, V, budget)
        for s in range(0, T, step):
            chunk = logits[:, s:s + step].to(acc)
            picked = chunk.gather(-1, labels[:, s:s + step, None]).squeeze(-1)
            out[:, s:s + step] = picked - torch.logsumexp(chunk, dim=-1)
        ctx.save_for_backward(logits, labels)
        ctx.budget = budget
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, labels = ctx.saved_tensors
        B, T, V = logits.shape
        acc = torch.promote_types(logits.dtype, torch.float32)
        step = _chunk_len(B, V, ctx.budget)
        grad = None
        for s in range(0, T, step):
            chunk = logits[:, s:s + step].to(acc)
            g = grad_out[:, s:s + step, None].to(acc)
            local = torch.softmax(chunk, dim=-1).mul_(-g)
            local.scatter_add_(-1, labels[:, s:s + step, None], g)
            if step >= T and local.dtype == logits.dtype:
                return local, None, None  # one chunk: no extra copy
            if grad is None:
                grad = torch.empty_like(logits)
            grad[:, s:s + step] = local
        return grad, None, None


def token_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None,
                chunk_elements: int = 1 << 26) -> torch.Tensor:
    """Per-token log-probabilities ``log softmax(logits)[b, t, labels[b, t]]`` in fp32 (fp64 for fp64 logits).

    Shapes: ``logits`` [B, T, V] (any float dtype), ``labels`` [B, T] (aligned, see module doc),
    ``mask`` [B, T] or None. Returns [B, T], 0 where ``mask`` is 0. Works on chunks of about
    ``chunk_elements`` logits at a time: ``logit[label] - logsumexp(logits)``, never a full
    fp32 log-softmax of the vocabulary.
    """
    labels = labels.long()
    if mask is not None:
        labels = torch.where(mask.bool(), labels, torch.zeros_like(labels))
    out = _LabelLogProb.apply(logits, labels, int(chunk_elements))
    if mask is not None:
        out = out * mask.to(out.dtype)
    return out


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                   average: bool = False) -> torch.Tensor:
    """Log-probability of each sequence's completion: ``Σ_t mask·log p(labels_t)`` (or its mean).

    Shapes: ``logits`` [B, T, V], ``labels`` [B, T] already aligned with ``logits`` (use
    :func:`shift_for_causal_lm` first for raw causal-LM outputs), ``mask`` [B, T] (1 =
    completion token). Returns [B] fp32: the sum over masked tokens, or, with ``average=True``,
    the mean over them (IPO-style length normalisation; a row with no masked token gives 0).
    Used by DPO (Rafailov et al. 2023, arXiv 2305.18290, eq. 7) for log π(y|x).
    """
    tok = token_logps(logits, labels, mask)
    total = tok.sum(-1)
    if average:
        total = total / mask.to(total.dtype).sum(-1).clamp(min=1)
    return total


def sft_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
    """Negative log-likelihood of the completion tokens (supervised fine-tuning).

    Shapes: ``logits`` [B, T, V], ``labels``/``mask`` [B, T] aligned (see module doc).
    ``reduction="mean"``: ``-Σ mask·log p / Σ mask`` (mean over all completion tokens of the
    batch; 0 if there are none); ``"sum"``: ``-Σ mask·log p`` (the caller normalises, e.g. by the
    token count of a whole accumulated batch). Maximum likelihood, as in instruction tuning
    (Ouyang et al. 2022, arXiv 2203.02155).
    """
    nll = -token_logps(logits, labels, mask).sum()
    if reduction == "sum":
        return nll
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    return nll / mask.sum().clamp(min=1).to(nll.dtype)


# ------------------------------------------------------------------------------------- pairwise
def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct-preference losses, per example.

    Inputs are [B] sequence log-probs (:func:`sequence_logps`) of the chosen/rejected responses
    under the policy π and the frozen reference π_ref. With
    ``Δ = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r))``, ``z = β·Δ``,
    ``ε = label_smoothing``, ``g = judge_scale · judge_margin`` (``judge_margin`` [B] = judge
    score of chosen − judge score of rejected):

    * ``sigmoid`` — DPO, Rafailov et al. 2023 (arXiv 2305.18290):
      ``−(1−ε)·log σ(z) − ε·log σ(−z)``; ε > 0 is conservative DPO (Mitchell 2023, "A note on
      DPO with noisy preferences"), the expected loss when labels flip with probability ε.
    * ``ipo`` — Azar et al. 2023, IPO (arXiv 2310.12036): ``(Δ − 1/(2β))²``.
    * ``hinge`` — SLiC, Zhao et al. 2023 (arXiv 2305.10425): ``relu(1 − z)``.
    * ``scale`` — the ``sigmoid`` loss of each example multiplied by ``|g|`` (Self-Rewarding
      toolkit option; the weight is computed per example, not from a batch average).
    * ``rpo_sq`` — reward-aware preference optimisation (Nemotron-4 340B report, arXiv
      2406.11704), squared distance: ``(z − g)²``.
    * ``rpo_fwd_kl`` — forward KL from the judge's Bernoulli to the model's:
      ``KL(Bern(σ(g)) ‖ Bern(σ(z))) = σ(g)·(log σ(g) − log σ(z)) + σ(−g)·(log σ(−g) − log σ(−z))``.
    * ``rpo_bwd_kl`` — backward (reverse) KL: ``KL(Bern(σ(z)) ‖ Bern(σ(g)))``, i.e. the same
      with the roles of ``z`` and ``g`` swapped.

    Returns ``(losses [B], chosen_rewards [B], rejected_rewards [B])``; the rewards are the
    **β-scaled** implicit rewards ``β·(log π − log π_ref)``, detached.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    delta = chosen_ratio - rejected_ratio
    z = beta * delta
    g = None
    if loss_type in _NEEDS_JUDGE:
        if judge_margin is None:
            raise ValueError(f"loss_type {loss_type!r} needs judge_margin (chosen − rejected judge scores)")
        g = judge_scale * judge_margin.to(z.dtype)

    if loss_type in ("sigmoid", "scale"):
        losses = -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)
        if loss_type == "scale":
            losses = losses * g.abs()
    elif loss_type == "ipo":
        losses = (delta - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - z)
    elif loss_type == "rpo_sq":
        losses = (z - g) ** 2
    elif loss_type == "rpo_fwd_kl":
        losses = _bernoulli_kl(g, z)
    else:  # rpo_bwd_kl
        losses = _bernoulli_kl(z, g)
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


def _bernoulli_kl(p_logit: torch.Tensor, q_logit: torch.Tensor) -> torch.Tensor:
    """``KL(Bern(σ(p_logit)) ‖ Bern(σ(q_logit)))`` per element, in log space (stable)."""
    lp, lp_neg = F.logsigmoid(p_logit), F.logsigmoid(-p_logit)
    lq, lq_neg = F.logsigmoid(q_logit), F.logsigmoid(-q_logit)
    return lp.exp() * (lp - lq) + lp_neg.exp() * (lp_neg - lq_neg)


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                       margin: torch.Tensor | float | None = None) -> torch.Tensor:
    """Pairwise reward-model loss, per example: ``−log σ(r_c − r_r − m)``.

    Shapes: ``chosen_rewards``/``rejected_rewards`` [B] scalar rewards, ``margin`` [B], a float
    or None (m = 0). Bradley & Terry 1952; reward modelling as in InstructGPT (Ouyang et al.
    2022, arXiv 2203.02155); the margin term follows Llama 2 (Touvron et al. 2023, arXiv
    2307.09288). Returns [B].
    """
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff)
