"""MaxSim (``fusedscore.maxsim``) on every backend against ``reference.maxsim_ref(upcast=True)``: native (every SIMD
level the host has), the reference backend, and Triton (CUDA tensors on a GPU; CPU tensors under TRITON_INTERPRET=1,
set by conftest when no GPU is present, on small shapes since the interpreter runs every program in Python).
Semantics of empty inputs on every backend. Lists of documents: test_maxsim_lists.py; padded batches:
test_maxsim_padded.py; top-k: test_maxsim_topk.py; error messages: test_maxsim_errors.py.

Native shapes target the C++ kernel's blocking (csrc/cpu/maxsim_impl-inl.h): a query tile is up to 4 vectors of 16
lanes (AVX-512; 2 x 8 on AVX2), a register block holds 16/12/8/6 document rows for 1/2/3/4 query vectors (8/4 on
AVX2), tails run 4-row then 1-row blocks, and documents are scored in row chunks of 32768 / D rows. Triton shapes
target kernels/maxsim.py: 64-token document tiles, 16..128-slot query buckets (QG queries per program), and the
embedding dim in BLOCK_K chunks (``_buckets.MAX_BLOCK_K``: 64 for fp32, 128 for fp16/bf16; a larger D loops).
"""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import _triton_aot
import fusedscore as fs
from fusedscore.containers import MultiVectors
from fusedscore.reference import maxsim_ref

from _tol import assert_scores_close, key_for
from conftest import (DIMS, DTYPES, NATIVE, SIMD_LEVELS, abs_values, backend_params, multivectors,
                      naive_maxsim, needs_native)

ALL = backend_params("native", "reference", "triton")
TRITON = backend_params("triton")

# Query lengths: 1 (a single lane), 15/16/17 (around one 16-lane vector), 32 (ColBERT's query length: two
# vectors), 33 (three vectors, NV=3 tile), 128 (two full 64-lane tiles on AVX-512, eight 16-lane tiles on AVX2).
LQ = [1, 15, 16, 17, 32, 33, 128]
# Document lengths: 0 (empty: -inf), 1 (1-row blocks only), 3 (below the 4-row tail block), 4/5 (one tail
# block, then a 1-row one), 6/8/12/16 (exactly one main block for NV=4/3/2/1), 7/9/11/13/15/17 (one either side),
# 24/25 (two blocks, then a tail), 49 (several blocks, a 4-row tail and a 1-row tail).
LD = [0, 1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 15, 16, 17, 24, 25, 49]


def _paired_groups(n_queries: int, n_docs: int) -> torch.Tensor:
    """Candidate groups of uneven sizes (including an empty one when there are enough queries)."""
    cuts = sorted({(i * i * 7) % (n_docs + 1) for i in range(1, n_queries)})
    cuts = (cuts + [n_docs] * n_queries)[: n_queries - 1]
    return torch.tensor([0] + sorted(cuts) + [n_docs])


def _check(q: MultiVectors, d: MultiVectors, got: torch.Tensor, query_index=None, reduce="sum", doc_index=None,
           path=None) -> None:
    ref = maxsim_ref(q, d, query_index=query_index, reduce=reduce, doc_index=doc_index)
    mag = maxsim_ref(abs_values(q), abs_values(d), query_index=query_index, reduce=reduce, doc_index=doc_index)
    assert got.dtype == torch.float32
    assert_scores_close(got, ref, mag, key_for(q.dtype, path))


@functools.lru_cache(maxsize=None)
def _case(dim: int, dtype: torch.dtype, mode: str, reduce: str):
    """Inputs and the float64 reference, computed once and shared by every SIMD level."""
    q = multivectors(LQ, dim, dtype, seed=dim)
    d = multivectors(LD, dim, dtype, seed=1000 + dim)
    groups = _paired_groups(len(q), len(d)) if mode == "pairs" else None
    qi = fs.ops.groups_to_query_index(groups, len(q), len(d), "test") if groups is not None else None
    ref = maxsim_ref(q, d, query_index=qi, reduce=reduce)
    mag = maxsim_ref(abs_values(q), abs_values(d), query_index=qi, reduce=reduce)
    return q, d, groups, ref, mag


# ----------------------------------------------------------------------------- native, every SIMD level
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
    q = multivectors([300, 32], dim, dtype, seed=7)
    d = multivectors([300, 520, 64], dim, dtype, seed=8)
    _check(q, d, fs.maxsim(q, d, backend="native"))


