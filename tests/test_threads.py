"""Concurrency: the native kernels release the GIL, so calls from several Python threads run at once (each
with its own OpenMP team and scratch). Every result must equal the serial one bit for bit: a score is computed
by one thread in a fixed order whatever the scheduling."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import MultiVectors, SparseVectors

NATIVE = _dispatch.native_module()
pytestmark = pytest.mark.skipif(NATIVE is None, reason="native extension not built")


@pytest.fixture(autouse=True)
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


def test_concurrent_calls_equal_serial_results():
    calls = _calls()
    serial = [c() for c in calls]
    jobs = [i % len(calls) for i in range(6 * len(calls))]  # every call several times, interleaved
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: (i, calls[i]()), jobs))
    for i, got in results:
        assert torch.equal(got, serial[i]), f"call {i} differs when run concurrently"
