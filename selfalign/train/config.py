"""Config schemas of the trainers: a shared :class:`TrainConfig` and one subclass per objective.

Every field can be set in YAML or as a ``key=value`` override on the command line
(``selfalign train dpo model=smollm2-135m train_file=pairs.jsonl output_dir=runs/x beta=0.1``).

Batch arithmetic: one optimizer step consumes a *global batch* of
``per_device_batch_size × gradient_accumulation_steps × processes`` examples (packed rows for SFT
with ``packing``). The loss of a step is normalised by the size of the whole global batch (number
of pairs for DPO/RM, number of completion tokens for SFT), so ``8 × 1`` and ``1 × 8`` give the same
gradient.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from selfalign.config import StrictModel
from selfalign.distributed.config import DistributedConfig


class LoraConfig(StrictModel):
    """LoRA adapters via peft (Hu et al. 2021, arXiv 2106.09685)."""

    r: int = Field(16, ge=1, description="Rank of the low-rank update.")
    alpha: float = Field(32, gt=0, description="Scaling: the update is multiplied by alpha / r.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] | str = Field(
        "all-linear", description="Module names to adapt, or 'all-linear' (every linear layer but the head).")


class TrainConfig(StrictModel):
    """Settings shared by every trainer (model, data, optimisation, precision, checkpoints)."""

    # model + data
    model: str = Field(..., description="Registry name, local HF folder or hub id of the starting model.")
    train_file: str = Field(..., description="Training records (any format selfalign.data reads).")
    validation_file: str | None = None
    validation_split: float = Field(0.0, ge=0, lt=1,
                                    description="Fraction of train_file held out for validation "
                                    "(used when validation_file is not given).")
    prompt_key: str | None = Field(None, description="Key of the prompt if not prompt/instruction/question.")
    output_dir: str = Field(..., description="Where the model (output_dir/model), checkpoints "
                            "(output_dir/checkpoints) and metrics.jsonl go.")
    metrics_file: str | None = Field(None, description="Default: output_dir/metrics.jsonl (cleared by overwrite); "
                                     "a file given here is only appended to (it may be shared).")
    trust_remote_code: bool = False
    # optimisation
    learning_rate: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="AdamW decay; never applied to biases and norms.")
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    fused_optimizer: bool = Field(True, description="AdamW as one fused kernel over all weights (CPU and "
                                                    "GPU); False = PyTorch's per-tensor implementation.")
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    warmup_steps: int = Field(0, ge=0, description="Overrides warmup_ratio when > 0.")
    num_epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps "
                                  "(also the length of the LR schedule).")
    per_device_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(1.0, description="Clip the global gradient norm; null/0 = no clipping.")
    group_by_length: bool = Field(True, description="Batch examples of similar length (less padding).")
    # precision / memory
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Dtype of the weights.")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="Autocast (accelerate).")
    gradient_checkpointing: bool = False
    lora: LoraConfig | None = Field(None, description="Train LoRA adapters instead of all weights.")
    save_adapter_only: bool = Field(False, description="With LoRA: save the adapter, not a merged model.")
    disable_dropout: bool = Field(True, description="Set the model's dropout to 0 (LoRA dropout is kept).")
    cpu: bool = Field(False, description="Train on CPU even if an accelerator is present.")
    # sequences
    max_length: int = Field(1024, ge=2, description="Longest prompt + completion, in tokens.")
    max_prompt_length: int | None = Field(None, ge=1, description="Keep only the last N prompt tokens.")
    chat_template: bool = Field(True, description="Wrap prompt/completion in the tokenizer's chat template; "
                                "false = they are plain, already rendered text (tokenized as is).")
    truncation: Literal["left", "right", "drop"] = Field(
        "left", description="Over max_length: left = cut the prompt's start (then the completion's "
        "end); right = cut the completion's end (then the prompt's start); drop = skip the example.")
    # bookkeeping
    seed: int = 42
    logging_steps: int = Field(1, ge=1)
    eval_steps: int = Field(0, ge=0, description="Validate every N steps (0 = only at the end).")
    save_steps: int = Field(50, ge=0, description="Checkpoint every N steps and at the end (0 = no "
                            "checkpoints); each is resumable and holds a model/ (LoRA: adapter) folder.")
    save_total_limit: int = Field(2, ge=1, description="Keep the last K checkpoints of this run.")
    resume: bool = Field(False, description="Continue from the newest checkpoint in output_dir/checkpoints "
                         "written with the same settings (refused when they differ).")
    overwrite: bool = Field(False, description="Delete an earlier run's outputs in output_dir first (checkpoints, "
                            "model, metrics.jsonl, ...); without resume or overwrite such a folder is refused.")
    report_to: list[Literal["tensorboard", "wandb", "trackio", "none"]] = Field(
        default_factory=lambda: ["none"], description="Experiment trackers (via accelerate) that receive every "
        "logged scalar, as metrics.jsonl does; logs under output_dir/trackers.")
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig, description="Where training runs: one process (backend: none), "
        "or num_workers Ray Train workers (backend: ray) with resources_per_worker each; see "
        "selfalign.distributed.config.")
    num_threads: int | None = Field(None, ge=1, description="CPU threads of torch while training "
                                    "(torch.set_num_threads; a recipe stage restores the previous count "
                                    "after it); null = leave unchanged.")

    @field_validator("max_grad_norm")
    @classmethod
    def _no_clip(cls, v: float | None) -> float | None:
        return None if v is not None and v <= 0 else v

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_tracker(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("report_to")
    @classmethod
    def _none_alone(cls, v: list[str]) -> list[str]:
        if "none" in v and len(v) > 1:
            raise ValueError("'none' cannot be combined with trackers")
        return list(dict.fromkeys(v)) or ["none"]


class SFTConfig(TrainConfig):
    """Supervised fine-tuning: NLL of the completion tokens (prompt tokens are not trained)."""

    completion_key: str | None = Field(None, description="Key of the completion if not completion/output/response/answer.")
    packing: bool = Field(False, description="Pack several examples per row (attention kept within each).")


class RMConfig(TrainConfig):
    """Reward model: scalar head on the last real token, Bradley-Terry loss."""

    learning_rate: float = Field(1e-5, gt=0)
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"
    margin: float | Literal["judge"] | None = Field(
        None, description="Bradley-Terry margin m in −log σ(r_c − r_r − m): a number, 'judge' "
        "(judge_scale × (chosen_score − rejected_score) from the data) or null.")
    judge_scale: float = 1.0


class DPOConfig(TrainConfig):
    """Direct preference optimisation and its variants (see :func:`selfalign.train.losses.dpo_loss`)."""

    learning_rate: float = Field(5e-7, gt=0)
    chosen_key: str = "chosen"
    rejected_key: str = "rejected"
    ref_model: str | None = Field(None, description="Reference model spec (default: the starting model).")
    beta: float = Field(0.1, gt=0, description="KL strength β (Self-Rewarding: ref_policy_kl_penalty).")
    loss_type: str = Field("sigmoid", description="DPO loss: a name registered in selfalign.train.losses "
                           "(`selfalign train dpo --help` lists them); 'dpo' is accepted as NeMo-Aligner's "
                           "name for 'sigmoid' (an alias, stored as 'sigmoid').")

    @field_validator("loss_type")
    @classmethod
    def _registered_loss(cls, v: str) -> str:
        from selfalign.train.losses import get_dpo_loss  # the one list of names (imports torch)

        return get_dpo_loss(v).name  # ValueError naming the closest valid name

    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    judge_scale: float = Field(1.0, description="g = judge_scale × (chosen_score − rejected_score).")
    sft_loss_weight: float = Field(0.0, ge=0, description="Adds this × mean NLL of the chosen tokens.")
    average_log_prob: bool = Field(False, description="Average (not sum) token log-probs per sequence.")
    precompute_ref_logps: bool = Field(False, description="Compute reference log-probs once before training "
                                       "(cached in output_dir) and keep no reference model in memory.")


# ------------------------------------------------------------------------------------------------ PPO
class ReviewerConfig(StrictModel):
    """The principle-following reward model's prompt at RL time (SALMON stage 3, arXiv 2310.05910): the
    ``intervention`` principles first, then ``num_sampled`` principles of ``principles`` drawn without
    replacement ∝ weight (reasoning-tagged ones × ``reasoning_boost`` for prompts whose
    ``meta[kind_key]`` is ``reasoning``), as bullets in the reviewer template. Principles are drawn
    per prompt from ``(seed, prompt id)``, so a resumed run scores exactly as an uninterrupted one."""

    principles: str = Field("rl", description="Shipped principle list or a JSON/YAML file.")
    intervention: str | None = Field("intervention", description="Listed first; null = none.")
    num_sampled: int = Field(3, ge=0, description="Principles sampled per prompt.")
    reasoning_boost: float = Field(2.0, gt=0, description="Weight factor of reasoning-tagged principles "
                                   "on reasoning prompts.")
    kind_key: str = Field("kind", description="Prompt meta key saying general or reasoning.")
    template: str = Field("reviewer", description="Shipped template name or a file.")
    seed: int = 0


class RewardSourceConfig(StrictModel):
    """One reward source of PPO; a response's raw reward is ``Σ weight · score`` over the sources.

    * ``type: reward_model`` — ``model``: a folder written by ``selfalign train rm`` (or any HF
      sequence-classification model with one label); scores ``(prompt, response)`` in the chat format.
    * ``type: function`` — ``function``: ``verifiable`` (the fraction of the prompt's ``meta.checks`` /
      ``meta.answer`` passed; ``mode: all`` → 1 if all pass else 0) or ``"module:fn"`` /
      ``"path/file.py:fn"``, called as ``fn(prompt, response, meta) -> float``.
    * ``type: judge`` — ``judge``: any pointwise ``selfalign judge`` config (``{type: rubric, ...}``).
    """

    type: Literal["reward_model", "function", "judge"]
    weight: float = Field(1.0, description="Multiplies this source's score in the sum.")
    model: str | None = Field(None, description="reward_model: the reward-model folder.")
    function: str | None = Field(None, description="function: 'verifiable' or 'module:fn' / 'file.py:fn'.")
    mode: Literal["fraction", "all"] = Field("fraction", description="function=verifiable: score mode.")
    judge: dict | None = Field(None, description="judge: a judge config mapping with 'type'.")
    batch_size: int = Field(8, ge=1, description="reward_model: sequences per scoring forward.")
    max_length: int | None = Field(None, ge=1, description="reward_model: keep the last N tokens of long inputs.")
    reviewer: ReviewerConfig | None = Field(
        None, description="reward_model: score the SALMON reviewer prompt (principles listed) instead of the "
        "chat (prompt, response); the model must be trained on that prompt (chat_template: false).")
    none_score: float | None = Field(
        None, description="Score used when the source gives none (a judge parse failure, a prompt without "
        "checks for 'verifiable'); null = prompts a verifiable reward cannot score are dropped when the "
        "data is read, and any other missing score stops training with an error.")

    @field_validator("model", "function", "judge", "reviewer")
    @classmethod
    def _only_for_its_type(cls, v, info: ValidationInfo):
        owner = {"model": "reward_model", "function": "function", "judge": "judge",
                 "reviewer": "reward_model"}[info.field_name]
        kind = info.data.get("type")
        if v is not None and kind is not None and kind != owner:
            raise ValueError(f"only for type {owner} (this source is type {kind})")
        return v

    def required_key(self) -> str:
        """The key a source of this type must set."""
        return {"reward_model": "model", "function": "function", "judge": "judge"}[self.type]

    @property
    def label(self) -> str:
        """Short name of the source for metrics (``reward_model``, ``verifiable``, ``rubric``...)."""
        if self.type == "function":
            return str(self.function).rpartition(":")[2] or "function"
        if self.type == "judge":
            return str((self.judge or {}).get("name") or (self.judge or {}).get("type") or "judge")
        return "reward_model"


class LengthRatioBonus(StrictModel):
    """SALMON's length bonus (arXiv 2310.05910, stage 3): ``scale · min(m · L / L_max, cap)`` added to the
    raw reward, with ``L`` the response tokens, ``L_max`` = ``generation.max_new_tokens`` and ``m`` the
    multiplier of the prompt's kind (``meta[kind_key]``; unknown kinds use ``general``)."""

    multipliers: dict[str, float] = Field(default_factory=lambda: {"general": 1.0, "reasoning": -0.4})
    kind_key: str = "kind"
    cap: float = Field(0.8, description="Upper clamp of m · L / L_max.")
    scale: float = 5.0

    @field_validator("multipliers")
    @classmethod
    def _has_general(cls, v: dict[str, float]) -> dict[str, float]:
        if "general" not in v:
            raise ValueError("needs a 'general' multiplier (used for prompts of unknown kind)")
        return v

    def multiplier(self, meta: dict | None) -> float:
        """``m`` of the prompt's kind: ``meta[kind_key]`` when it names a multiplier, else the kind the
        reviewer's principle sampler sees (:func:`selfalign.principles.prompt_kind`: reasoning / general),
        so the length bonus and the principle draw never disagree about a prompt."""
        from selfalign.principles import prompt_kind

        kind = (meta or {}).get(self.kind_key)
        if isinstance(kind, str) and kind in self.multipliers:
            return self.multipliers[kind]
        return self.multipliers.get(prompt_kind(meta, self.kind_key), self.multipliers["general"])


