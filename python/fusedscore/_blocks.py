"""Top-k over a corpus scored block by block: the one running-merge loop that every blocked top-k uses."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from ._check import check_no_nan


def topk_over_blocks(score_block: Callable[[int, int], torch.Tensor], n: int, n_queries: int, k: int,
                     max_memory: int, device: torch.device | str = "cpu",
                     blocks: Callable[[Iterable[int]], Iterable[int]] | None = None, where: str = "topk"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` of ``n`` documents per query, holding at most one ``[n_queries, block]`` slab of scores: a
    block is dropped before the next one is scored. A NaN score raises ValueError (named by ``where``), never
    ranks (torch.topk puts NaN first).

    Args:
        score_block: ``score_block(s, e) -> [n_queries, e - s]`` float scores of documents s..e-1.
        n: number of documents.  n_queries: rows of every block.  k: results per query (clipped to n).
        max_memory: bytes of fp32 scores per block (the block holds at least k documents).
        blocks: optional wrapper of the block-start iterable (e.g. a progress bar).
    Returns:
        (values [n_queries, min(k, n)] float32, indices [n_queries, min(k, n)] int64), best first.
    """
    kk = min(k, n)
    best_v = torch.empty(n_queries, 0, dtype=torch.float32, device=device)
    best_i = torch.empty(n_queries, 0, dtype=torch.int64, device=device)
    if kk == 0 or n_queries == 0:
        return best_v.new_empty(n_queries, kk), best_i.new_empty(n_queries, kk)
    block = max(kk, max_memory // (4 * n_queries))
    starts = range(0, n, block)
    for s in (blocks(starts) if blocks is not None else starts):
        sc = check_no_nan(score_block(s, min(n, s + block)).float(), where, doc_offset=s)
        v, i = torch.topk(sc, min(kk, sc.shape[1]), dim=1)
        del sc  # else the next block is allocated while this one is still referenced: two blocks held at once
        best_v, best_i = torch.cat([best_v, v.to(best_v.device)], 1), torch.cat([best_i, i.to(best_i.device) + s], 1)
        if best_v.shape[1] > kk:
            best_v, pos = torch.topk(best_v, kk, dim=1)
            best_i = torch.gather(best_i, 1, pos)
    return best_v, best_i
