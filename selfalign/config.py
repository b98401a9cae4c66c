"""Config loading: YAML files validated by pydantic models, with dotted command-line overrides.

Every stage defines its schema next to its code as a subclass of :class:`StrictModel` (unknown keys
are errors); recipes compose them. This module turns files and ``key.path=value`` overrides into a
validated model and produces one-line errors:

* unknown key  → ``ConfigError`` (exit 2) naming the key path and the closest valid key;
* wrong type   → the key path and what was expected.

Override values follow one rule (:func:`parse_value`): YAML scalars and flow collections
(``lr=1e-6`` → float, ``beta=[0.1,0.01]`` → list, ``judge={type: function}`` → mapping), and any
other text stays the exact text typed (``score_regex=Rating: ([0-9]+)``). Configs are never
``eval()``-ed.

A YAML file may not set a key twice in one mapping (``file:line: key: duplicate key``), and
TRL's names for the same settings are accepted where the target schema has the field
(:func:`apply_aliases`, applied by :func:`load_config` and the recipes):

=============================================  ===========================================
TRL / HF ``TrainingArguments`` name            selfalign key
=============================================  ===========================================
``model_name_or_path``                         ``model``
``per_device_train_batch_size``                ``per_device_batch_size``
``num_train_epochs``                           ``num_epochs``
``lr_scheduler_type``                          ``lr_scheduler``
``dataset_name``                               ``train_file`` (a local file or folder)
``use_peft: true`` + ``lora_r``,               ``lora: {r, alpha, dropout, target_modules}``
``lora_alpha``, ``lora_dropout``,
``lora_target_modules``
``bf16: true``                                 ``mixed_precision: bf16``
``learning_rate``, ``gradient_accumulation_    the same names
steps``, ``max_steps``, ``warmup_ratio``,
``output_dir``, ``train_file``
=============================================  ===========================================

Writing both spellings of one setting is an error, never a silent choice.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from selfalign.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for all config schemas: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# --------------------------------------------------------------------------------------------- yaml
class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key (for error messages)."""


def _construct_mapping(loader, node, deep=False):
    mapping = {}
    lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(None, None, "found an unhashable key",
                                                    key_node.start_mark) from None
        line = key_node.start_mark.line + 1
        if key in mapping:  # YAML says keys are unique; PyYAML would silently keep the last
            loader._dups.setdefault(id(mapping), (key, line, lines[key]))  # type: ignore[attr-defined]
        mapping[key] = loader.construct_object(value_node, deep=deep)
        lines[key] = line
    loader._key_lines[id(mapping)] = lines  # type: ignore[attr-defined]
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# YAML 1.1 does not read "1e-6" as a float; accept it (users type learning rates that way).
_LineLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"),
)


