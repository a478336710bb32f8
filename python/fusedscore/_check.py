"""Input validation shared by the containers and the public ops.

Every check raises with the message template ``"<where>: <arg> must be <expected>, got <actual>"``.
Wrong shape or value -> ValueError; wrong dtype or object type -> TypeError. Never ``assert``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_NP_TO_TORCH = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.float64): torch.float64,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
}


def dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def as_tensor(x: Any, where: str, arg: str) -> torch.Tensor:
    """A torch tensor view of ``x``: numpy arrays share memory, except a non-C-contiguous array, which is made
    contiguous first (the one copy done here; the kernels read flat rows)."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype not in _NP_TO_TORCH:
            raise TypeError(f"{where}: {arg} must have dtype float32, float16, int32 or int64, got numpy {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x) if not x.flags.c_contiguous else x)
    raise TypeError(f"{where}: {arg} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")


def check_float(t: torch.Tensor, where: str, arg: str, allow_fp64: bool = False) -> None:
    ok = FLOAT_DTYPES + ((torch.float64,) if allow_fp64 else ())
    if t.dtype not in ok:
        names = ", ".join(dtype_name(d) for d in ok)
        raise TypeError(f"{where}: {arg} must have dtype in ({names}), got {dtype_name(t.dtype)}")


def check_ndim(t: torch.Tensor, ndim: int, where: str, arg: str, shape_doc: str) -> None:
    if t.dim() != ndim:
        raise ValueError(f"{where}: {arg} must have shape {shape_doc}, got {tuple(t.shape)}")


def check_offsets(offsets: torch.Tensor, total: int, where: str, arg: str = "offsets") -> torch.Tensor:
    """Offsets must be a 1-D integer tensor, start at 0, be non-decreasing and end at ``total``."""
    if offsets.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{where}: {arg} must have dtype int64 (or int32), got {dtype_name(offsets.dtype)}")
    check_ndim(offsets, 1, where, arg, "[N+1]")
    if offsets.numel() == 0:
        raise ValueError(f"{where}: {arg} must have at least one element (offsets[0] == 0), got shape (0,)")
    offsets = offsets.to(torch.int64).contiguous()  # the kernels take flat offsets, never a strided view
    o = offsets.cpu()  # the checks read values on the host (a no-op for CPU tensors)
    if int(o[0]) != 0:
        raise ValueError(f"{where}: {arg}[0] must be 0, got {int(o[0])}")
    if o.numel() > 1:
        diffs = o[1:] - o[:-1]
        if bool((diffs < 0).any()):
            i = int(torch.nonzero(diffs < 0)[0, 0])
            raise ValueError(
                f"{where}: {arg} must be non-decreasing, got {arg}[{i}]={int(o[i])} > {arg}[{i + 1}]={int(o[i + 1])}"
            )
    if int(o[-1]) != total:
        raise ValueError(f"{where}: {arg}[-1] must equal the number of rows in values ({total}), got {int(o[-1])}")
    return offsets


def check_finite(values: torch.Tensor, where: str, arg: str) -> None:
    """NaN/Inf policy: rejected when a container is built (once), so kernels never see them."""
    # fast path: one float32 sum. NaN/Inf anywhere make it non-finite, so a finite sum proves every value
    # finite; a non-finite sum (which large finite values can also cause) is confirmed with the exact mask
    if values.numel() and not math.isfinite(float(torch.sum(values, dtype=torch.float32))) \
            and not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(
            f"{where}: {arg} must be finite (no NaN or Inf), got {bad} non-finite value(s); "
            "pass check_finite=False to skip this check at your own risk"
        )


def check_reduce(reduce: str, where: str) -> str:
    if reduce not in ("sum", "mean"):
        raise ValueError(f"{where}: reduce must be 'sum' or 'mean', got {reduce!r}")
    return reduce


def check_same_device(where: str, **tensors: torch.Tensor) -> torch.device:
    devs = {name: t.device for name, t in tensors.items()}
    first = next(iter(devs.values()))
    if any(d != first for d in devs.values()):
        got = ", ".join(f"{n} on {d}" for n, d in devs.items())
        raise ValueError(f"{where}: inputs must be on the same device, got {got}")
    return first


def check_k(k: int, where: str, arg: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{where}: {arg} must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"{where}: {arg} must be > 0, got {k}")
    return int(k)
