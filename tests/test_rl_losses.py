"""PPO losses, GAE and reward shaping: hand-computed values, padding, device, registry."""

from __future__ import annotations

import math

import pytest
import torch

from selfalign.train import rl_losses as rl


def t(*rows):
    """A float64 tensor: one list → [1, T]; several lists → [B, T]; numbers → [B]."""
    return torch.tensor(rows, dtype=torch.float64)


def close(x: torch.Tensor, expected) -> None:
    torch.testing.assert_close(x.double(), torch.tensor(expected, dtype=torch.float64).reshape(x.shape))


# ------------------------------------------------------------------------------------- reductions
def test_masked_mean_var_whiten_ignore_padding():
    x, m = t([1.0, 2.0, 3.0, 100.0]), t([1, 1, 1, 0])
    assert rl.masked_mean(x, m).item() == pytest.approx(2.0)
    assert rl.masked_sum(x, m).item() == pytest.approx(6.0)
    assert rl.masked_var(x, m).item() == pytest.approx(2 / 3)  # population variance
    w = rl.masked_whiten(x, m)
    s = math.sqrt(2 / 3 + 1e-8)
    assert w.tolist()[0] == pytest.approx([-1 / s, 0.0, 1 / s, 0.0])  # padding → 0, never averaged
    assert rl.masked_whiten(x, m, shift_mean=False).tolist()[0] == pytest.approx([1 / s + 2 - 2 / s, 2, 2 + 1 / s, 0])
    # per-row mean, and an all-padding row gives 0, not NaN
    assert rl.masked_mean(t([1.0, 3.0], [5.0, 7.0]), t([1, 1], [0, 0]), dim=-1).tolist() == [2.0, 0.0]


def test_explained_variance():
    r, m = t([1.0, 2.0, 4.0, 9.0]), t([1, 1, 1, 0])
    assert rl.explained_variance(r, r, m).item() == pytest.approx(1.0)
    assert rl.explained_variance(torch.zeros_like(r), r, m).item() == pytest.approx(0.0)
    v = t([1.5, 2.0, 3.5, 0.0])  # residuals [-0.5, 0, 0.5]: var 1/6; Var(r) = 14/9
    assert rl.explained_variance(v, r, m).item() == pytest.approx(1 - (1 / 6) / (14 / 9))


# -------------------------------------------------------------------------------------------- KL
def test_kl_estimators_hand_computed():
    logp, ref, m = t([-1.0, -2.0, -3.0]), t([-1.5, -1.0, 0.0]), t([1, 1, 0])
    assert rl.kl_k1(logp, ref, m).tolist()[0] == pytest.approx([0.5, -1.0, 0.0])
    assert rl.kl_k2(logp, ref, m).tolist()[0] == pytest.approx([0.125, 0.5, 0.0])
    # k3 = exp(d) − 1 − d with d = log π_ref − log π = [−0.5, 1.0]
    assert rl.kl_k3(logp, ref, m).tolist()[0] == pytest.approx([math.exp(-0.5) - 0.5, math.e - 2, 0.0])
    assert rl.kl_salmon(logp, ref, m).tolist()[0] == pytest.approx([0.5, 0.0, 0.0])  # max(k1, 0)
    assert rl.kl_k3(t([0.0]), t([-1000.0]), t([1])).isfinite().all()  # clamped: no overflow


def test_adaptive_kl_controller():
    assert rl.adaptive_kl_coef(0.1, 2.0, 1.0, 8, 16) == pytest.approx(0.1 * (1 + 0.2 * 8 / 16))  # error clipped to 0.2
    assert rl.adaptive_kl_coef(0.1, 0.0, 1.0, 8, 16) == pytest.approx(0.1 * (1 - 0.2 * 8 / 16))
    assert rl.adaptive_kl_coef(0.1, 1.1, 1.0, 10, 100) == pytest.approx(0.1 * (1 + 0.1 * 10 / 100))
    with pytest.raises(ValueError):
        rl.adaptive_kl_coef(0.1, 1.0, 0.0, 1, 1)


