"""First-stage multi-vector retrieval: MUVERA FDE candidates, then exact MaxSim rescoring.

``retrieve(queries, corpus, k)`` = ``FDEIndex(FDE(D), corpus).search(queries, k)``:

1. Documents are encoded once into FDEs ``[N, F]`` (``FDEIndex`` keeps them, so repeated searches and
   evaluations do not re-encode); queries are encoded per search ``[B, F]``.
2. Candidates: the top-``candidates`` documents by FDE dot product, computed over blocks of documents
   with ``fusedscore.dense_dot`` so at most ``max_memory`` bytes of scores exist at once (never the
   whole ``[B, N]`` when it exceeds the budget), each block's best merged into the running best.
3. Rerank (``rerank=True``): the exact MaxSim of every (query, candidate) pair in one
   ``fusedscore.maxsim(queries, corpus, mode="pairs", groups=..., doc_index=candidates)`` call, which reads
   each candidate's tokens in place in the corpus (no gathered copy), then the top-``k``. Queries are
   chunked only when the per-pair scores and indices exceed ``max_memory``.
"""

from __future__ import annotations

from typing import Any

import torch

from . import _check as C
from .containers import MultiVectors
from ._budget import resolve
from .muvera import FDE, coerce_padded
from .ops import blocked_topk, maxsim  # blocked_topk: with the other top-k ops, exported here too

__all__ = ["FDEIndex", "retrieve", "blocked_topk"]


