"""Torch's intra-op thread count, set for a block of code and restored after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count.

    Tiny tensors run faster on one thread (extra threads only add synchronisation, which grows sharply on a
    loaded machine), and a floating-point result can depend on the thread count: anything cached or compared
    across processes should be computed with a fixed count.

    Raises:
        ValueError: If ``n`` is not a positive int.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"torch_threads needs a positive int, got {n!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
