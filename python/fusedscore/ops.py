"""The public functional API: validate once, pick a backend (``_dispatch``), call it.

Glossary: ``B`` queries, ``N`` documents, ``Lq``/``Ld`` query/doc tokens, ``D`` embedding dim,
``V`` vocabulary size, ``nnz`` non-zeros, ``K`` candidates per query.

Modes:
- all-pairs (``mode="all"``): every query against every document -> ``[B, N]``.
- paired (``mode="pairs"``): each query with its own candidates, one call for the whole batch. The
  candidates of query ``b`` are documents ``groups[b]:groups[b+1]`` -> ``[N]``, aligned with ``docs``.
  With ``doc_index`` (MaxSim only) the candidates stay in the corpus: pair ``n`` is document
  ``docs[doc_index[n]]``, ``groups`` partitions the pairs, and no candidate token is copied.

Scores are float32 always (fp32 accumulation). See ``fusedscore.reference`` for the exact semantics of
empty documents (``-inf``) and empty queries (``0``).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from . import _check as C
from . import _dispatch
from ._blocks import topk_lowest_first, topk_over_blocks
from ._budget import resolve
from .containers import MultiVectorList, MultiVectors, SparseVectors

__all__ = ["maxsim", "sparse_dot", "dense_dot", "topk", "maxsim_topk", "blocked_topk", "hybrid",
           "reciprocal_rank_fusion", "groups_to_query_index"]



def groups_to_query_index(groups: Any, n_queries: int, n_docs: int, where: str) -> torch.Tensor:
    """[B+1] candidate-group offsets (or [B] counts as a list) -> [N] int64 query index per document."""
    if groups is None:
        if n_queries != n_docs:
            raise ValueError(f"{where}: groups must be given when mode='pairs' and len(queries)={n_queries} != "
                             f"len(docs)={n_docs} (groups[b]:groups[b+1] are query b's candidates)")
        return torch.arange(n_docs, dtype=torch.int64)
    g = _groups_tensor(groups, where)
    if g.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{where}: groups must be integer offsets [B+1], got {C.dtype_name(g.dtype)}")
    if g.dim() != 1 or g.numel() != n_queries + 1:
        raise ValueError(f"{where}: groups must have shape [B+1]=({n_queries + 1},), got {tuple(g.shape)}")
    g = C.check_offsets(g.cpu(), n_docs, where, "groups")
    return torch.repeat_interleave(torch.arange(n_queries, dtype=torch.int64), g[1:] - g[:-1])


def _groups_tensor(groups: Any, where: str) -> torch.Tensor:
    """groups as given: a tensor, an array, or a list/tuple/range of ints (a str is a sequence too, never offsets)."""
    if isinstance(groups, (torch.Tensor, np.ndarray)):
        return C.as_tensor(groups, where, "groups")
    if isinstance(groups, (list, tuple, range)):
        try:
            return torch.as_tensor(groups)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{where}: groups must be [B+1] integer offsets (a tensor, array or list of int), got a "
                            f"{type(groups).__name__} torch cannot read ({e})") from None
    raise TypeError(f"{where}: groups must be [B+1] integer offsets (a tensor, array or list of int), got "
                    f"{type(groups).__name__}")


def _doc_index(doc_index: Any, mode: str, n_docs: int, device: torch.device, where: str) -> torch.Tensor | None:
    """Validate ``doc_index`` ([N] integer ids into docs, paired mode only) -> int64 on ``device``, or None."""
    if doc_index is None:
        return None
    if mode == "all":
        raise ValueError(f"{where}: doc_index is only used with mode='pairs', got mode='all'")
    if isinstance(doc_index, (torch.Tensor, np.ndarray)):
        di = C.as_tensor(doc_index, where, "doc_index")
    else:  # a list of ids (an empty list has no dtype of its own)
        di = torch.as_tensor(doc_index)
        di = di.to(torch.int64) if di.numel() == 0 else di
    if di.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{where}: doc_index must be an integer tensor (int64, or int32) of document ids, got "
                        f"{C.dtype_name(di.dtype)}")
    C.check_ndim(di, 1, where, "doc_index", "[N] (one document id per pair)")
    if di.numel():
        bad = (di < 0) | (di >= n_docs)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise ValueError(f"{where}: doc_index must be in [0, len(docs)={n_docs}), got {int(di[i])} at "
                             f"position {i}")
    return di.to(device=device, dtype=torch.int64).contiguous()


def _pairs_index(mode: str, groups: Any, nq: int, nd: int, device: torch.device, where: str) -> torch.Tensor | None:
    if mode == "all":
        if groups is not None:
            raise ValueError(f"{where}: groups is only used with mode='pairs', got mode='all'")
        return None
    if mode == "pairs":
        return groups_to_query_index(groups, nq, nd, where).to(device)
    raise ValueError(f"{where}: mode must be 'all' or 'pairs', got {mode!r}")


def maxsim(queries: Any, docs: Any, *, mode: str = "all", groups: Any = None, reduce: str = "sum",
           doc_index: Any = None, backend: str | None = None) -> torch.Tensor:
    """Late-interaction (ColBERT) score: ``out = reduce_i max_j <q_i, d_j>``.

    Args:
        queries: B queries: a MultiVectors, a list of [Lq_b, D] arrays, or an unpadded [B, Lq, D] tensor.
            Build from a padded batch with ``MultiVectors.from_padded(x, mask=...)``: masked query tokens
            are dropped (and not counted by reduce="mean").
        docs: N documents, same forms, same D, dtype and device as queries. A list of CPU arrays is not
            packed: the native backend scores each item where it lies (and rejects NaN/Inf as it reads them).
        mode: "all" -> [B, N]; "pairs" -> [N] with ``groups``.
        groups: mode="pairs" only: [B+1] int offsets, pairs groups[b]:groups[b+1] belong to query b (the
            pairs are the documents, or the entries of ``doc_index``). May be omitted when B == N.
        reduce: "sum" (ColBERT/PyLate) or "mean" over query tokens (BGE-M3).
        doc_index: mode="pairs" only: [N] int64 ids into ``docs`` (int32 accepted), repeats and any order
            allowed. Pair n scores its query against ``docs[doc_index[n]]`` read in place, so candidates are
            never gathered (``docs.select(ids)`` copies every candidate's tokens). None: pair n is document n.
        backend: force "native", "triton" or "reference" (default: by device).
    Returns:
        float32 [B, N] or [N] (N = len(doc_index) when given). An empty document scores -inf; an empty
        query scores 0.
    Raises:
        ValueError: dim mismatch, bad groups, doc_index out of range or with mode="all", devices differ, a NaN
            score (float32 overflow of the dot products: never returned).
        TypeError: dtype mismatch or bad type (doc_index not integer, groups not integer offsets).
        MemoryError: the all-pairs [B, N] scores cannot fit in memory (use ``maxsim_topk``).
        RuntimeError: a forced backend is unavailable.
    """
    where = "maxsim"
    q = MultiVectors.coerce(queries, where, "queries")
    d = _dispatch.maxsim_docs(docs, where, "docs")
    C.check_reduce(reduce, where)
    _check_pair(q, d, where)
    di = _doc_index(doc_index, mode, len(d), d.device, where)
    qi = _pairs_index(mode, groups, len(q), len(d) if di is None else di.numel(), d.device, where)
    impl = _dispatch.resolve("maxsim", d.device, backend)
    out = _scores(lambda: impl.fn(q, d, qi, reduce, doc_index=di), where, len(q), len(d), qi, d.device, _TOPK_HINT)
    return C.check_no_nan(out, where, qi, di)


_TOPK_HINT = ("use fusedscore.maxsim_topk(queries, docs, k) to keep the best k per query, or score fewer queries or "
              "documents per call")


def _scores(call: Any, where: str, nq: int, nd: int, query_index: torch.Tensor | None, device: torch.device,
            hint: str) -> torch.Tensor:
    """Run a backend; an all-pairs [B, N] output that cannot fit is refused before it is allocated (Linux would
    overcommit it and kill the process on first touch), and an allocator failure is reported as what was asked."""
    if query_index is not None:
        return call()
    C.check_scores_fit(where, (nq, nd), lambda: _dispatch.available_memory(device), hint)
    try:
        return call()
    except (RuntimeError, MemoryError) as e:
        if isinstance(e, MemoryError) or C.is_alloc_failure(e):
            raise C.scores_too_large(where, (nq, nd), None, hint) from e
        raise


def _check_pair(q: MultiVectors | SparseVectors, d: MultiVectors | MultiVectorList | SparseVectors, where: str) -> None:
    """Device, dtype and D (or vocab_size: see ``_agree_vocab``, which sparse callers run first) of a pair."""
    if q.device != d.device:
        raise ValueError(f"{where}: inputs must be on the same device, got queries on {q.device}, docs on {d.device}")
    C.check_float(q.values, where, "queries")  # a container cast with .to(dtype=float64) reaches no kernel
    if q.dtype != d.dtype:
        raise TypeError(f"{where}: docs must have the dtype of queries ({C.dtype_name(q.dtype)}), got "
                        f"{C.dtype_name(d.dtype)}; cast one explicitly with .to(dtype=...)")
    if isinstance(q, MultiVectors):
        if q.dim != d.dim and q.num_tokens and d.num_tokens:
            raise ValueError(f"{where}: docs must have shape [T, D] with D={q.dim} to match queries, got "
                             f"{(d.num_tokens, d.dim)}")
    elif q.vocab_size != d.vocab_size:
        raise ValueError(f"{where}: docs must have vocab_size={q.vocab_size} to match queries, got {d.vocab_size}")


def _agree_vocab(q: SparseVectors, d: SparseVectors, where: str) -> tuple[SparseVectors, SparseVectors]:
    """A vocab_size inferred from dicts (the largest id + 1) only bounds that side's ids: it widens to the
    other side's (two inferred sides agree on the larger; a given size wins). Two given sizes must match."""
    if q.vocab_size == d.vocab_size or not (q.vocab_inferred or d.vocab_inferred):
        return q, d
    if q.vocab_inferred and d.vocab_inferred:
        v = max(q.vocab_size, d.vocab_size)
        return q.with_vocab_size(v), d.with_vocab_size(v)
    small, big, small_name, big_name = (q, d, "queries", "docs") if q.vocab_inferred else (d, q, "docs", "queries")
    if small.vocab_size > big.vocab_size:
        raise ValueError(f"{where}: {small_name} must have term ids < vocab_size={big.vocab_size} of {big_name}, got "
                         f"id {small.vocab_size - 1}")
    small = small.with_vocab_size(big.vocab_size)
    return (small, big) if q.vocab_inferred else (big, small)


def sparse_dot(queries: Any, docs: Any, *, mode: str = "all", groups: Any = None,
               backend: str | None = None) -> torch.Tensor:
    """Learned-sparse score: ``out = sum over shared term ids of w_q * w_d`` (SPLADE, BGE-M3 lexical).

    Args:
        queries: B rows: a SparseVectors, a list of {term: weight} dicts, scipy.sparse or torch sparse [B, V].
        docs: N rows, same forms, same vocab_size, dtype and device. A vocab_size inferred from dicts (no
            vocab_size given: the largest id + 1) widens to the other side's, so two lists of dicts always
            score; two vocab sizes that were given must be equal.
        mode, groups, backend: as in ``maxsim``.
    Returns:
        float32 [B, N] or [N]. Rows with no terms score 0.
    """
    where = "sparse_dot"
    q = SparseVectors.coerce(queries, where, "queries")
    d = SparseVectors.coerce(docs, where, "docs")
    q, d = _agree_vocab(q, d, where)
    _check_pair(q, d, where)
    qi = _pairs_index(mode, groups, len(q), len(d), d.device, where)
    impl = _dispatch.resolve("sparse_dot", d.device, backend)
    out = _scores(lambda: impl.fn(q, d, qi), where, len(q), len(d), qi, d.device,
                  "score fewer queries or documents per call (blocks of documents)")
    return C.check_no_nan(out, where, qi)


def dense_dot(queries: Any, docs: Any, *, mode: str = "all", groups: Any = None, backend: str | None = None,
              check_finite: bool = True) -> torch.Tensor:
    """Dense score ``out = <q, d>``.

    Args:
        queries: [B, D] fp32|fp16|bf16 tensor or array.  docs: [N, D], same dtype and device.
        check_finite: scan both for NaN/Inf first (one pass in bounded memory; as costly as the product itself
            when B is 1). False for inputs known finite, e.g. a corpus scanned once (FDEIndex does this); a NaN
            score is still refused.
    Returns:
        float32 [B, N] or [N].
    Raises:
        ValueError: shape mismatch, NaN/Inf input, a NaN score (float32 overflow).  TypeError: dtype or layout.
        MemoryError: the [B, N] scores cannot fit (use ``retrieval.blocked_topk``).
    """
    return _dense_dot(queries, docs, mode, groups, backend, check_finite, True)


def _dense_dot(queries: Any, docs: Any, mode: str, groups: Any, backend: str | None, check_finite: bool,
               check_nan: bool) -> torch.Tensor:
    """dense_dot; ``check_nan=False`` leaves NaN scores to a caller that checks them itself (blocked top-k names
    the document by its index in the whole corpus, not in the block)."""
    where = "dense_dot"
    q = C.as_tensor(queries, where, "queries")
    d = C.as_tensor(docs, where, "docs")
    for t, arg in ((q, "queries"), (d, "docs")):
        C.check_strided(t, where, arg)
        C.check_no_grad(t, where, arg)
    C.check_float(q, where, "queries")
    C.check_float(d, where, "docs")
    C.check_ndim(q, 2, where, "queries", "[B, D]")
    C.check_ndim(d, 2, where, "docs", "[N, D]")
    C.check_same_device(where, queries=q, docs=d)
    if q.dtype != d.dtype:
        raise TypeError(f"{where}: docs must have the dtype of queries ({C.dtype_name(q.dtype)}), got {C.dtype_name(d.dtype)}")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"{where}: docs must have shape [N, D] with D={q.shape[1]} to match queries, got {tuple(d.shape)}")
    qi = _pairs_index(mode, groups, q.shape[0], d.shape[0], d.device, where)
    if check_finite:  # raw tensors were never validated by a container: NaN/Inf would come out as NaN scores
        C.check_finite(q, where, "queries", hint=False)
        C.check_finite(d, where, "docs", hint=False)
    impl = _dispatch.resolve("dense_dot", d.device, backend)
    out = _scores(lambda: impl.fn(q, d, qi), where, q.shape[0], d.shape[0], qi, d.device,
                  "use fusedscore.retrieval.blocked_topk(queries, docs, k) to keep the best k per query, or score "
                  "fewer queries or documents per call")
    return C.check_no_nan(out, where, qi) if check_nan else out


