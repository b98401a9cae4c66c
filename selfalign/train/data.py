"""Training data: records → token ids → length-grouped, seeded batches → padded tensors.

* Records are read with :func:`selfalign.data.formats.iter_normalized` (every format selfalign
  reads) and tokenised with the chat template (:func:`selfalign.data.chat.encode_prompt_completion`),
  prompt and completion kept apart so only completion tokens are trained.
* Over-long examples follow ``truncation`` (``left`` | ``right`` | ``drop``, see :func:`fit`);
  preference pairs whose chosen and rejected are identical are skipped. Both are counted in
  :class:`DataStats`.
* :func:`batch_plan` fixes the order of global batches for an epoch from ``(seed, epoch)`` only,
  so an interrupted run can skip exactly the batches it already consumed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from selfalign.data.chat import encode_prompt_completion
from selfalign.errors import DataError

__all__ = ["encode_prompt_completion"]  # re-exported: the tokenisation every trainer uses

# ---------------------------------------------------------------------------------------- examples
@dataclass
class PairExample:
    """One preference pair in token ids (prompts are usually the same list for both sides)."""

    chosen_prompt: list[int]
    chosen: list[int]
    rejected_prompt: list[int]
    rejected: list[int]
    margin: float | None = None  # judge score of chosen − rejected, when the data has scores
    ref_chosen: float | None = None  # precomputed reference log-probs (DPO)
    ref_rejected: float | None = None

    @property
    def length(self) -> int:
        return max(len(self.chosen_prompt) + len(self.chosen), len(self.rejected_prompt) + len(self.rejected))

    @property
    def num_tokens(self) -> int:
        """Real (non-pad) tokens of both sequences."""
        return len(self.chosen_prompt) + len(self.chosen) + len(self.rejected_prompt) + len(self.rejected)


@dataclass
class SeqExample:
    """One (possibly packed) training row: ids, completion mask and, when packed, position ids."""

    input_ids: list[int]
    loss_mask: list[int]
    position_ids: list[int] | None = None

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def num_target_tokens(self) -> int:
        """Tokens that carry loss after the causal shift (the first position predicts nothing)."""
        return sum(self.loss_mask[1:])


@dataclass
class DataStats:
    """What happened to the records of one file."""

    read: int = 0
    used: int = 0
    identical_pairs: int = 0
    truncated: int = 0
    dropped_too_long: int = 0

    def as_metrics(self, prefix: str) -> dict[str, int]:
        return {f"{prefix}_{k}": v for k, v in self.__dict__.items()}


@dataclass
class Datasets:
    train: list
    eval: list = field(default_factory=list)
    stats: dict[str, DataStats] = field(default_factory=dict)


def fit(prompt: list[int], completions: Sequence[list[int]], max_length: int,
        max_prompt_length: int | None, mode: str) -> tuple[list[int], list[list[int]], bool] | None:
    """Make ``prompt + c`` fit ``max_length`` for every completion ``c`` (a shared prompt).

    First the prompt keeps its last ``max_prompt_length`` tokens. Then, if the longest sequence is
    still too long: ``left`` cuts the prompt's start (keeping at least one prompt token), then the
    completions' ends; ``right`` cuts the completions' ends (keeping at least one token), then the
    prompt's start; ``drop`` returns None. Returns ``(prompt, completions, truncated)``.
    """
    truncated = False
    if max_prompt_length is not None and len(prompt) > max_prompt_length:
        prompt, truncated = prompt[-max_prompt_length:], True
    longest = max(len(c) for c in completions)
    if len(prompt) + longest <= max_length:
        return prompt, list(completions), truncated
    if mode == "drop":
        return None
    if mode == "left":
        keep = max(1, max_length - longest) if prompt else 0
        prompt = prompt[len(prompt) - keep:] if keep else []
        budget = max_length - len(prompt)
    elif mode == "right":
        budget = max(1, max_length - len(prompt))
        if len(prompt) + budget > max_length:
            prompt = prompt[len(prompt) + budget - max_length:]
    else:
        raise ValueError(f"truncation must be left, right or drop, not {mode!r}")
    return prompt, [c[:budget] for c in completions], True


def _score(rec: dict, key: str) -> float | None:
    v = rec.get(key)
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def load_pairs(path: str | Path, tokenizer, *, max_length: int, max_prompt_length: int | None,
               truncation: str, prompt_key: str | None = None, chosen_key: str = "chosen",
               rejected_key: str = "rejected", need_margin: bool = False, chat_template: bool = True
               ) -> tuple[list[PairExample], DataStats]:
    """Read and tokenise a preference file. ``need_margin``: every pair must carry both judge scores;
    ``chat_template=False``: prompt and answers are plain text (see ``encode_prompt_completion``)."""
    from selfalign.data.formats import iter_normalized

    stats = DataStats()
    out: list[PairExample] = []
    for line, rec, file in iter_normalized(path, "preference", prompt_key=prompt_key, chosen_key=chosen_key,
                                           rejected_key=rejected_key):
        stats.read += 1
        if rec["chosen"] == rec["rejected"]:
            stats.identical_pairs += 1
            continue
        cs, rs = _score(rec, "chosen_score"), _score(rec, "rejected_score")
        margin = cs - rs if cs is not None and rs is not None else None
        if need_margin and margin is None:
            key = "chosen_score" if cs is None else "rejected_score"
            raise DataError("this loss needs numeric chosen_score and rejected_score", file, line, key)
        pc, c = encode_prompt_completion(tokenizer, rec["prompt"], rec["chosen"], chat_template=chat_template)
        pr, r = encode_prompt_completion(tokenizer, rec["prompt"], rec["rejected"], chat_template=chat_template)
        if pc == pr:
            res = fit(pc, [c, r], max_length, max_prompt_length, truncation)
            if res is None:
                stats.dropped_too_long += 1
                continue
            pc, (c, r), cut = res
            pr = pc
        else:
            a = fit(pc, [c], max_length, max_prompt_length, truncation)
            b = fit(pr, [r], max_length, max_prompt_length, truncation)
            if a is None or b is None:
                stats.dropped_too_long += 1
                continue
            (pc, (c,), cut_a), (pr, (r,), cut_b) = a, b
            cut = cut_a or cut_b
        if pc + c == pr + r:  # identical once truncated
            stats.identical_pairs += 1
            continue
        stats.truncated += int(cut)
        out.append(PairExample(pc, c, pr, r, margin))
    stats.used = len(out)
    _check_nonempty(path, stats, "preference pairs")
    return out, stats


def load_sft(path: str | Path, tokenizer, *, max_length: int, max_prompt_length: int | None,
             truncation: str, prompt_key: str | None = None, completion_key: str | None = None,
             chat_template: bool = True) -> tuple[list[SeqExample], DataStats]:
    """Read and tokenise an SFT file (prompt/completion, messages, instruction/output...)."""
    from selfalign.data.formats import iter_normalized

    stats = DataStats()
    out: list[SeqExample] = []
    for _line, rec, _file in iter_normalized(path, "sft", prompt_key=prompt_key, completion_key=completion_key):
        stats.read += 1
        p, c = encode_prompt_completion(tokenizer, rec["prompt"], rec["completion"], chat_template=chat_template)
        res = fit(p, [c], max_length, max_prompt_length, truncation)
        if res is None:
            stats.dropped_too_long += 1
            continue
        p, (c,), cut = res
        stats.truncated += int(cut)
        out.append(SeqExample(p + c, [0] * len(p) + [1] * len(c)))
    stats.used = len(out)
    _check_nonempty(path, stats, "SFT examples")
    return out, stats


def _check_nonempty(path: str | Path, stats: DataStats, what: str) -> None:
    if stats.used:
        return
    if stats.read == 0:
        raise DataError(f"no records: the dataset is empty (expected {what})", path)
    raise DataError(f"no usable {what} among {stats.read} records ({stats.identical_pairs} with "
                    f"chosen == rejected, {stats.dropped_too_long} longer than max_length with "
                    "truncation=drop)", path)


def split_validation(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of ``examples`` (at least one, seeded) for validation."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


def load_datasets(cfg, load: Callable[[str], tuple[list, DataStats]]) -> Datasets:
    """Train and validation examples for ``cfg`` (``validation_file``, else a ``validation_split``)."""
    train, st = load(cfg.train_file)
    stats = {"train": st}
    if cfg.validation_file:
        ev, sv = load(cfg.validation_file)
        stats["validation"] = sv
    else:
        train, ev = split_validation(train, cfg.validation_split, cfg.seed)
    return Datasets(train, ev, stats)


# ----------------------------------------------------------------------------------------- packing
def pack(examples: list[SeqExample], max_length: int, seed: int) -> list[SeqExample]:
    """Greedily pack shuffled examples into rows of at most ``max_length`` tokens.

    Each row carries ``position_ids`` restarting at 0 for every example; the model is then run
    without an attention mask, and transformers builds a block-diagonal causal mask from the
    position ids, so packed examples do not attend to each other.
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    rows: list[SeqExample] = []
    ids: list[int] = []
    mask: list[int] = []
    pos: list[int] = []
    for i in order:
        e = examples[i]
        if ids and len(ids) + e.length > max_length:
            rows.append(SeqExample(ids, mask, pos))
            ids, mask, pos = [], [], []
        ids = ids + e.input_ids
        mask = mask + e.loss_mask
        pos = pos + list(range(e.length))
    if ids:
        rows.append(SeqExample(ids, mask, pos))
    return rows


