"""Scoring encoded texts: representations -> pairwise scores, and encoder objects -> representations.

The one home of what ``reranker``, ``compat`` and ``evaluate`` share, so none of them imports another's
helpers (``encoders.BGEM3``'s FlagEmbedding methods reach it through ``compat``). It imports only the
kernels (``ops``), the containers and ``_check``: never ``encoders`` (transformers loads in seconds) nor a
module above it.

- Representations: ``as_rep`` reads the forms users hand in (containers, tensors, lists, dicts, scipy);
  ``score_embeddings`` scores query ``b`` against its candidates, in memory-budget chunks.
- Encoder objects: ``model_kind`` tells which fusedscore encoder an object is (or behaves like);
  ``encode_signals`` encodes texts into the representation each signal scores.
- ``bgem3_pair_scores``: a BGE-M3's dense, sparse and colbert scores of (query, passage) pairs, the core of
  FlagEmbedding's ``compute_score`` (``compat.compute_score`` checks the arguments and mixes the modes).
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import _check as C
from ._budget import greedy_chunks, resolve
from .containers import MultiVectors, SparseVectors
from .ops import dense_dot, maxsim, sparse_dot

__all__ = ["KIND_SIGNALS", "as_rep", "bgem3_pair_scores", "bytes_per_item", "encode_signals",
           "model_kind", "score_embeddings", "take"]

# The signals each kind of model scores, the first listed the default of a Reranker (all three for BGE-M3).
KIND_SIGNALS = {"cross": ("cross",), "bgem3": ("dense", "sparse", "colbert"), "colbert": ("colbert",),
                "splade": ("sparse",), "dense": ("dense",)}
_KIND_OF_CLASS = {"CrossEncoder": "cross", "BGEM3": "bgem3", "ColBERT": "colbert", "Splade": "splade",
                  "DenseEncoder": "dense"}
_BGEM3_KEYS = {"dense": "dense_vecs", "sparse": "lexical_weights", "colbert": "colbert_vecs"}
_REP_TYPES = {"dense": torch.Tensor, "sparse": SparseVectors, "colbert": MultiVectors}


# ----------------------------------------------------------------------------- representations
def as_rep(x: Any, where: str, arg: str) -> MultiVectors | SparseVectors | torch.Tensor:
    """The container a representation scores as: MultiVectors (a list of [L_i, D], a [N, L, D] tensor),
    SparseVectors (a list of {term: weight} dicts, scipy or torch sparse) or a dense [N, D] tensor.

    Raises:
        TypeError: any other type.  ValueError: a tensor that is neither [N, D] nor [N, L, D].
    """
    if isinstance(x, (MultiVectors, SparseVectors)):
        return x
    if isinstance(x, (torch.Tensor, np.ndarray)):
        if isinstance(x, torch.Tensor) and x.layout != torch.strided:
            return SparseVectors.from_torch(x)
        t = C.as_tensor(x, where, arg)
        if t.dim() == 3:
            return MultiVectors.from_padded(t)
        C.check_ndim(t, 2, where, arg, "[N, D] (dense), [N, L, D] (multi-vector)")
        return t
    if hasattr(x, "tocsr"):
        return SparseVectors.from_scipy(x)
    if isinstance(x, (list, tuple)):
        if x and isinstance(x[0], Mapping):
            return SparseVectors.coerce(list(x), where, arg)
        return MultiVectors.coerce(list(x), where, arg)
    raise TypeError(f"{where}: {arg} must be a MultiVectors, SparseVectors, a dense [N, D] tensor, a list of "
                    f"[L_i, D] arrays or a list of dicts, got {type(x).__name__}")


def take(x: Any, idx: torch.Tensor) -> Any:
    """Items ``idx`` of a representation (rows of a dense tensor, items of a container), in that order."""
    if isinstance(x, torch.Tensor):
        return x[idx.to(x.device)]
    return x.select(idx)


def bytes_per_item(x: Any) -> torch.Tensor:
    """[N] float64: the bytes each item of a representation holds (what a memory budget counts)."""
    if isinstance(x, MultiVectors):
        return x.lengths.cpu().double() * x.dim * x.values.element_size()
    if isinstance(x, SparseVectors):
        return x.lengths.cpu().double() * (4 + x.values.element_size())
    return torch.full((x.shape[0],), float(x.shape[1] * x.element_size()), dtype=torch.float64)


def _pair_chunks(groups: torch.Tensor, item_bytes: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Queries in [start, end) ranges whose candidates' bytes fit the budget (``_budget.greedy_chunks``)."""
    per_query = torch.zeros(len(groups) - 1, dtype=torch.float64)
    if item_bytes.numel():
        cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(item_bytes.double(), 0)])
        per_query = cum[groups[1:]] - cum[groups[:-1]]
    costs = per_query.tolist()
    return list(greedy_chunks(costs.__getitem__, len(costs), budget)) or [(0, 0)]


def _score_rep(q: Any, d: Any, groups: torch.Tensor, reduce: str, backend: str | None) -> torch.Tensor:
    if isinstance(q, MultiVectors):
        return maxsim(q, d, mode="pairs", groups=groups, reduce=reduce, backend=backend)
    if isinstance(q, SparseVectors):
        return sparse_dot(q, d, mode="pairs", groups=groups, backend=backend)
    return dense_dot(q, d, mode="pairs", groups=groups, backend=backend)


