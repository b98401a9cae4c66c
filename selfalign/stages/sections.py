"""Recipe sections made from stage schemas: one home for every setting.

A recipe never copies a stage's options into a hand-written class of its own (copies drift: other
defaults, missing keys, a value the recipe silently overwrites). Its section *is* the stage's
schema, transformed in three stated ways by :func:`derive_section`:

* ``recipe_sets`` — keys the recipe fills in itself (``model``, ``train_file``, ``output_dir`` …),
  removed from the section; a user who writes one gets a one-line error saying why
  (:func:`check_recipe_keys`);
* ``per_iteration`` — fields that may also be a list with one value per iteration
  (``beta: [0.1, 0.05]``; a list repeats its last value), resolved by :meth:`Section.at`;
* ``defaults`` — the recipe's own defaults (e.g. the paper's ``top_p: 0.9``), stated in one place.

``section.at(t, **recipe_values)`` returns a validated instance of the stage schema for iteration
``t`` (0-based): per-iteration lists resolved, the recipe's own values added, all of the stage's
validators applied. A recipe validates every iteration up front, so a bad value fails before any
work starts.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator

from selfalign.config import StrictModel, format_validation_error, per_iteration
from selfalign.errors import ConfigError


class Section(StrictModel):
    """Base of derived recipe sections (see the module docstring)."""

    base_schema: ClassVar[type[BaseModel]]
    recipe_sets: ClassVar[dict[str, str]] = {}
    per_iteration_keys: ClassVar[tuple[str, ...]] = ()
    extra_keys: ClassVar[tuple[str, ...]] = ()

    def at(self, t: int, key: str, source: str = "", **recipe_values: Any) -> Any:
        """The stage schema instance for iteration ``t`` (0-based); errors name ``key.field``."""
        data = {k: getattr(self, k) for k in type(self).model_fields if k not in self.extra_keys}
        data = {k: _plain(v) for k, v in data.items()}
        for k in self.per_iteration_keys:
            data[k] = per_iteration(data[k], t)
        data.update(recipe_values)
        return validate_as(self.base_schema, key, data, source)


def _plain(v: Any) -> Any:
    return v.model_dump() if isinstance(v, BaseModel) else v


def validate_as(schema: type[BaseModel], key: str, data: dict, source: str = "") -> Any:
    """Validate ``data`` with ``schema``; a failure is one line naming ``key.field`` and ``source``."""
    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, schema, source, prefix=key)) from None
    except ConfigError as err:  # raised by a nested validator (e.g. a judge config): add the file
        if source and not str(err).startswith(source):
            raise ConfigError(f"{source}: {err}") from None
        raise


def derive_section(schema: type[BaseModel], name: str, *, recipe_sets: dict[str, str] | None = None,
                   per_iteration: tuple[str, ...] = (), defaults: dict[str, Any] | None = None,
                   extra: dict[str, tuple[Any, Any]] | None = None, doc: str = "") -> type[Section]:
    """A :class:`Section` class holding ``schema``'s fields (see the module docstring).

    ``extra`` adds recipe-only fields (``{"enabled": (bool, Field(False, ...))}``) that
    :meth:`Section.at` does not pass on to the stage schema.
    """
    recipe_sets = dict(recipe_sets or {})
    defaults = dict(defaults or {})
    unknown = (set(recipe_sets) | set(per_iteration) | set(defaults)) - set(schema.model_fields)
    if unknown:
        raise ValueError(f"{name}: {sorted(unknown)} are not fields of {schema.__name__}")
    fields: dict[str, Any] = {}
    for fname, info in schema.model_fields.items():
        if fname in recipe_sets:
            continue
        info = copy.copy(info)
        if fname in defaults:
            info.default, info.default_factory = defaults[fname], None
        if fname in per_iteration:  # constraints are checked per iteration by the stage schema
            fields[fname] = (info.annotation | list[info.annotation],  # type: ignore[operator]
                             Field(info.default, description=(info.description or "")
                                   + " A list gives one value per iteration."))
        else:
            fields[fname] = (info.annotation, info)
    fields.update(extra or {})
    validators = {"_non_empty_lists": field_validator(*per_iteration)(_non_empty)} if per_iteration else {}
    cls = create_model(name, __base__=Section, __doc__=doc or f"Recipe section over {schema.__name__}.",
                       __validators__=validators, **fields)
    cls.base_schema = schema
    cls.recipe_sets = recipe_sets
    cls.per_iteration_keys = tuple(per_iteration)
    cls.extra_keys = tuple(extra or {})
    return cls


def _non_empty(value: Any) -> Any:
    """A per-iteration list needs at least one value (``beta: []`` would leave iterations without one)."""
    if isinstance(value, list) and not value:
        raise ValueError("an empty per-iteration list; give one value, or one value per iteration")
    return value


def check_recipe_keys(model: type[BaseModel], data: dict, lines: dict[str, int], source: str,
                      moved: dict[str, str] | None = None) -> None:
    """Reject keys the recipe sets itself and keys that moved, each with a one-line reason."""
    def where(key: str) -> str:
        return f"{source}:{lines[key]}: " if key in lines else (f"{source}: " if source else "")

    for old, new in (moved or {}).items():
        cur: Any = data
        for part in old.split("."):
            cur = cur.get(part, _MISSING) if isinstance(cur, dict) else _MISSING
        if cur is not _MISSING:
            raise ConfigError(f"{where(old)}{old}: this setting lives in {new!r} (one home per setting)")
    for fname, info in model.model_fields.items():
        sec = info.annotation
        if not (isinstance(sec, type) and issubclass(sec, Section)) or not isinstance(data.get(fname), dict):
            continue
        for key, why in sec.recipe_sets.items():
            if key in data[fname]:
                path = f"{fname}.{key}"
                raise ConfigError(f"{where(path)}{path}: set by the recipe ({why}); remove it")


_MISSING = object()