@needs_native
def test_paired_unsorted_query_index(simd):
    """Documents of one query need not be contiguous: each thread re-packs when the query changes."""
    q = multivectors([32, 5, 17, 0], 24, torch.float32, seed=3)
    d = multivectors([int(x) for x in torch.randint(0, 40, (200,), generator=torch.Generator().manual_seed(4))],
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
    q = multivectors(LQ, dim, dtype, seed=dim)
    d = multivectors(LD, dim, dtype, seed=1000 + dim)
    ids = torch.randint(0, len(d), (3 * len(d),), generator=torch.Generator().manual_seed(dim))
    ids[:2] = 0
    groups = _paired_groups(len(q), ids.numel())
    qi = fs.ops.groups_to_query_index(groups, len(q), ids.numel(), "test")
    ref = maxsim_ref(q, d, query_index=qi, reduce=reduce, doc_index=ids)
    mag = maxsim_ref(abs_values(q), abs_values(d), query_index=qi, reduce=reduce, doc_index=ids)
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
    q = multivectors(q_lens, dim, dtype, seed)
    d = multivectors(d_lens, dim, dtype, seed + 1)
    qi = None
    if paired and q_lens:  # paired mode needs a query for every document
        qi = torch.randint(0, len(q), (len(d),), generator=torch.Generator().manual_seed(seed)).sort().values
    groups = None if qi is None else torch.searchsorted(qi, torch.arange(len(q) + 1))
    prev, prev_scale = NATIVE.info()["simd"], NATIVE._set_min_work_scale(0.0)
    try:
        for level in SIMD_LEVELS:
            NATIVE.set_simd(level)
            got = fs.maxsim(q, d, mode="all" if qi is None else "pairs", groups=groups, reduce=reduce,
                            backend="native")
            _check(q, d, got, query_index=qi, reduce=reduce)
    finally:
        NATIVE.set_simd(prev)
        NATIVE._set_min_work_scale(prev_scale)


# ----------------------------------------------------------------------------- the reference backend
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


@pytest.mark.parametrize("upcast", [True, False])
def test_reference_doc_index_against_the_definition(upcast):
    """The spec itself: pair n scores its query against docs[doc_index[n]], checked one pair at a time in float64."""
    q, d, groups, ids, _, _ = _doc_index_case(9, torch.float32, "mean")
    qi = fs.ops.groups_to_query_index(groups, len(q), ids.numel(), "test")
    pairs = list(zip(qi.tolist(), ids.tolist()))
    want = naive_maxsim(q, d, "mean", pairs)
    mag = naive_maxsim(abs_values(q), abs_values(d), "mean", pairs)
    got = maxsim_ref(q, d, query_index=qi, reduce="mean", doc_index=ids, upcast=upcast).float()
    assert_scores_close(got, want, mag, key_for(torch.float32))


# ----------------------------------------------------------------------------- every backend
def _shapes(device: str) -> tuple[list[int], list[int]]:
    """(query lengths, doc lengths): small under the interpreter, larger on a GPU."""
    if device == "cpu":
        # 0 and 1 tokens; 17 crosses the 16-token query bucket; 64, 65 and 70 sit on and past a 64-token doc tile
        return [3, 0, 1, 17], [5, 0, 1, 70, 2, 64, 65]
    g = torch.Generator().manual_seed(7)
    ql = [0, 1, 32, 300] + torch.randint(1, 40, (29,), generator=g).tolist()
    dl = [0, 1, 63, 64, 65, 512] + torch.randint(0, 300, (250,), generator=g).tolist()
    return ql, dl


def _kloop_dim(dtype: torch.dtype) -> int:
    """One above the widest K chunk the Triton kernel takes for ``dtype``: the loop over K chunks, with a tail."""
    from fusedscore.kernels import _buckets

    return _buckets.MAX_BLOCK_K[dtype] + 1


@pytest.mark.parametrize("backend, device", TRITON)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 7, 17, 33, "kloop"])  # 1..33: one K chunk with a masked tail; kloop: the K loop
def test_triton_matches_reference(backend, device, dtype, dim):
    from fusedscore.kernels import _buckets

    dim = _kloop_dim(dtype) if dim == "kloop" else dim
    ql, dl = _shapes(device)
    q, d = multivectors(ql, dim, dtype, seed=dim, device=device), multivectors(dl, dim, dtype, dim + 1, device)
    qi = torch.randint(0, len(ql), (len(dl),), generator=torch.Generator().manual_seed(dim)).sort().values
    groups = torch.searchsorted(qi, torch.arange(len(ql) + 1))
    assert _buckets.maxsim_config(max(ql), dim, dtype, len(ql), False).ONE_K == (dim <= 33)
    for reduce in ("sum", "mean"):
        _check(q, d, fs.maxsim(q, d, reduce=reduce, backend=backend), reduce=reduce)
        got = fs.maxsim(q, d, mode="pairs", groups=groups, reduce=reduce, backend=backend)
        _check(q, d, got, qi.to(device), reduce)