def load_yaml(path: str | Path) -> tuple[dict, dict[str, int]]:
    """Read a YAML mapping; returns (data, {dotted key path: line number})."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data, key_lines = _load_text(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}:1: the top level must be a mapping of keys to values")
    lines: dict[str, int] = {}
    dups = key_lines.pop(_DUPS, {})

    def walk(obj, prefix):
        if isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{prefix}[{i}]")
        if not isinstance(obj, dict):
            return
        if id(obj) in dups:
            key, line, first = dups[id(obj)]
            path_ = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{p}:{line}: {path_}: duplicate key (first set on line {first}); "
                              "give each key once")
        kl = key_lines.get(id(obj), {})
        for k, v in obj.items():
            path_ = f"{prefix}.{k}" if prefix else str(k)
            if k in kl:
                lines[path_] = kl[k]
            walk(v, path_)

    walk(data, "")
    if dups:  # inside a value that a later duplicate replaced: no dotted path to name
        key, line, first = next(iter(dups.values()))
        raise ConfigError(f"{p}:{line}: {key}: duplicate key (first set on line {first}); give each key once")
    return data, lines


_DUPS = -1  # key of the duplicate-key table in _load_text's second result (never an id())


def _load_text(text: str) -> tuple[Any, dict[int, dict]]:
    """YAML text → (data, {id(mapping): {key: line}}); raises ``yaml.YAMLError``.

    Duplicate keys are reported under ``_DUPS``: ``{id(mapping): (key, line, first line)}``.
    """
    loader = _LineLoader(text)
    loader._key_lines = {}  # type: ignore[attr-defined]
    loader._dups = {}  # type: ignore[attr-defined]
    try:
        data = loader.get_single_data()
        key_lines = loader._key_lines  # type: ignore[attr-defined]
        if loader._dups:  # type: ignore[attr-defined]
            key_lines[_DUPS] = loader._dups  # type: ignore[attr-defined]
        return data, key_lines
    finally:
        loader.dispose()


_NULLS = ("~", "null", "Null", "NULL")


def parse_value(text: str) -> Any:
    """One override value (the text after the first ``=``), by this rule:

    1. Read the text as YAML with the config-file loader: ``1e-6`` → 1e-06, ``true`` → True,
       ``null`` → None, ``"5"`` → "5", ``[0.1, 0.01]`` → a list, ``{type: function}`` → a dict.
    2. A mapping counts only when the text starts with ``{`` and a list only when it starts with
       ``[``; any other text YAML reads as a collection (``Rating: ([0-9]+)``, ``- x``) is the raw text.
    3. Unquoted text that YAML reads as a string, a null or another type (a date) is the raw text,
       so a YAML comment (``Score #1``, ``###``) or spacing never changes it.
    4. A YAML syntax error → the raw text; an empty or blank text is itself.

    Pure; never ``eval()``. In :func:`apply_overrides` the value replaces what the key held.
    """
    stripped = text.strip()
    if not stripped:
        return text
    try:
        value, key_lines = _load_text(text)
    except yaml.YAMLError:
        return text
    if _DUPS in key_lines and stripped[0] in "{[":
        key = next(iter(key_lines[_DUPS].values()))[0]
        raise ConfigError(f"duplicate key {key!r} in {text!r}; give each key once")
    if isinstance(value, dict):
        return value if stripped.startswith("{") else text
    if isinstance(value, list):
        return value if stripped.startswith("[") else text
    if value is None:
        return None if stripped in _NULLS else text
    if isinstance(value, (bool, int, float)):
        return value
    return value if isinstance(value, str) and stripped[0] in "'\"!" else text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (in place) and return it.

    The value is read by :func:`parse_value` and replaces whatever ``a.b.c`` held (a ``{...}``
    mapping replaces the whole section; later dotted overrides then change single fields of it).
    Missing sections are created; a section path through a value (``beta.x=1`` while ``beta`` is
    0.1) is a one-line ``ConfigError``.
    """
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected KEY=VALUE (e.g. train.learning_rate=1e-6)")
        key, _, raw = ov.partition("=")
        key = key.strip()
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"override {ov!r}: empty key" + (" part" if key else ""))
        cur = data
        for depth, part in enumerate(parts[:-1]):
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, dict):
                where, shown = ".".join(parts[: depth + 1]), json.dumps(nxt, default=str)
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise ConfigError(f"override {key}: {where!r} is a value ({shown}), not a section")
            cur = nxt
        try:
            cur[parts[-1]] = parse_value(raw)
        except ConfigError as e:
            raise ConfigError(f"override {key}: {e}") from None
    return data


# ----------------------------------------------------------------------------------------- validate
def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Valid field names of the (nested) model at ``path`` (best effort)."""
    cur: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return []
        field = cur.model_fields.get(part)
        if field is None:
            return []
        cur = _model_in(field.annotation)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return []


def _model_in(annotation) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _model_in(arg)
        if m is not None:
            return m
    return None


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str = "",
                            lines: dict[str, int] | None = None, prefix: str = "") -> str:
    """One line for the first error: ``source:line: key.path: reason``.

    ``prefix`` is the key path of ``model`` inside a larger config (``"train"`` when a recipe
    validates its ``train:`` section with a trainer's schema), so the message names the full path.
    """
    errors = err.errors()
    # an unknown key first: a misspelt required key also reports "Field required" for its real name
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = tuple(e["loc"])
    full = (*prefix.split("."), *loc) if prefix else loc
    key = ".".join(str(p) for p in full) or "<root>"
    line = (lines or {}).get(key)
    where = f"{source}:{line}: " if source and line else (f"{source}: " if source else "")
    if e["type"] == "extra_forbidden":
        valid = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f"; did you mean {'.'.join([*map(str, full[:-1]), close[0]])!r}?" if close else ""
        return f"{where}unknown key {key!r}{hint} (valid keys here: {', '.join(valid)})"
    got = e.get("input")
    got_s = json.dumps(got, default=str) if not isinstance(got, dict) else "a mapping"
    if len(got_s) > 60:
        got_s = got_s[:57] + "..."
    return f"{where}{key}: {e['msg']} (got {got_s})"


def validate(model: type[M], data: dict, source: str = "", lines: dict[str, int] | None = None) -> M:
    """``model.model_validate(data)``; a failure is one ``ConfigError`` line (see above)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, source, lines)) from None


