"""Backend dispatch: the one place that looks at devices and picks an implementation.

Every backend implements the same signature per op (containers in, float32 tensor out):

- ``maxsim(q: MultiVectors, d: MultiVectors | MultiVectorList, query_index: Tensor | None, reduce: str,
  doc_index: Tensor | None = None) -> Tensor`` (``doc_index`` [N] int64, paired only: pair n reads
  document ``doc_index[n]`` in place; a MultiVectorList is read item by item by native, packed for the others)
- ``sparse_dot(q: SparseVectors, d: SparseVectors, query_index: Tensor | None) -> Tensor``
- ``dense_dot(q: Tensor [B, D], d: Tensor [N, D], query_index: Tensor | None) -> Tensor``

``query_index`` None means all-pairs ``[B, N]``; otherwise ``[N]`` int64 and the result is ``[N]``.

Priority: CUDA tensors -> "triton"; CPU tensors -> "native" (the C++ extension) -> "reference".
``backend=`` forces one (an unknown or unavailable choice raises ``RuntimeError``); ``FUSEDSCORE_BACKEND`` forces
it for the ops that have it and leaves the others to auto-selection. Auto-selection skips an absent backend and
never retries after one raised.
Triton kernels also run on CPU tensors under ``TRITON_INTERPRET=1`` when asked for explicitly (tests).
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from . import reference
from ._blocks import topk_over_blocks
from .containers import MultiVectorList, MultiVectors, SparseVectors


def _try_import(name: str) -> tuple[Any, BaseException | None]:
    try:
        return importlib.import_module(name), None
    except Exception as e:  # kept and reported by backend_info(); never swallowed silently
        return None, e


_NATIVE, _NATIVE_ERR = _try_import("fusedscore._native")
_TRITON_MOD: Any = None
_TRITON_ERR: BaseException | None = None
_TRITON_TRIED = False
_WARNED_FALLBACK = False


def _triton_module() -> Any:
    """Import fusedscore.kernels lazily: importing triton costs ~1 s and is not needed on CPU."""
    global _TRITON_MOD, _TRITON_ERR, _TRITON_TRIED
    if not _TRITON_TRIED:
        _TRITON_TRIED = True
        _TRITON_MOD, _TRITON_ERR = _try_import("fusedscore.kernels")
    return _TRITON_MOD


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# ----------------------------------------------------------------------------- native adapters
_NP_CODE = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def _np(t: torch.Tensor) -> np.ndarray:
    """Zero-copy numpy view of a CPU tensor; bf16 travels as its raw uint16 bits."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _np_index(query_index: torch.Tensor | None) -> np.ndarray | None:
    return None if query_index is None else query_index.numpy()


