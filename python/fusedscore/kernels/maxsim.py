"""MaxSim (late interaction) on the GPU: ``out[b, n] = reduce_i max_j <q_b[i], d_n[j]>``.

Shapes: queries ``q`` hold B items of ``[Lq_b, D]`` tokens, documents ``d`` N items of ``[Ld_n, D]``,
either ragged (``values [T, D]`` + int64 ``offsets [N+1]``) or padded (``[N, L, D]`` + lengths or a
mask). ``reduce`` is "sum" (ColBERT/PyLate) or "mean" over the query's real tokens (BGE-M3). An empty
document scores -inf, an empty query 0 (``fusedscore.reference.maxsim_ref`` is the spec).

Grid: one program per (document, group of QG queries) for all-pairs, one per pair for paired (its
query is ``query_index[n]``, its document ``n``, or ``doc_index[n]`` read in place when the candidates
stay in the corpus); a 1-D grid with the query groups varying fastest, so the programs
that read one document run together and share it through L2.

Tiling: a program stacks QG queries x LQ token slots into ``M = QG * LQ`` rows (LQ is the bucketed
query length, a power of two; longer queries loop over query tiles). For each tile of BLOCK_D
document tokens it computes the ``[M, BLOCK_D]`` similarity tile with ``tl.dot`` (fp32 accumulation;
the embedding dim in one BLOCK_K chunk when D <= BLOCK_K, else a loop over chunks), masks the tails
with -inf and folds it into a running per-row max held in registers. The similarity tensor never
touches memory. Rows then reduce per query (``reshape [QG, LQ]``, masked sum) into fp32 scores.
Every tile dimension is >= 16 (``tl.dot``); token offsets are int64 (corpora overflow int32).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from . import _buckets as bk

_MAX_PROGRAMS = 2**31 - 1  # grid dimension 0 limit


@triton.jit(do_not_specialize=["B", "n0", "q_lpad", "d_lpad", "out_stride", "num_groups"])
def _maxsim_kernel(
    q_ptr, q_off_ptr, q_len_ptr, q_mask_ptr,
    d_ptr, d_off_ptr, d_len_ptr, d_mask_ptr,
    qidx_ptr, didx_ptr, out_ptr,
    B, n0, D, stride_q, stride_d, q_lpad, d_lpad, out_stride, num_groups,
    PAIRED: tl.constexpr, HAS_DIDX: tl.constexpr, MEAN: tl.constexpr,
    PADDED_Q: tl.constexpr, PADDED_D: tl.constexpr, HAS_QMASK: tl.constexpr, HAS_DMASK: tl.constexpr,
    QG: tl.constexpr, LQ: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_K: tl.constexpr, ONE_K: tl.constexpr,
    UPCAST: tl.constexpr, INPUT_PRECISION: tl.constexpr,
):
    """One (document, query group) pair: scores of QG queries against document ``n0 + n``.

    q_ptr: [Tq, D] query tokens (row stride stride_q); d_ptr: [Td, D] document tokens (stride_d).
    Ragged side: item i owns rows off[i]:off[i+1]. Padded side: item i owns rows i*lpad .. i*lpad+len[i],
    and mask[row] (uint8, flat) != 0 marks its real tokens. out: paired [N]; all-pairs row b at
    out_ptr + b * out_stride (local document index n as the column). HAS_DIDX (paired only): pair n0 + n
    reads document didx_ptr[n0 + n] (int64) instead of document n0 + n.
    """
    pid = tl.program_id(0).to(tl.int64)
    if PAIRED:
        n = pid
        g0 = tl.load(qidx_ptr + n0 + n)
    else:
        n = pid // num_groups
        g0 = (pid % num_groups) * QG
    if HAS_DIDX:
        doc = tl.load(didx_ptr + n0 + n)
    else:
        doc = n0 + n
    if PADDED_D:
        d_start = doc * d_lpad
        d_end = d_start + tl.load(d_len_ptr + doc)
    else:
        d_start = tl.load(d_off_ptr + doc)
        d_end = tl.load(d_off_ptr + doc + 1)

    M: tl.constexpr = QG * LQ
    rows = tl.arange(0, M)
    qb = g0 + rows // LQ  # the query of each row (int64)
    slot = rows % LQ
    row_in = qb < B
    if PADDED_Q:
        q_start = qb * q_lpad
        q_end = q_start + tl.load(q_len_ptr + qb, mask=row_in, other=0)
    else:
        q_start = tl.load(q_off_ptr + qb, mask=row_in, other=0)
        q_end = tl.load(q_off_ptr + qb + 1, mask=row_in, other=0)
    n_qt = tl.cdiv(tl.max(q_end - q_start, axis=0), LQ)

    ks = tl.arange(0, BLOCK_K)
    cols = tl.arange(0, BLOCK_D)
    score = tl.zeros([QG], dtype=tl.float32)
    count = tl.zeros([QG], dtype=tl.float32)
    for t in range(0, n_qt):
        q_tok = q_start + t * LQ + slot
        row_ok = q_tok < q_end  # false for rows past B too: their q_start == q_end == 0
        if HAS_QMASK:
            row_ok = row_ok & (tl.load(q_mask_ptr + q_tok, mask=row_ok, other=0) != 0)
        q_rows = q_ptr + q_tok * stride_q
        if ONE_K:
            qt = tl.load(q_rows[:, None] + ks[None, :], mask=row_ok[:, None] & (ks[None, :] < D), other=0.0)
            if UPCAST:
                qt = qt.to(tl.float32)
        run_max = tl.full([M], float("-inf"), dtype=tl.float32)
        for ds in range(d_start, d_end, BLOCK_D):
            d_tok = ds + cols
            in_doc = d_tok < d_end
            col_ok = in_doc
            if HAS_DMASK:
                col_ok = col_ok & (tl.load(d_mask_ptr + d_tok, mask=in_doc, other=0) != 0)
            d_cols = d_ptr + d_tok * stride_d
            if ONE_K:
                dt = tl.load(d_cols[None, :] + ks[:, None], mask=in_doc[None, :] & (ks[:, None] < D), other=0.0)
                if UPCAST:
                    dt = dt.to(tl.float32)
                sim = tl.dot(qt, dt, input_precision=INPUT_PRECISION)
            else:
                sim = tl.zeros([M, BLOCK_D], dtype=tl.float32)
                for k0 in range(0, D, BLOCK_K):
                    kk = k0 + ks
                    qk = tl.load(q_rows[:, None] + kk[None, :], mask=row_ok[:, None] & (kk[None, :] < D), other=0.0)
                    dk = tl.load(d_cols[None, :] + kk[:, None], mask=in_doc[None, :] & (kk[:, None] < D), other=0.0)
                    if UPCAST:
                        qk = qk.to(tl.float32)
                        dk = dk.to(tl.float32)
                    sim = tl.dot(qk, dk, sim, input_precision=INPUT_PRECISION)
            sim = tl.where(col_ok[None, :], sim, float("-inf"))
            run_max = tl.maximum(run_max, tl.max(sim, axis=1))
        part = tl.where(row_ok, run_max, 0.0)
        score += tl.sum(tl.reshape(part, (QG, LQ)), axis=1)
        count += tl.sum(tl.reshape(row_ok.to(tl.float32), (QG, LQ)), axis=1)
    if MEAN:
        score = score / tl.maximum(count, 1.0)
    g = tl.arange(0, QG)
    if PAIRED:
        tl.store(out_ptr + n + g, score, mask=g < 1)
    else:
        tl.store(out_ptr + (g0 + g) * out_stride + n, score, mask=(g0 + g) < B)


# ----------------------------------------------------------------------------- launch helpers
def _precision(dtype: torch.dtype, input_precision: str | None) -> str:
    """fp32 defaults to exact "ieee" (matches the reference at fp32 tolerance); 16-bit inputs ignore it."""
    if input_precision is None:
        return "ieee" if dtype == torch.float32 else "tf32"
    if input_precision not in ("ieee", "tf32"):
        raise ValueError(f"maxsim: input_precision must be 'ieee' or 'tf32', got {input_precision!r}")
    return input_precision if dtype == torch.float32 else "tf32"


class _Side:
    """Device pointers describing one side (queries or documents) of a launch."""

    __slots__ = ("values", "off", "lens", "mask", "lpad", "padded", "max_len", "count")

    def __init__(self, values, off, lens, mask, lpad, padded, max_len, count):
        # unused pointers (lens/mask of a ragged side, off of a padded one) point at a live int64 tensor
        self.values, self.off, self.lens, self.mask = values, off, lens, mask
        self.lpad, self.padded, self.max_len, self.count = lpad, padded, max_len, count

    @property
    def has_mask(self) -> bool:
        return self.mask is not None

    @property
    def mask_ptr(self) -> torch.Tensor:
        return self.mask if self.mask is not None else self.off


def _ragged(mv: Any, query_side: bool) -> _Side:
    """Only the query side needs its longest item (the LQ bucket): one reduction and host sync, not two."""
    off = mv.offsets
    return _Side(mv.values, off, off, None, 0, False, mv.max_length if query_side else 0, len(mv))


def _padded(x: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor | None, where: str, arg: str,
            query_side: bool) -> _Side:
    n, L, dim = x.shape
    if not x.is_contiguous():
        raise ValueError(f"{where}: {arg} must be C-contiguous [N, L, D], got strides {tuple(x.stride())}")
    values = x.view(n * L, dim)
    flat_mask = None
    if mask is not None:
        if mask.dtype != torch.bool or tuple(mask.shape) != (n, L):
            raise ValueError(f"{where}: {arg}_mask must be a bool [N, L]=({n}, {L}) tensor, got "
                             f"{mask.dtype} {tuple(mask.shape)}")
        # trim trailing padding: each item's tiles stop after its last real token
        pos = torch.arange(1, L + 1, device=x.device, dtype=torch.int64)
        lens = (mask.to(torch.int64) * pos).amax(1) if L else torch.zeros(n, dtype=torch.int64, device=x.device)
        flat_mask = mask.contiguous().view(torch.uint8).view(-1)
    elif lengths is not None:
        if tuple(lengths.shape) != (n,) or lengths.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"{where}: {arg}_lengths must be an int [N]=({n},) tensor, got {lengths.dtype} "
                             f"{tuple(lengths.shape)}")
        lens = lengths.to(device=x.device, dtype=torch.int64)
        if n and bool(((lens < 0) | (lens > L)).any()):  # the kernel reads lens[i] rows from item i's start
            raise ValueError(f"{where}: {arg}_lengths must lie in [0, L={L}], got min {int(lens.min())} max "
                             f"{int(lens.max())}")
    else:
        lens = torch.full((n,), L, dtype=torch.int64, device=x.device)
    max_len = int(lens.max()) if n and query_side else 0
    return _Side(values, lens, lens, flat_mask, L, True, max_len, n)


def _launch(q: _Side, d: _Side, query_index: torch.Tensor | None, reduce: str, out: torch.Tensor,
            n0: int, n_docs: int, out_stride: int, cfg: bk.MaxSimConfig, precision: str,
            doc_index: torch.Tensor | None = None) -> None:
    """Score documents (paired: pairs) n0 .. n0+n_docs into ``out`` (all-pairs: column j = document n0+j)."""
    paired = query_index is not None
    num_groups = 1 if paired else triton.cdiv(q.count, cfg.QG)
    dim = q.values.shape[1]
    upcast = q.values.dtype == torch.bfloat16 and bk.interpreting()  # the interpreter's dot misreads bf16
    step = max(1, _MAX_PROGRAMS // num_groups)
    qidx = query_index if paired else q.lens
    didx = doc_index if doc_index is not None else qidx  # unused pointer: any live int64 tensor
    for s in range(0, n_docs, step):
        c = min(step, n_docs - s)
        grid = (c * num_groups,)
        o = out[s:] if paired else out[:, s:]
        _maxsim_kernel[grid](
            q.values, q.off, q.lens, q.mask_ptr, d.values, d.off, d.lens, d.mask_ptr, qidx, didx, o,
            q.count, n0 + s, dim, q.values.stride(0), d.values.stride(0), q.lpad, d.lpad, out_stride, num_groups,
            PAIRED=paired, HAS_DIDX=doc_index is not None, MEAN=reduce == "mean",
            PADDED_Q=q.padded, PADDED_D=d.padded, HAS_QMASK=q.has_mask, HAS_DMASK=d.has_mask,
            QG=cfg.QG, LQ=cfg.LQ, BLOCK_D=cfg.BLOCK_D, BLOCK_K=cfg.BLOCK_K, ONE_K=cfg.ONE_K,
            UPCAST=upcast, INPUT_PRECISION="ieee" if upcast else precision,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages, enable_fp_fusion=bk.FP_FUSION,
        )


def _run(q: _Side, d: _Side, query_index: torch.Tensor | None, reduce: str, input_precision: str | None,
         doc_index: torch.Tensor | None = None) -> torch.Tensor:
    paired = query_index is not None
    n = d.count if doc_index is None else doc_index.numel()
    dtype = q.values.dtype
    out = torch.empty((n,) if paired else (q.count, n), dtype=torch.float32, device=q.values.device)
    if out.numel() == 0:
        return out
    precision = _precision(dtype, input_precision)
    if q.values.numel() == 0 or d.values.numel() == 0:
        # no dot product to take (no tokens on one side, or D == 0): an empty document gives -inf to
        # every non-empty query, everything else is an empty sum (0)
        q_real, d_real = q.lens > 0 if q.padded else q.off.diff() > 0, d.lens > 0 if d.padded else d.off.diff() > 0
        q_real = q_real[query_index] if paired else q_real[:, None]
        d_real = d_real if doc_index is None else d_real[doc_index]
        out.copy_(torch.where(q_real & ~d_real, float("-inf"), 0.0))
        return out
    cfg = bk.maxsim_config(q.max_len, q.values.shape[1], dtype, q.count, paired)
    _launch(q, d, query_index, reduce, out, 0, n, n, cfg, precision, doc_index)
    return out


# ----------------------------------------------------------------------------- public launchers
def maxsim(q: Any, d: Any, query_index: torch.Tensor | None = None, reduce: str = "sum",
           doc_index: torch.Tensor | None = None, *, input_precision: str | None = None) -> torch.Tensor:
    """MaxSim over ragged containers, one launch for the whole batch.

    Args:
        q: MultiVectors, B queries ``values [Tq, D]`` + ``offsets [B+1]`` int64, fp32|fp16|bf16.
        d: MultiVectors, N documents, same D, dtype and device.
        query_index: None for all-pairs, else [N] int64 on the device: document n is scored against
            query ``query_index[n]`` (paired / rerank).
        reduce: "sum" or "mean".
        doc_index: paired only: None, or [N] int64 on the device, ids into d (any order, repeats allowed):
            pair n reads document ``doc_index[n]`` in place (rerank from a corpus without gathering it);
            query_index then has N entries too. The caller validates the range (``fusedscore.maxsim`` does).
        input_precision: fp32 only: "ieee" (default, exact) or "tf32" (tensor cores, ~1e-3 relative).
    Returns:
        float32 [B, N] (all-pairs) or [N] (paired).
    """
    return _run(_ragged(q, True), _ragged(d, False), query_index, reduce, input_precision, doc_index)


def maxsim_padded(q: torch.Tensor, q_mask: torch.Tensor | None, d: torch.Tensor, d_mask: torch.Tensor | None = None,
                  *, d_lengths: torch.Tensor | None = None, reduce: str = "sum",
                  query_index: torch.Tensor | None = None, input_precision: str | None = None) -> torch.Tensor:
    """MaxSim over padded batches, without packing them (padding costs loads, never a wrong max).

    Args:
        q: [B, Lq, D] fp32|fp16|bf16, C-contiguous.
        q_mask: [B, Lq] bool, True = real token, or None (every token is real). Masked tokens
            contribute 0 and are not counted by reduce="mean".
        d: [N, Ld, D], same D, dtype and device, C-contiguous.
        d_mask: [N, Ld] bool, True = real token (masked tokens are -inf before the max), or None.
        d_lengths: [N] int, the first d_lengths[n] tokens of document n are real (instead of d_mask).
        reduce, query_index, input_precision: as in ``maxsim``.
    Returns:
        float32 [B, N] or [N].
    Raises:
        ValueError: non-contiguous input, bad mask or lengths, both d_mask and d_lengths given.
    """
    where = "maxsim_padded"
    if q.dim() != 3 or d.dim() != 3 or q.shape[2] != d.shape[2]:
        raise ValueError(f"{where}: q and d must have shapes [B, Lq, D] and [N, Ld, D] with one D, got "
                         f"{tuple(q.shape)} and {tuple(d.shape)}")
    if q.dtype != d.dtype:
        raise TypeError(f"{where}: d must have the dtype of q ({q.dtype}), got {d.dtype}")
    if d_mask is not None and d_lengths is not None:
        raise ValueError(f"{where}: pass d_mask or d_lengths, not both")
    qs = _padded(q, q_mask, None, where, "q", True)
    return _run(qs, _padded(d, d_mask, d_lengths, where, "d", False), query_index, reduce, input_precision)


# ----------------------------------------------------------------------------- fused top-k
_IDX_MASK = 0xFFFFFFFF


def _encode(scores: torch.Tensor, first: int) -> torch.Tensor:
    """Scores [B, C] fp32 of documents first..first+C -> int64 keys ordered by (score desc, index asc).

    High 32 bits: the float's bits mapped to a signed int with the same order; low 32 bits:
    0xFFFFFFFF - index, so among equal scores the lower index has the larger key. Keys are unique,
    so torch.topk's unspecified tie order cannot matter.
    """
    bits = (scores + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into 0.0: they tie, as in the reference
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    idx = torch.arange(first, first + scores.shape[1], device=scores.device, dtype=torch.int64)
    return (ordered << 32) | (_IDX_MASK - idx)


def _decode(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    hi = (keys >> 32).to(torch.int32)
    bits = torch.where(hi < 0, hi ^ 0x7FFFFFFF, hi)
    return bits.view(torch.float32).clone(), _IDX_MASK - (keys & _IDX_MASK)


def maxsim_topk(q: Any, d: Any, k: int, reduce: str = "sum", *, block_docs: int | None = None,
                max_memory: int = 512 << 20, input_precision: str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """All-pairs MaxSim top-k over a large corpus: never more than a [B, block_docs] block of scores.

    Each block of documents is scored by the MaxSim kernel in place (no copy of document tokens),
    reduced to its best k per query, and merged into the running best k (ties -> lower index, as
    ``reference.topk_ref``).

    Args:
        q: MultiVectors, B queries.  d: MultiVectors, N documents (N < 2**32).
        k: >= 1.  reduce: "sum" or "mean".
        block_docs: documents per block; default: as many as fit ``max_memory`` bytes (scores, keys and
            the temporaries of one block).
    Returns:
        (values [B, min(k, N)] float32, indices [B, min(k, N)] int64), best first.
    """
    qs, ds = _ragged(q, True), _ragged(d, False)
    n, b = ds.count, qs.count
    if n >= _IDX_MASK:
        raise ValueError(f"maxsim_topk: d must have fewer than 2**32 documents, got {n}")
    kk = min(int(k), n)
    dev = qs.values.device
    if kk == 0 or b == 0:
        return (torch.empty(b, kk, dtype=torch.float32, device=dev), torch.empty(b, kk, dtype=torch.int64, device=dev))
    # per (query, doc) of a block: the 4 B score, its 8 B key and the ~20 B of temporaries that build it
    block = block_docs or max(kk, max_memory // max(1, 32 * b))
    block = min(max(block, kk), n)
    precision = _precision(qs.values.dtype, input_precision)
    cfg = bk.maxsim_config(qs.max_len, qs.values.shape[1], qs.values.dtype, b, False)
    buf = torch.empty(b, block, dtype=torch.float32, device=dev)
    best = None
    for s in range(0, n, block):
        c = min(block, n - s)
        _launch(qs, ds, None, reduce, buf, s, c, block, cfg, precision)
        keys = torch.topk(_encode(buf[:, :c], s), min(kk, c), dim=1).values
        best = keys if best is None else torch.topk(torch.cat([best, keys], 1), kk, dim=1).values
    return _decode(best)
