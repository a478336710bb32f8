"""MUVERA fixed-dimensional encodings (FDEs) of multi-vector sets (Dhulipala et al., 2024).

A multi-vector set (a query's or a document's token embeddings) becomes one dense vector whose dot
product approximates the MaxSim (Chamfer) similarity, so a plain dense top-k over the corpus finds
MaxSim candidates, which are then rescored exactly (``fusedscore.retrieve``).

Per repetition ``r`` (of ``r_reps``), independently and from one seed shared by queries and documents:

- SimHash: ``k_sim`` Gaussian hyperplanes ``g_1..g_k``; a token ``x`` falls in partition
  ``p(x) = sum_i [<g_i, x> > 0] << i``, one of ``B = 2**k_sim`` partitions.
- AMS sketch: a random +-1 matrix ``S [D, dim_proj]`` scaled by ``1/sqrt(dim_proj)``; ``psi(x) = x @ S``.
  ``dim_proj=None`` means no projection (``psi(x) = x``, ``dim_proj = D``).
- Query block ``[B, dim_proj]``: the SUM of ``psi(q)`` over the query tokens in each partition.
- Document block: the MEAN of ``psi(d)`` over the document tokens in each partition; with ``fill_empty``
  an empty partition ``k`` takes ``psi(d*)`` of the document token ``d*`` whose SimHash code is nearest
  to ``k`` in Hamming distance (the first such token on ties), as in the paper.

The FDE is the concatenation over repetitions: ``[r_reps, B, dim_proj]`` flattened, so its length is
``r_reps * 2**k_sim * dim_proj``. Encodings are float32 whatever the input dtype (the projections run
in float32). The optional final projection of the paper is not implemented.

Inputs are MultiVectors, lists of [L_i, D] arrays, or padded [N, L, D] tensors with ``mask=`` or
``lengths=`` (``MultiVectors.from_padded``); a [N, L, D] tensor without either has no padding: every
row, zeros included, is encoded as a token.

Defaults (``k_sim=4, dim_proj=16, r_reps=20``: 5,120 dimensions) and the recall they reach:
``fusedscore.bench.recall.recall_table`` on the clustered synthetic set of ``clustered_data`` (200
documents of 20-60 tokens, D=32, 30 clusters, 50 queries of 8-16 noisy document tokens): Recall@10 of
the FDE top-100 candidates against the exact MaxSim top-10 is 0.998, and of the FDE top-20 0.808
(random candidates: 0.50 and 0.10; measured on CPU, seed 0; tests/test_muvera.py asserts a margin below).
On real data (SciFact, 300 queries over a 2,207-document subset, all-MiniLM-L6-v2 token vectors, D=384)
the defaults reach 0.898 with 100 candidates and 0.958 with 200 (fill_empty=False: 0.905 / 0.963 there).
``fusedscore bench --cases muvera`` runs the sweep over other settings.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import torch

from . import _check as C
from ._budget import default_max_memory
from .containers import MultiVectors

__all__ = ["FDE", "clustered_data"]



class FDE:
    """Fixed-dimensional encoder of multi-vector sets (MUVERA).

    Args:
        dim: D, the token embedding dimension.
        k_sim: SimHash hyperplanes per repetition; 2**k_sim partitions (0 <= k_sim <= 12).
        dim_proj: AMS sketch width per partition, or None for no projection (uses D).
        r_reps: independent repetitions, concatenated.
        seed: seeds the hyperplanes and projections (queries and documents must use one FDE).
        fill_empty: documents only: fill empty partitions from the Hamming-nearest token.
        max_memory: bytes of per-token working set an encoding chunk may hold (``fusedscore._budget``; None: the
            default of the device the tokens are on).
    Attributes:
        hyperplanes: [D, r_reps, k_sim] float32 (CPU master copy; moved per device on use).
        projection: [D, r_reps, dim_proj] float32.
        output_dim: ``r_reps * 2**k_sim * dim_proj``.
    Raises:
        ValueError: a parameter out of range.  TypeError: a non-int parameter.
    """

    def __init__(self, dim: int, k_sim: int = 4, dim_proj: int | None = 16, r_reps: int = 20, seed: int = 0,
                 fill_empty: bool = True, max_memory: int | None = None):
        where = "FDE"
        self.dim = C.check_k(dim, where, "dim")
        if isinstance(k_sim, bool) or not isinstance(k_sim, int):
            raise TypeError(f"{where}: k_sim must be an int, got {type(k_sim).__name__}")
        if not 0 <= k_sim <= 12:
            raise ValueError(f"{where}: k_sim must be in [0, 12] (2**k_sim partitions), got {k_sim}")
        self.k_sim = k_sim
        self.dim_proj = self.dim if dim_proj is None else C.check_k(dim_proj, where, "dim_proj")
        self.r_reps = C.check_k(r_reps, where, "r_reps")
        self.seed = int(seed)
        self.fill_empty = bool(fill_empty)
        self.max_memory = C.check_max_memory(max_memory, where)
        g = torch.Generator().manual_seed(self.seed)
        self.hyperplanes = torch.randn(self.dim, self.r_reps, self.k_sim, generator=g)
        if dim_proj is None:
            self.projection = torch.eye(self.dim).unsqueeze(1).expand(self.dim, self.r_reps, self.dim).contiguous()
        else:
            signs = torch.randint(0, 2, (self.dim, self.r_reps, self.dim_proj), generator=g).float() * 2 - 1
            self.projection = signs / math.sqrt(self.dim_proj)
        self._cache: dict[Any, tuple[torch.Tensor, ...]] = {}

    @property
    def num_partitions(self) -> int:
        return 1 << self.k_sim

    @property
    def output_dim(self) -> int:
        return self.r_reps * self.num_partitions * self.dim_proj

    def __repr__(self) -> str:
        return (f"FDE(dim={self.dim}, k_sim={self.k_sim}, dim_proj={self.dim_proj}, r_reps={self.r_reps}, "
                f"seed={self.seed}, fill_empty={self.fill_empty}, output_dim={self.output_dim})")

    # ------------------------------------------------------------------ parameters per device
    def _params(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(hyperplanes [D, R*k], projection [D, R*dp], hamming table [B, B] int64) on ``device``.

        Cached by device and by the identity of the master tensors, so tests may replace them."""
        key = (str(device), id(self.hyperplanes), id(self.projection))
        if key not in self._cache:
            b = self.num_partitions
            ar = torch.arange(b)
            x = ar[:, None] ^ ar[None, :]
            ham = torch.zeros(b, b, dtype=torch.int64)
            for i in range(self.k_sim):
                ham += (x >> i) & 1
            h = self.hyperplanes.reshape(self.dim, -1).float().to(device)
            p = self.projection.reshape(self.dim, -1).float().to(device)
            self._cache = {key: (h, p, ham.to(device))}
        return self._cache[key]

    def partitions(self, values: torch.Tensor) -> torch.Tensor:
        """SimHash partition of each token in each repetition.

        Args:
            values: [T, D] float tokens.
        Returns:
            [T, r_reps] int64 in [0, 2**k_sim): bit i is set when <hyperplane i, x> > 0.
        """
        h, _, _ = self._params(values.device)
        t = values.shape[0]
        if self.k_sim == 0:
            return torch.zeros(t, self.r_reps, dtype=torch.int64, device=values.device)
        bits = (values.float() @ h).reshape(t, self.r_reps, self.k_sim) > 0
        weights = torch.tensor([1 << i for i in range(self.k_sim)], dtype=torch.int64, device=values.device)
        return (bits.to(torch.int64) * weights).sum(-1)

    # ------------------------------------------------------------------ encoding
    def encode_queries(self, mv: Any, *, mask: Any = None, lengths: Any = None,
                       show_progress: bool = False) -> torch.Tensor:
        """Query FDEs: per repetition and partition, the sum of the projected tokens.

        Args:
            mv: N queries: a MultiVectors, a list of [L_i, D] arrays, or a [N, L, D] tensor, fp32|fp16|bf16,
                any device. A [N, L, D] tensor without ``mask``/``lengths`` has no padding: every row is a token.
            mask: [N, L] bool (or 0/1), True = real token; only with a [N, L, D] ``mv``.
            lengths: [N] integer, the first lengths[i] rows of query i are real; only with a [N, L, D] ``mv``.
            show_progress: a tqdm bar over the queries (off by default in library calls).
        Returns:
            [N, output_dim] float32 on the input's device. An empty query encodes to zeros.
        Raises:
            ValueError: D differs from the FDE's, bad mask/lengths shape.  TypeError: bad type or dtype.
        """
        where = "FDE.encode_queries"
        return self._encode(coerce_padded(mv, mask, lengths, where, "mv"), False, where, show_progress)

    def encode_documents(self, mv: Any, *, mask: Any = None, lengths: Any = None,
                         show_progress: bool = False) -> torch.Tensor:
        """Document FDEs: per repetition and partition, the mean of the projected tokens; empty partitions
        filled from the Hamming-nearest token when ``fill_empty``.

        Args:
            mv: N documents, in the forms ``encode_queries`` takes (a [N, L, D] tensor without ``mask``/``lengths``
                has no padding: every row is a token).
            mask: [N, L] bool (or 0/1), True = real token; only with a [N, L, D] ``mv``.
            lengths: [N] integer, the first lengths[i] rows of document i are real; only with a [N, L, D] ``mv``.
            show_progress: a tqdm bar over the documents (off by default in library calls).
        Returns:
            [N, output_dim] float32 on the input's device. An empty document encodes to zeros.
        Raises:
            ValueError: D differs from the FDE's, bad mask/lengths shape.  TypeError: bad type or dtype.
        """
        where = "FDE.encode_documents"
        return self._encode(coerce_padded(mv, mask, lengths, where, "mv"), True, where, show_progress)

    def _chunks(self, offsets: torch.Tensor) -> Iterable[tuple[int, int]]:
        """Item ranges [s, e) whose tokens fit the working-set budget (one item at least): ``_budget``'s greedy rule,
        computed over the token offsets with a search instead of a loop over items."""
        b, dp = self.num_partitions, self.dim_proj
        per_token = self.r_reps * (4 * dp + 8 * 3 + 8 * 3 * b) + 4 * self.dim  # proj, codes/flat, hamming keys
        budget = self.max_memory if self.max_memory is not None else default_max_memory(offsets.device)
        max_tok = max(1, budget // per_token)
        off = offsets.cpu()
        n = off.numel() - 1
        s = 0
        while s < n:
            e = int(torch.searchsorted(off, off[s] + max_tok, right=True)) - 1
            e = min(n, max(e, s + 1))
            yield s, e
            s = e

    def _encode(self, mv: MultiVectors, is_doc: bool, where: str, show_progress: bool = False) -> torch.Tensor:
        if mv.num_tokens and mv.dim != self.dim:
            raise ValueError(f"{where}: mv must have shape [T, D] with D={self.dim} (the FDE's dim), got "
                             f"{tuple(mv.values.shape)}")
        n, r, b, dp = len(mv), self.r_reps, self.num_partitions, self.dim_proj
        out = torch.zeros(n, r * b, dp, dtype=torch.float32, device=mv.device)
        if n == 0 or mv.num_tokens == 0:
            return out.reshape(n, self.output_dim)
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=where, unit="doc" if is_doc else "query", leave=False)
        try:
            for s, e in self._chunks(mv.offsets):
                self._encode_chunk(mv, s, e, out[s:e].reshape(-1, dp), is_doc)
                if bar is not None:
                    bar.update(e - s)
        finally:
            if bar is not None:
                bar.close()
        return out.reshape(n, self.output_dim)

    def _encode_chunk(self, mv: MultiVectors, s: int, e: int, blk: torch.Tensor, is_doc: bool) -> None:
        """Encode items [s, e) into ``blk`` [(e - s) * r_reps * B, dim_proj] (a view of the output, zeros)."""
        r, b, dp = self.r_reps, self.num_partitions, self.dim_proj
        dev = mv.device
        t0, t1 = int(mv.offsets[s]), int(mv.offsets[e])
        if t1 == t0:
            return
        _, p, ham_table = self._params(dev)
        x = mv.values[t0:t1].float()
        tc = t1 - t0
        item = torch.repeat_interleave(torch.arange(e - s, device=dev), mv.lengths[s:e])  # [tc]
        codes = self.partitions(x)  # [tc, r]
        proj = (x @ p).reshape(tc, r, dp)
        flat = (item[:, None] * r + torch.arange(r, device=dev)) * b + codes  # [tc, r] index into blk's rows
        blk.index_add_(0, flat.reshape(-1), proj.reshape(-1, dp))
        if not is_doc:
            return
        cnt = torch.bincount(flat.reshape(-1), minlength=blk.shape[0])
        full = cnt > 0
        blk.div_(cnt.clamp(min=1).to(blk.dtype)[:, None])
        if not self.fill_empty or b == 1:
            return
        # nearest token per (item, rep, partition): minimise hamming * tc + token position, so ties go
        # to the earliest token of the document
        key = ham_table[codes] * tc + torch.arange(tc, device=dev)[:, None, None]  # [tc, r, b]
        tgt = flat[:, :, None] - codes[:, :, None] + torch.arange(b, device=dev)  # [tc, r, b]
        big = torch.iinfo(torch.int64).max
        best = torch.full((blk.shape[0],), big, dtype=torch.int64, device=dev)
        best.scatter_reduce_(0, tgt.reshape(-1), key.reshape(-1), reduce="amin", include_self=True)
        empty = (~full) & (best != big)  # documents with no tokens stay zero
        slots = empty.nonzero().squeeze(1)
        tok = best[slots] % tc
        blk[slots] = proj[tok, (slots // b) % r]


def coerce_padded(x: Any, mask: Any, lengths: Any, where: str, arg: str) -> MultiVectors:
    """``MultiVectors.coerce(x)``, or with ``mask``/``lengths`` the unpadded rows of a [N, L, D] batch
    (``MultiVectors.from_padded``): without them a padded tensor's padding rows would be encoded as tokens."""
    if mask is None and lengths is None:
        return MultiVectors.coerce(x, where, arg)
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{where}: {arg} must be a [N, L, D] tensor when mask or lengths is given, got "
                        f"{type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{where}: {arg} must have shape [N, L, D] when mask or lengths is given, got "
                         f"{tuple(x.shape)}")
    try:
        return MultiVectors.from_padded(x, mask=mask, lengths=lengths)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {arg}: {e}") from None


# ---------------------------------------------------------------------------- synthetic data for recall checks
def clustered_data(n_docs: int = 200, n_queries: int = 50, dim: int = 32, n_clusters: int = 30,
                   doc_len: tuple[int, int] = (20, 60), query_len: tuple[int, int] = (8, 16),
                   topics: tuple[int, int] = (2, 5), noise: float = 0.35, query_noise: float = 0.25,
                   seed: int = 0) -> tuple[MultiVectors, MultiVectors]:
    """Synthetic late-interaction data with cluster structure, for recall checks.

    Each document draws its tokens (L ~ U[doc_len]) around a few (``topics``) of ``n_clusters`` unit
    cluster centres with Gaussian noise; each query copies L ~ U[query_len] tokens of a random document
    and perturbs them. All tokens are L2-normalised (as ColBERT's).

    Returns:
        (queries, docs) as float32 MultiVectors on CPU.
    """
    g = torch.Generator().manual_seed(seed)

    def _unit(x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)

    centres = _unit(torch.randn(n_clusters, dim, generator=g))
    docs = []
    for _ in range(n_docs):
        L = int(torch.randint(doc_len[0], doc_len[1] + 1, (1,), generator=g))
        nt = int(torch.randint(topics[0], topics[1] + 1, (1,), generator=g))
        mine = torch.randperm(n_clusters, generator=g)[:nt]
        which = mine[torch.randint(0, len(mine), (L,), generator=g)]  # len < nt when n_clusters < nt
        docs.append(_unit(centres[which] + noise * torch.randn(L, dim, generator=g) / math.sqrt(dim) * 3))
    queries = []
    for _ in range(n_queries):
        src = docs[int(torch.randint(0, n_docs, (1,), generator=g))]
        L = min(src.shape[0], int(torch.randint(query_len[0], query_len[1] + 1, (1,), generator=g)))
        pick = torch.randperm(src.shape[0], generator=g)[:L]
        queries.append(_unit(src[pick] + query_noise * torch.randn(L, dim, generator=g) / math.sqrt(dim) * 3))
    return MultiVectors.from_list(queries), MultiVectors.from_list(docs)
