"""Padded batches of token-id sequences: the one padding loop behind every batched forward pass
(next-token scoring, reward-model scoring, generation)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, left: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` [len(seqs), longest] (long) with ``seqs`` padded by ``pad_id``
    on the left (``left=True``, for reading or generating at the last position) or the right."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device="cpu")
    mask = torch.zeros((len(seqs), width), dtype=torch.long, device="cpu")
    for row, s in enumerate(seqs):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        ids[row, cols] = torch.tensor(list(s), dtype=torch.long, device="cpu")
        mask[row, cols] = 1
    return ids, mask


def padded_batches(seqs: Sequence[Sequence[int]], batch_size: int, pad_id: int, *, left: bool = True,
                   longest_first: bool = True) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, input_ids, attention_mask)`` batches of at most ``batch_size`` sequences.

    Sequences are sorted by length (longest first by default: memory runs out on the first batch
    if at all) so a batch wastes little padding; ``indices`` are the positions in ``seqs`` of the
    batch's rows, to put results back in input order. Tensors are on the CPU.
    """
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]) if longest_first else len(seqs[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        ids, mask = pad_batch([seqs[i] for i in idx], pad_id, left=left)
        yield idx, ids, mask
