"""The peer of the ``ppo`` benchmark: TRL's old ``PPOTrainer`` (TRL 0.11.4), run in its own virtualenv.

TRL 0.11.4 is the last release whose ``PPOTrainer`` has ``step(queries, responses, scores)``: it takes
any per-response scores, so it is rewarded exactly like selfalign (``selfalign.checks.run_checks(text,
meta).fraction``). It needs transformers 4.x, so it lives in a virtualenv of its own, outside the repo
(never committed)::

    python3 -m venv .venv-trl-ppo
    .venv-trl-ppo/bin/pip install torch==2.13.0
    .venv-trl-ppo/bin/pip install trl==0.11.4 transformers==4.46.3 accelerate==1.1.1 numpy rich

(``rich`` is imported by TRL 0.11.4 but not declared as a dependency; datasets, tyro etc. come with
trl.) The runner starts this file with that venv's Python (``python -m benchmarks.run --workloads ppo
--trl-ppo-python .venv-trl-ppo/bin/python``, or ``$TRL_PPO_PYTHON``)::

    .venv-trl-ppo/bin/python benchmarks/peers/trl_ppo.py --spec spec.json --json out.json

It reads ``spec["ppo"]`` (written by :func:`benchmarks.ppo.prepare`): the benchmark model folder, the
prompt token ids (selfalign's chat encoding) and each step's prompt ids, and the PPO settings; it
imports nothing of selfalign but ``selfalign.checks`` (stdlib only), and from ``benchmarks`` only the
stdlib-only helpers of :mod:`benchmarks.ppo` that lay out the result. What is measured and how the
settings map onto TRL's: :mod:`benchmarks.ppo`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # selfalign.checks and benchmarks.ppo: both stdlib-only imports


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _peak_gpu_mb(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.max_memory_allocated() / (1024 * 1024)


def load_tokenizer(folder: str):
    """The folder's tokenizer. A folder saved by transformers 5 names ``TokenizersBackend`` as its class,
    which transformers 4 does not know: then the same ``tokenizer.json`` is loaded as a fast tokenizer
    with the special tokens of ``tokenizer_config.json`` (the same vocabulary, ids and decoding)."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except (ValueError, OSError, AttributeError):
        cfg = json.loads((Path(folder) / "tokenizer_config.json").read_text())
        special = {k: cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if isinstance(cfg.get(k), str)}
        tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(folder) / "tokenizer.json"), **special)
    tok.padding_side = "left"
    return tok


def cut_response(gen: list[int], eos: set[int], end: set[int]) -> tuple[list[int], list[int]]:
    """``(response ids, ids of its text)``, as selfalign's ``parse_row`` cuts a generated row: the text is
    everything before the first EOS/pad token; the response keeps the EOS (at least one token)."""
    cut = next((j for j, t in enumerate(gen) if t in end), len(gen))
    n = cut + (1 if cut < len(gen) and gen[cut] in eos else 0)
    return gen[:max(1, n)], gen[:cut]


