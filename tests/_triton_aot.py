"""Lower Triton kernels to PTX without a GPU: the interpreter never runs Triton's GPU compiler, so a kernel that
type-checks under it but cannot be lowered for the GPU (TTIR -> TTGIR -> PTX for sm_80 / sm_90) would pass CPU CI.

``lower(body, arch)`` runs ``_PRELUDE + body`` in a fresh process with TRITON_INTERPRET=0; the body calls
``build(fn, types, consts, opts, div16)`` per variant and prints ``name True|False`` lines, returned as a dict.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

_PRELUDE = textwrap.dedent("""
    import importlib, sys
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    import torch
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
""")

# with a GPU the kernels compile and run in the tests themselves
needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the kernels compile and run in the tests")
ARCHS = [80, 90]  # A100, H100/H200


def lower(body: str, arch: int) -> dict[str, str]:
    """Run the variant script for ``arch``; skip when this triton build has no NVIDIA backend."""
    import triton.backends

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton build has no NVIDIA backend")
    env = dict(os.environ, TRITON_INTERPRET="0")
    res = subprocess.run([sys.executable, "-c", _PRELUDE + textwrap.dedent(body), str(arch)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return dict(line.split() for line in res.stdout.strip().splitlines())