@pytest.mark.parametrize("backend, device", TRITON)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [7, "kloop"])  # 7: a masked K tail in one chunk; kloop: D above the widest chunk
def test_triton_doc_index(backend, device, dtype, dim):
    """Pairs read their documents from the corpus by id (unsorted, repeated, the empty document included), also
    through the K loop: the doc_index path loads document rows chunk by chunk there."""
    from fusedscore import kernels as K
    from fusedscore.kernels import _buckets

    dim = _kloop_dim(dtype) if dim == "kloop" else dim
    gen = torch.Generator().manual_seed(100 + dim)
    ql, dl = _shapes(device)
    q, d = multivectors(ql, dim, dtype, seed=dim, device=device), multivectors(dl, dim, dtype, dim + 1, device)
    n = 2 * len(dl)
    ids = torch.randint(0, len(dl), (n,), generator=gen)
    ids[0] = dl.index(0)  # an empty document: -inf for the non-empty query 0
    qi = torch.randint(0, len(ql), (n,), generator=gen)
    qi[0] = 0
    ids, qi = ids.to(device), qi.to(device)
    assert _buckets.maxsim_config(max(ql), dim, dtype, len(ql), True).ONE_K == (dim == 7)
    for reduce in ("sum", "mean"):
        got = K.maxsim(q, d, qi, reduce, ids)
        assert got.shape == (n,) and got[0] == float("-inf")
        _check(q, d, got, qi, reduce, doc_index=ids)
        assert torch.equal(got, K.maxsim(q, d.select(ids), qi, reduce))  # only where rows are read changes


@pytest.mark.parametrize("backend, device", ALL)
def test_doc_index_without_groups_and_empty(backend, device):
    """groups may be omitted when B == len(doc_index); an empty doc_index gives an empty result; against MaxSim
    computed pair by pair from its definition."""
    q = multivectors([4, 0, 9], 8, torch.float32, seed=31, device=device)
    d = multivectors([3, 5, 0, 2], 8, torch.float32, seed=32, device=device)
    ids = torch.tensor([3, 3, 1], device=device)
    got = fs.maxsim(q, d, mode="pairs", doc_index=ids, backend=backend)
    pairs = [(0, 3), (1, 3), (2, 1)]
    assert_scores_close(got, naive_maxsim(q, d, pairs=pairs), naive_maxsim(abs_values(q), abs_values(d), pairs=pairs),
                        key_for(torch.float32))
    assert got[1] == 0.0  # an empty query scores 0
    got = fs.maxsim(q, d, mode="pairs", groups=[0, 2, 2, 5], doc_index=[2, 2, 0, 1, 3], backend=backend)
    pairs = [(0, 2), (0, 2), (2, 0), (2, 1), (2, 3)]
    assert_scores_close(got, naive_maxsim(q, d, pairs=pairs), naive_maxsim(abs_values(q), abs_values(d), pairs=pairs),
                        key_for(torch.float32))
    empty = fs.maxsim(q, d, mode="pairs", groups=[0, 0, 0, 0], doc_index=torch.zeros(0, dtype=torch.int64),
                      backend=backend)
    assert empty.shape == (0,)
    no_tokens = multivectors([0, 0], 8, torch.float32, device=device)  # no token on the document side: no launch
    got = fs.maxsim(q, no_tokens, mode="pairs", groups=[0, 1, 2, 3], doc_index=[1, 0, 1], backend=backend)
    assert got.tolist() == [float("-inf"), 0.0, float("-inf")]


