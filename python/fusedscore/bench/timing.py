"""Timing: warm up, then the median with p20/p80 of repeated runs.

CPU: ``time.perf_counter`` around each call; the thread counts in force are recorded with the results
(``thread_info``). GPU: ``triton.testing.do_bench`` (it flushes L2 between runs and synchronises),
with the quantiles [0.5, 0.2, 0.8], as Liger-Kernel's benchmark scripts do.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

__all__ = ["Timing", "measure", "thread_info"]

QUANTILES = [0.5, 0.2, 0.8]


@dataclass(frozen=True)
class Timing:
    """Seconds: ``median`` with the 20th and 80th percentiles (and the fastest, ``best``) over ``runs``
    timed calls."""

    median: float
    p20: float
    p80: float
    runs: int
    best: float

    def scaled(self, factor: float) -> "Timing":
        return Timing(self.median * factor, self.p20 * factor, self.p80 * factor, self.runs, self.best * factor)


def _quantile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list (numpy's default method)."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def _measure_cpu(fn: Callable[[], Any], repeats: int, budget_s: float, min_runs: int, warmup: bool) -> Timing:
    t0 = time.perf_counter()
    if warmup:
        fn()  # first-touch allocations, lazy imports, thread-pool start
    warm = time.perf_counter() - t0
    if warm > budget_s:  # one call already spends the budget: time a few, not `repeats`
        repeats = min(repeats, min_runs)
    xs: list[float] = []
    start = time.perf_counter()
    while len(xs) < repeats:
        s = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - s)
        if len(xs) >= min_runs and time.perf_counter() - start > budget_s:
            break
    xs.sort()
    return Timing(statistics.median(xs), _quantile(xs, 0.2), _quantile(xs, 0.8), len(xs), xs[0])


def _measure_cuda(fn: Callable[[], Any], repeats: int, budget_s: float, warmup: bool) -> Timing:
    from triton.testing import do_bench  # GPU only: importing triton costs ~1 s

    if warmup:
        fn()  # compile / autotune outside the measured window
    torch.cuda.synchronize()
    s = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    once_ms = (time.perf_counter() - s) * 1e3
    if once_ms > 200:  # long calls: do_bench's 5-call estimate and L2 flushes add nothing but minutes
        xs = []
        for _ in range(max(3, min(repeats, int(budget_s * 1e3 / once_ms) + 1))):
            torch.cuda.synchronize()
            s = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            xs.append(time.perf_counter() - s)
        xs.sort()
        return Timing(statistics.median(xs), _quantile(xs, 0.2), _quantile(xs, 0.8), len(xs), xs[0])
    # do_bench repeats for `rep` ms; keep the total inside the budget but give it >= `repeats` runs
    rep_ms = max(min(budget_s * 1e3, once_ms * max(repeats, 3)), once_ms * 3, 10.0)
    med, p20, p80, best = do_bench(fn, warmup=max(1.0, min(25.0, once_ms * 2)), rep=rep_ms,
                                   quantiles=[*QUANTILES, 0.0])
    runs = max(1, int(rep_ms / max(once_ms, 1e-3)))
    return Timing(med / 1e3, p20 / 1e3, p80 / 1e3, runs, best / 1e3)


def measure(fn: Callable[[], Any], device: str = "cpu", *, repeats: int = 10, budget_s: float = 2.0,
            min_runs: int = 3, warmup: bool = True) -> Timing:
    """Time ``fn()`` (no arguments; its result is discarded).

    Args:
        fn: the call to time; it must finish its work before returning on CPU (torch CPU ops do).
        device: "cpu" (perf_counter) or "cuda" (do_bench).
        repeats: the most timed runs.
        budget_s: stop after this many seconds of timed runs once ``min_runs`` are done.
        min_runs: the fewest timed runs.
        warmup: make one untimed call first (pass False when the caller already made it; on CPU the
            budget then only trims the repeats if one run exceeds it).
    """
    if device.startswith("cuda"):
        return _measure_cuda(fn, repeats, budget_s, warmup)
    return _measure_cpu(fn, max(repeats, min_runs), budget_s, min_runs, warmup)


def thread_info() -> dict[str, Any]:
    """The thread counts that shape CPU timings: torch's intra/inter-op pools and the usual env knobs."""
    info: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                            "torch_interop_threads": torch.get_num_interop_threads()}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        info[var] = os.environ.get(var)
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        info["cpus_usable"] = os.cpu_count()
    return info
