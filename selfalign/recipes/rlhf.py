"""Recipe ``rlhf`` (seed 002): a reward model, then PPO, each from one config file, on Ray workers.

``selfalign run rm.conf`` trains the reward model, ``selfalign run ppo.conf`` runs PPO with it — the
original llm-on-ray ``.conf`` files (read without ``eval``: :mod:`selfalign.recipes.rlhf_conf`) or the
same sections in YAML. Which stage a file is, and how every key maps onto ``selfalign train rm`` /
``selfalign train ppo``, is in :data:`~selfalign.recipes.rlhf_conf.KEYS`. ``num_training_workers`` N
runs the trainer on N Ray Train workers (``distributed: {backend: ray, num_workers: N}``) with
``resources_per_worker`` each; without ``num_training_workers`` it runs in this process.

Reading top to bottom: read the file → apply ``Section.key=value`` overrides → map to the trainer's
config (every value checked before any work) → train (resumable: re-running the same command
continues from the newest checkpoint of the same settings) → print where the model is.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from selfalign.config import apply_overrides, validate
from selfalign.errors import ConfigError
from selfalign.recipes.rlhf_conf import KEYS, PPO_KEYS, SECTIONS, read_rlhf_config
from selfalign.utils.progress import console


# ------------------------------------------------------------------------------------------ mapping
class _Where:
    """``file:line: key:`` prefixes for errors about one config file."""

    def __init__(self, path: str, lines: dict[str, int]):
        self.path, self.lines = path, lines

    def error(self, key: str, reason: str) -> ConfigError:
        line = self.lines.get(key) or self.lines.get(key.split(".")[0])
        return ConfigError(f"{self.path}:{line}: {key}: {reason}" if line else f"{self.path}: {key}: {reason}")


def _closest(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f" (valid: {', '.join(valid)})"


def _check_keys(data: dict, where: _Where) -> None:
    for section, body in data.items():
        if section == "recipe":
            continue
        if section not in SECTIONS:
            raise where.error(section, f"unknown section{_closest(section, list(SECTIONS))}")
        if not isinstance(body, dict):
            raise where.error(section, "must be a mapping of keys to values")
        if section == "selfalign":
            continue  # validated by the trainer's own schema
        for key in body:
            if key not in KEYS[section]:
                raise where.error(f"{section}.{key}", f"unknown key{_closest(key, list(KEYS[section]))}")


def stage_of(data: dict) -> str:
    """``ppo`` when a PPO-only key is set (:data:`~selfalign.recipes.rlhf_conf.PPO_KEYS`), else ``rm``."""
    given = {(s, k) for s, body in data.items() if isinstance(body, dict) for k, v in body.items() if v is not None}
    return "ppo" if given & PPO_KEYS else "rm"


def model_folder(spec: str) -> str:
    """A trainer's output folder (holding ``model/``) → its ``model/``; anything else unchanged."""
    p = Path(spec)
    return str(p / "model") if (p / "model" / "config.json").is_file() else spec


def _require_reward_head(spec: str, where: _Where) -> None:
    """rm_name without rm_pretrain must already be a reward model (one-label classifier), not an LM."""
    from selfalign.models.load import resolve_model

    try:
        folder = resolve_model(spec)
    except Exception:  # a hub id or a missing folder: loading will say so
        return
    cfg = Path(folder) / "config.json"
    if cfg.is_file():
        arch = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
        if arch and not any(a.endswith("ForSequenceClassification") for a in arch):
            raise where.error("General.rm_name", f"{spec} is a language model ({arch[0]}) without a trained reward "
                              "head; set General.rm_pretrain to the reward-model stage's checkpoint_dir")


