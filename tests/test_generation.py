"""Generation: sampling maths, determinism, stop strings, finish reasons, sharded resume, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from selfalign.errors import ConfigError, DataError
from selfalign.generation import SamplingParams, build_engine, generate_records
from selfalign.generation.engine import check_prompt_records, shard_dir_for
from selfalign.generation.hf import RowSampler, parse_row, row_seed
from selfalign.generation.rng import row_uniform, row_uniforms

PROMPTS = ["What is the capital of France?", "Name three colours.",
           [{"role": "user", "content": "Write a haiku about rain."}], "Hi", "Explain gravity in one line."]


@pytest.fixture(scope="module")
def engine(tiny_model):
    return build_engine({"model": str(tiny_model), "batch_size": 8})


def _sampled(n=2, **kw):
    base = dict(num_samples=n, temperature=1.0, top_p=0.95, top_k=100, max_new_tokens=6, seed=3)
    base.update(kw)
    return SamplingParams(**base)


# ------------------------------------------------------------------------------------- sampling maths
def test_row_sampler_matches_softmax_frequencies():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    probs = torch.softmax(logits / 0.8, -1)
    n = 4000
    sampler = RowSampler([row_seed(0, "k", i) for i in range(n)], temperature=0.8)
    out = sampler(None, logits.repeat(n, 1))
    picks = out.argmax(-1)
    assert torch.all(out.max(-1).values == 0.0) and torch.all(torch.isinf(out).sum(-1) == 3)
    freq = torch.bincount(picks, minlength=4).float() / n
    assert torch.allclose(freq, probs, atol=0.03), (freq, probs)


def test_row_sampler_top_k_and_top_p_restrict_support():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    n = 500
    seeds = [row_seed(1, "x", i) for i in range(n)]
    picks_p = RowSampler(seeds, 1.0, top_p=0.7)(None, logits.repeat(n, 1)).argmax(-1)
    assert set(picks_p.tolist()) == {0, 1}  # mass before token 2 is 0.8 ≥ 0.7 → cut
    picks_k = RowSampler(seeds, 1.0, top_k=1)(None, logits.repeat(n, 1)).argmax(-1)
    assert set(picks_k.tolist()) == {0}
    with pytest.raises(ValueError):
        RowSampler(seeds, 0.0)


def _reference_top_p(logits, seeds, temperature, top_p):
    """Straightforward per-row nucleus sampling over the fully sorted vocabulary."""
    picks = []
    for row, seed in zip(logits, seeds):
        u = row_uniform(seed, 0)  # the first decoding step's number (generation/rng.py)
        p, order = torch.sort(torch.softmax(row / temperature, -1), descending=True)
        p = p.masked_fill(p.cumsum(-1) - p >= top_p, 0.0)
        cdf = p.cumsum(-1)
        pos = int(torch.searchsorted(cdf, torch.tensor([u * cdf[-1].item()]), right=True).clamp(max=len(p) - 1))
        picks.append(int(order[pos]))
    return picks


@pytest.mark.parametrize("spread", [0.2, 8.0])  # flat logits: nucleus wider than 256 candidates
def test_row_sampler_top_p_equals_full_sort_reference(spread):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 2000, generator=g) * spread
    seeds = [row_seed(5, "r", i) for i in range(64)]
    got = RowSampler(seeds, 0.9, top_p=0.9)(None, logits).argmax(-1).tolist()
    assert got == _reference_top_p(logits, seeds, 0.9, 0.9)


def test_row_uniforms_match_the_python_definition_bit_for_bit():
    import random

    rng = random.Random(0)
    seeds = [rng.getrandbits(63) for _ in range(500)] + [0, 1, (1 << 63) - 1]
    for step in (0, 1, 63, 10**6):
        assert row_uniforms(torch.tensor(seeds), step).tolist() == [row_uniform(s, step) for s in seeds]
    # a hand-checked value: SplitMix64 of γ (seed 0, step 0) is 0xE220A8397B1DCDAF
    assert row_uniform(0, 0) == (0xE220A8397B1DCDAF >> 40) / 2**24
    u = row_uniforms(torch.tensor(seeds[:500]), 3)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0 and abs(float(u.mean()) - 0.5) < 0.05


def test_row_sampler_advances_one_step_per_call_and_keeps_rows():
    seeds = [row_seed(2, "s", i) for i in range(4)]
    flat = torch.zeros(4, 1000)
    s = RowSampler(seeds, 1.0)
    first, second = s.sample(flat)[:, 0].tolist(), s.sample(flat)[:, 0].tolist()
    assert first == [int(row_uniform(x, 0) * 1000) for x in seeds]
    assert second == [int(row_uniform(x, 1) * 1000) for x in seeds]
    s.keep([1, 3])  # rows 0 and 2 finished: the others keep their own stream
    assert s.sample(flat[:2])[:, 0].tolist() == [int(row_uniform(seeds[i], 2) * 1000) for i in (1, 3)]


def test_row_seed_is_stable_and_distinct():
    assert row_seed(0, "a", 0) == row_seed(0, "a", 0)
    assert len({row_seed(0, "a", 0), row_seed(1, "a", 0), row_seed(0, "b", 0), row_seed(0, "a", 1)}) == 4


def test_sampling_params_validation():
    assert SamplingParams(stop="###").stop == ["###"]
    with pytest.raises(ValueError):
        SamplingParams(stop=[""])
    with pytest.raises(ValueError):
        SamplingParams(top_p=0.0)


# ------------------------------------------------------------------------------------- finish reasons
def test_parse_row_finish_reasons(tokenizer):
    eos = tokenizer.eos_token_id
    hello = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    r = parse_row(tokenizer, hello + [eos, eos, eos], {eos}, {eos}, [])
    assert r == {"text": "hello world", "finish": "stop", "num_tokens": len(hello) + 1}
    r = parse_row(tokenizer, hello, {eos}, {eos}, [])
    assert r == {"text": "hello world", "finish": "length", "num_tokens": len(hello)}
    r = parse_row(tokenizer, hello, {eos}, {eos}, [" wor"])
    assert r["text"] == "hello" and r["finish"] == "stop"


# ----------------------------------------------------------------------------------------- engine
def test_same_seed_same_output_and_batch_independence(engine):
    p = _sampled()
    a = engine.generate(PROMPTS, p, keys=[str(i) for i in range(len(PROMPTS))])
    b = engine.generate(PROMPTS, p, keys=[str(i) for i in range(len(PROMPTS))])
    assert a == b
    assert all(len(x) == 2 for x in a)
    assert all(r["finish"] in ("stop", "length") and 0 < r["num_tokens"] <= 6 for x in a for r in x)
    # reversed order and a different batch size: each prompt's samples stay the same
    old = engine.batch_size
    engine.batch_size = 2
    try:
        c = engine.generate(PROMPTS[::-1], p, keys=[str(i) for i in range(len(PROMPTS))][::-1])
    finally:
        engine.batch_size = old
    assert c[::-1] == a
    d = engine.generate(PROMPTS, _sampled(seed=4), keys=[str(i) for i in range(len(PROMPTS))])
    assert d != a
    assert a[0][0]["text"] != a[0][1]["text"]  # samples of one prompt differ


def test_greedy_samples_are_identical(engine):
    g = engine.generate(PROMPTS[:2], SamplingParams(num_samples=3, temperature=0.0, max_new_tokens=6))
    for samples in g:
        assert samples[0] == samples[1] == samples[2]


def test_stop_string_cuts_text(engine):
    p = _sampled(n=1, max_new_tokens=16)
    full = engine.generate(PROMPTS[:1], p)[0][0]
    text = full["text"]
    assert len(text) > 12
    stop = text[6:10]
    first = text.find(stop)
    cut = engine.generate(PROMPTS[:1], p.model_copy(update={"stop": [stop]}))[0][0]
    assert cut["finish"] == "stop"
    assert cut["text"] == text[:first]
    assert cut["num_tokens"] < full["num_tokens"]


def test_engine_restores_training_mode(tiny_model, tokenizer):
    from selfalign.models.load import load_causal_lm

    lm = load_causal_lm(tiny_model)
    lm.train()
    eng = build_engine({"model": "in-memory"}, model=lm, tokenizer=tokenizer)
    eng.generate(["hi"], SamplingParams(max_new_tokens=2))
    assert lm.training


# ----------------------------------------------------------------------------------- records+shards
def test_check_prompt_records():
    recs = check_prompt_records([{"prompt": "a"}, {"id": 7, "prompt": [{"role": "user", "content": "b"}]}])
    assert recs[0]["id"] == "0" and recs[1]["id"] == 7
    with pytest.raises(DataError, match="prompt"):
        check_prompt_records([{"id": "x", "prompt": 3}])
    with pytest.raises(DataError, match="duplicate id"):
        check_prompt_records([{"id": "x", "prompt": "a"}, {"id": "x", "prompt": "b"}])


class _Counting:
    """Wraps an engine; counts generate calls and can fail after ``fail_after`` calls (a kill)."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.fail_after, self.calls = inner, fail_after, 0
        self.name = inner.name

    def fingerprint(self):
        return self.inner.fingerprint()

    def generate(self, prompts, params, keys=None, on_progress=None):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        return self.inner.generate(prompts, params, keys=keys, on_progress=on_progress)