def _range(x: Any, start: int, stop: int) -> Any:
    """Items start..stop-1: a zero-copy view for MultiVectors (its tokens are the bulk), else a gather."""
    if isinstance(x, MultiVectors):
        return x.slice(start, stop)
    return take(x, torch.arange(start, stop))


def score_embeddings(queries: Any, docs: Any, *, groups: Any = None, reduce: str = "sum",
                     max_memory: int | None = None, backend: str | None = None) -> torch.Tensor:
    """Score precomputed embeddings pairwise: query ``b`` against its candidates ``docs[groups[b]:groups[b+1]]``.

    The representation picks the kernel: MultiVectors / a list of [L_i, D] arrays / a [N, L, D] tensor ->
    MaxSim; SparseVectors / a list of {term: weight} dicts / scipy or torch sparse -> sparse dot; a [N, D]
    tensor -> dense dot. One kernel call per chunk; chunks keep the candidates of a chunk within
    ``max_memory`` bytes (``fusedscore._budget``; None: the device's default), so a batch that fits is one call.

    Args:
        queries: B queries.  docs: N candidates, same representation, dtype and device as queries.
        groups: [B+1] int offsets (may be omitted when B == N: query b with doc b).
        reduce: MaxSim only: "sum" (ColBERT/PyLate) or "mean" over query tokens (BGE-M3).
    Returns:
        [N] float32 scores aligned with docs. An empty multi-vector document scores -inf.
    """
    where = "score_embeddings"
    q, d = as_rep(queries, where, "queries"), as_rep(docs, where, "docs")
    if type(q) is not type(d):
        raise TypeError(f"{where}: docs must be the same representation as queries ({type(q).__name__}), "
                        f"got {type(d).__name__}")
    nq, nd = (x.shape[0] if isinstance(x, torch.Tensor) else len(x) for x in (q, d))
    if groups is None:
        if nq != nd:
            raise ValueError(f"{where}: groups must be given when len(queries)={nq} != len(docs)={nd}")
        groups = torch.arange(nq + 1, dtype=torch.int64)
    g = torch.as_tensor(groups, dtype=torch.int64).cpu()
    if g.dim() != 1 or g.numel() != nq + 1:
        raise ValueError(f"{where}: groups must have shape [B+1]=({nq + 1},), got {tuple(g.shape)}")
    g = C.check_offsets(g, nd, where, "groups")
    device = d.device
    budget = resolve(max_memory, where, device)
    chunks = _pair_chunks(g, bytes_per_item(d), budget)
    if len(chunks) == 1:
        return _score_rep(q, d, g, reduce, backend)
    out = torch.empty(nd, dtype=torch.float32, device=device)
    for s, e in chunks:
        lo, hi = int(g[s]), int(g[e])
        qs, ds = _range(q, s, e), _range(d, lo, hi)
        out[lo:hi] = _score_rep(qs, ds, g[s:e + 1] - lo, reduce, backend)
    return out


# ----------------------------------------------------------------------------- encoder objects
def model_kind(model: Any) -> str | None:
    """'cross' | 'bgem3' | 'colbert' | 'splade' | 'dense': which fusedscore encoder ``model`` is, or None.

    The nearest class of ``type(model).__mro__`` named like a fusedscore encoder decides (a subclass of
    ``ColBERT`` is a ColBERT). Otherwise the methods do, so a stand-in with the encoders' contract works:
    ``predict`` -> cross; ``encode`` taking ``return_colbert_vecs`` -> bgem3, ``as_containers`` and
    ``is_query`` -> colbert, ``is_query`` -> splade, neither -> dense. No ``predict`` nor ``encode`` -> None.
    """
    for cls in type(model).__mro__:
        kind = _KIND_OF_CLASS.get(cls.__name__)
        if kind is not None:
            return kind
    if callable(getattr(model, "predict", None)):
        return "cross"
    enc = getattr(model, "encode", None)
    if not callable(enc):
        return None
    params = inspect.signature(enc).parameters
    if "return_colbert_vecs" in params:
        return "bgem3"
    if "as_containers" in params and "is_query" in params:
        return "colbert"
    return "splade" if "is_query" in params else "dense"


