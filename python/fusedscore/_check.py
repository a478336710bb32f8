"""Input validation shared by the containers and the public ops.

Every check raises with the message template ``"<where>: <arg> must be <expected>, got <actual>"``.
Wrong shape or value -> ValueError; wrong dtype or object type -> TypeError. Never ``assert``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

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


_SCAN_ELEMENTS = 1 << 20  # 16-bit values widened per block: a 4 MiB float32 buffer, whatever the input's size


def count_non_finite(values: torch.Tensor) -> int:
    """Number of NaN/Inf entries, with bounded extra memory: float32 is summed in place, fp16/bf16 are widened
    block by block into one reused buffer (``torch.sum(x, dtype=float32)`` widens the whole input at once)."""
    if not values.numel():
        return 0
    flat = values.reshape(-1) if values.is_contiguous() else values.contiguous().reshape(-1)
    # fast path: a float32 sum. NaN/Inf make it non-finite, so a finite sum proves every value finite; a
    # non-finite sum (which large finite values can also cause) is confirmed with the exact mask
    if flat.dtype == torch.float32 or flat.dtype == torch.float64:
        if math.isfinite(float(flat.sum())):
            return 0
        return sum(int(blk.numel() - torch.isfinite(blk).sum()) for blk in flat.split(_SCAN_ELEMENTS))
    buf = torch.empty(min(flat.numel(), _SCAN_ELEMENTS), dtype=torch.float32, device=flat.device)
    bad = 0
    for blk in flat.split(_SCAN_ELEMENTS):
        wide = buf[: blk.numel()]
        wide.copy_(blk)
        if not math.isfinite(float(wide.sum())):
            bad += int(blk.numel() - torch.isfinite(wide).sum())
    return bad


def check_finite(values: torch.Tensor, where: str, arg: str, hint: bool = True) -> None:
    """NaN/Inf policy: rejected when a container is built (once), so kernels never see them. ``hint`` adds how
    to opt out (constructors take check_finite=False; ops that have no such argument pass hint=False)."""
    bad = count_non_finite(values)
    if bad:
        raise ValueError(
            f"{where}: {arg} must be finite (no NaN or Inf), got {bad} non-finite value(s)"
            + ("; pass check_finite=False to skip this check at your own risk" if hint else "")
        )


def check_cast(src: torch.Tensor, out: torch.Tensor, where: str, arg: str) -> None:
    """A narrowing cast (float32 -> float16, or -> bfloat16 past 3.39e38) turns values past the target's range
    into inf: reject that instead of handing inf (then NaN scores) to the kernels. Nothing to check when the
    target's range is at least the source's."""
    if out.dtype == src.dtype or not out.dtype.is_floating_point or not src.dtype.is_floating_point \
            or torch.finfo(out.dtype).max >= torch.finfo(src.dtype).max:
        return
    bad = count_non_finite(out)
    if bad:  # values that were non-finite before the cast (check_finite=False) are not the cast's doing
        bad -= count_non_finite(src)
    if bad > 0:
        big = torch.finfo(out.dtype).max
        raise ValueError(f"{where}: {arg} must fit in {dtype_name(out.dtype)} (|x| <= {big:.0f}), got {bad} value(s) "
                         f"that overflow to inf in the cast; scale the values down or keep {dtype_name(src.dtype)}")


def check_no_grad(t: torch.Tensor, where: str, arg: str) -> None:
    """fusedscore has no autograd: a tensor that requires grad would give scores that silently do not
    backpropagate (and numpy views of it are refused by torch), so it is rejected by name."""
    if t.requires_grad:
        raise ValueError(f"{where}: {arg} must not require grad (fusedscore has no autograd: scores would not "
                         f"backpropagate); pass {arg}.detach(), got a tensor with requires_grad=True")


def check_strided(t: torch.Tensor, where: str, arg: str) -> None:
    """Sparse and nested tensors have no flat rows for the kernels to read."""
    if t.is_nested:
        raise TypeError(f"{where}: {arg} must be a dense (strided) tensor, got a nested tensor; pass "
                        "list(x.unbind()) to score its items")
    if t.layout != torch.strided:
        raise TypeError(f"{where}: {arg} must be a dense (strided) tensor, got layout {t.layout}; call .to_dense()")


def check_max_memory(max_memory: Any, where: str) -> int | None:
    """A byte budget: None (the op's default) or a positive int. A string ("1GB") or a float is refused, not
    parsed, and 0 is not "unlimited" or "default": it is an error."""
    if max_memory is None:
        return None
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, np.integer)):
        raise TypeError(f"{where}: max_memory must be a positive int (bytes), got {type(max_memory).__name__} "
                        f"{max_memory!r}")
    if max_memory <= 0:
        raise ValueError(f"{where}: max_memory must be > 0 (bytes), got {max_memory}")
    return int(max_memory)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB" if n >= 2**18 else f"{int(n)} bytes"


def scores_too_large(where: str, shape: tuple[int, ...], avail: int | None, hint: str) -> MemoryError:
    need = 4 * math.prod(shape)
    have = f"more than the {_gib(avail)} available" if avail is not None else "more than the allocator could give"
    dims = "[B, N]" if len(shape) == 2 else "[N]"
    return MemoryError(f"{where}: the scores {dims}={shape} need {_gib(need)} of float32, {have}; {hint}")


def check_scores_fit(where: str, shape: tuple[int, ...], available: Callable[[], int | None], hint: str) -> None:
    """Refuse an output that cannot fit before allocating it (MemoryError naming the shape, the bytes and
    ``hint``, the way around it). ``available()``: bytes free where the output goes, or None when unknown
    (``_dispatch.available_memory``, asked only for outputs large enough to matter)."""
    need = 4 * math.prod(shape)
    if need < 1 << 26:  # below 64 MiB: not worth a /proc read per call
        return
    avail = available()
    if avail is not None and need > avail:
        raise scores_too_large(where, shape, avail, hint)


def is_alloc_failure(e: BaseException) -> bool:
    """torch's allocator failures: CUDA raises OutOfMemoryError; the CPU allocator a RuntimeError."""
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "can't allocate memory" in str(e))


