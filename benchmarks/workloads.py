"""One framework's side of one or more workloads, measured in this process.

Run by :mod:`benchmarks.run`, one subprocess per (framework, workload) so that peak memory is each
run's own::

    python -m benchmarks.workloads selfalign dpo --spec spec.json --json out.json
    python -m benchmarks.workloads baseline dpo,rm,sft,gen --spec spec.json --json out.json

``framework`` is ``selfalign`` or ``baseline`` (TRL's DPOTrainer / RewardTrainer / SFTTrainer for
the trainers; one ``model.generate(..., num_return_sequences=k)`` call per prompt for ``gen``).
``spec.json`` (written by the runner) holds the model folders, data files and settings; both
frameworks get the same settings: batch, learning rate, β, max_length, linear schedule without
warm-up, no weight decay, gradient clipping at 1.0, no gradient checkpointing, dropout off, fp32
weights on CPU and bf16 on GPU, and the same batches in the same order (TRL's dataset is written
in selfalign's batch order and read sequentially). ``ppo`` (only when named) is selfalign's side of
:mod:`benchmarks.ppo`; its TRL side runs in a venv of its own (``benchmarks/peers/trl_ppo.py``).

What is measured (each step timed between its start and the end of its optimizer step; on GPU
after a synchronisation):

* ``step_seconds`` per optimizer step, ``pre_seconds`` = training work done before the first step
  (selfalign's reference log-prob precompute when enabled);
* ``tokens`` = real (non-pad) tokens of all steps (prompt + completion; both sequences of a pair);
  ``tokens_per_s`` = tokens / (sum of step times + pre_seconds);
* ``s_per_step`` = mean step time without step 1 (warm-up) when there are 3 steps or more;
* ``losses`` = the training loss of every step (step 1 is before any update, so both frameworks
  must agree there); ``peak_rss_mb`` = peak resident memory of this process (``ru_maxrss``) up to
  the end of the last training step (model loading included, saving the trained model excluded:
  TRL is run without saving); ``peak_gpu_mb`` = ``torch.cuda.max_memory_allocated`` likewise;
* ``cpu_seconds`` = process CPU time of the steps (less sensitive than wall time to other load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

WORKLOADS = ("dpo", "rm", "sft", "gen")  # the default selection
OPTIONAL_WORKLOADS = ("ppo", "genbatch")  # run only when named: see benchmarks.ppo / run_gen_hf_batched
ALL_WORKLOADS = WORKLOADS + OPTIONAL_WORKLOADS
FRAMEWORKS = ("selfalign", "baseline")


# ------------------------------------------------------------------------------------------ helpers
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _peak_gpu_mb(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.max_memory_allocated() / (1024 * 1024)


def summarise(step_seconds: list[float], pre_seconds: float, tokens: int) -> dict[str, float]:
    """Throughput figures from per-step times (see the module docstring)."""
    total = sum(step_seconds) + pre_seconds
    steady = step_seconds[1:] if len(step_seconds) >= 3 else step_seconds
    return {"train_seconds": total, "tokens_per_s": tokens / total if total > 0 else 0.0,
            "s_per_step": sum(steady) / len(steady) if steady else 0.0}


def _dtype(spec: dict) -> str:
    return spec["dtype"]


def batch_order(kind: str, spec: dict, tokenizer) -> list[int]:
    """Record indices in the order selfalign's trainer visits them in epoch 0 (its batch plan)."""
    from selfalign.train.data import batch_plan, load_pairs, load_sft

    path = spec["pairs"] if kind in ("dpo", "rm") else spec["sft"]
    kw = dict(max_length=spec["max_length"], max_prompt_length=None, truncation="left")
    examples, _ = load_pairs(path, tokenizer, **kw) if kind in ("dpo", "rm") else load_sft(path, tokenizer, **kw)
    n_records = sum(1 for line in open(path, encoding="utf-8") if line.strip())
    if len(examples) != n_records:
        raise RuntimeError(f"selfalign kept {len(examples)} of {n_records} records; the orders would differ")
    plan = batch_plan([e.length for e in examples], spec["batch_size"], spec["seed"], 0, group_by_length=True)
    return [i for b in plan for i in b]