def load_config(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> M:
    """Load ``path`` (optional), apply ``overrides``, validate against ``model``."""
    data: dict = dict(base or {})
    lines: dict[str, int] = {}
    source = ""
    if path is not None:
        file_data, lines = load_yaml(path)
        data = _deep_merge(data, file_data)
        source = str(path)
    if overrides:
        data = apply_overrides(data, list(overrides))
    apply_aliases(model, data, source, lines)
    return validate(model, data, source, lines)


# ------------------------------------------------------------------------------------- TRL names
# TRL / HF TrainingArguments name -> selfalign key (the table in the module docstring)
TRL_ALIASES: dict[str, str] = {
    "model_name_or_path": "model",
    "per_device_train_batch_size": "per_device_batch_size",
    "num_train_epochs": "num_epochs",
    "lr_scheduler_type": "lr_scheduler",
    "dataset_name": "train_file",
}
LORA_ALIASES: dict[str, str] = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout",
                                "lora_target_modules": "target_modules"}


def accepts_key(model: type[BaseModel], key: str) -> bool:
    """``model`` has field ``key`` (or, for a recipe section, the recipe sets it: it is reported so)."""
    return key in model.model_fields or key in getattr(model, "recipe_sets", {})


def apply_aliases(model: type[BaseModel], data: dict, source: str = "", lines: dict[str, int] | None = None,
                  prefix: str = "") -> dict:
    """Rename TRL's spellings in ``data`` (in place, nested sections too) to ``model``'s keys.

    Applied only where ``model`` has the target key and not the TRL name itself; both spellings
    given → ``ConfigError``. ``lines`` (dotted key → line) follows the renames.
    """
    lines = lines if lines is not None else {}

    def path(k: str) -> str:
        return f"{prefix}.{k}" if prefix else k

    def fail(k: str, reason: str) -> ConfigError:
        line = lines.get(path(k))
        where = f"{source}:{line}: " if source and line else (f"{source}: " if source else "")
        return ConfigError(f"{where}{path(k)}: {reason}")

    def move(old: str, new: str, value: Any) -> None:
        if new in data:
            raise fail(old, f"TRL's name for {path(new)!r}, which is also given; keep one of them")
        data[new] = value
        if path(old) in lines:
            lines[path(new)] = lines.pop(path(old))

    fields = model.model_fields
    for alias, target in TRL_ALIASES.items():
        if alias in data and alias not in fields and accepts_key(model, target):
            move(alias, target, data.pop(alias))
    if "bf16" in data and "bf16" not in fields and "mixed_precision" in fields:
        if not isinstance(data["bf16"], bool):
            raise fail("bf16", f"expected true or false (got {data['bf16']!r})")
        if data.pop("bf16"):
            move("bf16", "mixed_precision", "bf16")
        elif "mixed_precision" in data:
            raise fail("bf16", "TRL's switch for 'mixed_precision', which is also given; keep one of them")
    _lora_aliases(model, data, fail, move)
    for name, info in fields.items():
        sub = _model_in(info.annotation)
        if sub is not None and isinstance(data.get(name), dict):
            apply_aliases(sub, data[name], source, lines, path(name))
    return data


