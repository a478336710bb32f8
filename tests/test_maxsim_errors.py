"""MaxSim input errors: every message the public op and the native binding raise for bad input (STYLE 9:
"<op>: <arg> must be <expected>, got <actual>"), and the all-pairs output that cannot fit in memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import MultiVectors

from conftest import NATIVE, needs_native


def test_dim_mismatch_is_an_error():
    q = MultiVectors.from_list([torch.randn(3, 8)])
    d = MultiVectors.from_list([torch.randn(4, 6)])
    with pytest.raises(ValueError, match=r"maxsim: docs must have shape \[T, D\] with D=8 to match queries, got \(4, 6\)"):
        fs.maxsim(q, d)


def test_conversion_errors_name_the_argument():
    """A padded tensor or a list that cannot become a container: the message says which op and argument."""
    good = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match=r"maxsim: queries: MultiVectors.from_padded: padded must have dtype in "
                                        r"\(float32, float16, bfloat16\), got int32"):
        fs.maxsim(torch.zeros(2, 3, 4, dtype=torch.int32), good)
    with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must have shape \[L_i, D\], got \(3,\)"):
        fs.maxsim(good, [torch.randn(2, 4), torch.randn(3)])
    with pytest.raises(ValueError, match=r"maxsim: queries\[1\] must have shape \[L_i, D\], got \(3,\)"):
        fs.maxsim([torch.randn(2, 4), torch.randn(3)], good)
    with pytest.raises(ValueError, match=r"maxsim: queries must be a MultiVectors, a list of \[L_i, D\] arrays or a "
                                         r"\[N, L, D\] tensor, got an array of shape \(3, 4\)"):
        fs.maxsim(torch.randn(3, 4), good)
    with pytest.raises(TypeError, match=r"sparse_dot: docs: SparseVectors.from_dicts: rows\[0\] must be a dict of "
                                        r"term -> weight, got list"):
        fs.sparse_dot([{1: 1.0}], [[1, 2]])


def test_dtype_mismatch_is_an_error():
    q = MultiVectors.from_list([torch.randn(3, 8)])
    d = MultiVectors.from_list([torch.randn(4, 8).half()])
    with pytest.raises(TypeError, match=r"maxsim: docs must have the dtype of queries \(float32\), got float16"):
        fs.maxsim(q, d)


def test_bad_doc_index_is_an_error():
    q = MultiVectors.from_list([torch.randn(3, 8), torch.randn(2, 8)])
    d = MultiVectors.from_list([torch.randn(4, 8)] * 3)
    g = [0, 2, 4]
    with pytest.raises(ValueError, match=r"maxsim: doc_index must be in \[0, len\(docs\)=3\), got 3 at position 2"):
        fs.maxsim(q, d, mode="pairs", groups=g, doc_index=torch.tensor([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"maxsim: doc_index must be in \[0, len\(docs\)=3\), got -1 at position 0"):
        fs.maxsim(q, d, mode="pairs", groups=g, doc_index=[-1, 0, 0, 0])
    with pytest.raises(TypeError, match=r"maxsim: doc_index must be an integer tensor \(int64, or int32\) of "
                                        r"document ids, got float32"):
        fs.maxsim(q, d, mode="pairs", groups=g, doc_index=torch.zeros(4))
    with pytest.raises(ValueError, match=r"maxsim: doc_index must have shape \[N\] \(one document id per pair\), "
                                         r"got \(2, 2\)"):
        fs.maxsim(q, d, mode="pairs", groups=g, doc_index=torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"maxsim: doc_index is only used with mode='pairs', got mode='all'"):
        fs.maxsim(q, d, doc_index=torch.zeros(3, dtype=torch.int64))
    # groups partition the pairs (len(doc_index) == 4), not the corpus (3 documents)
    with pytest.raises(ValueError, match=r"maxsim: groups\[-1\] must equal the number of rows in values \(4\), got 3"):
        fs.maxsim(q, d, mode="pairs", groups=[0, 1, 3], doc_index=torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"maxsim: groups must be given when mode='pairs' and len\(queries\)=2 != "
                                         r"len\(docs\)=4"):
        fs.maxsim(q, d, mode="pairs", doc_index=torch.zeros(4, dtype=torch.int64))


def test_bad_groups_are_errors():
    q = MultiVectors.from_list([torch.randn(3, 8), torch.randn(2, 8)])
    d = MultiVectors.from_list([torch.randn(4, 8)] * 3)
    with pytest.raises(ValueError, match=r"maxsim: groups must have shape \[B\+1\]=\(3,\), got \(2,\)"):
        fs.maxsim(q, d, mode="pairs", groups=[0, 3])
    with pytest.raises(ValueError, match=r"maxsim: groups must be non-decreasing"):
        fs.maxsim(q, d, mode="pairs", groups=[0, 2, 1])
    with pytest.raises(ValueError, match=r"maxsim: groups\[-1\] must equal the number of rows in values \(3\), got 2"):
        fs.maxsim(q, d, mode="pairs", groups=[0, 1, 2])


# ----------------------------------------------------------------------------- the binding's own checks
def _raw_args():
    qv = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    dv = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    return dict(q_values=qv, q_offsets=np.array([0, 2, 5]), d_values=dv, d_offsets=np.array([0, 1, 6]),
                query_index=None, dtype="float32", reduce_mean=False, out=np.empty((2, 2), np.float32))


@needs_native
@pytest.mark.parametrize("change, exc, match", [
    (dict(q_values=np.zeros((5, 4))), TypeError, r"maxsim: q_values must have dtype float32 \(dtype='float32'\), got float64"),
    (dict(dtype="bfloat16"), TypeError, r"maxsim: q_values must have dtype uint16 holding bf16 bits"),
    (dict(dtype="int8"), ValueError, r"maxsim: dtype must be 'float32', 'float16' or 'bfloat16', got 'int8'"),
    (dict(q_values=[[1.0] * 4] * 5), TypeError, r"maxsim: q_values must be a numpy.ndarray, got list"),
    (dict(d_values=np.zeros((6, 8), np.float32)), ValueError, r"maxsim: d_values must be of shape \[Td, D\] with D=4"),
    (dict(d_values=np.zeros((4, 6), np.float32).T), ValueError, r"maxsim: d_values must be C-contiguous"),
    (dict(q_offsets=np.array([0, 3, 2])), ValueError, r"maxsim: q_offsets must be non-decreasing"),
    (dict(q_offsets=np.array([0, 2, 7])), ValueError, r"maxsim: q_offsets\[-1\] must be the number of rows \(5\), got 7"),
    (dict(q_offsets=np.array([1, 2, 5])), ValueError, r"maxsim: q_offsets\[0\] must be 0, got 1"),
    (dict(d_offsets=np.array([0, 1, 6], np.int32)), TypeError, r"maxsim: d_offsets must have dtype int64, got int32"),
    (dict(query_index=np.array([0, 2]), out=np.empty(2, np.float32)), ValueError,
     r"maxsim: query_index must be in \[0, 2\), got 2 at position 1"),
    (dict(out=np.empty((2, 3), np.float32)), ValueError, r"maxsim: out must be of shape \[B, N\]=\(2, 2\), got \(2, 3\)"),
    (dict(doc_index=np.array([1, 0])), ValueError,
     r"maxsim: doc_index must be None in all-pairs mode \(query_index=None\), got an array"),
    (dict(query_index=np.array([0, 0, 1]), doc_index=np.array([1, 0, 2]), out=np.empty(3, np.float32)), ValueError,
     r"maxsim: doc_index must be in \[0, 2\), got 2 at position 2"),
    (dict(query_index=np.array([0, 0, 1]), doc_index=np.array([1, 0, 1], np.int32), out=np.empty(3, np.float32)),
     TypeError, r"maxsim: doc_index must have dtype int64, got int32"),
    (dict(query_index=np.array([0, 0, 1]), doc_index=np.array([1, 0]), out=np.empty(3, np.float32)), ValueError,
     r"maxsim: doc_index must be of shape \[P\]=\(3,\) like query_index, got \(2,\)"),
    (dict(query_index=np.array([0, 0, 1]), doc_index=np.array([1, 0, 1]), out=np.empty(2, np.float32)), ValueError,
     r"maxsim: out must be of shape \[N\]=\(3,\), got \(2,\)"),
    (dict(out=np.empty((2, 2), np.float64)), TypeError, r"maxsim: out must have dtype float32, got float64"),
])
def test_native_rejects_bad_arguments(change, exc, match):
    args = _raw_args()
    args.update(change)
    with pytest.raises(exc, match=match):
        NATIVE.maxsim(**args)


def test_float64_containers_raise_type_error():
    # MultiVectors.to(dtype=float64) (what the reference uses for its ground truth) passed the op's checks and
    # then failed in the native adapter with a bare KeyError: torch.float64
    q = MultiVectors.from_list([torch.randn(2, 3)]).to(dtype=torch.float64)
    with pytest.raises(TypeError, match=r"maxsim: queries must have dtype in \(float32, float16, bfloat16\)"):
        fs.maxsim(q, q)
    with pytest.raises(TypeError, match=r"maxsim_topk: queries must have dtype in"):
        fs.maxsim_topk(q, q, 1)


# ----------------------------------------------------------------------------- memory (issue 11, item 5)
def _empty_sets(b: int, n: int) -> tuple[MultiVectors, MultiVectors]:
    """b empty queries and n empty documents: the scores are the only memory such a call needs."""
    return (MultiVectors(torch.zeros(0, 4), torch.zeros(b + 1, dtype=torch.int64)),
            MultiVectors(torch.zeros(0, 4), torch.zeros(n + 1, dtype=torch.int64)))


def test_all_pairs_output_that_cannot_fit_says_what_was_asked(monkeypatch):
    q, d = _empty_sets(100_000, 1_000_000)  # 400 GB of scores: refused before allocation
    with pytest.raises(MemoryError, match=r"maxsim: the scores \[B, N\]=\(100000, 1000000\) need 372\.5 GiB of "
                                          r"float32, more than the .* available; use fusedscore.maxsim_topk"):
        fs.maxsim(q, d)
    with pytest.raises(MemoryError, match=r"dense_dot: the scores \[B, N\]=\(100000, 1000000\) need 372\.5 GiB.*"
                                          r"blocked_topk"):
        fs.dense_dot(torch.zeros(100_000, 0), torch.zeros(1_000_000, 0))
    # where the free memory cannot be told, the allocator's own failure is reported the same way
    monkeypatch.setattr(_dispatch, "available_memory", lambda device: None)
    monkeypatch.setattr(_dispatch, "_out", lambda *a: torch.empty(2**62, dtype=torch.uint8))
    with pytest.raises(MemoryError, match=r"maxsim: the scores \[B, N\]=\(100000, 1000000\) need 372\.5 GiB of "
                                          r"float32, more than the allocator could give; use fusedscore.maxsim_topk"):
        fs.maxsim(q, d, backend="native" if NATIVE is not None else "reference")
