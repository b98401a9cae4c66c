"""Neighbour rows and the cold-start SFT prompts of SynFed (step r0s1).

**Feature matrix** (:func:`feature_matrix`): ``X = [standardise(numeric) | one_hot(categorical)]``,
shape ``(n_rows, n_numeric + Σ_c n_categories(c))``; the target is excluded unless asked for.
Missing numbers are imputed with the column mean (→ 0 after scaling); a missing category is its
own category ``"<missing>"``. Categories are compared as text.

**Similarity**: cosine, ``S[i, j] = x_i·x_j / (‖x_i‖ ‖x_j‖)`` (0 for an all-zero row).

**Neighbours** (:func:`neighbour_indices`): for row ``i`` the other rows sorted by ``S[i, :]``
descending (ties: lower index first; row ``i`` itself is never chosen). A *training* table row
gets its 4 most similar rows + its 1 least similar row; a *target* table row gets its 5 most
similar rows.

**Prompt** (:func:`build_prompt`): the column list with types, the target and its task, and the
example rows as JSON objects — rows in a shuffled order, each row's keys shuffled — using
``numpy.random.default_rng([seed, row])``, so a row's prompt depends only on the seed and the row.
**Response**: the real row as JSON, keys in the table's column order. Floats are written with 6
significant digits. SFT records: ``{"id", "prompt", "response", "meta": {"table", "row",
"neighbours"}}`` with ``id = "{table}/{row}"``.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from selfalign.errors import DataError
from selfalign.tabular.tables import Table

Role = Literal["training", "target"]
MISSING = "<missing>"
_COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                8: "eight", 9: "nine", 10: "ten"}


# ------------------------------------------------------------------------------ feature matrix
def _as_text(frame: pd.DataFrame) -> np.ndarray:
    """Categorical block as text, missing → ``"<missing>"`` (module-level so pipelines pickle)."""
    return pd.DataFrame(frame).astype(object).where(pd.DataFrame(frame).notna(), MISSING) \
        .astype(str).to_numpy()


def _split_columns(table: Table, include_target: bool) -> tuple[list[str], list[str]]:
    num = [c for c in table.features if c in table.numeric]
    cat = [c for c in table.features if c in table.categorical]
    if include_target:
        (cat if table.task == "classification" else num).append(table.target)
    return num, cat


def make_preprocessor(table: Table, include_target: bool = False) -> ColumnTransformer:
    """Unfitted transformer: mean-impute + StandardScaler on numeric columns, text + OneHotEncoder
    (unknown categories → all zeros) on categorical columns."""
    num, cat = _split_columns(table, include_target)
    parts: list[tuple[str, Any, list[str]]] = []
    if num:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), num))
    if cat:
        parts.append(("cat", make_pipeline(FunctionTransformer(_as_text),
                                           OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                      cat))
    if not parts:
        raise DataError("the table has no feature columns", file=table.source, key=table.target)
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)


def feature_matrix(table: Table, include_target: bool = False) -> np.ndarray:
    """``X`` of shape ``(n_rows, n_features_encoded)``, fitted on the table itself."""
    return np.asarray(make_preprocessor(table, include_target).fit_transform(table.frame), dtype=float)


def similarity_matrix(features: np.ndarray) -> np.ndarray:
    """Cosine similarity ``S`` of shape ``(n, n)`` between the rows of ``features``."""
    return cosine_similarity(np.asarray(features, dtype=float))


# ------------------------------------------------------------------------------ neighbours
def neighbour_indices(similarity: np.ndarray, n_similar: int, n_dissimilar: int = 0) -> np.ndarray:
    """For each row ``i``: the ``n_similar`` most similar other rows (most similar first), then
    the ``n_dissimilar`` least similar other rows (least similar last). Shape ``(n, k)`` with
    ``k = n_similar + n_dissimilar``; needs ``n > k``. Deterministic (stable sort)."""
    n = similarity.shape[0]
    k = n_similar + n_dissimilar
    if n <= k:
        raise ValueError(f"{n} rows are too few for {k} neighbours per row (need at least {k + 1})")
    out = np.empty((n, k), dtype=int)
    for i in range(n):
        order = np.argsort(-similarity[i], kind="stable")
        order = order[order != i]
        out[i, :n_similar] = order[:n_similar]
        if n_dissimilar:
            out[i, n_similar:] = order[len(order) - n_dissimilar:]
    return out


def table_neighbours(table: Table, role: Role = "training") -> np.ndarray:
    """Neighbour indices for every row: training → 4 similar + 1 dissimilar, target → 5 similar."""
    if role not in ("training", "target"):
        raise ValueError(f"role must be 'training' or 'target', not {role!r}")
    n_sim, n_dis = (4, 1) if role == "training" else (5, 0)
    try:
        return neighbour_indices(similarity_matrix(feature_matrix(table)), n_sim, n_dis)
    except ValueError as err:
        raise DataError(str(err), file=table.source, key=table.target) from err


# ------------------------------------------------------------------------------ prompts
def json_value(value: Any) -> Any:
    """A cell as a JSON value: numpy scalars → Python, NaN → null, floats to 6 significant digits."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.6g}")
    return value


