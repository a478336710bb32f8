"""MaxSim on CPU: the native kernels (every SIMD level the host has) and the reference backend against
``reference.maxsim_ref(upcast=True)``; semantics of empty/padded inputs; error messages.

Shapes target the C++ kernel's blocking (csrc/cpu/maxsim_impl-inl.h): a query tile is up to 4 vectors of 16
lanes (AVX-512; 2 x 8 on AVX2), a register block holds 16/12/8/6 document rows for 1/2/3/4 query vectors
(8/4 on AVX2), tails run 4-row then 1-row blocks, and documents are scored in row chunks of 32768 / D rows.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import MultiVectors
from fusedscore.reference import maxsim_ref

from _tol import assert_scores_close, key_for
from conftest import DIMS, DTYPES

NATIVE = _dispatch.native_module()
LEVELS = NATIVE.info()["simd_levels"] if NATIVE is not None else []
needs_native = pytest.mark.skipif(NATIVE is None, reason=f"native extension not built: {_dispatch._NATIVE_ERR!r}")

# Query lengths: 1 (a single lane), 15/16/17 (around one 16-lane vector), 32 (ColBERT's query length: two
# vectors), 33 (three vectors, NV=3 tile), 128 (two full 64-lane tiles on AVX-512, eight 16-lane tiles on AVX2).
LQ = [1, 15, 16, 17, 32, 33, 128]
# Document lengths: 0 (empty: -inf), 1 (1-row blocks only), 3 (below the 4-row tail block), 4/5 (one tail
# block, then a 1-row one), 6/8/12/16 (exactly one main block for NV=4/3/2/1), 7/9/11/13/15/17 (one either side),
# 24/25 (two blocks, then a tail), 49 (several blocks, a 4-row tail and a 1-row tail).
LD = [0, 1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 24, 25, 49]


@pytest.fixture(params=LEVELS or [pytest.param(None, marks=needs_native)])
def simd(request):
    """Run the test once per SIMD level of this CPU/build, restoring the level afterwards. Small inputs are
    threaded too (min-work scale 0), so the multi-threaded paths run on these shapes."""
    prev = NATIVE.set_simd(request.param)
    prev_scale = NATIVE._set_min_work_scale(0.0)
    yield request.param
    NATIVE.set_simd(prev)
    NATIVE._set_min_work_scale(prev_scale)


def _multivectors(lengths: list[int], dim: int, dtype: torch.dtype, seed: int) -> MultiVectors:
    g = torch.Generator().manual_seed(seed)
    return MultiVectors.from_list([torch.randn(n, dim, generator=g).to(dtype) for n in lengths], dim=dim, dtype=dtype)


def _abs(x: MultiVectors) -> MultiVectors:
    return MultiVectors(x.values.abs(), x.offsets)


def _paired_groups(n_queries: int, n_docs: int) -> torch.Tensor:
    """Candidate groups of uneven sizes (including an empty one when there are enough queries)."""
    cuts = sorted({(i * i * 7) % (n_docs + 1) for i in range(1, n_queries)})
    cuts = (cuts + [n_docs] * n_queries)[: n_queries - 1]
    return torch.tensor([0] + sorted(cuts) + [n_docs])


def _check(q: MultiVectors, d: MultiVectors, got: torch.Tensor, query_index=None, reduce="sum") -> None:
    ref = maxsim_ref(q, d, query_index=query_index, reduce=reduce)
    mag = maxsim_ref(_abs(q), _abs(d), query_index=query_index, reduce=reduce)
    assert_scores_close(got, ref, mag, key_for(q.dtype))


@functools.lru_cache(maxsize=None)
def _case(dim: int, dtype: torch.dtype, mode: str, reduce: str):
    """Inputs and the float64 reference, computed once and shared by every SIMD level."""
    q = _multivectors(LQ, dim, dtype, seed=dim)
    d = _multivectors(LD, dim, dtype, seed=1000 + dim)
    groups = _paired_groups(len(q), len(d)) if mode == "pairs" else None
    qi = fs.ops.groups_to_query_index(groups, len(q), len(d), "test") if groups is not None else None
    ref = maxsim_ref(q, d, query_index=qi, reduce=reduce)
    mag = maxsim_ref(_abs(q), _abs(d), query_index=qi, reduce=reduce)
    return q, d, groups, ref, mag


@needs_native
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("mode", ["all", "pairs"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_matches_reference(simd, dtype, dim, mode, reduce):
    q, d, groups, ref, mag = _case(dim, dtype, mode, reduce)
    got = fs.maxsim(q, d, mode=mode, groups=groups, reduce=reduce, backend="native")
    assert got.dtype == torch.float32
    assert_scores_close(got, ref, mag, key_for(dtype))


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [7, 128, 129])
def test_long_queries_and_documents(simd, dtype, dim):
    """Lq = 300 needs five query tiles (the last one partial); Ld = 300 and 520 cross the row-chunk boundary
    (32768 / D rows, 256 at D = 128), so running maxima must carry across chunks."""
    q, d, ref, mag = _long_case(dtype, dim)
    assert_scores_close(fs.maxsim(q, d, backend="native"), ref, mag, key_for(dtype))


@functools.lru_cache(maxsize=None)
def _long_case(dtype: torch.dtype, dim: int):
    q = _multivectors([300, 32], dim, dtype, seed=7)
    d = _multivectors([300, 520, 64], dim, dtype, seed=8)
    return q, d, maxsim_ref(q, d), maxsim_ref(_abs(q), _abs(d))


@needs_native
def test_paired_unsorted_query_index(simd):
    """Documents of one query need not be contiguous: each thread re-packs when the query changes."""
    q = _multivectors([32, 5, 17, 0], 24, torch.float32, seed=3)
    d = _multivectors([int(x) for x in torch.randint(0, 40, (200,), generator=torch.Generator().manual_seed(4))],
                      24, torch.float32, seed=5)
    qi = torch.randint(0, len(q), (len(d),), generator=torch.Generator().manual_seed(6))
    out = torch.empty(len(d))
    NATIVE.maxsim(q.values.numpy(), q.offsets.numpy(), d.values.numpy(), d.offsets.numpy(), qi.numpy(), "float32",
                  False, out.numpy())
    _check(q, d, out, query_index=qi)


@functools.lru_cache(maxsize=None)
def _doc_index_case(dim: int, dtype: torch.dtype, reduce: str):
    """Pairs that read documents from a corpus by id: three pairs per corpus document on average, in random
    order with repeats, the empty document (LD[0] == 0) referenced first, candidate groups of uneven sizes."""
    q = _multivectors(LQ, dim, dtype, seed=dim)
    d = _multivectors(LD, dim, dtype, seed=1000 + dim)
    ids = torch.randint(0, len(d), (3 * len(d),), generator=torch.Generator().manual_seed(dim))
    ids[:2] = 0
    groups = _paired_groups(len(q), ids.numel())
    qi = fs.ops.groups_to_query_index(groups, len(q), ids.numel(), "test")
    ref = maxsim_ref(q, d, query_index=qi, reduce=reduce, doc_index=ids)
    mag = maxsim_ref(_abs(q), _abs(d), query_index=qi, reduce=reduce, doc_index=ids)
    return q, d, groups, ids, ref, mag


@needs_native
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("dim", [7, 17, 128])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_doc_index_matches_reference(simd, dtype, dim, reduce):
    """Paired mode reading documents in place by doc_index (unsorted, repeated, an empty document)."""
    q, d, groups, ids, ref, mag = _doc_index_case(dim, dtype, reduce)
    got = fs.maxsim(q, d, mode="pairs", groups=groups, doc_index=ids, reduce=reduce, backend="native")
    assert got.shape == ids.shape and got.dtype == torch.float32
    assert bool((got[:2] == float("-inf")).all())  # the empty document, referenced by the first two pairs
    assert_scores_close(got, ref, mag, key_for(dtype))
    # the same kernel on the gathered documents gives the same bits: doc_index only moves where rows are read
    gathered = fs.maxsim(q, d.select(ids), mode="pairs", groups=groups, reduce=reduce, backend="native")
    assert torch.equal(got, gathered)


def _separate(d: MultiVectors) -> list[torch.Tensor]:
    """The documents as a list of separately allocated tensors (what PyLate and FlagEmbedding hand over)."""
    return [t.clone() for t in d.to_list()]


@needs_native
@pytest.mark.parametrize("mode", ["all", "pairs"])
@pytest.mark.parametrize("dim", [1, 7, 16, 33, 128, 129])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_list_documents_read_in_place(simd, dtype, dim, mode):
    """A list of documents is scored where each item lies (maxsim_rows): the same kernel as on the packed
    container, so the same bits, for every SIMD level, with empty and 1-row documents among them."""
    q, d, groups, ref, mag = _case(dim, dtype, mode, "sum")
    got = fs.maxsim(q, _separate(d), mode=mode, groups=groups, backend="native")
    assert torch.equal(got, fs.maxsim(q, d, mode=mode, groups=groups, backend="native"))
    assert_scores_close(got, ref, mag, key_for(dtype))
    # the reference backend packs the list first
    if dtype == torch.float32:
        assert_scores_close(fs.maxsim(q, _separate(d), mode=mode, groups=groups, backend="reference"), ref, mag,
                            key_for(dtype))


@needs_native
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_native_list_documents_by_doc_index(simd, reduce):
    q, d, groups, ids, ref, mag = _doc_index_case(17, torch.float32, reduce)
    got = fs.maxsim(q, _separate(d), mode="pairs", groups=groups, doc_index=ids, reduce=reduce, backend="native")
    assert torch.equal(got, fs.maxsim(q, d, mode="pairs", groups=groups, doc_index=ids, reduce=reduce,
                                      backend="native"))


def test_list_documents_numpy_and_strided_items():
    """numpy items share memory; a non-contiguous item is made contiguous (a copy of that item only)."""
    g = torch.Generator().manual_seed(41)
    q = [torch.randn(5, 12, generator=g)]
    base = torch.randn(12, 9, generator=g)
    docs = [torch.randn(3, 12, generator=g).numpy(), base.T, torch.randn(0, 12)]
    assert not docs[1].is_contiguous()
    got = fs.maxsim(q, docs)
    want = fs.maxsim(q, MultiVectors.from_list([torch.from_numpy(docs[0]), base.T.contiguous(), docs[2]]))
    assert torch.equal(got, want) and got[0, 2] == float("-inf")


@needs_native
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_list_documents_with_non_finite_values_raise(simd, dtype, bad):
    """List items are never scanned ahead: the kernel turns a NaN/Inf row into a NaN score (sticky in the
    running max, whatever the row's position), and maxsim reports the document by its index in the list."""
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


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_doc_index_without_groups_and_empty(backend):
    """groups may be omitted when B == len(doc_index); an empty doc_index gives an empty result."""
    if backend == "native" and NATIVE is None:
        pytest.skip("native extension not built")
    q = _multivectors([4, 0, 9], 8, torch.float32, seed=31)
    d = _multivectors([3, 5, 0, 2], 8, torch.float32, seed=32)
    ids = torch.tensor([3, 3, 1])
    got = fs.maxsim(q, d, mode="pairs", doc_index=ids, backend=backend)
    ref = maxsim_ref(q, d.select(ids), query_index=torch.arange(3))
    assert_scores_close(got, ref, maxsim_ref(_abs(q), _abs(d.select(ids)), query_index=torch.arange(3)),
                        key_for(torch.float32))
    assert got[1] == 0.0  # an empty query scores 0
    empty = fs.maxsim(q, d, mode="pairs", groups=[0, 0, 0, 0], doc_index=torch.zeros(0, dtype=torch.int64),
                      backend=backend)
    assert empty.shape == (0,)


def test_reference_doc_index_is_select_then_score():
    """The spec: scoring by doc_index equals gathering the documents first (the reference backend too)."""
    q, d, groups, ids, _, mag = _doc_index_case(9, torch.float32, "mean")
    qi = fs.ops.groups_to_query_index(groups, len(q), ids.numel(), "test")
    for upcast in (True, False):
        a = maxsim_ref(q, d, query_index=qi, reduce="mean", doc_index=ids, upcast=upcast)
        b = maxsim_ref(q, d.select(ids), query_index=qi, reduce="mean", upcast=upcast)
        assert_scores_close(a, b, mag, key_for(torch.float32))
    got = fs.maxsim(q, d, mode="pairs", groups=groups, doc_index=ids, reduce="mean", backend="reference")
    assert_scores_close(got, b, mag, key_for(torch.float32))


@needs_native
@settings(max_examples=30, deadline=None)
@given(
    q_lens=st.lists(st.integers(0, 70), min_size=0, max_size=4),
    d_lens=st.lists(st.integers(0, 40), min_size=0, max_size=6),
    dim=st.integers(1, 40),
    dtype=st.sampled_from(DTYPES),
    reduce=st.sampled_from(["sum", "mean"]),
    paired=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_ragged(q_lens, d_lens, dim, dtype, reduce, paired, seed):
    """Random ragged shapes, every SIMD level: native == reference within tolerance."""
    q = _multivectors(q_lens, dim, dtype, seed)
    d = _multivectors(d_lens, dim, dtype, seed + 1)
    qi = None
    if paired:
        if not q_lens:
            return  # paired mode needs a query for every document
        qi = torch.randint(0, len(q), (len(d),), generator=torch.Generator().manual_seed(seed)).sort().values
    groups = None if qi is None else torch.searchsorted(qi, torch.arange(len(q) + 1))
    prev, prev_scale = NATIVE.info()["simd"], NATIVE._set_min_work_scale(0.0)
    try:
        for level in LEVELS:
            NATIVE.set_simd(level)
            got = fs.maxsim(q, d, mode="pairs" if paired else "all", groups=groups, reduce=reduce, backend="native")
            _check(q, d, got, query_index=qi, reduce=reduce)
    finally:
        NATIVE.set_simd(prev)
        NATIVE._set_min_work_scale(prev_scale)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_never_wins(backend, dtype):
    """Every real similarity is negative; padded positions (zeros, or huge values) would win a max if scored."""
    if backend == "native" and NATIVE is None:
        pytest.skip("native extension not built")
    g = torch.Generator().manual_seed(11)
    q = torch.rand(3, 6, 16, generator=g) + 0.1  # positive
    d = -(torch.rand(4, 9, 16, generator=g) + 0.1)  # negative: every <q_i, d_j> < 0
    q_mask = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]
    d_mask = torch.rand(4, 9, generator=g) < 0.6
    d_mask[:, 0] = True
    d = torch.where(d_mask[..., None], d, torch.full_like(d, 1e4))  # huge positive padding
    qm = MultiVectors.from_padded(q.to(dtype), mask=q_mask)
    dm = MultiVectors.from_padded(d.to(dtype), mask=d_mask)
    got = fs.maxsim(qm, dm, backend=backend)
    assert bool((got < 0).all()), got
    q_list = [q[i, q_mask[i]].to(dtype) for i in range(3)]
    d_list = [d[j, d_mask[j]].to(dtype) for j in range(4)]
    _check(MultiVectors.from_list(q_list), MultiVectors.from_list(d_list), got)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_empty_documents_and_queries(backend):
    if backend == "native" and NATIVE is None:
        pytest.skip("native extension not built")
    q = MultiVectors.from_list([torch.randn(3, 8), torch.zeros(0, 8)])
    d = MultiVectors.from_list([torch.randn(2, 8), torch.zeros(0, 8), -torch.ones(1, 8) * 100])
    for reduce in ("sum", "mean"):
        got = fs.maxsim(q, d, reduce=reduce, backend=backend)
        assert got[0, 1] == float("-inf")  # an empty document ranks below any non-empty one ...
        assert bool((got[0, [0, 2]] > float("-inf")).all())
        assert torch.equal(got[1], torch.zeros(3))  # ... and an empty query scores 0, also for mean
        assert not torch.isnan(got).any()


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_empty_sets_give_empty_results(backend):
    if backend == "native" and NATIVE is None:
        pytest.skip("native extension not built")
    q = MultiVectors.from_list([torch.randn(3, 8), torch.randn(2, 8)])
    d = MultiVectors.from_list([torch.randn(4, 8)])
    none_q = MultiVectors.from_list([], dim=8)
    none_d = MultiVectors.from_list([], dim=8)
    assert fs.maxsim(none_q, d, backend=backend).shape == (0, 1)
    assert fs.maxsim(q, none_d, backend=backend).shape == (2, 0)
    assert fs.maxsim(q, none_d, mode="pairs", groups=[0, 0, 0], backend=backend).shape == (0,)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize("mode", ["all", "pairs"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_backend_matches_float64(dtype, dim, mode, reduce):
    """The fallback backend (no C++ build) widens fp16/bf16 to fp32 and accumulates there, like every backend:
    it meets the same fp32-accumulation tolerance as native on the same shapes."""
    q, d, groups, ref, mag = _case(dim, dtype, mode, reduce)
    got = fs.maxsim(q, d, mode=mode, groups=groups, reduce=reduce, backend="reference")
    assert got.dtype == torch.float32
    assert_scores_close(got, ref, mag, key_for(dtype))


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


@needs_native
def test_native_rows_rejects_bad_tables():
    args = _raw_args()
    dv = args.pop("d_values")
    rows = np.array([dv[0:1].ctypes.data, dv[1:6].ctypes.data], dtype=np.int64)
    out = args["out"]
    NATIVE.maxsim_rows(d_rows=rows, dim=4, **args)  # the same scores as the packed call
    packed = np.empty_like(out)
    NATIVE.maxsim(d_values=dv, **{**args, "out": packed})
    assert np.array_equal(out, packed)
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