def test_shard_resume_gives_identical_output(engine, tmp_path):
    records = [{"id": f"p{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    p = _sampled(max_new_tokens=6)
    clean = generate_records(engine, records, p, tmp_path / "clean" / "data.jsonl", shard_size=2,
                             progress=False)
    out = tmp_path / "run" / "data.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_records(_Counting(engine, fail_after=2), records, p, out, shard_size=2, progress=False)
    sdir = shard_dir_for(out)
    assert sorted(f.name for f in sdir.glob("shard-*.jsonl")) == ["shard-00000.jsonl", "shard-00001.jsonl"]
    assert not out.exists()
    before = {f.name: f.stat().st_mtime_ns for f in sdir.glob("shard-*.jsonl")}
    again = _Counting(engine)
    stats: dict = {}
    merged = generate_records(again, records, p, out, shard_size=2, progress=False, keep_shards=True,
                              stats=stats)
    assert again.calls == 1  # only the third shard was generated
    assert stats["shards_reused"] == 2 and stats["shards_generated"] == 1
    assert {f.name: f.stat().st_mtime_ns for f in sdir.glob("shard-0000[01].jsonl")} == before
    assert merged == clean
    assert out.read_text() == (tmp_path / "clean" / "data.jsonl").read_text()
    assert [r["id"] for r in merged] == [r["id"] for r in records]


def test_shards_from_other_settings_are_refused(engine, tmp_path):
    records = [{"id": "a", "prompt": "hi"}, {"id": "b", "prompt": "yo"}]
    out = tmp_path / "data.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_records(_Counting(engine, fail_after=1), records, _sampled(max_new_tokens=3), out,
                         shard_size=1, progress=False)
    with pytest.raises(DataError, match="different settings"):
        generate_records(engine, records, _sampled(max_new_tokens=4), out, shard_size=1, progress=False)
    res = generate_records(engine, records, _sampled(max_new_tokens=4), out, shard_size=1, progress=False,
                           overwrite=True)
    assert len(res) == 2 and not shard_dir_for(out).exists()


def test_build_engine_rejects_loaded_model_without_tokenizer(tiny_model):
    from selfalign.models.load import load_causal_lm

    with pytest.raises(ConfigError):
        build_engine({"model": "x"}, model=load_causal_lm(tiny_model))


# -------------------------------------------------------------------------------------------- CLI
def _cli(main, argv) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_cli_generate(tiny_model, tmp_path):
    from selfalign.cli import main

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n"
                               for i, p in enumerate(PROMPTS[:3])))
    out = tmp_path / "cand.jsonl"
    assert _cli(main, ["generate", f"model={tiny_model}", f"prompts_file={prompts}", f"output={out}",
                       "num_samples=2", "max_new_tokens=5", "seed=1"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2"]
    assert all(len(r["responses"]) == 2 for r in rows)
    stats = json.loads((tmp_path / "cand.stats.json").read_text())
    assert stats["responses"] == 6 and stats["tokens"] == sum(x["num_tokens"] for r in rows
                                                               for x in r["responses"])
    assert math.isfinite(stats["tokens_per_s"])
    assert _cli(main, ["generate", f"model={tiny_model}", f"input={prompts}", f"output={out}",
                       "temprature=1"]) == 2


@pytest.mark.parametrize("kind", ["greedy", "sampled", "stop"])
def test_pruning_decode_matches_transformers_generate(tiny_model, kind):
    """Our decode loop (finished rows leave the batch) gives the tokens transformers' generate gives."""
    pruned = build_engine({"model": str(tiny_model), "batch_size": 16})
    plain = build_engine({"model": str(tiny_model), "batch_size": 16, "prune": False})
    assert pruned.prune and not plain.prune
    if kind == "greedy":
        p = SamplingParams(num_samples=1, temperature=0.0, max_new_tokens=12)
    else:
        p = _sampled(n=3, max_new_tokens=12)
    keys = [str(i) for i in range(len(PROMPTS))]
    if kind == "stop":  # a stop string that ends some rows early
        first = plain.generate(PROMPTS, p, keys=keys)
        p = p.model_copy(update={"stop": [first[0][0]["text"][3:6]]})
    a = pruned.generate(PROMPTS, p, keys=keys)
    b = plain.generate(PROMPTS, p, keys=keys)
    assert a == b
    if kind == "stop":
        assert any(r["finish"] == "stop" for x in a for r in x)


def test_pruning_decode_drops_finished_rows(tiny_model, monkeypatch):
    """Rows that hit EOS leave the batch: later forward passes see fewer rows."""
    eng = build_engine({"model": str(tiny_model), "batch_size": 16})
    eos = eng.eos_ids[0]
    sizes = []
    real = eng._last_logits

    def fake(ids, mask, pos, cache):
        logits = real(ids, mask, pos, cache)
        sizes.append(ids.shape[0])
        if len(sizes) == 2:  # at the 2nd step, rows 0 and 2 of the batch say EOS
            logits[[0, 2]] = -1e9
            logits[[0, 2], eos] = 0.0
        return logits

    monkeypatch.setattr(eng, "_last_logits", fake)
    out = eng.generate(PROMPTS[:4], SamplingParams(num_samples=1, temperature=0.0, max_new_tokens=5))
    assert sizes[:2] == [4, 4] and all(s == 2 for s in sizes[2:]) and len(sizes) == 5
    assert sorted(r[0]["num_tokens"] for r in out) == [2, 2, 5, 5]
