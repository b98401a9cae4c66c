"""Each loss against a hand computation written out in plain torch/python."""

from __future__ import annotations

import math

import pytest
import torch

from selfalign.train.losses import (
    LOSS_TYPES,
    bradley_terry_loss,
    dpo_loss,
    next_token_targets,
    sequence_logps,
    sft_loss,
    shift_for_causal_lm,
    token_logps,
)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture
def pair_inputs():
    g = torch.Generator().manual_seed(0)
    n = 16
    pc, pr, rc, rr = (torch.randn(n, generator=g, dtype=torch.float64) * 5 - 20 for _ in range(4))
    judge = torch.randn(n, generator=g, dtype=torch.float64) * 2
    return pc, pr, rc, rr, judge


def _naive_seq_logps(logits, labels, mask, average=False):
    lp = torch.log_softmax(logits.double(), -1)
    safe = torch.where(mask.bool(), labels, 0)
    tok = lp.gather(-1, safe[..., None]).squeeze(-1) * mask
    s = tok.sum(-1)
    return s / mask.sum(-1).clamp(min=1) if average else s


@pytest.mark.parametrize("average", [False, True])
def test_sequence_logps_matches_full_log_softmax(average):
    g = torch.Generator().manual_seed(1)
    B, T, V = 3, 7, 50
    logits = torch.randn(B, T, V, generator=g) * 3
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.3).long()
    mask[2] = 0  # a row with no completion token
    labels[mask == 0] = -100  # ignored labels may hold anything
    got = sequence_logps(logits, labels, mask, average=average)
    want = _naive_seq_logps(logits, labels, mask, average=average)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-6)
    assert got[2].item() == 0.0


def test_token_logps_chunked_gradient_matches_naive():
    g = torch.Generator().manual_seed(2)
    B, T, V = 2, 9, 31
    base = torch.randn(B, T, V, generator=g, dtype=torch.float64)
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.2).long()
    w = torch.randn(B, T, generator=g, dtype=torch.float64)
    a = base.clone().requires_grad_(True)
    # a tiny chunk budget forces several chunks (one position per chunk)
    (token_logps(a, labels, mask, chunk_elements=1) * w).sum().backward()
    b = base.clone().requires_grad_(True)
    naive = torch.log_softmax(b, -1).gather(-1, labels[..., None]).squeeze(-1) * mask
    (naive * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-6)
    assert torch.autograd.gradcheck(lambda x: token_logps(x, labels, mask, chunk_elements=V * B * 2),
                                    (base.clone().requires_grad_(True),))


def test_token_logps_bf16_gradient_dtype():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 11, generator=g).to(torch.bfloat16).requires_grad_(True)
    labels = torch.randint(0, 11, (2, 5), generator=g)
    mask = torch.ones(2, 5, dtype=torch.long)
    out = token_logps(logits, labels, mask)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    want = torch.log_softmax(logits.detach().float(), -1).gather(-1, labels[..., None]).squeeze(-1)
    torch.testing.assert_close(out.detach(), want, atol=1e-5, rtol=1e-5)


def test_shift_for_causal_lm():
    logits = torch.randn(2, 5, 7)
    ids = torch.arange(10).view(2, 5)
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    lg, lab, m = shift_for_causal_lm(logits, ids, mask)
    assert lg.shape == (2, 4, 7) and torch.equal(lg, logits[:, :4])
    assert lab.tolist() == [[1, 2, 3, 4], [6, 7, 8, 9]]
    assert m.tolist() == [[0, 1, 1, 1], [1, 1, 0, 0]]


def test_sft_loss_hand_computed():
    g = torch.Generator().manual_seed(4)
    B, T, V = 2, 4, 6
    logits = torch.randn(B, T, V, generator=g)
    labels = torch.randint(0, V, (B, T), generator=g)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    nll, count = 0.0, 0
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                row = logits[b, t].tolist()
                lse = math.log(sum(math.exp(x) for x in row))
                nll += lse - row[labels[b, t]]
                count += 1
    assert sft_loss(logits, labels, mask).item() == pytest.approx(nll / count, rel=1e-5)
    assert sft_loss(logits, labels, mask, reduction="sum").item() == pytest.approx(nll, rel=1e-5)


