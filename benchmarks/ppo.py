"""The ``ppo`` workload: selfalign's PPO trainer side by side with TRL's old ``PPOTrainer``.

Opt-in (it needs a second virtualenv for the peer)::

    python -m benchmarks.run --full --workloads ppo
    python -m benchmarks.run --smoke --workloads ppo --trl-ppo-python .venv-trl-ppo/bin/python

The peer is TRL 0.11.4, the last release with the ``PPOTrainer.step(queries, responses, scores)`` API,
which takes any scores, so both sides are rewarded by the same function. It needs transformers 4.x,
hence its own virtualenv (install commands: :mod:`benchmarks.peers.trl_ppo`); the runner starts
``benchmarks/peers/trl_ppo.py`` with that venv's Python (``--trl-ppo-python``, or ``$TRL_PPO_PYTHON``,
default ``.venv-trl-ppo/bin/python``). The selfalign side runs in this process's venv
(``python -m benchmarks.workloads selfalign ppo``).

Both sides get (:data:`SETTINGS`, written by :func:`prepare` into ``spec["ppo"]``):

* the same model folder (the benchmark ``lm`` copy of :mod:`benchmarks.data`), fp32 on CPU;
* the same prompts in the same steps: the prompts of ``examples/data/prompts_train.jsonl`` that carry
  verifiable checks, tokenised once here with selfalign's chat encoding (the peer gets these token
  ids), batched as selfalign's trainer batches them (its ``batch_plan``; the selfalign run reports the
  ids it actually used, and the runner checks they match);
* the same reward: ``selfalign.checks.run_checks(text, meta).fraction`` on the response text decoded
  up to the first EOS/pad token with ``skip_special_tokens`` (selfalign's ``verifiable`` function
  reward, ``mode: fraction``; the peer imports ``selfalign.checks`` only, which is stdlib-only);
* one sample per prompt (old TRL samples once per query), ``rollout_batch_size`` prompts per step,
  ``max_new_tokens``, temperature 1.0, top-k/top-p off. Temperature is 1 because TRL 0.11 computes
  the PPO log-probs from the raw logits (selfalign divides them by the temperature): at any other
  temperature TRL's ratio would not be the sampling distribution's;
* ``ppo_epochs`` passes over minibatches of ``minibatch_size`` responses, one optimizer step each
  (selfalign ``per_device_batch_size`` = TRL ``mini_batch_size``, no accumulation), the same constant
  learning rate, gradient clipping at 1.0, fixed KL coefficient with the k1 estimator (TRL
  ``kl_penalty: kl``, ``adap_kl_ctrl: False``), γ, λ, clip ranges, ``vf_coef``, whitened advantages;
* a shared critic: a value head on the policy (selfalign ``critic: shared``; TRL
  ``AutoModelForCausalLMWithValueHead``, its value-head dropout set to 0), LoRA off, dropout off.

Differences left as they are (each framework's own behaviour): TRL's default optimizer is ``Adam``
(selfalign: fused ``AdamW`` with weight decay 0, the same update); TRL computes logits for every
position (selfalign only for response positions); the value heads start differently (TRL random,
selfalign zero); the two sample with different random generators, so the responses — and their lengths
— differ: compare tokens/s, not seconds.

Measured per PPO step (wall clock; on GPU after a synchronisation):

* ``rollout_s`` (generation), ``score_s`` (reward; the peer's includes decoding the texts),
  ``experience_s`` (π_old / reference log-probs, values, KL, GAE: TRL's ``forward_pass +
  compute_rewards + compute_advantages``), ``update_s`` (the PPO epochs: TRL's ``optimize_step``),
  ``step_s`` (the whole step; the rest is bookkeeping, e.g. padding the rollout, TRL's stats);
* ``gen_tokens`` (response tokens, EOS included) → ``rollout_tokens_per_s`` = gen_tokens / rollout_s;
  ``train_tokens`` (real prompt + response tokens through the update passes, × ppo_epochs) →
  ``train_tokens_per_s`` = train_tokens / update_s; ``tokens`` = real prompt + response tokens of
  the rollouts → ``tokens_per_s`` (end to end) = tokens / Σ step_s;
* ``reward``, ``response_length``, ``kl`` per step; ``peak_rss_mb`` / ``peak_gpu_mb`` after the last
  step (model loading included, saving excluded).

Measure on an otherwise idle machine: with other processes on the 2 cores, torch's 2 OpenMP threads
stall each other (a 4 × 16-token ``generate`` took 74 s with 2 threads vs 6.6 s with 1 under such
load); pass ``--threads 1`` when the machine cannot be kept free. ``--ppo-set KEY=VALUE`` changes a
setting for both sides (e.g. ``--ppo-set max_new_tokens=16``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "examples" / "data" / "prompts_train.jsonl"
PEER = ROOT / "benchmarks" / "peers" / "trl_ppo.py"
DEFAULT_PEER_PYTHON = ".venv-trl-ppo/bin/python"

_COMMON: dict[str, Any] = dict(lr=1e-5, kl_coef=0.05, gamma=1.0, lam=0.95, cliprange=0.2, cliprange_value=0.2,
                               vf_coef=0.1, max_grad_norm=1.0, temperature=1.0, max_length=512)
SETTINGS: dict[str, dict[str, Any]] = {  # steps: PPO steps (the runner's --steps overrides them)
    "smoke": dict(_COMMON, steps=2, rollout_batch_size=4, minibatch_size=2, ppo_epochs=2, max_new_tokens=8,
                  gen_batch_size=4),
    "quick": dict(_COMMON, steps=2, rollout_batch_size=16, minibatch_size=8, ppo_epochs=2, max_new_tokens=64,
                  gen_batch_size=16),
    "full": dict(_COMMON, steps=4, rollout_batch_size=16, minibatch_size=8, ppo_epochs=2, max_new_tokens=64,
                 gen_batch_size=16),
}
STEP_KEYS = ("rollout_s", "score_s", "experience_s", "update_s", "step_s")


def peer_python(cli_value: str | None = None) -> str:
    return cli_value or os.environ.get("TRL_PPO_PYTHON") or DEFAULT_PEER_PYTHON


# ------------------------------------------------------------------------------------------ inputs
def prepare(spec: dict, mode: str, workdir: Path, steps: int | None = None,
            overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``spec["ppo"]``: settings (``SETTINGS[mode]``, then ``steps`` and ``overrides`` — both sides), the
    scorable prompts file, their token ids and each step's prompt ids."""
    from transformers import GenerationConfig

    from benchmarks.data import read_jsonl, write_jsonl
    from selfalign.checks import has_checks
    from selfalign.data.chat import encode_prompt
    from selfalign.generation.hf import eos_ids_of
    from selfalign.models.load import load_tokenizer
    from selfalign.train.data import batch_plan

    s = {**SETTINGS[mode], **(overrides or {})}
    if steps:
        s["steps"] = steps
    unknown = set(s) - set(SETTINGS[mode])
    if unknown:
        raise ValueError(f"unknown ppo settings {sorted(unknown)}; known: {sorted(SETTINGS[mode])}")
    records = [r for r in read_jsonl(PROMPTS) if has_checks(r.get("meta"))]
    path = write_jsonl(workdir / "data" / "ppo_prompts.jsonl", records)
    tok = load_tokenizer(spec["lm"])
    queries = {r["id"]: encode_prompt(tok, r["prompt"]) for r in records}

    try:  # eos_ids_of reads model.generation_config.eos_token_id, as the generation engine does
        gen_cfg = GenerationConfig.from_pretrained(spec["lm"])
    except OSError:
        gen_cfg = None
    batches: list[list[str]] = []
    epoch = 0
    while len(batches) < s["steps"]:  # what PPOTrainer.next_prompts visits
        plan = batch_plan([len(queries[r["id"]]) for r in records], s["rollout_batch_size"], spec["seed"], epoch,
                          False, drop_last=True)
        batches += [[records[i]["id"] for i in b] for b in plan]
        epoch += 1
    s.update(prompts=str(path), queries=queries, batches=batches[: s["steps"]],
             eos_ids=eos_ids_of(SimpleNamespace(generation_config=gen_cfg), tok), pad_id=int(tok.pad_token_id))
    return s