# --------------------------------------------------------------------------------------- rewards
def test_shape_scores_order():
    raw, fin, n = t(3.0, -3.0, 0.5), torch.tensor([True, False, False]), torch.tensor([4, 10, 2])
    s = rl.shape_scores(raw, fin, n, scale=2.0, clip=4.0, no_stop_penalty=1.0, length_bonus=0.1)
    # 2·raw = [6, −6, 1] → clip [4, −4, 1] → −1 if unfinished [4, −5, 0] → +0.1·length
    close(s, [4.4, -4.0, 0.2])
    s = rl.shape_scores(raw, fin, n, scale=2.0, clip=4.0, no_stop_score=-1.0)
    close(s, [4.0, -1.0, -1.0])
    assert rl.shape_scores(raw, fin, n).tolist() == raw.tolist()


def test_token_rewards_score_on_last_real_token():
    scores = t(2.0, -1.0)
    kl = t([0.1, 0.2, 0.3], [0.4, 0.5, 9.0])
    m = t([1, 1, 1], [1, 1, 0])
    rewards, non_score = rl.token_rewards(scores, kl, m, kl_coef=0.5)
    close(non_score, [[-0.05, -0.1, -0.15], [-0.2, -0.25, 0.0]])
    close(rewards, [[-0.05, -0.1, 1.85], [-0.2, -1.25, 0.0]])


# ------------------------------------------------------------------------------------------- GAE
def test_gae_hand_computed_with_padding():
    rewards = t([0.0, 0.0, 1.0], [0.0, 1.0, 5.0])
    values = t([0.5, 0.6, 0.7], [0.5, 0.7, 9.0])
    m = t([1, 1, 1], [1, 1, 0])
    adv, ret = rl.gae(rewards, values, m, gamma=0.9, lam=0.8)
    # row 0: δ2 = 1 − 0.7 = 0.3; δ1 = 0.9·0.7 − 0.6 = 0.03; δ0 = 0.9·0.6 − 0.5 = 0.04
    #        A2 = 0.3; A1 = 0.03 + 0.72·0.3 = 0.246; A0 = 0.04 + 0.72·0.246 = 0.21712
    # row 1: the padded position is ignored: A1 = 1 − 0.7 = 0.3; A0 = 0.9·0.7 − 0.5 + 0.72·0.3 = 0.346
    close(adv, [[0.21712, 0.246, 0.3], [0.346, 0.3, 0.0]])
    close(ret, [[0.71712, 0.846, 1.0], [0.846, 1.0, 0.0]])


def test_gae_gamma_lambda_one_salmon():
    rewards, values, m = t([-0.1, -0.2, 1.0]), t([0.3, 0.2, 0.1]), t([1, 1, 1])
    adv, ret = rl.gae(rewards, values, m, gamma=1.0, lam=1.0)
    # γ = λ = 1: R_t = Σ_{k≥t} r_k = [0.7, 0.8, 1.0]; A_t = R_t − V_t
    assert ret.tolist()[0] == pytest.approx([0.7, 0.8, 1.0])
    assert adv.tolist()[0] == pytest.approx([0.4, 0.6, 0.9])


def test_gae_matches_the_delta_sum_definition():
    g = torch.Generator().manual_seed(0)
    r, v = torch.randn(4, 7, generator=g, dtype=torch.float64), torch.randn(4, 7, generator=g, dtype=torch.float64)
    lens = [7, 5, 1, 3]
    m = torch.tensor([[1.0] * n + [0.0] * (7 - n) for n in lens], dtype=torch.float64)
    gamma, lam = 0.95, 0.9
    adv, ret = rl.gae(r, v, m, gamma, lam)
    for b, n in enumerate(lens):  # A_t = Σ_l (γλ)^l δ_{t+l}, δ_t = r_t + γ V_{t+1} − V_t, V_n = 0
        vv = v[b, :n].tolist() + [0.0]
        delta = [r[b, k].item() + gamma * vv[k + 1] - vv[k] for k in range(n)]
        expect = [sum((gamma * lam) ** (k - s) * delta[k] for k in range(s, n)) for s in range(n)]
        assert adv[b, :n].tolist() == pytest.approx(expect)
        assert ret[b, :n].tolist() == pytest.approx([a + x for a, x in zip(expect, vv[:n])])
        assert adv[b, n:].abs().sum().item() == 0 and ret[b, n:].abs().sum().item() == 0