class RolloutConfig(StrictModel):
    """How PPO samples its rollouts (the batched generation engine's sampling settings)."""

    num_samples: int = Field(1, ge=1, description="Responses per prompt in each rollout.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature; log-probs are computed from "
                               "logits / temperature, so the ratio matches the sampling distribution.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="1 = off (log-probs ignore top-p truncation).")
    top_k: int = Field(0, ge=0, description="0 = off (log-probs ignore top-k truncation).")
    max_new_tokens: int = Field(64, ge=1)
    stop: list[str] = Field(default_factory=list, description="Stop strings: end a response like EOS.")
    seed: int = Field(0, description="Rollout seed: sample k of prompt id at PPO step s is drawn from "
                      "hash(seed, s, id, k), so rollouts do not depend on batching and replay on resume.")
    batch_size: int = Field(64, ge=1, description="Sequences per generation batch.")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, v):
        return ([v] if v else []) if isinstance(v, str) else v

    def sampling(self, step: int):
        """:class:`~selfalign.generation.sampling.SamplingParams` for PPO step ``step``."""
        from selfalign.generation.sampling import SamplingParams

        return SamplingParams(num_samples=self.num_samples, temperature=self.temperature, top_p=self.top_p,
                              top_k=self.top_k, max_new_tokens=self.max_new_tokens, stop=list(self.stop),
                              seed=self.seed * 1_000_003 + step)


