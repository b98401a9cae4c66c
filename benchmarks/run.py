"""Side-by-side benchmark: selfalign vs TRL (DPO, reward model, SFT) and vs per-prompt generation.

    python -m benchmarks.run --quick          # 3 training steps, 8 generation prompts x 4 x 64 tokens
    python -m benchmarks.run --full           # 8 steps = 64 pairs at batch 8; 64 prompts x 4 x 128 tokens
    python -m benchmarks.run --smoke          # tiny random model, 2 steps: checks the harness (CI)
    python -m benchmarks.run --full --workloads ppo   # PPO vs TRL 0.11's PPOTrainer (own venv: benchmarks.ppo)
    python -m benchmarks.run --full --workloads genbatch   # generation vs transformers' batched generate
    python -m benchmarks.run --real --device cuda --model DIR  # batch 16 × ≈512 tokens, with FLOPs utilisation

Each (framework, workload) runs in its own subprocess (``python -m benchmarks.workloads``), one
after the other on this machine, so peak memory is per run. The runner prepares the shared inputs
(synthetic data, benchmark model folders: see :mod:`benchmarks.data`), collects the JSON results,
prints a table with the selfalign/baseline ratios and the step-1 loss difference, and optionally
writes the results as JSON and as a Markdown table. ``--smoke`` runs all workloads of a framework
in one subprocess (faster; its peak memory is then cumulative and not meaningful).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import data as bdata
from benchmarks import ppo as bppo
from benchmarks.workloads import ALL_WORKLOADS, WORKLOADS

console = Console(width=None if sys.stdout.isatty() else 160)
LOSS_TOL = 1e-3
TARGETS = {"dpo": 1.3, "rm": 1.3, "gen": 3.0, "genbatch": 1.5}  # speed-up targets (selfalign / baseline tokens/s)
# dense bf16 peak FLOP/s of known accelerators (vendor data sheets; SXM parts), for model FLOPs utilisation
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12}
# model FLOPs per real token: forward 2N, backward 4N; DPO adds the reference forward (2N)
FLOPS_PER_TOKEN = {"sft": 6, "rm": 6, "dpo": 8}

MODES: dict[str, dict[str, Any]] = {
    "smoke": dict(model="tiny", steps=2, batch_size=2, records=4, scale=0.2,
                  gen=dict(num_prompts=2, num_samples=2, max_new_tokens=4, batch_size=4)),
    "quick": dict(model="smollm2-135m", steps=3, batch_size=8, records=24,
                  gen=dict(num_prompts=8, num_samples=4, max_new_tokens=64, batch_size=64)),
    "full": dict(model="smollm2-135m", steps=8, batch_size=8, records=64,
                 gen=dict(num_prompts=64, num_samples=4, max_new_tokens=128, batch_size=128)),
    # a realistic training shape for a GPU: batch 16 of ≈ 512-token sequences
    "real": dict(model="smollm2-135m", steps=6, batch_size=16, records=96, scale=2.6,
                 gen=dict(num_prompts=64, num_samples=4, max_new_tokens=128, batch_size=256)),
}
GPU_GEN = dict(batch_size=256, baseline_prompts=8, hf_rows=[64, 256])  # on CUDA: one batch of 256 rows


# ------------------------------------------------------------------------------------------- inputs
def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, library versions and the accelerator, for the report."""
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        info["cpu"] = platform.processor()
    try:
        import psutil

        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    for mod in ("transformers", "trl", "accelerate"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def prepare_inputs(mode: str, model: str | None, workdir: Path, device: str) -> dict[str, Any]:
    """Data files, model folders and settings for ``mode``; returns the spec the workers read."""
    from selfalign.models.load import resolve_model

    m = MODES[mode]
    src_spec = model or m["model"]
    if src_spec == "tiny":
        from selfalign.models.tiny import tiny_model_dir

        tiny = workdir / "models" / "tiny-src"
        src = tiny if (tiny / "config.json").is_file() else tiny_model_dir(tiny)
    else:
        src = resolve_model(src_spec)
        if not isinstance(src, Path):
            raise SystemExit(f"model {src_spec!r} is not a local folder; prepare it first")
    with console.status("preparing model folders (once per work directory)"):
        lm = bdata.prepare_lm(src, workdir / "models" / "lm")
        rm = bdata.prepare_rm(lm, workdir / "models" / "rm")
    n, scale = m["records"], m.get("scale", 1.0)
    g = m["gen"]
    gpu = device.startswith("cuda")
    return {
        "mode": mode, "model": src_spec, "workdir": str(workdir), "device": device,
        "dtype": "bfloat16" if gpu else "float32", "lm": str(lm), "rm": str(rm),
        "pairs": str(bdata.write_jsonl(workdir / "data" / "pairs.jsonl", bdata.preference_records(n, scale=scale))),
        "sft": str(bdata.write_jsonl(workdir / "data" / "sft.jsonl", bdata.sft_records(n, scale=scale))),
        "prompts": str(bdata.write_jsonl(workdir / "data" / "prompts.jsonl", bdata.prompt_records(g["num_prompts"], scale=scale))),
        "steps": m["steps"], "batch_size": m["batch_size"], "max_length": 1024, "seed": 42, "beta": 0.1,
        "lr": {"dpo": 1e-6, "rm": 1e-5, "sft": 1e-5},
        "gen": {**g, "temperature": 0.7, "top_p": 0.9, **(GPU_GEN if gpu else {})},
    }


# ---------------------------------------------------------------------------------------------- runs
def run_worker(framework: str, workloads: list[str], spec_path: Path, workdir: Path,
               peer_python: str | None = None) -> list[dict]:
    """Run one subprocess; return its results (a failed process yields error rows). The ppo baseline
    runs ``benchmarks/peers/trl_ppo.py`` with ``peer_python`` (TRL 0.11's own venv)."""
    tag = f"{framework}-{'-'.join(workloads)}"
    out = workdir / "results" / f"{tag}.json"
    log = workdir / "logs" / f"{tag}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    env = {**os.environ, "SELFALIGN_NO_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false",
           "TRANSFORMERS_VERBOSITY": "error", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                          os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    cmd = [sys.executable, "-m", "benchmarks.workloads", framework, ",".join(workloads),
           "--spec", str(spec_path), "--json", str(out)]
    if framework == "baseline" and workloads == ["ppo"]:
        python = bppo.peer_python(peer_python)
        if not Path(python).is_file():
            return [{"framework": framework, "workload": "ppo", "error": f"no TRL PPO venv at {python} "
                     "(install: see benchmarks/peers/trl_ppo.py; or pass --trl-ppo-python)"}]
        cmd = bppo.peer_command(python, spec_path, out)
    t = time.perf_counter()
    with console.status(f"running {framework}: {', '.join(workloads)}"), log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    console.print(f"[dim]{framework} {','.join(workloads)}: {time.perf_counter() - t:.0f} s (log {log})[/]")
    if out.is_file():
        return json.loads(out.read_text())
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return [{"framework": framework, "workload": w, "error": f"worker exited {proc.returncode}: {tail[0]}"}
            for w in workloads]


def add_mfu(results: list[dict], spec: dict, gpu_name: str | None) -> None:
    """Model FLOPs utilisation of each GPU training result: FLOPS_PER_TOKEN · N · tokens/s / peak, with
    N the parameter count of the workload's model (attention score FLOPs not counted)."""
    peak = next((v for k, v in PEAK_BF16.items() if gpu_name and k in gpu_name), None)
    if peak is None:
        return
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    sizes = {}
    for key, cls in (("lm", AutoModelForCausalLM), ("rm", AutoModelForSequenceClassification)):
        with torch.device("meta"):
            m = cls.from_config(AutoConfig.from_pretrained(spec[key]))
        sizes[key] = sum(p.numel() for p in m.parameters())
    for r in results:
        w = r.get("workload")
        if w in FLOPS_PER_TOKEN and r.get("tokens_per_s"):
            n = sizes["rm" if w == "rm" else "lm"]
            r["n_params"], r["mfu"] = n, FLOPS_PER_TOKEN[w] * n * r["tokens_per_s"] / peak


def compare(results: list[dict]) -> list[dict]:
    """One row per workload with both sides and the selfalign/baseline ratios."""
    rows = []
    for w in ALL_WORKLOADS:
        ours = next((r for r in results if r["workload"] == w and r["framework"] == "selfalign"), None)
        base = next((r for r in results if r["workload"] == w and r["framework"] == "baseline"), None)
        if ours is None and base is None:
            continue
        row: dict[str, Any] = {"workload": w, "selfalign": ours, "baseline": base}
        if ours and base and "error" not in ours and "error" not in base:
            if base.get("tokens_per_s"):
                row["speedup"] = ours["tokens_per_s"] / base["tokens_per_s"]
            if base.get("peak_rss_mb"):
                row["mem_ratio"] = ours["peak_rss_mb"] / base["peak_rss_mb"]
            if ours.get("cpu_seconds") and base.get("cpu_seconds") and ours.get("tokens") and base.get("tokens"):
                row["cpu_ratio"] = (base["cpu_seconds"] / base["tokens"]) / (ours["cpu_seconds"] / ours["tokens"])
            if ours.get("peak_gpu_mb") and base.get("peak_gpu_mb"):
                row["gpu_mem_ratio"] = ours["peak_gpu_mb"] / base["peak_gpu_mb"]
            lo, lb = ours.get("losses") or [], base.get("losses") or []
            if lo and lb:
                row["loss1_delta"] = abs(lo[0] - lb[0])
            if len(lo) > 1 and len(lb) > 1:
                row["loss2_delta"] = abs(lo[1] - lb[1])
            if ours.get("tokens") and base.get("tokens") and w not in ("gen", "genbatch", "ppo"):
                row["same_tokens"] = ours["tokens"] == base["tokens"]
            if w == "ppo":
                row.update(bppo.compare_extra(ours, base))
        rows.append(row)
    return rows


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def table_rows(rows: list[dict]) -> list[list[str]]:
    """Cells of the results table (shared by the console table and the Markdown output)."""
    out = []
    for row in rows:
        for side in ("baseline", "selfalign"):
            r = row.get(side)
            if r is None:
                continue
            label = r.get("framework_label") or side
            if "error" in r:
                out.append([row["workload"], label, f"failed: {r['error']}"] + [""] * 8)
                continue
            losses = r.get("losses") or []
            mem = r.get("peak_gpu_mb") if r.get("peak_gpu_mb") else r.get("peak_rss_mb")
            cells = [row["workload"], label, _f(r.get("tokens_per_s"), ".1f"), _f(r.get("s_per_step"), ".2f"),
                     _f(mem, ".0f"), _f(losses[0] if losses else None, ".4f"),
                     _f(losses[1] if len(losses) > 1 else None, ".4f")]
            if side == "selfalign":
                mem_ratio = row.get("gpu_mem_ratio", row.get("mem_ratio"))
                cells += [_f(row.get("speedup"), ".2f") + ("×" if "speedup" in row else ""),
                          _f(mem_ratio, ".2f") + ("×" if mem_ratio is not None else ""),
                          _f(row.get("loss1_delta"), ".1e"), _f(row.get("loss2_delta"), ".1e")]
            else:
                cells += ["", "", "", ""]
            out.append(cells)
    return out


HEADERS = ["workload", "framework", "tokens/s", "s/step", "peak MB", "loss@1", "loss@2", "speed ratio",
           "mem ratio", "|Δloss@1|", "|Δloss@2|"]


def print_table(rows: list[dict], title: str, targets: bool = True) -> None:
    t = Table(title=title)
    for h in HEADERS:
        t.add_column(h, justify="left" if h in ("workload", "framework") else "right")
    for cells in table_rows(rows):
        t.add_row(*cells)
    console.print(t)
    for row in rows:
        w = row["workload"]
        notes = []
        if "loss1_delta" in row:
            ok = row["loss1_delta"] <= LOSS_TOL
            notes.append(f"step-1 loss {'agrees' if ok else 'DIFFERS'} (|Δ| {row['loss1_delta']:.1e}, tol {LOSS_TOL})")
        if "cpu_ratio" in row:
            notes.append(f"process CPU-time ratio {row['cpu_ratio']:.2f}× (less sensitive to other load)")
        if row.get("same_tokens") is False:
            notes.append("token counts differ between the frameworks")
        if "same_prompts" in row:
            notes.append(("the same prompts in every step" if row["same_prompts"] else "PROMPTS DIFFER between "
                          "the frameworks") + "; rollout tokens/s ratio " + _f(row.get("rollout_speedup"), ".2f") +
                         "×, training tokens/s ratio " + _f(row.get("train_speedup"), ".2f") + "×")
        if targets and w in TARGETS and "speedup" in row:
            ok = row["speedup"] >= TARGETS[w]
            notes.append(f"speed target {TARGETS[w]}× {'met' if ok else 'missed'}")
        mfu = [f"{r['framework_label']} {r['mfu']:.1%}" for r in (row.get("baseline"), row.get("selfalign"))
               if r and r.get("mfu")]
        if mfu:
            notes.append("model FLOPs utilisation: " + ", ".join(mfu))
        if row.get("baseline") and row["baseline"].get("by_rows"):
            notes.append("HF batched generate by rows per call: " + ", ".join(
                f"{k}: {v['tokens_per_s']:.0f} tok/s" for k, v in row["baseline"]["by_rows"].items()))
        if targets and w in ("dpo", "rm") and "mem_ratio" in row:
            notes.append(f"memory target ≤1.0× {'met' if row['mem_ratio'] <= 1.0 else 'missed'}")
        if notes:
            console.print(f"  {w}: " + "; ".join(notes))


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_const", const="quick", dest="mode")
    g.add_argument("--full", action="store_const", const="full", dest="mode")
    g.add_argument("--smoke", action="store_const", const="smoke", dest="mode")
    g.add_argument("--real", action="store_const", const="real", dest="mode",
                   help="batch 16 of ≈512-token sequences (a GPU training shape)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"subset, e.g. dpo,gen; also {','.join(ALL_WORKLOADS[len(WORKLOADS):])} (only when named)")
    ap.add_argument("--frameworks", default="baseline,selfalign", help="which sides to run, in this order")
    ap.add_argument("--model", default=None, help="model spec (default: smollm2-135m; tiny for --smoke)")
    ap.add_argument("--steps", type=int, default=None, help="override the number of training steps")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every worker")
    ap.add_argument("--gen-baseline-prompts", type=int, default=None, metavar="K",
                    help="the per-prompt generate baseline on the first K prompts only (a rate: fewer prompts "
                         "measure the same thing in less time)")
    ap.add_argument("--workdir", default=None, help="default: <selfalign cache>/bench/<mode>")
    ap.add_argument("--json", default=None, help="write all results (and machine details) here")
    ap.add_argument("--markdown", default=None, help="write the table as Markdown here")
    ap.add_argument("--trl-ppo-python", default=None, help="Python of TRL 0.11's venv for the ppo baseline "
                    f"(default: $TRL_PPO_PYTHON or {bppo.DEFAULT_PEER_PYTHON})")
    ap.add_argument("--ppo-set", action="append", default=[], metavar="KEY=VALUE",
                    help="ppo setting for both sides, e.g. max_new_tokens=32 (see benchmarks.ppo.SETTINGS)")
    ap.add_argument("--set", action="append", default=[], metavar="WORKLOAD.KEY=VALUE",
                    help="selfalign config override, e.g. dpo.precompute_ref_logps=true (repeatable)")
    a = ap.parse_args(argv)
    mode = a.mode or "quick"
    workloads = [w for w in a.workloads.split(",") if w]
    for w in workloads:
        if w not in ALL_WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {', '.join(ALL_WORKLOADS)}")
    frameworks = [f for f in a.frameworks.split(",") if f]
    import torch

    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    if a.workdir:
        workdir = Path(a.workdir).resolve()
    else:
        from selfalign.models.registry import selfalign_home

        workdir = selfalign_home() / "bench" / mode
    workdir.mkdir(parents=True, exist_ok=True)
    spec = prepare_inputs(mode, a.model, workdir, device)
    if a.steps:
        spec["steps"] = a.steps
    if a.threads:
        spec["threads"] = a.threads
    if a.gen_baseline_prompts:
        spec["gen"]["baseline_prompts"] = a.gen_baseline_prompts
    if "ppo" in workloads:
        ppo_set = {k: json.loads(v) for k, _, v in (item.partition("=") for item in a.ppo_set)}
        spec["ppo"] = bppo.prepare(spec, mode, workdir, a.steps, ppo_set)
    overrides: dict[str, dict[str, Any]] = {}
    for item in a.set:
        key, _, raw = item.partition("=")
        w, _, k = key.partition(".")
        if not k or not _:
            ap.error(f"--set expects WORKLOAD.KEY=VALUE, got {item!r}")
        try:
            val = json.loads(raw)
        except json.JSONDecodeError:
            val = raw
        overrides.setdefault(w, {})[k] = val
    spec["selfalign_overrides"] = overrides
    spec_path = workdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))

    results: list[dict] = []
    if mode == "smoke":
        for fw in frameworks:
            if [w for w in workloads if w != "ppo"]:
                results += run_worker(fw, [w for w in workloads if w != "ppo"], spec_path, workdir)
            if "ppo" in workloads:  # the ppo baseline runs in another venv
                results += run_worker(fw, ["ppo"], spec_path, workdir, a.trl_ppo_python)
    else:
        for w in workloads:
            for fw in frameworks:
                results += run_worker(fw, [w], spec_path, workdir, a.trl_ppo_python)
    info = machine_info()
    if device.startswith("cuda"):
        add_mfu(results, spec, info.get("gpu"))
    rows = compare(results)
    sizes = f"{spec['steps']} steps × batch {spec['batch_size']}" if [w for w in workloads if w != "ppo"] else ""
    if "ppo" in spec:
        pp = spec["ppo"]
        sizes += (", " if sizes else "") + (f"ppo {pp['steps']} steps × {pp['rollout_batch_size']} prompts × "
                                            f"{pp['max_new_tokens']} tokens")
    title = (f"selfalign vs baseline — {mode}, {sizes}, "
             f"{device} ({info.get('cpu') or info.get('gpu') or ''}, {info.get('cpu_count')} cores)")
    print_table(rows, title, targets=mode != "smoke")
    bppo.print_breakdown(results, console)
    if a.json:
        Path(a.json).write_text(json.dumps({"mode": mode, "command": "python -m benchmarks.run " + " ".join(
            argv if argv is not None else sys.argv[1:]), "machine": info, "spec": spec, "results": results,
            "comparison": [{k: v for k, v in r.items() if k not in ("selfalign", "baseline")} for r in rows]},
            indent=2))
    if a.markdown:
        Path(a.markdown).write_text(markdown_table(rows) + bppo.markdown_breakdown(results))
    failed = [r for r in results if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