# ------------------------------------------------------------------------------------------- TRL side
def _trl_dataset(kind: str, spec: dict, tokenizer):
    """The workload's records in selfalign's batch order, in TRL's conversational format."""
    from datasets import Dataset

    from benchmarks.data import read_jsonl

    path = spec["pairs"] if kind in ("dpo", "rm") else spec["sft"]
    records = read_jsonl(path)
    order = batch_order(kind, spec, tokenizer)
    rows = []
    for i in order:
        r = records[i]
        user = [{"role": "user", "content": r["prompt"]}]
        if kind == "sft":
            rows.append({"prompt": user, "completion": [{"role": "assistant", "content": r["completion"]}]})
        else:
            rows.append({"prompt": user, "chosen": [{"role": "assistant", "content": r["chosen"]}],
                         "rejected": [{"role": "assistant", "content": r["rejected"]}]})
    return Dataset.from_list(rows)


def _trl_common(spec: dict, out_dir: str) -> dict[str, Any]:
    gpu = spec["device"].startswith("cuda")
    return dict(
        output_dir=out_dir, per_device_train_batch_size=spec["batch_size"], gradient_accumulation_steps=1,
        learning_rate=spec["lr"][spec["_kind"]], max_steps=spec["steps"], logging_steps=1, report_to=[],
        save_strategy="no", eval_strategy="no", lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, seed=spec["seed"], train_sampling_strategy="sequential", gradient_checkpointing=False,
        bf16=gpu, use_cpu=not gpu, dataloader_num_workers=0, disable_tqdm=True, max_length=spec["max_length"],
        model_init_kwargs={"dtype": _dtype(spec)},
    )


def _trl_clock(device: str):
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Times every optimizer step and keeps every log line."""

        def __init__(self):
            self.t0 = self.c0 = 0.0
            self.peak: tuple[float, float | None] | None = None  # (RSS, GPU) MiB after the last step
            self.steps: list[float] = []
            self.cpu: list[float] = []
            self.logs: list[dict] = []

        def on_step_begin(self, args, state, control, **kw):
            _sync(device)
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            _sync(device)
            self.steps.append(time.perf_counter() - self.t0)
            self.cpu.append(time.process_time() - self.c0)
            self.peak = (peak_rss_mb(), _peak_gpu_mb(device))

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.logs.append(dict(logs))

    return Clock()


def run_trl(kind: str, spec: dict, out_dir: str) -> dict[str, Any]:
    """Train with TRL's trainer for ``kind`` (dpo | rm | sft) and measure it."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    import trl

    spec = {**spec, "_kind": kind}
    model_path = spec["rm"] if kind == "rm" else spec["lm"]
    tok = AutoTokenizer.from_pretrained(model_path)
    data = _trl_dataset(kind, spec, tok)
    clock = _trl_clock(spec["device"])
    common = _trl_common(spec, out_dir)
    if kind == "dpo":
        args = trl.DPOConfig(beta=spec["beta"], loss_type=["sigmoid"], **common)
        trainer = trl.DPOTrainer(model=model_path, args=args, train_dataset=data, processing_class=tok,
                                 callbacks=[clock])
    elif kind == "rm":
        args = trl.RewardConfig(**common)
        trainer = trl.RewardTrainer(model=model_path, args=args, train_dataset=data, processing_class=tok,
                                    callbacks=[clock])
    elif kind == "sft":
        args = trl.SFTConfig(completion_only_loss=True, packing=False, **common)
        trainer = trl.SFTTrainer(model=model_path, args=args, train_dataset=data, processing_class=tok,
                                 callbacks=[clock])
    else:
        raise ValueError(kind)
    trainer.train()
    logs = clock.logs
    tokens = int(logs[-1]["num_tokens"]) if logs and "num_tokens" in logs[-1] else 0
    out = {"framework_label": f"TRL {trl.__version__}", "steps": len(clock.steps), "step_seconds": clock.steps,
           "cpu_seconds": sum(clock.cpu), "pre_seconds": 0.0, "tokens": tokens,
           "losses": [float(x["loss"]) for x in logs], "train_peak": clock.peak}
    if kind == "dpo" and logs:
        out["logps_chosen_1"] = logs[0].get("logps/chosen")
    return out


