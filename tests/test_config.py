"""Config loading: YAML + dotted overrides, unknown-key and type errors with key paths."""

from __future__ import annotations

import pytest

from selfalign.config import (
    StrictModel,
    apply_overrides,
    load_config,
    per_iteration,
    split_config_args,
)
from selfalign.errors import ConfigError


class Train(StrictModel):
    learning_rate: float = 1e-6
    beta: float | list[float] = 0.1


class Generate(StrictModel):
    num_samples: int = 4
    temperature: float = 0.7


class Recipe(StrictModel):
    name: str = "x"
    train: Train = Train()
    generate: Generate = Generate()


def test_yaml_and_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\ntrain:\n  learning_rate: 3e-7\n")
    c = load_config(Recipe, cfg, ["train.learning_rate=1e-6", "generate.num_samples=8",
                                  "train.beta=[0.1, 0.01]"])
    assert c.name == "demo" and c.train.learning_rate == 1e-6 and c.generate.num_samples == 8
    assert c.train.beta == [0.1, 0.01]
    assert load_config(Recipe, cfg).train.learning_rate == 3e-7  # YAML 1.1 '3e-7' read as float


def test_unknown_key_names_path_and_closest(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\ntrain:\n  learning_rat: 1e-6\n")
    with pytest.raises(ConfigError) as e:
        load_config(Recipe, cfg)
    msg = str(e.value)
    assert f"{cfg}:3:" in msg and "train.learning_rat" in msg and "train.learning_rate" in msg
    assert e.value.exit_code == 2
    with pytest.raises(ConfigError, match="generate.num_sample.*generate.num_samples"):
        load_config(Recipe, None, ["generate.num_sample=3"])


def test_wrong_type_names_path_and_expectation():
    with pytest.raises(ConfigError, match=r"generate\.num_samples: .*integer"):
        load_config(Recipe, None, ["generate.num_samples=lots"])


def test_bad_override_syntax_and_sections():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Recipe, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=f"{bad}:\\d+: invalid YAML"):
        load_config(Recipe, bad)


def test_split_args_and_per_iteration():
    assert split_config_args(["a.yaml", "x=1", "y.z=2"]) == ("a.yaml", ["x=1", "y.z=2"])
    with pytest.raises(ConfigError):
        split_config_args(["a.yaml", "b.yaml"])
    assert [per_iteration([0, 0, 0.1], t) for t in range(4)] == [0, 0, 0.1, 0.1]
    assert per_iteration(0.5, 7) == 0.5


def test_cli_unknown_override_exit_code_2(tmp_path, capsys):
    """The CLI turns ConfigError into a one-line message and exit code 2."""
    from selfalign.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: demo\n")
    with pytest.raises(SystemExit) as e:
        main(["models", "prepare", "not-a-model"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown registry model" in err
