"""Building CSR term weights: Python {term: weight} rows to flat ids/weights, and the canonical form
(ids sorted and unique within each row). Used by ``containers.SparseVectors``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch


def lengths_to_offsets(lengths: torch.Tensor) -> torch.Tensor:
    off = torch.zeros(lengths.numel() + 1, dtype=torch.int64, device=lengths.device)
    torch.cumsum(lengths.to(torch.int64), 0, out=off[1:])
    return off


def rows_from_dicts(rows: Sequence[Mapping[Any, Any]], vocab: Mapping[str, int] | None, where: str
                    ) -> tuple[list[int], list[float], list[int]]:
    """(ids, weights, row lengths) of dict rows; every term and weight checked (see ``_term_id``, ``_weight``)."""
    ids: list[int] = []
    vals: list[float] = []
    lens: list[int] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"{where}: rows[{i}] must be a dict of term -> weight, got {type(row).__name__}")
        for term, w in row.items():
            ids.append(_term_id(term, vocab, where, i))
            tw = type(w)
            vals.append(float(w) if tw is float or tw is int else _weight(w, where, i, term))
        lens.append(len(row))
    return ids, vals, lens


_MAX_ID = 2**31 - 1  # ids are int32 and below vocab_size <= 2**31 - 1


def _term_id(term: Any, vocab: Mapping[str, int] | None, where: str, row: int) -> int:
    if isinstance(term, (int, np.integer)) and not isinstance(term, (bool, np.bool_)):
        tid = int(term)
    elif isinstance(term, str):
        if vocab is not None and term in vocab:
            tid = int(vocab[term])
        elif term.isascii() and term.isdecimal():  # str.isdigit() also accepts "²", which int() refuses
            tid = int(term)
        else:
            raise ValueError(f"{where}: rows[{row}] term {term!r} must be an int id, a digit string, or a token in "
                             f"the given vocab/tokenizer" + ("" if vocab is not None else " (none given)"))
    else:
        raise TypeError(f"{where}: rows[{row}] keys must be int ids or str tokens, got {type(term).__name__}")
    if not 0 <= tid < _MAX_ID:
        raise ValueError(f"{where}: rows[{row}] term ids must lie in [0, 2**31 - 1), got {tid}")
    return tid


def _weight(w: Any, where: str, row: int, term: Any) -> float:
    """A term's weight as a float: a real number (numpy scalars and 0-d tensors/arrays included), never a
    string that happens to parse (``float("0.5")``) nor a bool."""
    if isinstance(w, (float, int, np.floating, np.integer)) and not isinstance(w, (bool, np.bool_)):
        return float(w)
    if isinstance(w, torch.Tensor) and w.dim() == 0 and not w.dtype.is_complex and w.dtype != torch.bool:
        return float(w)
    if isinstance(w, np.ndarray) and w.ndim == 0 and w.dtype.kind in "fiu":
        return float(w)
    raise TypeError(f"{where}: rows[{row}][{term!r}] must be a number (the term's weight), got {type(w).__name__}")


def canonical_csr(indices: torch.Tensor, values: torch.Tensor, offsets: torch.Tensor, vocab_size: int, merge: str
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort ids within each row and merge repeats (max or sum). Cheap no-op path when already canonical."""
    n = offsets.numel() - 1
    nnz = indices.numel()
    ids = indices.to(torch.int64)
    if nnz == 0:
        return indices.to(torch.int32), values, offsets
    rows = torch.repeat_interleave(torch.arange(n, device=offsets.device), offsets[1:] - offsets[:-1])
    key = rows * vocab_size + ids
    if nnz < 2 or bool((key[1:] > key[:-1]).all()):
        return indices.to(torch.int32).contiguous(), values.contiguous(), offsets
    key, order = torch.sort(key, stable=True)
    vals = values[order]
    uniq, inverse = torch.unique_consecutive(key, return_inverse=True)
    if uniq.numel() == nnz:
        merged = vals
    else:
        reduce = "amax" if merge == "max" else "sum"
        merged = torch.zeros(uniq.numel(), dtype=torch.float32, device=vals.device)
        merged = merged.scatter_reduce(0, inverse, vals.float(), reduce=reduce, include_self=False).to(vals.dtype)
    new_rows = uniq // vocab_size
    counts = torch.bincount(new_rows, minlength=n)
    return (uniq % vocab_size).to(torch.int32), merged.contiguous(), lengths_to_offsets(counts)
