"""Hostile input at the public API: values that overflow, objects of the wrong kind, malformed containers.

Every case must end in a clear ValueError/TypeError naming the op and the argument (or in a correct score),
never in a crash, a NaN ranked first, or a raw torch/numpy message.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch, compat
from fusedscore.containers import MultiVectorList, MultiVectors, SparseVectors
from fusedscore.muvera import FDE
from fusedscore.retrieval import FDEIndex, blocked_topk

from _tol import assert_scores_close, key_for

NATIVE = _dispatch.native_module()
BACKENDS = ["reference"] + (["native"] if NATIVE is not None else [])


# ----------------------------------------------------------------------------- overflow -> NaN (item 4)
def _overflowing():
    """Query token 0 dots the document to +8e38 and token 1 to -8e38: both overflow float32, so a float32
    kernel sums +inf and -inf (NaN). The exact score is 0: an overflow, not a property of the data."""
    q = MultiVectors.from_list([torch.stack([torch.full((8,), 1e19), torch.full((8,), -1e19)])])
    d = MultiVectors.from_list([torch.randn(3, 8), torch.full((1, 8), 1e19), torch.randn(2, 8)])
    return q, d


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["all", "pairs"])
def test_overflow_nan_raises_on_the_container_path(backend, mode):
    q, d = _overflowing()
    kw = {"mode": "pairs", "groups": [0, 3]} if mode == "pairs" else {}
    with pytest.raises(ValueError, match=r"maxsim: scores must not be NaN, got NaN for queries\[0\] x docs\[1\].*"
                                         r"overflow float32"):
        fs.maxsim(q, d, backend=backend, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_maxsim_topk_never_ranks_a_nan_first(backend):
    q, d = _overflowing()
    with pytest.raises(ValueError, match=r"maxsim_topk: scores must not be NaN.*docs\[1\]"):
        fs.maxsim_topk(q, d, 2, backend=backend)
    with pytest.raises(ValueError, match=r"maxsim_topk: scores must not be NaN"):
        fs.maxsim_topk(q, d, 1, max_memory=4, backend=backend)  # one document per block


def test_overflow_nan_raises_in_dense_and_sparse():
    q = torch.tensor([[2e19, 2e19]])
    d = torch.tensor([[1.0, 1.0], [2e19, -2e19]])  # 4e38 - 4e38: inf - inf in float32
    with pytest.raises(ValueError, match=r"dense_dot: scores must not be NaN, got NaN for queries\[0\] x docs\[1\]"):
        fs.dense_dot(q, d)
    with pytest.raises(ValueError, match=r"dense_dot: scores must not be NaN"):
        fs.dense_dot(q.expand(2, 2), d, mode="pairs")
    sq = SparseVectors.from_dicts([{1: 3e38, 2: 3e38}], vocab_size=4)
    sd = SparseVectors.from_dicts([{1: 3e38, 2: -3e38}], vocab_size=4)
    for backend in BACKENDS:
        with pytest.raises(ValueError, match=r"sparse_dot: scores must not be NaN"):
            fs.sparse_dot(sq, sd, mode="pairs", backend=backend)


@pytest.mark.parametrize("dtype,big,top", [(torch.float16, 1e5, "65504"),
                                           (torch.bfloat16, 3.4e38, "338953138925153547590470800371487866880")])
def test_cast_that_overflows_is_caught(dtype, big, top):
    """float32 -> float16 past 65504 gives inf; -> bfloat16 only within 1% of float32's own maximum."""
    mv = MultiVectors.from_list([torch.tensor([[1.0, big], [0.5, 0.25]])])
    with pytest.raises(ValueError, match=rf"MultiVectors.to: values must fit in {str(dtype)[6:]} \(\|x\| <= {top}\), "
                                         r"got 1 value\(s\) that overflow"):
        mv.to(dtype=dtype)
    sv = SparseVectors.from_dicts([{3: big}], vocab_size=5)
    with pytest.raises(ValueError, match=rf"SparseVectors.to: values must fit in {str(dtype)[6:]}"):
        sv.to(dtype=dtype)
    assert mv.to(dtype=torch.float32) is mv  # nothing changes: no copy, no check


def test_cast_within_range_is_not_an_error():
    mv = MultiVectors.from_list([torch.tensor([[1.0, 60000.0]])]).to(dtype=torch.float16)
    assert mv.values.dtype == torch.float16 and float(mv.values[0, 1]) == 60000.0


# ----------------------------------------------------------------------------- MultiVectorList (item 7)
def test_multivector_list_rejects_items_of_different_dim():
    """These items crashed the process in the row-address kernel (D read from item 0)."""
    with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must have shape \[L_i, 8\] to match docs\[0\]"):
        MultiVectorList([torch.randn(1, 8), torch.randn(2_000_000, 1)], "maxsim", "docs")


