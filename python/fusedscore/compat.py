"""Drop-in functions with the signatures and results of the libraries users already call.

- FlagEmbedding 1.4.2 (``BGEM3FlagModel``): ``compute_score``, ``compute_lexical_matching_score``, ``colbert_score``.
- PyLate 1.6.0: ``rerank`` (``pylate.rank.rerank``).
- sentence-transformers 6.2: ``similarity`` / ``similarity_pairwise`` (``util.maxsim``, ``util.mean_maxsim``,
  ``util.dot_score``, ``util.cos_sim`` and their ``*_pairwise`` forms).

Deliberate differences (all documented where they apply):
- Scores are float32 (float64 numpy input is cast to float32 once, at the boundary).
- Padding never wins a MaxSim max. FlagEmbedding and PyLate pad documents with zero vectors and multiply
  by the mask, so a padded position scores 0 and beats a query token whose every real similarity is
  negative; here the max runs over real tokens only. Results agree whenever some real similarity per
  query token is >= 0 (normalised embeddings of related text).
- An empty multi-vector document scores ``-inf`` (sentence-transformers: ``-1e9``; FlagEmbedding/PyLate: error).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import _check as C
from ._budget import greedy_chunks
from ._dispatch import reads_in_place
from .containers import MultiVectorList, MultiVectors, SparseVectors
from .ops import dense_dot, maxsim, sparse_dot
from .scoring import bgem3_pair_scores, score_embeddings

__all__ = ["compute_score", "compute_lexical_matching_score", "colbert_score", "rerank", "similarity",
           "similarity_pairwise"]

_SCORE_KEYS = ("colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense")


def _f32(x: Any, where: str, arg: str) -> torch.Tensor:
    """A float tensor view of x; float64 (numpy's default) is cast to float32, the only cast done here."""
    if isinstance(x, torch.Tensor) and x.dtype in C.FLOAT_DTYPES:  # the common case, once per item of a list
        C.check_strided(x, where, arg)
        C.check_no_grad(x, where, arg)
        return x
    if isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype=np.float32)
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        x = x.astype(np.float32)
    t = C.as_tensor(x, where, arg)
    C.check_strided(t, where, arg)
    C.check_no_grad(t, where, arg)
    if t.dtype == torch.float64:
        t = t.float()
    C.check_float(t, where, arg)
    return t


