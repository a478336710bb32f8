"""The reference itself: its doctests (hand-checkable numbers) run, and its memory chunking changes nothing."""

from __future__ import annotations

import doctest

import torch

import fusedscore as fs
from fusedscore import reference


def test_doctests():
    res = doctest.testmod(reference, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted >= 5 and res.failed == 0


def test_maxsim_chunks_over_queries_and_documents(monkeypatch):
    """A budget below one [Lq, Ld] block: every (query, document) pair is its own chunk, in all-pairs mode over
    queries too (the fallback backend must not build a [B, 1, Lq, Ld] block for a large B)."""
    g = torch.Generator().manual_seed(3)
    q = fs.MultiVectors.from_list([torch.randn(n, 8, generator=g) for n in (3, 0, 5, 7, 1)])
    d = fs.MultiVectors.from_list([torch.randn(n, 8, generator=g) for n in (2, 0, 9, 4)])
    qi = torch.tensor([4, 0, 2, 2])
    want = (reference.maxsim_ref(q, d), reference.maxsim_ref(q, d, query_index=qi, reduce="mean"))
    monkeypatch.setattr(reference, "_BUDGET_BYTES", 1)
    got = (reference.maxsim_ref(q, d), reference.maxsim_ref(q, d, query_index=qi, reduce="mean"))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
