"""Benchmark workloads as data, and the seeded synthetic inputs they describe.

A ``Case`` names one op on one shape: ``maxsim`` (MaxSim late interaction), ``maxsim_topk`` (all-pairs
MaxSim top-k over a corpus) or ``sparse_dot`` (learned-sparse dot products), in one mode:

- ``"all"``: every query against every document -> ``[B, N]`` (a rerank of one query is ``B = 1``).
- ``"pairs"``: each query with its own ``n_docs`` candidates -> ``[B * n_docs]``.
- ``"topk"``: the ``k`` best of ``n_docs`` documents per query.

Inputs are synthetic and fixed by ``seed``: token vectors are L2-normalised Gaussians (what ColBERT /
BGE-M3 produce), document lengths are uniform in ``ld`` (inclusive), query length is ``lq``. Sparse rows
draw term ids from a Zipf-like law over the vocabulary (so common terms overlap as in real SPLADE
output), with ``q_nnz`` / ``d_nnz`` distinct terms per row on average (uniform in [nnz/2, 3 nnz/2]) and positive
weights. No sizes live in the runner: the lists below are the whole benchmark.

A ``RecallCase`` is a quality check, not a timing: Recall@k of MUVERA FDE candidates against the exact
MaxSim top-k (``bench.recall.recall_table``) on ``muvera.clustered_data``, for several FDE settings and
candidate counts. The quick one is the data set the ``fusedscore.muvera`` docstring quotes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..containers import MultiVectors, SparseVectors

__all__ = ["Case", "RecallCase", "Inputs", "make_inputs", "default_cases", "sweep_cases", "recall_cases", "DTYPES"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Case:
    """One workload. ``n_docs`` is the corpus size ("all"/"topk") or the candidates per query ("pairs")."""

    name: str
    op: str  # "maxsim" | "maxsim_topk" | "sparse_dot"
    mode: str  # "all" | "pairs" | "topk"
    n_queries: int
    n_docs: int
    dtype: str = "fp32"
    device: str = "cpu"
    seed: int = 0
    lq: int = 32
    ld: tuple[int, int] = (64, 300)
    dim: int = 128
    vocab: int = 30522
    q_nnz: int = 25
    d_nnz: int = 150
    k: int = 10
    repeats: int = 10  # timed runs at most (fewer when one run exceeds the per-impl time budget)
    sweep: dict[str, Any] = field(default_factory=dict)  # {"axis": "doc_len"|"batch", "value": x}

    @property
    def n_pairs(self) -> int:
        return self.n_queries * self.n_docs

    def describe(self) -> str:
        if self.op == "sparse_dot":
            shape = (f"{self.n_queries} x {self.n_docs} docs, vocab {self.vocab}, nnz ~{self.q_nnz}/~{self.d_nnz}")
        else:
            lo, hi = self.ld
            ld = f"Ld {lo}" if lo == hi else f"Ld U[{lo}, {hi}]"
            per = " candidates each" if self.mode == "pairs" else " docs"
            topk = f", top-{self.k}" if self.mode == "topk" else ""
            shape = f"{self.n_queries} x {self.n_docs}{per}, Lq {self.lq}, {ld}, D {self.dim}{topk}"
        return f"{self.op} {self.mode}: {shape}, {self.dtype}, {self.device}"


@dataclass(frozen=True)
class RecallCase:
    """MUVERA recall: Recall@k of the FDE top-c of ``n_docs`` clustered documents against the exact MaxSim
    top-k, for each FDE setting (``FDE`` keyword arguments) and each candidate count c."""

    name: str
    n_docs: int
    n_queries: int
    settings: tuple[dict[str, Any], ...]
    candidates: tuple[int, ...] = (10, 20, 50, 100)
    k: int = 10
    dim: int = 32
    n_clusters: int = 30
    device: str = "cpu"
    seed: int = 0
    op: str = "muvera_recall"

    def describe(self) -> str:
        return (f"muvera recall@{self.k} of FDE top-{'/'.join(map(str, self.candidates))} candidates vs exact MaxSim, "
                f"clustered_data: {self.n_docs} docs x {self.n_queries} queries, D {self.dim}, {self.n_clusters} "
                f"clusters, {len(self.settings)} FDE settings, seed {self.seed}, {self.device}")


@dataclass
class Inputs:
    """The tensors of one case, plus lazily built views that implementations share (``cache``).

    Attributes:
        q: B queries (MultiVectors or SparseVectors).  d: N documents (all B * n_docs in "pairs").
        groups: [B+1] int64 candidate offsets ("pairs" mode), else None.
    """

    case: Case
    q: Any
    d: Any
    groups: torch.Tensor | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return len(self.d) if self.groups is not None else len(self.q) * len(self.d)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """A derived view (padded tensors, numpy lists...) built once per case and shared."""
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def head(self, max_pairs: int) -> tuple["Inputs", Callable[[torch.Tensor], torch.Tensor]]:
        """A prefix of this workload with at most ``max_pairs`` scored pairs (at least one query or doc),
        and the function slicing a full result to that prefix. Returns (self, identity) when it fits."""
        if self.n_pairs <= max_pairs:
            return self, lambda t: t
        if self.groups is not None:  # pairs: the first k queries and their candidates
            g = self.groups
            k = max(1, int((g[1:] <= max_pairs).sum()))
            n = int(g[k])
            sub = Inputs(self.case, self.q.select(torch.arange(k)), self.d.select(torch.arange(n)), g[: k + 1].clone())
            return sub, lambda t: t[:n]
        nq, nd = len(self.q), len(self.d)
        if nq > 1 and self.case.op != "sparse_dot":  # all-pairs MaxSim: the first k queries, every document
            k = max(1, max_pairs // nd)
            return Inputs(self.case, self.q.select(torch.arange(k)), self.d), lambda t: t[:k]
        # one query, or sparse (whose dense-row reference pays per document): every query, the first n docs
        n = max(1, max_pairs // nq)
        return Inputs(self.case, self.q, self.d.select(torch.arange(n))), lambda t: t[:, :n]


# ----------------------------------------------------------------------------- generators
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_multivectors(n: int, lengths: torch.Tensor, dim: int, dtype: torch.dtype, device: str,
                         g: torch.Generator, chunk_tokens: int = 1 << 22) -> MultiVectors:
    """L2-normalised Gaussian token vectors, generated in chunks (a GPU corpus can hold 10^8 tokens)."""
    off = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(lengths, 0, out=off[1:])
    total = int(off[-1])
    values = torch.empty(total, dim, dtype=dtype, device=device)
    dev_gen = g if device == "cpu" else torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
    for s in range(0, total, chunk_tokens):
        e = min(total, s + chunk_tokens)
        x = torch.randn(e - s, dim, generator=dev_gen, device=device)
        values[s:e] = torch.nn.functional.normalize(x, dim=1).to(dtype)
    # the data is finite by construction; skipping the check avoids a full-size bool temporary on GPU
    return MultiVectors(values, off.to(device), check_finite=False)


def _zipf_probs(vocab: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities by rank, rank -> term id): p(rank r) ~ 1 / (r + 10)^1.1, ids shuffled."""
    ranks = torch.arange(vocab, dtype=torch.float64)
    p = (ranks + 10.0) ** -1.1
    return (p / p.sum()).float(), torch.randperm(vocab, generator=g)


