"""Training losses as pure functions: tensors in, tensors out (imports only torch and the stdlib).

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
* DPO variants are pure functions registered by name (:func:`register_dpo_loss`); the registry is
  the one list of names (:func:`dpo_loss_names`, :func:`get_dpo_loss`) and :func:`dpo_loss`
  dispatches on it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


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


# ----------------------------------------------------------------------------- DPO loss registry
# A DPO loss variant is a pure function ``fn(delta, beta, *, label_smoothing, judge_margin,
# judge_scale) -> losses [B]`` registered by name; ``delta`` [B] is the policy-vs-reference margin
# Δ = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)) and ``judge_margin`` [B] the judge
# score of chosen − rejected (None for losses that do not need it). The registry below is the ONE
# list of loss names: configs and the CLI read it from here.


@dataclass(frozen=True)
class DPOLoss:
    """A registered DPO loss variant: its ``name``, the function, whether it needs judge scores."""

    name: str
    fn: Callable[..., torch.Tensor]
    needs_judge: bool


_DPO_LOSSES: dict[str, DPOLoss] = {}
_DPO_ALIASES: dict[str, str] = {}  # other name -> registered name


def register_dpo_loss(name: str, needs_judge: bool = False, aliases: tuple[str, ...] = ()):
    """Decorator: register ``fn`` as the DPO loss ``name`` (and under each of ``aliases``).

    ``needs_judge``: the loss reads ``judge_margin`` (pairs must carry both judge scores).
    """
    def deco(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        for n in (name, *aliases):
            if n in _DPO_LOSSES or n in _DPO_ALIASES:
                raise ValueError(f"DPO loss {n!r} is already registered")
        _DPO_LOSSES[name] = DPOLoss(name, fn, needs_judge)
        _DPO_ALIASES.update({a: name for a in aliases})
        return fn
    return deco


def dpo_loss_names(aliases: bool = False) -> tuple[str, ...]:
    """Registered DPO loss names in registration order (``aliases=True``: then the aliases)."""
    return tuple(_DPO_LOSSES) + (tuple(_DPO_ALIASES) if aliases else ())


def get_dpo_loss(name: str) -> DPOLoss:
    """The loss registered as ``name`` (or whose alias it is); ValueError naming the closest name."""
    if name in _DPO_LOSSES:
        return _DPO_LOSSES[name]
    if name in _DPO_ALIASES:
        return _DPO_LOSSES[_DPO_ALIASES[name]]
    close = difflib.get_close_matches(str(name).lower(), dpo_loss_names(aliases=True), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    alias = ", ".join(f"{a}={n}" for a, n in _DPO_ALIASES.items())
    raise ValueError(f"unknown DPO loss {name!r}{hint} (valid: {', '.join(_DPO_LOSSES)}; aliases: {alias})")


def dpo_loss_help() -> str:
    """One paragraph naming every registered loss (for ``selfalign train dpo --help``)."""
    plain = [n for n, s in _DPO_LOSSES.items() if not s.needs_judge]
    judged = [n for n, s in _DPO_LOSSES.items() if s.needs_judge]
    alias = ", ".join(f"{a} = {n}" for a, n in _DPO_ALIASES.items())
    return (f"loss_type: {', '.join(plain)} (aliases: {alias}); needing chosen_score/rejected_score "
            f"in the pairs: {', '.join(judged)}. Formulas and sources: selfalign.train.losses.")


def _judge_logit(judge_margin: torch.Tensor, judge_scale: float, like: torch.Tensor) -> torch.Tensor:
    """``g = judge_scale · judge_margin`` in the dtype of ``like`` ([B])."""
    return judge_scale * judge_margin.to(like.dtype)


@register_dpo_loss("sigmoid", aliases=("dpo",))
def sigmoid_dpo_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
                     judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """DPO: ``−(1−ε)·log σ(βΔ) − ε·log σ(−βΔ)`` per pair ([B] → [B]).

    Source: Rafailov et al. 2023, "Direct Preference Optimization" (arXiv 2305.18290, eq. 7).
    ``dpo`` is an alias: NeMo-Aligner's name for this loss (``preference_loss: dpo``, which is
    ``−logsigmoid(β·Δ)``, i.e. ε = 0). With ``ε = label_smoothing > 0`` this is **conservative
    DPO** (cDPO; Mitchell 2023, "A note on DPO with noisy preferences & relationship to IPO"): the
    expected DPO loss when each label is flipped with probability ε. NeMo-Aligner has no ε; TRL
    offered cDPO through ``label_smoothing`` on its sigmoid loss and dropped it in TRL 1.16 (its
    ``robust`` and ``exo_pair`` losses still read ε).
    """
    z = beta * delta
    if not label_smoothing:
        return -F.logsigmoid(z)
    return -(1 - label_smoothing) * F.logsigmoid(z) - label_smoothing * F.logsigmoid(-z)


@register_dpo_loss("ipo")
def ipo_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
             judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """IPO: ``(Δ − 1/(2β))²`` per pair ([B] → [B]); β plays the role of IPO's τ.

    Source: Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human
    Preferences" (arXiv 2310.12036, eq. 17). Same expression as NeMo-Aligner's ``ipo``. Δ is built
    from **summed** token log-probs unless the trainer's ``average_log_prob`` is set (NeMo-Aligner:
    ``preference_average_log_probs``, also off by default); TRL's IPO always averages per token, so
    set ``average_log_prob=true`` to match TRL (and keep β comparable across lengths).
    """
    return (delta - 1 / (2 * beta)) ** 2


@register_dpo_loss("hinge")
def hinge_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
               judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """SLiC hinge: ``relu(1 − βΔ)`` per pair ([B] → [B]).

    Source: Zhao et al. 2023, "SLiC-HF" (arXiv 2305.10425), with β·Δ as the margin, as TRL's
    ``hinge`` loss. Not in NeMo-Aligner.
    """
    return torch.relu(1 - beta * delta)


@register_dpo_loss("scale", needs_judge=True)
def scale_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
               judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """Judge-weighted DPO: ``|m| · sigmoid_dpo_loss(Δ)`` per pair, ``m = judge_margin`` ([B] → [B]).

    Source: NeMo-Aligner's self-rewarding ``preference_loss: scale`` (``megatron_gpt_spin_model.py``:
    ``abs_margin * -logsigmoid(β·Δ).mean(0)`` with ``abs_margin = |chosen_score − rejected_score|``).
    As there, the weight is the **raw** score margin: ``judge_scale`` (NeMo's ``gt_reward_scale``,
    used only by the ``rpo_*`` losses) does not enter. Differences: NeMo's ``.mean(0)`` binds to the
    DPO term, so it weights the micro-batch *mean* loss by each pair's margin, a [B] tensor that its
    scalar reduction (``loss.view(1)``) accepts only at micro-batch size 1, where it equals this
    per-pair weighting; per pair also keeps the loss independent of how a batch is split. ε
    (cDPO) applies to the DPO factor; NeMo has no ε.
    """
    return judge_margin.to(delta.dtype).abs() * sigmoid_dpo_loss(delta, beta, label_smoothing=label_smoothing)


@register_dpo_loss("rpo_sq", needs_judge=True)
def rpo_sq_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
                judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """Reward-aware preference optimisation, squared distance: ``(βΔ − g)²``, ``g = judge_scale·m``.

    Shapes [B] → [B]. Source: Nemotron-4 340B report (NVIDIA 2024, arXiv 2406.11704, RPO);
    NeMo-Aligner ``rpo_sq``: ``(ref_policy_kl_penalty * rewards_delta - gt_rewards_delta) ** 2``
    with ``gt_rewards_delta = gt_reward_scale * (chosen_gt − rejected_gt)`` — the same expression.
    """
    return (beta * delta - _judge_logit(judge_margin, judge_scale, delta)) ** 2


def _bernoulli_kl(p_logit: torch.Tensor, q_logit: torch.Tensor) -> torch.Tensor:
    """``KL(Bern(σ(p_logit)) ‖ Bern(σ(q_logit)))`` per element, in log space (stable)."""
    lp, lp_neg = F.logsigmoid(p_logit), F.logsigmoid(-p_logit)
    lq, lq_neg = F.logsigmoid(q_logit), F.logsigmoid(-q_logit)
    return lp.exp() * (lp - lq) + lp_neg.exp() * (lp_neg - lq_neg)


@register_dpo_loss("rpo_fwd_kl", needs_judge=True)
def rpo_fwd_kl_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
                    judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """RPO, forward KL **from the model's Bernoulli to the judge's**: ``KL(Bern σ(βΔ) ‖ Bern σ(g))``.

    ``= σ(βΔ)·(log σ(βΔ) − log σ(g)) + σ(−βΔ)·(log σ(−βΔ) − log σ(−g))``, ``g = judge_scale·m``;
    shapes [B] → [B]. Source: NeMo-Aligner ``rpo_fwd_kl`` (``megatron_gpt_dpo_model.py``):
    ``exp(logbeta_hat_chosen) * (logbeta_hat_chosen - logalpha_hat_chosen) + (same for rejected)``
    with ``logbeta_hat = logsigmoid(±β·Δ)`` (model) and ``logalpha_hat = logsigmoid(±g)`` (judge);
    RPO in the Nemotron-4 340B report (arXiv 2406.11704). Name and definition are NeMo-Aligner's,
    so its configs carry over; note that the usual convention (forward KL = KL(target ‖ model))
    would call this one the *reverse* KL.
    """
    return _bernoulli_kl(beta * delta, _judge_logit(judge_margin, judge_scale, delta))


@register_dpo_loss("rpo_bwd_kl", needs_judge=True)
def rpo_bwd_kl_loss(delta: torch.Tensor, beta: float, *, label_smoothing: float = 0.0,
                    judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0) -> torch.Tensor:
    """RPO, backward KL **from the judge's Bernoulli to the model's**: ``KL(Bern σ(g) ‖ Bern σ(βΔ))``.

    ``= σ(g)·(log σ(g) − log σ(βΔ)) + σ(−g)·(log σ(−g) − log σ(−βΔ))``, ``g = judge_scale·m``;
    shapes [B] → [B]. Source: NeMo-Aligner ``rpo_bwd_kl`` (``megatron_gpt_dpo_model.py``):
    ``exp(logalpha_hat_chosen) * (logalpha_hat_chosen - logbeta_hat_chosen) + (same for rejected)``;
    RPO in the Nemotron-4 340B report (arXiv 2406.11704). Up to the judge's entropy (constant in
    θ) this is the cross-entropy of the model's preference probability against the judge's soft
    label; name and definition are NeMo-Aligner's (see :func:`rpo_fwd_kl_loss` on the naming).
    """
    return _bernoulli_kl(_judge_logit(judge_margin, judge_scale, delta), beta * delta)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             judge_margin: torch.Tensor | None = None, judge_scale: float = 1.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Direct-preference loss ``loss_type`` per example: dispatches to the registered variant.

    Inputs are [B] sequence log-probs (:func:`sequence_logps`) of the chosen/rejected responses
    under the policy π and the frozen reference π_ref; ``Δ = (log π(y_c) − log π_ref(y_c)) −
    (log π(y_r) − log π_ref(y_r))``, ``ε = label_smoothing``, ``judge_margin`` [B] = judge score of
    chosen − rejected, ``g = judge_scale · judge_margin``. Variants (:func:`dpo_loss_names`; each
    function's docstring gives its formula and source):

    * ``sigmoid`` (alias ``dpo``, NeMo-Aligner's name) — DPO ``−log σ(βΔ)``; cDPO when ε > 0;
    * ``ipo`` — ``(Δ − 1/(2β))²``;  ``hinge`` — ``relu(1 − βΔ)``;
    * judge-aware: ``scale`` — ``|judge_margin| ×`` the sigmoid loss; ``rpo_sq`` — ``(βΔ − g)²``;
      ``rpo_fwd_kl`` — ``KL(Bern σ(βΔ) ‖ Bern σ(g))``; ``rpo_bwd_kl`` — ``KL(Bern σ(g) ‖ Bern σ(βΔ))``
      (NeMo-Aligner's definitions and names).

    Returns ``(losses [B], chosen_rewards [B], rejected_rewards [B])``; the rewards are the
    **β-scaled** implicit rewards ``β·(log π − log π_ref)``, detached. Unknown ``loss_type`` or a
    judge-aware loss without ``judge_margin`` → ValueError.
    """
    spec = get_dpo_loss(loss_type)
    if spec.needs_judge and judge_margin is None:
        raise ValueError(f"loss_type {loss_type!r} needs judge_margin (chosen − rejected judge scores)")
    chosen_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_ratio = policy_rejected_logps - ref_rejected_logps
    losses = spec.fn(chosen_ratio - rejected_ratio, beta, label_smoothing=label_smoothing,
                     judge_margin=judge_margin, judge_scale=judge_scale)
    return losses, (beta * chosen_ratio).detach(), (beta * rejected_ratio).detach()


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