# ----------------------------------------------------------------------------- FlagEmbedding
def compute_score(model: Any, sentence_pairs: Any, batch_size: int | None = None, max_query_length: int | None = None,
                  max_passage_length: int | None = None, weights_for_different_modes: Sequence[float] | None = None,
                  max_memory: int | None = None) -> Any:
    """FlagEmbedding's ``BGEM3FlagModel.compute_score``: every mode's score for each (query, passage) pair.

    Each distinct query and passage text is encoded once (queries truncated to ``max_query_length``,
    passages to ``max_passage_length``, 512 by default as in FlagEmbedding); then each mode is one kernel
    call over all pairs. Scaling is FlagEmbedding's (temperature 1): dense ``<q, p>``; sparse ``sum w_q w_p``
    over shared ids; colbert ``mean_i max_j <q_i, p_j>`` over the query's colbert vectors; with
    ``[w_dense, w_sparse, w_colbert]`` (default ``[1, 1, 1]``): ``sparse+dense = (w_s s + w_d d) / (w_s + w_d)``
    and ``colbert+sparse+dense = (w_c c + w_s s + w_d d) / (w_d + w_s + w_c)``.

    Args:
        model: a ``fusedscore.encoders.BGEM3``.
        sentence_pairs: a list of (query, passage) pairs, or one pair.
    Returns:
        ``{"colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense"}`` -> list of float (one pair:
        a float each); ``[]`` for an empty list, as FlagEmbedding.
    Raises:
        ValueError: weights not 3 numbers, a pair that is not two strings.
    """
    where = "compute_score"
    if isinstance(sentence_pairs, (list, tuple)) and len(sentence_pairs) == 0:
        return []
    single = isinstance(sentence_pairs, (list, tuple)) and isinstance(sentence_pairs[0], str)
    pairs = [sentence_pairs] if single else list(sentence_pairs)
    for i, p in enumerate(pairs):
        if not isinstance(p, (list, tuple)) or len(p) != 2 or not all(isinstance(t, str) for t in p):
            raise ValueError(f"{where}: sentence_pairs[{i}] must be a (query, passage) pair of str, got {p!r}")
    w = [1.0, 1.0, 1.0] if weights_for_different_modes is None else [float(x) for x in weights_for_different_modes]
    if len(w) != 3:
        raise ValueError(f"{where}: weights_for_different_modes must be [w_dense, w_sparse, w_colbert], got {w}")
    max_memory = C.check_max_memory(max_memory, where)
    bs = 256 if batch_size is None else batch_size
    qmax = 512 if max_query_length is None else max_query_length
    pmax = 512 if max_passage_length is None else max_passage_length
    scores = bgem3_pair_scores(model, pairs, batch_size=bs, max_query_length=qmax, max_passage_length=pmax,
                               max_memory=max_memory)
    d, s, c = scores["dense"], scores["sparse"], scores["colbert"]
    scores["sparse+dense"] = (s * w[1] + d * w[0]) / (w[1] + w[0])
    scores["colbert+sparse+dense"] = (c * w[2] + s * w[1] + d * w[0]) / sum(w)
    result = {k: scores[k].tolist() for k in _SCORE_KEYS}
    return {k: v[0] for k, v in result.items()} if single else result


def compute_lexical_matching_score(lexical_weights_1: Any, lexical_weights_2: Any) -> Any:
    """FlagEmbedding's ``compute_lexical_matching_score``: ``sum over shared keys of w1 * w2``.

    Args:
        lexical_weights_1, lexical_weights_2: two dicts ``{token: weight}`` (token id strings, as
            ``encode(..., return_sparse=True)`` gives, or any keys), or two lists of them.
    Returns:
        float for two dicts; ``np.ndarray [len1, len2]`` float32 for two lists (all pairs), as FlagEmbedding
        (shape ``(0,)`` when the first list is empty).
    Raises:
        ValueError: not two dicts or two lists (FlagEmbedding raises ValueError too).
    """
    where = "compute_lexical_matching_score"
    if isinstance(lexical_weights_1, Mapping) and isinstance(lexical_weights_2, Mapping):
        return float(_lexical_all_pairs([lexical_weights_1], [lexical_weights_2])[0, 0])
    if isinstance(lexical_weights_1, list) and isinstance(lexical_weights_2, list):
        if not lexical_weights_1:
            return np.array([], dtype=np.float32)
        return _lexical_all_pairs(lexical_weights_1, lexical_weights_2).numpy()
    raise ValueError(f"{where}: lexical_weights_1 and lexical_weights_2 must be two dicts or two lists of dicts, "
                     f"got {type(lexical_weights_1).__name__} and {type(lexical_weights_2).__name__}")


def _lexical_all_pairs(rows1: list, rows2: list) -> torch.Tensor:
    """Keys of any type become ids of a vocabulary built here, so str tokens and id strings both work."""
    vocab: dict[Any, int] = {}
    for i, r in enumerate(rows1 + rows2):
        if not isinstance(r, Mapping):
            raise ValueError(f"compute_lexical_matching_score: every item must be a dict, got {type(r).__name__} at {i}")
        for k in r:
            vocab.setdefault(k, len(vocab))
    n = max(1, len(vocab))
    a = SparseVectors.from_dicts([{vocab[k]: float(v) for k, v in r.items()} for r in rows1], vocab_size=n)
    b = SparseVectors.from_dicts([{vocab[k]: float(v) for k, v in r.items()} for r in rows2], vocab_size=n)
    return sparse_dot(a, b, mode="all")


