"""Launch tables: bucketed compile-time constants, so a new sequence length never recompiles a kernel.

Triton compiles one binary per distinct set of ``tl.constexpr`` values (and per 16-divisibility of
integer arguments). Lengths are read from the offsets in device memory, never passed as constexprs;
the constexprs are powers of two taken from a short list, so the set of binaries a workload can
trigger is small and known in advance (``fusedscore.warmup`` compiles the common ones).

The tile sizes below are chosen by reasoning, not by autotuning on the device: MaxSim on ColBERT
shapes (Lq 32, Ld 64..300, D 128, fp16) is bound by reading document tokens, so tiles aim at full-width
16-byte loads, a ``tl.dot`` M dimension of 64..128 rows (tensor-core friendly) and 3 pipeline stages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

MAX_ROWS = 128        # query-token rows per MaxSim tile (QG queries x LQ token slots)
MAX_BLOCK_K = {torch.float16: 128, torch.bfloat16: 128, torch.float32: 64}  # embedding-dim chunk
MIN_DOT = 16          # tl.dot needs every tile dimension >= 16
# Stated, not left to Triton's default (which changes in 3.10 and warns while unset): fused multiply-add
# in the sparse accumulation and the score arithmetic (one rounding instead of two).
FP_FUSION = True


def next_pow2(x: int) -> int:
    """Smallest power of two >= x (1 for x <= 1)."""
    x = int(x)
    return 1 if x <= 1 else 1 << (x - 1).bit_length()


def clamp(x: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, x))


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@dataclass(frozen=True)
class MaxSimConfig:
    """One MaxSim launch shape. ``QG * LQ`` rows: QG queries, LQ token slots each (a power of two)."""

    QG: int
    LQ: int
    BLOCK_D: int
    BLOCK_K: int
    ONE_K: bool
    num_warps: int
    num_stages: int


def maxsim_config(max_lq: int, dim: int, dtype: torch.dtype, n_queries: int, paired: bool) -> MaxSimConfig:
    """Bucket the shape of a MaxSim launch.

    Args:
        max_lq: the longest query (tokens); queries longer than LQ loop over query tiles in the kernel.
        dim: D.  dtype: the input dtype.  n_queries: B.  paired: one query per program (QG = 1).
    """
    lq = clamp(next_pow2(max_lq), MIN_DOT, MAX_ROWS)
    qg = 1 if paired else clamp(MAX_ROWS // lq, 1, next_pow2(n_queries))
    block_k = clamp(next_pow2(dim), MIN_DOT, MAX_BLOCK_K[dtype])
    block_d = 64
    rows = qg * lq
    num_warps = 8 if rows * block_d >= 8192 else 4
    num_stages = 2 if dtype == torch.float32 else 3
    return MaxSimConfig(QG=qg, LQ=lq, BLOCK_D=block_d, BLOCK_K=block_k, ONE_K=dim <= block_k,
                        num_warps=num_warps, num_stages=num_stages)


@dataclass(frozen=True)
class SparseConfig:
    """One sparse-dot launch shape: QB queries x BLOCK_T document terms per probe step."""

    QB: int
    BLOCK_T: int
    num_warps: int


def sparse_config(n_queries: int, max_doc_nnz: int, paired: bool) -> SparseConfig:
    block_t = clamp(next_pow2(max_doc_nnz), 16, 128 if paired else 64)
    qb = 1 if paired else clamp(next_pow2(n_queries), 1, 32)
    return SparseConfig(QB=qb, BLOCK_T=block_t, num_warps=4)


def table_size(max_query_nnz: int) -> int:
    """Open-addressing table slots per query: a power of two, load factor <= 1/2, at least 16."""
    return max(16, next_pow2(2 * max(1, int(max_query_nnz))))