@pytest.mark.parametrize("backend, device", ALL)
def test_empty_documents_and_queries(backend, device):
    g = torch.Generator().manual_seed(5)
    q = MultiVectors.from_list([torch.randn(3, 8, generator=g), torch.zeros(0, 8)]).to(device)
    d = MultiVectors.from_list([torch.randn(2, 8, generator=g), torch.zeros(0, 8), -torch.ones(1, 8) * 100]).to(device)
    for reduce in ("sum", "mean"):
        got = fs.maxsim(q, d, reduce=reduce, backend=backend).cpu()
        assert got[0, 1] == float("-inf")  # an empty document ranks below any non-empty one ...
        assert bool((got[0, [0, 2]] > float("-inf")).all())
        assert torch.equal(got[1], torch.zeros(3))  # ... and an empty query scores 0, also for mean
        assert not torch.isnan(got).any()
    no_docs = multivectors([0, 0], 8, device=device)
    assert fs.maxsim(q, no_docs, backend=backend).tolist() == [[float("-inf")] * 2, [0.0, 0.0]]


@pytest.mark.parametrize("backend, device", ALL)
def test_empty_sets_give_empty_results(backend, device):
    q = multivectors([3, 2], 8, device=device)
    d = multivectors([4], 8, device=device)
    none_q, none_d = multivectors([], 8, device=device), multivectors([], 8, device=device)
    assert fs.maxsim(none_q, d, backend=backend).shape == (0, 1)
    assert fs.maxsim(q, none_d, backend=backend).shape == (2, 0)
    assert fs.maxsim(q, none_d, mode="pairs", groups=[0, 0, 0], backend=backend).shape == (0,)


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("dtype", DTYPES)
def test_all_negative_similarities_never_see_padding(backend, device, dtype):
    """Every similarity < 0: a masked tail scoring 0 (pylate's padding bug) would win every max. Document lengths
    around the kernels' tiles (1/3 below 4-row blocks, 17, 63/65 either side of a 64-token tile)."""
    q = multivectors([5, 1, 16], 9, dtype, seed=11, device=device, sign=1.0)
    d = multivectors([1, 3, 17, 63, 65], 9, dtype, seed=12, device=device, sign=-1.0)
    got = fs.maxsim(q, d, backend=backend)
    assert bool((got < 0).all())
    _check(q, d, got)


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_accumulates_in_fp32(backend, device, dtype):
    """64 products of 40*40 sum to 102400, past fp16's largest finite 65504: a 16-bit accumulator overflows."""
    q = MultiVectors(torch.full((2, 64), 40.0, dtype=dtype, device=device), torch.tensor([0, 2], device=device))
    d = MultiVectors(torch.full((3, 64), 40.0, dtype=dtype, device=device), torch.tensor([0, 3], device=device))
    assert fs.maxsim(q, d, backend=backend).item() == 2 * 102400.0


# ----------------------------------------------------------------------------- Triton launch shapes
@pytest.mark.parametrize("backend, device", TRITON)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [16, 128])  # 128: the production ColBERT dim, one K chunk in 16-bit
def test_triton_several_query_groups(backend, device, dtype, dim):
    """9 queries of <= 16 tokens: QG = 8 queries share a program, so two groups, the last one with a single
    query (rows past B must neither read nor write)."""
    from fusedscore.kernels import _buckets

    ql = [3, 0, 1, 5, 16, 9, 2, 7, 11]
    assert _buckets.maxsim_config(16, dim, dtype, len(ql), False).QG == 8
    q, d = multivectors(ql, dim, dtype, 41, device), multivectors([4, 0, 1, 70, 9], dim, dtype, 42, device)
    for reduce in ("sum", "mean"):
        _check(q, d, fs.maxsim(q, d, reduce=reduce, backend=backend), reduce=reduce)


@pytest.mark.parametrize("backend, device", TRITON)
@pytest.mark.parametrize("mode", ["all", "pairs"])
def test_triton_long_query_loops_over_query_tiles(backend, device, mode):
    q = multivectors([130, 2], 16, torch.float16, 3, device)  # 130 tokens: past the 128-slot bucket
    d = multivectors([40, 3], 16, torch.float16, 4, device)
    qi = torch.tensor([0, 1], device=device) if mode == "pairs" else None
    got = fs.maxsim(q, d, mode=mode, reduce="mean", backend=backend)
    _check(q, d, got, qi, "mean")