def _hand_dpo(pc, pr, rc, rr, judge, beta, loss_type, eps, judge_scale):
    """The formulas of the dpo_loss docstring, one example at a time in plain python floats."""
    out = []
    for i in range(len(pc)):
        delta = (pc[i] - rc[i]) - (pr[i] - rr[i])
        z = beta * delta
        g = judge_scale * judge[i]
        dpo = -(1 - eps) * math.log(_sig(z)) - eps * math.log(_sig(-z))
        if loss_type == "sigmoid":
            v = dpo
        elif loss_type == "ipo":
            v = (delta - 1 / (2 * beta)) ** 2
        elif loss_type == "hinge":
            v = max(0.0, 1 - z)
        elif loss_type == "scale":
            v = dpo * abs(g)
        elif loss_type == "rpo_sq":
            v = (z - g) ** 2
        elif loss_type == "rpo_fwd_kl":  # KL(judge || model)
            p, q = _sig(g), _sig(z)
            v = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        elif loss_type == "rpo_bwd_kl":  # KL(model || judge)
            p, q = _sig(z), _sig(g)
            v = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        out.append(v)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta,eps,judge_scale", [(0.1, 0.0, 1.0), (0.5, 0.2, 0.3)])
def test_dpo_loss_types_hand_computed(pair_inputs, loss_type, beta, eps, judge_scale):
    pc, pr, rc, rr, judge = pair_inputs
    losses, cr, rr_ = dpo_loss(pc, pr, rc, rr, beta, loss_type, label_smoothing=eps,
                               judge_margin=judge, judge_scale=judge_scale)
    want = _hand_dpo(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(), judge.tolist(), beta,
                     loss_type, eps if loss_type in ("sigmoid", "scale") else 0.0, judge_scale)
    assert losses.shape == pc.shape
    torch.testing.assert_close(losses, want, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(cr, beta * (pc - rc))
    torch.testing.assert_close(rr_, beta * (pr - rr))


def test_dpo_sigmoid_matches_trl_formula(pair_inputs):
    """TRL's sigmoid DPO loss, written out: −logσ(β·((πc−πr)−(refc−refr)))·(1−ε) − logσ(−β·…)·ε."""
    pc, pr, rc, rr, _ = (t.float() for t in pair_inputs)
    beta, eps = 0.2, 0.1
    logits = (pc - pr) - (rc - rr)
    trl = (-torch.nn.functional.logsigmoid(beta * logits) * (1 - eps)
           - torch.nn.functional.logsigmoid(-beta * logits) * eps)
    ours, _, _ = dpo_loss(pc, pr, rc, rr, beta, "sigmoid", label_smoothing=eps)
    assert (ours - trl).abs().max().item() < 1e-6


def test_dpo_rewards_are_detached_and_losses_have_grad(pair_inputs):
    pc = pair_inputs[0].clone().requires_grad_(True)
    losses, cr, rr = dpo_loss(pc, *pair_inputs[1:4], beta=0.1)
    assert losses.requires_grad and not cr.requires_grad and not rr.requires_grad


def test_dpo_loss_errors(pair_inputs):
    pc, pr, rc, rr, _ = pair_inputs
    with pytest.raises(ValueError, match="judge_margin"):
        dpo_loss(pc, pr, rc, rr, 0.1, "rpo_sq")
    with pytest.raises(ValueError, match="unknown loss_type"):
        dpo_loss(pc, pr, rc, rr, 0.1, "nope")


def test_kl_losses_vanish_when_model_matches_judge(pair_inputs):
    pc, pr, rc, rr, _ = pair_inputs
    beta = 0.1
    z = beta * ((pc - rc) - (pr - rr))
    for lt in ("rpo_fwd_kl", "rpo_bwd_kl", "rpo_sq"):
        losses, _, _ = dpo_loss(pc, pr, rc, rr, beta, lt, judge_margin=z / 2.0, judge_scale=2.0)
        assert losses.abs().max().item() < 1e-12


def test_bradley_terry_hand_computed():
    g = torch.Generator().manual_seed(5)
    rc, rr, m = torch.randn(8, generator=g), torch.randn(8, generator=g), torch.rand(8, generator=g)
    want = torch.tensor([-math.log(_sig(a - b - c)) for a, b, c in zip(rc.tolist(), rr.tolist(), m.tolist())])
    torch.testing.assert_close(bradley_terry_loss(rc, rr, m), want, atol=1e-6, rtol=1e-6)
    want0 = torch.tensor([-math.log(_sig(a - b)) for a, b in zip(rc.tolist(), rr.tolist())])
    torch.testing.assert_close(bradley_terry_loss(rc, rr), want0, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(bradley_terry_loss(rc, rr, 0.5), torch.tensor(
        [-math.log(_sig(a - b - 0.5)) for a, b in zip(rc.tolist(), rr.tolist())]), atol=1e-6, rtol=1e-6)


def test_next_token_targets_equal_shifted_logits():
    g = torch.Generator().manual_seed(6)
    logits = torch.randn(2, 6, 9, generator=g)
    ids = torch.randint(0, 9, (2, 6), generator=g)
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 0, 0]])
    labels, m = next_token_targets(ids, mask)
    assert labels.shape == ids.shape and m[:, -1].tolist() == [0, 0]
    whole = sequence_logps(logits, labels, m)
    sliced = sequence_logps(*shift_for_causal_lm(logits, ids, mask))
    torch.testing.assert_close(whole, sliced)