def test_multivector_list_rejects_mixed_dtypes_devices_and_non_contiguous_items():
    with pytest.raises(TypeError, match=r"maxsim: docs\[1\] must have dtype float32 like docs\[0\], got float16"):
        MultiVectorList([torch.randn(2, 4), torch.randn(2, 4).half()], "maxsim", "docs")
    with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must be C-contiguous"):
        MultiVectorList([torch.randn(2, 4), torch.randn(4, 3).T], "maxsim", "docs")
    with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must be on cpu like docs\[0\], got meta"):
        MultiVectorList([torch.randn(2, 4), torch.empty(2, 4, device="meta")], "maxsim", "docs")
    with pytest.raises(ValueError, match=r"maxsim: docs\[0\] must have shape \[L_i, D\], got \(4,\)"):
        MultiVectorList([torch.randn(4)], "maxsim", "docs")
    with pytest.raises(TypeError, match=r"maxsim: docs\[0\] must be a torch.Tensor or numpy.ndarray, got list"):
        MultiVectorList([[[1.0, 2.0]]], "maxsim", "docs")
    with pytest.raises(ValueError, match=r"maxsim: docs must hold at least one \[L_i, D\] item, got 0"):
        MultiVectorList([], "maxsim", "docs")


def test_multivector_list_from_the_public_path_scores_transposed_items_correctly():
    g = torch.Generator().manual_seed(3)
    q = [torch.randn(3, 4, generator=g)]
    items = [torch.randn(4, 5, generator=g).T, torch.randn(2, 4, generator=g)]  # item 0 is transposed
    qs, ds = MultiVectors.from_list(q), MultiVectors.from_list([t.contiguous() for t in items])
    exp = fs.reference.maxsim_ref(qs, ds)
    mag = fs.reference.maxsim_ref(MultiVectors(qs.values.abs(), qs.offsets), MultiVectors(ds.values.abs(), ds.offsets))
    assert_scores_close(fs.maxsim(q, items), exp, mag, key_for(torch.float32))
    mvl = MultiVectorList([t.contiguous() for t in items], "maxsim", "docs")
    assert_scores_close(fs.maxsim(q, mvl), exp, mag, key_for(torch.float32))


# ----------------------------------------------------------------------------- unclear errors (item 8)
def test_requires_grad_inputs_are_named_and_say_detach():
    x = torch.randn(2, 4, requires_grad=True)
    d = [torch.randn(3, 4)]
    msg = r"must not require grad .*\.detach\(\)"
    with pytest.raises(ValueError, match=r"maxsim: queries\[0\] " + msg):
        fs.maxsim([x], d)
    with pytest.raises(ValueError, match=r"maxsim: docs\[0\] " + msg):
        fs.maxsim(d, [x])
    with pytest.raises(ValueError, match=r"MultiVectors: values " + msg):
        MultiVectors(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"MultiVectors.from_padded: padded " + msg):
        MultiVectors.from_padded(x[None])
    with pytest.raises(ValueError, match=r"dense_dot: queries " + msg):
        fs.dense_dot(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"dense_dot: docs " + msg):
        fs.dense_dot(torch.randn(3, 4), x)
    with pytest.raises(ValueError, match=r"SparseVectors: values " + msg):
        SparseVectors(torch.tensor([0, 1]), x[0, :2], torch.tensor([0, 2]), 4)
    with pytest.raises(ValueError, match=r"similarity: a " + msg):
        compat.similarity(x, torch.randn(3, 4))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_sparse_and_nested_tensor_items_are_type_errors():
    with pytest.raises(TypeError, match=r"maxsim: queries\[0\] must be a dense \(strided\) tensor, got layout "
                                        r"torch.sparse_coo; call \.to_dense\(\)"):
        fs.maxsim([torch.randn(2, 4).to_sparse()], [torch.randn(3, 4)])
    with pytest.raises(TypeError, match=r"maxsim: docs\[0\] must be a dense \(strided\) tensor, got layout "
                                        r"torch.sparse_csr"):
        fs.maxsim([torch.randn(2, 4)], [torch.randn(3, 4).to_sparse_csr()])
    nested = torch.nested.nested_tensor([torch.randn(2, 4), torch.randn(3, 4)], layout=torch.jagged)
    with pytest.raises(TypeError, match=r"maxsim: queries must be a list of \[L_i, D\] tensors, got a nested tensor; "
                                        r"pass list\(x.unbind\(\)\)"):
        fs.maxsim(nested, [torch.randn(3, 4)])
    with pytest.raises(TypeError, match=r"maxsim: docs\[0\] must be a dense \(strided\) tensor, got a nested tensor"):
        fs.maxsim([torch.randn(2, 4)], [nested])
    with pytest.raises(TypeError, match=r"dense_dot: docs must be a dense \(strided\) tensor, got layout "
                                        r"torch.sparse_coo"):
        fs.dense_dot(torch.randn(2, 4), torch.randn(3, 4).to_sparse())