def _first_nan(out: torch.Tensor) -> int | None:
    """Flat index of the first NaN of ``out``, or None. One sum per block proves a block NaN-free (NaN
    propagates; +inf and -inf together also give NaN, which the exact mask then clears)."""
    flat = out.reshape(-1)
    for s in range(0, flat.numel(), _SCAN_ELEMENTS):
        blk = flat[s: s + _SCAN_ELEMENTS]
        if math.isnan(float(blk.sum())):
            nan = torch.nonzero(torch.isnan(blk))
            if nan.numel():
                return s + int(nan[0, 0])
    return None


def check_no_nan(out: torch.Tensor, where: str, query_index: torch.Tensor | None = None,
                 doc_index: torch.Tensor | None = None, doc_offset: int = 0) -> torch.Tensor:
    """Scores ``out`` ([B, N] all-pairs, or [N] pairs of ``query_index``/``doc_index``) back, or ValueError at
    the first NaN. Containers hold finite values, so a NaN score is an overflow inside a kernel (float32 dot
    products past 3.4e38 of both signs: +inf - inf) or input built with check_finite=False: it is never ranked.
    ``doc_offset``: the first column's document (a block of a corpus)."""
    i = _first_nan(out)
    if i is None:
        return out
    if out.dim() == 2:
        b, n = divmod(i, out.shape[1])
    else:
        b = int(query_index[i]) if query_index is not None else i
        n = int(doc_index[i]) if doc_index is not None else i
    raise nan_scores(where, b, n + doc_offset)


def nan_scores(where: str, b: int, n: int) -> ValueError:
    return ValueError(f"{where}: scores must not be NaN, got NaN for queries[{b}] x docs[{n}]: their dot products "
                      "overflow float32 (values too large: scale the embeddings down) or an input holds NaN/Inf "
                      "(built with check_finite=False)")


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
