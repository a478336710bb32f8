"""Learned-sparse dot products on the GPU: ``out[b, n] = sum over shared ids t of w_q[b, t] * w_d[n, t]``.

Shapes: CSR rows (``SparseVectors``): ``indices [nnz] int32``, ``values [nnz]`` fp32|fp16|bf16,
``offsets [N+1] int64``. An empty row scores 0 (``fusedscore.reference.sparse_dot_ref`` is the spec).

Hash tables: every query b owns ``TS`` slots (a power of two, load factor <= 1/2) of an
open-addressing table in device memory: ``keys [B, TS] int32`` (-1 = empty) and ``vals [B, TS] fp32``.
A term's home slot is the multiplicative hash ``((id * 2654435761) mod 2**32) >> (32 - log2 TS)``,
collisions probe linearly. The table is built with vectorised torch in rounds (round r places each
waiting term at home + r when that slot is free; among terms competing for a slot the first wins), so
a key sits exactly r slots past its home and every slot before it is full: plain linear probing.
``max_probes`` = the number of rounds, so a lookup needs at most that many probes — exact, and bounded.

Grid: one program per (document, group of QB queries) for all-pairs (query groups vary fastest), one
per document for paired. A program loads BLOCK_T document terms, hashes them once (one TS for all
queries), and probes the QB tables with ``[QB, BLOCK_T]`` gathers; hits multiply in fp32 and sum.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from . import _buckets as bk

_HASH_MUL = 2654435761  # Knuth's multiplicative constant, 2**32 / golden ratio
_MAX_PROGRAMS = 2**31 - 1


@triton.jit(do_not_specialize=["B", "TS", "shift", "max_probes", "n0", "out_stride", "num_groups"])
def _sparse_dot_kernel(
    d_idx_ptr, d_val_ptr, d_off_ptr, keys_ptr, vals_ptr, qidx_ptr, out_ptr,
    B, TS, shift, max_probes, n0, out_stride, num_groups,
    PAIRED: tl.constexpr, QB: tl.constexpr, BLOCK_T: tl.constexpr,
):
    """Scores of QB queries (or query_index[n] when PAIRED) against document ``n0 + n``.

    keys/vals: [B, TS] tables (see the module docstring). out: paired [N]; all-pairs row b at
    out_ptr + b * out_stride, the local document index as the column.
    """
    pid = tl.program_id(0).to(tl.int64)
    g = tl.arange(0, QB)
    if PAIRED:
        n = pid
        qb = tl.load(qidx_ptr + n0 + n) + g
    else:
        n = pid // num_groups
        qb = (pid % num_groups) * QB + g
    doc = n0 + n
    q_ok = qb < B
    start = tl.load(d_off_ptr + doc)
    end = tl.load(d_off_ptr + doc + 1)
    base = qb * TS
    tcols = tl.arange(0, BLOCK_T)
    acc = tl.zeros([QB, BLOCK_T], dtype=tl.float32)
    for t0 in range(start, end, BLOCK_T):
        t = t0 + tcols
        t_ok = t < end
        ids = tl.load(d_idx_ptr + t, mask=t_ok, other=0)
        w = tl.load(d_val_ptr + t, mask=t_ok, other=0.0).to(tl.float32)
        home = ((ids.to(tl.int64) * 2654435761) & 0xFFFFFFFF) >> shift
        active = q_ok[:, None] & t_ok[None, :]
        for p in range(0, max_probes):
            slot = base[:, None] + ((home[None, :] + p) & (TS - 1))
            key = tl.load(keys_ptr + slot, mask=active, other=-1)
            hit = active & (key == ids[None, :])
            wq = tl.load(vals_ptr + slot, mask=hit, other=0.0)
            acc += wq * w[None, :]
            active = active & ~hit & (key != -1)  # stop at a hit or an empty slot
    score = tl.sum(acc, axis=1)
    if PAIRED:
        tl.store(out_ptr + n + g, score, mask=g < 1)
    else:
        tl.store(out_ptr + qb * out_stride + n, score, mask=q_ok)


def build_tables(q: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Hash every query's terms into its own open-addressing table (vectorised torch, in rounds).

    Args:
        q: SparseVectors with B rows, ids unique within a row.
    Returns:
        (keys [B, TS] int32 with -1 = empty, vals [B, TS] float32, max_probes), TS = keys.shape[1].
    """
    b = len(q)
    dev = q.indices.device
    lens = q.lengths
    ts = bk.table_size(int(lens.max()) if b else 0)
    shift = 32 - (ts.bit_length() - 1)
    keys = torch.full((b * ts,), -1, dtype=torch.int32, device=dev)
    vals = torch.zeros(b * ts, dtype=torch.float32, device=dev)
    ids = q.indices.to(torch.int64)
    base = torch.repeat_interleave(torch.arange(b, device=dev, dtype=torch.int64) * ts, lens)
    home = ((ids * _HASH_MUL) & 0xFFFFFFFF) >> shift
    waiting = torch.arange(ids.numel(), device=dev)
    rounds = 0
    while waiting.numel():
        slot = base[waiting] + ((home[waiting] + rounds) & (ts - 1))
        free = keys[slot] == -1
        cand, cslot = waiting[free], slot[free]
        first = torch.full((b * ts,), ids.numel(), dtype=torch.int64, device=dev)
        first.scatter_reduce_(0, cslot, cand, reduce="amin")
        won = first[cslot] == cand
        keys[cslot[won]] = q.indices[cand[won]].to(torch.int32)
        vals[cslot[won]] = q.values[cand[won]].float()
        placed = torch.zeros(waiting.numel(), dtype=torch.bool, device=dev)
        placed[free.nonzero().squeeze(1)[won]] = True
        waiting = waiting[~placed]
        rounds += 1
    return keys.view(b, ts), vals.view(b, ts), rounds


