"""Reranking: score each query's candidate documents with a model (or precomputed embeddings) and sort.

``Reranker(model).rank(query, documents)`` returns ``[{"corpus_id": int, "score": float}]`` sorted by score,
best first, exactly like sentence-transformers' ``CrossEncoder.rank``. ``rerank_batch`` does the same for
many queries at once: every query's candidates are encoded together and scored in one kernel call per
signal (``mode="pairs"`` with ``groups`` offsets), inside a memory budget.

Signals (``mode``):
- ``"cross"``: a cross-encoder's one logit per (query, document) pair (its own activation applied).
- ``"dense"``: ``<q, d>`` of one vector per text.
- ``"sparse"``: ``sum over shared term ids of w_q * w_d`` (SPLADE, BGE-M3 lexical weights).
- ``"colbert"``: MaxSim ``reduce_i max_j <q_i, d_j>`` with ``reduce="sum"`` for ColBERT/PyLate models and
  ``reduce="mean"`` (over query tokens) for BGE-M3, as each model's authors score it.

Fusion of several signals (a BGE-M3 mix, or several models):
- ``fusion="weighted"``: ``sum_s w_s * norm(s) / sum_s w_s`` (a weighted mean, so a BGE-M3 mix with
  ``normalize="none"`` equals FlagEmbedding's ``colbert+sparse+dense`` score). ``norm`` is per query over
  its candidates: "none", "minmax", "zscore" or "sigmoid"; one candidate or all-tied candidates map to 1
  (min-max) / 0 (z-score), never to a collapse below the others.
- ``fusion="rrf"``: reciprocal-rank fusion ``sum_s w_s / (rrf_k + rank_s)``, ``rrf_k=60``.
- A document missing from one signal (it scored ``-inf``: no scoreable token) takes the query's worst
  normalised score in that signal (weighted) or contributes 0 (RRF); missing from every signal -> ``-inf``.

Scores are float32. NaN never reaches a result: a NaN score (a broken model) is ranked last as ``-inf``
with a ``RuntimeWarning`` saying how many.

Threads: a Reranker (and the encoders under it) may be called from many threads at once; a call keeps its
state in local variables. ``last_truncated`` is per thread. The learned embedding size per character
(which only sizes memory-budget chunks) is shared: a race on it changes chunk sizes, never scores' meaning.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import _check as C
from ._budget import default_max_memory, greedy_chunks, resolve
from .ops import hybrid, reciprocal_rank_fusion
from .scoring import (KIND_SIGNALS, as_rep, bytes_per_item, encode_signals, model_kind,
                      score_embeddings, take)

# score_embeddings (fusedscore.scoring) and default_max_memory (fusedscore._budget) stay importable from here
__all__ = ["Reranker", "score_embeddings", "default_max_memory"]

SIGNALS = ("dense", "sparse", "colbert", "cross")
_FUSIONS = ("weighted", "rrf")
_NORMS = ("none", "minmax", "zscore", "sigmoid")
_FIRST_GUESS_BYTES_PER_CHAR = 4 * 1024  # fp32 x 1024-dim vectors, one token per char: a safe over-estimate


# ----------------------------------------------------------------------------- modes and signals
def _parse_mode(mode: Any, where: str) -> tuple[str, ...]:
    """"dense" | "sparse+dense" | ["colbert", "dense"] -> a tuple of signal names. A "+"-string lists
    signals in FlagEmbedding's weight order (dense, sparse, colbert), whatever order it is written in."""
    if isinstance(mode, str):
        parts = [p.strip() for p in mode.split("+")]
        bad = [p for p in parts if p not in SIGNALS]
        if bad or not parts:
            raise ValueError(f"{where}: mode must be one of {SIGNALS} or a '+'-joined mix, got {mode!r}")
        return tuple(s for s in SIGNALS if s in parts)
    if isinstance(mode, Sequence) and mode and all(isinstance(m, str) for m in mode):
        bad = [m for m in mode if m not in SIGNALS]
        if bad or len(set(mode)) != len(mode):
            raise ValueError(f"{where}: mode must list distinct signals from {SIGNALS}, got {list(mode)!r}")
        return tuple(mode)
    raise TypeError(f"{where}: mode must be a str or a list of str, got {type(mode).__name__}")


