"""PPO losses and RLHF reward shaping as pure functions: tensors in, tensors out (imports only torch).

Shapes: ``B`` rollouts, ``T`` response tokens (right-padded). ``mask[b, t]`` is 1 on the response
tokens of row ``b`` and 0 on padding. Token ``t`` of a response is the action taken in the state
"prompt + response[:t]"; ``logp[b, t]`` is its log-probability and ``values[b, t]`` the critic's value
of that state (the hidden state that predicts token ``t``).

Every per-token function returns a ``[B, T]`` tensor that is **0 on padding**, and every reduction
goes through :func:`masked_mean` / :func:`masked_sum`, so padding never enters an average. Results
stay on the inputs' device (no tensor is created on another one).

Functions are registered by name (``REGISTRY[kind][name]``, :func:`get_rl_loss`):

=============  ==============================================================================
kind           names
=============  ==============================================================================
``kl``         ``k1``, ``k2``, ``k3``, ``salmon`` — per-token KL estimators
``advantage``  ``gae`` — generalised advantage estimation
``policy``     ``clip`` — PPO clipped surrogate
``value``      ``clip`` — clipped value loss
``entropy``    ``entropy`` — categorical entropy of the logits
=============  ==============================================================================

Conventions compared with verl (``verl/trainer/ppo/core_algos.py``, ``verl/utils/torch_functional.py``)
and OpenRLHF (``openrlhf/models/loss.py``, ``openrlhf/models/utils.py``,
``openrlhf/trainer/ppo_utils/experience_maker.py``), as written in their source, are stated in each
docstring ("Differs:").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

REGISTRY: dict[str, dict[str, Callable]] = {"kl": {}, "advantage": {}, "policy": {}, "value": {}, "entropy": {}}


def register(kind: str, name: str) -> Callable[[Callable], Callable]:
    """Decorator: make ``fn`` available as ``get_rl_loss(kind, name)``."""

    def deco(fn: Callable) -> Callable:
        REGISTRY[kind][name] = fn
        return fn

    return deco


def get_rl_loss(kind: str, name: str) -> Callable:
    """The function registered as ``(kind, name)``; ValueError listing the known names otherwise."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(REGISTRY)}")
    if name not in REGISTRY[kind]:
        raise ValueError(f"unknown {kind} function {name!r}; expected one of {', '.join(REGISTRY[kind])}")
    return REGISTRY[kind][name]


# -------------------------------------------------------------------------------------- reductions
def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``Σ x·mask`` over ``dim`` (all elements when None)."""
    prod = x * mask.to(x.dtype)
    return prod.sum() if dim is None else prod.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``Σ x·mask / Σ mask`` over ``dim`` (all elements when None); 0 where the mask is all 0 (never NaN).

    Differs: verl's and OpenRLHF's ``masked_mean`` divide by ``Σ mask`` unguarded (NaN on an empty mask).
    """
    m = mask.to(x.dtype)
    total = (x * m).sum() if dim is None else (x * m).sum(dim)
    count = m.sum() if dim is None else m.sum(dim)
    return total / count.clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Population variance of the masked elements: ``masked_mean((x − masked_mean(x))²)``.

    Differs: verl's ``masked_var`` applies Bessel's correction (``n/(n−1)``) by default; OpenRLHF's
    advantage normalisation uses this population form.
    """
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """``(x − μ) / sqrt(σ² + eps)`` with μ, σ² the masked mean and population variance (padding → 0).

    With ``shift_mean=False`` the mean is added back (only the scale changes). Used for advantage
    whitening (PPO implementations normalise advantages per rollout batch; Andrychowicz et al. 2021,
    arXiv 2006.05990, §3.5). Differs: verl uses the Bessel-corrected variance; OpenRLHF uses
    ``rsqrt(clamp(var, 1e-8))`` instead of ``rsqrt(var + 1e-8)`` (equal up to 1e-8 in the variance).
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(out.dtype)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1 − Var(returns − values) / Var(returns)`` over the masked tokens (1 = perfect critic,
    0 = no better than a constant, < 0 = worse); 0-d tensor. A zero return variance gives 1 when
    the values equal the returns, else a large negative number (the denominator is clamped at 1e-8)."""
    var_r = masked_var(returns, mask)
    return 1 - masked_var(returns - values, mask) / var_r.clamp(min=1e-8)


# --------------------------------------------------------------------------------------------- KL
@register("kl", "k1")
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``k1 = log π(a) − log π_ref(a)`` per token (unbiased estimate of KL(π‖π_ref) under samples
    from π; can be negative). Schulman, "Approximating KL divergence" (2020, joschu.net/blog/kl-approx.html);
    the per-token penalty of Ziegler et al. 2019 (arXiv 1909.08593) and InstructGPT. Same as verl
    ``kl_penalty(..., "k1")`` and OpenRLHF ``compute_approx_kl(..., "k1")``."""
    return (logp - ref_logp) * mask.to(logp.dtype)


