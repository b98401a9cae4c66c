"""End to end: the SALMON recipe on a tiny model (generate → principle judge → aggregate → RM → RM checks →
validate → PPO with the principle-following RM → validate), then a re-run that skips every stage.

A random tiny model puts the same bias on "a" in both orders, so its judgements are never
position-consistent; the judge's log-probabilities are replaced by a content-based stand-in (shorter
output preferred, in both orders) so the chain below the judge gets real labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

PROMPTS = [("Say hello in all lowercase.", "general"), ("What is 2 plus 3? Answer with a number.", "reasoning"),
           ("Describe rain in a few words.", "general"), ("Name three fruits.", "general"),
           ("Write one short line about cats.", "general"), ("What is 10 minus 4?", "reasoning"),
           ("Give a colour.", "general"), ("Explain why the sky is blue.", "general")]


def _prefer_shorter(self, contexts):
    out = []
    for c in contexts:
        a = c.split("## Output (a)")[1].split("## Output (b)")[0]
        b = c.split("## Output (b)")[1].split("## Principle")[0]
        out.append((-len(a) / 10.0, -len(b) / 10.0))
    return out


def _config(tmp_path: Path, tiny_model: Path) -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": t, "meta": {
        "kind": k, "checks": [{"type": "lowercase"}]}}) + "\n" for i, (t, k) in enumerate(PROMPTS)))
    cfg = {"recipe": "salmon", "name": "e2e", "output_root": str(tmp_path / "runs"), "model": str(tiny_model),
           "seed": 0, "prompts_file": str(prompts), "heldout_file": str(prompts),
           "generate": {"max_new_tokens": 12, "batch_size": 16},
           "judge": {"only": ["Overall Helpful", "Concise", "Honest and Accurate"], "batch_size": 16},
           "aggregate": {"min_chars": 0, "passes": 2, "heldout_frac": 0.25, "label_noise": 0.0},
           "reward_model": {"learning_rate": 1e-3, "per_device_batch_size": 4, "max_length": 256, "save_steps": 2},
           "ppo": {"rollout_batch_size": 4, "per_device_batch_size": 4, "max_steps": 2, "max_length": 200,
                   "generation": {"max_new_tokens": 8, "num_samples": 1}, "learning_rate": 1e-4},
           "validation": {"max_new_tokens": 8}}
    path = tmp_path / "salmon.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_salmon_chain_runs_and_resumes(tmp_path, tiny_model, monkeypatch):
    from selfalign.judges.pairwise_principle import PairwisePrincipleJudge
    from selfalign.recipes import salmon

    monkeypatch.setattr(PairwisePrincipleJudge, "_logprobs", _prefer_shorter)
    cfg = _config(tmp_path, tiny_model)
    run = salmon.main(str(cfg), [])
    tags = [r.name for r in run.results]
    assert len(tags) == 8 and not any(r.skipped for r in run.results)
    root = run.root
    agg = json.loads((root / "r0s3-aggregate" / "manifest.json").read_text())["metrics"]
    assert agg["consistency_mean"] == 1.0 and agg["train_examples"] > 0 and agg["heldout_examples"] > 0
    # RM records are plain text: the shared reviewer prefix, then response + the rest of the prompt
    rec = json.loads((root / "r0s3-aggregate" / "data.jsonl").read_text().splitlines()[0])
    assert rec["prompt"].endswith("## Output\n") and rec["chosen"].endswith("The quality of the output is")
    assert "- " in rec["chosen"] and "Overall Helpful" not in rec["chosen"]  # definitions without names
    check = json.loads((root / "r0s5-rm_check" / "checks.json").read_text())
    assert 0.0 <= check["rm_heldout_acc"] <= 1.0 and check["rm_negation_examples"] > 0
    ppo = json.loads((root / "r1s1-ppo" / "manifest.json").read_text())
    assert "r0s4-rm/model" in json.dumps(ppo["inputs"]["reward_model"])
    assert (root / "r1s1-ppo" / "model" / "config.json").is_file()
    assert (root / "r1s2-validate" / "manifest.json").is_file()
    report = (root / "report.html").read_text()
    for title in ("Principle judge health", "Principle-following reward model", "PPO: reward"):
        assert title in report
    again = salmon.main(str(cfg), [])
    assert all(r.skipped for r in again.results)


def test_salmon_config_errors_name_the_key(tmp_path, tiny_model):
    from selfalign.errors import ConfigError
    from selfalign.recipes import salmon

    cfg = _config(tmp_path, tiny_model)
    with pytest.raises(ConfigError, match="reward_model.chat_template: set by the recipe"):
        salmon.main(str(cfg), ["reward_model.chat_template=true"])
    with pytest.raises(ConfigError, match="ppo.kl_estimator"):
        salmon.main(str(cfg), ["ppo.kl_estimator=k9"])
    with pytest.raises(ConfigError, match="ppo.rewards: set by the recipe"):
        salmon.main(str(cfg), ["ppo.rewards=[]"])
    bad = tmp_path / "mine.yaml"
    bad.write_text("principles:\n  - name: Brief\n    definition: Short.\n    weight: heavy\n")
    with pytest.raises(ConfigError) as e:
        salmon.main(str(cfg), [f"judge.principles={bad}"])
    msg = str(e.value)
    assert "judge.principles" in msg and "mine.yaml:4" in msg and "\n" not in msg
    assert not (tmp_path / "runs" / "e2e" / "r0s1-generate").exists()  # refused before any work


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from test_recipe_salmon import _prefer_shorter
from selfalign.judges.pairwise_principle import PairwisePrincipleJudge
PairwisePrincipleJudge._logprobs = _prefer_shorter
from selfalign.cli import main
main(sys.argv[1:])
"""


def test_salmon_killed_at_random_points_resumes_to_identical_data_and_weights(tmp_path, tiny_model):
    from resume_harness import check_kill_and_resume

    cfg = _config(tmp_path, tiny_model)
    driver = DRIVER.format(tests=str(Path(__file__).parent))
    kills = check_kill_and_resume(lambda root: ["run", str(cfg), f"output_root={root}"], tmp_path / "ref",
                                  tmp_path / "killed", "e2e", kills=3, seed=1, driver=driver)
    assert kills


def test_salmon_checks_what_the_principle_lists_must_offer(tmp_path, tiny_model):
    """Checked before any work: negative definitions when principles are negated, enough weighted RL
    principles, one reviewer template for the RM's training and PPO."""
    from selfalign.errors import ConfigError
    from selfalign.recipes import salmon

    cfg = _config(tmp_path, tiny_model)
    bare = tmp_path / "bare.yaml"
    bare.write_text("principles:\n  - name: Brief\n    definition: The output is brief.\n")
    for overrides, message in [
        ([f"judge.principles={bare}"], "Brief has no negative_definition"),
        (["ppo.reviewer.num_sampled=20"], "ppo.reviewer.num_sampled: 20 > the 14 principles"),
        (["ppo.reviewer.num_sampled=0", "ppo.reviewer.intervention=null"], "no guideline would be shown"),
        (["ppo.reviewer.template=pairwise_principle"], "ppo.reviewer.template"),
    ]:
        with pytest.raises(ConfigError, match=message):
            salmon.main(str(cfg), overrides)
    salmon.check_config(salmon.load_recipe_config(salmon.SalmonConfig, str(cfg),
                                                  [f"judge.principles={bare}", "aggregate.negate_prob=0"]), "x")
    assert not (tmp_path / "runs").exists()