@pytest.mark.parametrize("groups", ["02", b"02", 2.5, {"a": 1}])
def test_groups_of_the_wrong_type(groups):
    with pytest.raises(TypeError, match=r"maxsim: groups must be \[B\+1\] integer offsets \(a tensor, array or "
                                        r"list of int\), got " + type(groups).__name__):
        fs.maxsim([torch.randn(2, 4)], [torch.randn(3, 4)] * 2, mode="pairs", groups=groups)


def test_groups_of_floats_is_a_type_error():
    with pytest.raises(TypeError, match=r"sparse_dot: groups must be integer offsets \[B\+1\], got float"):
        fs.sparse_dot([{1: 1.0}], [{1: 1.0}, {2: 1.0}], mode="pairs", groups=[0.0, 2.0])


@pytest.mark.parametrize("weight", ["abc", "0.5", None, [1.0], b"1"])
def test_from_dicts_weights_must_be_numbers(weight):
    with pytest.raises(TypeError, match=r"SparseVectors.from_dicts: rows\[1\]\[7\] must be a number \(the term's "
                                        r"weight\), got " + type(weight).__name__):
        SparseVectors.from_dicts([{1: 1.0}, {7: weight}])


def test_from_dicts_accepts_numpy_and_0d_tensor_weights():
    sv = SparseVectors.from_dicts([{1: np.float32(0.5), 2: np.float64(0.25), 3: torch.tensor(2.0), 4: 3}])
    assert sv.values.tolist() == [0.5, 0.25, 2.0, 3.0]


@pytest.mark.parametrize("term", [2**70, "99999999999999999999999", 2**31 - 1, -1])
def test_from_dicts_term_ids_past_int32(term):
    with pytest.raises(ValueError, match=r"SparseVectors.from_dicts: rows\[0\] term ids must lie in \[0, 2\*\*31 - 1\), "
                                         r"got " + str(term)):
        SparseVectors.from_dicts([{term: 1.0}])


def test_from_dicts_unicode_digit_strings_are_not_ids():
    with pytest.raises(ValueError, match=r"SparseVectors.from_dicts: rows\[0\] term '²' must be an int id, a digit "
                                         r"string"):
        SparseVectors.from_dicts([{"²": 1.0}])


@pytest.mark.parametrize("bad,exc,match", [
    ("1GB", TypeError, r"max_memory must be a positive int \(bytes\), got str"),
    (2.5e9, TypeError, r"max_memory must be a positive int \(bytes\), got float"),
    (True, TypeError, r"max_memory must be a positive int \(bytes\), got bool"),
    (0, ValueError, r"max_memory must be > 0 \(bytes\), got 0"),
    (-5, ValueError, r"max_memory must be > 0 \(bytes\), got -5"),
])
def test_max_memory_is_checked_everywhere(bad, exc, match):
    q, d = [torch.randn(2, 4)], [torch.randn(3, 4), torch.randn(1, 4)]
    calls = {
        "maxsim_topk": lambda: fs.maxsim_topk(q, d, 1, max_memory=bad),
        "blocked_topk": lambda: blocked_topk(torch.randn(2, 4), torch.randn(3, 4), 1, max_memory=bad),
        "retrieve": lambda: fs.retrieve(q, d, 1, max_memory=bad),
        "FDE": lambda: FDE(4, max_memory=bad),
        "compute_score": lambda: compat.compute_score(None, [("a", "b")], max_memory=bad),
        "rerank": lambda: compat.rerank([[1]], q, [d[:1]], max_memory=bad),
    }
    index = FDEIndex(FDE(4), d)
    calls["retrieve "] = lambda: index.search(q, 1, max_memory=bad)
    for where, call in calls.items():
        with pytest.raises(exc, match=where.strip() + ": " + match):
            call()


