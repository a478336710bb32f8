"""Ctrl-C and SIGTERM during a long native call: the kernels release the GIL and run in pieces, returning to
Python's signal handlers between pieces, so KeyboardInterrupt (or a handler's SystemExit) arrives within about a
piece's time instead of when the whole call ends. Each case runs in a child process (signals are per process)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from fusedscore import _dispatch

pytestmark = pytest.mark.skipif(_dispatch.native_module() is None, reason="native extension not built")

# 512 queries x 32 tokens against 8,000 documents x 64 tokens, D=32: 2.7e11 multiply-adds, well over 5 s on
# this project's CI machines (the signal comes after 0.5 s; the case fails unless it stops within 2 s).
_CHILD = """
import signal, sys, time, torch, fusedscore as fs
from fusedscore.containers import MultiVectors
mode = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(4))
g = torch.Generator().manual_seed(0)
B, N, D = 512, 8000, 32
q = MultiVectors(torch.randn(B * 32, D, generator=g), torch.arange(0, B * 32 + 1, 32))
d = MultiVectors(torch.randn(N * 64, D, generator=g), torch.arange(0, N * 64 + 1, 64))
call = {
    "all": lambda: fs.maxsim(q, d),
    "pairs": lambda: fs.maxsim(q, d, mode="pairs", groups=torch.arange(0, B * N + 1, N),
                               doc_index=torch.arange(N).repeat(B)),
    "list": lambda: fs.maxsim(q, d.to_list()),
    "topk": lambda: fs.maxsim_topk(q, d, 10),
}[mode]
print("ready", flush=True)
t0 = time.perf_counter()
try:
    call()
except KeyboardInterrupt:
    print("interrupted", time.perf_counter() - t0, flush=True)
    sys.exit(3)
print("finished", time.perf_counter() - t0, flush=True)
"""


def _interrupt(mode: str, sig: int) -> tuple[int, float, str]:
    with subprocess.Popen([sys.executable, "-c", _CHILD, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
            time.sleep(0.5)
            child.send_signal(sig)
            sent = time.perf_counter()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                return -1, time.perf_counter() - sent, "still running 10 s after the signal"
            return child.returncode, time.perf_counter() - sent, child.stdout.read() + child.stderr.read()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


@pytest.mark.parametrize("mode", ["all", "pairs", "list", "topk"])
def test_sigint_interrupts_a_long_maxsim(mode):
    rc, waited, out = _interrupt(mode, signal.SIGINT)
    assert rc == 3 and "interrupted" in out, out
    assert waited < 2.0, f"KeyboardInterrupt came {waited:.2f} s after SIGINT"


def test_sigterm_handler_runs_during_a_long_maxsim():
    rc, waited, out = _interrupt("all", signal.SIGTERM)
    assert rc == 4, out
    assert waited < 2.0, f"the SIGTERM handler ran {waited:.2f} s after the signal"
