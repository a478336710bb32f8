"""MaxSim of documents given as a list: the native backend scores each item where it lies (``maxsim_rows``, the
row-address kernel), the other backends pack the list first. Against ``reference.maxsim_ref`` on the packed
documents, every SIMD level; non-finite items found while scoring; the binding's checks of its address table.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import fusedscore as fs
from fusedscore.containers import MultiVectors
from fusedscore.reference import maxsim_ref

from _tol import assert_scores_close, key_for
from conftest import DTYPES, NATIVE, abs_values, multivectors, naive_maxsim, needs_native

# 0/1-token documents, one below and one across the native kernel's 4-row tail blocks, one of several blocks
LD = [0, 1, 3, 5, 17, 49]
LQ = [1, 17, 33]  # one lane, a partial vector, three vectors


@functools.lru_cache(maxsize=None)
def _case(dim: int, dtype: torch.dtype, mode: str, reduce: str = "sum"):
    q = multivectors(LQ, dim, dtype, seed=dim)
    d = multivectors(LD, dim, dtype, seed=1000 + dim)
    groups = torch.tensor([0, 2, 2, len(LD)]) if mode == "pairs" else None  # an empty group in the middle
    qi = fs.ops.groups_to_query_index(groups, len(q), len(d), "test") if groups is not None else None
    ref = maxsim_ref(q, d, query_index=qi, reduce=reduce)
    mag = maxsim_ref(abs_values(q), abs_values(d), query_index=qi, reduce=reduce)
    return q, d, groups, ref, mag


def _separate(d: MultiVectors) -> list[torch.Tensor]:
    """The documents as a list of separately allocated tensors (what PyLate and FlagEmbedding hand over)."""
    return [t.clone() for t in d.to_list()]


@needs_native
@pytest.mark.parametrize("mode", ["all", "pairs"])
@pytest.mark.parametrize("dim", [1, 7, 16, 33, 128, 129])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_list_documents_read_in_place(simd, dtype, dim, mode):
    """A list of documents is scored where each item lies: the same kernel as on the packed container, so the same
    bits, for every SIMD level, with empty and 1-row documents among them."""
    q, d, groups, ref, mag = _case(dim, dtype, mode)
    got = fs.maxsim(q, _separate(d), mode=mode, groups=groups, backend="native")
    assert_scores_close(got, ref, mag, key_for(dtype))
    assert torch.equal(got, fs.maxsim(q, d, mode=mode, groups=groups, backend="native"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_backend_packs_the_list(dtype):
    q, d, groups, ref, mag = _case(17, dtype, "pairs")
    assert_scores_close(fs.maxsim(q, _separate(d), mode="pairs", groups=groups, backend="reference"), ref, mag,
                        key_for(dtype))


@needs_native
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_native_list_documents_by_doc_index(simd, reduce):
    """Pairs read list items by id (unsorted, repeated, the empty item first)."""
    q, d, _, _, _ = _case(17, torch.float32, "all")
    ids = torch.tensor([0, 5, 2, 2, 4, 1, 3, 5, 0])
    groups = [0, 4, 4, 9]
    qi = [0, 0, 0, 0, 2, 2, 2, 2, 2]
    got = fs.maxsim(q, _separate(d), mode="pairs", groups=groups, doc_index=ids, reduce=reduce, backend="native")
    pairs = list(zip(qi, ids.tolist()))
    want = naive_maxsim(q, d, reduce, pairs)
    assert_scores_close(got, want, naive_maxsim(abs_values(q), abs_values(d), reduce, pairs), key_for(torch.float32))
    assert got[0] == float("-inf")


def test_list_documents_numpy_and_strided_items():
    """numpy items share memory; a non-contiguous item is made contiguous (a copy of that item only)."""
    g = torch.Generator().manual_seed(41)
    q = [torch.randn(5, 12, generator=g)]
    base = torch.randn(12, 9, generator=g)
    docs = [torch.randn(3, 12, generator=g).numpy(), base.T, torch.randn(0, 12)]
    assert not docs[1].is_contiguous()
    got = fs.maxsim(q, docs)
    items = [torch.from_numpy(docs[0]), base.T, docs[2]]
    assert_scores_close(got, naive_maxsim(q, items), naive_maxsim([t.abs() for t in q], [t.abs() for t in items]),
                        key_for(torch.float32))
    assert got[0, 2] == float("-inf")


@needs_native
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_list_documents_with_non_finite_values_raise(simd, dtype, bad):
    """List items are never scanned ahead: the kernel turns a NaN/Inf row into a NaN score (sticky in the running
    max, whatever the row's position), and maxsim reports the document by its index in the list."""
    g = torch.Generator().manual_seed(42)
    for lq in (1, 17, 40, 70):  # one lane, a partial vector, several vectors, two tiles
        q = [torch.randn(lq, 33, generator=g).to(dtype)]
        docs = [torch.randn(n, 33, generator=g).to(dtype) for n in (3, 30, 1)]
        for row in (0, 13, 29):  # first row, mid-block, the last (tail) row
            bad_docs = [t.clone() for t in docs]
            bad_docs[1][row, 5] = bad
            with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must be finite \(no NaN or Inf\)"):
                fs.maxsim(q, bad_docs, backend="native")
            with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must be finite"):
                fs.maxsim(q * 3, bad_docs, mode="pairs", groups=[0, 1, 2, 3], doc_index=[0, 2, 1], backend="native")
        assert not torch.isnan(fs.maxsim(q, docs, backend="native")).any()


@needs_native
def test_unchecked_container_with_nan_raises(simd):
    """check_finite=False skips the scan at construction: a non-finite document then scores NaN in the kernel,
    never a finite number that silently dropped it, and the op refuses to return (or rank) that NaN."""
    v = torch.randn(10, 8)
    v[6, 2] = float("inf")
    d = MultiVectors(v, torch.tensor([0, 4, 10]), check_finite=False)
    with pytest.raises(ValueError, match=r"maxsim: scores must not be NaN, got NaN for queries\[0\] x docs\[1\]"):
        fs.maxsim(MultiVectors.from_list([torch.randn(3, 8)]), d, backend="native")


@needs_native
def test_native_rows_rejects_bad_tables():
    qv = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    dv = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    args = dict(q_values=qv, q_offsets=np.array([0, 2, 5]), d_offsets=np.array([0, 1, 6]), query_index=None,
                dtype="float32", reduce_mean=False, out=np.empty((2, 2), np.float32))
    rows = np.array([dv[0:1].ctypes.data, dv[1:6].ctypes.data], dtype=np.int64)
    NATIVE.maxsim_rows(d_rows=rows, dim=4, **args)
    qs, ds = [torch.from_numpy(qv[0:2]), torch.from_numpy(qv[2:5])], [torch.from_numpy(dv[0:1]), torch.from_numpy(dv[1:])]
    assert_scores_close(torch.from_numpy(args["out"]), naive_maxsim(qs, ds),
                        naive_maxsim([t.abs() for t in qs], [t.abs() for t in ds]), key_for(torch.float32))
    with pytest.raises(ValueError, match=r"maxsim_rows: d_rows must be non-null for every non-empty document, got 0 "
                                         r"at position 1"):
        NATIVE.maxsim_rows(d_rows=np.array([rows[0], 0], dtype=np.int64), dim=4, **args)
    with pytest.raises(ValueError, match=r"maxsim_rows: d_rows must be of shape \[N\]=\(2,\) like d_offsets, got \(1,\)"):
        NATIVE.maxsim_rows(d_rows=rows[:1], dim=4, **args)
    with pytest.raises(TypeError, match=r"maxsim_rows: d_rows must have dtype int64 \(addresses\), got int32"):
        NATIVE.maxsim_rows(d_rows=rows.astype(np.int32), dim=4, **args)
    with pytest.raises(ValueError, match=r"maxsim_rows: d_values must be of shape \[Td, D\] with D=4 to match q_values, "
                                         r"got D=5"):
        NATIVE.maxsim_rows(d_rows=rows, dim=5, **args)
