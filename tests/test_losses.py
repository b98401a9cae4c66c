"""Each loss against a hand computation written out in plain torch/python."""

from __future__ import annotations

import math

import pytest
import torch

from selfalign.train.losses import (
    bradley_terry_loss,
    dpo_loss,
    dpo_loss_names,
    get_dpo_loss,
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
    """The formulas of the loss docstrings, one example at a time in plain python floats."""
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
        elif loss_type == "scale":  # raw |margin|, judge_scale not applied (as NeMo-Aligner)
            v = dpo * abs(judge[i])
        elif loss_type == "rpo_sq":
            v = (z - g) ** 2
        elif loss_type == "rpo_fwd_kl":  # NeMo-Aligner: KL(model || judge)
            p, q = _sig(z), _sig(g)
            v = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        elif loss_type == "rpo_bwd_kl":  # NeMo-Aligner: KL(judge || model)
            p, q = _sig(g), _sig(z)
            v = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        out.append(v)
    return torch.tensor(out, dtype=torch.float64)


def test_every_registered_loss_has_a_hand_computation():
    assert set(dpo_loss_names()) == {"sigmoid", "ipo", "hinge", "scale", "rpo_sq", "rpo_fwd_kl", "rpo_bwd_kl"}
    assert {n for n in dpo_loss_names() if get_dpo_loss(n).needs_judge} == {"scale", "rpo_sq", "rpo_fwd_kl",
                                                                             "rpo_bwd_kl"}
    for n in dpo_loss_names():  # every docstring opens with its formula and names its source
        doc = get_dpo_loss(n).fn.__doc__
        assert "``" in doc.split("\n")[0] and "Source:" in doc, n


@pytest.mark.parametrize("loss_type", dpo_loss_names())
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


# Two pairs with small numbers: Δ = (πc − refc) − (πr − refr), z = βΔ, g = judge_scale·(sc − sr).
# Pair 0: Δ = (−3 + 4) − (−5 + 4.5) = 1.5; pair 1: Δ = (−2 + 1) − (−1 + 3) = −3.
_SMALL = dict(pc=[-3.0, -2.0], pr=[-5.0, -1.0], rc=[-4.0, -1.0], rr=[-4.5, -3.0], margin=[2.0, -1.0])
_BETA, _JS = 0.5, 0.25  # z = [0.75, −1.5], g = [0.5, −0.25]


def _small(loss_type, **kw):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in _SMALL.items()}
    losses, _, _ = dpo_loss(t["pc"], t["pr"], t["rc"], t["rr"], _BETA, loss_type, judge_margin=t["margin"],
                            judge_scale=_JS, **kw)
    return losses.tolist()


def _bern_kl(p, q):
    """KL(Bern(p) || Bern(q)) = p·log(p/q) + (1−p)·log((1−p)/(1−q))."""
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def test_rpo_bwd_kl_is_nemo_kl_judge_to_model():
    """NeMo-Aligner rpo_bwd_kl: exp(logα_c)·(logα_c − logβ̂_c) + exp(logα_r)·(logα_r − logβ̂_r), with
    logα = logsigmoid(±g) (judge) and logβ̂ = logsigmoid(±βΔ) (model): KL(Bern σ(g) ‖ Bern σ(βΔ))."""
    want = [_bern_kl(_sig(0.5), _sig(0.75)), _bern_kl(_sig(-0.25), _sig(-1.5))]
    assert _small("rpo_bwd_kl") == pytest.approx(want, rel=1e-12)
    assert want[0] == pytest.approx(0.0071792, abs=1e-6)  # σ(.5)=.622459, σ(.75)=.679179


def test_rpo_fwd_kl_is_nemo_kl_model_to_judge():
    """NeMo-Aligner rpo_fwd_kl: exp(logβ̂_c)·(logβ̂_c − logα_c) + exp(logβ̂_r)·(logβ̂_r − logα_r):
    KL(Bern σ(βΔ) ‖ Bern σ(g))."""
    want = [_bern_kl(_sig(0.75), _sig(0.5)), _bern_kl(_sig(-1.5), _sig(-0.25))]
    got = _small("rpo_fwd_kl")
    assert got == pytest.approx(want, rel=1e-12)
    assert got[1] != pytest.approx(_small("rpo_bwd_kl")[1], rel=1e-3)  # the two are not the same loss


def test_rpo_kl_torch_elementwise_as_in_nemo():
    """Both KLs written with torch elementwise ops the way NeMo-Aligner spells them."""
    ls = torch.nn.functional.logsigmoid
    z = torch.tensor([0.75, -1.5], dtype=torch.float64)
    g = torch.tensor([0.5, -0.25], dtype=torch.float64)
    logbeta_c, logbeta_r = ls(z), ls(-z)
    logalpha_c, logalpha_r = ls(g), ls(-g)
    bwd = logalpha_c.exp() * (logalpha_c - logbeta_c) + logalpha_r.exp() * (logalpha_r - logbeta_r)
    fwd = logbeta_c.exp() * (logbeta_c - logalpha_c) + logbeta_r.exp() * (logbeta_r - logalpha_r)
    assert _small("rpo_bwd_kl") == pytest.approx(bwd.tolist(), rel=1e-12)
    assert _small("rpo_fwd_kl") == pytest.approx(fwd.tolist(), rel=1e-12)


