"""MultiVectors / SparseVectors: every constructor, the canonical form, zero-copy, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fusedscore import MultiVectors, SparseVectors

from _tol import ROUNDING, SUBNORMAL, assert_scores_close, key_for
from conftest import DTYPES, naive_maxsim


# ----------------------------------------------------------------------------- MultiVectors
@pytest.mark.parametrize("dtype", DTYPES)
def test_from_list_packs_in_order(dtype):
    items = [torch.randn(3, 5).to(dtype), torch.randn(0, 5).to(dtype), torch.randn(1, 5).to(dtype)]
    mv = MultiVectors.from_list(items)
    assert mv.offsets.tolist() == [0, 3, 3, 4]
    assert mv.dtype == dtype and mv.dim == 5 and len(mv) == 3
    for a, b in zip(items, mv.to_list()):
        assert torch.equal(a, b)


def test_from_list_numpy_and_empty():
    mv = MultiVectors.from_list([np.ones((2, 4), np.float32), np.zeros((0, 4), np.float32)])
    assert mv.lengths.tolist() == [2, 0]
    empty = MultiVectors.from_list([], dim=7)
    assert len(empty) == 0 and empty.dim == 7 and empty.num_tokens == 0


def test_values_offsets_zero_copy():
    values = torch.randn(10, 8)
    mv = MultiVectors(values, torch.tensor([0, 4, 10]))
    assert mv.values.data_ptr() == values.data_ptr()
    arr = np.random.rand(6, 3).astype(np.float32)
    mv2 = MultiVectors(arr, np.array([0, 6]))
    assert mv2.values.data_ptr() == arr.ctypes.data


def test_from_padded_mask_and_lengths_agree():
    padded = torch.randn(3, 5, 4)
    lengths = torch.tensor([5, 0, 2])
    a = MultiVectors.from_padded(padded, lengths=lengths)
    mask = torch.arange(5)[None, :] < lengths[:, None]
    b = MultiVectors.from_padded(padded, mask=mask)
    assert torch.equal(a.values, b.values) and torch.equal(a.offsets, b.offsets)
    assert torch.equal(a[0], padded[0]) and a[1].shape == (0, 4) and torch.equal(a[2], padded[2, :2])


def test_from_padded_mask_with_holes_keeps_order():
    padded = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 1]])
    mv = MultiVectors.from_padded(padded, mask=mask)
    assert mv.values.flatten().tolist() == [0.0, 2.0, 3.0, 7.0]
    assert mv.offsets.tolist() == [0, 3, 4]


def test_select_and_to_padded_roundtrip():
    mv = MultiVectors.from_list([torch.randn(2, 3), torch.randn(0, 3), torch.randn(4, 3)])
    sel = mv.select([2, 0, 2])
    assert sel.lengths.tolist() == [4, 2, 4]
    assert torch.equal(sel[0], mv[2]) and torch.equal(sel[1], mv[0])
    padded, mask = mv.to_padded()
    back = MultiVectors.from_padded(padded, mask=mask)
    assert torch.equal(back.values, mv.values) and torch.equal(back.offsets, mv.offsets)


@pytest.mark.parametrize("bad, exc, match", [
    (lambda: MultiVectors(torch.randn(4, 3), torch.tensor([0, 5])), ValueError, r"offsets\[-1\] must equal"),
    (lambda: MultiVectors(torch.randn(4, 3), torch.tensor([1, 4])), ValueError, r"offsets\[0\] must be 0"),
    (lambda: MultiVectors(torch.randn(4, 3), torch.tensor([0, 3, 2, 4])), ValueError, "non-decreasing"),
    (lambda: MultiVectors(torch.randn(4, 3), torch.tensor([0.0, 4.0])), TypeError, "offsets must have dtype int64"),
    (lambda: MultiVectors(torch.randn(4, 3).double(), torch.tensor([0, 4])), TypeError, "values must have dtype"),
    (lambda: MultiVectors(torch.randn(4), torch.tensor([0, 4])), ValueError, r"values must have shape \[T, D\]"),
    (lambda: MultiVectors(torch.randn(3, 4).T, torch.tensor([0, 4])), ValueError, "C-contiguous"),
    (lambda: MultiVectors.from_list([torch.randn(2, 3), torch.randn(2, 4)]), ValueError, r"arrays\[1\] must have shape \[L_i, 3\]"),
    (lambda: MultiVectors.from_list([torch.randn(3)]), ValueError, r"arrays\[0\] must have shape \[L_i, D\]"),
    (lambda: MultiVectors.from_list([np.ones((2, 3))]), TypeError, r"arrays\[0\] must have dtype"),
    (lambda: MultiVectors.from_list([torch.randn(2, 3), torch.randn(2, 3).half()]), TypeError, r"arrays\[1\] must have dtype float32"),
    (lambda: MultiVectors.from_list(torch.randn(2, 3)), TypeError, "arrays must be a list"),
    (lambda: MultiVectors.from_padded(torch.randn(2, 3, 4), lengths=torch.tensor([4, 1])), ValueError, r"lengths must lie in \[0, L=3\]"),
    (lambda: MultiVectors.from_padded(torch.randn(2, 3, 4), mask=torch.ones(2, 4, dtype=torch.bool)), ValueError, r"mask must have shape \[N, L\]"),
    (lambda: MultiVectors.from_padded(torch.randn(2, 3)), ValueError, r"padded must have shape \[N, L, D\]"),
    (lambda: MultiVectors(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0, 1])), ValueError, "must be finite"),
])
def test_multivectors_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        bad()


def test_nan_policy_opt_out_is_explicit():
    mv = MultiVectors(torch.tensor([[float("nan"), 1.0]]), torch.tensor([0, 1]), check_finite=False)
    assert torch.isnan(mv.values).any()


# ----------------------------------------------------------------------------- SparseVectors
def test_from_dicts_sorts_and_merges_by_max():
    sv = SparseVectors.from_dicts([{7: 1.0, "3": 2.0, 3: 5.0}, {}], vocab_size=10)
    assert sv.offsets.tolist() == [0, 2, 2]
    assert sv.indices.tolist() == [3, 7] and sv.values.tolist() == [5.0, 1.0]
    assert sv.indices.dtype == torch.int32


def test_merge_sum_and_unsorted_csr():
    sv = SparseVectors(torch.tensor([5, 1, 5, 2]), torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 3, 4]),
                       vocab_size=8, merge="sum")
    assert sv.indices.tolist() == [1, 5, 2] and sv.values.tolist() == [2.0, 4.0, 4.0]
    assert sv.offsets.tolist() == [0, 2, 3]


def test_canonical_input_is_not_copied():
    idx = torch.tensor([1, 4, 2], dtype=torch.int32)
    vals = torch.tensor([1.0, 2.0, 3.0])
    sv = SparseVectors(idx, vals, torch.tensor([0, 2, 3]), vocab_size=5)
    assert sv.indices.data_ptr() == idx.data_ptr() and sv.values.data_ptr() == vals.data_ptr()


def test_from_dicts_token_strings_through_vocab():
    vocab = {"[CLS]": 0, "man": 1, "food": 2}
    sv = SparseVectors.from_dicts([{"food": 0.5, "man": 1.5}], vocab=vocab)
    assert sv.vocab_size == 3 and sv.to_dicts() == [{1: 1.5, 2: 0.5}]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state:UserWarning")  # torch's own notice
def test_dense_scipy_torch_constructors_agree():
    scipy_sparse = pytest.importorskip("scipy.sparse")
    dense = torch.zeros(3, 9)
    dense[0, 2], dense[0, 7], dense[2, 0] = 1.5, 0.25, 2.0
    a = SparseVectors.from_dense(dense)
    b = SparseVectors.from_scipy(scipy_sparse.csr_matrix(dense.numpy()))
    c = SparseVectors.from_torch(dense.to_sparse_coo())
    d = SparseVectors.from_torch(dense.to_sparse_csr())
    for other in (b, c, d):
        assert torch.equal(a.indices, other.indices) and torch.equal(a.offsets, other.offsets)
        assert torch.equal(a.values, other.values) and a.vocab_size == other.vocab_size == 9
    assert torch.equal(a.to_dense(), dense)


def test_uncoalesced_coo_merges_duplicates():
    t = torch.sparse_coo_tensor(torch.tensor([[0, 0, 1], [3, 3, 1]]), torch.tensor([1.0, 4.0, 2.0]), (2, 5),
                                check_invariants=True)
    assert SparseVectors.from_torch(t).to_dicts() == [{3: 4.0}, {1: 2.0}]
    assert SparseVectors.from_torch(t, merge="sum").to_dicts() == [{3: 5.0}, {1: 2.0}]


@pytest.mark.parametrize("fmt", ["coo", "csc", "csr", "lil"])
def test_scipy_duplicates_follow_merge(fmt):
    """COO (and CSC) may hold one id twice; tocsr() would sum them whatever merge says (scipy's rule)."""
    scipy_sparse = pytest.importorskip("scipy.sparse")
    coo = scipy_sparse.coo_matrix((np.array([2.0, 1.0, 0.5, 3.0], np.float32), (np.array([1, 1, 0, 2]),
                                   np.array([4, 4, 0, 3]))), shape=(4, 6))
    mat = coo.asformat(fmt)
    summed = {4: 3.0} if fmt != "coo" else None  # scipy sums them converting COO to another format
    assert SparseVectors.from_scipy(mat).to_dicts() == [{0: 0.5}, summed or {4: 2.0}, {3: 3.0}, {}]
    assert SparseVectors.from_scipy(mat, merge="sum").to_dicts() == [{0: 0.5}, {4: 3.0}, {3: 3.0}, {}]


@pytest.mark.parametrize("bad, exc, match", [
    (lambda: SparseVectors.from_dicts([{12: 1.0}], vocab_size=10), ValueError, r"indices must lie in \[0, vocab_size=10\), got 12"),
    (lambda: SparseVectors(torch.tensor([-1]), torch.tensor([1.0]), torch.tensor([0, 1]), 5), ValueError, "got -1"),
    (lambda: SparseVectors(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([0, 1]), 5), TypeError, "indices must have dtype int32"),
    (lambda: SparseVectors(torch.tensor([1, 2]), torch.tensor([1.0]), torch.tensor([0, 2]), 5), ValueError, r"values must have shape \[nnz\]"),
    (lambda: SparseVectors(torch.tensor([1]), torch.tensor([1.0]), torch.tensor([0, 1]), 0), ValueError, "vocab_size must be a positive int"),
    (lambda: SparseVectors(torch.tensor([1]), torch.tensor([1.0]), torch.tensor([0, 2]), 5), ValueError, r"offsets\[-1\] must equal"),
    (lambda: SparseVectors(torch.tensor([1]), torch.tensor([1.0]), torch.tensor([0, 1]), 5, merge="mean"), ValueError, "merge must be"),
    (lambda: SparseVectors.from_dicts([{"zzz": 1.0}]), ValueError, "term 'zzz' must be an int id"),
    (lambda: SparseVectors.from_dicts([[1, 2]]), TypeError, r"rows\[0\] must be a dict"),
    (lambda: SparseVectors.from_dicts([{1: float("inf")}], vocab_size=4), ValueError, "must be finite"),
])
def test_sparse_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        bad()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.dictionaries(st.integers(0, 49), st.floats(-5, 5, allow_nan=False, width=32), max_size=12),
                max_size=6), st.sampled_from(["max", "sum"]))
