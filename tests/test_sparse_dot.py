"""Learned-sparse dot products (``fusedscore.sparse_dot``) on every backend against
``reference.sparse_dot_ref(upcast=True)``: native (every SIMD level), the reference backend and Triton (CUDA; CPU
tensors under TRITON_INTERPRET=1); containers built every supported way, and error messages.

The native all-pairs kernel (csrc/cpu/sparse_dot.cpp) keeps a term shared by >= ceil(B/16)*16/16 queries as a
dense weight row and rarer terms as postings lists, so shapes below mix both; paired mode rebuilds a per-thread
table whenever the document's query changes.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import SparseVectors
from fusedscore.reference import sparse_dot_ref

import _triton_aot
from _tol import assert_scores_close, key_for
from conftest import DTYPES, backend_params

NATIVE = _dispatch.native_module()
BACKENDS = ["native", "reference"]
ALL = backend_params("native", "reference", "triton")
TRITON = backend_params("triton")
LEVELS = NATIVE.info()["simd_levels"] if NATIVE is not None else [None]


@contextlib.contextmanager
def _simd(level):
    """Native cases run once per SIMD level (the dense-row accumulation is per ISA), threaded even when small
    (min-work scale 0); both restored afterwards."""
    if NATIVE is None or level is None:
        yield
        return
    prev, prev_scale = NATIVE.set_simd(level), NATIVE._set_min_work_scale(0.0)
    try:
        yield
    finally:
        NATIVE.set_simd(prev)
        NATIVE._set_min_work_scale(prev_scale)


def _skip_missing(backend: str) -> None:
    if backend == "native" and NATIVE is None:
        pytest.skip(f"native extension not built: {_dispatch._NATIVE_ERR!r}")


def _abs(x: SparseVectors) -> SparseVectors:
    return SparseVectors(x.indices, x.values.abs(), x.offsets, x.vocab_size)


def _check(q: SparseVectors, d: SparseVectors, got: torch.Tensor, query_index=None, key=None) -> None:
    ref = sparse_dot_ref(q, d, query_index=query_index)
    mag = sparse_dot_ref(_abs(q), _abs(d), query_index=query_index)
    assert_scores_close(got, ref, mag, key or key_for(q.dtype))


def _zipf_rows(n: int, mean_nnz: int, vocab: int, g: torch.Generator, dtype=torch.float32) -> SparseVectors:
    """Rows with Zipf-like ids (common ids shared by many rows, as in SPLADE output), some rows empty."""
    probs = (torch.arange(vocab, dtype=torch.float64) + 3.0) ** -1.1
    lengths = torch.randint(0, 2 * mean_nnz + 1, (n,), generator=g)
    total = int(lengths.sum())
    ids = torch.multinomial(probs, total, replacement=True, generator=g) if total else torch.zeros(0, dtype=torch.int64)
    vals = torch.randn(ids.numel(), generator=g)  # signed: cancellation is part of the test
    off = torch.zeros(n + 1, dtype=torch.int64)
    off[1:] = lengths.cumsum(0)
    return SparseVectors(ids.to(torch.int32), vals.to(dtype), off, vocab)


# the reference backend (the no-compiler fallback) widens fp16/bf16 to fp32: the same bound as native
BACKEND_DTYPES = [("native", dt, lvl) for dt in DTYPES for lvl in LEVELS] + [("reference", dt, None) for dt in DTYPES]


@pytest.mark.parametrize("backend, dtype, level", BACKEND_DTYPES)
@pytest.mark.parametrize("n_queries, vocab", [
    (1, 50),      # one query: every shared term is "dense" (a row of one lane)
    (40, 30),     # tiny vocabulary: most terms in many queries -> dense rows; Bp = 48
    (40, 5000),   # large vocabulary: mostly postings lists
    (130, 300),   # B > 128: several 16-lane groups, mixed dense rows and postings
])
def test_all_pairs_matches_reference(backend, dtype, level, n_queries, vocab):
    _skip_missing(backend)
    g = torch.Generator().manual_seed(n_queries * vocab)
    q = _zipf_rows(n_queries, 12, vocab, g, dtype)
    d = _zipf_rows(150, 40, vocab, g, dtype)
    with _simd(level):
        got = fs.sparse_dot(q, d, backend=backend)
    assert got.shape == (n_queries, 150) and got.dtype == torch.float32
    _check(q, d, got)


@pytest.mark.parametrize("level", LEVELS)
def test_all_pairs_huge_vocab_native(level):
    """vocab_size > 2**22: the all-pairs kernel looks terms up in its hash table (behind the membership filter)
    instead of the direct-mapped array; same scores."""
    _skip_missing("native")
    g = torch.Generator().manual_seed(8)
    q = _zipf_rows(40, 12, 5000, g)
    d = _zipf_rows(150, 40, 5000, g)
    out = torch.empty(40, 150)
    with _simd(level):
        NATIVE.sparse_dot(q.indices.numpy(), q.values.numpy(), q.offsets.numpy(), d.indices.numpy(), d.values.numpy(),
                          d.offsets.numpy(), None, (1 << 23) + 5, "float32", out.numpy())
    _check(q, d, out)


@pytest.mark.parametrize("backend, dtype, level", BACKEND_DTYPES)
def test_paired_matches_reference(backend, dtype, level):
    _skip_missing(backend)
    g = torch.Generator().manual_seed(5)
    q = _zipf_rows(12, 15, 2000, g, dtype)
    d = _zipf_rows(300, 40, 2000, g, dtype)
    groups = torch.tensor([0, 0, 10, 40, 41, 100, 100, 180, 200, 250, 260, 299, 300])  # uneven, some empty
    qi = fs.ops.groups_to_query_index(groups, len(q), len(d), "test")
    with _simd(level):
        got = fs.sparse_dot(q, d, mode="pairs", groups=groups, backend=backend)
    assert got.shape == (300,)
    _check(q, d, got, query_index=qi)


def test_paired_unsorted_query_index_native():
    """Queries revisited out of order: the per-thread table must be cleared of the previous query's terms."""
    _skip_missing("native")
    g = torch.Generator().manual_seed(6)
    q = _zipf_rows(5, 10, 100, g)
    d = _zipf_rows(400, 20, 100, g)
    qi = torch.randint(0, 5, (400,), generator=g)
    out = torch.empty(400)
    with _simd(LEVELS[-1]):
        NATIVE.sparse_dot(q.indices.numpy(), q.values.numpy(), q.offsets.numpy(), d.indices.numpy(), d.values.numpy(),
                          d.offsets.numpy(), qi.numpy(), q.vocab_size, "float32", out.numpy())
    _check(q, d, out, query_index=qi)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state:UserWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_containers_from_every_source(backend):
    """dicts, dense activations, scipy.sparse and torch sparse (COO and CSR) give the same scores."""
    _skip_missing(backend)
    dense_q = torch.tensor([[0.0, 1.5, 0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    dense_d = torch.tensor([[1.0, 2.0, 0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, -1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]])
    expected = dense_q @ dense_d.T  # small integers and halves: exact in fp32
    sources = {
        "dicts": (SparseVectors.from_dicts([{1: 1.5, 3: 2.0}, {}], vocab_size=6),
                  SparseVectors.from_dicts([{0: 1.0, 1: 2.0, 5: 3.0}, {"3": -1.0}, {1: 1.0, 3: 1.0}], vocab_size=6)),
        "dense": (SparseVectors.from_dense(dense_q), SparseVectors.from_dense(dense_d)),
        "scipy": (SparseVectors.from_scipy(sp.csr_matrix(dense_q.numpy())),
                  SparseVectors.from_scipy(sp.coo_matrix(dense_d.numpy()))),
        "torch_coo": (SparseVectors.from_torch(dense_q.to_sparse()), SparseVectors.from_torch(dense_d.to_sparse())),
        "torch_csr": (SparseVectors.from_torch(dense_q.to_sparse_csr()),
                      SparseVectors.from_torch(dense_d.to_sparse_csr())),
    }
    for name, (q, d) in sources.items():
        got = fs.sparse_dot(q, d, backend=backend)
        assert torch.equal(got, expected), (name, got)


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("merge, expected", [("max", 2.0 * 5.0), ("sum", (2.0 + 1.0) * 5.0)])
def test_repeated_ids_merge(backend, device, merge, expected):
    q = SparseVectors.from_torch(torch.sparse_coo_tensor([[0, 0], [4, 4]], [2.0, 1.0], (1, 8), check_invariants=True), merge=merge)
    d = SparseVectors.from_dicts([{4: 5.0}], vocab_size=8)
    assert fs.sparse_dot(q.to(device), d.to(device), backend=backend).item() == expected


@pytest.mark.parametrize("backend, device", ALL)
def test_empty_rows_and_sets(backend, device):
    q = SparseVectors.from_dicts([{}, {2: 1.0}], vocab_size=4).to(device)
    d = SparseVectors.from_dicts([{2: 3.0}, {}], vocab_size=4).to(device)
    assert fs.sparse_dot(q, d, backend=backend).tolist() == [[0.0, 0.0], [3.0, 0.0]]
    assert fs.sparse_dot(d, q, mode="pairs", backend=backend).tolist() == [0.0, 0.0]  # the empty row of each pair
    none = SparseVectors.from_dicts([], vocab_size=4).to(device)
    assert fs.sparse_dot(none, d, backend=backend).shape == (0, 2)
    assert fs.sparse_dot(q, none, backend=backend).shape == (2, 0)
    assert fs.sparse_dot(q, none, mode="pairs", groups=[0, 0, 0], backend=backend).shape == (0,)
    no_terms = SparseVectors.from_dicts([{}, {}], vocab_size=4).to(device)  # no term on either side
    assert fs.sparse_dot(no_terms, no_terms, backend=backend).tolist() == [[0.0, 0.0], [0.0, 0.0]]


@pytest.mark.skipif(NATIVE is None, reason="native extension not built")
@settings(max_examples=40, deadline=None)
@given(n_q=st.integers(0, 20), n_d=st.integers(0, 30), nnz=st.integers(0, 30), vocab=st.integers(1, 400),
       dtype=st.sampled_from(DTYPES), paired=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_property_random_rows(n_q, n_d, nnz, vocab, dtype, paired, seed):
    g = torch.Generator().manual_seed(seed)
    q = _zipf_rows(n_q, nnz, vocab, g, dtype)
    d = _zipf_rows(n_d, nnz, vocab, g, dtype)
    qi = groups = None
    if paired:
        if n_q == 0:
            return  # paired mode needs a query for every document
        qi = torch.randint(0, n_q, (n_d,), generator=g).sort().values
        groups = torch.searchsorted(qi, torch.arange(n_q + 1))
    for level in LEVELS:
        with _simd(level):
            got = fs.sparse_dot(q, d, mode="pairs" if paired else "all", groups=groups, backend="native")
        _check(q, d, got, query_index=qi)


def test_index_beyond_vocab_is_an_error():
    with pytest.raises(ValueError, match=r"SparseVectors: indices must lie in \[0, vocab_size=8\), got 9"):
        SparseVectors.from_dicts([{9: 1.0}], vocab_size=8)


def test_vocab_mismatch_is_an_error():
    q = SparseVectors.from_dicts([{1: 1.0}], vocab_size=8)
    d = SparseVectors.from_dicts([{1: 1.0}], vocab_size=9)
    with pytest.raises(ValueError, match=r"sparse_dot: docs must have vocab_size=8 to match queries, got 9"):
        fs.sparse_dot(q, d)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lists_of_dicts_with_different_largest_ids_score(backend):
    """FlagEmbedding's lexical weights are dicts: each list's vocab_size is inferred from its own largest id
    (994 and 1000 here), and the two sides agree on the larger, as FlagEmbedding scores them."""
    _skip_missing(backend)
    q = [{1: 1.0, 993: 2.0}, {"5": 0.5}]
    d = [{999: 1.0, 1: 1.0}, {993: 3.0, "5": 4.0}]
    assert fs.sparse_dot(q, d, backend=backend).tolist() == [[1.0, 6.0], [0.0, 2.0]]
    assert fs.sparse_dot(d, q, backend=backend).tolist() == [[1.0, 0.0], [6.0, 2.0]]
    assert fs.sparse_dot(q, d, mode="pairs", backend=backend).tolist() == [1.0, 2.0]
    inferred = SparseVectors.from_dicts(q)
    assert inferred.vocab_inferred and inferred.vocab_size == 994
    assert fs.sparse_dot(inferred, SparseVectors.from_dicts(d), backend=backend).tolist() == [[1.0, 6.0], [0.0, 2.0]]
    assert fs.sparse_dot(inferred.select([1]), d, backend=backend).tolist() == [[0.0, 2.0]]  # select keeps it


def test_inferred_vocab_widens_to_a_given_one():
    given = SparseVectors.from_dicts([{1: 2.0, 7: 1.0}], vocab_size=5000)
    assert not given.vocab_inferred
    assert fs.sparse_dot(given, [{7: 3.0}]).tolist() == [[3.0]]
    assert fs.sparse_dot([{1: 1.0}], given).tolist() == [[2.0]]
    with pytest.raises(ValueError, match=r"sparse_dot: docs must have term ids < vocab_size=5000 of queries, got id "
                                         r"6000"):
        fs.sparse_dot(given, [{6000: 1.0}])
    with pytest.raises(ValueError, match=r"sparse_dot: queries must have term ids < vocab_size=5000 of docs, got id "
                                         r"6000"):
        fs.sparse_dot([{6000: 1.0}], given)


def test_lexical_paths_take_dicts_of_different_largest_ids():
    """Every path that takes dicts: the drop-in, and score_embeddings (Reranker.from_embeddings, compute_score)."""
    from fusedscore import compat
    from fusedscore.reranker import score_embeddings

    q, d = [{"1": 1.0, "993": 2.0}], [{"999": 1.0, "1": 1.0}, {"993": 3.0}]
    assert compat.compute_lexical_matching_score(q, d).tolist() == [[1.0, 6.0]]
    assert score_embeddings(q, d, groups=[0, 2]).tolist() == [1.0, 6.0]


def test_dtype_mismatch_is_an_error():
    q = SparseVectors.from_dicts([{1: 1.0}], vocab_size=8)
    d = SparseVectors.from_dicts([{1: 1.0}], vocab_size=8, dtype=torch.float16)
    with pytest.raises(TypeError, match=r"sparse_dot: docs must have the dtype of queries \(float32\), got float16"):
        fs.sparse_dot(q, d)


# ----------------------------------------------------------------------------- the binding's own checks
def _raw_args():
    return dict(q_idx=np.array([1, 3], np.int32), q_val=np.array([1.0, 2.0], np.float32), q_off=np.array([0, 2]),
                d_idx=np.array([3], np.int32), d_val=np.array([4.0], np.float32), d_off=np.array([0, 1, 1]),
                query_index=None, vocab_size=8, dtype="float32", out=np.empty((1, 2), np.float32))


@pytest.mark.skipif(NATIVE is None, reason="native extension not built")
@pytest.mark.parametrize("change, exc, match", [
    (dict(q_idx=np.array([1, 8], np.int32)), ValueError, r"sparse_dot: q_idx must be in \[0, vocab_size=8\), got 8 at position 1"),
    (dict(q_idx=np.array([1, 3], np.int64)), TypeError, r"sparse_dot: q_idx must have dtype int32, got int64"),
    (dict(d_val=np.array([4.0], np.float16)), TypeError, r"sparse_dot: d_val must have dtype float32 \(dtype='float32'\), got float16"),
    (dict(q_val=np.array([1.0], np.float32)), ValueError, r"sparse_dot: q_val must be of shape \[nnz_q\]=\(2,\) like q_idx, got \(1,\)"),
    (dict(d_off=np.array([0, 2, 1])), ValueError, r"sparse_dot: d_off must be non-decreasing"),
    (dict(vocab_size=0), ValueError, r"sparse_dot: vocab_size must be > 0, got 0"),
    (dict(query_index=np.array([0, -1]), out=np.empty(2, np.float32)), ValueError,
     r"sparse_dot: query_index must be in \[0, 1\), got -1 at position 1"),
    (dict(out=np.empty(2, np.float32)), ValueError, r"sparse_dot: out must be of shape \[B, N\]=\(1, 2\), got \(2,\)"),
])
def test_native_rejects_bad_arguments(change, exc, match):
    args = _raw_args()
    args.update(change)
    with pytest.raises(exc, match=match):
        NATIVE.sparse_dot(**args)


@pytest.mark.skipif(NATIVE is None, reason="native extension not built")
def test_native_document_ids_outside_vocab_are_harmless():
    """Document ids are only looked up (hashed), so malformed ones cannot read out of bounds: they match nothing."""
    args = _raw_args()
    args.update(d_idx=np.array([-7], np.int32), d_off=np.array([0, 1, 1]))
    NATIVE.sparse_dot(**args)
    assert args["out"].tolist() == [[0.0, 0.0]]


def test_float64_containers_raise_type_error():
    s = SparseVectors.from_dicts([{1: 1.0}], vocab_size=4).to(dtype=torch.float64)
    with pytest.raises(TypeError, match=r"sparse_dot: queries must have dtype in \(float32, float16, bfloat16\)"):
        fs.sparse_dot(s, s)


def test_reference_backend_does_not_densify_the_vocabulary():
    # the reference (also the no-compiler fallback backend) built dense [B, V] and [rows, V] matrices: with
    # vocab_size = 2**31 - 1 (valid for SparseVectors) it tried to allocate hundreds of GB and died
    V = 2**31 - 1
    q = SparseVectors.from_dicts([{V - 1: 2.0, 7: 1.0}, {}], vocab_size=V)
    d = SparseVectors.from_dicts([{V - 1: 0.5, 3: 9.0}, {7: 4.0, V - 1: 1.0}, {}], vocab_size=V)
    assert sparse_dot_ref(q, d).tolist() == [[1.0, 6.0, 0.0], [0.0, 0.0, 0.0]]
    assert sparse_dot_ref(q, d, query_index=torch.tensor([0, 0, 1])).tolist() == [1.0, 6.0, 0.0]
    assert fs.sparse_dot(q, d, backend="reference").tolist() == [[1.0, 6.0, 0.0], [0.0, 0.0, 0.0]]


# ----------------------------------------------------------------------------- Triton (kernels/sparse_dot.py)
def _sv(rows_ids, gen, dtype, device, vocab):
    rows = [{int(t): float(torch.randn(1, generator=gen)) for t in ids} for ids in rows_ids]
    return SparseVectors.from_dicts(rows, vocab_size=vocab, dtype=dtype).to(device)


def _rand_ids(n, vocab, max_nnz, gen):
    return [torch.randperm(vocab, generator=gen)[: int(torch.randint(0, max_nnz + 1, (1,), generator=gen))].tolist()
            for _ in range(n)]


def _home(ids, ts):
    """The table's home slot (the hash the kernel's module docstring specifies), to craft colliding ids."""
    return ((torch.as_tensor(ids, dtype=torch.int64) * 2654435761) & 0xFFFFFFFF) >> (32 - (ts.bit_length() - 1))


@pytest.mark.parametrize("backend, device", TRITON)
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_all_pairs_and_paired(backend, device, dtype):
    """Queries whose ids share one home slot in the kernel's hash table (probe chains 1..6), documents that hit
    deep in the chain and miss next to it, empty rows on both sides."""
    gen = torch.Generator().manual_seed(19)
    nq, nd, vocab = (5, 7, 60) if device == "cpu" else (70, 900, 30000)
    qids = _rand_ids(nq, vocab, 30, gen)
    qids[1] = []  # an empty query
    colliding = [t for t in range(5000) if int(_home([t], 16)) == 3][:6]  # one home slot: probes 1..6
    qids[2] = colliding
    dids = _rand_ids(nd, vocab, 100, gen)
    dids[0] = []
    dids[1] = colliding[::-1] + [c + 1 for c in colliding]  # hits deep in the probe chain, and misses
    q, d = _sv(qids, gen, dtype, device, 5000 + vocab), _sv(dids, gen, dtype, device, 5000 + vocab)
    qi = torch.randint(0, nq, (nd,), generator=gen)
    qi[1] = 2
    qi = qi.sort().values
    groups = torch.searchsorted(qi, torch.arange(nq + 1))
    _check(q, d, fs.sparse_dot(q, d, backend=backend))
    _check(q, d, fs.sparse_dot(q, d, mode="pairs", groups=groups, backend=backend), query_index=qi.to(device))


@pytest.mark.parametrize("backend, device", TRITON)
def test_triton_several_query_groups(backend, device):
    """37 queries: QB = 32 share a program, so a full group and a partial one of 5."""
    from fusedscore.kernels import _buckets

    gen = torch.Generator().manual_seed(43)
    assert _buckets.sparse_config(37, 12, False).QB == 32
    q = _sv(_rand_ids(37, 50, 6, gen), gen, torch.float32, device, 50)
    d = _sv(_rand_ids(6, 50, 12, gen), gen, torch.float32, device, 50)
    _check(q, d, fs.sparse_dot(q, d, backend=backend))


@pytest.mark.parametrize("backend, device", TRITON)
def test_triton_hash_tables_hold_every_term_within_max_probes(backend, device):
    from fusedscore import kernels as K

    gen = torch.Generator().manual_seed(23)
    colliding = [t for t in range(5000) if int(_home([t], 16)) == 9][:7]
    q = _sv([colliding, [1, 2, 3], []], gen, torch.float32, device, 5000)
    keys, vals, max_probes = K.build_tables(q)
    ts = keys.shape[1]
    assert ts == 16 and max_probes == 7  # 7 terms share slot 9: the last sits 6 slots on
    keys, vals = keys.cpu(), vals.cpu()
    for row, terms in enumerate(q.to_dicts()):
        assert int((keys[row] >= 0).sum()) == len(terms)
        for t, w in terms.items():
            probe = [(int(_home([t], ts)) + p) % ts for p in range(max_probes)]
            found = [s for s in probe if int(keys[row, s]) == t]
            assert len(found) == 1 and vals[row, found[0]].item() == w
            before = probe[: probe.index(found[0])]
            assert all(int(keys[row, s]) != -1 for s in before)  # linear probing never skips an empty slot


_SPARSE_AOT = """
    sp = importlib.import_module("fusedscore.kernels.sparse_dot")
    for vt in ("fp32", "fp16"):
        c = bk.sparse_config(1000, 200, False)
        types = dict(i32, **idx, q_ptr="*" + vt, d_ptr="*" + vt)
        types.update(d_val_ptr="*" + vt, vals_ptr="*" + vt)
        ptx = build(sp._sparse_dot_kernel, types, dict(PAIRED=False, QB=c.QB, BLOCK_T=c.BLOCK_T),
                    dict(num_warps=c.num_warps), [n for n in types if n.endswith("_ptr")
                                                  and n in sp._sparse_dot_kernel.arg_names])
        print("sparse_" + vt, ".entry" in ptx)
"""


@_triton_aot.needs_no_gpu
@pytest.mark.parametrize("arch", _triton_aot.ARCHS)
def test_triton_sparse_dot_lowers_to_ptx_without_a_gpu(arch):
    assert _triton_aot.lower(_SPARSE_AOT, arch) == {"sparse_fp32": "True", "sparse_fp16": "True"}