def colbert_score(q_reps: Any, p_reps: Any) -> torch.Tensor:
    """FlagEmbedding's ``colbert_score``: ``sum_i max_j <q_i, p_j> / Lq`` for one query and one passage.

    Args:
        q_reps: [Lq, D] array or tensor.  p_reps: [Ld, D], same D.
    Returns:
        a 0-dim float32 tensor (FlagEmbedding returns a 0-dim tensor too).
    """
    where = "colbert_score"
    q, p = _f32(q_reps, where, "q_reps"), _f32(p_reps, where, "p_reps")
    C.check_ndim(q, 2, where, "q_reps", "[Lq, D]")
    C.check_ndim(p, 2, where, "p_reps", "[Ld, D]")
    return maxsim([q.contiguous()], [p.contiguous()], mode="all", reduce="mean")[0, 0]


# ----------------------------------------------------------------------------- PyLate
def rerank(documents_ids: Sequence[Sequence[Any]], queries_embeddings: Any, documents_embeddings: Any,
           top_k: int | None = None, device: Any = None, max_memory: int | None = None) -> list[list[dict[str, Any]]]:
    """PyLate's ``rank.rerank``: MaxSim (sum over query tokens) of each query against its own documents.

    All queries' documents are scored in one paired kernel call (per memory-budget chunk).

    Args:
        documents_ids: B lists of ids (int or str), one per query.
        queries_embeddings: B queries: a list of [Lq, D] arrays/tensors, a [B, Lq, D] array, or one [Lq, D].
        documents_embeddings: B items, each a list of [Ld, D] arrays (ragged; no padding) or a [K, Ld, D]
            array (every row counted, as PyLate does).
        top_k: keep the best k per query (PyLate returns all; None here too).
        device: where to score (default: where the embeddings are).
    Returns:
        ``[[{"id": id, "score": float}, ...], ...]``, best first per query.
    Raises:
        ValueError: lengths that do not match (PyLate silently truncates to the shortest), top_k <= 0.
    """
    where = "rerank"
    max_memory = C.check_max_memory(max_memory, where)
    if top_k is not None:
        top_k = C.check_k(top_k, where, "top_k")
    q_items = _multi_items(queries_embeddings, where, "queries_embeddings")
    if isinstance(documents_embeddings, (torch.Tensor, np.ndarray)) and documents_embeddings.ndim == 3 \
            and len(q_items) == 1:
        documents_embeddings = [documents_embeddings]
    if not (len(documents_ids) == len(q_items) == len(documents_embeddings)):
        raise ValueError(f"{where}: documents_ids, queries_embeddings and documents_embeddings must have one entry "
                         f"per query, got {len(documents_ids)}, {len(q_items)} and {len(documents_embeddings)}")
    d_items: list[torch.Tensor] = []
    groups = [0]
    for b, (ids, docs) in enumerate(zip(documents_ids, documents_embeddings)):
        items = _multi_items(docs, where, f"documents_embeddings[{b}]") if len(docs) else []
        if len(items) != len(ids):
            raise ValueError(f"{where}: documents_embeddings[{b}] must have one embedding per id "
                             f"({len(ids)}), got {len(items)}")
        d_items += items
        groups.append(groups[-1] + len(items))
    if not d_items:
        return [[] for _ in documents_ids]
    first = q_items[0]
    for name, items in (("queries_embeddings", q_items), ("documents_embeddings", d_items)):
        for i, t in enumerate(items):
            if t.dim() != 2 or t.shape[1] != first.shape[1] or t.dtype != first.dtype:
                raise ValueError(f"{where}: {name} item {i} must be [L, {first.shape[1]}] {first.dtype} like "
                                 f"queries_embeddings[0], got {tuple(t.shape)} {t.dtype}")
    q = MultiVectors.from_list(q_items)  # queries are small; documents are the bulk
    target = q.device if device is None else torch.device(device)
    if reads_in_place(d_items, target):
        # one paired call over every query's candidates; the list is read in place, never packed (its items
        # were checked above, as MultiVectorList's constructor would: handed over as they are, not checked again)
        docs = MultiVectorList._trusted([t if t.is_contiguous() else t.contiguous() for t in d_items], where,
                                        "documents_embeddings", groups)
        scores = maxsim(q, docs, mode="pairs", groups=groups)
    else:
        scores = _rerank_packed(q.to(target), d_items, groups, target, max_memory)
    out = []
    for b, ids in enumerate(documents_ids):
        s = scores[groups[b]:groups[b + 1]]
        vals, idx = torch.sort(s, descending=True, stable=True)
        k = len(ids) if top_k is None else min(top_k, len(ids))
        out.append([{"id": ids[i], "score": v} for i, v in zip(idx[:k].tolist(), vals[:k].tolist())])
    return out