def _lora_aliases(model: type[BaseModel], data: dict, fail, move) -> None:
    """TRL's ``use_peft`` + ``lora_*`` keys → a ``lora`` section (see :func:`apply_aliases`)."""
    given = [k for k in ("use_peft", *LORA_ALIASES) if k in data and k not in model.model_fields]
    if not given or "lora" not in model.model_fields:
        return
    use = data.get("use_peft")
    if "use_peft" in data and not isinstance(use, bool):
        raise fail("use_peft", f"expected true or false (got {use!r})")
    sub = [k for k in given if k != "use_peft"]
    if sub and use is not True:
        raise fail(sub[0], "TRL's LoRA settings need use_peft: true (or write lora." + LORA_ALIASES[sub[0]] + ")")
    if use is False and data.get("lora") is not None:
        raise fail("use_peft", "false, but a 'lora' section is also given; keep one of them")
    data.pop("use_peft", None)
    if use:
        move(given[0], "lora", {LORA_ALIASES[k]: data.pop(k) for k in sub})


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def split_config_args(args: list[str]) -> tuple[str | None, list[str]]:
    """Split CLI args into (config file or None, overrides). The config file is the one arg without '='."""
    path = None
    overrides = []
    for a in args:
        if "=" in a:
            overrides.append(a)
        elif path is None:
            path = a
        else:
            raise ConfigError(f"unexpected argument {a!r}: give one config file and KEY=VALUE overrides")
    return path, overrides


def config_hash(obj: BaseModel | dict) -> str:
    """Stable short hash of a config (sorted JSON)."""
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dump_yaml(obj: BaseModel | dict, path: str | Path) -> None:
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def per_iteration(value: float | list[float], t: int) -> float:
    """A scalar-or-list hyper-parameter at iteration ``t`` (0-based); lists repeat their last value."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ConfigError("per-iteration list is empty")
        return value[min(t, len(value) - 1)]
    return value


# -------------------------------------------------------------------------------------- describe
def type_name(annotation: Any) -> str:
    """A short readable type: ``int | null``, ``'linear' | 'cosine'``, ``list[str]``, ``LoraConfig``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_name(a) for a in args)}]" if args else name
    return getattr(annotation, "__name__", str(annotation))


def _default_text(info) -> str:
    if info.is_required():
        return "required"
    value = info.default
    if info.default_factory is not None:
        try:
            value = info.default_factory()
        except TypeError:  # a factory that needs the other fields' values
            return "(computed)"
    if isinstance(value, BaseModel):
        return "(section)"
    return json.dumps(value, default=str)


def describe_fields(model: type[BaseModel], prefix: str = "", depth: int = 0) -> list[dict[str, str]]:
    """Every key of ``model`` as ``{"key", "type", "default", "description"}``; nested sections are
    flattened with dotted names (``lora.r``), TRL spellings and other accepted names are noted, and a
    recipe section's recipe-set keys are listed with the reason."""
    rows: list[dict[str, str]] = []
    trl = {target: alias for alias, target in TRL_ALIASES.items()}
    for name, info in model.model_fields.items():
        desc = info.description or ""
        others = [a for a in getattr(info.validation_alias, "choices", []) if isinstance(a, str) and a != name]
        if name in trl and trl[name] not in model.model_fields:
            others.append(trl[name])
        if others:
            desc = f"{desc} (also: {', '.join(others)})".strip()
        rows.append({"key": prefix + name, "type": type_name(info.annotation), "default": _default_text(info),
                     "description": desc})
        sub = _model_in(info.annotation)
        if sub is not None and depth < 4:
            rows += describe_fields(sub, f"{prefix}{name}.", depth + 1)
    for name, why in getattr(model, "recipe_sets", {}).items():
        rows.append({"key": prefix + name, "type": "-", "default": "(set by the recipe)", "description": why})
    return rows
