"""Dense dot products (``fusedscore.dense_dot``: one vector per text) on every backend against
``reference.dense_dot_ref(upcast=True)`` (float64): "torch" (fp32 matmul, the CPU default), the reference backend,
and "triton" (``fusedscore.kernels.dense_dot``: cuBLAS on CUDA; under TRITON_INTERPRET=1 the same launcher on CPU
tensors). Every dtype, the odd dims of conftest.DIMS, all-pairs and paired mode, empty sides, error messages.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusedscore as fs
from fusedscore.reference import dense_dot_ref

from _tol import assert_scores_close, key_for
from conftest import DIMS, DTYPES, backend_params

ALL = backend_params("torch", "reference", "triton")


def _key(backend: str, device: str, dtype: torch.dtype):
    """The tolerance of this path: fp32 accumulation everywhere, except a CUDA torch without ``aten::mm.dtype``,
    whose 16-bit product is rounded to 16 bits once before it is widened (kernels/dense.py)."""
    if backend == "triton" and device == "cuda" and dtype != torch.float32:
        from fusedscore.kernels import dense

        if not dense._MM_OUT_DTYPE:
            return key_for(dtype, "out16")
    return key_for(dtype)


def _inputs(b: int, n: int, dim: int, dtype: torch.dtype, device: str, seed: int = 0):
    """Built in fp32, cast to the test dtype: the cast tensors go to both the op and the reference."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, dim, generator=g).to(dtype).to(device), torch.randn(n, dim, generator=g).to(dtype).to(device))


def _check(got, q, d, query_index=None, key=None):
    ref = dense_dot_ref(q, d, query_index=query_index)
    mag = dense_dot_ref(q.abs(), d.abs(), query_index=query_index)
    assert got.dtype == torch.float32 and got.device == q.device
    assert_scores_close(got, ref, mag, key)


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_all_pairs_matches_reference(backend, device, dtype, dim):
    q, d = _inputs(5, 7, dim, dtype, device, seed=dim)
    got = fs.dense_dot(q, d, backend=backend)
    assert got.shape == (5, 7)
    _check(got, q, d, key=_key(backend, device, dtype))


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("dim", [1, 7, 33, 129])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pairs_matches_reference(backend, device, dtype, dim):
    """Uneven candidate groups (one empty): document n against query query_index[n]."""
    q, d = _inputs(4, 9, dim, dtype, device, seed=100 + dim)
    groups = [0, 3, 3, 8, 9]
    got = fs.dense_dot(q, d, mode="pairs", groups=groups, backend=backend)
    qi = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2, 3], device=device)
    assert got.shape == (9,)
    _check(got, q, d, qi, key=key_for(dtype))  # paired scores are fp32 row dots on every path
    same = fs.dense_dot(q[qi], d, mode="pairs", backend=backend)  # groups may be omitted when B == N
    _check(same, q[qi], d, torch.arange(9, device=device), key=key_for(dtype))


@pytest.mark.parametrize("backend, device", ALL)
def test_hand_computed_scores(backend, device):
    q = torch.tensor([[1.0, 2.0], [0.0, -1.0]], device=device)
    d = torch.tensor([[3.0, 4.0], [0.5, 0.0], [-2.0, 1.0]], device=device)
    assert fs.dense_dot(q, d, backend=backend).tolist() == [[11.0, 0.5, 0.0], [-4.0, 0.0, -1.0]]
    assert fs.dense_dot(q, d, mode="pairs", groups=[0, 2, 3], backend=backend).tolist() == [11.0, 0.5, -1.0]


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_accumulates_in_fp32(backend, device, dtype):
    """64 products of 40*40 sum to 102400, past fp16's largest finite 65504: a 16-bit output would overflow (or round
    to 102400 only by luck in bf16, which has 8 bits: 102400 = 25 * 2**12 is exact there)."""
    q = torch.full((1, 64), 40.0, dtype=dtype, device=device)
    d = torch.full((2, 64), 40.0, dtype=dtype, device=device)
    assert fs.dense_dot(q, d, backend=backend).tolist() == [[102400.0, 102400.0]]
    assert fs.dense_dot(q.expand(2, 64), d, mode="pairs", backend=backend).tolist() == [102400.0, 102400.0]


