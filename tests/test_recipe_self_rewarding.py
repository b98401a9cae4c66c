"""End to end: the self-rewarding recipe on a tiny model, 2 iterations, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

PROMPTS = [
    {"id": f"p{i}", "prompt": text, "meta": {"checks": checks}}
    for i, (text, checks) in enumerate([
        ("Say hello in all lowercase.", [{"type": "lowercase"}]),
        ("Name a fruit. Use no commas.", [{"type": "no_commas"}]),
        ("Describe rain in under 10 words.", [{"type": "max_words", "n": 10}]),
        ("Mention the word 'sun'.", [{"type": "include_keywords", "keywords": ["sun"]}]),
        ("Write one short line about cats.", [{"type": "max_words", "n": 12}]),
        ("Give a color in lowercase.", [{"type": "lowercase"}]),
    ])
]


def _write(tmp_path: Path, tiny_model: Path, judge: dict, extra: dict | None = None) -> Path:
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    held = tmp_path / "heldout.jsonl"
    held.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS[:3]))
    cfg = {
        "recipe": "self_rewarding", "name": "e2e", "output_root": str(tmp_path / "runs"),
        "model": str(tiny_model), "seed": 0, "iterations": 2, "prompts_file": str(data),
        "heldout_file": str(held),
        "generate": {"num_samples": 3, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8,
                     "batch_size": 16},
        "judge": judge,
        "pairs": {"strategy": "max_min", "include_unfinished": True},
        "train": {"learning_rate": 1e-3, "per_device_batch_size": 2, "max_length": 96, "save_steps": 1,
                  "beta": [0.1, 0.05]},
        "validation": {"max_new_tokens": 8, "win_rate_judge": {"type": "rubric", "mode": "expected",
                                                               "model": "base"}},
        **(extra or {}),
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _selfalign(*args, **kw):
    env = {**os.environ, "SELFALIGN_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-m", "selfalign", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_self_rewarding_kill_and_resume(tmp_path, tiny_model):
    cfg = _write(tmp_path, tiny_model, {"type": "rubric", "model": "self", "mode": "expected"})
    run_dir = tmp_path / "runs" / "e2e"
    # first attempt: killed (SIGKILL) as soon as iteration 1's training has finished; the per-iteration
    # beta given on the command line (as `selfalign run --help` shows) is what each train stage runs with
    beta = "train.beta=[0.5,0.05]"
    p = _selfalign("run", str(cfg), beta)
    marker = run_dir / "r1s4-train" / "manifest.json"
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if marker.exists() and json.loads(marker.read_text()).get("status") == "done":
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stdout.read()
    assert not (run_dir / "r2s4-train" / "manifest.json").exists()
    before = {d.name: json.loads((d / "manifest.json").read_text())
              for d in run_dir.iterdir() if (d / "manifest.json").exists()}
    # the same command again: continues, never redoes finished stages
    p = _selfalign("run", str(cfg), beta)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    after = {d.name: json.loads((d / "manifest.json").read_text())
             for d in run_dir.iterdir() if (d / "manifest.json").exists()}
    for name, man in before.items():
        if man["status"] == "done":
            assert after[name]["finished"] == man["finished"] and after[name]["attempts"] == 1, name
            assert f"{name}: done earlier" in out
    assert [after[f"r{t}s4-train"]["config"]["options"]["beta"] for t in (1, 2)] == [0.5, 0.05]
    ran = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert ran["train"]["beta"] == [0.5, 0.05]  # config.yaml is what ran
    expected = {"r0s2-validate", "r1s1-generate", "r1s2-judge", "r1s3-pair", "r1s4-train", "r1s5-validate",
                "r2s1-generate", "r2s2-judge", "r2s3-pair", "r2s4-train", "r2s5-validate"}
    assert expected <= set(after) and all(after[n]["status"] == "done" for n in expected)
    # metrics with the names users expect, per step
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if x["stage"] == "r2s4-train"]
    assert train and {"loss", "preference_loss", "acc", "rewards_chosen_mean", "grad_norm", "lr"} <= set(train[-1])
    val = after["r2s5-validate"]["metrics"]
    assert 0.0 <= val["verifiable_pass_rate"] <= 1.0 and val["win_rate_n"] == 3
    assert (run_dir / "report.html").is_file() and "data:image/png;base64" in (run_dir / "report.html").read_text()
    assert "selfalign run summary" in out
    # the model of iteration 2 loads
    from selfalign.models.load import load_causal_lm

    load_causal_lm(run_dir / "r2s4-train" / "model")


def test_programmatic_judge_and_unknown_key(tmp_path, tiny_model):
    cfg = _write(tmp_path, tiny_model, {"type": "function", "function": "verifiable"},
                 {"iterations": 1, "validation": {"enabled": False}})
    p = _selfalign("run", str(cfg), "train.learnin_rate=1e-4")
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 2 and "train.learning_rate" in out
    assert not (tmp_path / "runs" / "e2e").exists()


def test_meta_rewarding_mixes_capped_meta_pairs(tmp_path, tiny_model, monkeypatch):
    """Meta-rewarding end to end in-process: reasoned self-judge (K=3), expected-mode meta-judge,
    meta pairs made, capped at pct of the training slots, and trained on together with the main pairs.

    A random tiny model has no opinions (it never ranks a score token first, and its P("A") barely
    depends on the judgements, so every Elo fit is a tie), so the two verdict distributions are
    faked (seeded); everything else — sampling the justifications, the meta prompts, Elo, the cap,
    mixing, DPO — is the real pipeline."""
    import math

    import torch

    from selfalign.judges.meta import MetaJudge
    from selfalign.judges.rubric import RubricJudge
    from selfalign.recipes.self_rewarding import main

    gen = torch.Generator().manual_seed(0)

    def fake_logprobs(self, texts, continuations, label, with_top=False):
        vals = -torch.rand((len(texts), len(self.cfg.values())), generator=gen) * 3.0
        return torch.cat([vals, vals.max(-1, keepdim=True).values], dim=-1) if with_top else vals

    monkeypatch.setattr(RubricJudge, "_score_logprobs", fake_logprobs)
    monkeypatch.setattr(MetaJudge, "_first_wins_prob",
                        lambda self, texts: torch.rand(len(texts), generator=gen).tolist())
    prompts = PROMPTS * 2
    cfg = _write(tmp_path, tiny_model, {"type": "rubric", "model": "self", "mode": "reasoned", "num_evals": 3,
                                        "max_new_tokens": 6},
                 {"iterations": 1, "meta_judge": {"enabled": True, "pct": 0.3, "mode": "expected",
                                                  "max_class_frac": 1.0, "include_unfinished": True},
                  # meta pairs (rubric prompt + judgement) longer than this are skipped, never truncated
                  "train": {"learning_rate": 1e-3, "per_device_batch_size": 2, "max_length": 1024},
                  "validation": {"enabled": False}})
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({**p, "id": f"{p['id']}-{k}"}) + "\n" for k, p in enumerate(prompts)))
    run = main(str(cfg), [])
    pair = json.loads((run.root / "r1s3-pair" / "manifest.json").read_text())["metrics"]
    judge = json.loads((run.root / "r1s2-judge" / "manifest.json").read_text())["metrics"]
    assert judge["judgements"] == len(prompts) * 3 * 3 and judge["parse_failures"] == 0
    assert pair["meta_pairs_made"] >= 1
    cap = math.floor(0.3 / 0.7 * pair["pairs"] + 1e-9)
    assert pair["meta_pairs_used"] == min(cap, pair["meta_pairs_made"]) >= 1
    assert pair["train_pairs"] == pair["pairs"] + pair["meta_pairs_used"]
    rows = [json.loads(x) for x in (run.root / "r1s3-pair" / "data.jsonl").read_text().splitlines()]
    meta = [r for r in rows if r.get("meta", {}).get("kind") == "meta_judge"]
    assert len(meta) == pair["meta_pairs_used"]
    for r in meta:  # (judge prompt, better judgement) vs (judge prompt, worse judgement)
        assert "Score: " in r["chosen"] and "Score: " in r["rejected"] and r["chosen_score"] != r["rejected_score"]
        assert r["meta"]["chosen_elo"] > r["meta"]["rejected_elo"]
    train = json.loads((run.root / "r1s4-train" / "manifest.json").read_text())["metrics"]
    assert train["train_used"] == pair["train_pairs"]


def _cfg_errors(tmp_path, tiny_model, *overrides, judge=None, extra=None):
    from selfalign.errors import ConfigError
    from selfalign.recipes.self_rewarding import main

    cfg = _write(tmp_path, tiny_model, judge or {"type": "function", "function": "verifiable"}, extra)
    with pytest.raises(ConfigError) as e:
        main(str(cfg), list(overrides))
    assert not (tmp_path / "runs" / "e2e").exists()  # nothing started
    return str(e.value)


@pytest.mark.parametrize("override, message", [
    ("train.model=x", "train.model: set by the recipe (the stage's model input"),
    ("train.output_dir=x", "train.output_dir: set by the recipe (the stage directory)"),
    ("train.ref_model=x", "train.ref_model: set by the recipe (the reference is M_t"),
    ("beta=0.2", "beta: this setting lives in 'train.beta'"),
    ("generate.temperature=-1", "generate.temperature: Input should be greater than or equal to 0"),
    ("train.beta=[0.1,-2]", "train.beta: Input should be greater than 0"),
    ("validation.win_rate_judge={type: nope}", "validation.win_rate_judge"),
    ("judge.seed=3", "judge.seed: set by the recipe"),
])
def test_every_section_is_checked_before_any_work(tmp_path, tiny_model, override, message):
    msg = _cfg_errors(tmp_path, tiny_model, override)
    assert message in msg and "\n" not in msg and msg.startswith(str(tmp_path / "cfg.yaml"))


def test_meta_judge_needs_judgement_texts(tmp_path, tiny_model):
    msg = _cfg_errors(tmp_path, tiny_model, "meta_judge.enabled=true")
    assert "meta_judge.enabled" in msg and "judgement texts" in msg


def test_iteration_configs_follow_the_recipe(tmp_path, tiny_model):
    from selfalign.recipes.common import load_recipe_config
    from selfalign.recipes.self_rewarding import MOVED, SelfRewardingConfig, iteration

    judge = {"type": "rubric", "model": "self", "mode": "reasoned", "template": "rubric",
             "score_regex": r"Rating: ([0-9]+)"}
    path = _write(tmp_path, tiny_model, judge)
    cfg = load_recipe_config(SelfRewardingConfig, str(path),
                             ["meta_judge.enabled=true", "pairs.strategy=length_control", "pairs.rho=[0,0.1]",
                              "judge.score_regex=Points: ([0-9]+)"], MOVED)
    its = [iteration(cfg, t) for t in (1, 2)]
    assert [i.pair.pairs.rho for i in its] == [0, 0.1]
    assert [i.train.options["beta"] for i in its] == [0.1, 0.05]
    assert its[0].judge.judge["seed"] != its[1].judge.judge["seed"]  # judge sampling follows the iteration
    mj = its[0].pair.meta_judge
    assert mj["score_regex"] == "Points: ([0-9]+)" and mj["judge_template"] == "rubric"  # the main judge's
    assert mj["max_length"] == 96 and mj["model"] == "self"
    assert its[0].train.options["save_steps"] == 1 and "model" not in its[0].train.options
    assert its[0].generate.sample_prompts is None and its[0].generate.num_samples == 3
    # a recipe's trainers checkpoint by default, so a crash mid-training resumes mid-training
    assert SelfRewardingConfig.model_fields["train"].annotation().save_steps == 10


def test_self_rewarding_killed_at_random_points_resumes_to_identical_data_and_weights(tmp_path, tiny_model):
    """SIGKILL at seeded random moments across all stages (tests/resume_harness.py): after resuming,
    every stage's data is byte-identical and every model's weights equal an uninterrupted run's."""
    from resume_harness import check_kill_and_resume

    cfg = _write(tmp_path, tiny_model, {"type": "rubric", "model": "self", "mode": "expected"})
    kills = check_kill_and_resume(lambda root: ["run", str(cfg), f"output_root={root}"], tmp_path / "ref",
                                  tmp_path / "killed", "e2e", kills=3, seed=2)
    assert kills