def _general(g: dict, stage: str, where: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {}
    conf = g.get("config") or {}
    bad = sorted(set(conf) - {"trust_remote_code", "use_auth_token"})
    if bad:
        raise where.error(f"General.config.{bad[0]}", "unknown key (valid: trust_remote_code, use_auth_token)")
    if conf.get("use_auth_token"):
        raise where.error("General.config.use_auth_token", "no model hub is used: give local model folders")
    out["trust_remote_code"] = bool(conf.get("trust_remote_code", False))
    if stage == "rm":
        for k in ("model_name", "model_pretrain", "rm_name", "rm_pretrain"):
            if g.get(k) is not None:
                raise where.error(f"General.{k}", "is a PPO key; a reward-model config names base_model")
        if not g.get("base_model"):
            raise where.error("General.base_model", "missing: the language model to train the reward model from")
        out["model"] = g["base_model"]
    else:
        start = g.get("model_pretrain") or g.get("model_name") or g.get("base_model")
        if not start:
            raise where.error("General.model_name", "missing: the policy (model_name, or model_pretrain)")
        out["model"] = model_folder(str(start))
        rm = g.get("rm_pretrain") or g.get("rm_name")
        if not rm:
            raise where.error("General.rm_pretrain", "missing: the reward model (the RM stage's checkpoint_dir)")
        if not g.get("rm_pretrain"):
            _require_reward_head(str(rm), where)
        out["rewards"] = [{"type": "reward_model", "model": model_folder(str(rm))}]
    logs, ckpts = g.get("output_dir"), g.get("checkpoint_dir")
    if not (logs or ckpts):
        raise where.error("General.output_dir", "missing: where the training log (and model) go")
    out["output_dir"] = str(ckpts or logs)
    if logs and ckpts and Path(logs).resolve() != Path(ckpts).resolve():
        out["metrics_file"] = str(Path(logs) / "metrics.jsonl")
    return out


def _dataset(d: dict, where: _Where) -> dict[str, Any]:
    if not d.get("train_file"):
        raise where.error("Dataset.train_file", "missing: the training records (JSON lines)")
    out: dict[str, Any] = {"train_file": str(d["train_file"])}
    pct = d.get("validation_split_percentage")
    if d.get("validation_file"):
        out["validation_file"] = str(d["validation_file"])
    elif pct:
        if not isinstance(pct, (int, float)) or not 0 <= pct < 100:
            raise where.error("Dataset.validation_split_percentage", f"must be a number in [0, 100), got {pct!r}")
        out["validation_split"] = pct / 100
    return out


_SAME = {"learning_rate": "learning_rate", "weight_decay": "weight_decay", "epochs": "num_epochs",
         "batch_size": "per_device_batch_size", "gradient_accumulation_steps": "gradient_accumulation_steps",
         "max_train_steps": "max_steps", "seed": "seed", "lr_scheduler": "lr_scheduler"}


def _training(t: dict, stage: str, where: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {_SAME[k]: v for k, v in t.items() if k in _SAME and v is not None}
    opt = t.get("optimizer")
    if opt is not None and str(opt).lower() != "adamw":
        raise where.error("Training.optimizer", f"{opt!r} is not available; AdamW is the optimizer of every trainer")
    for k in ("kl_coeff", "experience_batch_size"):
        if t.get(k) is not None and stage != "ppo":
            raise where.error(f"Training.{k}", "is a PPO key (this file is a reward-model config)")
    if t.get("kl_coeff") is not None:
        out["kl_coef"] = t["kl_coeff"]
    if t.get("experience_batch_size") is not None:
        out["rollout_batch_size"] = t["experience_batch_size"]
    device = str(t.get("device", "CPU")).upper()
    if device not in ("CPU", "GPU"):
        raise where.error("Training.device", f"{t['device']!r}: use CPU or GPU")
    res = t.get("resources_per_worker")
    if device == "GPU":
        res = {**(res or {"CPU": 1}), "GPU": (res or {}).get("GPU", 1)}
    if t.get("num_training_workers") is not None:
        out["distributed"] = {"backend": "ray", "num_workers": t["num_training_workers"],
                              **({"resources_per_worker": res} if res else {})}
    elif res:
        raise where.error("Training.resources_per_worker", "needs num_training_workers (the Ray workers it sizes)")
    if device == "CPU":
        out["cpu"] = True
    return out


def to_trainer_config(data: dict, lines: dict[str, int], path: str) -> tuple[str, Any]:
    """``(trainer name, validated trainer config)`` for an RLHF config (see the module docstring)."""
    from selfalign.train.registry import get_trainer

    where = _Where(path, lines)
    _check_keys(data, where)
    stage = stage_of(data)
    options = {**_general(data.get("General") or {}, stage, where), **_dataset(data.get("Dataset") or {}, where),
               **_training(data.get("Training") or {}, stage, where)}
    extra = dict(data.get("selfalign") or {})
    clash = sorted(set(extra) & set(options))
    if clash:
        raise where.error(f"selfalign.{clash[0]}", "is set by the General/Dataset/Training keys already")
    options.update(extra)
    options.setdefault("resume", not options.get("overwrite", False))  # re-running continues the run
    config_cls, _ = get_trainer(stage)
    return stage, validate(config_cls, options, path, _trainer_key_lines(lines))


def _trainer_key_lines(lines: dict[str, int]) -> dict[str, int]:
    """{trainer key: line of the config key that set it}, for validation errors."""
    named = {"General.base_model": "model", "General.model_name": "model", "General.model_pretrain": "model",
             "General.rm_pretrain": "rewards", "General.rm_name": "rewards", "General.checkpoint_dir": "output_dir",
             "Dataset.train_file": "train_file", "Dataset.validation_file": "validation_file",
             "Dataset.validation_split_percentage": "validation_split", "Training.kl_coeff": "kl_coef",
             "Training.experience_batch_size": "rollout_batch_size",
             "Training.num_training_workers": "distributed", "Training.resources_per_worker": "distributed",
             **{f"Training.{k}": v for k, v in _SAME.items()}}
    out = {ours: lines[theirs] for theirs, ours in named.items() if theirs in lines}
    out.update({k.removeprefix("selfalign."): v for k, v in lines.items() if k.startswith("selfalign.")})
    return out


# ------------------------------------------------------------------------------------------- entry
def main(path: str, overrides: list[str]) -> dict[str, Any]:
    """``selfalign run FILE.conf|FILE.yaml [Section.key=value ...]``: one RLHF stage."""
    from selfalign.train.outdir import cleanup_on_failure
    from selfalign.train.registry import run_trainer

    data, lines = read_rlhf_config(path)
    data = apply_overrides(data, list(overrides))
    stage, cfg = to_trainer_config(data, lines, str(path))
    where = "one process" if not cfg.distributed.enabled else f"{cfg.distributed.num_workers} Ray Train workers"
    console.print(f"[bold]rlhf[/] {path}: {'reward model' if stage == 'rm' else 'PPO'} stage on {where} "
                  f"→ {cfg.output_dir}")
    with cleanup_on_failure(cfg.output_dir):
        summary = run_trainer(stage, cfg)
    console.print(f"[green]done[/] rlhf {stage}: model in {summary['model_path']}")
    return summary