def _out(q_len: int, n: int, query_index: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    shape = (n,) if query_index is not None else (q_len, n)
    return torch.empty(shape, dtype=torch.float32, device=device)


def _native_maxsim(q: MultiVectors, d: MultiVectors | MultiVectorList, query_index: torch.Tensor | None,
                   reduce: str, doc_index: torch.Tensor | None = None) -> torch.Tensor:
    out = _out(len(q), len(d) if doc_index is None else doc_index.numel(), query_index, q.device)
    if not out.numel():
        if isinstance(d, MultiVectorList):
            d.check_finite()  # no query to score with, so the kernel reads nothing: the list is scanned here
        return out
    if isinstance(d, MultiVectorList):
        # each document read where it lies; `d.items` keeps the buffers alive for the call. The items were never
        # scanned for NaN/Inf: the kernel makes such a document's score NaN (see maxsim.h), found here instead
        rows = np.fromiter((t.data_ptr() for t in d.items), dtype=np.int64, count=len(d))
        _NATIVE.maxsim_rows(_np(q.values), q.offsets.numpy(), rows, d.offsets.numpy(), d.dim, _np_index(query_index),
                            _NP_CODE[q.dtype], reduce == "mean", out.numpy(), doc_index=_np_index(doc_index))
        nan = torch.isnan(out)
        if bool(nan.any()):
            pos = int(torch.nonzero(nan.reshape(out.shape[0], -1).any(0) if query_index is None else nan)[0, 0])
            bad = pos if doc_index is None else int(doc_index[pos])
            raise ValueError(f"{d.where}: {d.name(bad)} must be finite (no NaN or Inf), got non-finite values (or "
                             "dot products that overflow float32)")
        _scan_unread(q, d, query_index, doc_index)
        return out
    _NATIVE.maxsim(_np(q.values), q.offsets.numpy(), _np(d.values), d.offsets.numpy(), _np_index(query_index),
                   _NP_CODE[q.dtype], reduce == "mean", out.numpy(), doc_index=_np_index(doc_index))
    return out


def _scan_unread(q: MultiVectors, d: MultiVectorList, query_index: torch.Tensor | None,
                 doc_index: torch.Tensor | None) -> None:
    """The kernel finds a non-finite document through a query's real lanes; an empty query has none (its score
    is 0 without reading the document), so documents met only by empty queries are scanned here."""
    empty = q.lengths == 0
    if not bool(empty.any()):
        return
    if query_index is None:  # all-pairs: one non-empty query reads every document
        if bool(empty.all()):
            d.check_finite()
        return
    pairs = torch.nonzero(empty[query_index]).reshape(-1)
    docs = pairs if doc_index is None else doc_index[pairs]
    d.check_finite(torch.unique(docs).tolist())


def reads_in_place(items: Sequence[Any], device: torch.device | None = None) -> bool:
    """Whether a list of document items can be scored where each lies, unpacked: the native backend reads host
    memory, so every item must be a numpy array or a CPU tensor (and the scoring ``device``, when given, the CPU).
    Items elsewhere are packed for the backend of their device."""
    if device is not None and device.type != "cpu":
        return False
    return all(isinstance(a, np.ndarray) or (isinstance(a, torch.Tensor) and a.device.type == "cpu") for a in items)


def maxsim_docs(docs: Any, where: str, arg: str = "docs") -> MultiVectors | MultiVectorList:
    """The documents of a MaxSim call: a non-empty list of host items stays a MultiVectorList (native scores
    each item in place; the other backends pack it), a MultiVectorList is kept, anything else (a list of GPU
    tensors included) is packed into a MultiVectors."""
    if isinstance(docs, MultiVectorList):
        return docs
    if isinstance(docs, (list, tuple)) and docs and reads_in_place(docs):
        return MultiVectorList.from_items(docs, where, arg)
    return MultiVectors.coerce(docs, where, arg)


def _packed(d: MultiVectors | MultiVectorList) -> MultiVectors:
    """Backends other than native read one packed values tensor."""
    return d.pack() if isinstance(d, MultiVectorList) else d


def _native_sparse_dot(q: SparseVectors, d: SparseVectors, query_index: torch.Tensor | None) -> torch.Tensor:
    out = _out(len(q), len(d), query_index, q.device)
    if out.numel():
        _NATIVE.sparse_dot(q.indices.numpy(), _np(q.values), q.offsets.numpy(), d.indices.numpy(), _np(d.values),
                           d.offsets.numpy(), _np_index(query_index), q.vocab_size, _NP_CODE[q.dtype], out.numpy())
    return out


def _torch_dense_dot(q: torch.Tensor, d: torch.Tensor, query_index: torch.Tensor | None) -> torch.Tensor:
    """Dense scores through torch's matmul in fp32 (BLAS on CPU): fp16/bf16 are widened first (CPU half
    matmuls are slow and round their output), so products and sums are fp32. CUDA tensors take this path only
    when fusedscore.kernels (whose cuBLAS product runs in the input dtype with an fp32 output) is unavailable."""
    if query_index is not None:
        return torch.einsum("nd,nd->n", q[query_index].float(), d.float())
    return q.float() @ d.float().T


def _triton_dense_dot(q: torch.Tensor, d: torch.Tensor, query_index: torch.Tensor | None) -> torch.Tensor:
    return _triton_module().dense_dot(q, d, query_index)


def _triton_maxsim(q: MultiVectors, d: MultiVectors, query_index: torch.Tensor | None, reduce: str,
                   doc_index: torch.Tensor | None = None) -> torch.Tensor:
    return _triton_module().maxsim(q, _packed(d), query_index, reduce, doc_index=doc_index)


def _triton_sparse_dot(q: SparseVectors, d: SparseVectors, query_index: torch.Tensor | None) -> torch.Tensor:
    return _triton_module().sparse_dot(q, d, query_index)


def _blocked_topk(score: Callable[..., torch.Tensor], q: MultiVectors, d: MultiVectors, k: int, reduce: str,
                  max_memory: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All-pairs top-k over zero-copy slices of the corpus (see _blocks.topk_over_blocks)."""
    return topk_over_blocks(lambda s, e: score(q, d.slice(s, e), None, reduce), len(d), len(q), k, max_memory,
                            d.device, where="maxsim_topk")


def _native_maxsim_topk(q, d, k, reduce, max_memory):
    return _blocked_topk(_native_maxsim, q, d, k, reduce, max_memory)


def _ref_maxsim_topk(q, d, k, reduce, max_memory):
    # the reference's own working set (similarity chunks, counted by maxsim_ref) shares the budget with the block of
    # scores it fills: half for the block, a quarter for the chunks, the rest for what allocators keep around
    return _blocked_topk(lambda *a: _ref_maxsim(*a, max_memory=max(1, max_memory // 4)), q, d, k, reduce,
                         max(1, max_memory // 2))


def _triton_maxsim_topk(q, d, k, reduce, max_memory):
    return _triton_module().maxsim_topk(q, d, k, reduce, max_memory=max_memory)


# The reference as a backend: fp16/bf16 queries are widened to fp32 first (a copy of the queries only; documents are
# widened chunk by chunk inside maxsim_ref, which computes in the queries' dtype), so the fallback accumulates in fp32
# like every other backend; upcast=False then computes in that fp32 (upcast=True would be float64).
def _fp32(x: Any) -> Any:
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float() if isinstance(x, torch.Tensor) else x.to(dtype=torch.float32)
    return x


def _ref_maxsim(q, d, query_index, reduce, doc_index=None, max_memory=None):
    return reference.maxsim_ref(_fp32(q), _packed(d), query_index=query_index, reduce=reduce, upcast=False,
                                doc_index=doc_index, max_memory=max_memory)


def _ref_sparse_dot(q, d, query_index):
    return reference.sparse_dot_ref(_fp32(q), _fp32(d), query_index=query_index, upcast=False)


def _ref_dense_dot(q, d, query_index):
    return reference.dense_dot_ref(_fp32(q), _fp32(d), query_index=query_index, upcast=False)


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Impl:
    name: str
    fn: Callable[..., torch.Tensor]


def _available(name: str, device: torch.device, explicit: bool) -> tuple[bool, str]:
    """(usable, reason-if-not) for backend ``name`` on ``device``."""
    if name == "reference":
        return True, ""
    if name == "native":
        if device.type != "cpu":
            return False, f"native runs on CPU tensors, got {device}"
        if _NATIVE is None:
            return False, f"the C++ extension fusedscore._native did not load ({_NATIVE_ERR!r}); reinstall with a C++ compiler: pip install --force-reinstall --no-build-isolation ."
        return True, ""
    if name == "triton":
        if device.type != "cuda" and not (explicit and _interpret()):
            return False, f"triton runs on CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got {device}"
        if _triton_module() is None:
            return False, f"fusedscore.kernels did not load ({_TRITON_ERR!r}); pip install triton"
        return True, ""
    if name == "torch":
        return True, ""
    return False, "unknown"


_TABLE: dict[str, tuple[Impl, ...]] = {
    "maxsim": (Impl("triton", _triton_maxsim), Impl("native", _native_maxsim), Impl("reference", _ref_maxsim)),
    "maxsim_topk": (Impl("triton", _triton_maxsim_topk), Impl("native", _native_maxsim_topk),
                    Impl("reference", _ref_maxsim_topk)),
    "sparse_dot": (Impl("triton", _triton_sparse_dot), Impl("native", _native_sparse_dot),
                   Impl("reference", _ref_sparse_dot)),
    "dense_dot": (Impl("triton", _triton_dense_dot), Impl("torch", _torch_dense_dot),
                  Impl("reference", _ref_dense_dot)),
}


_ALL_BACKENDS = tuple(dict.fromkeys(i.name for impls in _TABLE.values() for i in impls))


def resolve(op: str, device: torch.device, backend: str | None = None) -> Impl:
    """Pick the implementation of ``op`` for inputs on ``device``.

    ``backend`` (an argument) is strict: an op without that backend, or a backend unavailable here, raises.
    ``FUSEDSCORE_BACKEND`` (the process-wide override) steers only the ops that have the backend it names:
    ``native`` forces maxsim and sparse_dot while dense_dot (no native backend) is auto-selected as usual. A value
    that is no backend of any op raises, as a typo should.
    """
    global _WARNED_FALLBACK
    impls = _TABLE[op]
    source = ""
    if backend is None:
        env = os.environ.get("FUSEDSCORE_BACKEND") or None
        if env is not None and env not in _ALL_BACKENDS:
            raise RuntimeError(f"{op}: FUSEDSCORE_BACKEND must be one of ({', '.join(_ALL_BACKENDS)}), got {env!r}")
        if env is not None and any(i.name == env for i in impls):
            backend, source = env, " (from FUSEDSCORE_BACKEND)"
    if backend is not None:
        for impl in impls:
            if impl.name == backend:
                ok, why = _available(backend, device, explicit=True)
                if not ok:
                    raise RuntimeError(f"{op}: backend {backend!r}{source} is unavailable: {why}")
                return impl
        names = ", ".join(i.name for i in impls)
        raise RuntimeError(f"{op}: backend must be one of ({names}), got {backend!r}")
    for impl in impls:
        ok, _ = _available(impl.name, device, explicit=False)
        if ok:
            # the first backend that had to be skipped says why, once per process (a CPU build without the
            # extension, or CUDA without triton); CPU dense_dot is "torch" by design, not a fallback
            slow = impl.name == "reference" or (device.type == "cuda" and impl.name != "triton")
            if slow and not _WARNED_FALLBACK:
                _WARNED_FALLBACK = True
                fast = "triton" if device.type == "cuda" else "native"
                warnings.warn(f"fusedscore: {op} falls back to the slower {impl.name!r} backend: "
                              f"{_available(fast, device, False)[1]}", RuntimeWarning, stacklevel=3)
            return impl
    raise RuntimeError(f"{op}: no backend for device {device}")  # unreachable: reference always registers


def backend_info() -> dict[str, Any]:
    """What this installation can run, and why not where it cannot."""
    info: dict[str, Any] = {"native": _NATIVE is not None, "reason": None if _NATIVE else repr(_NATIVE_ERR)}
    if _NATIVE is not None:
        info.update(_NATIVE.info())
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["triton"] = _triton_module() is not None
        info["triton_reason"] = None if info["triton"] else repr(_TRITON_ERR)
        info["gpu"] = torch.cuda.get_device_name()
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
    return info


def native_module() -> Any:
    """The loaded extension (tests use it to switch SIMD levels), or None."""
    return _NATIVE


def warmup(**kwargs: Any) -> int:
    """Compile the common GPU kernel buckets ahead of time (``fusedscore.kernels.warmup``; keyword
    arguments pass through), so the first call on CUDA pays no compile.

    Returns:
        The number of warm-up launches; 0 without CUDA, where it is a no-op (nothing to compile, and
        triton is not even imported).
    """
    if not torch.cuda.is_available():
        return 0
    kernels = _triton_module()
    if kernels is None:
        raise RuntimeError(f"warmup: fusedscore.kernels did not load ({_TRITON_ERR!r}); pip install triton")
    return kernels.warmup(**kwargs)


# ----------------------------------------------------------------------------- device queries
def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit, or None without one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            return max(0, int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        return None


def available_memory(device: torch.device) -> int | None:
    """Bytes that a new allocation on ``device`` can take now, or None when it cannot be told (then only the
    allocator's own failure is caught). Linux reports overcommitted memory as allocatable, and the kernel
    kills the process when the pages are touched, so CPU outputs are checked against MemAvailable first."""
    if device.type == "cuda":  # free on the device, plus what torch's caching allocator holds unused
        free = torch.cuda.mem_get_info(device)[0]
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        avail = None
    cg = _cgroup_free()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def default_max_memory(device: torch.device | str | None = None) -> int:
    """The default memory budget (``fusedscore._budget``) for work on ``device``: a quarter of the free memory
    of a GPU; on CPU min(2 GiB, RAM / 8). Never below 64 MiB."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return max(64 << 20, torch.cuda.mem_get_info(dev)[0] // 4)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no probe, use the fixed cap
        ram = 16 << 30
    return int(min(2 << 30, max(64 << 20, ram // 8)))


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (GPU kernels run asynchronously; CPU ops have returned)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
