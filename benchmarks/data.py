"""Inputs shared by both frameworks: deterministic synthetic data and the benchmark model folders.

Synthetic data (seeded, no downloads): preference pairs and SFT examples of about 200 tokens per
sequence (system turn + question + answer, with the chat template), and prompts for generation.

Model folders (built once per work directory, from any model spec):

* ``lm``: the causal LM's weights (symlinked) with its tokenizer saved again with two changes so
  that TRL and selfalign train on exactly the same tokens:

  - the chat template does not write the newline that SmolLM2's template puts after the *last*
    assistant turn's ``<|im_end|>``. selfalign ends a completion at the end-of-turn token (what
    generation produces); TRL keeps whatever the template renders after it, which would add one
    trained token per completion and shift the reward model's read-out position;
  - the pad token is ``<|endoftext|>`` instead of ``<|im_end|>`` (= EOS): transformers'
    sequence-classification forward (used by TRL's RewardTrainer) reads the last token that is
    not the pad token, selfalign reads the last attended token; with a distinct pad token both
    read the final ``<|im_end|>``.

* ``rm``: the same backbone as a one-label sequence-classification model with a seeded head, so
  both reward trainers start from identical weights (a head created inside each framework would
  draw different random numbers).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

# SmolLM2's ChatML template, except that the last assistant turn ends at <|im_end|> (no newline).
BENCH_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' }}"
    "{% if not (loop.last and message['role'] == 'assistant') %}{{ '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
BENCH_PAD_TOKEN = "<|endoftext|>"
_TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                    "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json"}

_WORDS = (
    "the model learns from its own answers and improves every round when the judge is careful about "
    "quality length style facts reasoning steps clear examples small data large batch training loss "
    "reward policy reference preference chosen rejected prompt response token sequence memory speed "
    "time water river mountain city garden kitchen recipe bread coffee music piano history science "
    "energy planet ocean forest animal bird market price budget travel train station ticket weather "
    "morning evening summer winter health sleep exercise doctor student teacher lesson library book "
    "story letter email meeting project deadline team manager customer product design color shape "
    "number problem answer question method result reason because therefore however although while "
    "simple useful important different possible common careful quick slow bright quiet strong gentle "
    "explain describe compare suggest list write plan build check measure choose improve avoid keep"
).split()


def _sentence(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _text(rng: random.Random, n_words: int) -> str:
    out: list[str] = []
    count = 0
    while count < n_words:
        s = _sentence(rng, 6, 14)
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def _n(rng: random.Random, lo: int, hi: int, scale: float) -> int:
    return max(1, round(rng.randint(lo, hi) * scale))


def _question(rng: random.Random, i: int, scale: float = 1.0) -> str:
    verb = rng.choice(["Explain", "Describe", "Compare", "Suggest", "Summarise", "Plan"])
    return f"{verb} the following ({i}): {_text(rng, _n(rng, 22, 34, scale))} What should I do?"


def preference_records(n: int, seed: int = 0, scale: float = 1.0) -> list[dict]:
    """``n`` preference pairs ``{"id","prompt","chosen","rejected"}``: about 200 tokens per sequence
    (with SmolLM2's chat template) at ``scale`` 1; ``scale`` multiplies the word counts."""
    rng = random.Random(f"pairs:{seed}")
    return [{"id": f"p{i}", "prompt": _question(rng, i, scale), "chosen": _text(rng, _n(rng, 95, 125, scale)),
             "rejected": _text(rng, _n(rng, 85, 125, scale))} for i in range(n)]


def sft_records(n: int, seed: int = 0, scale: float = 1.0) -> list[dict]:
    """``n`` SFT examples ``{"id","prompt","completion"}`` (about 200 tokens per sequence at scale 1)."""
    rng = random.Random(f"sft:{seed}")
    return [{"id": f"s{i}", "prompt": _question(rng, i, scale), "completion": _text(rng, _n(rng, 90, 125, scale))}
            for i in range(n)]


def prompt_records(n: int, seed: int = 0, scale: float = 1.0) -> list[dict]:
    """``n`` generation prompts ``{"id","prompt"}``."""
    rng = random.Random(f"prompts:{seed}")
    return [{"id": f"q{i}", "prompt": _question(rng, i, scale)} for i in range(n)]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write ``records`` atomically (temp file renamed when complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    tmp.replace(path)
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------------------------------------------ model folders
_VERSION = b"2"  # bump when the folders' recipe changes


def _stamp(src: Path, kind: str) -> str:
    cfg = (src / "config.json").read_bytes() if (src / "config.json").is_file() else b""
    h = hashlib.sha256(_VERSION + cfg + str(src.resolve()).encode() + BENCH_CHAT_TEMPLATE.encode() + kind.encode())
    return h.hexdigest()[:16]


def _fresh(out: Path, stamp: str) -> bool:
    marker = out / ".bench-stamp"
    return marker.is_file() and marker.read_text().strip() == stamp


def _finish(tmp: Path, out: Path, stamp: str) -> Path:
    (tmp / ".bench-stamp").write_text(stamp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _bench_tokenizer(src: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    if BENCH_PAD_TOKEN in tok.get_vocab():
        tok.pad_token = BENCH_PAD_TOKEN
    elif tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.chat_template = BENCH_CHAT_TEMPLATE
    return tok


def prepare_lm(src: str | Path, out: Path) -> Path:
    """The benchmark copy of causal LM folder ``src`` (weights symlinked) in ``out``; cached."""
    src = Path(src)
    stamp = _stamp(src, "lm")
    if _fresh(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lm-", dir=out.parent))
    try:
        tok = _bench_tokenizer(src)
        for f in src.iterdir():
            if f.name in _TOKENIZER_FILES or f.name.startswith("."):
                continue
            if f.name in ("config.json", "generation_config.json"):
                data = json.loads(f.read_text())
                data["pad_token_id"] = tok.pad_token_id
                # a GGUF-converted folder keeps a stale GGUF quantization_config although its weights
                # are plain safetensors; transformers would then refuse to train or save the model
                if (data.get("quantization_config") or {}).get("quant_method") == "gguf":
                    del data["quantization_config"]
                (tmp / f.name).write_text(json.dumps(data, indent=2))
            else:
                os.symlink(f.resolve(), tmp / f.name)
        tok.save_pretrained(tmp)
        return _finish(tmp, out, stamp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def prepare_rm(lm: Path, out: Path, seed: int = 1234) -> Path:
    """A one-label sequence-classification model on ``lm``'s backbone with a seeded head; cached."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    stamp = _stamp(lm, f"rm{seed}")
    if _fresh(out, stamp):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rm-", dir=out.parent))
    try:
        hf_logging.set_verbosity_error()
        tok = AutoTokenizer.from_pretrained(lm)
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(lm, num_labels=1, dtype=torch.float32)
        model.config.pad_token_id = tok.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        del model
        return _finish(tmp, out, stamp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
