"""The trainer registry (selfalign.train.registry) and the ``selfalign train`` commands built from it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from selfalign.config import StrictModel
from selfalign.errors import ConfigError
from selfalign.train import registry


def test_builtin_trainers_resolve_lazily():
    from selfalign.train.config import DPOConfig, RMConfig, SFTConfig

    assert registry.trainer_names()[:3] == ("sft", "rm", "dpo")
    for name, cfg_cls, fn_name in (("sft", SFTConfig, "train_sft"), ("rm", RMConfig, "train_rm"),
                                   ("dpo", DPOConfig, "train_dpo")):
        cls, fn = registry.get_trainer(name)
        assert cls is cfg_cls and fn.__name__ == fn_name and fn.__module__ == f"selfalign.train.{name}"
        info = registry.trainer_info(name)
        assert info.help and info.example.startswith(f"selfalign train {name} ")


def test_ppo_listed_only_when_its_module_exists():
    from pathlib import Path

    import selfalign.train as pkg

    if "ppo" in registry.TRAINERS:
        assert (Path(pkg.__file__).parent / "ppo.py").is_file()
        cls, fn = registry.get_trainer("ppo")
        assert cls.__name__ == "PPOConfig" and fn.__name__ == "train_ppo"


def test_unknown_trainer_names_the_closest():
    with pytest.raises(ConfigError, match=r"unknown trainer 'dop'; did you mean 'dpo'\?"):
        registry.get_trainer("dop")  # ('dpp' is as close to 'ppo' as to 'dpo')
    with pytest.raises(ConfigError, match="valid: sft, rm, dpo"):
        registry.trainer_info("zzz")


class _EchoConfig(StrictModel):
    output_dir: str
    steps: int = 1
    resume: bool = False


def _echo_train(cfg: _EchoConfig, metrics=None) -> dict:
    """Echo trainer (test only)."""
    return {"model_path": f"{cfg.output_dir}/model", "steps": cfg.steps, "loss": 0.5 if cfg.resume else 1.0}


@pytest.fixture
def echo_trainer():
    registry.register_trainer("echo", _EchoConfig, _echo_train, example="selfalign train echo output_dir=x")
    yield
    registry._REGISTRY.pop("echo", None)
    registry._EXTRA.pop("echo", None)


def test_registered_trainer_gets_a_command(echo_trainer):
    from selfalign.cli.train import build_train_app

    assert registry.get_trainer("echo") == (_EchoConfig, _echo_train)
    assert "echo" in registry.trainer_names()
    runner = CliRunner()
    app = build_train_app()
    res = runner.invoke(app, ["echo", "output_dir=runs/e", "steps=3", "--resume"])
    assert res.exit_code == 0, res.output
    assert "done echo: loss=0.5, steps=3" in res.output and res.output.strip().endswith("runs/e/model")
    res = runner.invoke(app, ["echo", "--help"])
    assert res.exit_code == 0 and "Echo trainer (test only)." in res.output
    assert "Example: selfalign train echo output_dir=x" in res.output


def test_train_help_lists_trainers_and_examples():
    from selfalign.cli.train import build_train_app

    runner = CliRunner()
    app = build_train_app()
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for name in ("sft", "rm", "dpo"):
        assert name in res.output
    for name in ("sft", "rm", "dpo"):
        res = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert res.exit_code == 0, res.output
        assert f"Example: selfalign train {name} model=smollm2-135m" in res.output and "--resume" in res.output
    res = runner.invoke(app, ["dpo", "--help"], terminal_width=200)
    for loss in ("sigmoid", "ipo", "hinge", "scale", "rpo_sq", "rpo_fwd_kl", "rpo_bwd_kl", "dpo = sigmoid"):
        assert loss in res.output