# ------------------------------------------------------------------------------------- selfalign side
def _clock_logger(device: str):
    from selfalign.utils.metrics import MetricsLogger

    class Clock(MetricsLogger):
        """A metrics logger that keeps each step's scalars and the time it was logged."""

        def __init__(self):
            super().__init__(None, stage="bench")
            self.start: tuple[float, float] | None = None  # (wall, cpu) when the training loop starts
            self.peak: tuple[float, float | None] | None = None  # (RSS, GPU) MiB after the last step
            self.steps: list[tuple[int, float, float, dict]] = []

        def log(self, step, echo=None, **scalars):
            if step > 0 and "loss" in scalars and not any(k.startswith("eval_") for k in scalars):
                _sync(device)
                self.steps.append((step, time.perf_counter(), time.process_time(), dict(scalars)))
                self.peak = (peak_rss_mb(), _peak_gpu_mb(device))

    return Clock()


def run_selfalign(kind: str, spec: dict, out_dir: str) -> dict[str, Any]:
    """Train with selfalign's trainer for ``kind`` (dpo | rm | sft) and measure it."""
    from selfalign.train import config as tc

    gpu = spec["device"].startswith("cuda")
    common = dict(
        train_file=spec["pairs"] if kind in ("dpo", "rm") else spec["sft"], output_dir=out_dir,
        learning_rate=spec["lr"][kind], per_device_batch_size=spec["batch_size"], gradient_accumulation_steps=1,
        max_steps=spec["steps"], max_length=spec["max_length"], seed=spec["seed"], logging_steps=1,
        dtype=_dtype(spec), mixed_precision="bf16" if gpu else "no", cpu=not gpu, lr_scheduler="linear",
        warmup_steps=0, warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1.0, group_by_length=True,
        gradient_checkpointing=False, disable_dropout=True, save_steps=0, overwrite=True,
    )
    common.update(spec.get("selfalign_overrides", {}).get(kind, {}))
    clock = _clock_logger(spec["device"])
    pre = {"seconds": 0.0}
    _mark_loop_start(kind, clock, spec["device"])
    if kind == "dpo":
        from selfalign.train import dpo

        cfg = tc.DPOConfig(model=spec["lm"], beta=spec["beta"], loss_type="sigmoid", **common)
        original = getattr(dpo, "precompute_reference", None)
        if original is not None:
            def timed(*a, **k):
                _sync(spec["device"])
                t = time.perf_counter()
                try:
                    return original(*a, **k)
                finally:
                    _sync(spec["device"])
                    pre["seconds"] += time.perf_counter() - t
            dpo.precompute_reference = timed
        summary = dpo.train_dpo(cfg, metrics=clock)
    elif kind == "rm":
        from selfalign.train.rm import train_rm

        summary = train_rm(tc.RMConfig(model=spec["rm"], **common), metrics=clock)
    elif kind == "sft":
        from selfalign.train.sft import train_sft

        summary = train_sft(tc.SFTConfig(model=spec["lm"], **common), metrics=clock)
    else:
        raise ValueError(kind)
    steps = clock.steps
    times = [t for _, t, _, _ in steps]
    loop = float(summary.get("train_seconds", 0.0))
    if clock.start is not None and times:
        step_seconds = [b - a for a, b in zip([clock.start[0]] + times, times)]
        cpu = steps[-1][2] - clock.start[1]
    else:  # the loop start was not seen: step 1 = loop time - the later steps
        step_seconds = [max(loop - (times[-1] - times[0]), 0.0)] + [b - a for a, b in zip(times, times[1:])]
        cpu = None
    tokens = round(float(summary.get("train_tokens_per_s", 0.0)) * loop)
    import selfalign

    out = {"framework_label": f"selfalign {getattr(selfalign, '__version__', '')}".strip(),
           "steps": len(steps), "step_seconds": step_seconds, "cpu_seconds": cpu, "pre_seconds": pre["seconds"],
           "tokens": tokens, "losses": [float(s["loss"]) for _, _, _, s in steps], "train_peak": clock.peak}
    if kind == "dpo" and steps:
        out["logps_chosen_1"] = steps[0][3].get("logps_chosen")
    return out


