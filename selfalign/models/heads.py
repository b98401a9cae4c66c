"""Reward model: a transformer backbone with a scalar head read at the last real (non-pad) token.

The model is stored as a standard transformers *sequence-classification* folder with one label
(e.g. ``LlamaForSequenceClassification``: backbone ``model.*`` + linear ``score``), so
``AutoModelForSequenceClassification.from_pretrained(folder)`` loads it anywhere. Starting from a
causal LM folder, the backbone weights are reused and the head is new; starting from a
sequence-classification folder (any HF reward model), it is used as it is.

Pooling: selfalign reads the head at the last position whose ``attention_mask`` is 1 (left or
right padding). transformers' own forward pools at the last token that is not ``pad_token_id``;
the two agree unless a sequence really ends with the pad token — which happens when the tokenizer
uses its end-of-turn token as pad (SmolLM2: ``<|im_end|>``) and the completion ends with it: then
transformers reads one token earlier. Load with :func:`load_reward_model` to get the rewards the
model was trained with. Models without a ``score`` head (BERT-style ``classifier`` + pooler) are
run through their own forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from selfalign.errors import ModelError
from selfalign.models.batching import padded_batches


def last_real_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``attention_mask`` [B, T] (left or right padding) → [B]."""
    T = attention_mask.shape[-1]
    return (T - 1) - attention_mask.flip(-1).long().argmax(-1)


class RewardModel(torch.nn.Module):
    """``forward(input_ids, attention_mask) -> rewards [B]`` (fp32) from an HF seq-cls model."""

    def __init__(self, hf_model: torch.nn.Module, tokenizer=None):
        super().__init__()
        self.hf = hf_model
        self.tokenizer = tokenizer

    # ---------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, spec: str | Path, dtype: str | torch.dtype | None = "float32",
                        trust_remote_code: bool = False, tokenizer=None) -> RewardModel:
        """Load a reward model, or start one from a causal LM (new head, initialised by transformers).

        ``spec`` is a model spec (registry name, folder, hub id) of a sequence-classification model
        with one label, a causal LM, or a peft adapter folder trained on one of those.
        """
        from transformers import AutoConfig, AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        from selfalign.models.load import load_tokenizer, resolve_model, torch_dtype

        hf_logging.set_verbosity_error()
        where = resolve_model(spec)
        dt = torch_dtype(dtype)
        if isinstance(where, Path) and (where / "adapter_config.json").is_file() and not (
                where / "config.json").is_file():
            import json

            from peft import PeftModel

            base = json.loads((where / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if not base:
                raise ModelError(f"{where}: adapter_config.json does not name its base model")
            hf = cls.from_pretrained(base, dtype=dt, trust_remote_code=trust_remote_code,
                                     tokenizer=tokenizer or load_tokenizer(where)).hf
            hf = PeftModel.from_pretrained(hf, where).merge_and_unload()
        else:
            try:
                config = AutoConfig.from_pretrained(where, trust_remote_code=trust_remote_code)
            except (OSError, ValueError) as e:
                raise ModelError(f"{spec}: cannot read the model config: {e}") from None
            archs = config.architectures or []
            is_cls = any(a.endswith("ForSequenceClassification") for a in archs)
            kw = {} if is_cls else {"num_labels": 1}
            try:
                hf = AutoModelForSequenceClassification.from_pretrained(
                    where, dtype=dt, trust_remote_code=trust_remote_code, **kw)
            except (OSError, ValueError) as e:
                raise ModelError(f"{spec}: cannot load as a reward model: {e}") from None
        if hf.config.num_labels != 1:
            raise ModelError(f"{spec}: a reward model needs one output, this one has {hf.config.num_labels} labels")
        if tokenizer is None:
            tokenizer = load_tokenizer(spec)
        if hf.config.pad_token_id is None:
            hf.config.pad_token_id = tokenizer.pad_token_id
        return cls(hf, tokenizer)

    def save_pretrained(self, path: str | Path, **kw) -> None:
        """Write a standard HF sequence-classification folder (+ the tokenizer when known)."""
        self.hf.save_pretrained(path, **kw)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path)

    @property
    def config(self):
        return self.hf.config

    # ---------------------------------------------------------------------------------- forward
    def _inner(self) -> torch.nn.Module:
        """The transformers model (inside a peft wrapper if there is one)."""
        get = getattr(self.hf, "get_base_model", None)
        return get() if callable(get) else self.hf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Rewards [B] (fp32) read at the last real token of each row."""
        inner = self._inner()
        backbone = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
        head = getattr(inner, "score", None)
        if backbone is None or head is None:
            out = self.hf(input_ids=input_ids, attention_mask=attention_mask)
            return out.logits[:, 0].float()
        out = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pooled = hidden[rows, last_real_index(attention_mask).to(hidden.device)]
        return head(pooled)[:, 0].float()

    # ---------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, items: Sequence[str] | Sequence[tuple], batch_size: int = 8,
              max_length: int | None = None, chat_template: bool = True) -> list[float]:
        """Rewards for ``items``: raw texts, or ``(prompt, response)`` pairs (chat template applied unless
        ``chat_template=False``: then they are plain text, encoded exactly as ``train rm`` with
        ``chat_template: false`` encodes them).

        Prompts/responses may be strings or message lists, as in preference records. Over-long
        inputs keep their last ``max_length`` tokens (the response end is what the head reads).
        """
        if self.tokenizer is None:
            raise ModelError("RewardModel.score needs a tokenizer (load with load_reward_model)")
        from selfalign.data.chat import encode_prompt_completion

        seqs: list[list[int]] = []
        for it in items:
            if isinstance(it, str):
                ids = self.tokenizer(it, add_special_tokens=True)["input_ids"]
            else:
                prompt, response = it
                p, c = encode_prompt_completion(self.tokenizer, prompt, response, chat_template=chat_template)
                ids = p + c
            if max_length is not None and len(ids) > max_length:
                ids = ids[-max_length:]
            seqs.append(ids)
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out: list[float] = [0.0] * len(seqs)
        try:
            for idx, ids, mask in padded_batches(seqs, batch_size, pad, left=False, longest_first=False):
                rewards = self(ids.to(device), mask.to(device)).tolist()
                for row, i in enumerate(idx):
                    out[i] = rewards[row]
        finally:
            self.train(was_training)
        return out


def load_reward_model(path: str | Path, dtype: str | torch.dtype | None = "float32",
                      device: str | torch.device | None = None, trust_remote_code: bool = False
                      ) -> RewardModel:
    """Load a trained reward model (a folder written by ``selfalign train rm``, or any HF one).

    Example: ``rm = load_reward_model("runs/rm/model"); rm.score([("Hi?", "Hello!")])``
    """
    rm = RewardModel.from_pretrained(path, dtype=dtype, trust_remote_code=trust_remote_code)
    rm.eval()
    if device is not None:
        rm.to(device)
    return rm
