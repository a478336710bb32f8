"""GPU kernels (Triton), shipped as ``fusedscore.kernels``; imported lazily by ``fusedscore._dispatch``.

- ``maxsim(q, d, query_index, reduce, doc_index=None)``: ragged MultiVectors, all-pairs [B, N] or paired
  [N] (``doc_index``: paired pairs read their documents from the corpus in place).
- ``maxsim_padded(q, q_mask, d, d_mask, *, d_lengths, reduce, query_index)``: padded batches, no packing.
- ``maxsim_topk(q, d, k, reduce)``: all-pairs top-k over a large corpus, block by block.
- ``sparse_dot(q, d, query_index)`` (+ ``build_tables`` to reuse query hash tables).
- ``dense_dot(q, d, query_index=None)``: cuBLAS through torch, fp32 out.
- ``warmup()``: compile the common buckets ahead of time (a no-op without CUDA).

Every kernel also runs on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do that).
"""

from __future__ import annotations

import torch

from .dense import dense_dot
from .maxsim import maxsim, maxsim_padded, maxsim_topk
from .sparse_dot import build_tables, sparse_dot

__all__ = ["build_tables", "dense_dot", "maxsim", "maxsim_padded", "maxsim_topk", "sparse_dot", "warmup"]


class _Ragged:
    """The attributes the kernels read from a MultiVectors (kept here so warmup needs no container checks)."""

    def __init__(self, values: torch.Tensor, lengths: list[int]):
        off = torch.zeros(len(lengths) + 1, dtype=torch.int64)
        off[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0)
        self.values, self.offsets = values, off.to(values.device)
        self.max_length = max(lengths)

    def __len__(self) -> int:
        return self.offsets.numel() - 1


class _Sparse:
    def __init__(self, ids: torch.Tensor, values: torch.Tensor, lengths: list[int]):
        off = torch.zeros(len(lengths) + 1, dtype=torch.int64)
        off[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0)
        self.indices, self.values, self.offsets = ids, values, off.to(values.device)

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]


def warmup(dtypes: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16), dims: tuple[int, ...] = (128,),
           query_lengths: tuple[int, ...] = (32,),
           sparse_dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float16),
           device: str | torch.device = "cuda") -> int:
    """Compile the common kernel buckets ahead of time, so the first real call pays no compile.

    Each (dtype, D, query-length bucket) is launched once on tiny inputs in every mode: paired (documents
    in order, and by ``doc_index`` as the corpus rerank does) and all-pairs (1, 2 and 4+ queries: each its own
    query-group size), sum and mean; sparse in paired and all-pairs per value dtype.
    Compiled binaries go to Triton's on-disk cache, so later processes start warm too.

    Returns:
        The number of launches made; 0 (a no-op) when CUDA is unavailable.
    """
    if not torch.cuda.is_available():
        return 0
    launches = compile_buckets(device, dtypes, dims, query_lengths, sparse_dtypes)
    torch.cuda.synchronize()
    return launches


def compile_buckets(device: str | torch.device, dtypes: tuple[torch.dtype, ...], dims: tuple[int, ...],
                    query_lengths: tuple[int, ...], sparse_dtypes: tuple[torch.dtype, ...]) -> int:
    """The launches behind ``warmup`` on any device (tests run them on CPU under the interpreter)."""
    launches = 0
    for dt in dtypes:
        for dim in dims:
            for lq in query_lengths:
                # all-pairs groups min(128 // LQ, next_pow2(B)) queries per program (a constexpr): 1 and 2
                # queries (a single-query rerank of a corpus) compile their own binaries, 4+ share one
                qs = {nq: _Ragged(torch.zeros(nq * lq, dim, dtype=dt, device=device), [lq] * nq) for nq in (1, 2, 4)}
                d = _Ragged(torch.zeros(3, dim, dtype=dt, device=device), [1, 2, 0])
                qi = torch.tensor([0, 1, 3], dtype=torch.int64, device=device)
                di = torch.tensor([2, 0, 0], dtype=torch.int64, device=device)
                for reduce in ("sum", "mean"):
                    for q in qs.values():
                        maxsim(q, d, None, reduce)
                    maxsim(qs[4], d, qi, reduce)
                    maxsim(qs[4], d, qi, reduce, di)
                    launches += len(qs) + 2
    for dt in sparse_dtypes:
        ids = torch.arange(4, dtype=torch.int32, device=device)
        q = _Sparse(ids, torch.ones(4, dtype=dt, device=device), [2, 2])
        d = _Sparse(ids, torch.ones(4, dtype=dt, device=device), [1, 3])
        sparse_dot(q, d, None)
        sparse_dot(q, d, torch.tensor([0, 1], dtype=torch.int64, device=device))
        launches += 2
    return launches