def test_canonical_form_property(rows, merge):
    """Any row order and any duplicate pattern gives sorted unique ids with the merged weights."""
    ids, vals, lens = [], [], []
    for r in rows:  # duplicate every term once, reversed, with a second weight
        items = list(r.items())
        dup = [(t, w / 2) for t, w in reversed(items)]
        ids += [t for t, _ in items + dup]
        vals += [w for _, w in items + dup]
        lens.append(2 * len(items))
    off = torch.tensor([0] + list(np.cumsum(lens)), dtype=torch.int64)
    sv = SparseVectors(torch.tensor(ids, dtype=torch.int64), torch.tensor(vals, dtype=torch.float32), off, 50, merge=merge)
    expect = [{t: (max(w, w / 2) if merge == "max" else w + w / 2) for t, w in r.items()} for r in rows]
    got = sv.to_dicts()
    for g, e in zip(got, expect):
        assert list(g) == sorted(e)
        for t in e:
            # the fp32 merge and the float64 expectation cast to fp32 are each one rounding from the exact value
            assert abs(g[t] - np.float32(e[t])) <= 2 * ROUNDING[torch.float32] * abs(e[t]) + SUBNORMAL[torch.float32]


def test_strided_offsets_are_stored_contiguous():
    # a strided offsets view passed the checks but reached the native kernels as a strided array, which they
    # refuse ("q_offsets must be C-contiguous"): a valid container that no backend could score
    v = torch.randn(6, 4)
    mv = MultiVectors(v, torch.tensor([0, 9, 3, 9, 6, 9])[::2])
    assert mv.offsets.is_contiguous() and mv.offsets.tolist() == [0, 3, 6]
    sv = SparseVectors(torch.tensor([1, 2, 3]), torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 9, 2, 9, 3])[::2], 10)
    assert sv.offsets.is_contiguous() and sv.offsets.tolist() == [0, 2, 3]
    import fusedscore as fs
    items = [v[0:3], v[3:6]]
    assert_scores_close(fs.maxsim(mv, mv), naive_maxsim(items, items),
                        naive_maxsim([t.abs() for t in items], [t.abs() for t in items]), key_for(torch.float32))
    assert fs.sparse_dot(sv, sv).tolist() == [[5.0, 0.0], [0.0, 9.0]]


