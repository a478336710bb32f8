"""Plain-torch reference for every kernel: the spec that tests check against, and the fallback backend.

Each ``<op>_ref(..., *, upcast=True)`` computes in float64 when ``upcast`` (the ground truth) and in the
input dtype otherwise (a same-precision baseline). Outputs are float32. Memory is bounded by chunking over
documents; the maths is written for clarity, not speed.

Semantics (the same in every backend):
- MaxSim: ``score(q, d) = reduce_i max_j <q_i, d_j>``, ``reduce`` = "sum" (ColBERT/PyLate) or "mean"
  (BGE-M3, over the query's tokens). Padding never exists in the ragged layout, so it never wins a max.
- An empty document (0 tokens) scores ``-inf``: it ranks below every non-empty document, never NaN.
- An empty query (0 tokens) scores ``0`` against every document (an empty sum; the mean is defined as 0).
- Sparse: ``score(q, d) = sum over shared ids of w_q * w_d``; an empty row scores 0.
"""

from __future__ import annotations

import torch

from .containers import MultiVectors, SparseVectors

__all__ = ["maxsim_ref", "sparse_dot_ref", "dense_dot_ref", "topk_ref"]

_BUDGET_BYTES = 256 << 20  # the reference's own working-set cap per chunk


def _dt(x: torch.Tensor, upcast: bool) -> torch.dtype:
    return torch.float64 if upcast else x.dtype


def _maxsim_block(qp: torch.Tensor, qm: torch.Tensor, dp: torch.Tensor, dm: torch.Tensor, paired: bool,
                  reduce: str) -> torch.Tensor:
    """qp [Q, Lq, D], qm [Q, Lq]; dp [N, Ld, D], dm [N, Ld]. paired: Q == N, score row n with doc n."""
    eq = "nid,njd->nij" if paired else "qid,njd->qnij"
    if dp.shape[1] == 0:  # every doc is empty: each query token's max is over nothing
        shape = (dp.shape[0],) if paired else (qp.shape[0], dp.shape[0])
        mx = torch.full(shape + (qp.shape[1],), float("-inf"), dtype=qp.dtype, device=qp.device)
    else:
        sim = torch.einsum(eq, qp, dp)
        dmask = dm[:, None, :] if paired else dm[None, :, None, :]
        mx = sim.masked_fill(~dmask, float("-inf")).amax(-1)
    qmask = qm if paired else qm[:, None, :]
    mx = torch.where(qmask, mx, torch.zeros((), dtype=mx.dtype, device=mx.device))
    score = mx.sum(-1)
    if reduce == "mean":
        qlen = qm.sum(-1).clamp(min=1).to(score.dtype)
        score = score / (qlen if paired else qlen[:, None])
    return score