def test_completion_logits_equal_full_logits(tiny_model):
    """Logits for the completion positions only (logits_to_keep) give the same label log-probs as
    the full logits, for rows whose prompts differ in length (right padding)."""
    from selfalign.models.load import load_causal_lm
    from selfalign.train import losses as L

    model = load_causal_lm(tiny_model).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 500, (3, 12), generator=g)
    attn = torch.ones_like(ids)
    attn[2, 10:] = 0  # padding at the end of row 2
    loss_mask = torch.zeros_like(ids)
    loss_mask[0, 5:] = 1  # prompt of 5 tokens
    loss_mask[1, 8:] = 1  # prompt of 8 tokens
    loss_mask[2, 7:10] = 1
    with torch.no_grad():
        logits, labels, mask = L.completion_logits(model, ids, loss_mask, attention_mask=attn)
        assert logits.shape[1] == 12 - 4  # position 4 predicts row 0's first completion token
        full = model(input_ids=ids, attention_mask=attn, use_cache=False).logits
        ref_labels, ref_mask = L.next_token_targets(ids, loss_mask)
        want = L.sequence_logps(full, ref_labels, ref_mask)
        got = L.sequence_logps(logits, labels, mask)
    assert torch.allclose(got, want, atol=1e-5)
    assert mask.sum() == ref_mask.sum() == loss_mask.sum()


def test_completion_logits_without_logits_to_keep(tiny_model):
    from selfalign.models.load import load_causal_lm
    from selfalign.train import losses as L

    model = load_causal_lm(tiny_model).eval()

    class NoKeep(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, use_cache=False, **kw):
            if "logits_to_keep" in kw:
                raise TypeError("unexpected keyword argument 'logits_to_keep'")
            return self.m(input_ids=input_ids, use_cache=use_cache, **kw)

    ids = torch.randint(5, 500, (2, 9), generator=torch.Generator().manual_seed(1))
    loss_mask = torch.zeros_like(ids)
    loss_mask[:, 4:] = 1
    with torch.no_grad():
        a = L.sequence_logps(*L.completion_logits(model, ids, loss_mask))
        b = L.sequence_logps(*L.completion_logits(NoKeep(model), ids, loss_mask))
    assert torch.allclose(a, b, atol=1e-5)
