"""CLI and config habits: usage errors exit 2 with the usage line, Ctrl-C exits 130, duplicate and
empty keys are one-line errors, ``config show`` lists every key, TRL's names are accepted,
``--rejected_key`` spellings work, and progress reaches log files as plain lines."""

from __future__ import annotations

import io
import json

import pytest
import typer
from rich.console import Console

from selfalign.cli import main, normalize_argv
from selfalign.config import apply_overrides, load_config, load_yaml
from selfalign.errors import ConfigError

SCORED = {"id": "a", "prompt": "p", "meta": {},
          "responses": [{"text": "good", "finish": "stop", "num_tokens": 1, "score": 5.0},
                        {"text": "bad", "finish": "stop", "num_tokens": 1, "score": 1.0}]}


def run(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A working directory holding a scored file; tests check it is unchanged after an error."""
    (tmp_path / "scored.jsonl").write_text(json.dumps(SCORED) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---------------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("argv, says", [
    (["pair", "scored.jsonl", "out.jsonl", "--bogus"], "No such option: --bogus"),
    (["pair", "scored.jsonl"], "Missing argument 'OUTPUT'"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["pair", "scored.jsonl", "out.jsonl", "--seed", "abc"], "Invalid value for '--seed': Input should be a valid integer"),
    (["pair", "scored.jsonl", "out.jsonl", "--rho", "abc"], "Invalid value for '--rho'"),
    (["data", "convert", "scored.jsonl", "out.jsonl", "--to", "xml"], "'xml' is not one of"),
])
def test_usage_errors_exit_2_with_usage_line(ws, capsys, argv, says):
    before = snapshot(ws)
    code, out, err = run(argv, capsys)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("Usage: selfalign"), err
    assert lines[1].startswith("error: ") and says.lower() in lines[1].lower(), err
    assert "Traceback" not in err + out
    assert snapshot(ws) == before


def test_usage_line_names_the_subcommand(ws, capsys):
    code, _, err = run(["data", "convert", "scored.jsonl"], capsys)
    assert code == 2
    assert err.splitlines()[0].startswith("Usage: selfalign data convert")
    assert "selfalign data convert --help" in err


def test_help_still_exits_0(capsys):
    code, out, _ = run(["pair", "--help"], capsys)
    assert code == 0 and "--rho" in out


# ------------------------------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize("exc", [KeyboardInterrupt, typer.Abort])
def test_ctrl_c_prints_rerun_and_exits_130(ws, capsys, monkeypatch, exc):
    import selfalign.preferences

    def interrupted(*a, **k):
        raise exc()

    monkeypatch.setattr(selfalign.preferences, "build_pairs", interrupted)
    before = snapshot(ws)
    code, out, err = run(["pair", "scored.jsonl", "out.jsonl"], capsys)
    assert code == 130
    assert err == "interrupted; re-run the same command to continue\n"
    assert "Traceback" not in out
    assert snapshot(ws) == before


# ------------------------------------------------------------------------------- duplicate / empty
def test_duplicate_yaml_key_is_an_error_with_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\ntrain:\n  beta: 0.1\n  lr: 1\n  beta: 0.2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_yaml(cfg)
    assert str(e.value) == f"{cfg}:5: train.beta: duplicate key (first set on line 3); give each key once"
    cfg.write_text("name: x\nname: y\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml:2: name: duplicate key \(first set on line 1\)"):
        load_yaml(cfg)
    cfg.write_text("rewards:\n  - {type: function, type: rubric}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.yaml:2: rewards\[0\].type: duplicate key"):
        load_yaml(cfg)
    # a flow mapping typed as an override is held to the same rule
    with pytest.raises(ConfigError, match="override judge: duplicate key 'type'"):
        apply_overrides({}, ["judge={type: a, type: b}"])


def test_duplicate_key_through_the_cli(tmp_path, capsys):
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text("model: m\ntrain_file: t.jsonl\noutput_dir: o\nbeta: 0.1\nbeta: 0.5\n", encoding="utf-8")
    before = snapshot(tmp_path)
    code, _, err = run(["train", "dpo", str(cfg)], capsys)
    assert code == 2
    assert err == f"error: {cfg}:5: beta: duplicate key (first set on line 4); give each key once\n"
    assert snapshot(tmp_path) == before


def test_empty_per_iteration_list_is_one_line_error(tmp_path, capsys):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("recipe: self_rewarding\nname: x\nprompts_file: p.jsonl\ntrain:\n  beta: []\n",
                   encoding="utf-8")
    before = snapshot(tmp_path)
    code, _, err = run(["run", str(cfg)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {cfg}:5: train.beta:") and "empty per-iteration list" in err
    code, _, err = run(["run", str(cfg), "train.beta=0.1", "pairs.rho=[]"], capsys)
    assert code == 2 and f"{cfg}: pairs.rho:" in err and "empty per-iteration list" in err
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------ config show
def test_config_show_train_dpo_lists_keys_defaults_descriptions(capsys):
    code, out, err = run(["config", "show", "train", "dpo"], capsys)
    assert code == 0, err
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")
            and len(line.split()) > 2}
    assert "0.1" in rows["beta"] and "KL strength" in rows["beta"] and "float" in rows["beta"]
    assert "5e-07" in rows["learning_rate"]
    assert "required" in rows["model"] and "model_name_or_path" in rows["model"]
    assert "16" in rows["lora.r"] and "Rank of the low-rank update" in rows["lora.r"]
    assert "'linear' | 'cosine' | 'constant'" in rows["lr_scheduler"]
    assert "TRL names accepted:" in out and "num_train_epochs → num_epochs" in out


def test_config_show_recipe_file_flattens_sections(capsys):
    code, out, err = run(["config", "show", "examples/quickstart.yaml"], capsys)
    assert code == 0, err
    keys = {line.split()[1] for line in out.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert {"iterations", "train.beta", "generate.temperature", "pairs.rho", "train.lora.r"} <= keys
    assert "set by the recipe" in out  # train.model, train.output_dir …


@pytest.mark.parametrize("target, key", [(["train", "dpo"], "beta"), (["generate"], "num_samples"),
                                         (["judge", "function"], "function"), (["salmon"], "ppo")])
def test_config_show_json_schema(capsys, target, key):
    code, out, err = run(["config", "show", *target, "--json-schema"], capsys)
    assert code == 0, err
    schema = json.loads(out)
    assert key in schema["properties"]


def test_config_show_unknown_target_names_closest(capsys):
    code, _, err = run(["config", "show", "trian", "dpo"], capsys)
    assert code == 2 and err.count("\n") == 1
    code, _, err = run(["config", "show", "generat"], capsys)
    assert code == 2 and "did you mean 'generate'" in err and err.count("\n") == 1
    code, _, err = run(["config", "show", "train", "dop"], capsys)
    assert code == 2 and "'dpo'" in err


def test_keys_epilog_lists_keys_and_where_to_read():
    from selfalign.cli.config import keys_epilog
    from selfalign.train.config import DPOConfig

    text = keys_epilog(DPOConfig, "train dpo", limit=5)
    assert text.startswith("Keys: model, train_file, ") and ", …." in text
    assert text.endswith("selfalign config show train dpo") and "beta" not in text
    assert "beta" in keys_epilog(DPOConfig, "train dpo")


def test_run_help_points_to_config_show(capsys):
    code, out, _ = run(["run", "--help"], capsys)
    assert code == 0 and "selfalign config show" in out


# --------------------------------------------------------------------------- unknown key, aliases
def test_unknown_key_reported_before_missing_required(tmp_path, capsys):
    code, _, err = run(["train", "dpo", "modle=m", "train_file=t.jsonl", f"output_dir={tmp_path / 'o'}"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "unknown key 'modle'; did you mean 'model'?" in err and "Field required" not in err
    assert not (tmp_path / "o").exists()


def test_trl_names_map_to_selfalign_keys():
    from selfalign.train.config import DPOConfig

    c = load_config(DPOConfig, None, [
        "model_name_or_path=m", "dataset_name=d.jsonl", "output_dir=o", "num_train_epochs=3",
        "per_device_train_batch_size=2", "gradient_accumulation_steps=4", "lr_scheduler_type=cosine",
        "learning_rate=1e-6", "warmup_ratio=0.1", "max_steps=7", "use_peft=true", "lora_r=4",
        "lora_alpha=8", "lora_dropout=0.05", "lora_target_modules=[q_proj, v_proj]", "bf16=true"])
    assert (c.model, c.train_file, c.output_dir) == ("m", "d.jsonl", "o")
    assert (c.num_epochs, c.per_device_batch_size, c.gradient_accumulation_steps) == (3, 2, 4)
    assert (c.lr_scheduler, c.learning_rate, c.warmup_ratio, c.max_steps) == ("cosine", 1e-6, 0.1, 7)
    assert c.lora is not None and (c.lora.r, c.lora.alpha, c.lora.dropout) == (4, 8, 0.05)
    assert c.lora.target_modules == ["q_proj", "v_proj"] and c.mixed_precision == "bf16"
    base = ["model=m", "train_file=t", "output_dir=o"]
    assert load_config(DPOConfig, None, [*base, "use_peft=false", "bf16=false"]).lora is None


@pytest.mark.parametrize("extra, says", [
    (["model_name_or_path=b"], "model_name_or_path: TRL's name for 'model', which is also given"),
    (["num_train_epochs=2", "num_epochs=3"], "num_train_epochs: TRL's name for 'num_epochs'"),
    (["bf16=true", "mixed_precision=fp16"], "bf16: TRL's name for 'mixed_precision'"),
    (["use_peft=true", "lora={r: 2}"], "use_peft: TRL's name for 'lora'"),
    (["lora_r=4"], "lora_r: TRL's LoRA settings need use_peft: true"),
    (["bf16=yes please"], "bf16: expected true or false"),
])
def test_both_spellings_is_an_error(extra, says):
    from selfalign.train.config import DPOConfig

    with pytest.raises(ConfigError, match=says):
        load_config(DPOConfig, None, ["model=a", "train_file=t", "output_dir=o", *extra])


def test_trl_names_in_a_yaml_file_and_recipe_sections(tmp_path):
    from selfalign.recipes.common import load_recipe_config
    from selfalign.recipes.self_rewarding import SelfRewardingConfig
    from selfalign.train.config import SFTConfig

    cfg = tmp_path / "sft.yaml"
    cfg.write_text("model_name_or_path: m\nmodel: n\ntrain_file: t\noutput_dir: o\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sft.yaml:1: model_name_or_path: TRL's name for 'model'"):
        load_config(SFTConfig, cfg)
    rec = tmp_path / "r.yaml"
    rec.write_text("name: x\nprompts_file: p.jsonl\nmodel_name_or_path: m\ntrain:\n  num_train_epochs: 2\n"
                   "  use_peft: true\n  lora_r: 4\n", encoding="utf-8")
    c = load_recipe_config(SelfRewardingConfig, str(rec), [])
    assert c.model == "m" and c.train.num_epochs == 2 and c.train.lora.r == 4
    rec.write_text("name: x\nprompts_file: p.jsonl\ntrain:\n  model_name_or_path: m\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"r.yaml:4: train.model: set by the recipe"):
        load_recipe_config(SelfRewardingConfig, str(rec), [])
    # only where the schema has the field: generate has no num_epochs
    from selfalign.generation import GenerateConfig

    with pytest.raises(ConfigError, match="unknown key 'num_train_epochs'"):
        load_config(GenerateConfig, None, ["input=a", "output=b", "num_train_epochs=2"])


# -------------------------------------------------------------------------- --rejected_key style
def test_underscore_option_spellings(tmp_path, capsys):
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"question": "q", "good": "yes", "bad": "no"}) + "\n", encoding="utf-8")
    code, out, err = run(["data", "convert", str(src), str(dst), "--to", "trl", "--prompt_key", "question",
                          "--chosen_key=good", "--rejected_key", "bad"], capsys)
    assert code == 0, err
    rec = json.loads(dst.read_text())
    assert (rec["prompt"], rec["chosen"], rec["rejected"]) == ("q", "yes", "no")


def test_normalize_argv_only_renames_known_options():
    from selfalign.cli import _register, app

    _register()
    root = typer.main.get_command(app)
    argv = ["data", "validate", "f", "--rejected_key", "reject", "--no_such_thing", "x_y=1", "--", "--chosen_key"]
    assert normalize_argv(root, argv) == ["data", "validate", "f", "--rejected-key", "reject", "--no_such_thing",
                                          "x_y=1", "--", "--chosen_key"]
    # another command's option is not this command's
    assert normalize_argv(root, ["pair", "--chosen_key", "x"]) == ["pair", "--chosen_key", "x"]


# ----------------------------------------------------------------------------------- progress
@pytest.fixture
def log_console(monkeypatch):
    """Progress output captured as a log file (not a terminal)."""
    import selfalign.utils.progress as progress

    buf = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=buf, force_terminal=False))
    monkeypatch.delenv("SELFALIGN_NO_PROGRESS", raising=False)
    return buf


def test_progress_plain_lines_when_not_a_terminal(log_console, monkeypatch):
    from selfalign.utils.progress import Bar

    monkeypatch.setenv("SELFALIGN_PROGRESS_EVERY", "0")
    with Bar("training", total=4, unit="step") as bar:
        for i in range(4):
            bar.advance(1, info=f"loss={i}")
    lines = log_console.getvalue().splitlines()
    assert len(lines) == 5, lines
    assert lines[1].startswith("training: 2/4 (50%) ") and "step/s" in lines[1] and "eta 0:00:00" in lines[1]
    assert lines[1].endswith("loss=1")
    assert lines[-1].startswith("training: 4/4 (100%)") and " done " in lines[-1]
    assert "\x1b" not in log_console.getvalue()


def test_progress_interval_and_silence(log_console, monkeypatch):
    from selfalign.utils.progress import Bar, track

    monkeypatch.setenv("SELFALIGN_PROGRESS_EVERY", "3600")
    assert list(track(range(3), "judging", unit="response")) == [0, 1, 2]
    lines = log_console.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("judging: 3/3 (100%)")  # only the final line
    monkeypatch.setenv("SELFALIGN_NO_PROGRESS", "1")
    with Bar("quiet", total=2) as bar:
        bar.advance(2)
    assert log_console.getvalue().splitlines() == lines


def test_torch_threads_restores_the_count():
    import torch

    from selfalign.utils.threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
