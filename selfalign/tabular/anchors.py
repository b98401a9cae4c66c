"""Score anchors of SynFed (step r0s3): a few real rows that represent a node's training data.

KMeans (scikit-learn, ``n_init`` fixed, ``random_state=seed``) with ``num_clusters`` clusters over
the node's real training rows in the feature space of :func:`~.neighbours.feature_matrix`
(standardised numeric + one-hot categorical, target excluded). The anchor of cluster ``j`` is the
real row nearest (Euclidean) to centroid ``j``; centroids are served in order ``0..k-1`` and each
takes the nearest row not already taken, so the ``k`` anchors are distinct rows.
``num_clusters`` sets the scoring cost (one few-shot prompt per anchor, twice per sample).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans

from selfalign.errors import DataError
from selfalign.tabular.neighbours import feature_matrix
from selfalign.tabular.tables import Table


def nearest_distinct(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """For centroid ``j = 0..k-1`` in turn, the index of the nearest point not yet taken.
    ``points`` (n, d), ``centroids`` (k, d) with k ≤ n → indices (k,)."""
    dist = np.linalg.norm(points[None, :, :] - centroids[:, None, :], axis=2)  # (k, n)
    taken: set[int] = set()
    out = np.empty(len(centroids), dtype=int)
    for j in range(len(centroids)):
        for i in np.argsort(dist[j], kind="stable"):
            if int(i) not in taken:
                out[j] = int(i)
                taken.add(int(i))
                break
    return out


def select_anchors(table: Table, num_clusters: int = 10, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """Row positions ``(num_clusters,)`` of the anchors, in centroid order (see module docstring).
    Raises DataError when the table has fewer rows than clusters."""
    if num_clusters < 1:
        raise DataError(f"num_clusters must be >= 1, not {num_clusters}", file=table.source,
                        key="num_clusters")
    if len(table) < num_clusters:
        raise DataError(f"{len(table)} rows are fewer than num_clusters={num_clusters}",
                        file=table.source, key=table.target)
    features = feature_matrix(table)
    km = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=seed).fit(features)
    return nearest_distinct(features, km.cluster_centers_)


def anchor_table(table: Table, num_clusters: int = 10, seed: int = 0, n_init: int = 10) -> Table:
    """The anchors as a table (name ``"{table}/anchors"``)."""
    return table.subset(select_anchors(table, num_clusters, seed, n_init), f"{table.name}/anchors")
