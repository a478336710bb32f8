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

from .. import _dispatch, ops, reference
from .cases import Inputs
from .impls import Impl, Prepared, Skip, as_f32_cpu, query_index


def _fusedscore(inp: Inputs) -> Prepared:
    q, d = inp.q, inp.d
    backend = _dispatch.resolve("dense_dot", d.device).name
    mode, groups = ("pairs", inp.groups) if inp.groups is not None else ("all", None)
    return Prepared(lambda: ops.dense_dot(q, d, mode=mode, groups=groups), as_f32_cpu, backend=backend)


def _reference(inp: Inputs) -> Prepared:
    qi = query_index(inp) if inp.groups is not None else None
    q, d = inp.q, inp.d
    return Prepared(lambda: reference.dense_dot_ref(q, d, query_index=qi, upcast=False), as_f32_cpu,
                    note="dense_dot_ref(upcast=False)")


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
