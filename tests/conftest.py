"""Shared test helpers: devices, backends, dtypes, readable ids, seeded random inputs."""

from __future__ import annotations

import importlib.util
import os

import torch

if not torch.cuda.is_available():
    # no GPU (CI): Triton kernels run on CPU tensors under the interpreter, which triton reads at import
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# dims that hit every SIMD tail: 1, below/at/above 8, 16, 32, 64, 128 lanes
DIMS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 127, 128, 129]


def get_devices() -> list[str]:
    pinned = os.environ.get("FUSEDSCORE_TEST_DEVICE")
    if pinned:
        return [pinned]
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


DEVICES = get_devices()
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"

# where each backend runs: native reads host memory; Triton runs CUDA tensors, and CPU tensors under the interpreter
_BACKEND_DEVICES = {"native": ("cpu",), "reference": ("cpu", "cuda"), "triton": ("cpu", "cuda")}


def _unavailable(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` here, or None when it can."""
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if device not in DEVICES:
        return f"FUSEDSCORE_TEST_DEVICE pins {DEVICES}"
    if backend == "native":
        from fusedscore import _dispatch

        if _dispatch.native_module() is None:
            return f"native extension not built: {_dispatch._NATIVE_ERR!r}"
    if backend == "triton":
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed"
        if device == "cpu" and not INTERPRET:
            return "Triton runs CPU tensors only under TRITON_INTERPRET=1 (set when no GPU is present)"
    return None


def backend_params(*names: str) -> list:
    """``(backend, device)`` parameters for every listed backend on every device it runs on, with readable ids
    (``native-cpu``, ``triton-interpret``, ``triton-cuda``, ...). A pair this host cannot run skips with the
    reason; it is never dropped, so a GPU run and a CPU run collect the same cases."""
    out = []
    for name in names or tuple(_BACKEND_DEVICES):
        for dev in _BACKEND_DEVICES[name]:
            why = _unavailable(name, dev)
            tag = "interpret" if name == "triton" and dev == "cpu" else dev
            out.append(pytest.param(name, dev, id=f"{name}-{tag}", marks=pytest.mark.skipif(why is not None,
                                                                                         reason=why or "")))
    return out


def describe_dtype(dt: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dt, str(dt))


def pytest_make_parametrize_id(config, val, argname):
    if isinstance(val, torch.dtype):
        return describe_dtype(val)
    return None


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