@dataclass
class _Signal:
    """One score signal: ``name`` in SIGNALS, produced by ``model`` (None for precomputed embeddings)."""
    key: str        # unique label in results and weights (signal name, or "<model>:<signal>")
    name: str       # dense | sparse | colbert | cross
    model: Any
    kind: str | None
    reduce: str = "sum"


def _check_cross_encoder(model: Any) -> None:
    n = getattr(model, "num_labels", None)
    if n is None:
        cfg = getattr(model, "config", None) or getattr(getattr(model, "model", None), "config", None)
        n = getattr(cfg, "num_labels", None)
    if n is not None and int(n) != 1 and getattr(model, "label_index", None) is None:
        raise ValueError(f"Reranker: a cross-encoder must have num_labels == 1 to give one relevance score per "
                         f"pair, got num_labels={n}; load it with label_index=<column> to rank by one label")


# ----------------------------------------------------------------------------- result lists
def _to_rows(flat: torch.Tensor, groups: list[int]) -> torch.Tensor:
    """[N] scores + offsets -> [B, Kmax] with -inf padding (padding is 'missing' for the fusion ops)."""
    b = len(groups) - 1
    lens = [groups[i + 1] - groups[i] for i in range(b)]
    kmax = max(lens, default=0)
    rows = torch.full((b, kmax), float("-inf"), dtype=torch.float32, device=flat.device)
    if flat.numel():
        qi = torch.repeat_interleave(torch.arange(b, device=flat.device), torch.tensor(lens, device=flat.device))
        pos = torch.arange(flat.numel(), device=flat.device) - torch.tensor(groups[:-1], device=flat.device)[qi]
        rows[qi, pos] = flat.float()
    return rows


def _from_rows(rows: torch.Tensor, groups: list[int]) -> torch.Tensor:
    return torch.cat([rows[i, : groups[i + 1] - groups[i]] for i in range(len(groups) - 1)]) if rows.numel() \
        else torch.zeros(0, dtype=torch.float32)


def _drop_nan(flat: torch.Tensor, where: str) -> torch.Tensor:
    nan = torch.isnan(flat)
    if bool(nan.any()):
        warnings.warn(f"{where}: {int(nan.sum())} NaN score(s) (a broken model or input?) ranked last as -inf",
                      RuntimeWarning, stacklevel=3)
        flat = torch.where(nan, torch.full_like(flat, float("-inf")), flat)
    return flat


def _check_docs(docs: Any, where: str, arg: str) -> list[str]:
    if isinstance(docs, str) or not isinstance(docs, Sequence):
        raise TypeError(f"{where}: {arg} must be a list of str, got {type(docs).__name__}")
    for j, d in enumerate(docs):
        if not isinstance(d, str):
            raise TypeError(f"{where}: {arg}[{j}] must be a str, got {type(d).__name__}")
    return list(docs)


