"""SynFed scoring: label spaces, ds0/ds1 prompts, MCC gains by hand, a real tiny-model run, and the
peft adapter merge (the weighted average of the clients' updates, exactly, for ``cat``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from selfalign.errors import ConfigError
from selfalign.tabular import utility
from selfalign.tabular.tables import table_from_frame


def test_label_spaces(patients):
    space = utility.label_space(patients)
    assert space.names == ("no", "yes") and space.codes == ("A", "B") and space.edges is None
    assert [space.index(patients, v) for v in ["yes", "no"]] == [1, 0]
    reg = table_from_frame(pd.DataFrame({"x": np.arange(8.0), "y": [1.0, 2, 3, 4, 5, 6, 7, 8]}), "y", name="r")
    rs = utility.label_space(reg)
    assert rs.codes == ("A", "B", "C", "D") and rs.edges == (2.0, 4.0, 6.0)  # 4 quantile bins of 8 values
    assert [rs.index(reg, v) for v in (1.0, 2.0, 2.5, 8.0)] == [0, 0, 1, 3]


def test_prompts_ds0_and_ds1(patients):
    space = utility.label_space(patients)
    anchors = patients.subset([0, 1])
    syn = {"age": 40, "bmi": 22.0, "sex": "male", "outcome": "yes"}
    ds0, ds1 = utility.utility_contexts(patients, anchors, [syn], space)
    assert len(ds0) == 2 and len(ds1) == 1 and len(ds1[0]) == 2
    assert ds0[0].endswith("Row: age: 23; bmi: 21.5; sex: female\nAnswer: ")
    assert "A = no; B = yes" in ds0[0]
    demo = "Row: age: 40; bmi: 22.0; sex: male\nAnswer: B\n\n"
    assert ds1[0][1] == ds0[1].replace("Row: age: 35", demo + "Row: age: 35")


def test_gains_by_hand(patients, monkeypatch):
    anchors = patients.subset([0, 1, 2, 3])  # truth: no yes yes no → [0, 1, 1, 0]
    # ds0 predictions [0, 0, 1, 0]; ds1 row 0 perfect; row 2 all wrong
    preds = np.array([0, 0, 1, 0] + [0, 1, 1, 0] + [1, 0, 0, 1])
    monkeypatch.setattr(utility, "predict", lambda *a, **k: preds)
    rows = [{"age": 40, "bmi": 22.0, "sex": "male", "outcome": "yes"}, None,
            {"age": 50, "bmi": 30.0, "sex": "female", "outcome": "no"}]
    out = utility.utility_gains(None, None, patients, anchors, rows)
    # MCC([0,1,1,0], [0,0,1,0]) = (TP·TN − FP·FN)/√(…) = (1·2 − 0·1)/√(1·2·3·2) = 2/√12
    base = 2 / np.sqrt(12)
    assert out["ds0_mcc"] == pytest.approx(base)
    assert out["gains"][0] == pytest.approx(1.0 - base) and out["gains"][1] is None
    assert out["gains"][2] == pytest.approx(-1.0 - base)


def test_gains_on_a_tiny_model(tiny_model, tokenizer, patients):
    from selfalign.models.load import load_causal_lm

    lm = load_causal_lm(tiny_model)
    rows = [{"age": 40, "bmi": 22.0, "sex": "male", "outcome": "yes"}, None]
    out = utility.utility_gains(lm, tokenizer, patients, patients.subset([0, 1, 2, 3]), rows, batch_size=3)
    assert out["gains"][1] is None and -2.0 <= out["gains"][0] <= 2.0 and out["labels"] == ["no", "yes"]
    # grouped prefixes give the same predictions as scoring every context alone
    space = utility.label_space(patients)
    ds0, ds1 = utility.utility_contexts(patients, patients.subset([0, 1, 2, 3]), rows[:1], space)
    alone = utility.predict(lm, tokenizer, ds0 + ds1[0], space)
    grouped = utility.predict(lm, tokenizer, ds0 + ds1[0], space, groups=[[0, 1, 2, 3], [4, 5, 6, 7]])
    assert alone.tolist() == grouped.tolist()


# ------------------------------------------------------------------------------------ adapter merge
def _adapter(base_dir, out, seed):
    from peft import LoraConfig, get_peft_model

    from selfalign.models.load import load_causal_lm

    torch.manual_seed(seed)
    m = get_peft_model(load_causal_lm(base_dir), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.normal_()
    m.save_pretrained(out)
    return {n: p.detach().clone() for n, p in m.named_parameters() if "lora_" in n}


def _delta(lora, layer):
    a = next(v for k, v in lora.items() if f"layers.{layer}." in k and "lora_A" in k)
    b = next(v for k, v in lora.items() if f"layers.{layer}." in k and "lora_B" in k)
    return 2.0 * b @ a  # scaling = alpha / r = 4 / 2


def test_cat_merge_is_the_weighted_average_of_updates(tiny_model, tmp_path):
    from selfalign.models.load import load_causal_lm
    from selfalign.models.merge import merge_adapters

    l1, l2 = _adapter(tiny_model, tmp_path / "a1", 1), _adapter(tiny_model, tmp_path / "a2", 2)
    base = load_causal_lm(tiny_model)
    w0 = base.model.layers[0].self_attn.q_proj.weight.detach().clone()
    merged = merge_adapters(load_causal_lm(tiny_model), [tmp_path / "a1", tmp_path / "a2"], [0.3, 0.7], "cat")
    got = merged.model.layers[0].self_attn.q_proj.weight.detach()
    want = w0 + 0.3 * _delta(l1, 0) + 0.7 * _delta(l2, 0)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
    assert not hasattr(merged, "peft_config")  # a plain transformers model
    ties = merge_adapters(load_causal_lm(tiny_model), [tmp_path / "a1", tmp_path / "a2"], None, "ties", density=0.5)
    assert not torch.allclose(ties.model.layers[0].self_attn.q_proj.weight, got)
    with pytest.raises(ConfigError, match="density"):
        merge_adapters(load_causal_lm(tiny_model), [tmp_path / "a1"], None, "dare_ties")
    with pytest.raises(ConfigError, match="unknown adapter combination"):
        merge_adapters(load_causal_lm(tiny_model), [tmp_path / "a1"], None, "average")


def test_score_stage_groups_rows_and_adapters(tiny_model, patients, tmp_path):
    import json

    from selfalign.pipeline import Run
    from selfalign.stages import TabularScoreStageConfig, run_stage
    from selfalign.tabular.preferences import preference_pairs
    from selfalign.tabular.tables import read_saved_table, save_table

    save_table(patients, tmp_path / "node")
    save_table(patients.subset([0, 1, 2, 3]), tmp_path / "anchors")
    back = read_saved_table(tmp_path / "node")
    assert back.columns == patients.columns and back.categorical == patients.categorical and back.task == "classification"
    good = json.dumps({"age": 40, "bmi": 22.0, "sex": "male", "outcome": "yes"})
    cands = [{"id": "p0", "prompt": "Write a row.", "responses": [{"text": good}, {"text": "nothing"},
                                                                  {"text": good[:-1] + ', "x": 1}'}]},
             {"id": "p1", "prompt": "Another row.", "responses": [{"text": good.replace("40", "41")}]}]
    (tmp_path / "cand.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cands))
    _adapter(tiny_model, tmp_path / "adapters" / "c0", 1)
    _adapter(tiny_model, tmp_path / "adapters" / "c1", 2)
    run = Run(tmp_path / "run")
    kw = dict(model=tiny_model, candidates=tmp_path / "cand.jsonl", table=tmp_path / "node",
              anchors=tmp_path / "anchors")
    res = run_stage(run, "tabular_score", 1, 4, TabularScoreStageConfig(batch_size=4), **kw)
    groups = [json.loads(line) for line in res.outputs["data"].read_text().splitlines()]
    assert [[s["status"] for s in g["samples"]] for g in groups] == [["SUCCESS", "INVALID_ANSWER", "REDUNDANT_KEY"],
                                                                     ["SUCCESS"]]
    assert groups[0]["samples"][1]["gain"] is None and isinstance(groups[0]["samples"][0]["gain"], float)
    assert res.metrics["json_valid_rate"] == pytest.approx(0.75) and res.metrics["success_rate"] == pytest.approx(0.5)
    assert len(pd.read_csv(res.outputs["rows"])) == 2
    pairs, stats = preference_pairs(groups, pairs_per_table=10)
    assert len(pairs) == 3 and stats["short"] == ["patients"]  # group p0: 3 pairs, p1: none
    merged = run_stage(run, "tabular_score", 1, 5, TabularScoreStageConfig(batch_size=4, combination="ties",
                                                                           density=0.5),
                       adapter_c0=tmp_path / "adapters" / "c0", adapter_c1=tmp_path / "adapters" / "c1", **kw)
    assert merged.metrics["responses"] == 4


def test_prepare_stage_outputs(tmp_path):
    import json

    from selfalign.errors import SelfalignError
    from selfalign.pipeline import Run
    from selfalign.stages import TabularPrepareStageConfig, run_stage
    from selfalign.stages.tabular_prepare import client_dirs
    from selfalign.tabular.tables import read_saved_table

    cfg = TabularPrepareStageConfig(tables=[{"table": "iris"}, {"table": "wine"}, {"table": "penguins"}],
                                    target="iris", clients=2, alpha=0.5, num_clusters=3, max_prompts=5,
                                    max_sft_rows=10, seed=1)
    res = run_stage(Run(tmp_path / "run"), "tabular_prepare", 0, 1, cfg)
    sft = [json.loads(line) for line in res.outputs["sft"].read_text().splitlines()]
    assert len(sft) == 20 and {r["meta"]["table"] for r in sft} == {"wine", "penguins"}  # iris left out
    assert all("completion" in r and "response" not in r for r in sft)
    test = read_saved_table(res.outputs["test"])
    dirs = client_dirs(res.outputs["nodes"])
    clients = [read_saved_table(d / "table") for d in dirs]
    assert len(dirs) == 2 and len(test) == 30 and sum(len(c) for c in clients) == 120
    for d, c in zip(dirs, clients):
        anchors = read_saved_table(d / "anchors")
        assert len(anchors) == 3 and anchors.columns == c.columns
        prompts = [json.loads(line) for line in (d / "prompts.jsonl").read_text().splitlines()]
        assert len(prompts) == 5 and all(len(p["meta"]["neighbours"]) == 5 for p in prompts)
        assert all(max(p["meta"]["neighbours"]) < len(c) for p in prompts)  # a client's own rows only
    with pytest.raises(SelfalignError, match="target table 'irs'"):
        run_stage(Run(tmp_path / "run2"), "tabular_prepare", 0, 1, cfg.model_copy(update={"target": "irs"}))