@pytest.mark.parametrize("backend, device", ALL)
def test_empty_sides(backend, device):
    q, d = _inputs(3, 4, 8, torch.float32, device)
    assert fs.dense_dot(q[:0], d, backend=backend).shape == (0, 4)
    assert fs.dense_dot(q, d[:0], backend=backend).shape == (3, 0)
    assert fs.dense_dot(q, d[:0], mode="pairs", groups=[0, 0, 0, 0], backend=backend).shape == (0,)
    # D = 0: every dot product is an empty sum
    assert fs.dense_dot(q[:, :0], d[:, :0], backend=backend).tolist() == [[0.0] * 4] * 3


def test_numpy_inputs_score_like_tensors():
    q, d = _inputs(2, 3, 5, torch.float32, "cpu")
    assert torch.equal(fs.dense_dot(q.numpy(), d.numpy()), fs.dense_dot(q, d))


def test_bench_implementations_agree_with_the_reference():
    """bench/dense_dot.py: every row it times scores the same pairs (fp32, so the same tolerance)."""
    from fusedscore.bench.cases import Case, Inputs
    from fusedscore.bench.dense_dot import IMPLS

    q, d = _inputs(3, 5, 16, torch.float32, "cpu", seed=7)
    case = Case("t/dense", "dense_dot", "all", 3, 5)
    for impl in IMPLS:
        prepared = impl.prepare(Inputs(case, q, d))
        _check(prepared.to_scores(prepared.fn()), q, d, key=key_for(torch.float32))


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("q, d, exc, match", [
    (torch.zeros(2, 4), torch.zeros(3, 5), ValueError,
     r"dense_dot: docs must have shape \[N, D\] with D=4 to match queries, got \(3, 5\)"),
    (torch.zeros(2, 4), torch.zeros(3, 4, dtype=torch.float16), TypeError,
     r"dense_dot: docs must have the dtype of queries \(float32\), got float16"),
    (torch.zeros(2, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64), TypeError,
     r"dense_dot: queries must have dtype in \(float32, float16, bfloat16\), got float64"),
    (torch.zeros(2, 4, dtype=torch.int32), torch.zeros(3, 4), TypeError, r"dense_dot: queries must have dtype in"),
    (torch.zeros(4), torch.zeros(3, 4), ValueError, r"dense_dot: queries must have shape \[B, D\], got \(4,\)"),
    (torch.zeros(2, 4), torch.zeros(1, 3, 4), ValueError, r"dense_dot: docs must have shape \[N, D\], got \(1, 3, 4\)"),
    (torch.zeros(2, 4), torch.zeros(3, 4, device="meta"), ValueError,
     r"dense_dot: inputs must be on the same device, got queries on cpu, docs on meta"),
])
def test_bad_inputs_are_errors(q, d, exc, match):
    with pytest.raises(exc, match=match):
        fs.dense_dot(q, d)


def test_bad_modes_and_groups_are_errors():
    q, d = torch.zeros(2, 4), torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"dense_dot: mode must be 'all' or 'pairs', got 'both'"):
        fs.dense_dot(q, d, mode="both")
    with pytest.raises(ValueError, match=r"dense_dot: groups is only used with mode='pairs', got mode='all'"):
        fs.dense_dot(q, d, groups=[0, 1, 3])
    with pytest.raises(ValueError, match=r"dense_dot: groups must be given when mode='pairs' and len\(queries\)=2 != "
                                         r"len\(docs\)=3"):
        fs.dense_dot(q, d, mode="pairs")
    with pytest.raises(ValueError, match=r"dense_dot: groups\[-1\] must equal the number of rows in values \(3\), got 2"):
        fs.dense_dot(q, d, mode="pairs", groups=[0, 1, 2])
    with pytest.raises(RuntimeError, match=r"dense_dot: backend must be one of \(triton, torch, reference\), got 'native'"):
        fs.dense_dot(q, d, backend="native")


def test_a_list_is_an_error_not_a_guess():
    with pytest.raises(TypeError, match=r"dense_dot: queries must be a torch.Tensor or numpy.ndarray, got list"):
        fs.dense_dot([[1.0, 2.0]], np.zeros((1, 2), np.float32))
