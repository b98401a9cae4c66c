"""Generation options side by side in one process, on one loaded model (for choosing the engine).

    python -m benchmarks.gen_options --model DIR [--device cuda] [--prompts 64] [--samples 4]
                                     [--tokens 128] [--options selfalign:256,hf-generate:256] [--json out.json]

The same prompts (``benchmarks.data.prompt_records``, SmolLM2 chat template), sampling at
temperature 0.7 / top-p 0.9, ``tokens`` new tokens at most; every option is timed after a short
warm-up of the same code path, with a device synchronisation around it. Options:

* ``selfalign:<rows>``: :class:`selfalign.generation.hf.HFEngine` (pruning decode loop, static
  cache, per-row seeds) with ``rows`` sequences per batch;
* ``selfalign-generate:<rows>``: the same engine with ``prune=False`` (``transformers``' ``generate``
  driven by our sampler: same tokens, finished rows stay in the batch);
* ``hf-generate:<rows>``: plain ``model.generate`` with left padding, ``rows`` per call;
* ``hf-per-prompt:<k>``: one ``model.generate(num_return_sequences=samples)`` call per prompt, on
  the first ``k`` prompts (a rate; how simple online loops do it);
* ``hf-generate-batch``: ``transformers``' continuous batching (``model.generate_batch``, paged
  cache; its own scheduler and CUDA graphs where it uses them), sampling seeded once.

Tokens are counted up to and including the first EOS. Results: one table + optional JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.workloads import _count_tokens, _sync

DEFAULT_OPTIONS = ("selfalign:64,selfalign:256,selfalign-generate:256,hf-generate:64,hf-generate:256,"
                   "hf-per-prompt:8,hf-generate-batch")


def _timed(fn, device: str) -> tuple[float, Any]:
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t, out


def run_engine(model, tok, texts, ids, a, rows: int, prune: bool) -> dict:
    from selfalign.generation.hf import HFEngine
    from selfalign.generation.sampling import SamplingParams

    eng = HFEngine(model, tok, batch_size=rows, prune=prune)
    params = SamplingParams(num_samples=a.samples, temperature=0.7, top_p=0.9, max_new_tokens=a.tokens, seed=0)
    eng.generate(texts[:2], params.model_copy(update={"max_new_tokens": 4}), keys=ids[:2])  # warm-up
    dt, res = _timed(lambda: eng.generate(texts, params, keys=ids), a.device)
    return {"seconds": dt, "tokens": sum(r["num_tokens"] for rs in res for r in rs)}


def run_hf_generate(model, tok, texts, a, rows: int) -> dict:
    import torch

    tok.padding_side = "left"
    rendered = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False)
                for t in texts]
    per_call = max(1, rows // a.samples)
    eos = {int(tok.eos_token_id)}

    def go(items, n_new):
        tokens = 0
        for s in range(0, len(items), per_call):
            enc = tok(items[s:s + per_call], return_tensors="pt", padding=True, add_special_tokens=False
                      ).to(a.device)
            with torch.inference_mode():
                out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=0.9, top_k=0,
                                     max_new_tokens=n_new, num_return_sequences=a.samples,
                                     pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            tokens += _count_tokens(out[:, enc["input_ids"].shape[1]:].tolist(), eos)
        return tokens

    go(rendered[:2], 4)
    torch.manual_seed(0)
    dt, tokens = _timed(lambda: go(rendered, a.tokens), a.device)
    return {"seconds": dt, "tokens": tokens}


def run_generate_batch(model, tok, texts, a) -> dict:
    from transformers.generation import GenerationConfig

    enc = [tok.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=True,
                                   return_dict=False) for t in texts]
    enc = [list(e["input_ids"]) if isinstance(e, dict) else list(e) for e in enc]
    eos = {int(tok.eos_token_id)}

    def go(items, n_new):
        gc = GenerationConfig(max_new_tokens=n_new, do_sample=True, temperature=0.7, top_p=0.9, top_k=0,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                              num_return_sequences=a.samples)
        out = model.generate_batch(inputs=items, generation_config=gc, progress_bar=False)
        return _count_tokens([list(o.generated_tokens) for o in out.values()], eos), len(out)

    go(enc[:2], 4)
    dt, (tokens, n) = _timed(lambda: go(enc, a.tokens), a.device)
    if n != len(enc) * a.samples:
        raise RuntimeError(f"generate_batch returned {n} sequences, expected {len(enc) * a.samples}")
    return {"seconds": dt, "tokens": tokens}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gen_options", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--options", default=DEFAULT_OPTIONS,
                    help="comma-separated NAME:ROWS (rows per batch), NAME one of selfalign, selfalign-generate, "
                         "hf-generate; hf-per-prompt:K (one call per prompt, first K prompts); hf-generate-batch")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM

    from benchmarks.data import prompt_records
    from selfalign.models.load import load_tokenizer

    dtype = a.dtype or ("bfloat16" if a.device.startswith("cuda") else "float32")
    tok = load_tokenizer(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=getattr(torch, dtype)).to(a.device).eval()
    recs = prompt_records(a.prompts)
    texts, ids = [r["prompt"] for r in recs], [r["id"] for r in recs]
    plan: list[tuple[str, Any]] = []
    for item in (o for o in a.options.split(",") if o):
        name, _, n = item.partition(":")
        k = int(n) if n else 0
        if name in ("selfalign", "selfalign-generate"):
            plan.append((item, lambda k=k, prune=name == "selfalign": run_engine(model, tok, texts, ids, a, k, prune)))
        elif name == "hf-generate":
            plan.append((item, lambda k=k: run_hf_generate(model, tok, texts, a, k)))
        elif name == "hf-per-prompt":
            plan.append((item, lambda k=k: run_hf_generate(model, tok, texts[:k], a, a.samples)))
        elif name == "hf-generate-batch":
            plan.append((item, lambda: run_generate_batch(model, tok, texts, a)))
        else:
            ap.error(f"unknown option {item!r}")
    results = {}
    for name, fn in plan:
        try:
            res = fn()
            res["tokens_per_s"] = res["tokens"] / res["seconds"]
        except Exception as e:  # noqa: BLE001 - one failing option must not hide the others
            res = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]}
        results[name] = res
        print(f"{name:<26} " + (f"{res['tokens_per_s']:9.1f} tok/s  {res['tokens']:7d} tokens  "
                                f"{res['seconds']:7.2f} s" if "error" not in res else f"FAILED {res['error']}"),
              flush=True)
    if a.json:
        info = {"model": a.model, "device": a.device, "dtype": dtype, "prompts": a.prompts, "samples": a.samples,
                "tokens": a.tokens, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "torch": torch.__version__, "results": results}
        Path(a.json).write_text(json.dumps(info, indent=2))
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
