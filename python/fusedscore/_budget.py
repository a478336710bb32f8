"""Memory budgets: the one meaning of ``max_memory``, and the one chunker that keeps work inside it.

``max_memory`` is the number of bytes of working memory a call may hold at once, beyond its inputs and its
result. What counts is what the call builds to do its work: the block of ``[B, block]`` scores of a blocked
top-k (``maxsim_topk``, ``retrieve``, ``FDEIndex.search``), the similarity blocks of the reference backend, the
encoded candidates of a chunk of (query, candidates) pairs (``Reranker``, ``score_embeddings``,
``compute_score``), the per-token buffers of FDE encoding. Work that does not fit is cut by ``greedy_chunks``
into consecutive chunks, each the longest run of items whose costs add up to at most the budget; a chunk holds
at least one item, so an item larger than the budget runs alone (it cannot be split).

``None`` means the default for the device the work runs on, ``_dispatch.default_max_memory(device)``: a
quarter of the free memory of a GPU; on CPU min(2 GiB, RAM / 8). A given value must be a positive int (bytes):
a string ("1GB"), a float, 0 or a negative number is an error, never a silent default.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch

from . import _check as C
from ._dispatch import default_max_memory

__all__ = ["greedy_chunks", "resolve", "default_max_memory"]


def resolve(max_memory: Any, where: str, device: torch.device | str | None = None) -> int:
    """The budget in bytes: ``max_memory`` checked, or the device's default when it is None."""
    checked = C.check_max_memory(max_memory, where)
    return checked if checked is not None else default_max_memory(device)


def greedy_chunks(cost: Callable[[int], float], n: int, budget: float) -> Iterator[tuple[int, int]]:
    """Consecutive ``[start, end)`` ranges over items ``0..n-1``, each the longest whose costs fit ``budget``
    (at least one item each).

    ``cost(i)`` is asked lazily, once per item, when the chunk that may hold item ``i`` is cut: a caller that
    learns a better cost estimate from one chunk (the Reranker learns bytes per character) has it applied to
    the next.
    """
    start = 0
    while start < n:
        end, acc = start + 1, cost(start)
        while end < n:
            c = cost(end)
            if acc + c > budget:
                break
            acc += c
            end += 1
        yield start, end
        start = end
