"""In-context utility of a synthetic row: how much one row, shown as a demonstration, helps a scoring
model label the node's anchor rows (SynFed r1s1 scoring prompts and r1s4 scores; seed 000).

For a node with real training rows, anchors (:mod:`.anchors`) and a scoring model:

* **Labels.** Classification: the target's classes. Regression: 4 quantile bins of the real training
  target (edges from the real rows, so every node scores against its own data). Each label gets a
  one-letter code ``A, B, C, …`` that the model answers with (one token; at most 26 labels).
* **ds0** (per anchor a): ``instruction + question(a)`` — the anchor's features, the labels with
  their codes, ``"Answer: "``. **ds1** (per synthetic row s and anchor a): ``instruction +
  demonstration(s) + question(a)``: the same with ``s`` and its label shown first as a solved example.
* **Prediction** = the code with the highest next-token log-probability after ``"Answer: "``
  (:func:`selfalign.models.scoring.answer_logprobs`; the ds1 contexts of one synthetic row share
  their prefix, which runs once per row).
* **Score** = Matthews correlation (MCC) between the anchors' true labels and the predictions, in
  [−1, 1], higher is better — for regression over the bins, so higher is better there too (the
  seed's code scored regression by MSE as if higher were better; peers that keep MSE must flip its
  sign). **gain(s) = MCC(ds1(s)) − MCC(ds0)**; ds0 is shared by every row of a node.

Only rows whose extraction succeeded (:mod:`.extract`: every column cast) get a gain; the
preference step compares gains only when both rows succeeded and statuses otherwise
(:mod:`.preferences`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import matthews_corrcoef

from selfalign.errors import DataError
from selfalign.tabular.neighbours import cell_value, json_value
from selfalign.tabular.split import quantile_bins
from selfalign.tabular.tables import Table

N_BINS = 4


@dataclass(frozen=True)
class LabelSpace:
    """The labels a scoring model answers with: display ``names``, one-letter ``codes`` and, for
    regression, the bin ``edges`` (``len(names) - 1`` inner quantile edges of the real target)."""

    names: tuple[str, ...]
    codes: tuple[str, ...]
    edges: tuple[float, ...] | None = None

    def index(self, table: Table, value: Any) -> int:
        """Label index of a target value (class position, or regression bin)."""
        if self.edges is not None:
            return int(np.searchsorted(np.asarray(self.edges), float(value), side="left"))  # edges = bin maxima
        name = str(json_value(cell_value(table, table.target, value)))
        if name not in self.names:
            raise DataError(f"target value {name!r} is not one of the classes {list(self.names)}",
                            file=table.source, key=table.target)
        return self.names.index(name)


def label_space(table: Table) -> LabelSpace:
    """Labels of ``table`` (the node's real training rows): its classes, or 4 quantile bins."""
    if table.task == "classification":
        names = tuple(str(json_value(c)) for c in table.categories(table.target))
        edges = None
    else:
        y = table.frame[table.target].to_numpy(dtype=float)
        bins = quantile_bins(y, N_BINS)
        k = int(bins.max()) + 1
        edges = tuple(float(y[bins == b].max()) for b in range(k - 1))
        lo = [float(y.min())] + list(edges)
        hi = list(edges) + [float(y.max())]
        names = tuple(f"{a:.4g} to {b:.4g}" for a, b in zip(lo, hi))
    if len(names) > len(string.ascii_uppercase):
        raise DataError(f"{len(names)} classes: the scoring prompt codes at most 26", file=table.source,
                        key=table.target)
    return LabelSpace(names, tuple(string.ascii_uppercase[:len(names)]), edges)


def _features(table: Table, row: Mapping[str, Any]) -> str:
    return "; ".join(f"{c}: {json_value(cell_value(table, c, row[c]))}" for c in table.features)


def instruction(table: Table, space: LabelSpace) -> str:
    """The fixed start of every scoring prompt: the task and the label codes."""
    kind = "class" if space.edges is None else "range"
    options = "; ".join(f"{c} = {n}" for c, n in zip(space.codes, space.names))
    return (f"Each row of the table {table.name!r} has features and a {table.target}. Give the {kind} "
            f"of {table.target} for the last row, answering with its letter ({options}).\n\n")


def demonstration(table: Table, space: LabelSpace, row: Mapping[str, Any]) -> str:
    """A solved example: the row's features and its label's code."""
    return f"Row: {_features(table, row)}\nAnswer: {space.codes[space.index(table, row[table.target])]}\n\n"


def question(table: Table, row: Mapping[str, Any]) -> str:
    """The anchor to label; ends with ``"Answer: "`` (the answer token follows)."""
    return f"Row: {_features(table, row)}\nAnswer: "


def _rows(table: Table) -> list[dict[str, Any]]:
    return table.frame[table.columns].to_dict("records")


def utility_contexts(table: Table, anchors: Table, synthetic: Sequence[Mapping[str, Any]], space: LabelSpace
                     ) -> tuple[list[str], list[list[str]]]:
    """``(ds0, ds1)``: ds0 = one context per anchor; ds1[s] = one context per anchor for synthetic row s."""
    head = instruction(table, space)
    questions = [question(table, a) for a in _rows(anchors)]
    ds0 = [head + q for q in questions]
    ds1 = [[head + demonstration(table, space, s) + q for q in questions] for s in synthetic]
    return ds0, ds1


def mcc(true: Sequence[int], pred: Sequence[int]) -> float:
    """Matthews correlation of two label-index sequences (0 when either is constant)."""
    return float(matthews_corrcoef(np.asarray(true), np.asarray(pred)))


def predict(model: Any, tokenizer: Any, contexts: Sequence[str], space: LabelSpace, batch_size: int = 8,
            groups: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """Label index per context: the code with the highest next-token log-probability."""
    from selfalign.models.scoring import answer_logprobs

    logp = answer_logprobs(model, tokenizer, list(contexts), list(space.codes), batch_size=batch_size,
                           label="scoring", groups=groups)
    return logp.argmax(-1).numpy()


def utility_gains(model: Any, tokenizer: Any, table: Table, anchors: Table,
                  synthetic: Sequence[Mapping[str, Any] | None], batch_size: int = 8) -> dict[str, Any]:
    """Gains of the synthetic rows (None where a row is None: extraction failed) for one node.

    Returns ``{"gains": [...], "ds0_mcc": float, "ds1_mcc": [...], "labels": [...names]}``;
    ``table`` is the node's real training rows (labels, bin edges), ``anchors`` its anchor rows."""
    space = label_space(table)
    truth = [space.index(table, v) for v in anchors.frame[table.target]]
    usable = [i for i, s in enumerate(synthetic) if s is not None]
    ds0, ds1 = utility_contexts(table, anchors, [synthetic[i] for i in usable], space)
    contexts = ds0 + [c for per_row in ds1 for c in per_row]
    n = len(ds0)
    groups = [list(range(n))] + [list(range(n + k * n, n + (k + 1) * n)) for k in range(len(usable))]
    pred = predict(model, tokenizer, contexts, space, batch_size, groups)
    base = mcc(truth, pred[:n])
    ds1_mcc: list[float | None] = [None] * len(synthetic)
    for k, i in enumerate(usable):
        ds1_mcc[i] = mcc(truth, pred[n + k * n: n + (k + 1) * n])
    gains = [None if v is None else v - base for v in ds1_mcc]
    return {"gains": gains, "ds0_mcc": base, "ds1_mcc": ds1_mcc, "labels": list(space.names)}


def score_candidates(model: Any, tokenizer: Any, table: Table, anchors: Table, candidates: Sequence[Mapping[str, Any]],
                     batch_size: int = 8) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Prompt groups for :func:`selfalign.tabular.preferences.preference_pairs` from generated
    candidates (``{"id", "prompt", "responses": [{"text"}, ...]}``): every response extracted against
    ``table``'s schema (status, row), the successful ones scored by :func:`utility_gains` against
    ``anchors`` (one shared ds0). Returns ``(groups, stats)``; a group's ``meta.table`` is the table's
    name, each sample ``{"text", "status", "status_score", "gain", "row"}``."""
    from selfalign.tabular.extract import Status, extract_row

    flat = [(g, r.get("text", "")) for g, c in enumerate(candidates) for r in c.get("responses") or []]
    ex = [extract_row(text, table) for _, text in flat]
    rows = [e.row if e.status == Status.SUCCESS else None for e in ex]
    scored = utility_gains(model, tokenizer, table, anchors, rows, batch_size)
    groups: list[dict[str, Any]] = [{"id": c.get("id"), "prompt": c.get("prompt"),
                                     "meta": {**(c.get("meta") or {}), "table": table.name}, "samples": []}
                                    for c in candidates]
    for (g, text), e, gain in zip(flat, ex, scored["gains"], strict=True):
        groups[g]["samples"].append({"text": text, "status": e.status.value, "status_score": e.score,
                                     "gain": gain, "row": e.row})
    n = max(len(ex), 1)
    counts = {s.value: sum(e.status == s for e in ex) for s in Status}
    gains = [x for x in scored["gains"] if x is not None]
    stats = {"responses": len(ex), "json_valid_rate": 1.0 - counts["INVALID_ANSWER"] / n,
             "success_rate": counts["SUCCESS"] / n, "status_counts": counts, "ds0_mcc": scored["ds0_mcc"],
             "gain_mean": float(np.mean(gains)) if gains else None,
             "gain_positive_rate": float(np.mean([x > 0 for x in gains])) if gains else None}
    return groups, stats
