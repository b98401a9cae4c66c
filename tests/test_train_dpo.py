"""DPO trainer: resume after a real kill, batch/accumulation invariance, learning, reference modes, CLI."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selfalign.errors import DataError
from selfalign.train.config import DPOConfig
from selfalign.train.dpo import train_dpo
from selfalign.utils.metrics import read_metrics

GOOD = ["sun", "tree", "river", "apple", "green", "bright", "warm", "bird"]
BAD = ["rock", "dust", "ash", "grey", "cold", "dark", "mud", "fog"]

KILL_SCRIPT = """
import os, signal, sys
from selfalign.train import checkpoint as ckpt
orig = ckpt.save_checkpoint
def save_then_die(root, model, optimizer, scheduler, state, keep=2):
    path = orig(root, model, optimizer, scheduler, state, keep=keep)
    if state.step == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real crash
    return path
ckpt.save_checkpoint = save_then_die
kind = sys.argv[2]
if kind == "dpo":
    from selfalign.train.config import DPOConfig as C
    from selfalign.train.dpo import train_dpo as fn
else:
    from selfalign.train.config import RMConfig as C
    from selfalign.train.rm import train_rm as fn
fn(C.model_validate_json(open(sys.argv[1]).read()))
"""


def run_and_kill(cfg, kind: str, kill_at: int, tmp: Path) -> int:
    """Run a trainer in a subprocess that SIGKILLs itself right after saving checkpoint ``kill_at``."""
    (tmp / "cfg.json").write_text(cfg.model_dump_json())
    (tmp / "kill.py").write_text(KILL_SCRIPT)
    env = {"SELFALIGN_NO_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(tmp / "kill.py"), str(tmp / "cfg.json"), kind, str(kill_at)],
                          cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode


def base_lm(path: Path) -> str:
    """A tiny causal LM (hidden 16, one layer), real tokenizer WITHOUT chat template: short, fast rows."""
    from selfalign.models.tiny import tiny_model_dir

    tiny_model_dir(path, hidden_size=16, num_layers=1)
    (path / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((path / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (path / "tokenizer_config.json").write_text(json.dumps(cfg))
    return str(path)


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    return base_lm(tmp_path_factory.mktemp("small_lm"))


def make_pairs(path: Path, n: int, seed: int, scores: bool = True) -> str:
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            rec = {"prompt": f"Describe thing {rng.randint(0, 999)} in three words.",
                   "chosen": " ".join(rng.sample(GOOD, 3)), "rejected": " ".join(rng.sample(BAD, 3))}
            if scores:
                rec["chosen_score"], rec["rejected_score"] = rng.uniform(3, 5), rng.uniform(0, 2)
            f.write(json.dumps(rec) + "\n")
    return str(path)


def weights(out: str | Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(out) / "model" / "model.safetensors"))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def cfg_for(small_lm, train, out, **kw) -> DPOConfig:
    base = dict(model=small_lm, train_file=train, output_dir=str(out), learning_rate=2e-3, max_length=64,
                per_device_batch_size=2, seed=3, weight_decay=0.01, warmup_steps=1)
    base.update(kw)
    return DPOConfig(**base)


def test_resume_after_kill_matches_uninterrupted_lora(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 12, 0)
    # LoRA with adapter dropout: resuming must also restore the RNG states to match
    kw = dict(max_steps=6, save_steps=3, lora={"r": 4, "alpha": 8, "dropout": 0.1}, lr_scheduler="cosine")
    full = train_dpo(cfg_for(small_lm, train, tmp_path / "full", **kw))
    assert full["steps"] == 6
    cut = tmp_path / "cut"
    rc = run_and_kill(cfg_for(small_lm, train, cut, **kw), "dpo", 3, tmp_path)
    assert rc == -signal.SIGKILL
    assert (cut / "checkpoints" / "step-00000003" / "state.json").is_file()
    assert not (cut / "model").exists()
    resumed = train_dpo(cfg_for(small_lm, train, cut, resume=True, **kw))
    assert resumed["steps"] == 6
    assert max_diff(weights(tmp_path / "full"), weights(cut)) < 1e-6
    steps = [r["step"] for r in read_metrics(cut / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 1-3 before the kill, 4-6 after
    assert resumed["loss"] == pytest.approx(full["loss"], abs=1e-6)


def test_batch_vs_accumulation_invariance(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 16, 1)
    a = train_dpo(cfg_for(small_lm, train, tmp_path / "a", per_device_batch_size=8, gradient_accumulation_steps=1,
                          max_steps=2, sft_loss_weight=0.5))
    b = train_dpo(cfg_for(small_lm, train, tmp_path / "b", per_device_batch_size=1, gradient_accumulation_steps=8,
                          max_steps=2, sft_loss_weight=0.5))
    la = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert len(la) == len(lb) == 2
    assert la == pytest.approx(lb, rel=1e-5, abs=1e-6)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    assert max_diff(weights(tmp_path / "a"), weights(tmp_path / "b")) < 1e-5


def test_dpo_learns_preferences(small_lm, tmp_path):
    train = make_pairs(tmp_path / "train.jsonl", 24, 2)
    val = make_pairs(tmp_path / "val.jsonl", 16, 99)  # unseen prompts and word combinations
    out = train_dpo(cfg_for(small_lm, train, tmp_path / "out", validation_file=val, per_device_batch_size=8,
                            num_epochs=2, learning_rate=1e-2, beta=0.5))
    rows = [r for r in read_metrics(tmp_path / "out" / "metrics.jsonl") if "acc" in r]
    assert rows[0]["acc"] == 0.0  # policy == reference at the start: no implicit reward yet
    assert out["eval_acc"] > 0.9
    assert out["eval_rewards_chosen_mean"] > out["eval_rewards_rejected_mean"]
    for key in ("loss", "preference_loss", "sft_loss", "acc", "rewards_chosen_mean", "rewards_rejected_mean",
                "margin", "grad_norm", "lr", "tokens_per_s"):
        assert key in rows[-1]
    from selfalign.models.load import load_causal_lm

    assert load_causal_lm(out["model_path"]).config.num_hidden_layers == 1


def test_precomputed_reference_equals_online_reference(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 8, 4)
    online = train_dpo(cfg_for(small_lm, train, tmp_path / "online", max_steps=2))
    pre = train_dpo(cfg_for(small_lm, train, tmp_path / "pre", max_steps=2, precompute_ref_logps=True))
    assert (tmp_path / "pre" / "ref_logps.safetensors").is_file()
    assert pre["loss"] == pytest.approx(online["loss"], rel=1e-5)
    assert max_diff(weights(tmp_path / "online"), weights(tmp_path / "pre")) < 1e-5


def test_lora_adapter_only_and_loss_types(small_lm, tmp_path):
    train = make_pairs(tmp_path / "pairs.jsonl", 4, 5)
    out = train_dpo(cfg_for(small_lm, train, tmp_path / "lora", max_steps=1, lora={"r": 2}, save_adapter_only=True,
                            loss_type="rpo_fwd_kl", judge_scale=0.5, average_log_prob=True))
    model_dir = Path(out["model_path"])
    assert (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").is_file()
    from selfalign.models.load import load_causal_lm

    assert load_causal_lm(model_dir) is not None
    assert out["loss"] > 0


def test_bad_inputs(small_lm, tmp_path):
    p = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "a", "chosen": "same", "rejected": "same"},
            {"prompt": "b", "chosen": "x " * 200, "rejected": "y"},
            {"prompt": "c", "chosen": "good", "rejected": "bad"},
            {"prompt": "d", "chosen": "fine", "rejected": "poor"}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = train_dpo(cfg_for(small_lm, str(p), tmp_path / "o", max_steps=1, truncation="drop", max_length=48))
    assert out["train_identical_pairs"] == 1 and out["train_dropped_too_long"] == 1 and out["train_used"] == 2
    # a loss that needs judge scores names the record without them
    with pytest.raises(DataError, match=r"pairs.jsonl:2: chosen_score"):
        train_dpo(cfg_for(small_lm, str(p), tmp_path / "o2", max_steps=1, loss_type="rpo_sq"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        train_dpo(cfg_for(small_lm, str(empty), tmp_path / "o3", max_steps=1))
    same = tmp_path / "same.jsonl"
    same.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(DataError, match="chosen == rejected"):
        train_dpo(cfg_for(small_lm, str(same), tmp_path / "o4", max_steps=1))


def test_cli_train_dpo_chat_template(tiny_model, small_lm, tmp_path):
    from selfalign.cli import main
    from selfalign.models.load import load_causal_lm

    train = make_pairs(tmp_path / "pairs.jsonl", 4, 6)
    out = tmp_path / "cli"
    main(["train", "dpo", f"model={tiny_model}", f"train_file={train}", f"output_dir={out}", "max_steps=1",
          "per_device_batch_size=2", "beta=0.2", "loss_type=ipo"])
    assert load_causal_lm(out / "model") is not None
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r] == [1]
    with pytest.raises(SystemExit) as e:
        main(["train", "dpo", f"model={small_lm}", f"train_file={train}", f"output_dir={out}", "betta=0.2"])
    assert e.value.code == 2


def test_cli_unknown_loss_type_names_the_closest(tmp_path, capsys):
    from selfalign.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "dpo", "model=unused", "train_file=unused.jsonl", f"output_dir={tmp_path}",
              "loss_type=rpo_bwd"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "loss_type" in err and "did you mean 'rpo_bwd_kl'?" in err


def test_dpo_alias_trains_as_sigmoid(small_lm, tmp_path):
    """loss_type=dpo (NeMo-Aligner's name) is the sigmoid loss: same run, same loss."""
    train = make_pairs(tmp_path / "pairs.jsonl", 4, 8)
    a = train_dpo(cfg_for(small_lm, train, tmp_path / "a", max_steps=1, loss_type="dpo"))
    b = train_dpo(cfg_for(small_lm, train, tmp_path / "b", max_steps=1, loss_type="sigmoid"))
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)


