"""MaxSim top-k (``fusedscore.maxsim_topk``) on every backend: the ranking, its tie rule, the blocks it scores in,
and the memory it holds.

The tie rule (``ops.maxsim_topk``): equal scores rank the lower document index first, at the k-th place too,
whatever the block size. The blocked backends (native, reference: ``_blocks.topk_over_blocks``) and the Triton
path (``kernels.maxsim.maxsim_topk``, unique sort keys) implement it separately, so each runs the same cases.
"""

from __future__ import annotations

import subprocess
import sys
import weakref

import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import MultiVectors
from fusedscore.reference import maxsim_ref

from _tol import assert_scores_close, key_for
from conftest import DTYPES, abs_values, backend_params

NATIVE = _dispatch.native_module()
ALL = backend_params("native", "reference", "triton")
CPU_BACKENDS = [p for p in backend_params("native", "reference") if p.values[1] == "cpu"]  # host memory tests


def _tokens(lengths: list[int], dim: int, gen: torch.Generator) -> list[list[list[int]]]:
    """Items of small integer tokens in [-2, 2]: every dot product and every sum of maxima is exact in fp16, bf16 and
    fp32, so equal scores are equal in every backend and ties are real."""
    return [torch.randint(-2, 3, (n, dim), generator=gen).tolist() for n in lengths]


def _exact_scores(qs: list[list[list[int]]], ds: list[list[list[int]]], reduce: str) -> list[list[float]]:
    """MaxSim in Python integers, written from the definition (independent of every backend and of the reference):
    an empty document scores -inf against a non-empty query, an empty query 0."""
    out = []
    for q in qs:
        row = []
        for d in ds:
            if not q:
                row.append(0.0)
            elif not d:
                row.append(float("-inf"))
            else:
                total = sum(max(sum(a * b for a, b in zip(qt, dt)) for dt in d) for qt in q)
                row.append(total / len(q) if reduce == "mean" else float(total))
        out.append(row)
    return out


def _ranked(row: list[float], k: int) -> list[int]:
    """The documented order: score descending, then document index ascending."""
    return sorted(range(len(row)), key=lambda n: (-row[n], n))[:k]


def _mv(items: list[list[list[int]]], dim: int, dtype: torch.dtype, device: str) -> MultiVectors:
    return MultiVectors.from_list([torch.tensor(t, dtype=torch.float32).reshape(-1, dim).to(dtype) for t in items],
                                  dim=dim, dtype=dtype).to(device)


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_ties_rank_the_lower_document_first(backend, device, dtype, reduce):
    """Exact ties everywhere (an empty query ties every document at 0; empty documents tie at -inf; small integers
    repeat), ranked across block boundaries: one document per block, a few per block, one block for all."""
    gen = torch.Generator().manual_seed(17)
    n_docs = 24 if device == "cpu" else 3000
    dim = 8
    ql = [4, 0, 2]  # powers of two: reduce="mean" divides exactly
    dl = torch.randint(0, 4, (n_docs,), generator=gen).tolist()
    dl[4] = dl[9] = 0  # empty documents: -inf, still ranked when k exceeds the non-empty ones
    qs, ds = _tokens(ql, dim, gen), _tokens(dl, dim, gen)
    exact = _exact_scores(qs, ds, reduce)
    assert any(len(set(r)) < len(r) for r in exact)  # the case has ties to order
    q, d = _mv(qs, dim, dtype, device), _mv(ds, dim, dtype, device)
    for k in (1, 3, 7, n_docs, n_docs + 3):
        for max_memory in (1, 4 * 3 * 5, 1 << 20):  # k documents per block, a few, all in one
            v, i = fs.maxsim_topk(q, d, k, reduce=reduce, max_memory=max_memory, backend=backend)
            want = [_ranked(r, k) for r in exact]
            assert i.cpu().tolist() == want, (k, max_memory)
            assert v.cpu().tolist() == [[r[n] for n in w] for r, w in zip(exact, want)], (k, max_memory)