def run(spec: dict) -> dict[str, Any]:
    import torch
    import trl
    from transformers.utils import logging as hf_logging
    from trl import AutoModelForCausalLMWithValueHead, PPOConfig, PPOTrainer

    from benchmarks.ppo import finish
    from selfalign.checks import run_checks

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    p, dev = spec["ppo"], spec["device"]
    if not hasattr(trl, "PPOTrainer") or not hasattr(PPOTrainer, "step"):
        raise RuntimeError(f"TRL {trl.__version__} has no PPOTrainer.step; this peer needs TRL ≤ 0.11")
    meta = {}
    with open(p["prompts"], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                meta[str(r["id"])] = r.get("meta") or {}
    tok = load_tokenizer(spec["lm"])
    model = AutoModelForCausalLMWithValueHead.from_pretrained(
        spec["lm"], torch_dtype=getattr(torch, spec["dtype"]), summary_dropout_prob=0.0)
    cfg = PPOConfig(
        exp_name="bench", seed=spec["seed"], learning_rate=p["lr"], adap_kl_ctrl=False, init_kl_coef=p["kl_coef"],
        kl_penalty="kl", gamma=p["gamma"], lam=p["lam"], cliprange=p["cliprange"],
        cliprange_value=p["cliprange_value"], vf_coef=p["vf_coef"], batch_size=p["rollout_batch_size"],
        mini_batch_size=p["minibatch_size"], gradient_accumulation_steps=1, ppo_epochs=p["ppo_epochs"],
        max_grad_norm=p["max_grad_norm"], whiten_rewards=False, accelerator_kwargs={"cpu": not dev.startswith("cuda")})
    trainer = PPOTrainer(config=cfg, model=model, ref_model=None, tokenizer=tok)
    eos = {int(x) for x in p["eos_ids"]}
    end = eos | {int(p["pad_id"])}
    gen_kwargs = dict(do_sample=True, temperature=p["temperature"], top_k=0, top_p=1.0, min_length=-1,
                      max_new_tokens=p["max_new_tokens"], pad_token_id=int(p["pad_id"]), eos_token_id=sorted(eos))
    steps: list[dict] = []
    for i, ids in enumerate(p["batches"][: p["steps"]]):
        queries = [torch.tensor(p["queries"][pid], dtype=torch.long, device=trainer.current_device) for pid in ids]
        _sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        gen = trainer.generate(queries, batch_size=p["gen_batch_size"], return_prompt=False, remove_padding=False,
                               **gen_kwargs)
        _sync(dev)
        t1 = time.perf_counter()
        cut = [cut_response(g.tolist(), eos, end) for g in gen]
        texts = [tok.decode(t, skip_special_tokens=True) for _, t in cut]
        scores = [float(run_checks(text, meta[pid]).fraction) for text, pid in zip(texts, ids, strict=True)]
        t2 = time.perf_counter()
        responses = [torch.tensor(r, dtype=torch.long, device=trainer.current_device) for r, _ in cut]
        stats = trainer.step(queries, responses, [torch.tensor(s) for s in scores])
        _sync(dev)
        t3 = time.perf_counter()
        gen_tokens = sum(len(r) for r, _ in cut)
        tokens = gen_tokens + sum(len(q) for q in queries)
        steps.append({
            "step": i + 1, "prompt_ids": list(ids), "queries_match": True, "rollout_s": t1 - t0, "score_s": t2 - t1,
            "experience_s": sum(float(stats[k]) for k in ("time/ppo/forward_pass", "time/ppo/compute_rewards",
                                                          "time/ppo/compute_advantages")),
            "update_s": float(stats["time/ppo/optimize_step"]), "step_s": t3 - t0, "cpu_s": time.process_time() - c0,
            "gen_tokens": gen_tokens, "train_tokens": tokens * p["ppo_epochs"], "tokens": tokens,
            "reward": sum(scores) / len(scores), "response_length": gen_tokens / len(cut),
            "kl": float(stats["objective/kl"]), "pg_loss": float(stats["ppo/loss/policy"]),
            "vf_loss": float(stats["ppo/loss/value"]), "peak_rss_mb": _peak_rss_mb(), "peak_gpu_mb": _peak_gpu_mb(dev)})
        print(f"step {i + 1}: {t3 - t0:.1f} s (rollout {t1 - t0:.1f}, update {steps[-1]['update_s']:.1f}), "
              f"reward {steps[-1]['reward']:.3f}", flush=True)
    return finish(steps, f"TRL {trl.__version__} PPOTrainer", p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True, help="spec.json written by benchmarks.run (with a 'ppo' section)")
    ap.add_argument("--json", required=True, help="where to write the result (a JSON list of one row)")
    a = ap.parse_args(argv)
    spec = json.loads(Path(a.spec).read_text())
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    res: dict[str, Any] = {"framework": "baseline", "workload": "ppo"}
    try:
        r = run(spec)
        from benchmarks.workloads import summarise

        res.update(r)
        res.update(summarise(r["step_seconds"], r["pre_seconds"], r["tokens"]))
    except Exception as e:  # noqa: BLE001 - the runner shows the failure in its table
        traceback.print_exc()
        res["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    peak = res.pop("train_peak", None) or (_peak_rss_mb(), _peak_gpu_mb(spec["device"]))
    res["peak_rss_mb"], res["peak_gpu_mb"] = peak
    res["process_peak_rss_mb"] = _peak_rss_mb()
    tmp = Path(a.json).with_name(f".tmp-{Path(a.json).name}")
    tmp.write_text(json.dumps([res], indent=2))
    os.replace(tmp, a.json)
    return 0 if "error" not in res else 1


if __name__ == "__main__":
    sys.exit(main())