@pytest.mark.parametrize("backend, device", TRITON)
@settings(max_examples=8, deadline=None)
@given(ql=st.lists(st.integers(0, 40), min_size=1, max_size=4), dl=st.lists(st.integers(0, 90), min_size=1, max_size=5),
       dim=st.sampled_from([1, 7, 17, 33]), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_triton_random_ragged_batches(backend, device, ql, dl, dim, dtype, seed):
    q, d = multivectors(ql, dim, dtype, seed, device), multivectors(dl, dim, dtype, seed + 1, device)
    _check(q, d, fs.maxsim(q, d, backend=backend))


@pytest.mark.parametrize("backend, device", TRITON)
def test_triton_fp32_input_precision(backend, device):
    from fusedscore import kernels as K

    q, d = multivectors([4, 7], 32, torch.float32, 2, device), multivectors([9, 1, 30], 32, torch.float32, 3, device)
    _check(q, d, K.maxsim(q, d, None, "sum", input_precision="ieee"), path="ieee")
    if device == "cuda":  # the interpreter does not emulate TF32
        _check(q, d, K.maxsim(q, d, None, "sum", input_precision="tf32"), path="tf32")
    with pytest.raises(ValueError, match="maxsim: input_precision must be 'ieee' or 'tf32', got 'fp16'"):
        K.maxsim(q, d, None, "sum", input_precision="fp16")


_MAXSIM_AOT = """
    ms = importlib.import_module("fusedscore.kernels.maxsim")
    # name: (value type, D, paired, doc_index, padded with masks). The rerank hot path (fp16/bf16, candidates read
    # from the corpus by doc_index), all-pairs / top-k, fp32 on exact "ieee" dots, the K loop (D above one chunk;
    # all-pairs and by doc_index), and the padded entry point with uint8 masks on both sides.
    variants = dict(fp16_pairs=("fp16", 128, True, True, False), fp16_all=("fp16", 128, False, False, False),
                    bf16_pairs=("bf16", 128, True, True, False), bf16_all=("bf16", 128, False, False, False),
                    fp32_all=("fp32", 128, False, False, False), fp16_kloop=("fp16", 129, False, False, False),
                    fp16_kloop_pairs=("fp16", 129, True, True, False),
                    fp16_padded_masks=("fp16", 96, True, False, True))
    for name, (vt, dim, paired, didx, padded) in variants.items():
        dt = dict(fp16=torch.float16, bf16=torch.bfloat16, fp32=torch.float32)[vt]
        mask = "*u8" if padded else "*i64"
        types = dict(i32, **idx, q_ptr="*" + vt, d_ptr="*" + vt, q_mask_ptr=mask, d_mask_ptr=mask)
        c = bk.maxsim_config(32, dim, dt, 1000, paired)
        consts = dict(PAIRED=paired, HAS_DIDX=didx, MEAN=padded, PADDED_Q=padded, PADDED_D=padded,
                      HAS_QMASK=padded, HAS_DMASK=padded, QG=c.QG, LQ=c.LQ, BLOCK_D=c.BLOCK_D, BLOCK_K=c.BLOCK_K,
                      ONE_K=c.ONE_K, UPCAST=False, INPUT_PRECISION="ieee" if vt == "fp32" else "tf32")
        ptrs = [n for n in types if n.endswith("_ptr")]
        div16 = ptrs + (["D", "stride_q", "stride_d"] if dim % 16 == 0 else [])  # what the JIT specialises
        ptx = build(ms._maxsim_kernel, types, consts, dict(num_warps=c.num_warps, num_stages=c.num_stages),
                    [n for n in div16 if n in ms._maxsim_kernel.arg_names])
        # 16-bit inputs must reach the tensor cores (mma / wgmma); fp32 "ieee" must not (exact FMAs)
        print(name, ("mma" in ptx) == (vt != "fp32"))
"""


@_triton_aot.needs_no_gpu
@pytest.mark.parametrize("arch", _triton_aot.ARCHS)
def test_triton_maxsim_lowers_to_ptx_without_a_gpu(arch):
    lines = _triton_aot.lower(_MAXSIM_AOT, arch)
    assert lines == dict.fromkeys(["fp16_pairs", "fp16_all", "bf16_pairs", "bf16_all", "fp32_all", "fp16_kloop",
                                   "fp16_kloop_pairs", "fp16_padded_masks"], "True"), lines

