"""Triton kernels (fusedscore.kernels) against fusedscore.reference.

Without a GPU the kernels run on CPU tensors under TRITON_INTERPRET=1 (set by conftest before triton is
imported), on small shapes: the interpreter executes every program in Python. With a GPU the same
tests run on CUDA tensors with larger shapes. Inputs are built in fp32, cast to the test dtype, and
the cast tensors go to both the kernel and the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("triton")

import fusedscore as fs  # noqa: E402
from fusedscore import MultiVectors, SparseVectors, reference  # noqa: E402
from fusedscore import kernels as K  # noqa: E402
from fusedscore.kernels import _buckets  # noqa: E402

from _tol import assert_scores_close, key_for  # noqa: E402
from conftest import DEVICES, DTYPES  # noqa: E402

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _need(device: str) -> None:
    if device == "cpu" and not INTERPRET:
        pytest.skip("Triton runs CPU tensors only under TRITON_INTERPRET=1 (set when no GPU is present)")


def _mv(lengths, dim, dtype, device, gen, sign=0.0):
    """Ragged MultiVectors with the given token counts; sign=+1/-1 forces the sign of every value."""
    x = torch.randn(sum(lengths), dim, generator=gen)
    if sign:
        x = sign * x.abs()
    off = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    off[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0)
    return MultiVectors(x.to(dtype).to(device), off.to(device))


def _abs(mv: MultiVectors) -> MultiVectors:
    return MultiVectors(mv.values.abs(), mv.offsets)


def _check_maxsim(got, q, d, dtype, query_index=None, reduce="sum", path=None):
    ref = reference.maxsim_ref(q, d, query_index=query_index, reduce=reduce)
    mag = reference.maxsim_ref(_abs(q), _abs(d), query_index=query_index, reduce=reduce)
    assert got.dtype == torch.float32
    assert_scores_close(got, ref, mag, key_for(dtype, path))


def _shapes(device):
    """(query lengths, doc lengths). Small under the interpreter; larger on a GPU."""
    if device == "cpu":
        # 0 and 1 tokens; 17 crosses the 16-token query bucket; 64, 65 and 70 sit on and past a 64-token doc tile
        return [3, 0, 1, 17], [5, 0, 1, 70, 2, 64, 65]
    g = torch.Generator().manual_seed(7)
    ql = [0, 1, 32, 300] + torch.randint(1, 40, (29,), generator=g).tolist()
    dl = [0, 1, 63, 64, 65, 512] + torch.randint(0, 300, (250,), generator=g).tolist()
    return ql, dl


# ----------------------------------------------------------------------------- MaxSim, ragged
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 7, 17, 33, 129])  # 1/7/17/33: masked K tails; 129: loop over K chunks
def test_maxsim_all_pairs_and_paired(device, dtype, dim):
    _need(device)
    gen = torch.Generator().manual_seed(dim)
    ql, dl = _shapes(device)
    q, d = _mv(ql, dim, dtype, device, gen), _mv(dl, dim, dtype, device, gen)
    qi = torch.randint(0, len(ql), (len(dl),), generator=gen).to(device)
    for reduce in ("sum", "mean"):
        _check_maxsim(K.maxsim(q, d, None, reduce), q, d, dtype, reduce=reduce)
        _check_maxsim(K.maxsim(q, d, qi, reduce), q, d, dtype, qi, reduce)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [7, 33])  # 7: masked K tail in one chunk; 33: above the 32-wide K chunk
def test_maxsim_paired_doc_index(device, dtype, dim):
    """Pairs read their documents from the corpus by id: unsorted, repeated, the empty document included."""
    _need(device)
    gen = torch.Generator().manual_seed(100 + dim)
    ql, dl = _shapes(device)
    q, d = _mv(ql, dim, dtype, device, gen), _mv(dl, dim, dtype, device, gen)
    n = 2 * len(dl)
    ids = torch.randint(0, len(dl), (n,), generator=gen)
    ids[0] = dl.index(0)  # an empty document: -inf
    ids, qi = ids.to(device), torch.randint(0, len(ql), (n,), generator=gen).to(device)
    for reduce in ("sum", "mean"):
        got = K.maxsim(q, d, qi, reduce, ids)
        assert got.shape == (n,)
        ref = reference.maxsim_ref(q, d, query_index=qi, reduce=reduce, doc_index=ids)
        mag = reference.maxsim_ref(_abs(q), _abs(d), query_index=qi, reduce=reduce, doc_index=ids)
        assert_scores_close(got, ref, mag, key_for(dtype))
        assert torch.equal(got, K.maxsim(q, d.select(ids), qi, reduce))  # only where rows are read changes


@pytest.mark.parametrize("device", DEVICES)
def test_maxsim_doc_index_through_the_public_op(device):
    _need(device)
    gen = torch.Generator().manual_seed(9)
    q, d = _mv([3, 5], 16, torch.float32, device, gen), _mv([4, 0, 6, 2], 16, torch.float32, device, gen)
    ids = torch.tensor([2, 2, 0, 1, 3], device=device)
    got = fs.maxsim(q, d, mode="pairs", groups=[0, 2, 5], doc_index=ids, backend="triton")
    qi = torch.tensor([0, 0, 1, 1, 1], device=device)
    ref = reference.maxsim_ref(q, d, query_index=qi, doc_index=ids)
    assert_scores_close(got, ref, reference.maxsim_ref(_abs(q), _abs(d), query_index=qi, doc_index=ids),
                        key_for(torch.float32))
    no_tokens = _mv([0, 0], 16, torch.float32, device, gen)  # no token on the document side: no launch
    assert K.maxsim(q, no_tokens, qi[:3], "sum", torch.tensor([1, 0, 1], device=device)).tolist() == [float("-inf")] * 3


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [16, 128])  # 128: the production ColBERT dim, one K chunk in 16-bit
def test_maxsim_several_query_groups(device, dtype, dim):
    """9 queries of <= 16 tokens: QG = 8 queries share a program, so two groups, the last one with a single
    query (rows past B must neither read nor write)."""
    _need(device)
    gen = torch.Generator().manual_seed(41 + dim)
    ql = [3, 0, 1, 5, 16, 9, 2, 7, 11]
    assert _buckets.maxsim_config(16, dim, dtype, len(ql), False).QG == 8
    q, d = _mv(ql, dim, dtype, device, gen), _mv([4, 0, 1, 70, 9], dim, dtype, device, gen)
    for reduce in ("sum", "mean"):
        _check_maxsim(K.maxsim(q, d, None, reduce), q, d, dtype, reduce=reduce)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("paired", [False, True], ids=["all", "pairs"])
def test_maxsim_long_query_loops_over_query_tiles(device, paired):
    _need(device)
    gen = torch.Generator().manual_seed(3)
    q, d = _mv([130, 2], 16, torch.float16, device, gen), _mv([40, 3], 16, torch.float16, device, gen)
    qi = torch.tensor([0, 1], device=device) if paired else None
    _check_maxsim(K.maxsim(q, d, qi, "mean"), q, d, torch.float16, qi, "mean")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxsim_all_negative_similarities_never_see_padding(device, dtype):
    """Every similarity < 0: a masked tail scoring 0 (pylate's padding bug) would win every max."""
    _need(device)
    gen = torch.Generator().manual_seed(11)
    q = _mv([5, 1, 16], 9, dtype, device, gen, sign=1.0)
    d = _mv([1, 3, 17, 63, 65], 9, dtype, device, gen, sign=-1.0)
    got = K.maxsim(q, d, None, "sum")
    assert bool((got < 0).all())
    _check_maxsim(got, q, d, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_maxsim_empty_items(device):
    _need(device)
    gen = torch.Generator().manual_seed(5)
    q, d = _mv([0, 2], 4, torch.float32, device, gen), _mv([0, 3], 4, torch.float32, device, gen)
    got = K.maxsim(q, d, None, "mean")
    assert got[0].tolist() == [0.0, 0.0]  # an empty query scores 0 against everything
    assert got[1, 0].item() == float("-inf")  # an empty document scores -inf
    no_docs = _mv([0, 0], 4, torch.float32, device, gen)
    assert K.maxsim(q, no_docs, None, "sum").tolist() == [[0.0, 0.0], [float("-inf"), float("-inf")]]
    assert K.maxsim(q, no_docs, torch.tensor([1, 0], device=device), "sum").tolist() == [float("-inf"), 0.0]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_maxsim_accumulates_in_fp32(device, dtype):
    """64 products of 40*40 sum to 102400, past fp16's largest finite 65504: a 16-bit accumulator overflows."""
    _need(device)
    q = MultiVectors(torch.full((2, 64), 40.0, dtype=dtype, device=device), torch.tensor([0, 2], device=device))
    d = MultiVectors(torch.full((3, 64), 40.0, dtype=dtype, device=device), torch.tensor([0, 3], device=device))
    assert K.maxsim(q, d, None, "sum").item() == 2 * 102400.0


@settings(max_examples=8, deadline=None)
@given(ql=st.lists(st.integers(0, 40), min_size=1, max_size=4), dl=st.lists(st.integers(0, 90), min_size=1, max_size=5),
       dim=st.sampled_from([1, 7, 17, 33]), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_maxsim_random_ragged_batches(ql, dl, dim, dtype, seed):
    device = DEVICES[-1]
    _need(device)
    gen = torch.Generator().manual_seed(seed)
    q, d = _mv(ql, dim, dtype, device, gen), _mv(dl, dim, dtype, device, gen)
    _check_maxsim(K.maxsim(q, d, None, "sum"), q, d, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_fp32_input_precision(device):
    _need(device)
    gen = torch.Generator().manual_seed(2)
    q, d = _mv([4, 7], 32, torch.float32, device, gen), _mv([9, 1, 30], 32, torch.float32, device, gen)
    _check_maxsim(K.maxsim(q, d, None, "sum", input_precision="ieee"), q, d, torch.float32, path="ieee")
    if device == "cuda":  # the interpreter does not emulate TF32
        _check_maxsim(K.maxsim(q, d, None, "sum", input_precision="tf32"), q, d, torch.float32, path="tf32")
    with pytest.raises(ValueError, match="maxsim: input_precision must be 'ieee' or 'tf32', got 'fp16'"):
        K.maxsim(q, d, None, "sum", input_precision="fp16")


# ----------------------------------------------------------------------------- MaxSim, padded
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxsim_padded_masks_and_lengths(device, dtype):
    _need(device)
    gen = torch.Generator().manual_seed(13)
    qp = torch.rand(3, 20, 17, generator=gen).to(dtype).to(device)  # q >= 0, d <= 0: all sims negative
    dp = (-torch.rand(5, 70, 17, generator=gen)).to(dtype).to(device)
    qm = torch.rand(3, 20, generator=gen) > 0.3
    qm[1] = False  # an empty query
    qm[2, 0] = False  # a mask that is not a prefix
    dm = torch.rand(5, 70, generator=gen) > 0.5
    dm[2] = False  # an empty document
    qm, dm = qm.to(device), dm.to(device)
    q, d = MultiVectors.from_padded(qp, mask=qm), MultiVectors.from_padded(dp, mask=dm)
    qi = torch.tensor([2, 0, 0, 1, 2], device=device)
    for reduce in ("sum", "mean"):
        _check_maxsim(K.maxsim_padded(qp, qm, dp, dm, reduce=reduce), q, d, dtype, reduce=reduce)
        _check_maxsim(K.maxsim_padded(qp, qm, dp, dm, reduce=reduce, query_index=qi), q, d, dtype, qi, reduce)
    lens = torch.tensor([0, 70, 1, 64, 5], device=device)
    d = MultiVectors.from_padded(dp, lengths=lens)
    _check_maxsim(K.maxsim_padded(qp, None, dp, d_lengths=lens), MultiVectors.from_padded(qp), d, dtype)


def test_maxsim_padded_errors():
    q, d = torch.zeros(2, 3, 4), torch.zeros(5, 6, 4)
    with pytest.raises(ValueError, match="maxsim_padded: pass d_mask or d_lengths, not both"):
        K.maxsim_padded(q, None, d, torch.ones(5, 6, dtype=torch.bool), d_lengths=torch.ones(5, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"maxsim_padded: d must be C-contiguous \[N, L, D\]"):
        K.maxsim_padded(q, None, torch.zeros(6, 5, 4).transpose(0, 1))
    with pytest.raises(ValueError, match=r"maxsim_padded: d_mask must be a bool \[N, L\]=\(5, 6\) tensor"):
        K.maxsim_padded(q, None, d, torch.ones(5, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="maxsim_padded: q and d must have shapes"):
        K.maxsim_padded(q, None, torch.zeros(5, 6, 3))


@pytest.mark.parametrize("lengths", [[1, 2, 3, 4, 7], [1, 2, -1, 4, 5]])
def test_maxsim_padded_rejects_lengths_outside_0_L(lengths):
    # d_lengths > L read past the document (into the next one, or past the tensor: garbage scores on CPU,
    # an illegal address on the GPU); d_lengths < 0 silently scored -inf
    q, d = torch.zeros(2, 3, 4), torch.zeros(5, 6, 4)
    with pytest.raises(ValueError, match=r"maxsim_padded: d_lengths must lie in \[0, L=6\]"):
        K.maxsim_padded(q, None, d, d_lengths=torch.tensor(lengths))


# ----------------------------------------------------------------------------- fused top-k
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_maxsim_topk_matches_reference_topk(device, dtype):
    """Small integer values: every score is exact in every dtype, so ties are real and indices must match."""
    _need(device)
    gen = torch.Generator().manual_seed(17)
    n_docs = 12 if device == "cpu" else 3000
    ql, dl = [3, 0, 5], torch.randint(0, 9, (n_docs,), generator=gen).tolist()
    dl[4] = 0  # empty documents score -inf and still take part when k > the non-empty ones
    q = MultiVectors(torch.randint(-2, 3, (sum(ql), 8), generator=gen).to(dtype).to(device),
                     torch.tensor([0, 3, 3, 8], device=device))
    vals = torch.randint(-2, 3, (sum(dl), 8), generator=gen).to(dtype)
    d = MultiVectors(vals.to(device), torch.cat([torch.zeros(1, dtype=torch.int64),
                                                 torch.tensor(dl).cumsum(0)]).to(device))
    for reduce in ("sum", "mean"):
        ref = reference.maxsim_ref(q, d, reduce=reduce)
        for k, block in [(1, None), (5, 3), (5, 4), (n_docs + 3, 5), (7, 1)]:
            v, i = K.maxsim_topk(q, d, k, reduce, block_docs=block)
            rv, ri = reference.topk_ref(ref, k)
            assert torch.equal(i.cpu(), ri.cpu()), (k, block, i, ri)
            assert torch.equal(v.cpu(), rv.cpu())


# ----------------------------------------------------------------------------- sparse
def _sv(rows_ids, gen, dtype, device, vocab):
    rows = [{int(t): float(torch.randn(1, generator=gen)) for t in ids} for ids in rows_ids]
    return SparseVectors.from_dicts(rows, vocab_size=vocab, dtype=dtype).to(device)


def _rand_ids(n, vocab, max_nnz, gen):
    return [torch.randperm(vocab, generator=gen)[: int(torch.randint(0, max_nnz + 1, (1,), generator=gen))].tolist()
            for _ in range(n)]


def _home(ids, ts):
    """The table's home slot (the hash the module docstring specifies), to craft colliding ids."""
    return ((torch.as_tensor(ids, dtype=torch.int64) * 2654435761) & 0xFFFFFFFF) >> (32 - (ts.bit_length() - 1))


def _check_sparse(got, q, d, dtype, query_index=None):
    ref = reference.sparse_dot_ref(q, d, query_index=query_index)
    qa = SparseVectors(q.indices, q.values.abs(), q.offsets, q.vocab_size)
    da = SparseVectors(d.indices, d.values.abs(), d.offsets, d.vocab_size)
    assert_scores_close(got, ref, reference.sparse_dot_ref(qa, da, query_index=query_index), key_for(dtype))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_dot_all_pairs_and_paired(device, dtype):
    _need(device)
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
    qi = qi.to(device)
    _check_sparse(K.sparse_dot(q, d, None), q, d, dtype)
    _check_sparse(K.sparse_dot(q, d, qi), q, d, dtype, qi)


@pytest.mark.parametrize("device", DEVICES)
def test_sparse_dot_several_query_groups(device):
    """37 queries: QB = 32 share a program, so a full group and a partial one of 5."""
    _need(device)
    gen = torch.Generator().manual_seed(43)
    assert _buckets.sparse_config(37, 12, False).QB == 32
    q = _sv(_rand_ids(37, 50, 6, gen), gen, torch.float32, device, 50)
    d = _sv(_rand_ids(6, 50, 12, gen), gen, torch.float32, device, 50)
    _check_sparse(K.sparse_dot(q, d, None), q, d, torch.float32)


def test_hash_tables_hold_every_term_within_max_probes():
    gen = torch.Generator().manual_seed(23)
    colliding = [t for t in range(5000) if int(_home([t], 16)) == 9][:7]
    q = _sv([colliding, [1, 2, 3], []], gen, torch.float32, "cpu", 5000)
    keys, vals, max_probes = K.build_tables(q)
    ts = keys.shape[1]
    assert ts == 16 and max_probes == 7  # 7 terms share slot 9: the last sits 6 slots on
    for row, terms in enumerate(q.to_dicts()):
        assert int((keys[row] >= 0).sum()) == len(terms)
        for t, w in terms.items():
            probe = [(int(_home([t], ts)) + p) % ts for p in range(max_probes)]
            found = [s for s in probe if int(keys[row, s]) == t]
            assert len(found) == 1 and vals[row, found[0]].item() == w
            before = probe[: probe.index(found[0])]
            assert all(int(keys[row, s]) != -1 for s in before)  # linear probing never skips an empty slot


@pytest.mark.parametrize("device", DEVICES)
def test_sparse_dot_empty_sides(device):
    _need(device)
    gen = torch.Generator().manual_seed(29)
    q = _sv([[], []], gen, torch.float32, device, 10)
    d = _sv([[1, 2], []], gen, torch.float32, device, 10)
    assert K.sparse_dot(q, d, None).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert K.sparse_dot(d, q, torch.tensor([0, 1], device=device)).tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------------- dense
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_dot(device, dtype):
    gen = torch.Generator().manual_seed(31)
    q = torch.randn(3, 33, generator=gen).to(dtype).to(device)
    d = torch.randn(5, 33, generator=gen).to(dtype).to(device)
    qi = torch.tensor([0, 2, 2, 1, 0], device=device)
    for index in (None, qi):
        got = K.dense_dot(q, d, index)
        ref = reference.dense_dot_ref(q, d, query_index=index)
        mag = reference.dense_dot_ref(q.abs(), d.abs(), query_index=index)
        assert got.dtype == torch.float32
        # a 16-bit cuBLAS without fp32 output rounds the scores once: 2**-8 relative (bf16)
        key = key_for(dtype) if device == "cpu" or K.dense._MM_OUT_DTYPE or dtype == torch.float32 else None
        if key is None:
            assert torch.allclose(got.cpu(), ref.cpu(), rtol=2**-8, atol=2**-8 * mag.max().item())
        else:
            assert_scores_close(got, ref, mag, key)


# ----------------------------------------------------------------------------- dispatch and warmup
@pytest.mark.parametrize("device", DEVICES)
def test_public_ops_reach_the_triton_backend(device):
    _need(device)
    gen = torch.Generator().manual_seed(37)
    q, d = _mv([3, 4], 8, torch.float16, device, gen), _mv([5, 0, 2], 8, torch.float16, device, gen)
    _check_maxsim(fs.maxsim(q, d, backend="triton"), q, d, torch.float16)
    qi = torch.tensor([0, 0, 1], device=device)
    _check_maxsim(fs.maxsim(q, d, mode="pairs", groups=[0, 2, 3], reduce="mean", backend="triton"), q, d,
                  torch.float16, qi, "mean")
    sq = _sv([[1, 4], [2]], gen, torch.float32, device, 8)
    sd = _sv([[1, 2, 4], [], [2, 7]], gen, torch.float32, device, 8)
    _check_sparse(fs.sparse_dot(sq, sd, backend="triton"), sq, sd, torch.float32)


def test_warmup_is_a_no_op_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert fs.warmup() == 0
    assert K.warmup() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_warmup_launches_run(device):
    _need(device)
    # per reduce: all-pairs with 1, 2 and 4 queries, paired, paired by doc_index; then sparse all-pairs and paired
    assert K.compile_buckets(device, (torch.float16,), (16,), (4,), (torch.float32,)) == 2 * 5 + 2


# ----------------------------------------------------------------------------- GPU lowering without a GPU
_AOT = textwrap.dedent("""
    import importlib, sys
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import torch
    ms = importlib.import_module("fusedscore.kernels.maxsim")
    sp = importlib.import_module("fusedscore.kernels.sparse_dot")
    bk = importlib.import_module("fusedscore.kernels._buckets")

    def build(fn, types, consts, opts, div16):
        sig = {n: ("constexpr" if n in consts else types[n]) for n in fn.arg_names}
        attrs = {(fn.arg_names.index(n),): [["tt.divisibility", 16]] for n in div16}
        src = ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
        return triton.compile(src, target=GPUTarget("cuda", int(sys.argv[1]), 32),
                              options=dict(opts, enable_fp_fusion=bk.FP_FUSION)).asm["ptx"]

    i32 = dict.fromkeys(["B", "n0", "D", "stride_q", "stride_d", "q_lpad", "d_lpad", "out_stride", "num_groups",
                         "TS", "shift", "max_probes"], "i32")
    idx = dict(q_off_ptr="*i64", q_len_ptr="*i64", qidx_ptr="*i64", didx_ptr="*i64", out_ptr="*fp32",
               d_off_ptr="*i64", d_len_ptr="*i64", d_idx_ptr="*i32", d_val_ptr="*fp32", keys_ptr="*i32",
               vals_ptr="*fp32")
    # name: (value type, D, paired, doc_index, padded with masks). The rerank hot path (fp16/bf16, candidates read
    # from the corpus by doc_index), all-pairs / top-k, fp32 on exact "ieee" dots, the K loop (D above one chunk),
    # and the padded entry point with uint8 masks on both sides.
    variants = dict(fp16_pairs=("fp16", 128, True, True, False), fp16_all=("fp16", 128, False, False, False),
                    bf16_pairs=("bf16", 128, True, True, False), bf16_all=("bf16", 128, False, False, False),
                    fp32_all=("fp32", 128, False, False, False), fp16_kloop=("fp16", 129, False, False, False),
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
    for vt in ("fp32", "fp16"):
        c = bk.sparse_config(1000, 200, False)
        types = dict(i32, **idx, q_ptr="*" + vt, d_ptr="*" + vt)
        types.update(d_val_ptr="*" + vt, vals_ptr="*" + vt)
        ptx = build(sp._sparse_dot_kernel, types, dict(PAIRED=False, QB=c.QB, BLOCK_T=c.BLOCK_T),
                    dict(num_warps=c.num_warps), [n for n in types if n.endswith("_ptr")
                                                  and n in sp._sparse_dot_kernel.arg_names])
        print("sparse_" + vt, ".entry" in ptx)
""")


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the kernels compile and run in the tests above")
@pytest.mark.parametrize("arch", [80, 90])  # A100, H100/H200
def test_kernels_lower_to_ptx_without_a_gpu(arch):
    """The interpreter never runs Triton's GPU compiler; this does (TTIR -> TTGIR -> PTX -> cubin for sm_80 and
    sm_90), so a kernel that type-checks under the interpreter but cannot be lowered for the GPU fails CI."""
    import triton.backends

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton build has no NVIDIA backend")
    env = dict(os.environ, TRITON_INTERPRET="0")
    res = subprocess.run([sys.executable, "-c", _AOT, str(arch)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = dict(line.split() for line in res.stdout.strip().splitlines())
    assert lines == dict.fromkeys(["fp16_pairs", "fp16_all", "bf16_pairs", "bf16_all", "fp32_all", "fp16_kloop",
                                   "fp16_padded_masks", "sparse_fp32", "sparse_fp16"], "True"), res.stdout