def _rerank_packed(q: MultiVectors, d_items: list[torch.Tensor], groups: list[int], device: torch.device,
                   max_memory: int | None) -> torch.Tensor:
    """Score on another device: pack a few queries' candidates at a time, move them, one paired call per chunk.

    A packed chunk of <= _PACK_BYTES lets the allocator reuse host memory instead of faulting in fresh pages for
    one large buffer on every call (packing 164 MB of lists went from 64 ms to 9 ms this way).
    """
    scores = torch.empty(groups[-1], dtype=torch.float32)
    for b0, b1 in greedy_chunks(lambda b: _nbytes(d_items[groups[b]:groups[b + 1]]), len(q), _PACK_BYTES):
        d = MultiVectors.from_list(d_items[groups[b0]:groups[b1]]).to(device)
        g = [x - groups[b0] for x in groups[b0:b1 + 1]]
        scores[groups[b0]:groups[b1]] = score_embeddings(q.slice(b0, b1), d, groups=g, reduce="sum",
                                                         max_memory=max_memory).cpu()
    return scores


_PACK_BYTES = 16 << 20  # measured: 16 MiB chunks pack fastest here (24 MiB was 2x slower: fresh pages again)


def _nbytes(items: Sequence[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in items)


def _multi_items(x: Any, where: str, arg: str) -> list[torch.Tensor]:
    """[N, L, D] array / list of [L_i, D] (arrays, tensors, nested lists) / one [L, D] -> list of [L_i, D]."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        t = _f32(x, where, arg)
        if t.dim() == 2:
            return [t]
        C.check_ndim(t, 3, where, arg, "[N, L, D] or a list of [L_i, D]")
        return list(t.unbind(0))
    if isinstance(x, (list, tuple)):
        items = [_f32(e, where, f"{arg}[{i}]") for i, e in enumerate(x)]
        for i, t in enumerate(items):
            if t.dim() != 2:
                raise ValueError(f"{where}: {arg}[{i}] must have shape [L, D], got {tuple(t.shape)}")
        return items
    raise TypeError(f"{where}: {arg} must be a list of [L, D] arrays or an [N, L, D] array, got {type(x).__name__}")


# ----------------------------------------------------------------------------- sentence-transformers
_FNS = ("maxsim", "meanmaxsim", "dot", "cosine")


def _multi_form(x: Any, mask: Any) -> bool | None:
    """Whether ``x`` is multi-vector input (a token set per text): True, False (one vector per text, or sparse),
    or None (an empty list says nothing)."""
    if mask is not None or isinstance(x, MultiVectors):
        return True
    if isinstance(x, SparseVectors) or _dicts(x):
        return False
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return x.ndim == 3
    if isinstance(x, (list, tuple)):
        if not x:
            return None
        first = x[0]
        if isinstance(first, (torch.Tensor, np.ndarray)):
            return first.ndim == 2
        # nested lists: [[x, ...], ...] is one vector per text, [[[x, ...], ...], ...] a token set per text
        return isinstance(first, (list, tuple)) and bool(first) and isinstance(first[0], (list, tuple))
    return None


def _pick_fn(fn: str | None, a: Any, b: Any, a_mask: Any, b_mask: Any, where: str) -> str:
    """fn as given, or from the inputs' shapes: a token set per text (an [N, L, D] batch, a list of [L, D], a
    MultiVectors, or any mask) on either side -> "maxsim" (a 2-D side is then one token set); otherwise one
    vector per text ([N, D] or [D]) -> "cosine", sentence-transformers' default, or "dot" for sparse inputs."""
    if fn is not None:
        if fn not in _FNS:
            raise ValueError(f"{where}: fn must be one of {_FNS} (or None: chosen from the shapes), got {fn!r}")
        return fn
    ma, mb = _multi_form(a, a_mask), _multi_form(b, b_mask)
    if ma or mb or (ma is None and mb is None):
        return "maxsim"
    return "dot" if any(_sparse_form(x) for x in (a, b)) else "cosine"