def sparse_dot(q: Any, d: Any, query_index: torch.Tensor | None = None, *,
               tables: tuple[torch.Tensor, torch.Tensor, int] | None = None) -> torch.Tensor:
    """Sparse dot products, hash-based, one launch for the whole batch.

    Args:
        q: SparseVectors, B rows.  d: SparseVectors, N rows, same vocab_size, dtype and device.
        query_index: None for all-pairs, else [N] int64 on the device (document n vs query query_index[n]).
        tables: ``build_tables(q)``, to reuse the query tables across calls with the same queries.
    Returns:
        float32 [B, N] or [N].
    """
    paired = query_index is not None
    b, n = len(q), len(d)
    dev = d.indices.device
    out = torch.empty((n,) if paired else (b, n), dtype=torch.float32, device=dev)
    if out.numel() == 0:
        return out
    if q.indices.numel() == 0 or d.indices.numel() == 0:  # no shared term anywhere: every score is 0
        return out.zero_()
    keys, vals, max_probes = tables if tables is not None else build_tables(q)
    ts = keys.shape[1]
    shift = 32 - (ts.bit_length() - 1)
    cfg = bk.sparse_config(b, int(d.lengths.max()), paired)
    num_groups = 1 if paired else triton.cdiv(b, cfg.QB)
    qidx = query_index if paired else d.offsets
    step = max(1, _MAX_PROGRAMS // num_groups)
    for s in range(0, n, step):
        c = min(step, n - s)
        o = out[s:] if paired else out[:, s:]
        _sparse_dot_kernel[(c * num_groups,)](
            d.indices, d.values, d.offsets, keys, vals, qidx, o,
            b, ts, shift, max_probes, s, n, num_groups,
            PAIRED=paired, QB=cfg.QB, BLOCK_T=cfg.BLOCK_T, num_warps=cfg.num_warps, enable_fp_fusion=bk.FP_FUSION,
        )
    return out
