"""Tables for SynFed: a dataframe plus its schema, schema inference, loading and splitting.

A :class:`Table` is a pandas frame (always with a fresh ``RangeIndex``) and a schema: the numeric
feature columns, the categorical feature columns, the target column, the task
(``"classification"`` or ``"regression"``), a name and the source it came from (a file path or a
built-in name such as ``sklearn:wine``; error messages name it).

**Schema inference** (:func:`infer_schema`), per column:

* text, category or boolean dtype → categorical — unless at least half of its non-missing values
  parse as numbers, in which case the others are *garbage in a numeric column* and a
  :class:`~selfalign.errors.DataError` names the first bad row;
* a numeric column whose non-missing values are all integers is categorical when it has few
  distinct values: ``n_distinct <= max_categories`` (default 10) **and**
  ``2 * n_distinct <= n_non_missing`` (so an id-like column of a tiny table stays numeric);
* any other numeric column is numeric.

``categorical=`` / ``numeric=`` overrides win over the rule (a column forced numeric must parse
completely). The **task** follows the target column: categorical → classification, numeric →
regression; ``task=`` overrides it (regression needs a numeric target).

**Loading** (:func:`load_table`): a CSV or parquet file (``target`` required; ``?`` counts as
missing), or a table shipped inside an installed package, offline: ``sklearn:iris``,
``sklearn:wine``, ``sklearn:breast_cancer``, ``sklearn:diabetes`` (``as_frame=True``; class ids
replaced by class names) and ``penguins`` (``palmerpenguins``; rows with missing values dropped).
Rows with a missing target are dropped. Bad input raises :class:`~selfalign.errors.DataError`
with one line naming the file, the column and, where relevant, the row (``line`` = CSV line
number, header = line 1; the reason names the 0-based data row).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from selfalign.errors import DataError

Task = Literal["classification", "regression"]
TASKS = ("classification", "regression")


@dataclass(frozen=True, eq=False)
class Table:
    """A dataframe with its schema. ``numeric`` and ``categorical`` list feature columns only
    (the target is in neither); ``frame`` holds every column, in file order, with a RangeIndex."""

    frame: pd.DataFrame
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    target: str
    task: Task
    name: str
    source: str = "<frame>"

    @property
    def features(self) -> list[str]:
        """Feature columns in frame order (target excluded)."""
        keep = set(self.numeric) | set(self.categorical)
        return [c for c in self.frame.columns if c in keep]

    @property
    def columns(self) -> list[str]:
        """Schema columns (features + target) in frame order."""
        keep = set(self.features) | {self.target}
        return [c for c in self.frame.columns if c in keep]

    def is_categorical(self, column: str) -> bool:
        """True for a categorical feature, or the target of a classification task."""
        if column == self.target:
            return self.task == "classification"
        return column in self.categorical

    @cached_property
    def integer_columns(self) -> frozenset[str]:
        """Numeric schema columns whose values are all whole numbers (computed once)."""
        out = set()
        for col in self.columns:
            values = self.frame[col].dropna()
            if (not self.is_categorical(col) and len(values) > 0
                    and bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0))):
                out.add(col)
        return frozenset(out)

    def is_integer(self, column: str) -> bool:
        """True when a numeric column holds only whole numbers (cast generated values to int)."""
        return column in self.integer_columns

    @cached_property
    def _categories(self) -> dict[str, list[Any]]:
        return {c: sorted(self.frame[c].dropna().unique().tolist(), key=str)
                for c in self.columns if self.is_categorical(c)}

    def categories(self, column: str) -> list[Any]:
        """Distinct non-missing values of a column, sorted by their text."""
        if column in self._categories:
            return list(self._categories[column])
        return sorted(self.frame[column].dropna().unique().tolist(), key=str)

    def __len__(self) -> int:
        return len(self.frame)

    def subset(self, rows: Any, name: str | None = None) -> Table:
        """The table restricted to positional ``rows`` (index reset), same schema."""
        frame = self.frame.iloc[np.asarray(rows, dtype=int)].reset_index(drop=True)
        return replace(self, frame=frame, name=name or self.name)


# ------------------------------------------------------------------------------------ inference
def _line(source: str, pos: int) -> int | None:
    """CSV line number of 0-based data row ``pos`` (header is line 1); None for other sources."""
    return pos + 2 if source.lower().endswith(".csv") else None


def _garbage_check(series: pd.Series, column: str, source: str, force: bool) -> pd.Series | None:
    """Parse a text column as numbers. Returns the numeric series when every value parses, None
    when the column is text (fewer than half parse, and not ``force``d). Raises on garbage."""
    values = series.dropna()
    parsed = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
    bad = parsed.isna()
    if not bad.any():
        return pd.to_numeric(series.astype(str).str.strip().where(series.notna()), errors="coerce")
    if not force and (len(values) == 0 or (~bad).sum() * 2 < len(values)):
        return None
    pos = int(series.index.get_loc(bad[bad].index[0]))
    raise DataError(f"row {pos}: {values[bad].iloc[0]!r} is not a number in a numeric column",
                    file=source, line=_line(source, pos), key=column)


def _is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _few_integers(series: pd.Series, max_categories: int) -> bool:
    """The documented rule: whole numbers with few distinct values."""
    values = series.dropna()
    if len(values) == 0 or np.any(np.mod(values.to_numpy(dtype=float), 1) != 0):
        return False
    n_distinct = values.nunique()
    return n_distinct <= max_categories and 2 * n_distinct <= len(values)


def infer_schema(frame: pd.DataFrame, target: str, *, categorical: list[str] | None = None,
                 numeric: list[str] | None = None, task: str | None = None,
                 max_categories: int = 10, source: str = "<frame>",
                 ) -> tuple[pd.DataFrame, list[str], list[str], Task]:
    """Decide each column's type (rule in the module docstring) and the task.

    Returns ``(frame, numeric_features, categorical_features, task)``; the frame has numeric
    text columns converted to numbers. Raises DataError for garbage or an impossible task."""
    forced_cat, forced_num = set(categorical or ()), set(numeric or ())
    for col in forced_cat | forced_num:
        if col not in frame.columns:
            raise DataError(f"column not found{_suggest(col, frame.columns)}", file=source, key=col)
    frame = frame.copy()
    num_cols: list[str] = []
    cat_cols: list[str] = []
    for col in frame.columns:
        series = frame[col]
        is_cat = col in forced_cat
        if not is_cat and _is_text(series) and not pd.api.types.is_bool_dtype(series):
            parsed = _garbage_check(series, col, source, force=col in forced_num)
            if parsed is None:
                is_cat = True
            else:
                frame[col] = series = parsed
        elif not is_cat and pd.api.types.is_bool_dtype(series):
            is_cat = col not in forced_num
        if not is_cat and col not in forced_num and _few_integers(series, max_categories):
            is_cat = True
        (cat_cols if is_cat else num_cols).append(col)
    target_cat = target in cat_cols
    if task is None:
        task = "classification" if target_cat else "regression"
    if task not in TASKS:
        raise DataError(f"task must be one of {TASKS}, not {task!r}", file=source, key=target)
    if task == "regression" and not pd.api.types.is_numeric_dtype(frame[target]):
        raise DataError("target is not numeric, so it cannot be a regression task",
                        file=source, key=target)
    return (frame, [c for c in num_cols if c != target], [c for c in cat_cols if c != target],
            task)  # type: ignore[return-value]


def _suggest(name: str, options: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; columns: {', '.join(map(str, options))}"


# ------------------------------------------------------------------------------------ construction
def table_from_frame(frame: pd.DataFrame, target: str, *, name: str = "table", source: str = "<frame>",
                     task: str | None = None, categorical: list[str] | None = None,
                     numeric: list[str] | None = None, max_categories: int = 10,
                     min_rows: int = 1) -> Table:
    """Validate a frame and infer its schema (see module docstring). Rows with a missing target
    are dropped; then the table must have at least ``min_rows`` rows and a non-constant target."""
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError("the table is empty (no rows or no columns)", file=source, key=target)
    if target not in frame.columns:
        raise DataError(f"target column not found{_suggest(target, frame.columns)}",
                        file=source, key=target)
    frame = frame.reset_index(drop=True)
    values = frame[target]
    if values.isna().all() or (values.astype(str).str.strip() == "").all():
        raise DataError("target column is empty (every value missing)", file=source, key=target)
    frame, num, cat, task_ = infer_schema(frame, target, categorical=categorical, numeric=numeric,
                                          task=task, max_categories=max_categories, source=source)
    frame = frame[frame[target].notna()].reset_index(drop=True)
    if frame[target].nunique() < 2:
        raise DataError(f"target column is constant (every value is {frame[target].iloc[0]!r})",
                        file=source, key=target)
    if len(frame) < min_rows:
        raise DataError(f"{len(frame)} rows with a target, fewer than the minimum {min_rows}",
                        file=source, key=target)
    return Table(frame, tuple(num), tuple(cat), target, task_, name, source)


# ------------------------------------------------------------------------------------ loading
_SKLEARN = {  # name -> (loader function name, target column name, classification?)
    "iris": ("load_iris", "species", True),
    "wine": ("load_wine", "cultivar", True),
    "breast_cancer": ("load_breast_cancer", "diagnosis", True),
    "diabetes": ("load_diabetes", "progression", False),
}


def builtin_table_names() -> list[str]:
    """Names :func:`load_table` resolves offline without a file."""
    return [f"sklearn:{k}" for k in _SKLEARN] + ["penguins"]


def _builtin_frame(name: str) -> tuple[pd.DataFrame, str]:
    """(frame, default target) of a built-in table."""
    if name == "penguins":
        try:
            import palmerpenguins
        except ImportError as err:
            raise DataError("the 'penguins' table needs the palmerpenguins package "
                            "(pip install palmerpenguins)", file=name) from err
        return palmerpenguins.load_penguins().dropna().reset_index(drop=True), "species"
    import sklearn.datasets

    loader, target, is_cls = _SKLEARN[name.removeprefix("sklearn:")]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.rename(columns={"target": target})
    if is_cls:
        frame[target] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    return frame, target


def _resolve_builtin(spec: str) -> str | None:
    names = builtin_table_names()
    if spec in names:
        return spec
    if f"sklearn:{spec}" in names:
        return f"sklearn:{spec}"
    if spec.startswith("sklearn:") or spec == "palmerpenguins:penguins":
        if spec == "palmerpenguins:penguins":
            return "penguins"
        raise DataError(f"unknown built-in table{_suggest(spec, names)}", file=spec)
    return None


def _read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError("file not found", file=path)
    if path.stat().st_size == 0:
        raise DataError("the file is empty", file=path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", na_values=["?"])
    except pd.errors.EmptyDataError as err:
        raise DataError("the file is empty", file=path) from err
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"cannot read the table: {err}".splitlines()[0], file=path) from err
    raise DataError(f"unknown table format {suffix!r} (use .csv, .tsv or .parquet)", file=path)


def load_table(spec: str | Path, target: str | None = None, *, name: str | None = None,
               task: str | None = None, categorical: list[str] | None = None,
               numeric: list[str] | None = None, max_categories: int = 10,
               min_rows: int = 1) -> Table:
    """Load a built-in table (``sklearn:wine``, ``wine``, ``penguins``, ...) or a CSV/parquet file.

    ``target`` defaults to the built-in table's label column and is required for files. The
    table's name defaults to the built-in name without prefix, or the file stem."""
    builtin = _resolve_builtin(str(spec)) if isinstance(spec, str) else None
    if builtin is not None:
        frame, default_target = _builtin_frame(builtin)
        source, default_name = builtin, builtin.removeprefix("sklearn:")
        target = target or default_target
    else:
        path = Path(spec)
        frame = _read_file(path)
        source, default_name = str(path), path.stem
        if target is None:
            raise DataError(f"no target column given{_suggest('', frame.columns)}", file=path)
    return table_from_frame(frame, target, name=name or default_name, source=source, task=task,
                            categorical=categorical, numeric=numeric,
                            max_categories=max_categories, min_rows=min_rows)


