"""Smoke test of the benchmark harness (``python -m benchmarks.run --smoke``).

Runs every workload for two tiny steps on a tiny random model, with TRL and with selfalign, each
framework in its own subprocess, and checks that the runner prints its table and that both
frameworks report the same step-1 loss on the same tokens. Timings are not asserted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

pytest.importorskip("trl", reason="the benchmark baseline needs the 'bench' extra (pip install -e '.[bench]')")


def test_smoke_runs_both_frameworks_and_losses_agree(tmp_path, capsys):
    from benchmarks.run import LOSS_TOL, main

    out = tmp_path / "results.json"
    md = tmp_path / "table.md"
    rc = main(["--smoke", "--workdir", str(tmp_path / "work"), "--json", str(out), "--markdown", str(md)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    errors = [f"{r['framework']}/{r['workload']}: {r['error']}" for r in report["results"] if "error" in r]
    assert rc == 0 and not errors, errors

    assert "tokens/s" in printed and "|Δloss@1|" in printed
    for w in ("dpo", "rm", "sft", "gen"):
        assert w in printed
    by = {(r["framework"], r["workload"]): r for r in report["results"]}
    assert set(by) == {(f, w) for f in ("baseline", "selfalign") for w in ("dpo", "rm", "sft", "gen")}
    for w in ("dpo", "rm", "sft"):
        ours, trl = by[("selfalign", w)], by[("baseline", w)]
        assert len(ours["losses"]) == len(trl["losses"]) == report["spec"]["steps"]
        assert abs(ours["losses"][0] - trl["losses"][0]) <= LOSS_TOL, (w, ours["losses"], trl["losses"])
        assert ours["tokens"] == trl["tokens"] > 0  # the same batches, the same real tokens
        assert ours["tokens_per_s"] > 0 and ours["peak_rss_mb"] > 0
    for f in ("baseline", "selfalign"):
        assert by[(f, "gen")]["tokens"] > 0
    comparison = {c["workload"]: c for c in report["comparison"]}
    assert comparison["dpo"]["speedup"] > 0 and "loss1_delta" in comparison["sft"]
    assert md.read_text().count("\n") == 2 + 8  # header, rule, 4 workloads x 2 frameworks
