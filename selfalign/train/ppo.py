"""PPO (RLHF): ``selfalign train ppo`` — actor, frozen reference, reward sources, critic.

Each step (Ouyang et al. 2022, arXiv 2203.02155; Ziegler et al. 2019, arXiv 1909.08593):

1. **rollout** — ``rollout_batch_size`` prompts × ``generation.num_samples`` responses from the actor
   with the batched generation engine (:meth:`~selfalign.generation.hf.HFEngine.generate_ids`);
2. **score** — the reward sources (:mod:`.rewards`), summed with weights, then shaped
   (:func:`~selfalign.train.rl_losses.shape_scores`: scale, clip, no-stop penalty, length bonus);
3. **experience** — log-probs of the actor (π_old) and the reference, critic values; per-token KL
   (``kl_estimator``), rewards ``−β·kl_t`` + the score at the last token, GAE(γ, λ), advantages
   whitened over the rollout batch;
4. **update** — ``ppo_epochs`` passes over minibatches of ``per_device_batch_size ×
   gradient_accumulation_steps`` responses: clipped policy loss − entropy bonus for the actor, clipped
   value loss × ``vf_coef`` for the critic (token means over the whole minibatch, so ``8 × 1`` and
   ``1 × 8`` are the same update); one AdamW step per minibatch for each;
5. adaptive KL update (with ``kl_target``), metrics, checkpoint.

Models: the reference is a frozen copy of the starting model (with LoRA: the actor with its adapters
off; or ``ref_model``); the critic is a backbone with a new value head — the first reward model's
backbone, the starting model's, or the actor's own (``critic: shared``, one optimizer).

Processes (``distributed: {backend: ray, num_workers: W}``, or any torch.distributed launch): each
process rolls out every W-th prompt of the step's batch (``rollout_batch_size`` must divide by W),
scores and computes its experience; advantages are whitened over all processes' tokens; each
minibatch loss is divided by the *global* token count and the gradients summed over processes
(:mod:`selfalign.train.collective`), so every process makes the same optimizer step; logged metrics
are means over processes; the main process logs and writes checkpoints.

Resume (``resume: true`` / ``--resume``): a checkpoint holds the actor and critic weights, both
optimizers and schedulers, the RNG states, the adaptive β and the data position; rollouts are seeded by
``(generation.seed, step, prompt id, sample)``, so a killed run resumes to the same weights as an
uninterrupted one. A non-finite loss stops training before the optimizer step, keeping the last good
checkpoint, with the step in the message.

Logged per step (``metrics.jsonl``): ``reward_raw_mean/std`` (Σ weight·score), ``reward_<source>_mean``,
``score_mean/std`` (after shaping), ``reward_shaped_mean/std`` (Σ_t r_t, KL penalty included),
``non_score_reward``, ``kl`` (Σ_t kl_t per response), ``kl_coef``, ``entropy``, ``pg_loss``, ``pg_clipfrac``,
``approx_kl`` (k3 between π_old and π), ``vf_loss``, ``vf_clipfrac``, ``explained_variance``,
``value_mean``, ``return_mean``, ``advantage_mean``, ``response_length``, ``no_stop_frac``,
``rollout_tokens_per_s`` (generation), ``train_tokens_per_s`` (PPO updates), ``rollout_seconds``,
``score_seconds``, ``experience_seconds``, ``update_seconds``, ``step_seconds``, ``lr``,
``grad_norm`` (+ ``critic_*``); ``eval_*`` rewards of one sample per validation prompt (same seed each
time) at step 0, every ``eval_steps`` and at the end.

Example: ``train_ppo(PPOConfig(model="smollm2-135m", train_file="prompts.jsonl", output_dir="runs/ppo",
rewards=[{"type": "function", "function": "verifiable"}]))``
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from selfalign.errors import ConfigError, DataError, SelfalignError
from selfalign.train import checkpoint as ckpt
from selfalign.train import collective as col
from selfalign.train import hooks
from selfalign.train import rewards as rw
from selfalign.train import rl_losses as rl
from selfalign.train.config import PPOConfig
from selfalign.train.data import batch_plan
from selfalign.train.loop import (
    finish,
    make_optimizer,
    make_scheduler,
    prepare_for_training,
    start_training,
)
from selfalign.train.ppo_models import PPOModules, StateGroup, build_critic, build_reference
from selfalign.train.ppo_rollout import (
    Rollout,
    forward_rollout,
    generate_rollout,
    load_prompt_examples,
    policy_logps,
)
from selfalign.utils.metrics import MetricsLogger
from selfalign.utils.progress import Bar, console

__all__ = ["PPOConfig", "train_ppo"]


# ----------------------------------------------------------------------------------------- trainer
class PPOTrainer:
    """The PPO loop of :func:`train_ppo` (see the module docstring)."""

    def __init__(self, cfg: PPOConfig, start, sources: list[rw.RewardSource], actor, reference, critic,
                 value_head, engine):
        self.cfg, self.start, self.sources, self.engine = cfg, start, sources, engine
        self.acc = start.accelerator
        self.device = self.acc.device
        self.actor, self.reference, self.critic, self.value_head = actor, reference, critic, value_head
        self.modules = PPOModules(actor, critic, value_head)
        self.prompts = start.datasets.train
        self.world, self.rank = col.world_size(), col.rank()
        if cfg.rollout_batch_size % self.world:
            raise ConfigError(f"rollout_batch_size: {cfg.rollout_batch_size} prompts cannot be split evenly over "
                              f"{self.world} training processes (use a multiple of {self.world})")
        self.rows = cfg.rollout_batch_size * cfg.generation.num_samples // self.world  # this process's rows
        self.minibatch = cfg.per_device_batch_size * cfg.gradient_accumulation_steps
        self.plan_len = len(batch_plan([p.length for p in self.prompts], cfg.rollout_batch_size, cfg.seed, 0,
                                       False, drop_last=True))
        if self.plan_len == 0:
            raise DataError(f"{len(self.prompts)} usable prompts are fewer than rollout_batch_size "
                            f"({cfg.rollout_batch_size})", cfg.train_file)
        self.total = cfg.max_steps or self.plan_len * cfg.num_epochs
        updates = self.total * cfg.ppo_epochs * (self.rows // self.minibatch)
        warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * updates)
        if value_head is not None:
            self.opt = make_optimizer(torch.nn.ModuleDict({"actor": actor, "value_head": value_head}), cfg)
        else:
            self.opt = make_optimizer(actor, cfg)
        self.sched = make_scheduler(self.opt, cfg.lr_scheduler, warmup, updates)
        self.copt = self.csched = None
        if critic is not None:
            ccfg = cfg.model_copy(update={"learning_rate": cfg.critic_learning_rate or cfg.learning_rate})
            self.copt = make_optimizer(critic, ccfg)
            self.csched = make_scheduler(self.copt, cfg.lr_scheduler, warmup, updates)
        self.kl_coef = cfg.kl_coef
        self.state = start.run.new_state(start.tokenizer)  # this run's identity (selfalign.train.outdir)
        self.root = Path(cfg.output_dir) / "checkpoints"

    # -------------------------------------------------------------------------------- checkpoints
    def _groups(self) -> tuple[StateGroup, StateGroup]:
        return StateGroup(actor=self.opt, critic=self.copt), StateGroup(actor=self.sched, critic=self.csched)

    def save(self) -> Path | None:
        """Checkpoint (the main process writes, the others wait); the folder on the main process."""
        opts, scheds = self._groups()
        self.state.extra["kl_coef"] = self.kl_coef
        path = None
        if self.rank == 0:
            path = ckpt.save_checkpoint(self.root, self.modules, opts, scheds, self.state,
                                        keep=self.cfg.save_total_limit)
        col.barrier()
        return path

    def maybe_resume(self) -> None:
        found = self.start.run.resume_from  # chosen (or refused) by start_training from cfg.resume
        if found is None:
            return
        opts, scheds = self._groups()
        self.state = ckpt.load_checkpoint(found, self.modules, opts, scheds, tokenizer=self.start.tokenizer)
        self.kl_coef = float(self.state.extra.get("kl_coef", self.cfg.kl_coef))
        console.print(f"[green]resuming[/] ppo from {found} (step {self.state.step}/{self.total})")

    # -------------------------------------------------------------------------------------- steps
    def next_prompts(self) -> list:
        """This process's share (every ``world``-th) of the next step's prompts; advances the data
        position (epoch, batches in the epoch)."""
        st = self.state
        plan = batch_plan([p.length for p in self.prompts], self.cfg.rollout_batch_size, self.cfg.seed, st.epoch,
                          False, drop_last=True)
        batch = [self.prompts[i] for i in plan[st.batches_in_epoch]][self.rank::self.world]
        st.batches_in_epoch += 1
        if st.batches_in_epoch == len(plan):
            st.epoch, st.batches_in_epoch = st.epoch + 1, 0
        return batch

    def rollout(self, prompts: list, key: int, num_samples: int | None = None) -> Rollout:
        params = self.cfg.generation.sampling(key)
        if num_samples is not None:
            params = params.model_copy(update={"num_samples": num_samples})
        with self.acc.autocast():
            return generate_rollout(self.engine, prompts, params, key, self.start.pad_id, self.device)

    def score(self, ro: Rollout) -> dict[str, Any]:
        """Raw and shaped sequence scores ([N] tensors on the device) and per-source means."""
        total, parts = rw.score_all(self.sources, ro.records, ro.texts)
        cfg, dev = self.cfg, self.device
        raw = torch.tensor(total, dtype=torch.float32, device=dev)
        finished = torch.tensor(ro.finished, dtype=torch.bool, device=dev)
        lengths = ro.tensors["response_mask"].sum(-1)
        bonus = None
        if (lb := cfg.length_ratio_bonus) is not None:
            m = torch.tensor([lb.multiplier(r.get("meta")) for r in ro.records], dtype=torch.float32, device=dev)
            bonus = rl.length_ratio_bonus(lengths, m, cfg.generation.max_new_tokens, lb.cap, lb.scale)
        shaped = rl.shape_scores(raw, finished, lengths, scale=cfg.reward_scale, clip=cfg.reward_clip,
                                 no_stop_penalty=cfg.no_stop_penalty, no_stop_score=cfg.no_stop_score,
                                 length_bonus=cfg.length_bonus, ratio_bonus=bonus)
        means = {f"reward_{k}_mean": sum(v) / len(v) for k, v in parts.items()}
        return {"raw": raw, "score": shaped, "finished": finished, "lengths": lengths, "means": means}

    @torch.no_grad()
    def experience(self, ro: Rollout, sc: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Old/ref log-probs, values, KL, token rewards, advantages, returns (stored in ``ro.tensors``)."""
        cfg, temp = self.cfg, self.cfg.generation.temperature
        self.actor.eval()
        try:
            def actor_fn(b):
                logp, _, v = policy_logps(self.actor, b, temp, value_head=self.value_head)
                return (logp,) if v is None else (logp, v)
            outs = forward_rollout(ro, cfg.per_device_batch_size, actor_fn, self.acc.autocast)
            ref = forward_rollout(ro, cfg.per_device_batch_size, lambda b: (self.reference(b),), self.acc.autocast)[0]
            if self.critic is not None:
                self.critic.eval()
                values = forward_rollout(ro, cfg.per_device_batch_size, lambda b: (self.critic(b),),
                                         self.acc.autocast)[0]
            else:
                values = outs[1]
        finally:
            self.actor.train()
            if self.critic is not None:
                self.critic.train()
        old, mask = outs[0], ro.tensors["response_mask"]
        kl = rl.get_rl_loss("kl", cfg.kl_estimator)(old, ref, mask)
        rewards, non_score = rl.token_rewards(sc["score"], kl, mask, self.kl_coef)
        adv, returns = rl.gae(rewards, values, mask, cfg.gamma, cfg.lam)
        raw_adv = adv
        if cfg.whiten_advantages:  # over the whole rollout batch, also when it is split over processes
            adv = rl.masked_whiten(adv, mask) if self.world == 1 else col.masked_whiten(adv, mask)
        ro.tensors.update(old_logp=old, values=values, advantages=adv, returns=returns)
        return {"kl": kl.sum(-1), "non_score": non_score.sum(-1), "shaped": rewards.sum(-1), "values": values,
                "returns": returns, "raw_adv": raw_adv}

    def update(self, ro: Rollout, step: int) -> dict[str, torch.Tensor]:
        """``ppo_epochs`` passes over minibatches; returns summed metrics (``_tokens`` = their count)."""
        cfg = self.cfg
        lengths = (ro.tensors["attention_mask"].sum(-1)).tolist()
        sums: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        for e in range(cfg.ppo_epochs):
            plan = batch_plan(lengths, self.minibatch, cfg.seed, step * cfg.ppo_epochs + e, cfg.group_by_length)
            for rows in plan:
                self.minibatch_step(ro, sorted(rows), sums, step)
        return sums

    def minibatch_step(self, ro: Rollout, rows: list[int], sums: dict, step: int) -> None:
        cfg = self.cfg
        keys = ("old_logp", "values", "advantages", "returns")
        n_tok = col.all_sum(ro.tensors["response_mask"][rows].sum().to(torch.float32)).clamp(min=1)
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        for s in range(0, len(rows), cfg.per_device_batch_size):
            b = ro.batch(rows[s:s + cfg.per_device_batch_size], keys)
            mask = b["response_mask"]
            with self.acc.autocast():
                logp, ent, v = policy_logps(self.actor, b, cfg.generation.temperature, with_entropy=True,
                                            value_head=self.value_head, entropy_grad=cfg.entropy_coef > 0)
            pg, clipped, akl = rl.clipped_policy_loss(logp, b["old_logp"], b["advantages"], mask, cfg.cliprange)
            loss = pg.sum() - cfg.entropy_coef * ent.sum()
            if v is not None:
                vl, vclip = rl.clipped_value_loss(v, b["values"], b["returns"], mask, cfg.cliprange_value)
                loss = loss + cfg.vf_coef * vl.sum()
            loss = loss / n_tok
            finite &= torch.isfinite(loss)
            loss.backward()
            if self.critic is not None:
                with self.acc.autocast():
                    v = self.critic(b)
                vl, vclip = rl.clipped_value_loss(v, b["values"], b["returns"], mask, cfg.cliprange_value)
                closs = cfg.vf_coef * vl.sum() / n_tok
                finite &= torch.isfinite(closs)
                closs.backward()
            for k, val in (("pg_loss", pg), ("pg_clipfrac", clipped), ("approx_kl", akl), ("entropy", ent),
                           ("vf_loss", vl), ("vf_clipfrac", vclip)):
                sums[k] += val.detach().sum().float()
            sums["_tokens"] += mask.sum().float()
            sums["_seq_tokens"] += b["attention_mask"].sum().float()
        if not col.all_true(finite):  # never step on a non-finite loss: the last checkpoint stays good
            last = ckpt.latest_checkpoint(self.root)
            kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written (save_steps)"
            raise SelfalignError(f"step {step}: the PPO loss is not finite (NaN or inf); training stopped before "
                                 f"the optimizer step, {kept}")
        sums["grad_norm"] += self._step(self.opt, self.sched, self.modules if self.value_head is not None
                                        else self.actor)
        sums["_updates"] += 1
        if self.critic is not None:
            sums["critic_grad_norm"] += self._step(self.copt, self.csched, self.critic)

    def _step(self, opt, sched, module) -> torch.Tensor:
        params = [p for p in module.parameters() if p.requires_grad]
        col.sum_gradients(params)  # each process's loss is over the global token count: Σ = the batch gradient
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm or float("inf"))
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return norm.detach().float().to(self.device)

    # ------------------------------------------------------------------------------------- metrics
    def step_metrics(self, ro: Rollout, sc: dict, ex: dict, sums: dict, secs: dict, lrs: tuple) -> dict[str, float]:
        mask = ro.tensors["response_mask"]
        tok, upd = sums.pop("_tokens").clamp(min=1), sums.pop("_updates").clamp(min=1)
        seq_tok = sums.pop("_seq_tokens")
        vals = {
            "reward_raw_mean": sc["raw"].mean(), "reward_raw_std": sc["raw"].std(unbiased=False),
            "score_mean": sc["score"].mean(), "score_std": sc["score"].std(unbiased=False),
            "reward_shaped_mean": ex["shaped"].mean(), "reward_shaped_std": ex["shaped"].std(unbiased=False),
            "non_score_reward": ex["non_score"].mean(), "kl": ex["kl"].mean(),
            "explained_variance": rl.explained_variance(ex["values"], ex["returns"], mask),
            "value_mean": rl.masked_mean(ex["values"], mask), "return_mean": rl.masked_mean(ex["returns"], mask),
            "advantage_mean": rl.masked_mean(ex["raw_adv"], mask), "response_length": sc["lengths"].float().mean(),
            "no_stop_frac": (~sc["finished"]).float().mean(),
        }
        for k in ("grad_norm", "critic_grad_norm"):
            if k in sums:
                vals[k] = sums.pop(k) / upd
        vals.update({k: v / tok for k, v in sums.items()})
        # means over the processes' shares (the same numbers on every process, e.g. for the adaptive KL)
        out = dict(zip(vals, col.all_mean(torch.stack([v.float().reshape(()) for v in vals.values()])).tolist()))
        if sc["means"]:
            means = col.all_mean(torch.tensor(list(sc["means"].values()), dtype=torch.float64, device=self.device))
            out.update(zip(sc["means"], means.tolist()))
        out.update(kl_coef=self.kl_coef, lr=lrs[0], **secs)
        out["rollout_tokens_per_s"] = ro.extra["generated_tokens"] / max(secs["rollout_seconds"], 1e-9)
        out["train_tokens_per_s"] = float(seq_tok) / max(secs["update_seconds"], 1e-9)
        if lrs[1] is not None:
            out["critic_lr"] = lrs[1]
        return out

    def evaluate(self) -> dict[str, float]:
        """Mean rewards of one sampled response per validation prompt (same seed at every evaluation);
        with several processes each scores every ``world``-th prompt and the sums are combined."""
        evals = self.start.datasets.eval
        if not evals:
            return {}
        mine = evals[self.rank::self.world] if len(evals) >= self.world else evals
        ro = self.rollout(mine, -1, num_samples=1)
        sc = self.score(ro)
        sums = {"eval_reward_raw_mean": sc["raw"].sum(), "eval_score_mean": sc["score"].sum(),
                "eval_response_length": sc["lengths"].float().sum(),
                "eval_no_stop_frac": (~sc["finished"]).float().sum()}
        sums.update({f"eval_{k}": torch.tensor(v * len(mine), device=self.device) for k, v in sc["means"].items()})
        n = len(evals) if len(evals) >= self.world else len(evals) * self.world
        total = col.all_sum(torch.stack([v.float().reshape(()) for v in sums.values()])) / n
        return dict(zip(sums, total.tolist()))

    # ------------------------------------------------------------------------------------------ run
    def one_step(self) -> dict[str, float]:
        step = self.state.step + 1
        t0 = time.perf_counter()
        ro = self.rollout(self.next_prompts(), step)
        t1 = time.perf_counter()
        sc = self.score(ro)
        t2 = time.perf_counter()
        ex = self.experience(ro, sc)
        t3 = time.perf_counter()
        lrs = (self.sched.get_last_lr()[0], self.csched.get_last_lr()[0] if self.csched is not None else None)
        sums = self.update(ro, step)
        t4 = time.perf_counter()
        secs = {"rollout_seconds": ro.seconds, "score_seconds": t2 - t1, "experience_seconds": t3 - t2,
                "update_seconds": t4 - t3, "step_seconds": t4 - t0}
        metrics = self.step_metrics(ro, sc, ex, sums, secs, lrs)
        if self.cfg.kl_target is not None:
            self.kl_coef = rl.adaptive_kl_coef(self.kl_coef, metrics["kl"], self.cfg.kl_target, ro.size * self.world,
                                               self.cfg.kl_horizon)
        self.state.step = step
        self.state.tokens += int(col.all_sum(ro.tensors["attention_mask"].sum()))
        return metrics

    def run(self, metrics: MetricsLogger) -> dict[str, float]:
        cfg = self.cfg
        self.maybe_resume()
        last: dict[str, float] = dict(self.state.extra.get("last_metrics", {}))
        window: dict[str, float] = defaultdict(float)
        n_window, t_start = 0, time.perf_counter()
        main = self.rank == 0
        if self.state.step == 0 and self.start.datasets.eval:  # the starting point, for comparison
            ev = self.evaluate()
            if main:
                metrics.log(0, **ev)
        self.actor.train()
        with Bar("ppo", total=self.total, unit="step") as bar:
            bar.advance(self.state.step)
            while self.state.step < self.total:
                m = self.one_step()
                for k, v in m.items():
                    window[k] += v
                n_window += 1
                bar.advance(1, info=f"reward={m['reward_raw_mean']:.3f} kl={m['kl']:.3f}")
                done = self.state.step >= self.total
                logged = self.state.step % cfg.logging_steps == 0 or done
                if logged:
                    last = {k: v / n_window for k, v in window.items()}
                    last["epoch"] = self.state.step / self.plan_len
                    if main:
                        metrics.log(self.state.step, echo=True if done and metrics.echo_every else None, **last)
                    window, n_window = defaultdict(float), 0
                if cfg.eval_steps and self.state.step % cfg.eval_steps == 0 and not done:
                    ev = self.evaluate()
                    if main:
                        metrics.log(self.state.step, **ev)
                saved = bool(cfg.save_steps) and (self.state.step % cfg.save_steps == 0 or done)
                if saved:
                    self.state.extra["last_metrics"] = last
                path = self.save() if saved else None
                if logged or saved:
                    hooks.report(self.state.step, last, path)  # on every process (Ray Train)
        final = dict(last)
        ev = self.evaluate()
        if ev and main:
            metrics.log(self.state.step, **ev)
        final.update(ev, steps=self.state.step, train_seconds=time.perf_counter() - t_start)
        return final