def _dicts(x: Any) -> bool:
    """A list of {term: weight} dicts (FlagEmbedding's lexical weights): sparse rows."""
    return isinstance(x, (list, tuple)) and bool(x) and isinstance(x[0], Mapping)


def _sparse_form(x: Any) -> bool:
    return isinstance(x, SparseVectors) or _dicts(x) or (isinstance(x, torch.Tensor) and x.layout != torch.strided)


def _multi_side(x: Any, mask: Any, where: str, arg: str) -> MultiVectors:
    """sentence-transformers' multi-vector inputs: [N, L, D] (+ mask [N, L]), a list of [L_i, D] (+ per-item
    masks), or a single [L, D] (+ mask [L]) scored as a batch of one."""
    if isinstance(x, MultiVectors):
        if mask is not None:
            raise ValueError(f"{where}: {arg}_mask must be None for a MultiVectors input (it holds no padding)")
        return x
    if isinstance(mask, (list, tuple)):
        mask = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(m) for m in mask], batch_first=True)
    if mask is not None:
        mask = torch.as_tensor(mask) != 0
    if isinstance(x, (torch.Tensor, np.ndarray)):
        t = _f32(x, where, arg)
        if t.dim() == 2:
            t = t.unsqueeze(0)
            mask = None if mask is None else mask.reshape(1, -1)
        C.check_ndim(t, 3, where, arg, "[N, L, D], a list of [L_i, D] or one [L, D]")
        return MultiVectors.from_padded(t, mask=None if mask is None else mask.to(t.device))
    items = _multi_items(x, where, arg)
    if mask is not None:
        if mask.dim() == 1:
            mask = mask.reshape(1, -1)
        items = [t[mask[i, : t.shape[0]].to(t.device)] for i, t in enumerate(items)]
    return MultiVectors.from_list(items)


def _dense_side(x: Any, where: str, arg: str) -> Any:
    if _sparse_form(x):
        return SparseVectors.coerce(x, where, arg)
    if isinstance(x, (list, tuple)) and not x:
        return torch.zeros(0, 0)
    t = _f32(x, where, arg)
    if t.dim() == 1:
        t = t.unsqueeze(0)
    C.check_ndim(t, 2, where, arg, "[N, D] (or one [D])")
    return t


def _dense_scores(a: Any, b: Any, fn: str, mode: str, where: str) -> torch.Tensor:
    a, b = _dense_side(a, where, "a"), _dense_side(b, where, "b")
    na, nb = (len(x) if isinstance(x, SparseVectors) else x.shape[0] for x in (a, b))
    if na == 0 or nb == 0:  # an empty side (an empty list has no D to match): an empty result
        return torch.zeros((na, nb) if mode == "all" else (0,), dtype=torch.float32)
    if isinstance(a, SparseVectors) or isinstance(b, SparseVectors):
        if fn != "dot" or not (isinstance(a, SparseVectors) and isinstance(b, SparseVectors)):
            raise TypeError(f"{where}: sparse inputs must both be sparse and use fn='dot', got fn={fn!r}")
        return sparse_dot(a, b, mode=mode)
    if fn == "cosine":
        a = torch.nn.functional.normalize(a, p=2, dim=1)
        b = torch.nn.functional.normalize(b, p=2, dim=1)
    return dense_dot(a.contiguous(), b.contiguous(), mode=mode)


