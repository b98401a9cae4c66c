"""Federated client splits and downstream task records of SynFed (step r0s2).

**Dirichlet label skew** (:func:`dirichlet_split`): labels are the target classes, or for a
regression target its 4 quantile bins (:func:`quantile_bins`). For each class ``c`` (sorted), with
``n_c`` rows: ``p_c ~ Dir(α·1_K)`` over the ``K`` clients; the class's rows, shuffled, are cut at
``floor(cumsum(p_c) · n_c)``, so client ``k`` receives ``≈ p_c[k] · n_c`` of them. One
``numpy.random.default_rng(seed)`` draws everything, in class order.

**Every client gets ≥ 1 row**: needs ``n_rows ≥ K`` (else DataError). After the draw, while a
client is empty it takes one row (the last one) from the currently largest client; this moves at
most ``K − 1`` rows, keeps the split deterministic and never empties the donor (it has ≥ 2 rows).

**Full copies** (:func:`full_split`): every client holds every row.

**Downstream task records** (:func:`task_records`): the row without its target as text
(``"col: value; col: value"``) plus the question → the label; ``{"id", "prompt", "response",
"meta": {"table", "row", "client"}}`` with ``id = "{table}/c{client}/{row}"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from selfalign.errors import DataError
from selfalign.tabular.neighbours import cell_value, json_value
from selfalign.tabular.tables import Table

Method = Literal["dirichlet", "full"]


@dataclass(frozen=True, eq=False)
class ClientSplit:
    """Row positions per client; for Dirichlet splits also ``classes`` (label values, sorted) and
    the drawn ``proportions`` of shape ``(n_classes, n_clients)`` (each row sums to 1)."""

    clients: list[np.ndarray]
    classes: list[Any]
    proportions: np.ndarray | None

    def sizes(self) -> list[int]:
        return [len(c) for c in self.clients]


def quantile_bins(values: Sequence[float] | np.ndarray, n_bins: int = 4) -> np.ndarray:
    """Bin ids ``0..n_bins-1`` by quantiles of ``values`` (ranks first, so ties cannot collapse
    bin edges); shape ``(n,)``. Bin ``b`` holds the rows whose rank falls in the b-th quantile."""
    ranks = pd.Series(np.asarray(values, dtype=float)).rank(method="first").to_numpy()
    return np.asarray(pd.qcut(ranks, q=min(n_bins, len(ranks)), labels=False), dtype=int)


def split_labels(table: Table, n_bins: int = 4) -> np.ndarray:
    """Labels for label skew: the target (classification) or its quantile bins (regression)."""
    y = table.frame[table.target]
    if table.task == "regression":
        return quantile_bins(y.to_numpy(dtype=float), n_bins)
    return y.astype(str).to_numpy()


def _ensure_nonempty(clients: list[list[int]]) -> list[list[int]]:
    """Give every empty client one row from the largest client (see module docstring)."""
    for k in range(len(clients)):
        if not clients[k]:
            donor = max(range(len(clients)), key=lambda j: (len(clients[j]), -j))
            clients[k].append(clients[donor].pop())
    return clients


def dirichlet_split(table: Table, n_clients: int, alpha: float = 0.5, seed: int = 0,
                    n_bins: int = 4) -> ClientSplit:
    """Dirichlet label-skew split of the table's rows over ``n_clients`` (see module docstring)."""
    if n_clients < 1 or alpha <= 0:
        raise DataError(f"need n_clients >= 1 and alpha > 0 (got {n_clients}, {alpha})",
                        file=table.source, key="n_clients")
    if len(table) < n_clients:
        raise DataError(f"{len(table)} rows are fewer than the {n_clients} clients",
                        file=table.source, key=table.target)
    labels = split_labels(table, n_bins)
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels.tolist()), key=str)
    props = np.zeros((len(classes), n_clients))
    clients: list[list[int]] = [[] for _ in range(n_clients)]
    for c, cls in enumerate(classes):
        rows = np.flatnonzero(labels == cls)
        rng.shuffle(rows)
        props[c] = rng.dirichlet(np.full(n_clients, alpha))
        cuts = np.floor(np.cumsum(props[c])[:-1] * len(rows)).astype(int)
        for k, part in enumerate(np.split(rows, cuts)):
            clients[k].extend(int(r) for r in part)
    clients = _ensure_nonempty(clients)
    return ClientSplit([np.sort(np.asarray(c, dtype=int)) for c in clients], classes, props)


def full_split(table: Table, n_clients: int) -> ClientSplit:
    """Every client holds a full copy of the table."""
    if n_clients < 1:
        raise DataError(f"need n_clients >= 1 (got {n_clients})", file=table.source, key="n_clients")
    return ClientSplit([np.arange(len(table)) for _ in range(n_clients)], [], None)


def split_clients(table: Table, n_clients: int, method: Method = "dirichlet", alpha: float = 0.5,
                  seed: int = 0) -> list[Table]:
    """The clients' tables (names ``"{table}/c{k}"``) by ``method``."""
    if method == "dirichlet":
        split = dirichlet_split(table, n_clients, alpha, seed)
    elif method == "full":
        split = full_split(table, n_clients)
    else:
        raise DataError(f"split method must be 'dirichlet' or 'full', not {method!r}", key="method")
    return [table.subset(rows, f"{table.name}/c{k}") for k, rows in enumerate(split.clients)]


def row_text(table: Table, row: int) -> str:
    """The row's features (target left out) as ``"col: value; col: value"`` in column order."""
    record = table.frame.iloc[row]
    return "; ".join(f"{c}: {cell_value(table, c, record[c])}" for c in table.features)


def task_prompt(table: Table, row: int) -> str:
    """Downstream question for one row: features as text, then what to predict and how."""
    if table.task == "classification":
        options = ", ".join(str(json_value(c)) for c in table.categories(table.target))
        ask = f"Which {table.target} does this row have? Answer with one of: {options}."
    else:
        ask = f"What is the {table.target} of this row? Answer with a number."
    return f"{row_text(table, row)}\n{ask}"


def task_records(table: Table, rows: Sequence[int] | np.ndarray | None = None,
                 client: int | None = None) -> list[dict[str, Any]]:
    """Downstream task records (prompt = :func:`task_prompt`, response = the label as text) for
    ``rows`` (default: all) of ``table``; ``meta.row`` is the position in ``table``."""
    picked = range(len(table)) if rows is None else [int(r) for r in rows]
    tag = "" if client is None else f"c{client}/"
    return [{"id": f"{table.name}/{tag}{r}", "prompt": task_prompt(table, r),
             "response": str(cell_value(table, table.target, table.frame[table.target].iloc[r])),
             "meta": {"table": table.name, "row": r, "client": client}} for r in picked]


def client_task_records(table: Table, split: ClientSplit) -> list[list[dict[str, Any]]]:
    """Task records per client of a split (rows refer to ``table``)."""
    return [task_records(table, rows, client=k) for k, rows in enumerate(split.clients)]