def _mark_loop_start(kind: str, clock, device: str) -> None:
    """Note the time when the first optimizer step starts (wraps the loop's ``_train_step``), after the
    trainer's setup (optimizer, device placement, resume) — where TRL's ``on_step_begin`` starts its
    clock too. ``kind`` is unused (every trainer shares the loop)."""
    from selfalign.train import loop

    inner = loop._train_step

    def first_step(*a, **k):
        if clock.start is None:
            _sync(device)
            clock.start = (time.perf_counter(), time.process_time())
        return inner(*a, **k)

    loop._train_step = first_step


# ------------------------------------------------------------------------------------------ generation
def _prompts(spec: dict) -> tuple[list[str], list[str]]:
    from benchmarks.data import read_jsonl

    recs = read_jsonl(spec["prompts"])[: spec["gen"]["num_prompts"]]
    return [r["prompt"] for r in recs], [r["id"] for r in recs]


def _count_tokens(rows: list[list[int]], eos: set[int]) -> int:
    """Generated tokens per row up to and including the first EOS (what selfalign counts)."""
    total = 0
    for row in rows:
        cut = next((j for j, t in enumerate(row) if t in eos), None)
        total += len(row) if cut is None else cut + 1
    return total


def _hf_sample(model, tok, enc, g: dict) -> int:
    """One sampled ``model.generate`` call (``num_return_sequences`` per prompt row of ``enc``); the number
    of generated tokens (:func:`_count_tokens`)."""
    import torch

    with torch.inference_mode():
        out = model.generate(**enc, do_sample=True, temperature=g["temperature"], top_p=g["top_p"], top_k=0,
                             max_new_tokens=g["max_new_tokens"], num_return_sequences=g["num_samples"],
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return _count_tokens(out[:, enc["input_ids"].shape[1]:].tolist(), {int(tok.eos_token_id)})


def run_gen_selfalign(spec: dict) -> dict[str, Any]:
    from selfalign.generation import EngineConfig, SamplingParams, build_engine

    g = spec["gen"]
    prompts, ids = _prompts(spec)
    engine = build_engine(EngineConfig(model=spec["lm"], batch_size=g["batch_size"], dtype=_dtype(spec),
                                       device=spec["device"]))
    params = SamplingParams(num_samples=g["num_samples"], temperature=g["temperature"], top_p=g["top_p"],
                            max_new_tokens=g["max_new_tokens"], seed=spec["seed"])
    _sync(spec["device"])
    t = time.perf_counter()
    results = engine.generate(prompts, params, keys=ids)
    _sync(spec["device"])
    dt = time.perf_counter() - t
    tokens = sum(int(r["num_tokens"]) for rs in results for r in rs)
    return {"framework_label": "selfalign HFEngine", "steps": 1, "step_seconds": [dt],
            "pre_seconds": 0.0, "tokens": tokens, "losses": []}


def _load_hf(spec: dict):
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(spec["lm"])
    model = AutoModelForCausalLM.from_pretrained(spec["lm"], dtype=_dtype(spec)).to(spec["device"]).eval()
    return tok, model


def run_gen_hf_batched(spec: dict) -> dict[str, Any]:
    """``transformers``' own batched ``generate`` (left padding, sampling, ``num_return_sequences``)
    with ``rows`` sequences per call, for each ``rows`` in ``gen.hf_rows``; the best is the result,
    every size is reported in ``by_rows``. Prompts in the file's order (no length sorting: the plain
    library call)."""
    import torch

    g = spec["gen"]
    prompts, _ = _prompts(spec)
    tok, model = _load_hf(spec)
    tok.padding_side = "left"
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts]
    by_rows = {}
    for rows in g.get("hf_rows", [64, 256]):
        per_call = max(1, rows // g["num_samples"])
        torch.manual_seed(spec["seed"])
        tokens = 0
        _sync(spec["device"])
        t = time.perf_counter()
        for s in range(0, len(texts), per_call):
            enc = tok(texts[s:s + per_call], return_tensors="pt", padding=True, add_special_tokens=False
                      ).to(spec["device"])
            tokens += _hf_sample(model, tok, enc, g)
        _sync(spec["device"])
        dt = time.perf_counter() - t
        by_rows[rows] = {"seconds": dt, "tokens": tokens, "tokens_per_s": tokens / dt}
    best = max(by_rows, key=lambda r: by_rows[r]["tokens_per_s"])
    return {"framework_label": f"HF generate batched ({best} rows)", "steps": 1,
            "step_seconds": [by_rows[best]["seconds"]], "pre_seconds": 0.0, "tokens": by_rows[best]["tokens"],
            "losses": [], "by_rows": by_rows}


def run_gen_baseline(spec: dict) -> dict[str, Any]:
    """One ``model.generate`` call per prompt with ``num_return_sequences`` samples (on the first
    ``gen.baseline_prompts`` prompts when set: a rate, so fewer prompts measure the same thing)."""
    import torch

    g = spec["gen"]
    prompts, _ = _prompts(spec)
    prompts = prompts[: g.get("baseline_prompts") or len(prompts)]
    tok, model = _load_hf(spec)
    torch.manual_seed(spec["seed"])
    tokens = 0
    _sync(spec["device"])
    t = time.perf_counter()
    for p in prompts:
        enc = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True).to(spec["device"])
        tokens += _hf_sample(model, tok, enc, g)
    _sync(spec["device"])
    dt = time.perf_counter() - t
    return {"framework_label": "HF generate per prompt", "steps": 1, "step_seconds": [dt],
            "pre_seconds": 0.0, "tokens": tokens, "losses": []}


