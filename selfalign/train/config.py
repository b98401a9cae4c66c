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

from pydantic import Field, field_validator

from selfalign.config import StrictModel


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
    metrics_file: str | None = Field(None, description="Default: output_dir/metrics.jsonl.")
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
    truncation: Literal["left", "right", "drop"] = Field(
        "left", description="Over max_length: left = cut the prompt's start (then the completion's "
        "end); right = cut the completion's end (then the prompt's start); drop = skip the example.")
    # bookkeeping
    seed: int = 42
    logging_steps: int = Field(1, ge=1)
    eval_steps: int = Field(0, ge=0, description="Validate every N steps (0 = only at the end).")
    save_steps: int = Field(0, ge=0, description="Checkpoint every N steps (0 = no checkpoints).")
    save_total_limit: int = Field(2, ge=1, description="Keep the last K checkpoints.")
    resume: bool = Field(False, description="Continue from the last checkpoint in output_dir/checkpoints.")

    @field_validator("max_grad_norm")
    @classmethod
    def _no_clip(cls, v: float | None) -> float | None:
        return None if v is not None and v <= 0 else v


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
    loss_type: Literal["sigmoid", "ipo", "hinge", "scale", "rpo_sq", "rpo_fwd_kl", "rpo_bwd_kl"] = "sigmoid"
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)
    judge_scale: float = Field(1.0, description="g = judge_scale × (chosen_score − rejected_score).")
    sft_loss_weight: float = Field(0.0, ge=0, description="Adds this × mean NLL of the chosen tokens.")
    average_log_prob: bool = Field(False, description="Average (not sum) token log-probs per sequence.")
    precompute_ref_logps: bool = Field(False, description="Compute reference log-probs once before training "
                                       "(cached in output_dir) and keep no reference model in memory.")