# ---------------------------------------------------------------------------------------- batching
def batch_plan(lengths: Sequence[int], global_batch: int, seed: int, epoch: int, group_by_length: bool = True,
               drop_last: bool = False, group_factor: int = 32) -> list[list[int]]:
    """The global batches of one epoch, as lists of example indices; depends only on the arguments.

    Indices are shuffled with ``(seed, epoch)``; with ``group_by_length`` each run of
    ``global_batch × group_factor`` shuffled indices is sorted by length before being cut into
    batches, and the batches are shuffled again, so batches hold similar lengths in random order.
    """
    rng = random.Random(f"{seed}:{epoch}")
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if group_by_length:
        span = global_batch * group_factor
        idx = [i for s in range(0, len(idx), span)
               for i in sorted(idx[s:s + span], key=lambda j: -lengths[j])]
    batches = [idx[s:s + global_batch] for s in range(0, len(idx), global_batch)]
    if drop_last and batches and len(batches[-1]) < global_batch:
        batches.pop()
    if group_by_length:
        rng.shuffle(batches)
    return batches


def micro_batches(batch: list[int], lengths: Sequence[int], per_device: int, rank: int = 0,
                  world: int = 1) -> list[list[int]]:
    """This process's share of a global batch, sorted by length and cut into micro-batches."""
    ordered = sorted(batch, key=lambda j: (-lengths[j], j))
    mine = ordered[rank::world]
    return [mine[s:s + per_device] for s in range(0, len(mine), per_device)]


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long, device="cpu")
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long, device="cpu")
    return out


