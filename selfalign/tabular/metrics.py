"""Quality of synthetic rows, measured independently of any LLM scorer.

* **TSTR** (:func:`tstr`): train a standard scikit-learn model on the synthetic rows, test on
  held-out real rows. Pipeline = :func:`~.neighbours.make_preprocessor` (mean-impute + scaling of
  numeric columns, one-hot of categorical ones; fitted on the training rows) + the model.
  Classification → Matthews correlation (MCC, in [-1, 1]); models ``random_forest``
  (100 trees) and ``logistic``. Regression → R² (higher is better); models ``random_forest`` and
  ``ridge``. Seeded (``random_state=seed``, one job). Synthetic rows holding a single class give a
  constant predictor, so MCC 0.
* **TRTR** (:func:`trtr`): the same with the real training rows — the baseline to compare with.
* **DCR** (:func:`distance_to_closest_record`): privacy; for each synthetic row the Euclidean
  distance to the nearest real training row in the standardised feature space (target included,
  preprocessor fitted on the real rows). :func:`dcr_summary` gives the median and 5th percentile
  (small = rows close to real ones; 0 = copies).
* **Column distances** (:func:`column_distances`): per column, Kolmogorov–Smirnov statistic
  (numeric) or total variation distance (categorical), both in [0, 1], lower is closer.
* **sdmetrics fidelity** (:func:`sdmetrics_quality`): ``QualityReport`` column shapes and column
  pair trends, only if ``sdmetrics`` is installed (0.32 needs pandas < 3; not a dependency).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import matthews_corrcoef, r2_score
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline

from selfalign.errors import DataError, SelfalignError
from selfalign.tabular.neighbours import make_preprocessor
from selfalign.tabular.tables import Table

CLASSIFIERS = ("random_forest", "logistic")
REGRESSORS = ("random_forest", "ridge")


def _model(task: str, name: str, seed: int) -> Any:
    if task == "classification":
        models = {"random_forest": lambda: RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1),
                  "logistic": lambda: LogisticRegression(max_iter=1000)}
    else:
        models = {"random_forest": lambda: RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=1),
                  "ridge": lambda: Ridge(alpha=1.0)}
    if name not in models:
        raise DataError(f"unknown {task} model {name!r} (one of {', '.join(models)})", key="model")
    return models[name]()


def synthetic_frame(synthetic: pd.DataFrame | Table, table: Table, source: str = "<synthetic>") -> pd.DataFrame:
    """The synthetic rows as a frame over ``table``'s schema columns; numeric columns as numbers,
    rows without a target dropped. Raises DataError naming a missing column or an empty result."""
    frame = synthetic.frame if isinstance(synthetic, Table) else pd.DataFrame(synthetic)
    for col in table.columns:
        if col not in frame.columns:
            raise DataError("column missing from the synthetic rows", file=source, key=col)
    frame = frame[table.columns].copy()
    for col in table.columns:
        if not table.is_categorical(col):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame = frame[frame[table.target].notna()].reset_index(drop=True)
    if frame.empty:
        raise DataError("no synthetic rows with a target", file=source, key=table.target)
    return frame


def _labels(table: Table, values: pd.Series) -> np.ndarray:
    return values.astype(str).to_numpy() if table.task == "classification" else values.to_numpy(dtype=float)


def tstr(synthetic: pd.DataFrame | Table, test: Table, model: str = "random_forest", seed: int = 0) -> float:
    """Train on ``synthetic`` rows, test on the real ``test`` table: MCC (classification) or R²."""
    train = synthetic_frame(synthetic, test)
    x_cols = test.features
    y_train = _labels(test, train[test.target])
    y_test = _labels(test, test.frame[test.target])
    if test.task == "classification" and len(set(y_train.tolist())) < 2:
        estimator: Any = DummyClassifier(strategy="most_frequent")
    else:
        estimator = _model(test.task, model, seed)
    pipe = make_pipeline(make_preprocessor(test), estimator)
    pipe.fit(train[x_cols], y_train)
    pred = pipe.predict(test.frame[x_cols])
    if test.task == "classification":
        return float(matthews_corrcoef(y_test, pred))
    return float(r2_score(y_test, pred))


def trtr(train: Table, test: Table, model: str = "random_forest", seed: int = 0) -> float:
    """The real baseline: train on the real training rows, test on real test rows."""
    return tstr(train.frame, test, model, seed)


def distance_to_closest_record(synthetic: pd.DataFrame | Table, real: Table) -> np.ndarray:
    """Shape ``(n_synthetic,)``: ``min_j ‖z(s_i) − z(r_j)‖₂`` with ``z`` the preprocessor
    (target included) fitted on the real rows."""
    syn = synthetic_frame(synthetic, real)
    pre = make_preprocessor(real, include_target=True).fit(real.frame)
    real_x = np.asarray(pre.transform(real.frame), dtype=float)
    syn_x = np.asarray(pre.transform(syn), dtype=float)
    dist, _ = NearestNeighbors(n_neighbors=1).fit(real_x).kneighbors(syn_x)
    return dist[:, 0]


def dcr_summary(distances: np.ndarray, copy_tol: float = 1e-6) -> dict[str, float]:
    """``{"n", "median", "p5", "copies"}``; copies = rows at distance ≤ ``copy_tol`` (an exact copy
    comes out at ≈ 1e-8, not 0: the nearest-neighbour search computes ‖a‖² + ‖b‖² − 2a·b)."""
    d = np.asarray(distances, dtype=float)
    return {"n": int(d.size), "median": float(np.median(d)), "p5": float(np.percentile(d, 5)),
            "copies": int(np.sum(d <= copy_tol))}


def _tvd(real: pd.Series, syn: pd.Series) -> float:
    p = real.astype(str).value_counts(normalize=True)
    q = syn.astype(str).value_counts(normalize=True)
    return float(0.5 * p.sub(q, fill_value=0).abs().sum())


def column_distances(synthetic: pd.DataFrame | Table, real: Table) -> dict[str, dict[str, Any]]:
    """Per schema column ``{"metric": "ks" | "tvd", "distance"}`` (module docstring)."""
    from scipy.stats import ks_2samp

    syn = synthetic_frame(synthetic, real)
    out: dict[str, dict[str, Any]] = {}
    for col in real.columns:
        r, s = real.frame[col].dropna(), syn[col].dropna()
        if real.is_categorical(col):
            out[col] = {"metric": "tvd", "distance": _tvd(r, s)}
        else:
            dist = float(ks_2samp(r.to_numpy(dtype=float), s.to_numpy(dtype=float)).statistic) if len(s) else 1.0
            out[col] = {"metric": "ks", "distance": dist}
    return out


def sdmetrics_quality(synthetic: pd.DataFrame | Table, real: Table) -> dict[str, Any]:
    """sdmetrics ``QualityReport``: ``{"score", "column_shapes", "column_pair_trends"}``.
    Raises SelfalignError when sdmetrics is not installed."""
    try:
        from sdmetrics.reports.single_table import QualityReport
    except ImportError as err:
        raise SelfalignError("fidelity with sdmetrics needs `pip install sdmetrics` (sdmetrics 0.32 "
                             "requires pandas<3); column_distances() works without it") from err
    syn = synthetic_frame(synthetic, real)
    metadata = {"columns": {c: {"sdtype": "categorical" if real.is_categorical(c) else "numerical"}
                            for c in real.columns}}
    report = QualityReport()
    report.generate(real.frame[real.columns], syn, metadata, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return {"score": float(report.get_score()), "column_shapes": float(props.get("Column Shapes", np.nan)),
            "column_pair_trends": float(props.get("Column Pair Trends", np.nan))}


def quality_report(synthetic: pd.DataFrame | Table, train: Table, test: Table, seed: int = 0,
                   models: tuple[str, ...] | None = None) -> dict[str, Any]:
    """TSTR and TRTR per model, DCR summary (against ``train``) and mean column distance."""
    models = models or (CLASSIFIERS if test.task == "classification" else REGRESSORS)
    dists = column_distances(synthetic, train)
    return {"metric": "mcc" if test.task == "classification" else "r2",
            "tstr": {m: tstr(synthetic, test, m, seed) for m in models},
            "trtr": {m: trtr(train, test, m, seed) for m in models},
            "dcr": dcr_summary(distance_to_closest_record(synthetic, train)),
            "column_distance_mean": float(np.mean([d["distance"] for d in dists.values()])),
            "column_distances": dists}
