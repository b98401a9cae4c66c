"""PPO trainer: learning on a tiny model, resume after a real kill, accumulation invariance, reward
models from `train rm`, bad inputs, NaN loss, devices."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_dpo import base_lm, make_pairs, max_diff, weights

from selfalign.errors import ConfigError, DataError, SelfalignError
from selfalign.train.config import PPOConfig
from selfalign.train.ppo import PPOTrainer, train_ppo
from selfalign.utils.metrics import read_metrics

UPPER = """
def upper(prompt, response, meta):
    letters = [c for c in response if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(1, len(letters))

def boom(prompt, response, meta):
    raise ValueError("kaput")

def nan(prompt, response, meta):
    return float("nan")
"""

KILL_SCRIPT = """
import os, signal, sys
from selfalign.train import checkpoint as ckpt
orig = ckpt.save_checkpoint
def save_then_die(root, model, optimizer, scheduler, state, keep=2):
    path = orig(root, model, optimizer, scheduler, state, keep=keep)
    if state.step == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real crash
    return path
ckpt.save_checkpoint = save_then_die
from selfalign.train.config import PPOConfig
from selfalign.train.ppo import train_ppo
train_ppo(PPOConfig.model_validate_json(open(sys.argv[1]).read()))
"""


@pytest.fixture(scope="module")
def peaked_lm(tmp_path_factory):
    """The 1-layer hidden-16 test LM with embeddings ×50: a peaked next-token distribution (entropy ≈ 4
    nats instead of a uniform 10.8), so a few hundred sampled tokens already repeat and PPO can learn."""
    from transformers import AutoModelForCausalLM

    path = Path(base_lm(tmp_path_factory.mktemp("peaked_lm")))
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(50.0)
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ppo_data")
    (d / "rew.py").write_text(UPPER)
    with (d / "prompts.jsonl").open("w") as f:
        for i in range(16):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Say something about thing {i}."}) + "\n")
    return d


def fn_reward(files, name="upper", **kw):
    return [{"type": "function", "function": f"{files / 'rew.py'}:{name}", **kw}]


def cfg_for(lm, files, out, **kw) -> PPOConfig:
    base = dict(model=lm, train_file=str(files / "prompts.jsonl"), output_dir=str(out), rewards=fn_reward(files),
                generation={"max_new_tokens": 8, "num_samples": 4}, rollout_batch_size=4, per_device_batch_size=8,
                gradient_accumulation_steps=2, max_steps=2, learning_rate=1e-2, max_length=64, seed=3,
                lr_scheduler="constant", kl_coef=0.01)
    base.update(kw)
    return PPOConfig(**base)


def rows(out) -> list[dict]:
    return [r for r in read_metrics(Path(out) / "metrics.jsonl") if "reward_raw_mean" in r]


# ----------------------------------------------------------------------------------------- learning
def test_programmatic_reward_rises_steadily(peaked_lm, files, tmp_path):
    out = train_ppo(cfg_for(peaked_lm, files, tmp_path / "out", max_steps=9))
    r = [m["reward_raw_mean"] for m in rows(tmp_path / "out")]
    assert len(r) == 9
    first, mid, last = sum(r[:3]) / 3, sum(r[3:6]) / 3, sum(r[6:]) / 3
    assert first < mid < last and last > first + 0.3, r  # rises steadily, not by luck
    for key in ("reward_raw_mean", "reward_raw_std", "score_mean", "reward_shaped_mean", "reward_shaped_std",
                "non_score_reward", "kl", "kl_coef", "entropy", "pg_clipfrac", "vf_clipfrac", "approx_kl", "vf_loss",
                "pg_loss", "explained_variance", "response_length", "no_stop_frac", "rollout_tokens_per_s",
                "train_tokens_per_s", "reward_upper_mean", "grad_norm", "critic_grad_norm", "lr"):
        assert key in out, key
    assert out["steps"] == 9 and Path(out["model_path"], "model.safetensors").is_file()


def test_tensors_stay_on_the_model_device(peaked_lm, files, tmp_path, monkeypatch):
    """Every rollout/experience tensor is on the actor's device (catches CPU tensors mixed into GPU runs;
    runs on CUDA with bf16 when a GPU is present)."""
    seen = []
    orig = PPOTrainer.experience

    def checked(self, ro, sc):
        out = orig(self, ro, sc)
        dev = next(self.actor.parameters()).device
        tensors = [*ro.tensors.values(), *out.values(), sc["raw"], sc["score"], sc["finished"], sc["lengths"]]
        seen.append(all(t.device == dev for t in tensors))
        return out

    monkeypatch.setattr(PPOTrainer, "experience", checked)
    kw = dict(mixed_precision="bf16") if torch.cuda.is_available() else dict(cpu=True)
    train_ppo(cfg_for(peaked_lm, files, tmp_path / "dev", max_steps=1, **kw))
    assert seen == [True]


# ------------------------------------------------------------------------------------------- resume
def test_resume_after_kill_matches_uninterrupted(peaked_lm, files, tmp_path):
    kw = dict(max_steps=3, save_steps=2, ppo_epochs=2, rollout_batch_size=2, generation={"max_new_tokens": 6,
              "num_samples": 2}, per_device_batch_size=2, gradient_accumulation_steps=2, critic="actor",
              lora={"r": 4, "alpha": 8, "dropout": 0.1}, critic_lora={"r": 2}, kl_target=0.05, kl_horizon=20,
              lr_scheduler="cosine", warmup_steps=1)
    full = train_ppo(cfg_for(peaked_lm, files, tmp_path / "full", **kw))
    cut = tmp_path / "cut"
    (tmp_path / "cfg.json").write_text(cfg_for(peaked_lm, files, cut, **kw).model_dump_json())
    (tmp_path / "kill.py").write_text(KILL_SCRIPT)
    env = {"SELFALIGN_NO_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(tmp_path / "kill.py"), str(tmp_path / "cfg.json"), "2"],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (cut / "checkpoints" / "step-00000002").is_dir() and not (cut / "model").exists()
    resumed = train_ppo(cfg_for(peaked_lm, files, cut, resume=True, **kw))
    assert resumed["steps"] == 3
    assert max_diff(weights(tmp_path / "full"), weights(cut)) < 1e-6  # the actor
    a = load_file(str(tmp_path / "full" / "checkpoints" / "step-00000003" / "weights.safetensors"))
    b = load_file(str(cut / "checkpoints" / "step-00000003" / "weights.safetensors"))
    assert any(k.startswith("critic.") for k in a) and max_diff(a, b) < 1e-6  # actor adapters + critic
    assert resumed["kl_coef"] == pytest.approx(full["kl_coef"], rel=1e-9) and full["kl_coef"] != 0.01
    assert [r["step"] for r in rows(cut)] == [1, 2, 3]
    assert resumed["reward_raw_mean"] == pytest.approx(full["reward_raw_mean"], abs=1e-6)


def test_batch_vs_accumulation_invariance(peaked_lm, files, tmp_path):
    kw = dict(rollout_batch_size=2, generation={"max_new_tokens": 6, "num_samples": 4})
    a = train_ppo(cfg_for(peaked_lm, files, tmp_path / "a", per_device_batch_size=8, gradient_accumulation_steps=1, **kw))
    b = train_ppo(cfg_for(peaked_lm, files, tmp_path / "b", per_device_batch_size=2, gradient_accumulation_steps=4, **kw))
    assert a["pg_loss"] == pytest.approx(b["pg_loss"], rel=1e-4, abs=1e-6)
    assert a["vf_loss"] == pytest.approx(b["vf_loss"], rel=1e-4, abs=1e-7)
    assert max_diff(weights(tmp_path / "a"), weights(tmp_path / "b")) < 1e-5


# -------------------------------------------------------------------------------- reward sources
def test_cli_train_ppo_consumes_train_rm_output(files, tmp_path):
    from selfalign.cli import main
    from selfalign.train.config import RMConfig
    from selfalign.train.rm import train_rm

    lm = base_lm(tmp_path / "lm")
    pairs = make_pairs(tmp_path / "pairs.jsonl", 8, 0)
    rm = train_rm(RMConfig(model=lm, train_file=pairs, output_dir=str(tmp_path / "rm"), max_steps=2,
                           per_device_batch_size=4, max_length=64))
    out = tmp_path / "ppo"
    rewards = f"[{{type: reward_model, model: {rm['model_path']}}}, {{type: function, function: {files}/rew.py:upper, weight: 0.5}}]"
    main(["train", "ppo", f"model={lm}", f"train_file={files / 'prompts.jsonl'}", f"output_dir={out}",
          f"rewards={rewards}", "max_steps=2", "rollout_batch_size=2", "per_device_batch_size=2",
          "generation.max_new_tokens=6", "max_length=48", "save_steps=1"])
    m = rows(out)
    assert [r["step"] for r in m] == [1, 2]
    assert all(abs(r["reward_reward_model_mean"]) < 100 and "reward_upper_mean" in r for r in m)
    # critic "auto" = the reward model's backbone with a new value head
    w = load_file(str(out / "checkpoints" / "step-00000002" / "weights.safetensors"))
    assert "critic.value_head.weight" in w and any(k.startswith("critic.backbone.") for k in w)


def test_shared_critic_verifiable_reward_drops_prompts_without_checks(tiny_model, tmp_path):
    p = tmp_path / "prompts.jsonl"
    recs = [{"id": f"c{i}", "prompt": f"Answer {i} in lowercase.", "meta": {"checks": [{"type": "lowercase"}]}}
            for i in range(4)] + [{"id": "free", "prompt": "Write anything."}]
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    judge = {"type": "judge", "judge": {"type": "function", "function": "verifiable"}, "weight": 0.5}
    out = train_ppo(PPOConfig(model=str(tiny_model), train_file=str(p), output_dir=str(tmp_path / "o"), critic="shared",
                              rewards=[{"type": "function", "function": "verifiable"}, judge], rollout_batch_size=2,
                              per_device_batch_size=2, generation={"max_new_tokens": 6}, max_steps=2, save_steps=2,
                              max_length=48, kl_estimator="salmon", gamma=1.0, lam=1.0, entropy_coef=0.01,
                              validation_split=0.25, eval_steps=1))
    assert out["train_unscorable"] == 1 and out["train_used"] == 4 and out["eval_examples"] == 1
    w = load_file(str(tmp_path / "o" / "checkpoints" / "step-00000002" / "weights.safetensors"))
    assert "value_head.weight" in w and not any(k.startswith("critic.") for k in w)
    assert 0.0 <= out["reward_verifiable_mean"] <= 1.0
    # the judge (a function judge) gives the same scores: raw reward = 1.5 × the verifiable score
    assert out["reward_raw_mean"] == pytest.approx(1.5 * out["reward_verifiable_mean"])
    evals = [r["step"] for r in read_metrics(tmp_path / "o" / "metrics.jsonl") if "eval_reward_raw_mean" in r]
    assert evals == [0, 1, 2]  # before training, every eval_steps, at the end


# ------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs_fail_before_any_rollout(peaked_lm, files, tmp_path, monkeypatch):
    from selfalign.config import load_config
    from selfalign.generation.hf import HFEngine

    def no_rollout(*a, **k):
        raise AssertionError("a rollout started")

    monkeypatch.setattr(HFEngine, "generate_ids", no_rollout)
    with pytest.raises(ConfigError, match=r"rewards\.0\.model: .* without a scalar reward head"):
        train_ppo(cfg_for(peaked_lm, files, tmp_path / "a", rewards=[{"type": "reward_model", "model": peaked_lm}]))
    with pytest.raises(ConfigError, match=r"rewards\.0 \(boom\) raised ValueError: kaput.*before any rollout"):
        train_ppo(cfg_for(peaked_lm, files, tmp_path / "b", rewards=fn_reward(files, "boom")))
    with pytest.raises(ConfigError, match=r"rewards\.0 \(nan\).*returned nan.*before any rollout"):
        train_ppo(cfg_for(peaked_lm, files, tmp_path / "c", rewards=fn_reward(files, "nan")))
    with pytest.raises(ConfigError, match=r"rewards\.0\.function: .*no such file"):
        train_ppo(cfg_for(peaked_lm, files, tmp_path / "d", rewards=fn_reward(files.parent / "nope", "x")))
    # prompts none of which the verifiable reward can score (no meta.checks / meta.answer)
    with pytest.raises(DataError, match=r"prompts\.jsonl: no usable prompts among 16 records .*rewards\.0"):
        train_ppo(cfg_for(peaked_lm, files, tmp_path / "e", rewards=[{"type": "function", "function": "verifiable"}]))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        train_ppo(cfg_for(peaked_lm, files, tmp_path / "f", train_file=str(empty)))
    base = [f"model={peaked_lm}", "train_file=p.jsonl", "output_dir=o", "rewards=[{type: judge, judge: {type: rubric}}]"]
    for bad, key in (("ppo_epochs=0", "ppo_epochs"), ("kl_target=0", "kl_target"), ("kl_target=-1", "kl_target"),
                     ("rollout_batch_size=3", "rollout_batch_size"), ("critic=reward_model", "critic")):
        with pytest.raises(ConfigError, match=key):
            load_config(PPOConfig, None, [*base, bad])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(peaked_lm, files, tmp_path, monkeypatch):
    from selfalign.train import rl_losses

    orig, calls = rl_losses.clipped_policy_loss, []

    def nan_from_step_2(*a, **k):
        calls.append(1)
        loss, clipped, akl = orig(*a, **k)
        return (loss * float("nan") if len(calls) > 1 else loss), clipped, akl

    monkeypatch.setattr(rl_losses, "clipped_policy_loss", nan_from_step_2)
    out = tmp_path / "nan"
    with pytest.raises(SelfalignError, match=r"step 2: the PPO loss is not finite.*step-00000001"):
        train_ppo(cfg_for(peaked_lm, files, out, max_steps=3, save_steps=1, per_device_batch_size=16,
                          gradient_accumulation_steps=1))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000001"]
    assert not (out / "model").exists()


def test_example_config_validates():
    from selfalign.config import load_config

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(PPOConfig, root / "examples" / "ppo.yaml")
    assert cfg.model == "smollm2-135m" and cfg.rewards[0].function == "verifiable"
    assert (root / cfg.train_file).is_file() and (root / cfg.validation_file).is_file()


def test_engine_generate_ids_matches_generate(peaked_lm):
    """The token-level entry PPO uses samples exactly what `generate` samples for the same seeds."""
    from selfalign.generation import SamplingParams
    from selfalign.generation.hf import HFEngine, parse_row, row_seed

    engine = HFEngine(peaked_lm, batch_size=3)
    prompts = ["Say something.", "A longer prompt about thing 7, please.", "Hi"]
    params = SamplingParams(num_samples=2, temperature=1.0, max_new_tokens=6, seed=5)
    texts = [[r["text"] for r in rs] for rs in engine.generate(prompts, params, keys=["a", "b", "c"])]
    rows = [engine.encode(p) for p in prompts for _ in range(2)]
    seeds = [row_seed(5, key, k) for key in "abc" for k in range(2)]
    gen = engine.generate_ids(rows, seeds, params)
    eos = set(engine.eos_ids)
    got = [parse_row(engine.tokenizer, g, eos, eos | {engine.pad_id}, [])["text"] for g in gen]
    assert got == [t for ts in texts for t in ts]