def _random_sparse(n: int, mean_nnz: int, probs: torch.Tensor, rank_to_id: torch.Tensor, vocab: int,
                   g: torch.Generator) -> SparseVectors:
    lengths = torch.randint(max(1, mean_nnz // 2), mean_nnz + mean_nnz // 2 + 1, (n,), generator=g).tolist()
    # distinct Zipf draws per row: oversample with replacement, keep first occurrences (a head term drawn twice
    # would merge, and rows would hold fewer terms than the workload says: ~129 instead of ~150 for SPLADE)
    over = 4
    draws = rank_to_id[torch.multinomial(probs, over * sum(lengths), replacement=True, generator=g)].numpy()
    rows, pos = [], 0
    for length in lengths:
        chunk = draws[pos: pos + over * length]
        pos += over * length
        _, first = np.unique(chunk, return_index=True)
        rows.append(chunk[np.sort(first)][:length])
    ids = torch.from_numpy(np.concatenate(rows)) if rows else torch.zeros(0, dtype=torch.int64)
    total = ids.numel()
    weights = (-torch.log(torch.rand(total, generator=g).clamp_min(1e-6))) * 0.5 + 0.01  # positive, skewed
    off = torch.zeros(n + 1, dtype=torch.int64)
    torch.cumsum(torch.tensor([len(r) for r in rows], dtype=torch.int64), 0, out=off[1:])
    return SparseVectors(ids.to(torch.int32), weights, off, vocab, merge="max")


def make_inputs(case: Case) -> Inputs:
    """Build the case's inputs on ``case.device`` (deterministic for a given seed)."""
    g = _gen(case.seed)
    if case.op == "sparse_dot":
        probs, rank_to_id = _zipf_probs(case.vocab, g)
        n_docs = case.n_pairs if case.mode == "pairs" else case.n_docs
        q = _random_sparse(case.n_queries, case.q_nnz, probs, rank_to_id, case.vocab, g)
        d = _random_sparse(n_docs, case.d_nnz, probs, rank_to_id, case.vocab, g)
        q, d = q.to(case.device), d.to(case.device)
    else:
        dt = DTYPES[case.dtype]
        lo, hi = case.ld
        n_docs = case.n_pairs if case.mode == "pairs" else case.n_docs
        q = _random_multivectors(case.n_queries, torch.full((case.n_queries,), case.lq), case.dim, dt, case.device, g)
        d = _random_multivectors(n_docs, torch.randint(lo, hi + 1, (n_docs,), generator=g), case.dim, dt,
                                 case.device, g)
    groups = None
    if case.mode == "pairs":
        groups = torch.arange(0, case.n_pairs + 1, case.n_docs, dtype=torch.int64)
    return Inputs(case, q, d, groups)


# ----------------------------------------------------------------------------- the workloads
def _cpu_cases(quick: bool) -> list[Case]:
    """The CPU workloads: (a) a 1 x 1000 rerank in fp32 and bf16, (b) 16 x 100 paired, (c) all-pairs, (d) SPLADE- and
    BGE-M3-like sparse scoring. ``quick`` keeps (a), (b) and (d) at full size (they take milliseconds)
    and shrinks (c) and the repeat counts, so the whole default run takes a minute or two on 2 cores."""
    r = 5 if quick else 15
    ap = (16, 500) if quick else (64, 2000)
    sp_docs = 5000 if quick else 10000
    return [
        Case("maxsim/rerank-1x1000/fp32", "maxsim", "all", 1, 1000, "fp32", repeats=r, seed=1),
        Case("maxsim/rerank-1x1000/bf16", "maxsim", "all", 1, 1000, "bf16", repeats=r, seed=1),
        Case("maxsim/pairs-16x100/fp32", "maxsim", "pairs", 16, 100, "fp32", repeats=r, seed=2),
        Case(f"maxsim/all-{ap[0]}x{ap[1]}/fp32", "maxsim", "all", ap[0], ap[1], "fp32", repeats=max(3, r // 3), seed=3),
        Case(f"sparse/splade-100x{sp_docs}", "sparse_dot", "all", 100, sp_docs, "fp32", repeats=r, seed=4,
             vocab=30522, q_nnz=25, d_nnz=150),
        Case(f"sparse/bge-m3-100x{sp_docs}", "sparse_dot", "all", 100, sp_docs, "fp32", repeats=r, seed=5,
             vocab=250002, q_nnz=10, d_nnz=60),
    ]


def _cuda_cases(quick: bool) -> list[Case]:
    """The GPU workloads (fp16): paired rerank, a 1 x 1000 rerank, a corpus top-k, sparse scoring. ``quick`` shrinks the paired batch, the top-k corpus and the sparse corpus."""
    dev = "cuda"
    pairs_b = 64 if quick else 256
    topk = (100, 100_000) if quick else (1000, 1_000_000)
    sp = (1000, 10_000) if quick else (1000, 100_000)
    return [
        Case(f"maxsim/pairs-{pairs_b}x1000/fp16", "maxsim", "pairs", pairs_b, 1000, "fp16", dev, seed=11, repeats=20),
        Case("maxsim/rerank-1x1000/fp16", "maxsim", "all", 1, 1000, "fp16", dev, seed=12, repeats=50),
        Case(f"maxsim_topk/all-{topk[0]}x{topk[1]}/fp16", "maxsim_topk", "topk", topk[0], topk[1], "fp16", dev,
             seed=13, repeats=3, k=10),
        Case(f"sparse/splade-{sp[0]}x{sp[1]}", "sparse_dot", "all", sp[0], sp[1], "fp32", dev, seed=14, repeats=10),
    ]


def default_cases(device: str = "cpu", quick: bool = False) -> list[Case]:
    return _cuda_cases(quick) if device == "cuda" else _cpu_cases(quick)


def sweep_cases(device: str = "cpu", quick: bool = False) -> list[Case]:
    """Series for the plots: throughput vs document length (rerank, fixed Ld) and vs batch size (paired,
    100 candidates per query)."""
    dt = "fp16" if device == "cuda" else "fp32"
    lens = (32, 128, 300) if quick else (32, 64, 128, 180, 300, 512)
    batches = (1, 4, 16) if quick else (1, 4, 16, 64)
    n_rerank = 1000 if device == "cuda" or not quick else 500
    r = 3 if quick else 7
    out = [Case(f"sweep/doc-len-{L}/{dt}", "maxsim", "all", 1, n_rerank, dt, device, seed=20 + L, ld=(L, L),
                repeats=r, sweep={"axis": "doc_len", "value": L}) for L in lens]
    out += [Case(f"sweep/batch-{b}/{dt}", "maxsim", "pairs", b, 100, dt, device, seed=40 + b, repeats=r,
                 sweep={"axis": "batch", "value": b}) for b in batches]
    return out


def _fde(k_sim: int = 4, dim_proj: int = 16, r_reps: int = 20, fill_empty: bool = True) -> dict[str, Any]:
    return {"k_sim": k_sim, "dim_proj": dim_proj, "r_reps": r_reps, "fill_empty": fill_empty}


# the documented defaults first, then one knob moved at a time: repetitions, partitions, sketch width, filling
FDE_SETTINGS = (_fde(), _fde(r_reps=1), _fde(r_reps=5), _fde(r_reps=10), _fde(k_sim=3), _fde(k_sim=5),
                _fde(dim_proj=8), _fde(dim_proj=32), _fde(fill_empty=False))


def recall_cases(device: str = "cpu", quick: bool = False) -> list[RecallCase]:
    """The MUVERA recall check: quick = ``clustered_data()``'s defaults (200 docs, 50 queries: the numbers
    in the ``fusedscore.muvera`` docstring); full = 2,000 docs, 200 queries (a few seconds on 2 cores)."""
    if quick:
        return [RecallCase("muvera/recall-200x50", 200, 50, FDE_SETTINGS, (10, 20, 50, 100), device=device)]
    return [RecallCase("muvera/recall-2000x200", 2000, 200, FDE_SETTINGS, (10, 20, 50, 100, 200), n_clusters=285,
                       device=device)]
