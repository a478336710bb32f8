"""topk, hybrid fusion and reciprocal-rank fusion (maxsim_topk: tests/test_maxsim_topk.py)."""

from __future__ import annotations

import pytest
import torch

import fusedscore as fs
from fusedscore import reference

INF = float("inf")


def test_topk_matches_reference_and_clamps_k():
    s = torch.tensor([[0.1, 0.9, 0.5, 0.3], [2.0, -1.0, 0.0, 1.0]])
    v, i = fs.topk(s, 2)
    rv, ri = reference.topk_ref(s, 2)
    assert torch.equal(v, rv) and torch.equal(i, ri)
    v, i = fs.topk(s, 10)  # k larger than N -> all of them, sorted
    assert v.shape == (2, 4) and i[1].tolist() == [0, 3, 2, 1]


def test_topk_ties_rank_the_lower_index_first():
    """The documented rule, at the k-th place too (torch.topk keeps an unspecified one of several tied there)."""
    s = torch.tensor([[1.0, 2.0, 1.0, 2.0, -INF, 1.0], [0.0] * 6, [-INF] * 6])
    v, i = fs.topk(s, 4)
    assert i.tolist() == [[1, 3, 0, 2], [0, 1, 2, 3], [0, 1, 2, 3]]
    assert v[0].tolist() == [2.0, 2.0, 1.0, 1.0]
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 3, (5, 300), generator=g).float()  # ~100 ties per value and row
    for k in (1, 40, 150, 300):
        want = [sorted(range(300), key=lambda n: (-r[n], n))[:k] for r in s.tolist()]
        assert fs.topk(s, k)[1].tolist() == want


@pytest.mark.parametrize("k, exc, match", [(0, ValueError, "k must be > 0, got 0"), (-3, ValueError, "got -3"),
                                           (1.5, TypeError, "k must be an int")])
def test_topk_bad_k(k, exc, match):
    with pytest.raises(exc, match=match):
        fs.topk(torch.zeros(1, 3), k)


def test_topk_rejects_nan():
    with pytest.raises(ValueError, match="scores must not contain NaN"):
        fs.topk(torch.tensor([[1.0, float("nan")]]), 1)


# ----------------------------------------------------------------------------- hybrid
def test_hybrid_weighted_sum_plain():
    a = torch.tensor([[1.0, 2.0, 3.0]])
    b = torch.tensor([[0.5, 0.0, -1.0]])
    out = fs.hybrid([a, b], [0.4, 0.6])
    assert torch.allclose(out, 0.4 * a + 0.6 * b)


def test_hybrid_minmax_single_candidate_and_ties_do_not_collapse():
    one = torch.tensor([[3.7]])
    assert fs.hybrid([one], [1.0], normalize="minmax").item() == 1.0
    tied = torch.tensor([[2.0, 2.0, 2.0]])
    other = torch.tensor([[1.0, 0.0, 0.5]])
    out = fs.hybrid([tied, other], [0.5, 0.5], normalize="minmax")
    assert torch.allclose(out, torch.tensor([[1.0, 0.5, 0.75]]))


def test_hybrid_zscore_and_sigmoid():
    s = torch.tensor([[1.0, 2.0, 3.0]])
    z = fs.hybrid([s], [1.0], normalize="zscore")
    assert torch.allclose(z, (s - 2.0) / torch.tensor(2.0 / 3.0).sqrt())
    assert torch.allclose(fs.hybrid([s], [2.0], normalize="sigmoid"), 2 * torch.sigmoid(s))
    assert fs.hybrid([torch.tensor([[5.0]])], [1.0], normalize="zscore").item() == 0.0


def test_hybrid_missing_document_rule():
    dense = torch.tensor([[0.9, 0.1, 0.5]])
    sparse = torch.tensor([[4.0, -INF, 2.0]])  # doc 1 is missing from the sparse signal
    out = fs.hybrid([dense, sparse], [1.0, 1.0], normalize="minmax")
    # missing gets the row's worst normalised sparse score (0 after min-max over {4, 2})
    assert torch.allclose(out, torch.tensor([[1.0 + 1.0, 0.0 + 0.0, 0.5 + 0.0]]))
    out = fs.hybrid([dense, sparse], [1.0, 1.0], normalize="minmax", missing=-1.0)
    assert torch.allclose(out[0, 1], torch.tensor(-1.0))
    both_missing = fs.hybrid([torch.tensor([-INF]), torch.tensor([float("nan")])], [1.0, 1.0])
    assert both_missing.item() == -INF


def test_hybrid_errors():
    with pytest.raises(ValueError, match="weights must have one entry per score tensor"):
        fs.hybrid([torch.zeros(3)], [1.0, 2.0])
    with pytest.raises(ValueError, match="normalize must be one of"):
        fs.hybrid([torch.zeros(3)], [1.0], normalize="rank")
    with pytest.raises(ValueError, match=r"scores\[1\] must have shape \(3,\)"):
        fs.hybrid([torch.zeros(3), torch.zeros(4)], [1.0, 1.0])


# ----------------------------------------------------------------------------- RRF
def test_rrf_by_hand():
    a = torch.tensor([[3.0, 1.0, 2.0]])   # ranks 1, 3, 2
    b = torch.tensor([[0.0, 5.0, -INF]])  # ranks 2, 1, missing
    out = fs.reciprocal_rank_fusion([a, b], k=60)
    expect = torch.tensor([[1 / 61 + 1 / 62, 1 / 63 + 1 / 61, 1 / 62]])
    assert torch.allclose(out, expect)


def test_rrf_ties_share_the_better_rank_and_weights():
    s = torch.tensor([2.0, 2.0, 1.0])
    out = fs.reciprocal_rank_fusion([s], k=10, weights=[2.0])
    assert torch.allclose(out, torch.tensor([2 / 11, 2 / 11, 2 / 13]))


@pytest.mark.parametrize("shape", [(2, 0), (0,), (0, 3)])
def test_fusion_of_empty_score_rows(shape):
    # reshape(-1, 0) is ambiguous in torch: [B, 0] scores (no candidates) raised RuntimeError
    s = torch.zeros(shape)
    assert fs.hybrid([s, s], [0.5, 0.5], normalize="minmax").shape == shape
    assert fs.reciprocal_rank_fusion([s, s]).shape == shape


def test_fusion_rejects_0d_scores():
    with pytest.raises(ValueError, match=r"hybrid: scores\[0\] must have shape"):
        fs.hybrid([torch.tensor(1.0)], [1.0])
    with pytest.raises(ValueError, match=r"reciprocal_rank_fusion: scores\[0\] must have shape"):
        fs.reciprocal_rank_fusion([torch.tensor(1.0)])