# ------------------------------------------------------------------------------------ splitting
def train_test_split_table(table: Table, test_size: float = 0.2, seed: int = 0) -> tuple[Table, Table]:
    """Seeded train/test split. Classification is stratified by the target when every class has
    at least 2 rows (otherwise a plain shuffled split). Returns ``(train, test)``."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise DataError(f"test_size must be in (0, 1), not {test_size}", file=table.source)
    n_test = int(np.ceil(test_size * len(table)))
    if len(table) < 2 or n_test >= len(table):
        raise DataError(f"{len(table)} rows are too few to split", file=table.source, key=table.target)
    y = table.frame[table.target]
    stratify = None
    if table.task == "classification":
        counts = y.value_counts()
        if counts.min() >= 2 and n_test >= len(counts) and len(table) - n_test >= len(counts):
            stratify = y.astype(str).to_numpy()
    train, test = train_test_split(np.arange(len(table)), test_size=n_test, random_state=seed,
                                   stratify=stratify)
    return table.subset(np.sort(train)), table.subset(np.sort(test))


# ------------------------------------------------------------------------------------ saved tables
def save_table(table: Table, folder: str | Path) -> Path:
    """Write ``table`` as ``folder/rows.csv`` (schema columns) + ``folder/schema.json`` (name, source,
    target, task, numeric, categorical), atomically; :func:`read_saved_table` reads it back with the
    same schema (no re-inference: a stage's table means the same thing to the next stage)."""
    import json

    from selfalign.data.io import atomic_output

    with atomic_output(folder) as tmp:
        tmp.mkdir(parents=True)
        table.frame[table.columns].to_csv(tmp / "rows.csv", index=False)
        schema = {"name": table.name, "source": table.source, "target": table.target, "task": table.task,
                  "numeric": list(table.numeric), "categorical": list(table.categorical)}
        (tmp / "schema.json").write_text(json.dumps(schema, indent=1) + "\n", encoding="utf-8")
    return Path(folder)


def read_saved_table(folder: str | Path) -> Table:
    """The table :func:`save_table` wrote to ``folder``."""
    import json

    folder = Path(folder)
    try:
        schema = json.loads((folder / "schema.json").read_text(encoding="utf-8"))
        frame = pd.read_csv(folder / "rows.csv")
        target = schema["target"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"not a saved table ({type(e).__name__}: {e})", file=folder / "schema.json") from e
    return table_from_frame(frame, target, name=schema.get("name", folder.name), source=schema.get("source", str(folder)),
                            task=schema.get("task"), categorical=schema.get("categorical"),
                            numeric=schema.get("numeric"))
