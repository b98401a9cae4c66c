"""The llm-on-ray RLHF config files: read without eval, every key mapped, bad input refused with file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfalign.errors import ConfigError
from selfalign.recipes.rlhf import model_folder, stage_of, to_trainer_config
from selfalign.recipes.rlhf_conf import read_conf, read_rlhf_config

RM_CONF = """{
    "General": {
        "base_model": "smollm2-135m",
        "output_dir": "%(tmp)s/logs",
        "checkpoint_dir": "%(tmp)s/ckpt/rm",
        "config": {"trust_remote_code": False, "use_auth_token": None},
    },
    "Dataset": {
        "train_file": "%(tmp)s/rm.jsonl",
        "validation_file": None,
        "validation_split_percentage": 5,
    },
    "Training": {
        "optimizer": "AdamW",
        "batch_size": 2,
        "epochs": 3,
        "learning_rate": 1e-5,
        "lr_scheduler": "linear",
        "weight_decay": 0.01,
        "num_training_workers": 2,
        "resources_per_worker": {"CPU": 1},
    },
}
"""


def write(tmp_path: Path, text: str, name: str = "rm.conf") -> str:
    p = tmp_path / name
    p.write_text(text % {"tmp": tmp_path} if "%(tmp)s" in text else text)
    return str(p)


def test_rm_conf_maps_every_key(tmp_path):
    data, lines = read_conf(write(tmp_path, RM_CONF))
    assert stage_of(data) == "rm"
    stage, cfg = to_trainer_config(data, lines, "rm.conf")
    assert stage == "rm" and cfg.model == "smollm2-135m"
    assert cfg.output_dir == f"{tmp_path}/ckpt/rm"  # checkpoint_dir: where the model is saved
    assert cfg.metrics_file == f"{tmp_path}/logs/metrics.jsonl"  # output_dir: the training log
    assert cfg.validation_split == pytest.approx(0.05) and cfg.validation_file is None
    assert (cfg.per_device_batch_size, cfg.num_epochs, cfg.learning_rate, cfg.lr_scheduler, cfg.weight_decay) == \
        (2, 3, 1e-5, "linear", 0.01)
    assert cfg.distributed.backend == "ray" and cfg.distributed.num_workers == 2
    assert cfg.distributed.resources_per_worker == {"CPU": 1}
    assert cfg.resume  # re-running the same command continues


def test_yaml_with_the_same_sections_gives_the_same_config(tmp_path):
    import yaml

    data, lines = read_conf(write(tmp_path, RM_CONF))
    (tmp_path / "rm.yaml").write_text(yaml.safe_dump(data))
    ydata, ylines = read_rlhf_config(tmp_path / "rm.yaml")
    assert ydata == data
    assert to_trainer_config(ydata, ylines, "rm.yaml")[1] == to_trainer_config(data, lines, "rm.conf")[1]


def test_ppo_conf_loads_model_pretrain_and_rm_pretrain_folders(tmp_path):
    for name in ("sft", "rm"):  # trainer output folders: the model is in model/
        (tmp_path / name / "model").mkdir(parents=True)
        (tmp_path / name / "model" / "config.json").write_text("{}")
    conf = {"General": {"model_name": "smollm2-135m", "model_pretrain": str(tmp_path / "sft"),
                        "rm_name": "smollm2-135m", "rm_pretrain": str(tmp_path / "rm"),
                        "output_dir": str(tmp_path / "ppo")},
            "Dataset": {"train_file": "p.jsonl", "validation_split_percentage": 10},
            "Training": {"experience_batch_size": 4, "batch_size": 2, "kl_coeff": 0.2, "epochs": 1,
                         "learning_rate": 1e-6},
            "selfalign": {"generation": {"max_new_tokens": 16}, "max_steps": 3}}
    stage, cfg = to_trainer_config(conf, {}, "ppo.conf")
    assert stage == "ppo"
    assert cfg.model == str(tmp_path / "sft" / "model")
    assert cfg.rewards[0].type == "reward_model" and cfg.rewards[0].model == str(tmp_path / "rm" / "model")
    assert (cfg.rollout_batch_size, cfg.per_device_batch_size, cfg.kl_coef) == (4, 2, 0.2)
    assert cfg.validation_split == pytest.approx(0.1) and cfg.generation.max_new_tokens == 16
    assert cfg.distributed.backend == "none"  # no num_training_workers: one process, no Ray
    assert model_folder("smollm2-135m") == "smollm2-135m"


@pytest.mark.parametrize("code, what", [
    ('{"General": {"base_model": __import__("os").system("echo hi")}}', "a function call"),
    ('{"General": {"base_model": open("x").read()}}', "a function call"),
    ('{"General": {"base_model": BASE}}', "a name"),
    ('{"General": {"base_model": os.path}}', "an attribute"),
    ('{"Training": {"learning_rate": 1e-5 * 2}}', "an operator"),
    ('{"Training": {"x": [i for i in range(3)]}}', "a comprehension"),
    ('{"Training": {"x": lambda: 1}}', "a lambda"),
])
def test_code_in_a_conf_is_refused_with_file_and_line(tmp_path, code, what):
    path = write(tmp_path, "\n\n" + code.replace("{\"", "{\n\"", 1))
    with pytest.raises(ConfigError) as e:
        read_conf(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:") and what in msg and "\n" not in msg
    assert int(msg.split(":")[1]) >= 3  # the line of the offending value, not line 1


def test_statements_are_not_a_conf(tmp_path):
    for text in ("import os\n{}", "x = 1", "{}\nimport os"):
        with pytest.raises(ConfigError, match="not a Python dict literal"):
            read_conf(write(tmp_path, text))


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "ran"
    text = '{"General": {"base_model": open(' + repr(str(marker)) + ', "w").write("x")}}'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError):
        read_conf(path)
    assert not marker.exists()


@pytest.mark.parametrize("section, key, value, match", [
    ("Training", "learning_rat", 1e-5, "did you mean 'learning_rate'"),
    ("Training", "optimizer", "SGD", "AdamW is the optimizer"),
    ("Genral", None, None, "did you mean 'General'"),
    ("General", "config", {"use_auth_token": "hf_x"}, "no model hub"),
    ("Dataset", "validation_split_percentage", 150, r"\[0, 100\)"),
    ("Training", "kl_coeff_", 0.1, "did you mean 'kl_coeff'"),
])
def test_bad_keys_and_values_name_file_line_and_key(tmp_path, section, key, value, match):
    data, _ = read_conf(write(tmp_path, RM_CONF))
    if key is None:
        data[section] = data.pop("General")
    else:
        data.setdefault(section, {})[key] = value
    text = json.dumps(data, indent=4).replace("null", "None").replace("false", "False").replace("true", "True")
    path = write(tmp_path, text, "bad.conf")
    data, lines = read_conf(path)
    with pytest.raises(ConfigError, match=match) as e:
        to_trainer_config(data, lines, path)
    assert str(e.value).startswith(f"{path}:")


def test_rm_name_without_rm_pretrain_must_be_a_reward_model(tmp_path, tiny_model):
    conf = {"General": {"model_name": str(tiny_model), "rm_name": str(tiny_model), "output_dir": str(tmp_path)},
            "Dataset": {"train_file": "p.jsonl"}}
    with pytest.raises(ConfigError, match="without a trained reward head"):
        to_trainer_config(conf, {"General.rm_name": 4}, "ppo.conf")


def test_shipped_examples_map(tmp_path):
    root = Path(__file__).resolve().parents[1] / "examples" / "rlhf"
    for name, stage in (("reward.conf", "rm"), ("ppo.conf", "ppo"), ("reward.yaml", "rm"), ("ppo.yaml", "ppo")):
        data, lines = read_rlhf_config(root / name)
        assert stage_of(data) == stage, name
    data, lines = read_rlhf_config(root / "reward.conf")
    assert to_trainer_config(data, lines, "reward.conf")[1].weight_decay > 0


def test_config_show_of_a_conf_lists_the_trainer_keys(capsys):
    from selfalign.cli import main

    root = Path(__file__).resolve().parents[1] / "examples" / "rlhf"
    main(["config", "show", str(root / "ppo.conf")])
    out = capsys.readouterr().out
    assert "rlhf ppo stage" in out and "rollout_batch_size" in out and "kl_coef" in out