def collate_pairs(examples: list[PairExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Chosen rows then rejected rows, right-padded to one width (one forward for both).

    Returns ``input_ids``/``attention_mask``/``loss_mask`` [2n, T] (loss_mask = completion tokens),
    ``margin`` [n] (NaN where unknown) and, when precomputed, ``ref_logps`` [2n].
    """
    seqs = [e.chosen_prompt + e.chosen for e in examples] + [e.rejected_prompt + e.rejected for e in examples]
    masks = ([[0] * len(e.chosen_prompt) + [1] * len(e.chosen) for e in examples]
             + [[0] * len(e.rejected_prompt) + [1] * len(e.rejected) for e in examples])
    batch = {
        "input_ids": _pad(seqs, pad_id),
        "attention_mask": _pad([[1] * len(s) for s in seqs], 0),
        "loss_mask": _pad(masks, 0),
        "margin": torch.tensor([float("nan") if e.margin is None else e.margin for e in examples], device="cpu"),
    }
    if all(e.ref_chosen is not None for e in examples):
        batch["ref_logps"] = torch.tensor([e.ref_chosen for e in examples] + [e.ref_rejected for e in examples],
                                          dtype=torch.float32, device="cpu")
    return batch


def collate_seqs(examples: list[SeqExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``loss_mask`` and ``attention_mask`` — or, for packed rows,
    ``position_ids`` (padding forms its own segment) and no attention mask."""
    batch = {"input_ids": _pad([e.input_ids for e in examples], pad_id),
             "loss_mask": _pad([e.loss_mask for e in examples], 0)}
    if any(e.position_ids is not None for e in examples):
        width = batch["input_ids"].shape[1]
        pos = []
        for e in examples:
            p = e.position_ids if e.position_ids is not None else list(range(e.length))
            pos.append(p + list(range(width - len(p))))
        batch["position_ids"] = torch.tensor(pos, dtype=torch.long, device="cpu")
    else:
        batch["attention_mask"] = _pad([[1] * e.length for e in examples], 0)
    return batch
