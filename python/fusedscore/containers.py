"""The data model: one layout per representation (see DESIGN.md "Data model").

- ``MultiVectors``: ragged token embeddings, ``values [T, D]`` packed plus ``offsets [N+1]`` int64.
- ``SparseVectors``: CSR term weights, ``indices [nnz]`` int32, ``values [nnz]``, ``offsets [N+1]``
  int64, ``vocab_size``. Ids are sorted and unique within a row.

Inputs are validated once, here, at construction; the kernels trust them afterwards. Construction is
zero-copy where the layout allows (a contiguous values tensor with offsets, a numpy array shares memory);
packing a list or dropping padding is a copy, by necessity.
"""

from __future__ import annotations

import bisect
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from . import _check as C
from ._csr import canonical_csr, lengths_to_offsets, rows_from_dicts

__all__ = ["MultiVectors", "MultiVectorList", "SparseVectors"]


@contextmanager
def _named(where: str, arg: str) -> Iterator[None]:
    """Prefix a constructor's TypeError/ValueError with the op and argument it was building (re-raised, same type)."""
    try:
        yield
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {arg}: {e}") from None


def _gather_positions(offsets: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For items ``idx`` of a ragged layout: (positions of their rows, in order; the new offsets)."""
    lens = offsets[1:][idx] - offsets[:-1][idx]
    off = lengths_to_offsets(lens)
    # row j of the output comes from offsets[idx[item(j)]] + (j - off[item(j)])
    item = torch.repeat_interleave(torch.arange(idx.numel(), device=idx.device), lens)
    return offsets[idx][item] + (torch.arange(int(off[-1]), device=idx.device) - off[item]), off


class _Ragged:
    """What both containers share: ``values`` rows grouped by int64 ``offsets [N+1]``."""

    __slots__ = ()
    values: torch.Tensor
    offsets: torch.Tensor

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device


class MultiVectors(_Ragged):
    """Ragged multi-vector embeddings: text ``i`` owns rows ``values[offsets[i]:offsets[i+1]]``.

    Args:
        values: [T, D] fp32|fp16|bf16, C-contiguous (all tokens of all texts, packed).
        offsets: [N+1] int64 (int32 accepted), offsets[0] == 0, non-decreasing, offsets[-1] == T.
        check_finite: reject NaN/Inf values (the documented policy; the check runs once, here).
    Raises:
        TypeError: values not a float tensor/array, offsets not integer.
        ValueError: bad shapes, offsets out of order, non-finite values.
    """

    __slots__ = ("values", "offsets", "_lengths", "_max_length")

    def __init__(self, values: Any, offsets: Any, *, check_finite: bool = True):
        where = "MultiVectors"
        values = C.as_tensor(values, where, "values")
        offsets = C.as_tensor(offsets, where, "offsets")
        C.check_strided(values, where, "values")
        C.check_no_grad(values, where, "values")
        C.check_float(values, where, "values")
        C.check_ndim(values, 2, where, "values", "[T, D]")
        if not values.is_contiguous():
            raise ValueError(f"{where}: values must be C-contiguous, got strides {tuple(values.stride())}; call .contiguous()")
        offsets = C.check_offsets(offsets, values.shape[0], where)
        C.check_same_device(where, values=values, offsets=offsets)
        if check_finite:
            C.check_finite(values, where, "values")
        self.values = values
        self.offsets = offsets
        self._lengths = None
        self._max_length = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_list(cls, arrays: Sequence[Any], *, dim: int | None = None, dtype: torch.dtype | None = None,
                  check_finite: bool = True) -> "MultiVectors":
        """Pack a list of ``[L_i, D]`` arrays or tensors (what FlagEmbedding and PyLate return).

        Args:
            arrays: N items, each [L_i, D] (L_i may be 0). All share D and dtype.
            dim: D, needed only when ``arrays`` is empty.
            dtype: cast every item to this dtype (explicit; without it, float64 input is an error).
        """
        where = "MultiVectors.from_list"
        return cls._from_items(_check_items(arrays, where, "arrays", dtype), dim, dtype, check_finite, where)

    @classmethod
    def _from_items(cls, items: list[torch.Tensor], dim: int | None, dtype: torch.dtype | None, check_finite: bool,
                    where: str) -> "MultiVectors":
        """Pack items that ``_check_items`` returned."""
        if not items:
            d = 0 if dim is None else int(dim)
            return cls(torch.empty(0, d, dtype=dtype or torch.float32), torch.zeros(1, dtype=torch.int64))
        if dim is not None and items[0].shape[1] != dim:
            raise ValueError(f"{where}: arrays must have D={dim}, got {items[0].shape[1]}")
        lengths = torch.tensor([t.shape[0] for t in items], dtype=torch.int64)
        values = torch.cat(items, 0) if len(items) > 1 else items[0].contiguous()
        return cls(values, lengths_to_offsets(lengths).to(values.device), check_finite=check_finite)

    @classmethod
    def from_padded(cls, padded: Any, *, mask: Any = None, lengths: Any = None,
                    check_finite: bool = True) -> "MultiVectors":
        """From a padded ``[N, L, D]`` batch. Exactly one of ``mask`` or ``lengths`` (or neither: no padding).

        Args:
            padded: [N, L, D] fp32|fp16|bf16.
            mask: [N, L] bool (or 0/1 integer), True = real token. Any positions may be masked (PyLate
                expansion tokens are real tokens: keep them True in the mask).
            lengths: [N] integer, the first lengths[i] rows of item i are real.
        """
        where = "MultiVectors.from_padded"
        padded = C.as_tensor(padded, where, "padded")
        C.check_strided(padded, where, "padded")
        C.check_no_grad(padded, where, "padded")
        C.check_float(padded, where, "padded")
        C.check_ndim(padded, 3, where, "padded", "[N, L, D]")
        n, L, d = padded.shape
        if mask is not None and lengths is not None:
            raise ValueError(f"{where}: pass mask or lengths, not both")
        if mask is None and lengths is None:
            return cls(padded.reshape(n * L, d).contiguous(),
                       torch.arange(0, n * L + 1, max(L, 1), dtype=torch.int64, device=padded.device)[: n + 1]
                       if L > 0 else torch.zeros(n + 1, dtype=torch.int64, device=padded.device),
                       check_finite=check_finite)
        if lengths is not None:
            lengths = C.as_tensor(lengths, where, "lengths")
            if lengths.dtype not in (torch.int32, torch.int64):
                raise TypeError(f"{where}: lengths must be an integer tensor, got {C.dtype_name(lengths.dtype)}")
            if tuple(lengths.shape) != (n,):
                raise ValueError(f"{where}: lengths must have shape [N]=({n},), got {tuple(lengths.shape)}")
            if bool(((lengths < 0) | (lengths > L)).any()):
                raise ValueError(f"{where}: lengths must lie in [0, L={L}], got min {int(lengths.min())} max {int(lengths.max())}")
            mask = torch.arange(L, device=padded.device)[None, :] < lengths.to(padded.device)[:, None]
        else:
            mask = C.as_tensor(mask, where, "mask")
            if tuple(mask.shape) != (n, L):
                raise ValueError(f"{where}: mask must have shape [N, L]=({n}, {L}), got {tuple(mask.shape)}")
            if mask.dtype != torch.bool:
                if mask.dtype.is_floating_point or bool(((mask != 0) & (mask != 1)).any()):
                    raise TypeError(f"{where}: mask must be bool (or 0/1 integers), got {C.dtype_name(mask.dtype)}")
                mask = mask.bool()
        mask = mask.to(padded.device)
        values = padded[mask]  # row-major order keeps each item's tokens together, in order
        return cls(values.contiguous(), lengths_to_offsets(mask.sum(1)), check_finite=check_finite)

    @classmethod
    def coerce(cls, x: Any, where: str, arg: str) -> "MultiVectors":
        """Accept a MultiVectors, a list of [L_i, D] items, or an unpadded [N, L, D] batch."""
        if isinstance(x, cls):
            return x
        if isinstance(x, torch.Tensor) and x.is_nested:
            raise TypeError(f"{where}: {arg} must be a list of [L_i, D] tensors, got a nested tensor; pass "
                            "list(x.unbind())")
        if isinstance(x, (torch.Tensor, np.ndarray)):
            if x.ndim != 3:
                raise ValueError(f"{where}: {arg} must be a MultiVectors, a list of [L_i, D] arrays or a [N, L, D] "
                                 f"tensor, got an array of shape {tuple(x.shape)}")
            with _named(where, arg):
                return cls.from_padded(x)
        if isinstance(x, (list, tuple)):
            items = _check_items(x, where, arg)  # item errors name the item: "maxsim: queries[1] ..."
            with _named(where, arg):
                return cls._from_items(items, None, None, True, "MultiVectors.from_list")
        raise TypeError(f"{where}: {arg} must be a MultiVectors, a list of [L_i, D] arrays or a [N, L, D] tensor, "
                        f"got {type(x).__name__}")

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        return int(self.values.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.values.shape[0])

    @property
    def lengths(self) -> torch.Tensor:
        """[N] int64 token count of each item."""
        if self._lengths is None:
            self._lengths = self.offsets[1:] - self.offsets[:-1]
        return self._lengths

    @property
    def max_length(self) -> int:
        """Longest item (cached: on a GPU this is a device sync, paid once per container)."""
        if self._max_length is None:
            self._max_length = int(self.lengths.max()) if len(self) else 0
        return self._max_length

    def __getitem__(self, i: int) -> torch.Tensor:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"MultiVectors: index {i} out of range for {n} items")
        i %= n
        return self.values[int(self.offsets[i]): int(self.offsets[i + 1])]

    def __repr__(self) -> str:
        return f"MultiVectors(n={len(self)}, tokens={self.num_tokens}, dim={self.dim}, dtype={C.dtype_name(self.dtype)}, device={self.device})"

    # ------------------------------------------------------------------ conversions
    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "MultiVectors":
        """Move or cast (explicitly). Returns self when nothing changes.

        Raises:
            ValueError: a narrowing cast (float32 -> float16) that overflows some value to inf.
        """
        v = self.values.to(device=device, dtype=dtype)
        C.check_cast(self.values, v, "MultiVectors.to", "values")
        o = self.offsets.to(device=device)
        if v is self.values and o is self.offsets:
            return self
        return MultiVectors._trusted(v, o)

    def select(self, index: Any) -> "MultiVectors":
        """Gather items by index (a copy of their tokens), in the given order."""
        idx = torch.as_tensor(index, dtype=torch.int64, device=self.offsets.device).reshape(-1)
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"MultiVectors.select: index out of range for {n} items")
        idx = idx % max(n, 1)
        rows, off = _gather_positions(self.offsets, idx)
        return MultiVectors._trusted(self.values[rows], off)

    def slice(self, start: int, stop: int) -> "MultiVectors":
        """Items start..stop-1 as a zero-copy view of their tokens (offsets are rebased, a small copy)."""
        n = len(self)
        start, stop = max(0, min(start, n)), max(0, min(stop, n))
        stop = max(start, stop)
        o = self.offsets[start: stop + 1]
        t0, t1 = int(o[0]), int(o[-1])
        return MultiVectors._trusted(self.values[t0:t1], o - t0)

    @classmethod
    def _trusted(cls, values: torch.Tensor, offsets: torch.Tensor) -> "MultiVectors":
        """Build from parts derived from an already-validated container (no re-validation)."""
        out = cls.__new__(cls)
        out.values, out.offsets, out._lengths, out._max_length = values, offsets, None, None
        return out

    def to_list(self) -> list[torch.Tensor]:
        return [self[i] for i in range(len(self))]

    def to_padded(self, pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (padded [N, Lmax, D], mask [N, Lmax] bool)."""
        n, L = len(self), self.max_length
        mask = torch.arange(L, device=self.device)[None, :] < self.lengths[:, None]
        padded = torch.full((n, L, self.dim), pad_value, dtype=self.dtype, device=self.device)
        padded[mask] = self.values
        return padded, mask


def _check_items(arrays: Sequence[Any], where: str, arg: str, dtype: torch.dtype | None = None
                 ) -> list[torch.Tensor]:
    """A list of ``[L_i, D]`` arrays/tensors -> tensors (numpy shares memory) of one D, dtype and device."""
    if isinstance(arrays, (torch.Tensor, np.ndarray)) or not isinstance(arrays, Sequence):
        raise TypeError(f"{where}: {arg} must be a list of [L_i, D] arrays, got {type(arrays).__name__}")
    items: list[torch.Tensor] = []
    for i, a in enumerate(arrays):
        t = C.as_tensor(a, where, f"{arg}[{i}]")
        C.check_strided(t, where, f"{arg}[{i}]")
        C.check_no_grad(t, where, f"{arg}[{i}]")
        if dtype is not None:
            t = t.to(dtype)
        C.check_float(t, where, f"{arg}[{i}]")
        if t.dim() != 2:
            raise ValueError(f"{where}: {arg}[{i}] must have shape [L_i, D], got {tuple(t.shape)}")
        if items and (t.shape[1] != items[0].shape[1]):
            raise ValueError(f"{where}: {arg}[{i}] must have shape [L_i, {items[0].shape[1]}] to match {arg}[0], "
                             f"got {tuple(t.shape)}")
        if items and t.dtype != items[0].dtype:
            raise TypeError(f"{where}: {arg}[{i}] must have dtype {C.dtype_name(items[0].dtype)} like {arg}[0], "
                            f"got {C.dtype_name(t.dtype)}")
        if items and t.device != items[0].device:
            raise ValueError(f"{where}: {arg}[{i}] must be on {items[0].device} like {arg}[0], got {t.device}")
        items.append(t)
    return items


class MultiVectorList:
    """Multi-vector items as they came: a list of ``[L_i, D]`` tensors or arrays, left unpacked.

    ``fusedscore.maxsim`` takes a list of host documents this way (``_dispatch.maxsim_docs`` decides which
    lists stay unpacked): the native backend reads each item where it lies (no packed copy; NaN/Inf are looked
    for while the item is scored), every other backend packs it first (``pack``: ``MultiVectors.from_list``,
    which checks finiteness). The kernel reads each item by its address with item 0's D and dtype, so every
    item is checked here (a wrong one would be read out of bounds). Items on another device than the CPU are
    never handed to native: ``_dispatch`` runs it on CPU inputs only.

    Args:
        items: N >= 1 [L_i, D] tensors (or numpy arrays, shared) of one D, float dtype and device, each
            C-contiguous.
        where, arg: the op and argument that errors name. groups: optional [B+1] offsets: item i is then named
            ``arg[b][i - groups[b]]`` (one list per query) instead of ``arg[i]``.
    Raises:
        TypeError: an item not a tensor/array, float dtypes that differ or are not fp32/fp16/bf16.
        ValueError: no items, an item not 2-D, Ds or devices that differ, a non-contiguous item.
    """

    __slots__ = ("items", "offsets", "where", "arg", "groups")

    def __init__(self, items: Sequence[Any], where: str, arg: str, groups: Sequence[int] | None = None):
        checked = _check_items(items, where, arg)
        if not checked:
            raise ValueError(f"{where}: {arg} must hold at least one [L_i, D] item, got 0")
        for i, t in enumerate(checked):
            if not t.is_contiguous():
                raise ValueError(f"{where}: {arg}[{i}] must be C-contiguous, got strides {tuple(t.stride())}; call "
                                 ".contiguous()")
        self._set(checked, where, arg, groups)

    @classmethod
    def _trusted(cls, items: list[torch.Tensor], where: str, arg: str, groups: Sequence[int] | None = None
                 ) -> "MultiVectorList":
        """For callers that checked every item as the constructor does (2-D, one D, float dtype and device,
        C-contiguous, no grad): ``from_items`` and ``fusedscore.rerank`` (whose 1,600-item lists it would check
        twice)."""
        out = cls.__new__(cls)
        out._set(items, where, arg, groups)
        return out

    def _set(self, items: list[torch.Tensor], where: str, arg: str, groups: Sequence[int] | None) -> None:
        self.items = items
        self.offsets = lengths_to_offsets(torch.tensor([t.shape[0] for t in items], dtype=torch.int64))
        self.where, self.arg, self.groups = where, arg, groups

    def name(self, i: int) -> str:
        """How error messages name item ``i``."""
        if self.groups is None:
            return f"{self.arg}[{i}]"
        b = bisect.bisect_right(self.groups, i) - 1
        return f"{self.arg}[{b}][{i - self.groups[b]}]"

    @classmethod
    def from_items(cls, x: Sequence[Any], where: str, arg: str) -> "MultiVectorList":
        """A non-empty list of items -> MultiVectorList, checked as the constructor checks them, except that a
        non-contiguous item is made contiguous (a copy of that item only)."""
        items = _check_items(x, where, arg)
        if not items:
            raise ValueError(f"{where}: {arg} must hold at least one [L_i, D] item, got 0")
        return cls._trusted([t if t.is_contiguous() else t.contiguous() for t in items], where, arg)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dtype(self) -> torch.dtype:
        return self.items[0].dtype

    @property
    def device(self) -> torch.device:
        return self.items[0].device

    @property
    def dim(self) -> int:
        return int(self.items[0].shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.offsets[-1])

    def pack(self) -> MultiVectors:
        """The items packed into one MultiVectors (a copy; finiteness checked as every container's, and a
        non-finite item named as ``check_finite`` names it)."""
        with _named(self.where, self.arg):
            mv = MultiVectors.from_list(self.items, check_finite=False)
        if C.count_non_finite(mv.values):
            self.check_finite()
        return mv

    def check_finite(self, ids: Iterable[int] | None = None) -> None:
        """Raise ValueError naming the first item (of ``ids``, default all) that holds NaN/Inf."""
        for i in range(len(self.items)) if ids is None else ids:
            if C.count_non_finite(self.items[i]):
                raise ValueError(f"{self.where}: {self.name(i)} must be finite (no NaN or Inf), got non-finite "
                                 "values")


class SparseVectors(_Ragged):
    """Learned-sparse term weights in CSR: row ``i`` holds ``indices/values[offsets[i]:offsets[i+1]]``.

    Args:
        indices: [nnz] int32 (int64 accepted, converted), each in [0, vocab_size).
        values: [nnz] fp32|fp16|bf16.
        offsets: [N+1] int64, offsets[0] == 0, non-decreasing, offsets[-1] == nnz.
        vocab_size: V, the exclusive upper bound on ids.
        merge: how repeated ids within a row combine: "max" (BGE-M3's rule, default) or "sum".
        check_finite: reject NaN/Inf weights.
    Ids are sorted and made unique per row here (a no-op check when they already are).

    Attributes:
        vocab_inferred: True when ``from_dicts`` inferred vocab_size from the largest id (no vocab_size, vocab
            or tokenizer given). The ops then widen it to the other side's vocab_size (two lists of dicts agree
            on the larger), where two given vocab sizes that differ are an error.
    """

    __slots__ = ("indices", "values", "offsets", "vocab_size", "vocab_inferred")

    def __init__(self, indices: Any, values: Any, offsets: Any, vocab_size: int, *, merge: str = "max",
                 check_finite: bool = True):
        where = "SparseVectors"
        indices = C.as_tensor(indices, where, "indices")
        values = C.as_tensor(values, where, "values")
        offsets = C.as_tensor(offsets, where, "offsets")
        C.check_strided(values, where, "values")
        C.check_no_grad(values, where, "values")
        if indices.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{where}: indices must have dtype int32, got {C.dtype_name(indices.dtype)}")
        C.check_float(values, where, "values")
        C.check_ndim(indices, 1, where, "indices", "[nnz]")
        C.check_ndim(values, 1, where, "values", "[nnz]")
        if indices.numel() != values.numel():
            raise ValueError(f"{where}: values must have shape [nnz]=({indices.numel()},) like indices, got {tuple(values.shape)}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size <= 0:
            raise ValueError(f"{where}: vocab_size must be a positive int, got {vocab_size!r}")
        if vocab_size > 2**31 - 1:
            raise ValueError(f"{where}: vocab_size must be < 2**31 (ids are int32), got {vocab_size}")
        if merge not in ("max", "sum"):
            raise ValueError(f"{where}: merge must be 'max' or 'sum', got {merge!r}")
        offsets = C.check_offsets(offsets, indices.numel(), where)
        C.check_same_device(where, indices=indices, values=values, offsets=offsets)
        if indices.numel():
            lo, hi = int(indices.min()), int(indices.max())
            if lo < 0 or hi >= vocab_size:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{where}: indices must lie in [0, vocab_size={vocab_size}), got {bad}")
        if check_finite:
            C.check_finite(values, where, "values")
        self.vocab_size = int(vocab_size)
        self.vocab_inferred = False
        self.indices, self.values, self.offsets = canonical_csr(indices, values, offsets, self.vocab_size, merge)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dicts(cls, rows: Sequence[Mapping[Any, float]], *, vocab_size: int | None = None, tokenizer: Any = None,
                   vocab: Mapping[str, int] | None = None, merge: str = "max", dtype: torch.dtype = torch.float32
                   ) -> "SparseVectors":
        """From a list of {term: weight} dicts.

        Terms are int ids, ASCII digit strings (FlagEmbedding's ``lexical_weights`` keys are ``str(token_id)``),
        or token strings looked up in ``vocab`` / ``tokenizer.get_vocab()``; ids lie in [0, 2**31 - 1). Weights
        are numbers (Python or numpy scalars, 0-d tensors). ``vocab_size`` defaults to the vocabulary's size, or
        to max id + 1 when no vocabulary is given (then ``vocab_inferred`` is True). Repeated ids of a row merge
        in float32, and the result is rounded to ``dtype`` once.

        Raises:
            TypeError: rows not a list of dicts, a weight that is not a number, dtype not fp32/fp16/bf16.
            ValueError: an unknown token, an id out of range, a weight that overflows ``dtype``.
        """
        where = "SparseVectors.from_dicts"
        if isinstance(rows, Mapping) or not isinstance(rows, Sequence):
            raise TypeError(f"{where}: rows must be a list of dicts, got {type(rows).__name__}")
        if dtype not in C.FLOAT_DTYPES:
            raise TypeError(f"{where}: dtype must be float32, float16 or bfloat16, got {C.dtype_name(dtype)}")
        if tokenizer is not None and vocab is None:
            vocab = tokenizer.get_vocab()
        ids, vals, lens = rows_from_dicts(rows, vocab, where)
        inferred = vocab_size is None and vocab is None
        if vocab_size is None:
            vocab_size = len(vocab) if vocab is not None else (max(ids) + 1 if ids else 1)
        out = cls(torch.tensor(ids, dtype=torch.int64), torch.tensor(vals, dtype=torch.float32),
                  lengths_to_offsets(torch.tensor(lens, dtype=torch.int64)), vocab_size, merge=merge)
        if dtype != torch.float32:  # merged in float32 above: one rounding to dtype, after the sums
            out = out._cast(dtype, where, "rows")
        out.vocab_inferred = inferred
        return out

    @classmethod
    def from_dense(cls, activations: Any, *, threshold: float = 0.0) -> "SparseVectors":
        """From dense ``[N, V]`` activations (SPLADE), keeping entries with ``|value| > threshold``."""
        where = "SparseVectors.from_dense"
        a = C.as_tensor(activations, where, "activations")
        C.check_float(a, where, "activations")
        C.check_ndim(a, 2, where, "activations", "[N, V]")
        keep = a.abs() > threshold
        rows, cols = keep.nonzero(as_tuple=True)  # row-major: sorted by row then id
        return cls(cols.to(torch.int32), a[rows, cols], lengths_to_offsets(keep.sum(1)), int(a.shape[1]))

    @classmethod
    def from_scipy(cls, mat: Any, *, merge: str = "max") -> "SparseVectors":
        """From a scipy.sparse matrix/array ``[N, V]`` (any format). Duplicate entries (COO, CSC) merge by ``merge``."""
        if mat.format == "csr":
            indptr, ids, vals = mat.indptr, mat.indices, np.asarray(mat.data)
        else:
            # tocsr() would sum duplicate entries whatever `merge` says: keep them, as from_torch does for COO
            coo = mat.tocoo()
            order = np.argsort(coo.row, kind="stable")
            indptr = np.zeros(coo.shape[0] + 1, dtype=np.int64)
            np.cumsum(np.bincount(coo.row, minlength=coo.shape[0]), out=indptr[1:])
            ids, vals = coo.col[order], np.asarray(coo.data)[order]
        if vals.dtype not in (np.float32, np.float16):
            raise TypeError(f"SparseVectors.from_scipy: mat must have dtype float32 or float16, got {vals.dtype}; "
                            "convert with mat.astype(np.float32)")
        return cls(torch.from_numpy(np.asarray(ids, dtype=np.int32)), torch.from_numpy(np.ascontiguousarray(vals)),
                   torch.from_numpy(np.asarray(indptr, dtype=np.int64)), int(mat.shape[1]), merge=merge)

    @classmethod
    def from_torch(cls, t: torch.Tensor, *, merge: str = "max") -> "SparseVectors":
        """From a torch sparse COO or CSR tensor ``[N, V]``. Duplicate COO entries merge by ``merge``."""
        where = "SparseVectors.from_torch"
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise TypeError(f"{where}: t must be a 2-D torch sparse tensor, got {type(t).__name__}")
        if t.layout == torch.sparse_csr:
            return cls(t.col_indices(), t.values(), t.crow_indices(), int(t.shape[1]), merge=merge)
        if t.layout == torch.sparse_coo:
            idx = t._indices()  # uncoalesced on purpose: merge decides how duplicates combine
            vals = t._values()
            rows, cols = idx[0], idx[1]
            order = torch.argsort(rows, stable=True)
            counts = torch.bincount(rows, minlength=t.shape[0])
            return cls(cols[order], vals[order], lengths_to_offsets(counts), int(t.shape[1]), merge=merge)
        if t.layout == torch.strided:
            return cls.from_dense(t)
        raise TypeError(f"{where}: t must have layout sparse_coo or sparse_csr, got {t.layout}")

    @classmethod
    def coerce(cls, x: Any, where: str, arg: str) -> "SparseVectors":
        if isinstance(x, cls):
            return x
        with _named(where, arg):
            if isinstance(x, torch.Tensor):
                return cls.from_torch(x)
            if isinstance(x, (list, tuple)):
                return cls.from_dicts(list(x))
            if hasattr(x, "tocsr"):
                return cls.from_scipy(x)
        raise TypeError(f"{where}: {arg} must be a SparseVectors, a list of dicts, a scipy.sparse matrix or a torch "
                        f"sparse tensor, got {type(x).__name__}")

    # ------------------------------------------------------------------ properties
    @property
    def nnz(self) -> int:
        return int(self.indices.numel())

    @property
    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def __repr__(self) -> str:
        return (f"SparseVectors(n={len(self)}, nnz={self.nnz}, vocab_size={self.vocab_size}, "
                f"dtype={C.dtype_name(self.dtype)}, device={self.device})")

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "SparseVectors":
        """Move or cast (explicitly).

        Raises:
            ValueError: a narrowing cast (float32 -> float16) that overflows some weight to inf.
        """
        return self._cast(dtype, "SparseVectors.to", "values", device)

    def _cast(self, dtype: torch.dtype | None, where: str, arg: str, device: Any = None) -> "SparseVectors":
        values = self.values.to(device=device, dtype=dtype)
        C.check_cast(self.values, values, where, arg)
        return self._like(self.indices.to(device=device), values, self.offsets.to(device=device))

    def _like(self, indices: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor,
              vocab_size: int | None = None) -> "SparseVectors":
        """A container from parts derived from this validated one (no re-validation)."""
        out = SparseVectors.__new__(SparseVectors)
        out.indices, out.values, out.offsets = indices, values, offsets
        out.vocab_size = self.vocab_size if vocab_size is None else vocab_size
        out.vocab_inferred = self.vocab_inferred
        return out

    def with_vocab_size(self, vocab_size: int) -> "SparseVectors":
        """The same rows under a larger vocabulary (no copy): ids stay valid, scores do not change."""
        if vocab_size < self.vocab_size:
            raise ValueError(f"SparseVectors.with_vocab_size: vocab_size must be >= {self.vocab_size}, got {vocab_size}")
        return self._like(self.indices, self.values, self.offsets, int(vocab_size))

    def select(self, index: Any) -> "SparseVectors":
        """Gather rows by index, in the given order."""
        idx = torch.as_tensor(index, dtype=torch.int64, device=self.offsets.device).reshape(-1)
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"SparseVectors.select: index out of range for {n} items")
        idx = idx % max(n, 1)  # offsets has N+1 entries: a raw negative id would read the wrong row
        pos, off = _gather_positions(self.offsets, idx)
        return self._like(self.indices[pos], self.values[pos], off)

    def to_dicts(self) -> list[dict[int, float]]:
        o = self.offsets.tolist()
        ids, vals = self.indices.tolist(), self.values.float().tolist()
        return [dict(zip(ids[o[i]:o[i + 1]], vals[o[i]:o[i + 1]])) for i in range(len(self))]

    def to_dense(self) -> torch.Tensor:
        """[N, V] dense fp32 (for tests and small inputs)."""
        n = len(self)
        out = torch.zeros(n, self.vocab_size, dtype=torch.float32, device=self.device)
        rows = torch.repeat_interleave(torch.arange(n, device=self.device), self.lengths)
        out[rows, self.indices.long()] = self.values.float()
        return out