@pytest.mark.parametrize("backend, device", ALL)
@pytest.mark.parametrize("max_memory", [4 * 3 * 5, 1 << 20])  # a few documents per block vs one block
def test_blocked_equals_the_full_ranking(backend, device, max_memory):
    """Random scores (no ties): the top 4 of 14 documents, one of them empty, against the float64 reference."""
    g = torch.Generator().manual_seed(0)
    q = MultiVectors.from_list([torch.randn(n, 16, generator=g) for n in (3, 5, 1)]).to(device)
    d = MultiVectors.from_list([torch.randn(n, 16, generator=g) for n in (4, 0, 7, 1, 9, 2, 6, 3, 8, 5, 1, 2, 0, 7)])
    d = d.to(device)
    full = maxsim_ref(q, d).cpu()
    order = torch.argsort(full, dim=1, descending=True)[:, :4]
    v, i = fs.maxsim_topk(q, d, 4, max_memory=max_memory, backend=backend)
    assert torch.equal(i.cpu(), order)
    mag = maxsim_ref(abs_values(q), abs_values(d)).cpu()
    assert_scores_close(v, full.gather(1, order), mag.gather(1, order), key_for(torch.float32))


@pytest.mark.parametrize("backend, device", ALL)
def test_k_above_the_corpus_puts_empty_documents_last(backend, device):
    g = torch.Generator().manual_seed(3)
    q = MultiVectors.from_list([torch.randn(2, 8, generator=g)]).to(device)
    d = MultiVectors.from_list([torch.zeros(0, 8), torch.randn(3, 8, generator=g), torch.zeros(0, 8)]).to(device)
    v, i = fs.maxsim_topk(q, d, 10, backend=backend)
    assert v.shape == (1, 3) and i.tolist() == [[1, 0, 2]]  # the two empty documents tie at -inf: lower first
    assert torch.isinf(v[0, 1:]).all() and bool(torch.isfinite(v[0, 0]))


# ----------------------------------------------------------------------------- memory (issue 11, item 5)
@pytest.mark.parametrize("backend, device", CPU_BACKENDS)
def test_holds_one_block_of_scores(backend, device, monkeypatch):
    """Every block the scorer returns fits max_memory, and none is still referenced when the next is scored."""
    name = "_native_maxsim" if backend == "native" else "_ref_maxsim"
    real, alive = getattr(_dispatch, name), []

    def spy(*a, **kw):
        assert not any(r() is not None for r in alive), "an earlier block of scores is still held"
        out = real(*a, **kw)
        assert out.numel() * 4 <= 512 // (2 if backend == "reference" else 1)
        alive.append(weakref.ref(out))
        return out

    monkeypatch.setattr(_dispatch, name, spy)
    g = torch.Generator().manual_seed(5)
    q = MultiVectors.from_list([torch.randn(3, 8, generator=g) for _ in range(4)])
    d = MultiVectors.from_list([torch.randn(2, 8, generator=g) for _ in range(100)])
    got = fs.maxsim_topk(q, d, 5, max_memory=512, backend=backend)  # blocks of 32 documents x 4 queries
    assert len(alive) >= 4
    full = maxsim_ref(q, d)
    order = torch.argsort(full, dim=1, descending=True)[:, :5]
    assert torch.equal(got[1], order)
    mag = maxsim_ref(abs_values(q), abs_values(d))
    assert_scores_close(got[0], full.gather(1, order), mag.gather(1, order), key_for(torch.float32))


_PEAK = """
import resource, sys, torch, fusedscore as fs
from fusedscore.containers import MultiVectors
b, n, mem, backend = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
one = lambda m: MultiVectors(torch.randn(m, 1), torch.arange(m + 1))
q, d = one(b), one(n)
fs.maxsim_topk(q, one(64), 3, max_memory=mem, backend=backend)  # warm up: threads, lazy imports
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fs.maxsim_topk(q, d, 3, max_memory=mem, backend=backend)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.mark.parametrize("backend, device", CPU_BACKENDS)
def test_peak_memory_is_one_block(backend, device):
    """Measured in a fresh process (peak RSS): 4 blocks of 64 MiB; the peak grows by about one block, where two
    blocks (and the reference's similarity chunks, 2.5x) were held before."""
    mem = 64 << 20
    res = subprocess.run([sys.executable, "-c", _PEAK, "128", str(4 * mem // (4 * 128)), str(mem), backend],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    grew = int(res.stdout.split()[-1])
    assert grew <= 1.25 * mem, f"peak grew by {grew / 2**20:.0f} MiB for max_memory={mem >> 20} MiB"
