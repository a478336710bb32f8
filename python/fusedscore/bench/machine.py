"""The machine: what it is, how fast it multiplies and copies, and the roofline floor of each workload.

The roofline floor of a workload is ``max(flops / matmul_rate, bytes / copy_bandwidth)``: the time a
kernel would take running at the machine's measured dense-matmul FLOP rate or its copy bandwidth,
whichever binds. Both rates are measured in the same run as the kernels (a large ``torch.mm`` and a
large ``Tensor.copy_``), so the fraction ``floor / measured`` compares like with like.

Work model (ideal, never counting padding):
- MaxSim: ``flops = 2 * D * sum over scored pairs of Lq * Ld`` (``2 * Lq * sum(Ld) * D`` per query in a
  rerank); ``bytes = query tokens + document tokens (read once) + scores written``.
- Sparse dot: memory-bound by nature; ``bytes = CSR of queries + CSR of documents + scores written``,
  ``flops`` left out (0).
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from .cases import Inputs
from .timing import measure

__all__ = ["describe_device", "measure_rates", "work", "roofline_s", "matmul_key"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_bf16", "avx512_fp16",
                              "amx_bf16", "amx_tile")
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def describe_device(device: str) -> dict[str, Any]:
    """CPU model, core count and (for CUDA) the GPU name and memory."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {"kind": "cuda" if device.startswith("cuda") else "cpu", "cpu": _cpu_model(),
                            "cpu_count": os.cpu_count(), "cpus_usable": usable, "cpu_flags": _cpu_flags(),
                            "platform": platform.platform()}
    if info["kind"] == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device))
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpu_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda)
    info["name"] = info.get("gpu") or f"{info['cpu']} ({usable} cores)"
    return info


def matmul_key(dtype: str, device: str) -> str:
    """Which measured matmul rate bounds a kernel on ``dtype`` inputs: CPU fp16 math runs in fp32 (F16C
    converts, fp32 FMAs), so CPU fp16 is held to the fp32 rate."""
    if device.startswith("cuda"):
        return dtype
    return "bf16" if dtype == "bf16" else "fp32"


def measure_rates(device: str, quick: bool = False) -> dict[str, Any]:
    """Measured dense-matmul GFLOP/s per dtype and copy GB/s (read + write) on ``device``: the best of a few
    runs, so a busy moment does not lower the roofline (which would flatter every kernel)."""
    from .cases import DTYPES

    cuda = device.startswith("cuda")
    n = 8192 if cuda else 2048
    dts = ("fp16", "bf16", "fp32") if cuda else ("fp32", "bf16")
    out: dict[str, Any] = {"matmul_gflops": {}, "matmul_n": n}
    g = torch.Generator(device=device).manual_seed(0)
    for name in dts:
        a = torch.randn(n, n, device=device, generator=g).to(DTYPES[name])
        b = torch.randn(n, n, device=device, generator=g).to(DTYPES[name])
        t = measure(lambda: torch.mm(a, b), device, repeats=3 if quick else 5, budget_s=1.0)
        out["matmul_gflops"][name] = 2 * n**3 / t.best / 1e9  # the best run: a peak, not a typical rate
    if cuda:
        out["tf32_allowed"] = bool(torch.backends.cuda.matmul.allow_tf32)
    # a buffer well past the last-level cache: 1 GiB on GPU, 256 MiB on CPU (128 MiB in quick mode)
    nbytes = (1 << 30) if cuda else ((128 if quick else 256) << 20)
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), device, repeats=3 if quick else 5, budget_s=1.0)
    out["copy_gbps"] = 2 * nbytes / t.best / 1e9  # every byte is read once and written once
    out["copy_bytes"] = nbytes
    return out


def _bytes_of(x: Any) -> int:
    total = 0
    for name in ("values", "offsets", "indices"):
        t = getattr(x, name, None)
        if isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    return total


def work(inputs: Inputs) -> dict[str, float]:
    """Ideal flops and bytes of a workload (see the module docstring)."""
    case, q, d = inputs.case, inputs.q, inputs.d
    if case.mode == "topk":
        n_out = len(q) * min(case.k, len(d)) * 12  # fp32 value + int64 index
    else:
        n_out = inputs.n_pairs * 4
    nbytes = _bytes_of(q) + _bytes_of(d) + n_out
    if case.op == "sparse_dot":
        return {"flops": 0.0, "bytes": float(nbytes)}
    dim = q.dim
    if inputs.groups is not None:
        q_len = q.lengths.double().cpu()
        per_doc_q = torch.repeat_interleave(q_len, inputs.groups[1:] - inputs.groups[:-1])
        flops = 2.0 * dim * float((per_doc_q * d.lengths.double().cpu()).sum())
    else:
        flops = 2.0 * dim * float(q.lengths.double().sum()) * float(d.lengths.double().sum())
    return {"flops": flops, "bytes": float(nbytes)}


def roofline_s(w: dict[str, float], rates: dict[str, Any], dtype: str, device: str) -> float:
    """The floor ``max(flops / matmul rate, bytes / copy bandwidth)`` in seconds. The rate is the faster of the
    dtype's own matmul and fp32's: 16-bit inputs can always be widened and multiplied in fp32, so a CPU without
    native bf16 math (torch's bf16 matmul ran at ~0.3 GFLOP/s on an AVX2-only EPYC) does not make the floor
    absurdly slow and every kernel look past 100% of it."""
    own = rates["matmul_gflops"].get(matmul_key(dtype, device)) or 0.0
    rate = max(own, rates["matmul_gflops"]["fp32"])
    return max(w["flops"] / (rate * 1e9), w["bytes"] / (rates["copy_gbps"] * 1e9))
