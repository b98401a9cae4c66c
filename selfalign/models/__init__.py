"""Model loading: registry names, local HF folders, hub ids, the embedded GGUF; heads; tiny test models."""

from selfalign.models.load import (
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)

__all__ = ["load_causal_lm", "load_tokenizer", "resolve_model"]