def encode_signals(model: Any, kind: str, texts: list[str], *, is_query: bool, batch_size: int,
                   signals: Sequence[str], where: str) -> dict[str, Any]:
    """Encode ``texts`` with one model (one ``encode`` call) into the representation each signal scores.

    Args:
        kind: ``model_kind(model)``, one of "bgem3", "colbert", "splade", "dense".
        signals: names among ``KIND_SIGNALS[kind]``: "dense", "sparse", "colbert".
    Returns:
        {signal: representation}: dense -> Tensor [N, D], sparse -> SparseVectors, colbert -> MultiVectors.
    Raises:
        ValueError: a kind or signal this model does not encode.
        TypeError: the model returned another representation than its signal scores.
    """
    encodable = KIND_SIGNALS[kind] if kind in ("bgem3", "colbert", "splade", "dense") else ()
    bad = [s for s in signals if s not in encodable]
    if bad or not signals:
        raise ValueError(f"{where}: signals must be among {list(encodable)} for a {type(model).__name__} "
                         f"(kind {kind!r}), got {list(signals)}")
    if kind == "bgem3":
        res = model.encode(texts, batch_size=batch_size, return_dense="dense" in signals,
                           return_sparse="sparse" in signals, return_colbert_vecs="colbert" in signals,
                           as_containers=True)
        raw = {s: (res[_BGEM3_KEYS[s]], _BGEM3_KEYS[s]) for s in signals}
    elif kind == "colbert":
        raw = {signals[0]: (model.encode(texts, is_query=is_query, batch_size=batch_size, as_containers=True),
                            "embeddings")}
    elif kind == "splade":
        raw = {signals[0]: (model.encode(texts, batch_size=batch_size, is_query=is_query), "embeddings")}
    else:
        raw = {signals[0]: (model.encode(texts, batch_size=batch_size), "embeddings")}
    out = {}
    for s, (x, arg) in raw.items():
        rep = as_rep(x, where, arg)
        if not isinstance(rep, _REP_TYPES[s]):
            raise TypeError(f"{where}: {type(model).__name__} must give {_REP_TYPES[s].__name__} for the {s} signal, "
                            f"got {type(rep).__name__}")
        out[s] = rep
    return out


# ----------------------------------------------------------------------------- FlagEmbedding's compute_score core
def bgem3_pair_scores(model: Any, pairs: Sequence[Sequence[str]], *, batch_size: int, max_query_length: int,
                      max_passage_length: int, max_memory: int | None) -> dict[str, torch.Tensor]:
    """Dense, sparse and colbert scores of each (query, passage) pair with a BGE-M3 encoder (FlagEmbedding's
    scaling: dense ``<q, p>``, sparse ``sum w_q w_p``, colbert ``mean_i max_j <q_i, p_j>``).

    Pairs are grouped by query (a stable sort) and cut into chunks whose encoded passages fit the memory
    budget: FlagEmbedding holds one batch of pairs at a time; encoding every distinct passage of a large
    call at once (about ``max_passage_length * D * 4`` bytes of colbert vectors each) would not fit where
    the peer runs. In a chunk each distinct text is encoded once and each mode is one paired kernel call.

    Args:
        model: a ``BGEM3`` (or an object with its ``encode``).  pairs: checked (query, passage) str pairs.
    Returns:
        {"dense", "sparse", "colbert"} -> [len(pairs)] float32 on CPU, in input order.
    """
    budget = resolve(max_memory, "compute_score", getattr(model, "device", None))
    colbert_dim = int(getattr(getattr(model, "colbert_linear", None), "out_features", 1024))
    per_passage = max_passage_length * colbert_dim * 4 * 2  # each pair brings at most one distinct passage
    q_of: dict[str, int] = {}
    order = sorted(range(len(pairs)), key=lambda i: q_of.setdefault(pairs[i][0], len(q_of)))
    scores = {m: torch.empty(len(pairs), dtype=torch.float32) for m in ("dense", "sparse", "colbert")}
    # a chunk holds one encode batch of pairs at least, as the peer does
    for start, end in greedy_chunks(lambda i: per_passage, len(order), max(budget, batch_size * per_passage)):
        idx = order[start:end]
        chunk = _pair_chunk_scores(model, [pairs[i] for i in idx], batch_size, max_query_length, max_passage_length,
                                   max_memory)
        for mode, val in chunk.items():
            scores[mode][torch.tensor(idx)] = val
    return scores


def _pair_chunk_scores(model: Any, pairs: list, bs: int, qmax: int, pmax: int, max_memory: int | None
                       ) -> dict[str, torch.Tensor]:
    """Pairs sorted by query: each distinct text encoded once, then one paired kernel call per mode."""
    where = "compute_score"
    qpos: dict[str, int] = {}
    ppos: dict[str, int] = {}
    qi = torch.tensor([qpos.setdefault(q, len(qpos)) for q, _ in pairs], dtype=torch.int64)
    pi = torch.tensor([ppos.setdefault(p, len(ppos)) for _, p in pairs], dtype=torch.int64)
    kw = dict(batch_size=bs, return_dense=True, return_sparse=True, return_colbert_vecs=True, as_containers=True)
    qrep = model.encode(list(qpos), max_length=qmax, **kw)
    prep = model.encode(list(ppos), max_length=pmax, **kw)
    counts = torch.bincount(qi, minlength=len(qpos))
    groups = torch.zeros(len(qpos) + 1, dtype=torch.int64)
    torch.cumsum(counts, 0, out=groups[1:])
    out = {}
    for mode, reduce in (("dense", "sum"), ("sparse", "sum"), ("colbert", "mean")):
        key = _BGEM3_KEYS[mode]
        q, p = as_rep(qrep[key], where, key), as_rep(prep[key], where, key)
        out[mode] = score_embeddings(q, take(p, pi), groups=groups, reduce=reduce, max_memory=max_memory).cpu()
    return out
