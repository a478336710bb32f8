"""Type stub for the compiled extension ``fusedscore._native`` (csrc/bindings/module.cpp).

Private: ``fusedscore._dispatch`` is its only caller. Arrays are NumPy, C-contiguous, native byte order and never
converted: a wrong dtype raises ``TypeError``, a wrong shape or malformed offsets/indices ``ValueError``. Values
arrays are float32, float16, or uint16 holding raw bf16 bits, as ``dtype`` ("float32" | "float16" | "bfloat16")
says. The GIL is released while the kernels run (calls from several Python threads run concurrently). A long call
runs in pieces of work (~5e8 multiply-adds per thread for MaxSim); called from the main thread, it retakes the GIL
between pieces to run Python's signal handlers, and stops with their exception (Ctrl-C: ``KeyboardInterrupt``, with
``out`` partly written) instead of finishing the whole job first.
"""

from typing import TypedDict

import numpy as np
import numpy.typing as npt

class NativeInfo(TypedDict):
    simd: str  # the level in use: "scalar" | "avx2" | "avx512" | "avx512bf16"
    simd_levels: list[str]  # every level this CPU and build can run, lowest first
    simd_note: str | None  # why FUSEDSCORE_SIMD was not honoured, else None
    openmp: bool
    threads: int  # OpenMP threads a call may use (OMP_NUM_THREADS)
    f16c: bool
    avx512bf16: bool
    compiler: str

def maxsim(
    q_values: npt.NDArray[np.float32 | np.float16 | np.uint16],  # [Tq, D]
    q_offsets: npt.NDArray[np.int64],  # [B+1]
    d_values: npt.NDArray[np.float32 | np.float16 | np.uint16],  # [Td, D]
    d_offsets: npt.NDArray[np.int64],  # [N+1]
    query_index: npt.NDArray[np.int64] | None,  # None: all-pairs; else [N] (or [P] with doc_index) in [0, B)
    dtype: str,
    reduce_mean: bool,
    out: npt.NDArray[np.float32],  # [B, N] (all-pairs) or [N] / [P] (paired), written in place
    doc_index: npt.NDArray[np.int64] | None = None,  # paired only: [P] in [0, N), pair n reads document doc_index[n]
) -> None:
    """out[b, n] = reduce_i max_j <q_b[i], d_n[j]> (sum, or mean over the query's tokens), fp32 accumulation.
    Paired: out[n] scores query query_index[n] against document n, or document doc_index[n] when given (read in
    place: a rerank needs no gathered copy of its candidates). An empty document scores -inf; an empty query 0."""

def maxsim_rows(
    q_values: npt.NDArray[np.float32 | np.float16 | np.uint16],  # [Tq, D]
    q_offsets: npt.NDArray[np.int64],  # [B+1]
    d_rows: npt.NDArray[np.int64],  # [N] addresses: document n's [L_n, D] C-contiguous rows (0 only if L_n == 0)
    d_offsets: npt.NDArray[np.int64],  # [N+1]: L_n = d_offsets[n+1] - d_offsets[n]
    dim: int,  # D of the documents
    query_index: npt.NDArray[np.int64] | None,
    dtype: str,
    reduce_mean: bool,
    out: npt.NDArray[np.float32],
    doc_index: npt.NDArray[np.int64] | None = None,
) -> None:
    """``maxsim`` with each document in its own buffer (a list scored without packing it). The caller keeps the
    buffers alive and checked their shape, dtype and contiguity; the addresses themselves cannot be checked here.
    A document holding NaN/Inf scores NaN (the running max keeps NaN in a real lane), so callers that never
    scanned their inputs find them in ``out``."""

def sparse_dot(
    q_idx: npt.NDArray[np.int32],  # [nnz_q], each in [0, vocab_size)
    q_val: npt.NDArray[np.float32 | np.float16 | np.uint16],  # [nnz_q]
    q_off: npt.NDArray[np.int64],  # [B+1]
    d_idx: npt.NDArray[np.int32],  # [nnz_d]
    d_val: npt.NDArray[np.float32 | np.float16 | np.uint16],  # [nnz_d]
    d_off: npt.NDArray[np.int64],  # [N+1]
    query_index: npt.NDArray[np.int64] | None,  # None: all-pairs; else [N] in [0, B)
    vocab_size: int,
    dtype: str,
    out: npt.NDArray[np.float32],  # [B, N] or [N], written in place
) -> None:
    """out[b, n] = sum over shared term ids of w_q * w_d (ids sorted and unique per row); empty rows score 0."""

def info() -> NativeInfo: ...
def set_simd(level: str) -> str:
    """Switch the process-wide SIMD level (tests); returns the previous one. ValueError if unavailable."""

def _set_min_work_scale(scale: float) -> float:
    """Tests: scale the least work a call needs per extra thread and the work per interruptible piece (1 by
    default; 0 threads even tiny calls and makes every item its own piece, so small inputs exercise the parallel
    paths and the piece loop). Returns the previous scale."""
