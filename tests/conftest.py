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


def _native_module():
    from fusedscore import _dispatch

    return _dispatch.native_module(), _dispatch._NATIVE_ERR


NATIVE, _NATIVE_ERR = _native_module()
SIMD_LEVELS = NATIVE.info()["simd_levels"] if NATIVE is not None else []
needs_native = pytest.mark.skipif(NATIVE is None, reason=f"native extension not built: {_NATIVE_ERR!r}")


@pytest.fixture(params=SIMD_LEVELS or [pytest.param(None, marks=needs_native)])
def simd(request):
    """Run the test once per SIMD level of this CPU/build, restoring the level afterwards. Small inputs are
    threaded too (min-work scale 0), so the multi-threaded paths run on these shapes."""
    prev = NATIVE.set_simd(request.param)
    prev_scale = NATIVE._set_min_work_scale(0.0)
    yield request.param
    NATIVE.set_simd(prev)
    NATIVE._set_min_work_scale(prev_scale)


# where each backend runs: native reads host memory; Triton runs CUDA tensors, and CPU tensors under the interpreter
_BACKEND_DEVICES = {"native": ("cpu",), "reference": ("cpu", "cuda"), "triton": ("cpu", "cuda"),
                    "torch": ("cpu", "cuda")}


def _unavailable(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on ``device`` here, or None when it can."""
    if device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if device not in DEVICES:
        return f"FUSEDSCORE_TEST_DEVICE pins {DEVICES}"
    if backend == "native" and NATIVE is None:
        return f"native extension not built: {_NATIVE_ERR!r}"
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


# ----------------------------------------------------------------------------- MaxSim inputs and independent values
def multivectors(lengths: list[int], dim: int, dtype: torch.dtype = torch.float32, seed: int = 0,
                 device: str = "cpu", sign: float = 0.0):
    """Seeded ragged MultiVectors with the given token counts, built in fp32 and cast to ``dtype``; ``sign`` = +1/-1
    forces the sign of every value."""
    from fusedscore.containers import MultiVectors

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(lengths), dim, generator=g)
    if sign:
        x = sign * x.abs()
    off = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    off[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0)
    return MultiVectors(x.to(dtype).to(device), off.to(device))


def abs_values(x):
    """The container with |values|: the op applied to it bounds the rounding error (see _tol)."""
    from fusedscore.containers import MultiVectors, SparseVectors

    if isinstance(x, SparseVectors):
        return SparseVectors(x.indices, x.values.abs(), x.offsets, x.vocab_size)
    if isinstance(x, MultiVectors):
        return MultiVectors(x.values.abs(), x.offsets)
    return x.abs()


def naive_maxsim(qs, ds, reduce: str = "sum", pairs=None) -> torch.Tensor:
    """MaxSim from its definition, one (query, document) at a time in float64: an expected value independent of
    ``reference.maxsim_ref`` and every backend. ``qs``/``ds``: lists of [L, D] tensors (or MultiVectors);
    ``pairs``: None for all-pairs [B, N], else a list of (query, document) index pairs -> [P]."""
    qs = [t.double() for t in (qs.to_list() if hasattr(qs, "to_list") else qs)]
    ds = [t.double() for t in (ds.to_list() if hasattr(ds, "to_list") else ds)]

    def one(q: torch.Tensor, d: torch.Tensor) -> float:
        if q.shape[0] == 0:
            return 0.0
        if d.shape[0] == 0:
            return float("-inf")
        s = float((q.cpu() @ d.cpu().T).max(1).values.sum())
        return s / q.shape[0] if reduce == "mean" else s

    if pairs is None:
        return torch.tensor([[one(q, d) for d in ds] for q in qs], dtype=torch.float64).reshape(len(qs), len(ds))
    return torch.tensor([one(qs[b], ds[n]) for b, n in pairs], dtype=torch.float64)
