"""CPU thread count for one step, restored afterwards.

``torch.set_num_threads`` is process-wide: a generation stage that sets it would otherwise leave it
set for the judge and trainer that run after it in the same recipe process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: leave torch's setting alone)."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
