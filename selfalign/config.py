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
        mapping[key] = loader.construct_object(value_node, deep=deep)
        lines[key] = key_node.start_mark.line + 1
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

    def walk(obj, prefix):
        if isinstance(obj, dict):
            kl = key_lines.get(id(obj), {})
            for k, v in obj.items():
                path_ = f"{prefix}.{k}" if prefix else str(k)
                if k in kl:
                    lines[path_] = kl[k]
                walk(v, path_)

    walk(data, "")
    return data, lines


def _load_text(text: str) -> tuple[Any, dict[int, dict]]:
    """YAML text → (data, {id(mapping): {key: line}}); raises ``yaml.YAMLError``."""
    loader = _LineLoader(text)
    loader._key_lines = {}  # type: ignore[attr-defined]
    try:
        return loader.get_single_data(), loader._key_lines  # type: ignore[attr-defined]
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
        value, _ = _load_text(text)
    except yaml.YAMLError:
        return text
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
        cur[parts[-1]] = parse_value(raw)
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
    e = err.errors()[0]
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
    return validate(model, data, source, lines)


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