def test_sparse_select_negative_and_out_of_range_indices():
    # negative ids were used raw against offsets [N+1]: select([-2]) returned row N-1 instead of row N-2
    sv = SparseVectors.from_dicts([{1: 1.0}, {2: 2.0}, {3: 3.0}], vocab_size=10)
    assert sv.select([-2]).to_dicts() == [{2: 2.0}]
    assert sv.select([-1, 0]).to_dicts() == [{3: 3.0}, {1: 1.0}]
    with pytest.raises(IndexError, match="out of range"):
        sv.select([3])
    with pytest.raises(IndexError, match="out of range"):
        sv.select([-4])


_SCAN_PEAK = """
import resource, sys, torch
from fusedscore import _check as C
v = torch.full((64 << 20,), 0.5, dtype=getattr(torch, sys.argv[1]))  # 128 MiB of 16-bit values
v[-1] = float(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    C.check_finite(v, "t", "v")
except ValueError:
    pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("last", ["0.5", "nan"])  # all finite (the fast path), and the exact count after it
def test_finiteness_scan_of_16_bit_values_holds_a_block_not_a_float32_copy(dtype, last):
    """The scan once widened every fp16/bf16 value to float32 at once (+256 MiB for 128 MiB of values); in blocks
    it holds a few MiB whatever the size. Peak RSS of a fresh process."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _SCAN_PEAK, dtype, last], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout.split()[-1]) < 48 << 20