# ---------------------------------------------------------------------------------------------- main
def run_one(framework: str, workload: str, spec: dict, workdir: Path) -> dict[str, Any]:
    """Run and measure one workload; failures are reported in the result, not raised."""
    out_dir = str(workdir / "runs" / f"{framework}-{workload}")
    res: dict[str, Any] = {"framework": framework, "workload": workload}
    try:
        if workload == "gen":
            r = run_gen_selfalign(spec) if framework == "selfalign" else run_gen_baseline(spec)
        elif workload == "genbatch":
            r = run_gen_selfalign(spec) if framework == "selfalign" else run_gen_hf_batched(spec)
        elif workload == "ppo":
            if framework != "selfalign":
                raise ValueError("the ppo baseline runs in its own venv: benchmarks/peers/trl_ppo.py")
            from benchmarks.ppo import run_selfalign as run_ppo_selfalign

            r = run_ppo_selfalign(spec, out_dir)
        elif framework == "selfalign":
            r = run_selfalign(workload, spec, out_dir)
        else:
            r = run_trl(workload, spec, out_dir)
        res.update(r)
        res.update(summarise(r["step_seconds"], r["pre_seconds"], r["tokens"]))
    except Exception as e:  # noqa: BLE001 - the runner shows the failure in its table
        traceback.print_exc()
        res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    peak = res.pop("train_peak", None)
    if peak is None:  # generation, or no step seen: the process peak so far
        peak = (peak_rss_mb(), _peak_gpu_mb(spec["device"]))
    res["peak_rss_mb"], res["peak_gpu_mb"] = peak
    res["process_peak_rss_mb"] = peak_rss_mb()  # includes saving the model (selfalign) after training
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.workloads", description=__doc__.splitlines()[0])
    ap.add_argument("framework", choices=FRAMEWORKS)
    ap.add_argument("workloads", help="comma-separated: " + ",".join(ALL_WORKLOADS))
    ap.add_argument("--spec", required=True, help="spec.json written by benchmarks.run")
    ap.add_argument("--json", required=True, help="where to write the results (a JSON list)")
    a = ap.parse_args(argv)
    spec = json.loads(Path(a.spec).read_text())
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    workdir = Path(spec["workdir"])
    results = []
    for w in a.workloads.split(","):
        if w not in ALL_WORKLOADS:
            ap.error(f"unknown workload {w!r}; choose from {', '.join(ALL_WORKLOADS)}")
        results.append(run_one(a.framework, w, spec, workdir))
    tmp = Path(a.json).with_name(f".tmp-{Path(a.json).name}")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, a.json)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
