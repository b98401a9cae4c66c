"""Tiny randomly initialised models with the real SmolLM2 tokenizer, for fast tests.

``tiny_model_dir(path)`` writes a Llama-architecture causal LM (2 layers, hidden 64) plus the real
SmolLM2 tokenizer and chat template into ``path`` — a normal HF folder, so tests go through the same
loading code as real models. ``tiny_seq_cls_dir`` writes the sequence-classification variant.
"""

from __future__ import annotations

from pathlib import Path

import torch

from selfalign.models.load import prepare_registry_model


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(prepare_registry_model("smollm2-135m"))


def tiny_llama_config(tokenizer, hidden_size: int = 64, num_layers: int = 2, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **kw)


def tiny_model_dir(path: str | Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a tiny random causal LM + the real SmolLM2 tokenizer to ``path`` and return it."""
    from transformers import LlamaForCausalLM

    path = Path(path)
    tok = _smollm2_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(tok, hidden_size, num_layers))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


def tiny_seq_cls_dir(path: str | Path, seed: int = 0, hidden_size: int = 64, num_layers: int = 2) -> Path:
    """Write a tiny random ``LlamaForSequenceClassification`` (1 label) + tokenizer to ``path``."""
    from transformers import LlamaForSequenceClassification

    path = Path(path)
    tok = _smollm2_tokenizer()
    torch.manual_seed(seed)
    cfg = tiny_llama_config(tok, hidden_size, num_layers, num_labels=1)
    model = LlamaForSequenceClassification(cfg)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path