def cell_value(table: Table, column: str, value: Any) -> Any:
    """:func:`json_value`, with whole-number numeric columns written as ints (``181``, not
    ``181.0``)."""
    value = json_value(value)
    if isinstance(value, float) and table.is_integer(column) and value.is_integer():
        return int(value)
    return value


def row_json(table: Table, row: int, keys: Sequence[str] | None = None) -> str:
    """Row ``row`` as a one-line JSON object over ``keys`` (default: the schema columns)."""
    record = table.frame.iloc[row]
    return json.dumps({k: cell_value(table, k, record[k]) for k in (keys or table.columns)},
                      ensure_ascii=False)


def describe_columns(table: Table, max_listed: int = 20) -> list[str]:
    """One line per schema column: ``- name (numeric)`` or ``- name (categorical: a, b, c)``."""
    lines = []
    for col in table.columns:
        if table.is_categorical(col):
            cats = [str(json_value(c)) for c in table.categories(col)]
            shown = ", ".join(cats[:max_listed]) + (", ..." if len(cats) > max_listed else "")
            kind = f"categorical: {shown}"
        else:
            kind = "numeric, whole number" if table.is_integer(col) else "numeric"
        lines.append(f"- {col} ({kind}){' [target]' if col == table.target else ''}")
    return lines


def build_prompt(table: Table, examples: Sequence[int], rng: np.random.Generator) -> str:
    """The generation prompt over example rows ``examples`` (shuffled with ``rng``; each row's
    keys shuffled with ``rng`` too)."""
    order = list(rng.permutation(np.asarray(examples, dtype=int)))
    rows = []
    for r in order:
        keys = [table.columns[k] for k in rng.permutation(len(table.columns))]
        rows.append(row_json(table, int(r), keys))
    count = _COUNT_WORDS.get(len(rows), str(len(rows)))
    return "\n".join([
        f"Here are {count} rows of the table \"{table.name}\", each written as a JSON object.",
        "The columns and their types:",
        *describe_columns(table),
        f"The target column \"{table.target}\" is a {table.task} task.",
        "",
        "Rows:",
        *rows,
        "",
        f"Write one new row for this table: a single JSON object with all {len(table.columns)} "
        "columns, plausible and consistent with the patterns in the rows above, but not a copy of any "
        "of them.",
    ])


def sft_records(table: Table, role: Role = "training", seed: int = 0) -> list[dict[str, Any]]:
    """One SFT record per row: prompt from its neighbours (see module docstring), response = the
    row itself as JSON. ``role="target"`` gives the target table's generation prompts."""
    neighbours = table_neighbours(table, role)
    records = []
    for i in range(len(table)):
        rng = np.random.default_rng([seed, i])
        records.append({
            "id": f"{table.name}/{i}",
            "prompt": build_prompt(table, neighbours[i], rng),
            "response": row_json(table, i),
            "meta": {"table": table.name, "row": i, "role": role,
                     "neighbours": [int(j) for j in neighbours[i]]},
        })
    return records


def leave_one_table_out(tables: Sequence[Table], target: str, seed: int = 0) -> list[dict[str, Any]]:
    """Cold-start SFT records from every table except the one named ``target`` (training role);
    the target table contributes nothing. Table names must be unique."""
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"table names must be unique; repeated: {', '.join(dup)}", key="tables")
    if target not in names:
        close = difflib.get_close_matches(target, names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else f"; tables: {', '.join(names)}"
        raise DataError(f"target table {target!r} is not among the tables{hint}", key="target")
    records: list[dict[str, Any]] = []
    for table in tables:
        if table.name != target:
            records.extend(sft_records(table, "training", seed))
    return records
