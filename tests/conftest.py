"""Shared test helpers: devices, dtypes, readable ids, seeded random inputs."""

from __future__ import annotations

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


def describe_dtype(dt: torch.dtype) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dt, str(dt))


def pytest_make_parametrize_id(config, val, argname):
    if isinstance(val, torch.dtype):
        return describe_dtype(val)
    return None


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(1234)