def peer_command(python: str, spec_path: Path, out: Path) -> list[str]:
    return [python, str(PEER), "--spec", str(spec_path), "--json", str(out)]


# ---------------------------------------------------------------------------------- selfalign side
def _set(d: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d[last] = value


def run_selfalign(spec: dict, out_dir: str) -> dict[str, Any]:
    """Train with ``selfalign.train.ppo.train_ppo`` for ``spec["ppo"]["steps"]`` steps; measure each step."""
    from benchmarks.workloads import _peak_gpu_mb, _sync, peak_rss_mb
    from selfalign.train import ppo as sppo
    from selfalign.train.config import PPOConfig
    from selfalign.utils.metrics import MetricsLogger

    p, dev = spec["ppo"], spec["device"]
    gpu = dev.startswith("cuda")
    raw: dict[str, Any] = dict(
        model=spec["lm"], train_file=p["prompts"], output_dir=out_dir,
        rewards=[{"type": "function", "function": "verifiable", "mode": "fraction"}],
        generation={"num_samples": 1, "temperature": p["temperature"], "top_p": 1.0, "top_k": 0,
                    "max_new_tokens": p["max_new_tokens"], "batch_size": p["gen_batch_size"], "seed": spec["seed"]},
        rollout_batch_size=p["rollout_batch_size"], per_device_batch_size=p["minibatch_size"],
        gradient_accumulation_steps=1, ppo_epochs=p["ppo_epochs"], max_steps=p["steps"],
        learning_rate=p["lr"], lr_scheduler="constant", warmup_steps=0, warmup_ratio=0.0, weight_decay=0.0,
        max_grad_norm=p["max_grad_norm"], max_length=p["max_length"], seed=spec["seed"], logging_steps=1,
        dtype=spec["dtype"], mixed_precision="bf16" if gpu else "no", cpu=not gpu, critic="shared",
        kl_coef=p["kl_coef"], kl_estimator="k1", kl_target=None, gamma=p["gamma"], lam=p["lam"],
        cliprange=p["cliprange"], cliprange_value=p["cliprange_value"], vf_coef=p["vf_coef"], entropy_coef=0.0,
        whiten_advantages=True, group_by_length=False, gradient_checkpointing=False, disable_dropout=True,
        save_steps=0,
    )
    for k, v in spec.get("selfalign_overrides", {}).get("ppo", {}).items():
        _set(raw, k, v)
    cfg = PPOConfig(**raw)

    steps: list[dict[str, Any]] = []
    cur: dict[str, Any] = {}
    T = sppo.PPOTrainer
    orig = {name: getattr(T, name) for name in ("next_prompts", "score", "experience", "update", "one_step")}

    def next_prompts(self):
        batch = orig["next_prompts"](self)
        cur["prompt_ids"] = [str(x.record["id"]) for x in batch]
        cur["queries_match"] = all(x.ids == p["queries"].get(str(x.record["id"])) for x in batch)
        return batch

    def synced(name):  # the trainer does not synchronise before reading its clock: do it here on GPU
        def f(self, *a, **k):
            out = orig[name](self, *a, **k)
            _sync(dev)
            return out
        return f

    def one_step(self):
        _sync(dev)
        t, c, n = time.perf_counter(), time.process_time(), self.state.tokens
        m = orig["one_step"](self)
        _sync(dev)
        cur.update(wall=time.perf_counter() - t, cpu=time.process_time() - c, m=m, tokens=self.state.tokens - n)
        return m

    class Clock(MetricsLogger):
        def log(self, step, echo=None, **scalars):
            if step > 0 and "reward_raw_mean" in scalars and "m" in cur:
                m = cur.pop("m")
                steps.append({"step": step, "prompt_ids": cur.get("prompt_ids"),
                              "queries_match": cur.get("queries_match"), "rollout_s": m["rollout_seconds"],
                              "score_s": m["score_seconds"], "experience_s": m["experience_seconds"],
                              "update_s": m["update_seconds"], "step_s": cur["wall"], "cpu_s": cur["cpu"],
                              "gen_tokens": round(m["rollout_tokens_per_s"] * m["rollout_seconds"]),
                              "train_tokens": round(m["train_tokens_per_s"] * m["update_seconds"]),
                              "tokens": cur["tokens"],
                              "reward": m["reward_raw_mean"], "response_length": m["response_length"],
                              "kl": m["kl"], "pg_loss": m.get("pg_loss"), "vf_loss": m.get("vf_loss"),
                              "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": _peak_gpu_mb(dev)})

    patched = {"next_prompts": next_prompts, "one_step": one_step,
               **{n: synced(n) for n in ("score", "experience", "update")}}
    for name, fn in patched.items():
        setattr(T, name, fn)
    try:
        sppo.train_ppo(cfg, metrics=Clock(None, stage="bench"))
    finally:
        for name, fn in orig.items():
            setattr(T, name, fn)
    import selfalign

    return finish(steps, f"selfalign {getattr(selfalign, '__version__', '')}".strip(), p)


def finish(steps: list[dict], label: str, p: dict) -> dict[str, Any]:
    """The result row of one side from its per-step records (shared with the peer script's layout)."""
    out: dict[str, Any] = {"framework_label": label, "steps": len(steps), "ppo_steps": steps,
                           "step_seconds": [s["step_s"] for s in steps], "pre_seconds": 0.0,
                           "tokens": sum(s["tokens"] for s in steps), "losses": [],
                           "cpu_seconds": sum(s["cpu_s"] for s in steps),
                           "prompt_ids": [s["prompt_ids"] for s in steps],
                           "settings": {k: v for k, v in p.items() if k not in ("queries", "batches")}}
    out.update(ppo_summary(steps))
    if steps:
        out["train_peak"] = (steps[-1]["peak_rss_mb"], steps[-1]["peak_gpu_mb"])
    return out


def ppo_summary(steps: list[dict]) -> dict[str, float]:
    """Per-step means of the split (without step 1 from 3 steps on) and the token rates over all steps."""
    if not steps:
        return {}
    steady = steps[1:] if len(steps) >= 3 else steps
    out = {f"{k}_mean": sum(s[k] for s in steady) / len(steady) for k in STEP_KEYS}
    roll, upd = sum(s["rollout_s"] for s in steps), sum(s["update_s"] for s in steps)
    out["rollout_tokens_per_s"] = sum(s["gen_tokens"] for s in steps) / roll if roll > 0 else 0.0
    out["train_tokens_per_s"] = sum(s["train_tokens"] for s in steps) / upd if upd > 0 else 0.0
    out["reward_mean"] = sum(s["reward"] for s in steps) / len(steps)
    out["response_length_mean"] = sum(s["response_length"] for s in steps) / len(steps)
    return out


# ------------------------------------------------------------------------------------------ report
BREAKDOWN_HEADERS = ["framework", "rollout s", "score s", "experience s", "update s", "step s",
                     "rollout tok/s", "train tok/s", "resp. len", "reward", "peak MB"]


def breakdown_rows(results: list[dict]) -> list[list[str]]:
    """Cells of the per-step split table for the ppo results (baseline first)."""
    rows = []
    for side in ("baseline", "selfalign"):
        r = next((x for x in results if x.get("workload") == "ppo" and x.get("framework") == side), None)
        if r is None or "error" in r or not r.get("ppo_steps"):
            continue
        mem = r.get("peak_gpu_mb") or r.get("peak_rss_mb")
        rows.append([r.get("framework_label") or side] + [f"{r[f'{k}_mean']:.2f}" for k in STEP_KEYS] +
                    [f"{r['rollout_tokens_per_s']:.1f}", f"{r['train_tokens_per_s']:.1f}",
                     f"{r['response_length_mean']:.1f}", f"{r['reward_mean']:.3f}",
                     "—" if mem is None else f"{mem:.0f}"])
    return rows


def compare_extra(ours: dict, base: dict) -> dict[str, Any]:
    """ppo-only comparison fields: same prompts per step, rollout and training token-rate ratios."""
    out: dict[str, Any] = {"same_prompts": ours.get("prompt_ids") == base.get("prompt_ids")}
    for k in ("rollout_tokens_per_s", "train_tokens_per_s"):
        if base.get(k):
            out[f"{k.replace('_tokens_per_s', '')}_speedup"] = ours.get(k, 0.0) / base[k]
    return out


def print_breakdown(results: list[dict], console) -> None:
    from rich.table import Table

    rows = breakdown_rows(results)
    if not rows:
        return
    t = Table(title="ppo: seconds per step (mean; without step 1 from 3 steps on) and token rates")
    for h in BREAKDOWN_HEADERS:
        t.add_column(h, justify="left" if h == "framework" else "right")
    for cells in rows:
        t.add_row(*cells)
    console.print(t)


def markdown_breakdown(results: list[dict]) -> str:
    rows = breakdown_rows(results)
    if not rows:
        return ""
    lines = ["", "| " + " | ".join(BREAKDOWN_HEADERS) + " |", "|" + "---|" * len(BREAKDOWN_HEADERS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"
