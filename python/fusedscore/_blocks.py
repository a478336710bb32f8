"""Top-k over a corpus scored block by block: the one running-merge loop that every blocked top-k uses, and the
tie rule of every top-k: equal scores rank the lower document index first (``reference.topk_ref``)."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from ._check import check_no_nan


def topk_lowest_first(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row top-``k`` of ``scores [R, C]`` (no NaN), best first, equal scores in ascending column order.

    torch.topk leaves both the order of equal values and which of them it keeps at the k-th place unspecified
    (it differs between calls on CPU), so the ranking would depend on the block size and the backend. Here the
    k-th place goes to the lowest tied columns, then the k results are ordered by (score desc, column asc).
    Returns:
        (values [R, k], indices [R, k] int64). k <= C.
    """
    v, i = torch.topk(scores, k, dim=1)
    if k == 0 or v.shape[0] == 0:
        return v, i
    kth = v[:, -1:]
    kept = (v == kth).sum(1)
    # rows in chunks of about an eighth of the scores, so the temporaries stay small beside the block they rank
    step = max(1, scores.numel() // (8 * scores.shape[1]))
    for s in range(0, scores.shape[0], step):
        rows = torch.arange(s, min(s + step, scores.shape[0]), device=scores.device)
        tie = scores[s: s + step] == kth[s: s + step]
        rows = rows[tie.sum(1) > kept[rows]]  # the k-th value ties with a column topk dropped: keep the lowest
        if not rows.numel():
            continue
        tie = tie[rows - s]
        first = tie & (tie.cumsum(1, dtype=torch.int32) <= kept[rows, None])
        sub = i[rows]
        # both sides list each row's kept ties in row-major order, so they line up one to one
        sub[v[rows] == kth[rows]] = torch.nonzero(first)[:, 1]
        i[rows] = sub
    i, pos = torch.sort(i, dim=1)
    v, pos = torch.sort(torch.gather(v, 1, pos), dim=1, descending=True, stable=True)
    return v, torch.gather(i, 1, pos)


def topk_over_blocks(score_block: Callable[[int, int], torch.Tensor], n: int, n_queries: int, k: int,
                     max_memory: int, device: torch.device | str = "cpu",
                     blocks: Callable[[Iterable[int]], Iterable[int]] | None = None, where: str = "topk"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Best ``k`` of ``n`` documents per query, holding at most one ``[n_queries, block]`` slab of scores: a
    block is dropped before the next one is scored. A NaN score raises ValueError (named by ``where``), never
    ranks (torch.topk puts NaN first). Equal scores rank the lower document index first, whatever the blocks.

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
        v, i = topk_lowest_first(sc, min(kk, sc.shape[1]))
        del sc  # else the next block is allocated while this one is still referenced: two blocks held at once
        best_v, best_i = torch.cat([best_v, v.to(best_v.device)], 1), torch.cat([best_i, i.to(best_i.device) + s], 1)
        if best_v.shape[1] > kk:
            # earlier blocks hold lower documents and each part is ordered (score desc, index asc), so among equal
            # scores the lower position is the lower document
            best_v, pos = topk_lowest_first(best_v, kk)
            best_i = torch.gather(best_i, 1, pos)
    return best_v, best_i
