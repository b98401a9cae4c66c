"""The original llm-on-ray RLHF config files (seed 002), read safely and mapped onto our trainers.

A ``.conf`` file is a Python dict literal with sections ``General``, ``Dataset`` and ``Training``.
The original ran it through ``eval()``; :func:`read_conf` parses it with :mod:`ast` and accepts only
literals — dicts, lists, tuples, strings, numbers, ``True``/``False``/``None``, a sign on a number —
then builds the value with :func:`ast.literal_eval`. A function call, a name, an attribute, an
operator, a comprehension, a lambda or an import is refused with ``file:line: key: ...``. The same
content may be written as YAML (``.yaml``/``.yml``). An optional fourth section ``selfalign`` takes any
key of our trainer config (``selfalign config show train rm``) for what the original has no key for.

:func:`to_trainer_config` decides the stage — PPO when any of ``model_name``, ``model_pretrain``,
``rm_name``, ``rm_pretrain``, ``kl_coeff`` or ``experience_batch_size`` is given, else the reward model —
and maps every key (:data:`KEYS`). Unknown keys are one-line errors naming the closest valid key; a
value we cannot honour (an optimizer other than AdamW, a hub token) is an error, never ignored.
What the original silently ignored works here: the RM is written to ``checkpoint_dir`` (else
``output_dir``; the model in its ``model/`` folder), PPO starts from ``model_pretrain`` and scores with
``rm_pretrain`` (either may name such a folder), the validation split is honoured, weight decay applied.
"""

from __future__ import annotations

import ast
from pathlib import Path

from selfalign.errors import ConfigError

SECTIONS = ("General", "Dataset", "Training", "selfalign")

# section -> key -> what it maps to (documentation; the mapping itself is in _map_*)
KEYS: dict[str, dict[str, str]] = {
    "General": {
        "base_model": "model (reward model: the starting LM)",
        "model_name": "model (PPO: the policy, unless model_pretrain is given)",
        "model_pretrain": "model (PPO: the SFT weights to start from; a folder, or a trainer's output folder)",
        "rm_name": "rewards[0].model (PPO: a reward model, used when rm_pretrain is not given)",
        "rm_pretrain": "rewards[0].model (PPO: the trained reward model; a `train rm` output folder)",
        "output_dir": "training log (metrics.jsonl; the model and checkpoints too when no checkpoint_dir)",
        "checkpoint_dir": "output_dir: model/ and checkpoints/",
        "config": "{trust_remote_code: bool, use_auth_token: null}",
    },
    "Dataset": {
        "train_file": "train_file",
        "validation_file": "validation_file",
        "validation_split_percentage": "validation_split (percent / 100; when no validation_file)",
    },
    "Training": {
        "optimizer": "AdamW (the only optimizer)",
        "batch_size": "per_device_batch_size",
        "experience_batch_size": "rollout_batch_size (PPO: prompts per step)",
        "epochs": "num_epochs",
        "learning_rate": "learning_rate",
        "lr_scheduler": "lr_scheduler (linear, cosine, constant)",
        "weight_decay": "weight_decay",
        "kl_coeff": "kl_coef (PPO)",
        "num_training_workers": "distributed.num_workers (Ray Train workers; backend ray)",
        "resources_per_worker": "distributed.resources_per_worker",
        "gradient_accumulation_steps": "gradient_accumulation_steps",
        "max_train_steps": "max_steps",
        "seed": "seed",
        "device": "CPU or GPU (GPU: each worker reserves a GPU)",
    },
}
PPO_KEYS = {("General", "model_name"), ("General", "model_pretrain"), ("General", "rm_name"),
            ("General", "rm_pretrain"), ("Training", "kl_coeff"), ("Training", "experience_batch_size")}


# ------------------------------------------------------------------------------------------ reading
_WHAT = {ast.Call: "a function call", ast.Name: "a name", ast.Attribute: "an attribute",
         ast.BinOp: "an operator", ast.BoolOp: "an operator", ast.Compare: "a comparison",
         ast.Lambda: "a lambda", ast.ListComp: "a comprehension", ast.DictComp: "a comprehension",
         ast.SetComp: "a comprehension", ast.GeneratorExp: "a comprehension", ast.JoinedStr: "an f-string",
         ast.Subscript: "a subscript", ast.IfExp: "a conditional", ast.NamedExpr: "an assignment",
         ast.Await: "an await", ast.Starred: "a starred expression", ast.Set: "a set"}


def _check(node: ast.AST, path: str, key: str, lines: dict[str, int]) -> None:
    """Refuse anything but literals under ``node``; record the line of every dict key."""
    if isinstance(node, ast.Dict):
        for k, v in zip(node.keys, node.values):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                line = (k or v).lineno
                raise ConfigError(f"{path}:{line}: {key or 'top level'}: keys must be quoted strings")
            sub = f"{key}.{k.value}" if key else k.value
            if sub in lines:
                raise ConfigError(f"{path}:{k.lineno}: {sub}: duplicate key (first set on line {lines[sub]})")
            lines[sub] = k.lineno
            _check(v, path, sub, lines)
    elif isinstance(node, (ast.List, ast.Tuple)):
        for i, v in enumerate(node.elts):
            _check(v, path, f"{key}[{i}]", lines)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return
    elif isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return
    else:
        what = _WHAT.get(type(node), type(node).__name__)
        raise ConfigError(f"{path}:{node.lineno}: {key or 'top level'}: {what} is not allowed in a config "
                          "file (only literals: dicts, lists, strings, numbers, True/False/None)")


def read_conf(path: str | Path) -> tuple[dict, dict[str, int]]:
    """A ``.conf`` dict literal → ``(data, {dotted key: line})``; never executes anything."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    text = p.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text, filename=str(p), mode="eval")
    except SyntaxError as e:  # statements (import, assignment, def) are not an expression
        raise ConfigError(f"{p}:{e.lineno}: not a Python dict literal ({e.msg}); a .conf file is one "
                          "{...} mapping of sections") from None
    if not isinstance(tree.body, ast.Dict):
        raise ConfigError(f"{p}:{tree.body.lineno}: the top level must be a {{...}} mapping of sections")
    lines: dict[str, int] = {}
    _check(tree.body, str(p), "", lines)
    return ast.literal_eval(tree.body), lines


def read_rlhf_config(path: str | Path) -> tuple[dict, dict[str, int]]:
    """``.conf`` (dict literal) or YAML with the same sections → ``(data, lines)``."""
    from selfalign.config import load_yaml

    if str(path).endswith(".conf"):
        return read_conf(path)
    return load_yaml(path)


def is_rlhf_config(data: dict) -> bool:
    """Whether a parsed config is in this format (a ``General`` section, no ``recipe`` of another kind)."""
    return isinstance(data.get("General"), dict) and data.get("recipe", "rlhf") == "rlhf"