def _rank_one(scores: list[float], top_k: int | None, texts: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Stable sort (ties keep input order, as sentence-transformers' sorted() does)."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if top_k is not None:
        order = order[:top_k]
    out = []
    for i in order:
        row: dict[str, Any] = {"corpus_id": i, "score": scores[i]}
        if texts is not None:
            row["text"] = texts[i]
        out.append(row)
    return out


# ----------------------------------------------------------------------------- the reranker
class Reranker:
    """Rerank candidate documents per query with a model, several models, or precomputed embeddings.

    Args:
        model_or_scorers: a fusedscore encoder (``CrossEncoder``, ``ColBERT``, ``Splade``, ``DenseEncoder``,
            ``BGEM3``), a model directory (loaded with ``fusedscore.encoders.load``), a dict
            ``{label: encoder}`` (or a list) of several to fuse, or None for precomputed embeddings only
            (see ``from_embeddings``).
        mode: which signals to score (module docstring): one of "cross", "dense", "sparse", "colbert", a
            "+"-joined mix ("colbert+sparse+dense", listed in FlagEmbedding's weight order dense, sparse,
            colbert) or a list. Default: the model's own (BGE-M3: all three). With a dict of models, a
            dict ``{label: mode}``.
        weights: one float per signal, in signal order (``signal_keys``), or a dict ``{key: weight}``.
            Default 1 each. Ignored with a single signal.
        normalize: per-query normalisation before a weighted fusion: "none", "minmax", "zscore", "sigmoid".
        fusion: "weighted" (weighted mean) or "rrf" (reciprocal-rank fusion with ``rrf_k``).
        missing: the normalised score a document missing from one signal takes (None: the query's worst).
        reduce: MaxSim reduction override, "sum" or "mean" (default: "mean" for BGE-M3, else "sum").
        max_memory: bytes the embeddings of one chunk of pairs may take (``fusedscore._budget``; None: the
            device's default).
        device: where scoring runs (embeddings are moved there); default: where the encoder puts them.
    Attributes:
        last_truncated: how many texts (pairs, for a cross-encoder) the encoders truncated during the last
            ``rank`` / ``rerank_batch`` / ``score`` *of the calling thread*, summed over models and calls.
    Raises:
        ValueError: a bad mode, weights, normalize, fusion, or a cross-encoder with num_labels != 1.
        TypeError: an object that is not an encoder.
        RuntimeError: ``device`` is a CUDA device and CUDA is not available.
    """

    def __init__(self, model_or_scorers: Any = None, mode: Any = None, weights: Any = None, normalize: str = "none",
                 fusion: str = "weighted", *, rrf_k: int = 60, missing: float | None = None,
                 reduce: str | None = None, max_memory: int | None = None, device: Any = None):
        where = "Reranker"
        if normalize not in _NORMS:
            raise ValueError(f"{where}: normalize must be one of {_NORMS}, got {normalize!r}")
        if fusion not in _FUSIONS:
            raise ValueError(f"{where}: fusion must be one of {_FUSIONS}, got {fusion!r}")
        if reduce is not None:
            C.check_reduce(reduce, where)
        C.check_max_memory(max_memory, where)
        self.rrf_k = C.check_k(rrf_k, where, "rrf_k")
        self.normalize, self.fusion, self.missing, self.max_memory = normalize, fusion, missing, max_memory
        self.device = None
        if device is not None:
            from .encoders._base import resolve_device  # the one device check of models and their outputs

            self.device = resolve_device(device, where)
        if isinstance(model_or_scorers, (str, os.PathLike)):
            from .encoders import load  # the encoders pull in transformers: import only when needed
            model_or_scorers = load(os.fspath(model_or_scorers), device=device)
        self.signals = self._build_signals(model_or_scorers, mode, reduce, where)
        self.weights = self._parse_weights(weights, where)
        self._bytes_per_char = float(_FIRST_GUESS_BYTES_PER_CHAR)
        self._calls = threading.local()

    @property
    def last_truncated(self) -> int:
        return getattr(self._calls, "truncated", 0)

    def _scoring_device(self) -> torch.device | None:
        """Where scores are computed: ``device=``, else the first model's device (its budget is the default)."""
        if self.device is not None:
            return self.device
        for s in self.signals:
            dev = getattr(s.model, "device", None)
            if dev is not None:
                return torch.device(dev)
        return None

    @classmethod
    def from_embeddings(cls, mode: Any = "colbert", **kwargs: Any) -> "Reranker":
        """A reranker over precomputed embeddings (``rerank_embeddings``); ``mode`` names the signals."""
        return cls(None, mode=mode, **kwargs)

    # ------------------------------------------------------------------ construction helpers
    def _build_signals(self, models: Any, mode: Any, reduce: str | None, where: str) -> list[_Signal]:
        if models is None:
            if mode is None:
                raise ValueError(f"{where}: mode must name the signals when no model is given, got None")
            return [_Signal(s, s, None, None, reduce or "sum") for s in _parse_mode(mode, where)]
        if isinstance(models, (list, tuple)):
            models = {str(i): m for i, m in enumerate(models)}
        if isinstance(models, Mapping):
            modes = mode if isinstance(mode, Mapping) else {}
            if mode is not None and not isinstance(mode, Mapping):
                raise TypeError(f"{where}: mode must be a dict {{label: mode}} with several models, got {type(mode).__name__}")
            out = []
            for label, m in models.items():
                sigs = self._model_signals(m, modes.get(label), reduce, where)
                for s in sigs:
                    s.key = str(label) if len(sigs) == 1 else f"{label}:{s.name}"
                out += sigs
            if not out:
                raise ValueError(f"{where}: model_or_scorers must hold at least one model, got an empty {type(models).__name__}")
            return out
        return self._model_signals(models, mode, reduce, where)

    @staticmethod
    def _model_signals(model: Any, mode: Any, reduce: str | None, where: str) -> list[_Signal]:
        kind = model_kind(model)
        if kind is None:
            raise TypeError(f"{where}: model_or_scorers must be a fusedscore encoder (CrossEncoder, ColBERT, Splade, "
                            f"DenseEncoder, BGEM3), a model directory, or a dict of them, got {type(model).__name__}")
        names = _parse_mode(mode, where) if mode is not None else KIND_SIGNALS[kind]
        bad = [n for n in names if n not in KIND_SIGNALS[kind]]
        if bad:
            raise ValueError(f"{where}: mode must be one of {sorted(KIND_SIGNALS[kind])} for a {type(model).__name__}, "
                             f"got {bad[0]!r}")
        if kind == "cross":
            _check_cross_encoder(model)
        red = reduce or ("mean" if kind == "bgem3" else "sum")
        return [_Signal(n, n, model, kind, red) for n in names]

    def _parse_weights(self, weights: Any, where: str) -> list[float]:
        keys = [s.key for s in self.signals]
        if weights is None:
            return [1.0] * len(keys)
        if isinstance(weights, Mapping):
            unknown = [k for k in weights if k not in keys]
            if unknown:
                raise ValueError(f"{where}: weights keys must be among the signals {keys}, got {unknown[0]!r}")
            w = [float(weights.get(k, 0.0)) for k in keys]
        else:
            w = [float(x) for x in weights]
            if len(w) != len(keys):
                raise ValueError(f"{where}: weights must have one entry per signal {keys}, got {len(w)}")
        if not all(np.isfinite(w)) or any(x < 0 for x in w):
            raise ValueError(f"{where}: weights must be finite and >= 0, got {w}")
        if len(w) > 1 and self.fusion == "weighted" and sum(w) <= 0:
            raise ValueError(f"{where}: weights must have a positive sum for a weighted fusion, got {w}")
        return w

    @property
    def signal_keys(self) -> list[str]:
        """The signals' labels, in the order ``weights`` follow."""
        return [s.key for s in self.signals]

    # ------------------------------------------------------------------ public API
    def rank(self, query: str, documents: Sequence[str], top_k: int | None = None, return_documents: bool = False,
             batch_size: int = 32) -> list[dict[str, Any]]:
        """Rank ``documents`` for one ``query``: ``[{"corpus_id", "score"(, "text")}]``, best first.

        ``corpus_id`` indexes ``documents``; ties keep input order; duplicates are kept and scored; an
        empty list gives ``[]``; ``top_k`` larger than the list gives them all.
        Raises:
            ValueError: top_k <= 0.  TypeError: query not a str, documents not a list of str.
        """
        where = "Reranker.rank"
        if not isinstance(query, str):
            raise TypeError(f"{where}: query must be a str, got {type(query).__name__}")
        return self._rerank([query], [_check_docs(documents, where, "documents")], top_k, return_documents,
                            batch_size, where)[0]

    def rerank_batch(self, queries: Sequence[str], candidate_lists: Sequence[Sequence[str]], top_k: int | None = None,
                     return_documents: bool = False, batch_size: int = 32) -> list[list[dict[str, Any]]]:
        """``rank`` for many queries: every query's candidates are encoded together and scored with one kernel
        call per signal (per memory-budget chunk). Returns one sorted list per query."""
        return self._rerank(queries, candidate_lists, top_k, return_documents, batch_size, "Reranker.rerank_batch")

    def score(self, queries: Sequence[str], candidate_lists: Sequence[Sequence[str]], batch_size: int = 32
              ) -> tuple[torch.Tensor, list[int]]:
        """Fused scores of every (query, candidate) pair, unsorted.

        Returns:
            (scores [N] float32 on CPU, groups: B+1 offsets; query b's candidates are scores[groups[b]:groups[b+1]]).
        """
        return self._score(queries, candidate_lists, batch_size, "Reranker.score")

    def _rerank(self, queries: Any, candidate_lists: Any, top_k: Any, return_documents: bool, batch_size: Any,
                where: str) -> list[list[dict[str, Any]]]:
        """``rerank_batch``; errors name ``where``, the public method the caller used."""
        top_k = self._check_top_k(top_k, where)
        flat, groups = self._score(queries, candidate_lists, batch_size, where)
        vals = flat.tolist()
        return [_rank_one(vals[groups[b]:groups[b + 1]], top_k, candidate_lists[b] if return_documents else None)
                for b in range(len(queries))]

    def _score(self, queries: Any, candidate_lists: Any, batch_size: Any, where: str) -> tuple[torch.Tensor, list[int]]:
        if any(s.model is None for s in self.signals):
            raise ValueError(f"{where}: this Reranker has no model (built from embeddings); use rerank_embeddings")
        queries, cands = self._check_texts(queries, candidate_lists, where)
        batch_size = C.check_k(batch_size, where, "batch_size")
        groups = [0]
        for c in cands:
            groups.append(groups[-1] + len(c))
        docs = [d for c in cands for d in c]
        per_signal: dict[str, list[torch.Tensor]] = {s.key: [] for s in self.signals}
        budget = resolve(self.max_memory, where, self._scoring_device())
        self._calls.truncated = 0

        def cost(b: int) -> float:  # read when query b's chunk is cut: the estimate learnt from earlier chunks
            return sum(len(d) + 1 for d in cands[b]) * self._bytes_per_char

        for start, end in greedy_chunks(cost, len(queries), budget):
            lo, hi = groups[start], groups[end]
            g = torch.tensor(groups[start:end + 1], dtype=torch.int64) - lo
            scores, used = self._score_chunk(queries[start:end], docs[lo:hi], g, batch_size, where)
            chars = sum(len(d) + 1 for d in docs[lo:hi])
            if used and chars:  # learn the real embedding size per character for the next chunk
                self._bytes_per_char = max(1.0, used / chars)
            for k, v in scores.items():
                per_signal[k].append(v.detach().float().cpu())
        flats = {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.float32) for k, v in per_signal.items()}
        return self._fuse(flats, groups, where), groups

    def rerank_embeddings(self, queries: Any, docs: Any, groups: Any = None, top_k: int | None = None
                          ) -> list[list[dict[str, Any]]]:
        """Rerank precomputed embeddings: query ``b`` against ``docs[groups[b]:groups[b+1]]``.

        Args:
            queries, docs: one representation each (MultiVectors, SparseVectors, dense [N, D], or the forms
                ``score_embeddings`` takes), or, with several signals, dicts ``{signal_key: representation}``.
            groups: [B+1] offsets (omit when each query has exactly one candidate).
        Returns:
            One list per query of ``{"corpus_id": index within the query's candidates, "score"}``, best first.
        """
        where = "Reranker.rerank_embeddings"
        top_k = self._check_top_k(top_k, where)
        keys = self.signal_keys
        if len(keys) == 1 and not isinstance(queries, Mapping):
            queries, docs = {keys[0]: queries}, {keys[0]: docs}
        for name, x in (("queries", queries), ("docs", docs)):
            if not isinstance(x, Mapping) or sorted(x) != sorted(keys):
                got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
                raise ValueError(f"{where}: {name} must be a dict with one representation per signal {keys}, got {got}")
        flats, g = {}, None
        for s in self.signals:
            q, d = as_rep(queries[s.key], where, "queries"), as_rep(docs[s.key], where, "docs")
            if self.device is not None:
                q, d = q.to(self.device), d.to(self.device)
            nq = q.shape[0] if isinstance(q, torch.Tensor) else len(q)
            gg = torch.arange(nq + 1) if groups is None else torch.as_tensor(groups, dtype=torch.int64)
            flats[s.key] = score_embeddings(q, d, groups=gg, reduce=s.reduce, max_memory=self.max_memory).cpu()
            g = gg.tolist()
        vals = self._fuse(flats, g, where).tolist()
        return [_rank_one(vals[g[b]:g[b + 1]], top_k, None) for b in range(len(g) - 1)]

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check_top_k(top_k: Any, where: str) -> int | None:
        return None if top_k is None else C.check_k(top_k, where, "top_k")

    @staticmethod
    def _check_texts(queries: Any, cands: Any, where: str) -> tuple[list[str], list[list[str]]]:
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise TypeError(f"{where}: queries must be a list of str, got {type(queries).__name__}")
        if isinstance(cands, str) or not isinstance(cands, Sequence) or len(cands) != len(queries):
            got = len(cands) if isinstance(cands, Sequence) and not isinstance(cands, str) else type(cands).__name__
            raise ValueError(f"{where}: candidate_lists must hold one list per query ({len(queries)}), got {got}")
        for i, q in enumerate(queries):
            if not isinstance(q, str):
                raise TypeError(f"{where}: queries[{i}] must be a str, got {type(q).__name__}")
        return list(queries), [_check_docs(c, where, f"candidate_lists[{i}]") for i, c in enumerate(cands)]

    def _score_chunk(self, queries: list[str], docs: list[str], groups: torch.Tensor, batch_size: int, where: str
                     ) -> tuple[dict[str, torch.Tensor], int]:
        """Encode one chunk (each distinct document text once) and score every signal: one kernel call each."""
        out: dict[str, torch.Tensor] = {}
        used = 0
        if not docs:
            return {s.key: torch.zeros(0, dtype=torch.float32) for s in self.signals}, 0
        qidx = torch.repeat_interleave(torch.arange(len(queries)), groups[1:] - groups[:-1])
        uniq: dict[str, int] = {}
        didx = torch.tensor([uniq.setdefault(d, len(uniq)) for d in docs], dtype=torch.int64)
        udocs = list(uniq)
        by_model: dict[int, list[_Signal]] = {}
        for s in self.signals:
            by_model.setdefault(id(s.model), []).append(s)
        for sigs in by_model.values():
            model, kind = sigs[0].model, sigs[0].kind
            if kind == "cross":
                pairs = [[queries[int(i)], d] for i, d in zip(qidx, docs)]
                s = np.asarray(model.predict(pairs, batch_size=batch_size), dtype=np.float32)
                self._calls.truncated += int(getattr(model, "last_truncated", 0))
                if s.ndim != 1 or s.shape[0] != len(pairs):
                    raise ValueError(f"{where}: a cross-encoder must return one score per pair, shape "
                                     f"[{len(pairs)}], got {s.shape}; num_labels must be 1")
                for sig in sigs:  # the same cross-encoder may be given under several labels
                    out[sig.key] = torch.from_numpy(s)
                continue
            names = [s.name for s in sigs]
            kw = dict(batch_size=batch_size, signals=names, where=where)
            qrep = encode_signals(model, kind, queries, is_query=True, **kw)
            self._calls.truncated += int(getattr(model, "last_truncated", 0))
            drep = encode_signals(model, kind, udocs, is_query=False, **kw)
            self._calls.truncated += int(getattr(model, "last_truncated", 0))
            for s in sigs:
                q, d = qrep[s.name], drep[s.name]
                if len(udocs) != len(docs):
                    d = take(d, didx)
                if self.device is not None:
                    q, d = q.to(self.device), d.to(self.device)
                used += int(bytes_per_item(d).sum())
                out[s.key] = score_embeddings(q, d, groups=groups, reduce=s.reduce, max_memory=self.max_memory)
        return out, used

    def _fuse(self, flats: dict[str, torch.Tensor], groups: list[int], where: str) -> torch.Tensor:
        keys = self.signal_keys
        if len(keys) == 1:
            return _drop_nan(flats[keys[0]].float(), where)
        if not groups or groups[-1] == 0:  # no pair at all: nothing to fuse ([B, 0] rows)
            return torch.zeros(0, dtype=torch.float32)
        rows = [_to_rows(_drop_nan(flats[k].float(), where), groups) for k in keys]
        if self.fusion == "rrf":
            fused = reciprocal_rank_fusion(rows, k=self.rrf_k, weights=self.weights)
        else:
            fused = hybrid(rows, self.weights, normalize=self.normalize, missing=self.missing) / sum(self.weights)
        return _from_rows(fused, groups)

    def __repr__(self) -> str:
        return (f"Reranker(signals={self.signal_keys}, weights={self.weights}, normalize={self.normalize!r}, "
                f"fusion={self.fusion!r})")

