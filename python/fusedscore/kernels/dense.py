"""Dense dot products on the GPU: ``out[b, n] = <q_b, d_n>`` through cuBLAS (torch), fp32 out.

A dense score is one GEMM, which cuBLAS already runs at the tensor-core roofline; a Triton kernel
would only match it. fp16/bf16 inputs multiply on tensor cores with fp32 accumulation, and where
torch provides ``aten::mm.dtype`` for CUDA the product is written in fp32 directly (no rounding of
the scores to 16 bits). Without it, the 16-bit result is widened afterwards (one rounding, ~1e-3 rel).
"""

from __future__ import annotations

import torch

_MM_OUT_DTYPE = torch._C._dispatch_has_kernel_for_dispatch_key("aten::mm.dtype", "CUDA")


def dense_dot(q: torch.Tensor, d: torch.Tensor, query_index: torch.Tensor | None = None) -> torch.Tensor:
    """Dense scores.

    Args:
        q: [B, D] fp32|fp16|bf16.  d: [N, D], same dtype and device.
        query_index: None for all-pairs, else [N] int64: document n against query query_index[n].
    Returns:
        float32 [B, N] (all-pairs) or [N] (paired). fp32 inputs follow torch's TF32 setting
        (``torch.backends.cuda.matmul.allow_tf32``, off by default: exact fp32).
    """
    if query_index is not None:
        # a row-wise dot is bandwidth-bound: widen to fp32 and reduce (exact products, fp32 sum)
        return torch.einsum("nd,nd->n", q[query_index].float(), d.float())
    if q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        if _MM_OUT_DTYPE:
            return torch.mm(q, d.T, out_dtype=torch.float32)
        return torch.mm(q, d.T).float()
    return torch.mm(q.float(), d.float().T)
