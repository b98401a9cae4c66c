"""A trainer on 2 Ray Train workers vs the same trainer in 1 process, on this machine.

    python -m benchmarks.ray_scaling                       # DPO + RM, embedded SmolLM2-135M, 6 steps
    python -m benchmarks.ray_scaling --model tiny --steps 2   # harness check

Both sides see the same global batch (1 process × batch 2b vs 2 workers × batch b), the same data
(examples/rlhf/data/rm_train.jsonl, pairs) and seed, so they compute the same weights (the max
absolute difference is reported). Reported per side: wall time of the whole call (Ray: starting the
workers, loading the model in each, the process group, training, saving), the trainer's own
``train_seconds`` (its loop, first to last step) and tokens/s, peak memory is not compared (Ray's
workers are separate processes). On a 2-core machine two workers share the same two cores, so no
speed-up is expected: the row measures the overhead of the scale-out path, not a gain.
Results: ``benchmarks/results/ray-cpu-<date>.json``; the table is printed as Markdown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "rlhf" / "data" / "rm_train.jsonl"


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def run_pair(kind: str, model: str, steps: int, batch: int, work: Path) -> list[dict]:
    """``kind`` (dpo | rm) in 1 process (batch 2·batch) and on 2 Ray workers (batch each)."""
    from selfalign.train.registry import get_trainer, run_trainer

    config_cls, _ = get_trainer(kind)
    common = dict(model=model, train_file=str(DATA), max_steps=steps, max_length=192, seed=0, save_steps=0,
                  learning_rate=1e-6 if kind == "dpo" else 1e-5)
    rows = []
    for name, kw in (("1 process", dict(per_device_batch_size=2 * batch)),
                     ("2 Ray workers", dict(per_device_batch_size=batch,
                                            distributed={"backend": "ray", "num_workers": 2}))):
        out = work / f"{kind}-{name.replace(' ', '-')}"
        t0 = time.perf_counter()
        summary = run_trainer(kind, config_cls(**common, **kw, output_dir=str(out)))
        wall = time.perf_counter() - t0
        rows.append({"trainer": kind, "side": name, "wall_s": wall, "train_s": summary["train_seconds"],
                     "tokens_per_s": summary["train_tokens_per_s"], "loss": summary.get("loss"), "out": out})
    rows[1]["max_weight_diff"] = _max_diff(_weights(rows[0]["out"]), _weights(rows[1]["out"]))
    for r in rows:
        r.pop("out")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ray_scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="registry name or folder; 'tiny' = a random test model")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=2, help="per-worker batch (1 process: twice this)")
    p.add_argument("--trainers", nargs="+", default=["dpo", "rm"], choices=["dpo", "rm", "sft"])
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    import os

    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False)
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    model = args.model
    if model == "tiny":
        from selfalign.models.tiny import tiny_model_dir

        model = str(tiny_model_dir(work / "tiny"))
    rows = [r for kind in args.trainers for r in run_pair(kind, model, args.steps, args.batch, work)]
    shutil.rmtree(work, ignore_errors=True)
    res = {"date": date.today().isoformat(), "model": args.model, "steps": args.steps, "batch": args.batch,
           "cpus": os.cpu_count(), "ray": ray.__version__, "rows": rows}
    out = args.output or ROOT / "benchmarks" / "results" / f"ray-cpu-{date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print("| trainer | side | wall s | train s | tokens/s | loss | max weight diff |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['trainer']} | {r['side']} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {r['tokens_per_s']:.0f} | "
              f"{r['loss']:.4f} | {r.get('max_weight_diff', ''):} |")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