def test_rpo_sq_ipo_hinge_scale_small_numbers():
    assert _small("rpo_sq") == pytest.approx([(0.75 - 0.5) ** 2, (-1.5 + 0.25) ** 2], rel=1e-12)
    assert _small("ipo") == pytest.approx([(1.5 - 1.0) ** 2, (-3 - 1.0) ** 2], rel=1e-12)  # 1/(2β) = 1
    assert _small("hinge") == pytest.approx([0.25, 2.5], rel=1e-12)
    # scale: |raw margin| × −log σ(βΔ); judge_scale does not enter (NeMo's abs_margin)
    assert _small("scale") == pytest.approx([2.0 * -math.log(_sig(0.75)), 1.0 * -math.log(_sig(-1.5))],
                                            rel=1e-12)
    assert _small("sigmoid") == pytest.approx([-math.log(_sig(0.75)), -math.log(_sig(-1.5))], rel=1e-12)


def test_dpo_is_an_alias_of_sigmoid(pair_inputs):
    pc, pr, rc, rr, _ = pair_inputs
    assert get_dpo_loss("dpo") is get_dpo_loss("sigmoid")
    assert "dpo" not in dpo_loss_names() and "dpo" in dpo_loss_names(aliases=True)
    a, _, _ = dpo_loss(pc, pr, rc, rr, 0.3, "dpo", label_smoothing=0.1)
    b, _, _ = dpo_loss(pc, pr, rc, rr, 0.3, "sigmoid", label_smoothing=0.1)
    assert torch.equal(a, b)


def test_dpo_sigmoid_label_smoothing_is_cdpo(pair_inputs):
    """Conservative DPO (cDPO, Mitchell 2023), written out: −(1−ε)·logσ(β·Δ) − ε·logσ(−β·Δ), with
    Δ = (πc−πr)−(refc−refr). TRL offered this through label_smoothing until 1.16 dropped it."""
    pc, pr, rc, rr, _ = (t.float() for t in pair_inputs)
    beta, eps = 0.2, 0.1
    logits = (pc - pr) - (rc - rr)
    cdpo = (-torch.nn.functional.logsigmoid(beta * logits) * (1 - eps)
            - torch.nn.functional.logsigmoid(-beta * logits) * eps)
    ours, _, _ = dpo_loss(pc, pr, rc, rr, beta, "sigmoid", label_smoothing=eps)
    assert (ours - cdpo).abs().max().item() < 1e-6


def test_dpo_rewards_are_detached_and_losses_have_grad(pair_inputs):
    pc = pair_inputs[0].clone().requires_grad_(True)
    losses, cr, rr = dpo_loss(pc, *pair_inputs[1:4], beta=0.1)
    assert losses.requires_grad and not cr.requires_grad and not rr.requires_grad


def test_dpo_loss_errors(pair_inputs):
    pc, pr, rc, rr, _ = pair_inputs
    with pytest.raises(ValueError, match="judge_margin"):
        dpo_loss(pc, pr, rc, rr, 0.1, "rpo_sq")
    with pytest.raises(ValueError, match="unknown DPO loss 'nope'"):
        dpo_loss(pc, pr, rc, rr, 0.1, "nope")
    with pytest.raises(ValueError, match=r"unknown DPO loss 'rpo_fwd'; did you mean 'rpo_fwd_kl'\?"):
        get_dpo_loss("rpo_fwd")


def test_register_dpo_loss_dispatch_and_duplicates(pair_inputs):
    from selfalign.train import losses as L

    with pytest.raises(ValueError, match="already registered"):
        L.register_dpo_loss("dpo")(lambda delta, beta, **kw: delta)
    try:
        @L.register_dpo_loss("_test_identity")
        def _identity(delta, beta, *, label_smoothing=0.0, judge_margin=None, judge_scale=1.0):
            """``Δ`` itself (test only). Source: this test."""
            return delta

        pc, pr, rc, rr, _ = pair_inputs
        got, _, _ = dpo_loss(pc, pr, rc, rr, 0.1, "_test_identity")
        torch.testing.assert_close(got, (pc - rc) - (pr - rr))
        assert "_test_identity" in dpo_loss_names()
    finally:
        L._DPO_LOSSES.pop("_test_identity", None)


def test_dpo_config_reads_the_registry():
    from selfalign.config import validate
    from selfalign.errors import ConfigError
    from selfalign.train.config import DPOConfig

    base = dict(model="m", train_file="t.jsonl", output_dir="o")
    assert DPOConfig(**base, loss_type="dpo").loss_type == "sigmoid"  # the alias is stored by its name
    assert DPOConfig(**base, loss_type="rpo_bwd_kl").loss_type == "rpo_bwd_kl"
    with pytest.raises(ConfigError, match=r"loss_type: .*unknown DPO loss 'sigmod'; did you mean 'sigmoid'\?"):
        validate(DPOConfig, {**base, "loss_type": "sigmod"})


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