def similarity(a: Any, b: Any, fn: str | None = None, *, a_mask: Any = None, b_mask: Any = None) -> torch.Tensor:
    """All-pairs similarity in sentence-transformers' conventions: ``res[i][j] = fn(a[i], b[j])``.

    Args:
        a, b: for "maxsim"/"meanmaxsim" (multi-vector): [N, L, D] padded (with ``a_mask``/``b_mask`` [N, L],
            bool or 0/1), a list of [L_i, D], one [L, D], or a MultiVectors. For "dot"/"cosine" (dense):
            [N, D] or one [D]; "dot" also takes sparse rows: SparseVectors, torch sparse tensors, or lists of
            {term: weight} dicts (their inferred vocab sizes agree on the larger, as in ``sparse_dot``).
        fn: "maxsim" (``sum_i max_j``, util.maxsim), "meanmaxsim" (divided by the real query-token count,
            util.mean_maxsim), "dot" (util.dot_score), "cosine" (util.cos_sim). None (default): from the
            shapes: a token set per text on either side ([N, L, D], a list of [L_i, D], a MultiVectors, a mask)
            -> "maxsim", where a 2-D other side is one token set; one vector per text on both sides ([N, D] or
            [D]) -> "cosine" (``SentenceTransformer.similarity``'s default), so ``similarity([3, 384], [20, 384])``
            is [3, 20]; sparse on both sides -> "dot". Pass fn to score 2-D inputs as token sets.
    Returns:
        [len(a), len(b)] float32 tensor (an empty side gives an empty matrix).
    """
    where = "similarity"
    fn = _pick_fn(fn, a, b, a_mask, b_mask, where)
    if fn in ("dot", "cosine"):
        return _dense_scores(a, b, fn, "all", where)
    qa, qb = _multi_side(a, a_mask, where, "a"), _multi_side(b, b_mask, where, "b")
    if len(qa) == 0 or len(qb) == 0:
        return torch.zeros(len(qa), len(qb), dtype=torch.float32, device=qb.device)
    return maxsim(qa, qb, mode="all", reduce="mean" if fn == "meanmaxsim" else "sum")


def similarity_pairwise(a: Any, b: Any, fn: str | None = None, *, a_mask: Any = None, b_mask: Any = None
                        ) -> torch.Tensor:
    """Pairwise similarity ``res[i] = fn(a[i], b[i])`` (util.maxsim_pairwise, pairwise_dot_score, ...).

    Args: as ``similarity`` (fn=None picks the function from the shapes the same way); a and b hold the same
        number of items.
    Returns:
        [N] float32 tensor.
    Raises:
        ValueError: len(a) != len(b).
    """
    where = "similarity_pairwise"
    fn = _pick_fn(fn, a, b, a_mask, b_mask, where)
    if fn in ("dot", "cosine"):
        da, db = _dense_side(a, where, "a"), _dense_side(b, where, "b")
        na, nb = (len(da) if isinstance(da, SparseVectors) else da.shape[0]), (len(db) if isinstance(db, SparseVectors) else db.shape[0])
        if na != nb:
            raise ValueError(f"{where}: b must hold as many items as a ({na}), got {nb}")
        return _dense_scores(da, db, fn, "pairs", where)
    qa, qb = _multi_side(a, a_mask, where, "a"), _multi_side(b, b_mask, where, "b")
    if len(qa) != len(qb):
        raise ValueError(f"{where}: b must hold as many items as a ({len(qa)}), got {len(qb)}")
    if len(qa) == 0:
        return torch.zeros(0, dtype=torch.float32, device=qb.device)
    return maxsim(qa, qb, mode="pairs", reduce="mean" if fn == "meanmaxsim" else "sum")
