"""The shared stage layer: cache keys from the resolved config, derived recipe sections."""

from __future__ import annotations

import json

import pytest
from pydantic import Field

from selfalign.config import StrictModel
from selfalign.errors import ConfigError
from selfalign.pipeline import Run
from selfalign.stages.base import STAGES, run_stage, stage
from selfalign.stages.sections import check_recipe_keys, derive_section
from selfalign.stages.train import STAGE_SETS
from selfalign.train.config import DPOConfig


class EchoConfig(StrictModel):
    factor: int = 1


CALLS: list[int] = []


@stage("echo_test", EchoConfig)
def echo(st, cfg: EchoConfig, *, src):
    CALLS.append(cfg.factor)
    out = st.output("data", "data.txt")
    out.write_text(src.read_text() * cfg.factor)
    return {"factor": cfg.factor}


def test_stage_key_is_the_config_it_ran_with(tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("ab")
    run = Run(tmp_path / "run")
    CALLS.clear()
    r1 = run_stage(run, "echo_test", 1, 1, EchoConfig(factor=2), src=src)
    assert r1.outputs["data"].read_text() == "abab" and not r1.skipped
    assert run_stage(run, "echo_test", 1, 1, EchoConfig(factor=2), src=src).skipped
    r3 = run_stage(run, "echo_test", 1, 1, EchoConfig(factor=3), src=src)  # config changed → re-run
    assert not r3.skipped and r3.outputs["data"].read_text() == "ababab"
    man = json.loads((r3.dir / "manifest.json").read_text())
    assert man["config"] == {"factor": 3}  # what ran is what the manifest records
    src.write_text("xy")  # input content changed → re-run
    assert run_stage(run, "echo_test", 1, 1, EchoConfig(factor=3), src=src).outputs["data"].read_text() == "xyxyxy"
    assert CALLS == [2, 3, 3]
    with pytest.raises(TypeError, match="EchoConfig"):
        run_stage(run, "echo_test", 1, 1, DPOConfig(model=".", train_file=".", output_dir="."), src=src)
    assert "echo_test" in STAGES and {"generate", "judge", "pair", "train", "validate"} <= set(STAGES)


def test_derived_section_one_home_per_setting():
    sec = derive_section(DPOConfig, "S", per_iteration=("beta",), defaults={"save_steps": 10},
                         recipe_sets={**STAGE_SETS, "seed": "run seed"},
                         extra={"enabled": (bool, Field(True))})
    assert "model" not in sec.model_fields and "seed" not in sec.model_fields and "enabled" in sec.model_fields
    s = sec(beta=[0.5, 0.05], learning_rate=1e-4)
    paths = {"model": ".", "train_file": ".", "output_dir": "."}
    it = [s.at(t, "train", "r.yaml", seed=3, **paths) for t in range(3)]
    assert [x.beta for x in it] == [0.5, 0.05, 0.05]  # a list repeats its last value
    assert all(isinstance(x, DPOConfig) and x.save_steps == 10 and x.seed == 3 and x.learning_rate == 1e-4
               for x in it)
    assert sec().beta == DPOConfig.model_fields["beta"].default  # same default as the trainer
    with pytest.raises(ConfigError, match=r"^r.yaml: train.beta: Input should be greater than 0"):
        sec(beta=[0.1, -1.0]).at(1, "train", "r.yaml", **paths)
    with pytest.raises(ConfigError, match="train.loss_type"):
        sec(loss_type="nope").at(0, "train", "r.yaml", **paths)


def test_recipe_keys_and_moved_keys_are_one_line_errors():
    sec = derive_section(DPOConfig, "S2", recipe_sets={**STAGE_SETS})

    class Recipe(StrictModel):
        train: sec = sec()

    with pytest.raises(ConfigError, match=r"^r.yaml:7: train.model: set by the recipe \(the stage's model"):
        check_recipe_keys(Recipe, {"train": {"model": "x"}}, {"train.model": 7}, "r.yaml")
    with pytest.raises(ConfigError, match=r"^r.yaml:2: beta: this setting lives in 'train.beta'"):
        check_recipe_keys(Recipe, {"beta": 0.1}, {"beta": 2}, "r.yaml", {"beta": "train.beta"})
    check_recipe_keys(Recipe, {"train": {"beta": 0.1}}, {}, "r.yaml", {"beta": "train.beta"})
