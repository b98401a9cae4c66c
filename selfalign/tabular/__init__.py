"""SynFed data layer: tables, neighbour prompts, federated splits, anchors, extraction, pairs, metrics.

Everything here is pure data work (pandas / scikit-learn); no language model is loaded. The recipe
that uses it (generation, scoring with merged adapters, DPO rounds) is planned; see
``docs/recipes/synfed.md``.

Modules: :mod:`.tables` (``Table``, schema inference, loading, train/test split),
:mod:`.neighbours` (feature matrix, cosine neighbours, SFT prompt records),
:mod:`.split` (Dirichlet / full client splits, downstream task records), :mod:`.anchors`
(KMeans score anchors), :mod:`.extract` (JSON row extraction and status),
:mod:`.preferences` (status/gain preference pairs), :mod:`.metrics` (TSTR, DCR, fidelity).
"""

from __future__ import annotations

from selfalign.tabular.tables import Table, builtin_table_names, load_table, table_from_frame

__all__ = ["Table", "builtin_table_names", "load_table", "table_from_frame"]
