"""The SynFed peer benchmark's plumbing (benchmarks/tabular_peers.py), without SDV or GReaT: the split
it scores on is the recipe's split, our evaluator on the real training rows gives TSTR == TRTR,
categorical values come back to the schema's categories, and a SynFed run folder is read per round."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("sklearn")
tp = pytest.importorskip("benchmarks.tabular_peers")


def _prepare(tmp_path, target: str):
    """The recipe's own tabular_prepare stage, with examples/synfed.yaml's settings."""
    from selfalign.pipeline import Run
    from selfalign.recipes.common import load_recipe_config
    from selfalign.recipes.synfed import SynfedConfig, check_config
    from selfalign.stages import run_stage

    cfg = load_recipe_config(SynfedConfig, "examples/synfed.yaml", [f"target={target}"])
    st = check_config(cfg, "examples/synfed.yaml")
    assert (st.prepare.test_size, st.prepare.seed) == (tp.RECIPE_TEST_SIZE, tp.RECIPE_SEED)
    return run_stage(Run(tmp_path / "run"), "tabular_prepare", 0, 1, st.prepare)


@pytest.mark.parametrize("name", ["iris", "penguins"])
def test_split_is_the_recipes_split(tmp_path, name):
    from selfalign.stages.tabular_prepare import client_dirs
    from selfalign.tabular.tables import read_saved_table

    res = _prepare(tmp_path, name)
    _, train, test = tp.real_split(name)
    run_test = read_saved_table(res.outputs["test"])
    assert run_test.frame[test.columns].astype(str).equals(test.frame[test.columns].astype(str).reset_index(drop=True))
    clients = pd.concat([read_saved_table(d / "table").frame for d in client_dirs(res.outputs["nodes"])])

    def rows(frame):
        return sorted(map(tuple, frame[train.columns].astype(str).to_numpy().tolist()))

    assert rows(clients) == rows(train.frame)  # the clients hold exactly the benchmark's training rows
    info = tp.synfed_rounds(tmp_path / "run", test)
    assert info["split_matches_run"] and info["rounds"] == []


def test_real_rows_score_like_the_baseline():
    _, train, test = tp.real_split("iris")
    q = tp.evaluate(train.frame, train, test)
    assert q["synthetic_rows"] == len(train) and q["metric"] == "mcc"
    assert q["tstr"] == q["trtr"]
    assert q["dcr"]["copies"] == len(train) and q["dcr"]["median"] < 1e-6
    assert "score" in q["sdmetrics"] or "skipped" in q["sdmetrics"]


def test_peer_rows_come_back_to_the_schema():
    _, train, _ = tp.real_split("penguins")
    frame = tp.peer_input(train)
    assert frame["year"].map(type).eq(str).all() and frame["species"].map(type).eq(str).all()
    frame.loc[0, "island"] = "Atlantis"
    aligned, unknown = tp.align_to_schema(frame, train)
    assert unknown == 1 and aligned.loc[0, "island"] == "Atlantis"
    assert aligned["year"].iloc[1:].tolist() == train.frame["year"].iloc[1:].tolist()  # "2007" → 2007
    assert set(tp.categorical_columns(train)) == {"species", "island", "sex", "year"}


def test_synfed_rounds_read_a_run(tmp_path):
    res = _prepare(tmp_path, "iris")
    _, train, test = tp.real_split("iris")
    run = tmp_path / "run"
    for t, counts in enumerate([(3, 1), (2, 0)]):
        for k, n_rows in enumerate(counts):
            d = run / f"r{t}s2-rows-c{k}"
            d.mkdir()
            train.frame.head(n_rows).to_csv(d / "synthetic.csv", index=False)
            metrics = {"responses": 4, "json_valid_rate": 0.75, "synthetic_rows": n_rows}
            (d / "manifest.json").write_text(json.dumps({"metrics": metrics, "started": "2026-01-01T00:00:00",
                                                         "finished": "2026-01-01T00:10:00"}))
    info = tp.synfed_rounds(run, test)
    assert [(r["responses"], r["json_valid"], r["complete_rows"], len(r["frame"])) for r in info["rounds"]] == \
        [(8, 6, 4, 4), (8, 6, 2, 2)]
    assert info["split_matches_run"] and info["wall_s"] >= 600
    entries, meta = tp._synfed_entries(run, train, test, 0)
    assert [e["method"] for e in entries] == ["synfed-r0", "synfed-r1"] and meta["split_matches_run"]
    flat = tp.flat_rows([{"table": "iris", "methods": entries}])
    assert list(flat["complete_rows"]) == [4, 2] and "tstr_random_forest" in flat.columns
    assert res.outputs["test"].exists()
    md = tp.markdown({"tables": [{"table": "iris", "task": "classification", "train_rows": len(train),
                                  "test_rows": len(test), "methods": entries + [{"method": "ctgan", "error": "boom"}]}]})
    assert "| synfed-r0 (run) | 4 |" in md and "failed: boom" in md