def test_bf16_sum_merge_rounds_once():
    """Eight weights of one id: rounding each to bf16 and then summing gives 0.96875; the exact sum (0.9771...)
    rounds to 0.97265625 once."""
    xs = [0.09495640037508997, 0.021039540405604795, 0.08740019525530296, 0.12256650771531653,
          0.18268919959434177, 0.193354667186381, 0.0959249455339907, 0.17319667562655638]
    rows = [{5: xs[0], **{str(5).zfill(i + 1): x for i, x in enumerate(xs[1:], start=1)}}]  # "05", "005", ...: id 5
    assert len(rows[0]) == 8
    sv = SparseVectors.from_dicts(rows, merge="sum", dtype=torch.bfloat16, vocab_size=8)
    assert sv.indices.tolist() == [5] and sv.values.dtype == torch.bfloat16
    assert float(sv.values[0]) == 0.97265625
    with pytest.raises(TypeError, match=r"SparseVectors.from_dicts: dtype must be float32, float16 or bfloat16, "
                                        r"got float64"):
        SparseVectors.from_dicts(rows, dtype=torch.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_document_is_found_when_the_query_is_empty(backend):
    bad = torch.tensor([[float("nan"), 0.0, 0.0, 0.0]])
    empty_q = [torch.zeros(0, 4)]
    with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must be finite"):
        fs.maxsim(empty_q, [torch.randn(2, 4), bad], backend=backend)
    with pytest.raises(ValueError, match=r"maxsim: docs\[1\] must be finite"):
        fs.maxsim(empty_q + [torch.randn(1, 4)], [torch.randn(2, 4), bad], mode="pairs", groups=[0, 2, 2],
                  backend=backend)
    with pytest.raises(ValueError, match=r"maxsim: docs\[0\] must be finite"):
        fs.maxsim(empty_q + [torch.randn(1, 4)], [bad, torch.randn(2, 4)], mode="pairs", groups=[0, 1, 2],
                  doc_index=[0, 1], backend=backend)
    # a finite document with an empty query still scores 0
    assert fs.maxsim(empty_q, [torch.randn(2, 4)], backend=backend).tolist() == [[0.0]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_dense_dot_rejects_non_finite_inputs(bad):
    q = torch.randn(2, 4)
    d = torch.randn(5, 4)
    d[3, 1] = bad
    with pytest.raises(ValueError, match=r"dense_dot: docs must be finite \(no NaN or Inf\), got 1 non-finite"):
        fs.dense_dot(q, d)
    with pytest.raises(ValueError, match=r"dense_dot: queries must be finite"):
        fs.dense_dot(d, q)
    with pytest.raises(ValueError, match=r"dense_dot: docs must be finite"):
        fs.dense_dot(q[:1].expand(5, 4), d, mode="pairs")


def test_maxsim_topk_checks_what_a_ranking_backend_returns(monkeypatch):
    """A backend that ranks internally (Triton) would put a NaN first: the op names it from the top k."""
    q, d = _overflowing()
    nan_first = (torch.tensor([[float("nan"), 1.0]]), torch.tensor([[1, 0]]))
    monkeypatch.setitem(_dispatch._TABLE, "maxsim_topk", (_dispatch.Impl("reference", lambda *a: nan_first),))
    with pytest.raises(ValueError, match=r"maxsim_topk: scores must not be NaN, got NaN for queries\[0\] x docs\[1\]"):
        fs.maxsim_topk(q, d, 2, backend="reference")


def test_similarity_takes_lists_of_dicts_as_sparse_rows():
    """Lexical weights (dicts) with different largest ids: dot product, the vocab sizes agreeing on the larger."""
    assert compat.similarity([{1: 2.0}, {"5": 1.0}], [{1: 3.0, 999: 1.0}, {5: 2.0}]).tolist() == [[6.0, 0.0],
                                                                                                  [0.0, 2.0]]
    assert compat.similarity_pairwise([{1: 2.0}], [{1: 3.0, 999: 1.0}]).tolist() == [6.0]


def test_rerank_names_sparse_and_grad_items():
    q = [torch.randn(2, 4)]
    with pytest.raises(TypeError, match=r"rerank: documents_embeddings\[0\]\[0\] must be a dense \(strided\) tensor"):
        compat.rerank([[1]], q, [[torch.randn(3, 4).to_sparse()]])
    with pytest.raises(ValueError, match=r"rerank: queries_embeddings\[0\] must not require grad"):
        compat.rerank([[1]], [torch.randn(2, 4, requires_grad=True)], [[torch.randn(3, 4)]])


def test_dense_dot_scan_can_be_skipped_but_a_nan_score_still_raises():
    d = torch.tensor([[1.0, float("inf")], [1.0, 1.0]])
    assert fs.dense_dot(torch.tensor([[1.0, 1.0]]), d, check_finite=False)[0, 0] == float("inf")
    with pytest.raises(ValueError, match=r"dense_dot: scores must not be NaN, got NaN for queries\[0\] x docs\[0\]"):
        fs.dense_dot(torch.tensor([[1.0, 0.0]]), d, check_finite=False)  # 1 * 1 + 0 * inf
    with pytest.raises(ValueError, match=r"blocked_topk: scores must not be NaN, got NaN for queries\[0\] x "
                                         r"docs\[2\]"):  # named in the whole corpus, not in its block
        blocked_topk(torch.tensor([[1.0, 0.0]]), torch.cat([d[1:], d[1:], d]), 1, max_memory=8, check_finite=False)
    with pytest.raises(ValueError, match=r"dense_dot: docs must be finite"):
        blocked_topk(torch.tensor([[1.0, 0.0]]), d, 1)
