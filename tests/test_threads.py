"""Concurrency: calls from several Python threads at once must give the serial results.

- Native kernels release the GIL, so calls run at once (each with its own OpenMP team and scratch). Every
  result must equal the serial one bit for bit: a score is computed by one thread in a fixed order whatever
  the scheduling.
- Encoders and ``Reranker`` share one tokenizer between calls that truncate at different lengths (ColBERT
  queries and documents, per-call ``max_length``); a call must never see another call's length, and
  ``last_truncated`` must report the calling thread's own last call.
"""

from __future__ import annotations

import random
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import MultiVectors, SparseVectors
from _tol import ATOL, RTOL, key_for

NATIVE = _dispatch.native_module()
needs_native = pytest.mark.skipif(NATIVE is None, reason="native extension not built")


@pytest.fixture
def threaded_even_when_small():
    """These inputs are small: scale the per-thread work minimum to 0 so every call opens an OpenMP team."""
    prev = NATIVE._set_min_work_scale(0.0)
    yield
    NATIVE._set_min_work_scale(prev)


def _calls():
    g = torch.Generator().manual_seed(0)
    calls = []
    for i, dtype in enumerate([torch.float32, torch.float16, torch.bfloat16]):
        q = MultiVectors.from_list([torch.randn(n, 32, generator=g).to(dtype) for n in (32, 7, 0)])
        d = MultiVectors.from_list([torch.randn(int(n), 32, generator=g).to(dtype)
                                    for n in torch.randint(0, 60, (90,), generator=g)])
        calls.append(lambda q=q, d=d: fs.maxsim(q, d, backend="native"))
        calls.append(lambda q=q, d=d: fs.maxsim(q, d, mode="pairs", groups=[0, 40, 41, 90], reduce="mean",
                                                backend="native"))
    sq = SparseVectors(torch.randint(0, 50, (60,), generator=g, dtype=torch.int32), torch.rand(60, generator=g),
                       torch.arange(0, 61, 6), 50)
    sd = SparseVectors(torch.randint(0, 50, (800,), generator=g, dtype=torch.int32), torch.rand(800, generator=g),
                       torch.arange(0, 801, 8), 50)
    calls.append(lambda: fs.sparse_dot(sq, sd, backend="native"))
    calls.append(lambda: fs.sparse_dot(sq, sd, mode="pairs", groups=torch.arange(0, 101, 10), backend="native"))
    return calls


@needs_native
def test_concurrent_calls_equal_serial_results(threaded_even_when_small):
    calls = _calls()
    serial = [c() for c in calls]
    jobs = [i % len(calls) for i in range(6 * len(calls))]  # every call several times, interleaved
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: (i, calls[i]()), jobs))
    for i, got in results:
        assert torch.equal(got, serial[i]), f"call {i} differs when run concurrently"


# ----------------------------------------------------------------------------- encoders and Reranker
encoders_mark = pytest.mark.encoders
THREADS = 8
ROUNDS = 10  # runs of each call per thread: the old shared-tokenizer race failed 5 times in 5 at 10, 4 in 6 at 3
TOL = RTOL[key_for(torch.float32)] + ATOL

# short queries and documents far past every limit below, so each length setting truncates differently
_WORDS = "late interaction models score every query token against every document token with eating food".split()


def _texts(n_words: tuple[int, ...], seed: int) -> list[str]:
    r = random.Random(seed)
    return [" ".join(r.choice(_WORDS) for _ in range(n)) for n in n_words]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from fusedscore import encoders
    from fusedscore.testing import tiny_models as T

    root = tmp_path_factory.mktemp("tiny_threads")
    dirs = {"colbert": T.build_colbert(root / "colbert"), "dense": T.build_dense(root / "dense"),
            "splade": T.build_splade(root / "splade"), "bgem3": T.build_bgem3(root / "bgem3"),
            "cross": T.build_cross_encoder(root / "cross")}
    return {k: encoders.load(v, device="cpu") for k, v in dirs.items()}