class PPOConfig(TrainConfig):
    """RLHF with PPO (Ouyang et al. 2022, arXiv 2203.02155; Ziegler et al. 2019, arXiv 1909.08593).

    Each *step*: sample ``rollout_batch_size`` prompts × ``generation.num_samples`` responses, score
    them (``rewards``), add the per-token KL penalty, compute GAE, then ``ppo_epochs`` passes over
    minibatches of ``per_device_batch_size × gradient_accumulation_steps`` responses (one optimizer
    update each). ``max_steps``/``num_epochs`` count steps/passes over the prompts; ``warmup_steps`` and the
    LR schedule count optimizer updates. ``train_file``/``validation_file`` hold prompts (``id``,
    ``prompt``, optional ``meta``); ``max_length`` bounds prompt + response (prompts keep their last
    ``max_length − max_new_tokens`` tokens; ``truncation: drop`` drops longer prompts instead);
    ``group_by_length`` sorts each PPO epoch's responses by length before cutting minibatches.
    """

    learning_rate: float = Field(1e-6, gt=0, description="Actor learning rate.")
    per_device_batch_size: int = Field(4, ge=1, description="Responses per forward (micro-batch).")
    group_by_length: bool = Field(False, description="Minibatches of similar lengths (else random).")
    rewards: list[RewardSourceConfig] = Field(..., min_length=1, description="Reward sources, summed.")
    generation: RolloutConfig = Field(default_factory=RolloutConfig)
    rollout_batch_size: int = Field(8, ge=1, description="Prompts per PPO step.")
    ppo_epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    ref_model: str | None = Field(None, description="Reference model (default: the starting model; with "
                                  "LoRA the actor with its adapters off).")
    kl_coef: float = Field(0.05, ge=0, description="β of the per-token KL penalty −β·kl_t (initial value "
                           "when kl_target is set).")
    kl_estimator: Literal["k1", "k2", "k3", "salmon"] = Field(
        "k1", description="Per-token KL estimate (see selfalign.train.rl_losses); salmon = max(k1, 0).")
    kl_target: float | None = Field(None, gt=0, description="Adaptive KL: steer β so the KL per response "
                                    "approaches this (Ziegler et al. 2019); null = fixed β.")
    kl_horizon: int = Field(10000, ge=1, description="Adaptive KL horizon (in responses).")
    gamma: float = Field(1.0, ge=0, le=1, description="Discount γ of GAE.")
    lam: float = Field(0.95, ge=0, le=1, description="λ of GAE (SALMON: γ = λ = 1).")
    cliprange: float = Field(0.2, gt=0, description="ε of the clipped policy loss.")
    cliprange_value: float | None = Field(0.2, gt=0, description="ε_v of the clipped value loss (null = no clip).")
    vf_coef: float = Field(0.1, ge=0, description="Weight of the value loss.")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus: subtracts this × mean entropy.")
    whiten_advantages: bool = Field(True, description="Normalise advantages over each rollout batch.")
    reward_scale: float = Field(1.0, description="Multiplies the raw reward.")
    reward_clip: float | None = Field(None, gt=0, description="Clip the scaled reward to [−c, c].")
    no_stop_penalty: float = Field(0.0, ge=0, description="Subtracted from the score of a response that "
                                   "ran out of max_new_tokens without a stop token.")
    no_stop_score: float | None = Field(None, description="Replaces the score of such responses (AlpacaFarm/"
                                        "SALMON penalty_reward_value); null = keep it.")
    length_bonus: float = Field(0.0, description="Added to the score per response token (negative: penalty).")
    length_ratio_bonus: LengthRatioBonus | None = Field(
        None, description="SALMON's length bonus scale·min(m·L/L_max, cap), m by prompt kind; null = off.")
    critic: Literal["auto", "reward_model", "actor", "shared"] = Field(
        "auto", description="Value model: reward_model = the first reward model's backbone + a new value "
        "head; actor = the starting model's backbone + a new head; shared = a value head on the actor itself "
        "(one backbone, one optimizer: least memory); auto = reward_model if there is one, else actor.")
    critic_learning_rate: float | None = Field(None, gt=0, description="Critic LR (default: learning_rate).")
    critic_lora: LoraConfig | None = Field(None, description="LoRA adapters on the critic's backbone.")

    @field_validator("rewards")
    @classmethod
    def _complete_sources(cls, v: list[RewardSourceConfig]) -> list[RewardSourceConfig]:
        for i, src in enumerate(v):
            if getattr(src, src.required_key()) is None:
                raise ValueError(f"rewards.{i}: a source of type {src.type} needs the key {src.required_key()!r}")
        return v

    @field_validator("chat_template")
    @classmethod
    def _prompts_use_template(cls, v: bool) -> bool:
        if not v:
            raise ValueError("ppo renders its prompts with the chat template; chat_template: false is not "
                             "supported here (give plain-text prompts to a model without a template)")
        return v

    @field_validator("mixed_precision")
    @classmethod
    def _no_fp16(cls, v: str) -> str:
        if v == "fp16":
            raise ValueError("ppo supports no (fp32) or bf16; fp16 needs loss scaling, which ppo does not do")
        return v

    @field_validator("rollout_batch_size")
    @classmethod
    def _whole_minibatches(cls, v: int, info: ValidationInfo) -> int:
        gen, bs, acc = (info.data.get(k) for k in ("generation", "per_device_batch_size",
                                                   "gradient_accumulation_steps"))
        if gen is not None and bs and acc and (v * gen.num_samples) % (bs * acc):
            raise ValueError(f"rollout_batch_size × generation.num_samples = {v * gen.num_samples} responses "
                             f"must split into whole minibatches of per_device_batch_size × "
                             f"gradient_accumulation_steps = {bs * acc}")
        ml = info.data.get("max_length")
        if gen is not None and ml is not None and ml <= gen.max_new_tokens:
            raise ValueError(f"max_length ({ml}) must exceed generation.max_new_tokens ({gen.max_new_tokens}) "
                             "to leave room for the prompt")
        return v

    @field_validator("no_stop_score")
    @classmethod
    def _one_no_stop_rule(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("no_stop_penalty"):
            raise ValueError("set no_stop_penalty (subtract) or no_stop_score (replace), not both")
        return v

    @field_validator("critic")
    @classmethod
    def _critic_source(cls, v: str, info: ValidationInfo) -> str:
        rewards = info.data.get("rewards") or []
        if v == "reward_model" and not any(r.type == "reward_model" for r in rewards):
            raise ValueError("'reward_model' needs a rewards entry of type reward_model")
        return v

    @field_validator("critic_learning_rate", "critic_lora")
    @classmethod
    def _not_for_shared(cls, v, info: ValidationInfo):
        if v is not None and info.data.get("critic") == "shared":
            raise ValueError("a shared critic is trained with the actor (learning_rate, lora); unset this")
        return v

    def critic_source(self) -> str:
        """``reward_model``, ``actor`` or ``shared`` (``auto`` resolved)."""
        if self.critic != "auto":
            return self.critic
        return "reward_model" if any(r.type == "reward_model" for r in self.rewards) else "actor"