def maxsim_ref(q: MultiVectors, d: MultiVectors, *, query_index: torch.Tensor | None = None, reduce: str = "sum",
               upcast: bool = True, doc_index: torch.Tensor | None = None, max_memory: int | None = None
               ) -> torch.Tensor:
    """MaxSim late-interaction scores.

    Args:
        q: B queries, [Lq_b, D] each.
        d: N documents, [Ld_n, D] each, same dtype as q (or narrower: documents are cast to the compute dtype
            chunk by chunk).
        query_index: None for all-pairs; else [N] int64, document n is scored against query query_index[n]
            (paired / rerank mode).
        reduce: "sum" or "mean" over query tokens.
        upcast: compute in float64 (ground truth) or in the input dtype.
        doc_index: paired only: [N] int64 ids into d; pair n is query query_index[n] against document
            d[doc_index[n]] (the same as ``maxsim_ref(q, d.select(doc_index), query_index=...)``). N is then
            len(doc_index), and query_index has N entries.
        max_memory: bytes of working set (similarity blocks, padded document chunks) per chunk, besides the
            output; default 256 MiB.
    Returns:
        [B, N] float32 (all-pairs) or [N] float32 (paired).

    >>> q = MultiVectors.from_list([torch.tensor([[1.0, 0.0], [0.0, 1.0]])])
    >>> d = MultiVectors.from_list([torch.tensor([[0.5, 0.5], [1.0, -1.0]]), torch.zeros(0, 2)])
    >>> maxsim_ref(q, d)   # token 1: max(0.5, 1.0); token 2: max(0.5, -1.0); the empty doc: -inf
    tensor([[1.5000,   -inf]])
    >>> maxsim_ref(q, d, query_index=torch.tensor([0, 0, 0]), doc_index=torch.tensor([1, 0, 0]))
    tensor([  -inf, 1.5000, 1.5000])
    """
    dt = _dt(q.values, upcast)
    qp, qm = q.to(dtype=dt).to_padded()
    paired = query_index is not None
    if doc_index is not None and not paired:
        raise ValueError("maxsim_ref: doc_index needs query_index (paired mode), got query_index=None")
    n = len(d) if doc_index is None else doc_index.numel()
    out_shape = (n,) if paired else (len(q), n)
    out = torch.empty(out_shape, dtype=torch.float32, device=q.device)
    if n == 0 or len(q) == 0:
        return out
    # one chunk's working set stays within the budget: chunks of documents, and in all-pairs mode chunks of queries
    # too (one query x one document at the least). Per (query, document) pair: the [Lq, Ld] similarities and their
    # masked copy, then [Lq] maxima, the masked maxima and the sum; paired pairs also gather their query's rows.
    # Per document: its padded rows in the compute dtype and the gathered rows they come from.
    budget = _BUDGET_BYTES if max_memory is None else max(1, int(max_memory))
    lq, ld, es = qp.shape[1], d.max_length, qp.element_size()
    pair_bytes = es * (2 * lq * ld + 3 * lq + 1 + (lq * q.dim if paired else 0))
    doc_bytes = ld * d.dim * (es + d.values.element_size()) + ld
    q_step = 1 if paired else max(1, min(len(q), budget // (pair_bytes + doc_bytes)))
    step = max(1, budget // (pair_bytes * q_step + doc_bytes))
    for s in range(0, n, step):
        idx = torch.arange(s, min(n, s + step), device=d.device) if doc_index is None else doc_index[s: s + step]
        dp, dm = d.select(idx).to(dtype=dt).to_padded()
        if paired:
            qi = query_index[s: s + step]
            out[s: s + step] = _maxsim_block(qp[qi], qm[qi], dp, dm, True, reduce).float()
        else:
            for b in range(0, len(q), q_step):
                out[b: b + q_step, s: s + step] = _maxsim_block(qp[b: b + q_step], qm[b: b + q_step], dp, dm, False,
                                                                reduce).float()
    return out


def _dense_over(x: SparseVectors, cols: torch.Tensor) -> torch.Tensor:
    """[N, len(cols)] fp32: ``x.to_dense()[:, cols]`` without building the [N, V] matrix (cols sorted, unique)."""
    n = len(x)
    out = torch.zeros(n, cols.numel(), dtype=torch.float32, device=x.device)
    if cols.numel() == 0 or x.nnz == 0:
        return out
    ids = x.indices.to(torch.int64)
    pos = torch.searchsorted(cols, ids).clamp(max=cols.numel() - 1)
    hit = cols[pos] == ids
    rows = torch.repeat_interleave(torch.arange(n, device=x.device), x.lengths)
    out[rows[hit], pos[hit]] = x.values.float()[hit]
    return out


def sparse_dot_ref(q: SparseVectors, d: SparseVectors, *, query_index: torch.Tensor | None = None,
                   upcast: bool = True) -> torch.Tensor:
    """Learned-sparse dot products: sum over shared ids of w_q * w_d.

    Args:
        q: B sparse rows; d: N sparse rows (same vocab_size).
        query_index: None for all-pairs; else [N] int64 (paired mode, as in ``maxsim_ref``).
    Returns:
        [B, N] float32 or [N] float32.

    >>> q = SparseVectors.from_dicts([{1: 2.0, 5: 1.0}], vocab_size=8)
    >>> d = SparseVectors.from_dicts([{1: 0.5, 3: 9.0}, {5: 4.0, 1: 1.0}, {}], vocab_size=8)
    >>> sparse_dot_ref(q, d)
    tensor([[1., 6., 0.]])
    """
    dt = torch.float64 if upcast else q.values.dtype
    paired = query_index is not None
    n = len(d)
    out = torch.empty((n,) if paired else (len(q), n), dtype=torch.float32, device=q.device)
    if n == 0 or len(q) == 0:
        return out
    # only ids some query has can score: dense columns over those ids, not over the whole vocabulary
    # (V may be 2**31 - 1; a [B, V] matrix would not fit)
    cols = torch.unique(q.indices.to(torch.int64))
    qd = _dense_over(q, cols).to(dt)
    if not upcast:  # same-precision baseline: round the weights to the input dtype first
        qd = _dense_over(q, cols).to(q.values.dtype)
    step = max(1, _BUDGET_BYTES // (max(1, cols.numel()) * 8 * (2 if paired else 1)))
    for s in range(0, n, step):
        dd = _dense_over(d.select(torch.arange(s, min(n, s + step), device=d.device)), cols).to(qd.dtype)
        if paired:
            out[s: s + step] = (qd[query_index[s: s + step]] * dd).sum(-1).float()
        else:
            out[:, s: s + step] = (qd @ dd.T).float()
    return out


def dense_dot_ref(q: torch.Tensor, d: torch.Tensor, *, query_index: torch.Tensor | None = None,
                  upcast: bool = True) -> torch.Tensor:
    """Dense dot products. q [B, D], d [N, D] -> [B, N] float32 (or [N] when paired).

    >>> dense_dot_ref(torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0], [0.0, -1.0]]))
    tensor([[11., -2.]])
    """
    dt = _dt(q, upcast)
    qq, dd = q.to(dt), d.to(dt)
    if query_index is not None:
        return (qq[query_index] * dd).sum(-1).float()
    return (qq @ dd.T).float()


def topk_ref(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row top-k of [B, N] scores -> (values [B, min(k, N)] float32, indices [B, min(k, N)] int64),
    best first; ties go to the lower index.

    >>> topk_ref(torch.tensor([[0.1, 0.9, 0.5, 0.9]]), 2)
    (tensor([[0.9000, 0.9000]]), tensor([[1, 3]]))
    """
    kk = min(int(k), scores.shape[-1])
    # a stable descending sort gives the tie rule exactly; the reference may afford a full sort
    vals, idx = torch.sort(scores, dim=-1, descending=True, stable=True)
    return vals[..., :kk].float(), idx[..., :kk]