@register("kl", "k2")
def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``k2 = ½ (log π − log π_ref)²`` per token (biased, non-negative, low variance; Schulman 2020).
    Same as verl ``"k2"``/``"mse"`` and OpenRLHF ``"k2"``."""
    return 0.5 * (logp - ref_logp) ** 2 * mask.to(logp.dtype)


@register("kl", "k3")
def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``k3 = r − 1 − log r`` with ``r = π_ref(a)/π(a)`` per token, i.e. with ``d = log π_ref − log π``:
    ``exp(d) − 1 − d`` (unbiased and non-negative; Schulman 2020). ``d`` is clamped to [−20, 20]
    so ``exp`` cannot overflow. Differs: verl (``"k3"``/``"low_var_kl"``) also clamps ``d`` to ±20 and
    then the result to [−10, 10]; OpenRLHF does not clamp."""
    d = (ref_logp - logp).clamp(min=-20.0, max=20.0)
    return (torch.exp(d) - 1 - d) * mask.to(logp.dtype)


@register("kl", "salmon")
def kl_salmon(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``max(log π − log π_ref, 0)`` per token: the clamped k1 used by AlpacaFarm's PPO and by SALMON
    (Sun et al. 2023, arXiv 2310.05910), which penalises only tokens the policy made *more* likely
    than the reference. Neither verl nor OpenRLHF has it."""
    return (logp - ref_logp).clamp(min=0.0) * mask.to(logp.dtype)


def adaptive_kl_coef(coef: float, current_kl: float, target: float, n_steps: int, horizon: int) -> float:
    """One update of the adaptive KL controller (Ziegler et al. 2019, arXiv 1909.08593, §2.2):
    ``e = clip(current/target − 1, −0.2, 0.2)``; ``coef · (1 + e · n_steps / horizon)``. Same as verl's
    ``AdaptiveKLController.update`` (``n_steps`` = rollouts in the batch there, as here)."""
    if target <= 0:
        raise ValueError("the KL target must be > 0")
    err = min(max(current_kl / target - 1.0, -0.2), 0.2)
    return coef * (1.0 + err * n_steps / horizon)


# ---------------------------------------------------------------------------------------- rewards
def shape_scores(raw: torch.Tensor, finished: torch.Tensor, lengths: torch.Tensor, *, scale: float = 1.0,
                 clip: float | None = None, no_stop_penalty: float = 0.0, no_stop_score: float | None = None,
                 length_bonus: float = 0.0, ratio_bonus: torch.Tensor | None = None) -> torch.Tensor:
    """Sequence scores from raw rewards, in this order ([B] each; ``finished`` bool = ended by a stop token):

    0. ``raw += ratio_bonus`` when given (SALMON's ``scale·min(m·L/L_max, cap)``, see
       :func:`length_ratio_bonus`; added before scaling, so SALMON's ×10 applies to it);
    1. ``s = scale · raw``; 2. ``s = clamp(s, −clip, clip)`` when ``clip``; 3. ``s −= no_stop_penalty`` for
    unfinished responses (TRL's ``missing_eos_penalty``); 4. ``s = no_stop_score`` for unfinished
    responses when given (AlpacaFarm/SALMON's ``penalty_reward_value``, which *replaces* the score);
    5. ``s += length_bonus · length`` (tokens; negative values penalise length).

    Differs: OpenRLHF clips the reward to a range before adding the KL term (``reward_clip_range``), as
    step 2; verl applies no shaping in ``core_algos`` (reward managers do).
    """
    if ratio_bonus is not None:
        raw = raw + ratio_bonus.to(raw.dtype)
    s = raw * scale
    if clip is not None:
        s = s.clamp(min=-clip, max=clip)
    unfinished = ~finished.bool()
    s = s - no_stop_penalty * unfinished.to(s.dtype)
    if no_stop_score is not None:
        s = torch.where(unfinished, torch.full_like(s, no_stop_score), s)
    return s + length_bonus * lengths.to(s.dtype)


def length_ratio_bonus(lengths: torch.Tensor, multipliers: torch.Tensor, max_new_tokens: int, cap: float,
                       scale: float) -> torch.Tensor:
    """SALMON's length bonus (arXiv 2310.05910, stage 3): ``scale · min(m · L / L_max, cap)``.

    ``lengths`` [B] response tokens ``L``, ``multipliers`` [B] the prompt kind's ``m`` (SALMON: +1 for
    general prompts, −0.4 for reasoning ones, so long reasoning answers are penalised), ``L_max`` the
    generation limit. Only the upper side is clamped (``cap`` 0.8, ``scale`` 5 in SALMON). Example:
    ``L = 32, L_max = 64, m = 1`` → ``5 · min(0.5, 0.8) = 2.5``; ``m = −0.4`` → ``5 · −0.2 = −1``.
    """
    ratio = lengths.to(multipliers.dtype) / float(max_new_tokens) * multipliers
    return scale * ratio.clamp(max=cap)


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards ``r_t = −β·kl_t``, plus the sequence score at the last response token.

    ``scores`` [B], ``kl``/``mask`` [B, T] (a row must have at least one response token). Returns
    ``(rewards, non_score_rewards)`` [B, T], both 0 on padding. Ziegler et al. 2019 eq. 2; same as
    OpenRLHF ``compute_reward`` and verl ``compute_rewards`` + its token-level scores.
    """
    m = mask.to(kl.dtype)
    non_score = -kl_coef * kl * m
    T = mask.shape[-1]
    last = (T - 1) - m.flip(-1).argmax(-1, keepdim=True)  # index of the last 1 in each row
    placed = torch.zeros_like(non_score).scatter(-1, last, scores.to(kl.dtype).unsqueeze(-1))
    return non_score + placed * m, non_score


# ---------------------------------------------------------------------------------------- advantage
@register("advantage", "gae")
def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, arXiv 1506.02438) over the response tokens:

    ``δ_t = r_t + γ·V_{t+1} − V_t`` (``V`` after the last response token is 0: the episode ends),
    ``A_t = δ_t + γλ·A_{t+1}``, returns ``R_t = A_t + V_t``. With γ = λ = 1 (SALMON's setting)
    ``A_t = Σ_{k≥t} r_k − V_t`` and ``R_t = Σ_{k≥t} r_k``. Padding positions are skipped (a masked
    position passes the next value and advantage through unchanged) and come out as 0.

    Returns ``(advantages, returns)`` [B, T], not whitened (see :func:`masked_whiten`), no gradient.
    Differs: verl's ``compute_gae_advantage_return`` has the same recursion and masking but always
    whitens the advantages (Bessel-corrected) inside; OpenRLHF's ``get_advantages_and_returns`` zeroes
    masked rewards/values instead of skipping them (identical for right-padded responses) and
    whitens later, over the whole rollout batch, as we do.
    """
    with torch.no_grad():
        m = mask.to(values.dtype)
        r, v = rewards * m, values * m
        next_v = torch.zeros_like(v[:, 0])
        last = torch.zeros_like(v[:, 0])
        out = torch.zeros_like(v)
        for t in range(v.shape[1] - 1, -1, -1):
            delta = r[:, t] + gamma * next_v - v[:, t]
            adv_t = delta + gamma * lam * last
            mt = m[:, t]
            next_v = mt * v[:, t] + (1 - mt) * next_v
            last = mt * adv_t + (1 - mt) * last
            out[:, t] = adv_t * mt
        return out, (out + v) * m


# ---------------------------------------------------------------------------------------- losses
@register("policy", "clip")
def clipped_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, cliprange: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate, per token (Schulman et al. 2017, arXiv 1707.06347, eq. 7, as a loss):

    ``ρ = exp(log π − log π_old)``, ``L = max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε))``. The log-ratio is clamped to
    [−20, 20] before ``exp`` (as verl). Returns ``(loss, clipped, approx_kl)`` [B, T], 0 on padding:
    ``clipped`` is 1 where the clipped term is the larger (the token's gradient is cut), and
    ``approx_kl = k3(π_old → π) = ρ − 1 − log ρ`` (non-negative; for the ``approx_kl`` metric).

    Differs: verl's ``vanilla`` loss adds dual-clip (``min(L, −A·c)`` for A < 0, c = 3) and reports
    ``ppo_kl = mean(log π_old − log π)`` (k1); OpenRLHF's ``PolicyLoss`` is this formula (optionally
    with separate low/high ε) without the clamp. Both reduce inside; here the caller reduces.
    """
    m = mask.to(logp.dtype)
    log_ratio = (logp - old_logp).clamp(min=-20.0, max=20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped_loss = -advantages * ratio.clamp(1.0 - cliprange, 1.0 + cliprange)
    loss = torch.maximum(unclipped, clipped_loss)
    clipped = (clipped_loss > unclipped).to(logp.dtype)
    approx_kl = (ratio - 1 - log_ratio).detach()
    return loss * m, clipped * m, approx_kl * m


@register("value", "clip")
def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       cliprange_value: float | None, weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss, per token: ``weight · ½ · max((V − R)², (V_clip − R)²)`` with
    ``V_clip = V_old + clip(V − V_old, −ε_v, ε_v)``; ``cliprange_value=None`` gives ``weight · ½ (V − R)²``.

    Returns ``(loss, clipped)`` [B, T], 0 on padding; ``clipped`` is 1 where the clipped error is the
    larger. Same formula (with the ½) as verl ``compute_value_loss`` and OpenRLHF ``ValueLoss``; neither
    takes the weight (verl and OpenRLHF train the critic with its own loss; TRL multiplies by
    ``vf_coef``), and both reduce inside.
    """
    m = mask.to(values.dtype)
    err = (values - returns) ** 2
    if cliprange_value is None:
        return weight * 0.5 * err * m, torch.zeros_like(err)
    v_clip = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    err_clip = (v_clip - returns) ** 2
    loss = weight * 0.5 * torch.maximum(err, err_clip)
    return loss * m, (err_clip > err).to(values.dtype) * m


@register("entropy", "entropy")
def entropy_from_logits(logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Categorical entropy per position, ``H = logsumexp(l) − Σ softmax(l)·l`` (in fp32), [B, T] from
    logits [B, T, V]; 0 where ``mask`` is 0. Same formula as verl's ``entropy_from_logits``; the PPO
    entropy bonus subtracts ``entropy_coef · mean H`` from the loss."""
    x = logits.float()
    h = torch.logsumexp(x, dim=-1) - (torch.softmax(x, dim=-1) * x).sum(-1)
    return h if mask is None else h * mask.to(h.dtype)