def blocked_topk(queries: torch.Tensor, docs: torch.Tensor, k: int, *, max_memory: int | None = None,
                 backend: str | None = None, check_finite: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of the dense scores ``queries @ docs.T`` without holding more than a block of them.

    Args:
        queries: [B, D] fp32|fp16|bf16.  docs: [N, D], same dtype and device.
        k: results per query (clipped to N).
        max_memory: bytes of scores per block (``fusedscore._budget``; None: the device's default).
        check_finite: scan the inputs for NaN/Inf (``dense_dot``'s check, block by block); a NaN score raises
            either way.
    Returns:
        (scores [B, min(k, N)] float32, indices [B, min(k, N)] int64), best first; equal scores rank the lower
        document index first (``topk``'s rule).
    """
    where = "blocked_topk"
    k = C.check_k(k, where)
    max_memory = resolve(max_memory, where, getattr(docs, "device", None))
    # each block's NaN check is topk_over_blocks', which names the document by its index in docs
    return topk_over_blocks(lambda s, e: _dense_dot(queries, docs[s:e], "all", None, backend, check_finite, False),
                            docs.shape[0], queries.shape[0], k, max_memory, docs.device, where=where)


def topk(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row top-k of ``scores [B, N]`` without a full sort.

    Ties: equal scores rank the lower index first (at the k-th place too: of several documents tied there, the
    lowest are kept), as ``reference.topk_ref`` and ``maxsim_topk`` on every backend.
    Returns:
        (values [B, min(k, N)] float32, indices [B, min(k, N)] int64), best first. NaN never appears in
        scores produced by fusedscore; a caller's NaN is rejected.
    """
    where = "topk"
    s = C.as_tensor(scores, where, "scores")
    C.check_float(s, where, "scores", allow_fp64=True)
    C.check_ndim(s, 2, where, "scores", "[B, N]")
    k = C.check_k(k, where)
    if bool(torch.isnan(s).any()):
        raise ValueError(f"{where}: scores must not contain NaN, got {int(torch.isnan(s).sum())} NaN value(s)")
    kk = min(k, s.shape[1])
    vals, idx = topk_lowest_first(s, kk)
    return vals.float(), idx


def maxsim_topk(queries: Any, docs: Any, k: int, *, reduce: str = "sum", max_memory: int | None = None,
                backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All-pairs MaxSim top-k over a large corpus, never holding more than a block of [B, N] scores.

    Documents are scored in blocks sized so that a block of scores fits ``max_memory`` bytes (``fusedscore._budget``);
    each block's best k merge into the running best k, and a block is freed before the next is scored, so the
    scores held never exceed one block (plus the [B, k] best).

    Ties: equal scores rank the lower document index first, on every backend and whatever the block size (of
    several documents tied at the k-th place, the lowest are kept), as ``reference.topk_ref``.

    Args:
        queries: B queries: a MultiVectors, a list of [Lq_b, D] arrays, or an unpadded [B, Lq, D] tensor.
        docs: N documents, same forms, same D, dtype and device as queries.
        k: results per query (>= 1; clipped to N).
        reduce: "sum" or "mean" over query tokens.
        max_memory: bytes of scores one block may hold (None: the device's default, ``fusedscore._budget``).
        backend: force "native", "triton" or "reference" (default: by device).
    Returns:
        (values [B, min(k, N)] float32, indices [B, min(k, N)] int64 into docs), best first.
    Raises:
        ValueError: a NaN score (float32 overflow: never ranked), bad k or max_memory.
    """
    where = "maxsim_topk"
    C.check_max_memory(max_memory, where)  # before the inputs are converted
    q = MultiVectors.coerce(queries, where, "queries")
    d = MultiVectors.coerce(docs, where, "docs")
    k = C.check_k(k, where)
    C.check_reduce(reduce, where)
    _check_pair(q, d, where)
    max_memory = resolve(max_memory, where, d.device)
    impl = _dispatch.resolve("maxsim_topk", d.device, backend)
    vals, idx = impl.fn(q, d, k, reduce, max_memory)
    # the blocked backends reject a NaN block before ranking it; a backend that ranks internally (Triton) puts
    # NaN first, so a NaN anywhere is in the top k: checked here, named by its document
    nan = torch.isnan(vals)
    if bool(nan.any()):
        b, j = (int(x) for x in torch.nonzero(nan)[0])
        raise C.nan_scores(where, b, int(idx[b, j]))
    return vals, idx


def _rows(t: torch.Tensor) -> torch.Tensor:
    """[..., N] -> [R, N] (R = prod of the leading dims; explicit, since reshape(-1, 0) is ambiguous)."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


_NORMS = ("none", "minmax", "zscore", "sigmoid")


def _normalise(s: torch.Tensor, how: str) -> torch.Tensor:
    """Per-row normalisation of [B, N] scores (finite entries only). Constant rows map to 1 (min-max) or 0
    (z-score) for every finite entry, so one candidate or all-tied candidates never collapse below others."""
    if how == "none":
        return s
    if how == "sigmoid":
        return torch.sigmoid(s)
    fin = torch.isfinite(s)
    z = torch.where(fin, s, torch.zeros((), dtype=s.dtype, device=s.device))
    cnt = fin.sum(1, keepdim=True).clamp(min=1)
    if how == "minmax":
        big = torch.finfo(s.dtype).max
        lo = torch.where(fin, s, torch.full_like(s, big)).amin(1, keepdim=True)
        hi = torch.where(fin, s, torch.full_like(s, -big)).amax(1, keepdim=True)
        span = hi - lo
        out = torch.where(span > 0, (s - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.ones_like(s))
    else:
        mean = z.sum(1, keepdim=True) / cnt
        var = (torch.where(fin, s - mean, torch.zeros_like(s)) ** 2).sum(1, keepdim=True) / cnt
        std = var.sqrt()
        out = torch.where(std > 0, (s - mean) / torch.where(std > 0, std, torch.ones_like(std)), torch.zeros_like(s))
    return torch.where(fin, out, s)  # -inf (empty doc / missing) stays -inf


def hybrid(scores: Sequence[torch.Tensor], weights: Sequence[float], *, normalize: str = "none",
           missing: float | None = None) -> torch.Tensor:
    """Weighted sum of score tensors of one shape ([B, N] or [N]), each optionally normalised per row.

    Args:
        scores: the signals, float tensors of one shape. ``-inf`` (or NaN) marks a document missing from
            a signal.
        weights: one float per signal.
        normalize: "none", "minmax", "zscore" or "sigmoid", applied per query row before weighting.
        missing: the normalised value a missing document gets in that signal; None (default) means the
            row's minimum finite normalised score (missing is "as bad as the worst seen"), 0 if none.
    Returns:
        float32 tensor of that shape. A document missing from every signal gets -inf.
    """
    where = "hybrid"
    if len(scores) == 0 or len(scores) != len(weights):
        raise ValueError(f"{where}: weights must have one entry per score tensor ({len(scores)}), got {len(weights)}")
    if normalize not in _NORMS:
        raise ValueError(f"{where}: normalize must be one of {_NORMS}, got {normalize!r}")
    ts = [C.as_tensor(s, where, f"scores[{i}]").float() for i, s in enumerate(scores)]
    shape = ts[0].shape
    if len(shape) == 0:
        raise ValueError(f"{where}: scores[0] must have shape [B, N] or [N], got ()")
    for i, t in enumerate(ts):
        if t.shape != shape:
            raise ValueError(f"{where}: scores[{i}] must have shape {tuple(shape)} like scores[0], got {tuple(t.shape)}")
    if ts[0].numel() == 0:  # no documents (or no rows): nothing to fuse, and amin over 0 columns raises
        return torch.zeros(shape, dtype=torch.float32, device=ts[0].device)
    squeeze = len(shape) == 1
    total = torch.zeros(_rows(ts[0]).shape, dtype=torch.float32, device=ts[0].device)
    seen = torch.zeros_like(total, dtype=torch.bool)
    for t, w in zip(ts, weights):
        t2 = _rows(t)
        t2 = torch.where(torch.isnan(t2), torch.full_like(t2, float("-inf")), t2)
        fin = torch.isfinite(t2)
        n = _normalise(t2, normalize)
        if missing is None:
            big = torch.finfo(torch.float32).max
            fill = torch.where(fin, n, torch.full_like(n, big)).amin(1, keepdim=True)
            fill = torch.where(fill == big, torch.zeros_like(fill), fill)
        else:
            fill = torch.full((n.shape[0], 1), float(missing), device=n.device)
        n = torch.where(fin, n, fill.expand_as(n))
        total += float(w) * n
        seen |= fin
    total = torch.where(seen, total, torch.full_like(total, float("-inf")))
    return total.reshape(shape) if not squeeze else total.reshape(-1)


def reciprocal_rank_fusion(scores: Sequence[torch.Tensor], *, k: int = 60,
                           weights: Sequence[float] | None = None) -> torch.Tensor:
    """RRF: ``sum_s w_s / (k + rank_s(doc))`` per query row, rank 1 = best; a document missing from a
    signal (``-inf``/NaN) contributes 0 for it. Ties share the better rank.

    Args:
        scores: [B, N] or [N] float tensors of one shape.  k: the RRF constant (60, as Cormack et al.).
    Returns:
        float32 tensor of that shape.
    """
    where = "reciprocal_rank_fusion"
    if len(scores) == 0:
        raise ValueError(f"{where}: scores must hold at least one tensor, got 0")
    k = C.check_k(k, where)
    weights = [1.0] * len(scores) if weights is None else list(weights)
    if len(weights) != len(scores):
        raise ValueError(f"{where}: weights must have one entry per score tensor ({len(scores)}), got {len(weights)}")
    shape = C.as_tensor(scores[0], where, "scores[0]").shape
    if len(shape) == 0:
        raise ValueError(f"{where}: scores[0] must have shape [B, N] or [N], got ()")
    total = None
    for i, (s, w) in enumerate(zip(scores, weights)):
        t = C.as_tensor(s, where, f"scores[{i}]").float()
        if t.shape != shape:
            raise ValueError(f"{where}: scores[{i}] must have shape {tuple(shape)} like scores[0], got {tuple(t.shape)}")
        t2 = _rows(t)
        fin = torch.isfinite(t2)
        t2 = torch.where(fin, t2, torch.full_like(t2, float("-inf")))
        # rank = 1 + number of strictly better finite scores in the row (ties share the better rank)
        asc = torch.sort(t2, dim=1).values
        rank = 1 + t2.shape[1] - torch.searchsorted(asc, t2.contiguous(), right=True)
        contrib = torch.where(fin, float(w) / (k + rank.float()), torch.zeros_like(t2))
        total = contrib if total is None else total + contrib
    return total.reshape(shape)
