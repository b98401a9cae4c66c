"""``selfalign eval MODEL --prompts FILE [--compare MODEL_0]`` on a tiny model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from selfalign.cli import _register, app

PROMPTS = [{"id": f"p{i}", "prompt": p, "meta": {"checks": c}} for i, (p, c) in enumerate([
    ("Say hello in lowercase.", [{"type": "lowercase"}]), ("Name a fruit. No commas.", [{"type": "no_commas"}]),
    ("Describe rain in under 10 words.", [{"type": "max_words", "n": 10}]),
    ("A color, lowercase, no commas.", [{"type": "lowercase"}, {"type": "no_commas"}])])]


def test_eval_compare_with_a_model_and_with_answers(tiny_model, tmp_path):
    _register()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for r in PROMPTS))
    out = tmp_path / "ev"
    r = CliRunner().invoke(app, ["eval", str(tiny_model), "--prompts", str(prompts), "--compare", str(tiny_model),
                                 "--output-dir", str(out), "max_new_tokens=6", "batch_size=4"])
    assert r.exit_code == 0, r.output
    assert "not distinguishable from no change" in r.output and "no_commas" in r.output
    res = json.loads((out / "comparison.json").read_text())
    # the same model on both sides: identical greedy answers, a zero difference, p = 1
    assert res["n"] == 4 and res["diff"] == 0.0 and res["mcnemar_p"] == 1.0 and not res["improved"]
    assert res["a"]["mean_tokens"] is not None and 0.0 <= res["a"]["cut_rate"] <= 1.0
    answers = out / "r0s1-validate" / "data.jsonl"
    assert answers.is_file()
    man = json.loads((out / "r0s1-validate" / "manifest.json").read_text())
    assert {"verifiable_pass_rate_ci", "mean_tokens", "cut_rate", "check_pass_rate"} <= set(man["metrics"])
    # against an answers file: no second generation stage
    out2 = tmp_path / "ev2"
    r = CliRunner().invoke(app, ["eval", str(tiny_model), f"heldout={prompts}", f"baseline={answers}",
                                 f"output_dir={out2}", "max_new_tokens=6"])
    assert r.exit_code == 0, r.output
    assert json.loads((out2 / "comparison.json").read_text())["diff"] == 0.0
    assert not (out2 / "r0s2-validate").exists()


def test_eval_needs_a_model(tmp_path):
    _register()
    r = CliRunner().invoke(app, ["eval", "--prompts", str(tmp_path / "missing.jsonl")])
    assert r.exit_code != 0 and "model" in str(r.exception or r.output)