# ---------------------------------------------------------------------------------------- losses
def test_clipped_policy_loss_four_cases():
    ratio = t([1.5, 1.5, 0.5, 0.5, 1.0])
    adv = t([1.0, -1.0, 1.0, -1.0, 7.0])
    m = t([1, 1, 1, 1, 0])
    logp = ratio.log().requires_grad_(True)
    loss, clipped, akl = rl.clipped_policy_loss(logp, torch.zeros_like(logp), adv, m, cliprange=0.2)
    # A>0, ρ=1.5: max(−1.5, −1.2) = −1.2 (clipped); A<0, ρ=1.5: max(1.5, 1.2) = 1.5
    # A>0, ρ=0.5: max(−0.5, −0.8) = −0.5;            A<0, ρ=0.5: max(0.5, 0.8) = 0.8 (clipped)
    assert loss.tolist()[0] == pytest.approx([-1.2, 1.5, -0.5, 0.8, 0.0])
    assert clipped.tolist()[0] == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert akl.tolist()[0] == pytest.approx([0.5 - math.log(1.5), 0.5 - math.log(1.5),
                                             -0.5 - math.log(0.5), -0.5 - math.log(0.5), 0.0])
    loss.sum().backward()  # clipped tokens pass no gradient; d(−A·ρ)/d log π = −A·ρ otherwise
    assert logp.grad.tolist()[0] == pytest.approx([0.0, 1.5, -0.5, 0.0, 0.0])


def test_clipped_value_loss():
    v, old, ret, m = t([1.0, 1.0, 3.0]), t([0.5, 0.9, 0.0]), t([2.0, 0.0, 1.0]), t([1, 1, 0])
    loss, clipped = rl.clipped_value_loss(v, old, ret, m, cliprange_value=0.2)
    # token 0: (1−2)² = 1 vs V_clip = 0.7: (0.7−2)² = 1.69 → ½·1.69; token 1: V within range → ½·1
    assert loss.tolist()[0] == pytest.approx([0.845, 0.5, 0.0])
    assert clipped.tolist()[0] == [1.0, 0.0, 0.0]
    assert rl.clipped_value_loss(v, old, ret, m, 0.2, weight=0.1)[0].tolist()[0] == pytest.approx([0.0845, 0.05, 0])
    assert rl.clipped_value_loss(v, old, ret, m, None)[0].tolist()[0] == pytest.approx([0.5, 0.5, 0.0])


def test_entropy():
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, 1.0]]])
    h = rl.entropy_from_logits(logits, torch.tensor([[1, 1, 0]]))
    assert h.tolist()[0] == pytest.approx([math.log(2), -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), 0.0])


# ----------------------------------------------------------------------------- registry + device
def test_registry_names():
    assert rl.get_rl_loss("kl", "salmon") is rl.kl_salmon
    assert rl.get_rl_loss("advantage", "gae") is rl.gae
    assert rl.get_rl_loss("policy", "clip") is rl.clipped_policy_loss
    assert rl.get_rl_loss("value", "clip") is rl.clipped_value_loss
    assert rl.get_rl_loss("entropy", "entropy") is rl.entropy_from_logits
    assert set(rl.REGISTRY["kl"]) == {"k1", "k2", "k3", "salmon"}
    with pytest.raises(ValueError, match="k1, k2, k3, salmon"):
        rl.get_rl_loss("kl", "k4")


def test_everything_stays_on_the_input_device():
    """On the meta device any tensor made on the CPU inside a function would raise or show up here."""
    dev = torch.device("meta")
    x = torch.empty(3, 5, device=dev)
    m = torch.empty(3, 5, device=dev)
    outs = [rl.masked_mean(x, m), rl.masked_var(x, m), rl.masked_whiten(x, m), rl.explained_variance(x, x, m),
            *(fn(x, x, m) for fn in rl.REGISTRY["kl"].values()), *rl.gae(x, x, m, 1.0, 0.95),
            *rl.clipped_policy_loss(x, x, x, m, 0.2), *rl.clipped_value_loss(x, x, x, m, 0.2),
            *rl.clipped_value_loss(x, x, x, m, None), rl.entropy_from_logits(torch.empty(3, 5, 7, device=dev), m),
            *rl.token_rewards(torch.empty(3, device=dev), x, m, 0.1),
            rl.shape_scores(torch.empty(3, device=dev), torch.empty(3, dtype=torch.bool, device=dev),
                            torch.empty(3, device=dev), clip=1.0, no_stop_penalty=0.5, no_stop_score=-1.0)]
    assert all(o.device == dev for o in outs)