def _same(got, ref, where: str) -> None:
    """Equal structure and shapes, values within the fp32 tolerance (a wrong truncation changes shapes or
    values far beyond it; concurrent BLAS calls may reorder a sum)."""
    if isinstance(ref, dict):
        assert got.keys() == ref.keys(), where
        for k in ref:
            _same(got[k], ref[k], f"{where}[{k}]")
    elif isinstance(ref, (list, tuple)):
        assert len(got) == len(ref), f"{where}: {len(got)} items, serial run gave {len(ref)}"
        for i, (g, r) in enumerate(zip(got, ref)):
            _same(g, r, f"{where}[{i}]")
    elif isinstance(ref, (MultiVectors, SparseVectors)):
        assert torch.equal(got.offsets, ref.offsets), f"{where}: offsets differ from the serial run"
        if isinstance(ref, SparseVectors):
            assert torch.equal(got.indices, ref.indices), f"{where}: indices differ from the serial run"
        _same(got.values, ref.values, where)
    elif isinstance(ref, (torch.Tensor, np.ndarray)):
        got, ref = torch.as_tensor(np.asarray(got) if isinstance(got, np.ndarray) else got), torch.as_tensor(ref)
        assert got.shape == ref.shape, f"{where}: shape {tuple(got.shape)}, serial run gave {tuple(ref.shape)}"
        assert torch.allclose(got.double(), ref.double(), atol=TOL, rtol=0), f"{where}: values differ"
    elif isinstance(ref, float):
        assert abs(got - ref) <= TOL, f"{where}: {got} != {ref}"
    else:
        assert got == ref, f"{where}: {got!r} != {ref!r}"


def _encoder_calls(m: dict) -> dict[str, object]:
    """Calls of every encoder whose truncation lengths differ from each other (queries vs documents,
    per-call max_length), so a length leaking from one call into another shows in the output."""
    texts, queries = _texts((90, 3, 30), 1), _texts((8, 30), 2)
    pairs = [[q, d] for q, d in zip(queries * 2, texts)]
    c, d, s, b, x = m["colbert"], m["dense"], m["splade"], m["bgem3"], m["cross"]
    calls = {
        "colbert_q": (c, lambda: c.encode(queries, is_query=True, batch_size=4)),
        "colbert_d": (c, lambda: c.encode(texts, is_query=False, batch_size=4)),
        "colbert_d_containers": (c, lambda: c.encode(texts, is_query=False, as_containers=True)),
        "dense_8": (d, lambda: d.encode(texts, max_length=8)),
        "dense_default": (d, lambda: d.encode(texts)),
        "splade_6": (s, lambda: s.encode(texts, max_length=6)),
        "splade_default": (s, lambda: s.encode(texts, is_query=True)),
        "bgem3_9": (b, lambda: b.encode(texts, max_length=9, return_sparse=True, return_colbert_vecs=True)),
        "bgem3_default": (b, lambda: b.encode(texts, return_sparse=True, return_colbert_vecs=True, as_containers=True)),
        "cross_7": (x, lambda: x.predict(pairs, max_length=7)),
        "cross_default": (x, lambda: x.predict(pairs)),
    }
    return {k: _with_count(obj, f) for k, (obj, f) in calls.items()}


def _with_count(obj, f):
    """The call's result and the truncation count it reports to its own thread."""
    return lambda: (f(), obj.last_truncated)


def _hammer(calls: dict, threads: int = THREADS, rounds: int = ROUNDS) -> None:
    """Run every call ``rounds`` times from each of ``threads`` threads, in a shuffled order per thread, and
    compare each result with the serial one. A short GIL switch interval interleaves the threads inside the
    Python code between a tokenizer setting and its use, where the old race lived."""
    serial = {k: f() for k, f in calls.items()}
    keys = sorted(calls)

    def worker(seed: int) -> int:
        order = keys * rounds
        random.Random(seed).shuffle(order)
        for k in order:
            _same(calls[k](), serial[k], k)
        return len(order)

    prev = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            done = sum(f.result() for f in [pool.submit(worker, i) for i in range(threads)])
    finally:
        sys.setswitchinterval(prev)
    assert done == threads * rounds * len(keys)


@encoders_mark
def test_encoders_from_many_threads_equal_serial_results(tiny):
    _hammer(_encoder_calls(tiny))


@encoders_mark
def test_reranker_rank_from_many_threads_equals_serial_results(tiny):
    """Reranker.rank over ColBERT (queries and documents truncated at different lengths in one call), a
    BGE-M3 mix and a cross-encoder, from 8 threads."""
    docs, queries = _texts((90, 3, 30, 1, 60), 3), _texts((2, 8, 30, 20), 4)
    calls = {}
    for name, qs in (("colbert", queries), ("bgem3", queries[1:2]), ("cross", queries[2:3])):
        rr = fs.Reranker(tiny[name])
        for i, q in enumerate(qs):
            calls[f"{name}_{i}"] = _with_count(rr, lambda rr=rr, q=q: rr.rank(q, docs))
    _hammer(calls)