# ------------------------------------------------------------------------------------------- entry
def ppo_help() -> str:
    """One paragraph for ``selfalign train ppo --help``: reward sources, critic and KL options."""
    kls = ", ".join(rl.REGISTRY["kl"])
    return ("rewards: a list of {type: reward_model, model: FOLDER} (a `selfalign train rm` output), "
            "{type: function, function: verifiable | module:fn | file.py:fn} or {type: judge, judge: {...}}, each "
            "with a weight (summed). critic: auto | reward_model | actor | shared. kl_estimator: "
            f"{kls}; kl_target turns on the adaptive KL controller. Formulas and sources: "
            "selfalign.train.rl_losses; example config: examples/ppo.yaml.")


def train_ppo(cfg: PPOConfig, metrics: MetricsLogger | None = None) -> dict[str, Any]:
    """Train a policy with PPO and write it to ``output_dir/model``; returns the final metrics.

    With ``cfg.resume`` a run continues from the newest checkpoint in ``output_dir/checkpoints``.
    """
    from selfalign.generation.hf import HFEngine
    from selfalign.models.load import load_causal_lm

    applicable = rw.applicability(cfg.rewards)
    start = start_training(cfg, "ppo", metrics, lambda path, tok: load_prompt_examples(path, tok, cfg, applicable))
    acc = start.accelerator
    for name, st in start.datasets.stats.items():
        if getattr(st, "unscorable", 0):
            console.print(f"[dim]ppo[/] {name} data: {st.unscorable} prompts dropped (no reward source can score "
                          "them: no meta.checks / meta.answer for a verifiable reward without none_score)")
    sources, _ = rw.build_rewards(cfg.rewards, device=acc.device, dtype=cfg.dtype)
    rw.probe_rewards(sources, start.datasets.train[0].record, cfg.train_file)

    actor = load_causal_lm(cfg.model, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code)
    actor = prepare_for_training(actor, cfg, "causal_lm")
    actor.to(acc.device)
    reference = build_reference(cfg, actor, acc.device)
    critic, value_head = build_critic(cfg, actor, acc.device)
    engine = HFEngine(actor, start.tokenizer, batch_size=cfg.generation.batch_size)
    trainer = PPOTrainer(cfg, start, sources, actor, reference, critic, value_head, engine)
    final = trainer.run(start.metrics)
    return finish(cfg, actor, start.tokenizer, final, start.counts, acc)
