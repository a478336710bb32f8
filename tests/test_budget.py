"""The memory budget (fusedscore._budget): one chunker and one meaning of max_memory for every API that takes it."""

from __future__ import annotations

import pytest
import torch

import fusedscore as fs
from fusedscore import _budget


def chunks(costs, budget):
    return list(_budget.greedy_chunks(costs.__getitem__, len(costs), budget))


def test_greedy_chunks_cut_the_longest_runs_that_fit():
    assert chunks([3, 3, 3, 3], 6) == [(0, 2), (2, 4)]
    assert chunks([1, 2, 3, 4], 6) == [(0, 3), (3, 4)]
    assert chunks([5, 1, 1], 6) == [(0, 2), (2, 3)]
    assert chunks([], 10) == []


def test_an_item_over_the_budget_runs_alone():
    assert chunks([1, 50, 1, 1], 10) == [(0, 1), (1, 2), (2, 4)]


def test_costs_are_read_lazily_once_each():
    seen = []
    scale = [1]

    def cost(i):
        seen.append(i)
        return 2 * scale[0]

    out = []
    for s, e in _budget.greedy_chunks(cost, 6, 4):
        out.append((s, e))
        scale[0] = 2  # a caller learns its items are larger: the next chunk is cut with the new estimate
    assert out == [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    assert sorted(set(seen)) == list(range(6))


def test_resolve_checks_and_defaults():
    assert _budget.resolve(123, "op") == 123
    default = _budget.resolve(None, "op", "cpu")
    assert 64 << 20 <= default <= 2 << 30
    for bad, err in (("1GB", TypeError), (1.5, TypeError), (True, TypeError), (0, ValueError), (-1, ValueError)):
        with pytest.raises(err, match=r"op: max_memory must be"):
            _budget.resolve(bad, "op")


@pytest.mark.parametrize("bad", ["1GB", 0, -5])
def test_score_embeddings_and_reranker_refuse_a_bad_budget(bad):
    # score_embeddings treated 0 (and any falsy value) as "the default" and passed "1GB" on to a raw TypeError
    q = fs.MultiVectors.from_list([torch.randn(3, 8)])
    d = fs.MultiVectors.from_list([torch.randn(4, 8)])
    with pytest.raises((TypeError, ValueError), match=r"score_embeddings: max_memory must be"):
        fs.score_embeddings(q, d, max_memory=bad)
    with pytest.raises((TypeError, ValueError), match=r"Reranker: max_memory must be"):
        fs.Reranker(object(), max_memory=bad)


def test_score_embeddings_chunks_by_the_budget_and_scores_alike():
    g = torch.Generator().manual_seed(0)
    q = fs.MultiVectors.from_list([torch.randn(4, 16, generator=g) for _ in range(5)])
    d = fs.MultiVectors.from_list([torch.randn(int(n), 16, generator=g) for n in torch.randint(1, 9, (20,), generator=g)])
    groups = [0, 4, 8, 12, 16, 20]
    whole = fs.score_embeddings(q, d, groups=groups)
    calls = []
    real = fs.scoring._score_rep

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    fs.scoring._score_rep = counting
    try:
        one_query = int(d.values.element_size() * d.dim * max(int(d.offsets[groups[b + 1]] - d.offsets[groups[b]])
                                                              for b in range(5)))
        chunked = fs.score_embeddings(q, d, groups=groups, max_memory=one_query)
    finally:
        fs.scoring._score_rep = real
    assert len(calls) >= 3  # five queries' candidates do not fit one query's worth of bytes
    assert torch.equal(chunked, whole)
