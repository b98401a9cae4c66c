"""Training trust: earlier runs are never silently mixed, resumed or deleted; checkpoints load with
``from_pretrained``; a failed start leaves nothing; trackers (``report_to``) and ``num_threads``."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest
import torch

from selfalign.errors import ConfigError, DataError
from selfalign.train import checkpoint as ckpt
from selfalign.train.config import DPOConfig, SFTConfig
from selfalign.train.dpo import train_dpo
from selfalign.train.sft import train_sft
from selfalign.utils.metrics import read_metrics

WORDS = ["sun", "tree", "river", "apple", "rock", "dust", "ash", "fog"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> str:
    """A tiny causal LM (hidden 16, one layer) with the real tokenizer."""
    from selfalign.models.tiny import tiny_model_dir

    return str(tiny_model_dir(tmp_path_factory.mktemp("trust_lm"), hidden_size=16, num_layers=1))


def pairs(path: Path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    with path.open("w") as f:
        for _ in range(n):
            f.write(json.dumps({"prompt": f"Thing {rng.randint(0, 99)}?", "chosen": " ".join(rng.sample(WORDS[:4], 2)),
                                "rejected": " ".join(rng.sample(WORDS[4:], 2))}) + "\n")
    return str(path)


def dpo_cfg(lm: str, train: str, out: Path, **kw) -> DPOConfig:
    base = dict(model=lm, train_file=train, output_dir=str(out), learning_rate=1e-3, max_length=32,
                per_device_batch_size=2, chat_template=False, max_steps=2)
    return DPOConfig(**{**base, **kw})


def cli_args(lm: str, train: str, out: Path, *extra: str) -> list[str]:
    return ["train", "dpo", f"model={lm}", f"train_file={train}", f"output_dir={out}", "max_steps=2",
            "per_device_batch_size=2", "max_length=32", "chat_template=false", *extra]


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (bytes unchanged ⇔ equal snapshots)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    from selfalign.cli import main

    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err.strip()


def loss_steps(out: Path) -> list[int]:
    return [r["step"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r]


# ------------------------------------------------------------------------------ stale checkpoints
def test_rotation_deletes_only_this_runs_older_checkpoints(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for step in (20, 25):  # an older run's checkpoints, with higher steps
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=step, run_id="old"), keep=2)
    for step in (5, 8, 11):
        ckpt.save_checkpoint(tmp_path, model, opt, sched, ckpt.TrainState(step=step, run_id="new"), keep=2)
    kept = {s: ckpt.read_state(p)["run_id"] for s, p in ckpt.list_checkpoints(tmp_path)}
    assert kept == {8: "new", 11: "new", 20: "old", 25: "old"}


def test_stale_checkpoints_are_refused_not_resumed(lm, tmp_path, capsys):
    old_data, new_data = pairs(tmp_path / "old.jsonl", 8, 0), pairs(tmp_path / "new.jsonl", 8, 1)
    out = tmp_path / "out"
    train_dpo(dpo_cfg(lm, old_data, out, save_steps=1))
    for step in (1, 2):  # the older run went further: its checkpoints are step-20 and step-25
        src, new = out / "checkpoints" / f"step-{step:08d}", 15 + 5 * step
        state = json.loads((src / "state.json").read_text())
        (src / "state.json").write_text(json.dumps({**state, "step": new}))
        src.rename(out / "checkpoints" / f"step-{new:08d}")
    before = snapshot(tmp_path)
    # a new run (other data, another lr) without a flag: stopped before anything is read or written
    code, err = run_cli(cli_args(lm, new_data, out, "learning_rate=0.01"), capsys)
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert f"output_dir {out} holds an earlier run" in err and "use --resume or --overwrite" in err
    # --resume: refused, naming the checkpoint and what differs; nothing resumed, nothing deleted
    code, err = run_cli([*cli_args(lm, new_data, out, "learning_rate=0.01"), "--resume"], capsys)
    assert code == 2 and err.count("\n") == 0 and "step-00000025: cannot resume" in err
    assert "learning_rate" in err and "train_file" in err
    with pytest.raises(ConfigError, match="resume and overwrite exclude each other"):
        train_dpo(dpo_cfg(lm, new_data, out, resume=True, overwrite=True))
    assert snapshot(tmp_path) == before
    # the older run's own settings, but its data file rewritten under the same name: refused too
    Path(old_data).write_text(Path(new_data).read_text())
    with pytest.raises(ConfigError, match=r"step-00000025: cannot resume: .*\(train_file differ\)"):
        train_dpo(dpo_cfg(lm, old_data, out, resume=True))


def test_stage_clears_checkpoints_of_other_settings(lm, tmp_path):
    from selfalign.pipeline import Run
    from selfalign.stages.base import run_stage
    from selfalign.stages.train import TrainStageConfig

    data = pairs(tmp_path / "p.jsonl", 8, 2)
    run = Run(tmp_path / "run")
    sdir = run.stage_dir("train", 1, 4)
    train_dpo(dpo_cfg(lm, data, sdir, learning_rate=5e-3, max_steps=3, save_steps=1))  # other settings
    (sdir / "model").rename(sdir / "old-model")  # only the checkpoints stay, no manifest
    cfg = TrainStageConfig.of("dpo", dpo_cfg(lm, data, tmp_path / "unused", save_steps=1, num_threads=1))
    orig = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        res = run_stage(run, "train", 1, 4, cfg, model=lm, data=data)
        assert torch.get_num_threads() == 2  # the stage's num_threads ends with the stage
    finally:
        torch.set_num_threads(orig)
    assert res.metrics["steps"] == 2  # a fresh run of 2 steps, not "step 3/2" of the stale one
    states = [ckpt.read_state(p) for _, p in ckpt.list_checkpoints(sdir / "checkpoints")]
    assert [s["step"] for s in states] == [1, 2] and len({s["run_id"] for s in states}) == 1


# ------------------------------------------------------------------- second run, overwrite, metrics
def test_second_run_needs_resume_or_overwrite(lm, tmp_path, capsys):
    data = pairs(tmp_path / "p.jsonl", 8, 3)
    out = tmp_path / "out"
    assert run_cli(cli_args(lm, data, out), capsys)[0] == 0
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000002"]  # checkpoint by default
    first_id = ckpt.read_state(out / "checkpoints" / "step-00000002")["run_id"]
    before = snapshot(tmp_path)
    code, err = run_cli(cli_args(lm, data, out), capsys)
    assert code == 2 and err.count("\n") == 0 and "use --resume or --overwrite" in err
    assert snapshot(tmp_path) == before
    # --overwrite: the earlier outputs go first; metrics hold this run only
    (out / "notes.txt").write_text("mine")  # not a run output: never touched
    code, err = run_cli([*cli_args(lm, data, out, "learning_rate=0.02", "save_steps=1"), "--overwrite"], capsys)
    assert code == 0, err
    rows = read_metrics(out / "metrics.jsonl")
    assert loss_steps(out) == [1, 2] and sum("train_examples" in r for r in rows) == 1
    assert [r["lr"] for r in rows if "lr" in r][0] == pytest.approx(0.02)
    ids = {ckpt.read_state(p)["run_id"] for _, p in ckpt.list_checkpoints(out / "checkpoints")}
    assert len(ids) == 1 and first_id not in ids and (out / "notes.txt").read_text() == "mine"


def test_resume_drops_rows_logged_after_the_checkpoint(lm, tmp_path):
    data = pairs(tmp_path / "p.jsonl", 8, 4)
    out = tmp_path / "out"
    cfg = dpo_cfg(lm, data, out, max_steps=3, save_steps=2, save_total_limit=3)
    full = train_dpo(cfg)
    shutil.rmtree(out / "checkpoints" / "step-00000003")  # as if killed after logging step 3
    shutil.rmtree(out / "model")
    resumed = train_dpo(cfg.model_copy(update={"resume": True}))
    assert loss_steps(out) == [1, 2, 3] and resumed["loss"] == pytest.approx(full["loss"], abs=1e-6)


# ------------------------------------------------------------------------------ checkpoint folders
def test_checkpoint_folders_load_with_from_pretrained(lm, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = pairs(tmp_path / "p.jsonl", 8, 5)
    train_dpo(dpo_cfg(lm, data, tmp_path / "full"))
    folder = tmp_path / "full" / "checkpoints" / "step-00000002" / "model"
    m = AutoModelForCausalLM.from_pretrained(folder)
    final = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    got = m.state_dict()
    assert all(torch.equal(got[k], v) for k, v in final.items())
    assert AutoTokenizer.from_pretrained(folder) is not None

    train_dpo(dpo_cfg(lm, data, tmp_path / "lora", lora={"r": 2, "alpha": 4}))
    folder = tmp_path / "lora" / "checkpoints" / "step-00000002" / "model"
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lm), folder).merge_and_unload()
    final = load_file(str(tmp_path / "lora" / "model" / "model.safetensors"))
    got = merged.state_dict()
    assert max((got[k] - v).abs().max().item() for k, v in final.items()) < 1e-6


# ---------------------------------------------------------------------------------- failed starts
def test_data_error_leaves_nothing(lm, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": \n')
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    code, err = run_cli(cli_args(lm, str(bad), out), capsys)
    assert code == 1 and err.count("\n") == 0 and f"{bad}:2:" in err and "Traceback" not in err
    assert not out.exists() and snapshot(tmp_path) == before
    with pytest.raises(DataError):
        train_dpo(dpo_cfg(lm, str(bad), out))
    assert not out.exists()
    # --overwrite with bad data: the earlier run is untouched (data is checked before clearing)
    good = pairs(tmp_path / "good.jsonl", 8, 6)
    train_dpo(dpo_cfg(lm, good, out))
    before = snapshot(tmp_path)
    code, err = run_cli([*cli_args(lm, str(bad), out), "--overwrite"], capsys)
    assert code == 1 and f"{bad}:2:" in err and snapshot(tmp_path) == before


def test_failure_after_start_removes_what_the_run_created(lm, tmp_path, capsys, monkeypatch):
    from selfalign.errors import ModelError
    from selfalign.train import dpo

    def broken(*a, **k):  # fails after the output folder and metrics.jsonl were created
        raise ModelError("model broken on purpose")

    monkeypatch.setattr(dpo, "prepare_for_training", broken)
    data = pairs(tmp_path / "p.jsonl", 8, 7)
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    code, err = run_cli(cli_args(lm, data, out), capsys)
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert code == 1 and errors == ["error: model broken on purpose"] and "Traceback" not in err
    assert not out.exists() and snapshot(tmp_path) == before
    # into an existing folder: only what this run created goes
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert run_cli(cli_args(lm, data, out), capsys)[0] == 1
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# --------------------------------------------------------------------------------------- trackers
def test_report_to_missing_package_is_one_line(lm, tmp_path, capsys, monkeypatch):
    from selfalign.train import trackers

    monkeypatch.setattr(trackers, "tracker_available", lambda name: False)
    data = pairs(tmp_path / "p.jsonl", 4, 8)
    before = snapshot(tmp_path)
    code, err = run_cli(cli_args(lm, data, tmp_path / "out", "report_to=wandb"), capsys)
    assert code == 2 and err.count("\n") == 0 and "pip install wandb" in err and "report_to" in err
    assert not (tmp_path / "out").exists() and snapshot(tmp_path) == before
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        SFTConfig(model="m", train_file="t", output_dir="o", report_to=["none", "tensorboard"])


def test_report_to_none_starts_no_tracker(lm, tmp_path):
    from selfalign.train.start import make_accelerator

    cfg = dpo_cfg(lm, pairs(tmp_path / "p.jsonl", 4, 9), tmp_path / "out", report_to="none")
    assert cfg.report_to == ["none"] and make_accelerator(cfg).log_with == []
    train_dpo(cfg)
    assert not (tmp_path / "out" / "trackers").exists()


def test_report_to_forwards_every_scalar_to_accelerate_trackers(lm, tmp_path, monkeypatch):
    import accelerate.tracking as at
    from accelerate.utils import LoggerType

    from selfalign.train import trackers

    calls: dict[str, list] = {"init": [], "config": [], "log": [], "finish": []}

    class FakeBoard(at.GeneralTracker):
        name = "tensorboard"
        requires_logging_directory = True

        def __init__(self, run_name, logging_dir, **kwargs):
            super().__init__()
            calls["init"].append((run_name, str(logging_dir)))

        @property
        def tracker(self):
            return self

        def store_init_configuration(self, values):
            calls["config"].append(values)

        def log(self, values, step=None, **kwargs):
            calls["log"].append((step, dict(values)))

        def finish(self):
            calls["finish"].append(True)

    monkeypatch.setitem(at.LOGGER_TYPE_TO_CLASS, "tensorboard", FakeBoard)
    monkeypatch.setattr(at, "get_available_trackers", lambda: [LoggerType.TENSORBOARD])
    monkeypatch.setattr(trackers, "tracker_available", lambda name: True)
    out = tmp_path / "out"
    train_dpo(dpo_cfg(lm, pairs(tmp_path / "p.jsonl", 8, 10), out, report_to="tensorboard",
                      lora={"r": 2, "alpha": 4}))
    assert calls["init"] == [("selfalign", str(out / "trackers"))] and calls["finish"] == [True]
    config = calls["config"][0]
    assert config["learning_rate"] == 1e-3 and config["lora.r"] == 2 and config["report_to"] == '["tensorboard"]'
    rows = read_metrics(out / "metrics.jsonl")
    assert [(r["step"], r["loss"]) for r in rows if "loss" in r] == \
        [(s, v["loss"]) for s, v in calls["log"] if "loss" in v]
    assert len(calls["log"]) == len(rows)  # every row of metrics.jsonl, step-0 data report included


# ------------------------------------------------------------------------------------- num_threads
def test_num_threads_sets_torch_threads(lm, tmp_path):
    data = pairs(tmp_path / "p.jsonl", 4, 11)
    orig = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train_sft(SFTConfig(model=lm, train_file=data, output_dir=str(tmp_path / "a"), max_steps=1,
                            per_device_batch_size=2, max_length=32, chat_template=False,
                            completion_key="chosen"))
        assert torch.get_num_threads() == 2  # default: unchanged
        train_sft(SFTConfig(model=lm, train_file=data, output_dir=str(tmp_path / "b"), max_steps=1,
                            per_device_batch_size=2, max_length=32, chat_template=False,
                            completion_key="chosen", num_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(orig)