def test_reference_cache_is_reused(tmp_path):
    from selfalign.train.dpo import precompute_reference
    from selfalign.train.loop import make_accelerator

    cfg = DPOConfig(model="unused", train_file="unused", output_dir=str(tmp_path), per_device_batch_size=2)
    acc = make_accelerator(cfg)
    calls = []

    def ref_fn(batch):  # a stand-in reference: any deterministic function of the batch
        calls.append(1)
        return batch["input_ids"].float().sum(-1) / 10

    from selfalign.train.data import PairExample

    def sets():
        return [[PairExample([1, 2], [3, 4], [1, 2], [5]), PairExample([6], [7], [6], [8, 9]),
                 PairExample([1], [2], [1], [3])], [PairExample([4], [5], [4], [6])]]

    first, cache = sets(), tmp_path / "ref.safetensors"
    assert precompute_reference(cfg, first, ref_fn, acc, 0, cache, "k1") is False
    n = len(calls)
    assert first[0][0].ref_chosen == pytest.approx(1.0) and first[0][0].ref_rejected == pytest.approx(0.8)
    second = sets()
    assert precompute_reference(cfg, second, ref_fn, acc, 0, cache, "k1") is True and len(calls) == n
    assert [(e.ref_chosen, e.ref_rejected) for s in second for e in s] == \
        [(e.ref_chosen, e.ref_rejected) for s in first for e in s]
    assert precompute_reference(cfg, sets(), ref_fn, acc, 0, cache, "k2") is False  # another key: recompute


def test_fused_and_per_tensor_adamw_agree(small_lm, tmp_path):
    """The fused AdamW kernel (default) and PyTorch's per-tensor AdamW make the same updates."""
    from selfalign.train.loop import make_optimizer

    train = make_pairs(tmp_path / "pairs.jsonl", 8, 5)
    fused = train_dpo(cfg_for(small_lm, train, tmp_path / "fused", max_steps=3))
    plain = train_dpo(cfg_for(small_lm, train, tmp_path / "plain", max_steps=3, fused_optimizer=False))
    assert fused["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    assert max_diff(weights(tmp_path / "fused"), weights(tmp_path / "plain")) < 1e-5
    lin = torch.nn.Linear(3, 2)
    assert make_optimizer(lin, cfg_for(small_lm, train, tmp_path / "x")).defaults["fused"] is True
    assert not make_optimizer(lin, cfg_for(small_lm, train, tmp_path / "x", fused_optimizer=False)).defaults["fused"]