class FDEIndex:
    """A corpus of multi-vector documents with their FDEs, searchable by FDE candidates + exact MaxSim.

    Args:
        fde: the ``FDE`` (its ``dim`` must match the corpus).
        corpus: N documents: a MultiVectors, a list of [L_i, D] arrays, or a [N, L, D] tensor (every row a
            token unless ``mask``/``lengths`` say which are padding). Kept by reference for rerank (a padded
            tensor is unpadded once, into a packed copy).
        mask: [N, L] bool (or 0/1), True = real token; only with a [N, L, D] ``corpus``.
        lengths: [N] integer, the first lengths[i] rows of document i are real; only with a [N, L, D] ``corpus``.
        show_progress: a tqdm bar while the corpus is encoded (off by default in library calls).
    Attributes:
        doc_fde: [N, fde.output_dim] float32 on the corpus device.
    Raises:
        TypeError: fde not an FDE, bad corpus/mask type.  ValueError: D mismatch, bad mask/lengths shape.
    """

    def __init__(self, fde: FDE, corpus: Any, *, mask: Any = None, lengths: Any = None, show_progress: bool = False):
        if not isinstance(fde, FDE):
            raise TypeError(f"FDEIndex: fde must be a fusedscore.muvera.FDE, got {type(fde).__name__}")
        self.fde = fde
        self.corpus = coerce_padded(corpus, mask, lengths, "FDEIndex", "corpus")
        self.doc_fde = fde.encode_documents(self.corpus, show_progress=show_progress)

    def __len__(self) -> int:
        return len(self.corpus)

    def __repr__(self) -> str:
        return f"FDEIndex(n={len(self)}, {self.fde!r})"

    def candidates_from_fde(self, query_fde: torch.Tensor, n: int, *, max_memory: int | None = None
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """FDE top-``n``: (fde scores [B, min(n, N)] float32, indices [B, min(n, N)] int64), best first. FDEs
        encode finite containers, so they are not scanned again per search (a NaN score would still raise)."""
        return blocked_topk(query_fde, self.doc_fde, n, max_memory=max_memory, check_finite=False)

    def search(self, queries: Any, k: int = 10, *, mask: Any = None, lengths: Any = None, candidates: int = 100,
               rerank: bool = True, reduce: str = "sum", max_memory: int | None = None, backend: str | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` documents per query.

        Args:
            queries: B queries: a MultiVectors, a list of [Lq_b, D] arrays or a [B, Lq, D] tensor, dtype and
                device of the corpus.
            k: results per query (clipped to N).
            mask: [B, Lq] bool (or 0/1), True = real token; only with a [B, Lq, D] ``queries``.
            lengths: [B] integer query lengths; only with a [B, Lq, D] ``queries``.
            candidates: FDE candidates per query that are rescored exactly; raised to ``k`` if smaller.
            rerank: rescore candidates with exact MaxSim (True) or return FDE scores (False).
            reduce: "sum" (ColBERT) or "mean" (BGE-M3) for the exact MaxSim.
            max_memory: bytes budget for a block of FDE scores and for the rerank's per-pair scores and
                indices (20 bytes a pair; candidate tokens are read in place, never gathered).
            backend: force the MaxSim backend ("native", "triton", "reference").
        Returns:
            (scores [B, min(k, N)] float32, indices [B, min(k, N)] int64 into the corpus), best first.
            With ``rerank`` the scores are exact MaxSim, else FDE dot products.
        Raises:
            ValueError: bad k/candidates, dim mismatch.  TypeError: dtype mismatch.
        """
        where = "retrieve"
        budget = resolve(max_memory, where, self.doc_fde.device)
        q = coerce_padded(queries, mask, lengths, where, "queries")
        k = C.check_k(k, where)
        candidates = C.check_k(candidates, where, "candidates")
        C.check_reduce(reduce, where)
        if q.num_tokens and self.corpus.num_tokens and q.dim != self.corpus.dim:
            raise ValueError(f"{where}: queries must have shape [T, D] with D={self.corpus.dim} to match corpus, got "
                             f"{tuple(q.values.shape)}")
        if q.dtype != self.corpus.dtype:
            raise TypeError(f"{where}: queries must have the corpus dtype ({C.dtype_name(self.corpus.dtype)}), got "
                            f"{C.dtype_name(q.dtype)}")
        n = len(self)
        kk = min(k, n)
        qf = self.fde.encode_queries(q)
        if n == 0:  # an empty corpus: [B, 0] results (blocked_topk clips k to N itself)
            return self.candidates_from_fde(qf, k, max_memory=budget)
        if not rerank:
            return self.candidates_from_fde(qf, kk, max_memory=budget)
        nc = min(max(candidates, k), n)
        _, cand = self.candidates_from_fde(qf, nc, max_memory=budget)
        return self._rerank(q, cand, kk, reduce, budget, backend)

    def _rerank(self, q: MultiVectors, cand: torch.Tensor, k: int, reduce: str, budget: int,
                backend: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact MaxSim of each query's candidates ``cand [B, K]``: one pairs call per query chunk, reading the
        candidates in the corpus by ``doc_index`` (no copy of their tokens)."""
        nq, nc = cand.shape
        dev = cand.device
        out_v = torch.empty(nq, k, dtype=torch.float32, device=dev)
        out_i = torch.empty(nq, k, dtype=torch.int64, device=dev)
        if nq == 0 or nc == 0:
            return out_v, out_i
        # per pair: its fp32 score, doc_index and query_index entries (int64)
        step = max(1, budget // (nc * 20))
        for s in range(0, nq, step):
            e = min(nq, s + step)
            ci = cand[s:e]
            groups = torch.arange(0, (e - s) * nc + 1, nc, dtype=torch.int64)
            sc = maxsim(q.slice(s, e), self.corpus, mode="pairs", groups=groups, doc_index=ci.reshape(-1),
                        reduce=reduce, backend=backend).reshape(e - s, nc)
            v, pos = torch.topk(sc, k, dim=1)
            out_v[s:e] = v
            out_i[s:e] = torch.gather(ci, 1, pos)
        return out_v, out_i


def retrieve(queries: Any, corpus: Any, k: int = 10, *, q_mask: Any = None, q_lengths: Any = None,
             d_mask: Any = None, d_lengths: Any = None, candidates: int = 100, rerank: bool = True,
             fde: FDE | None = None, reduce: str = "sum", max_memory: int | None = None,
             backend: str | None = None, show_progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-vector top-k over a corpus: MUVERA FDE candidates, then exact MaxSim rerank.

    Args:
        queries: B queries, [Lq_b, D] each (MultiVectors, list of arrays, or a [B, Lq, D] tensor), fp32|fp16|bf16.
        corpus: N documents, [Ld_n, D] each (same forms; [N, Ld, D]), same dtype and device.
        q_mask, q_lengths: padding of a [B, Lq, D] ``queries`` ([B, Lq] bool, True = real token, or [B]
            lengths); without either every row of a padded tensor is a token.
        d_mask, d_lengths: the same for a [N, Ld, D] ``corpus``.
        k: results per query.  candidates: FDE candidates rescored exactly per query (>= k).
        rerank: False returns the FDE top-k with FDE scores.
        fde: the encoder; default ``FDE(D)`` (k_sim=4, dim_proj=16, r_reps=20, seed=0).
        reduce: "sum" or "mean" MaxSim reduction.  max_memory: bytes budget (see ``FDEIndex.search``).
        show_progress: a tqdm bar while the corpus is encoded.
    Returns:
        (scores [B, min(k, N)] float32, indices [B, min(k, N)] int64), best first.

    Encodes the corpus on every call: keep an ``FDEIndex`` to search one corpus repeatedly.
    """
    C.check_max_memory(max_memory, "retrieve")  # before the corpus is encoded
    c = coerce_padded(corpus, d_mask, d_lengths, "retrieve", "corpus")
    q = coerce_padded(queries, q_mask, q_lengths, "retrieve", "queries")
    if fde is None:
        dim = c.dim if c.num_tokens or not q.num_tokens else q.dim
        fde = FDE(dim)
    return FDEIndex(fde, c, show_progress=show_progress).search(
        q, k, candidates=candidates, rerank=rerank, reduce=reduce, max_memory=max_memory, backend=backend)
