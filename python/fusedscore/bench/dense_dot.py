"""Dense dot-product implementations timed by the benchmark (op ``dense_dot``: one vector per text, ``[B, D]``
queries against ``[N, D]`` documents).

- ``fusedscore``: ``fusedscore.dense_dot`` with the default dispatch (torch's fp32 matmul on CPU, cuBLAS with an fp32
  output through ``fusedscore.kernels`` on CUDA) and its NaN/Inf scan of the inputs.
- ``torch-reference``: ``fusedscore.reference.dense_dot_ref(upcast=False)``, the baseline the tests use.
- ``torch-matmul``: ``(q @ d.T).float()`` in the input dtype, what a caller writes by hand (16-bit inputs give
  16-bit rounded scores, widened afterwards).

A case of this op holds plain tensors: ``Inputs.q`` [B, D], ``Inputs.d`` [N, D] (all B * n_docs candidates in
"pairs" mode, with ``Inputs.groups``).
"""

from __future__ import annotations

from .. import ops, reference
from .cases import Inputs
from .impls import Impl, Prepared, Skip, as_f32_cpu, public_op, reference_op

_fusedscore = public_op("dense_dot", ops.dense_dot)
_reference = reference_op(reference.dense_dot_ref, "dense_dot_ref(upcast=False)")


def _matmul(inp: Inputs) -> Prepared:
    if inp.groups is not None:
        raise Skip("torch-matmul: all-pairs only (a paired dot is not one matmul)")
    q, d = inp.q, inp.d
    return Prepared(lambda: (q @ d.T).float(), as_f32_cpu, note="(q @ d.T).float() in the input dtype")


IMPLS: list[Impl] = [
    Impl("fusedscore", "fusedscore", "dense_dot", _fusedscore),
    Impl("torch-reference", "baseline", "dense_dot", _reference),
    Impl("torch-matmul", "baseline", "dense_dot", _matmul),
]

__all__ = ["IMPLS"]
