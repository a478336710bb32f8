"""MaxSim implementations timed by the benchmark (ops ``maxsim`` and ``maxsim_topk``).

- ``fusedscore``: ``fusedscore.maxsim`` / ``maxsim_topk`` with the default dispatch.
- ``torch-reference``: ``fusedscore.reference.maxsim_ref(upcast=False)``, the function the tests use
  (padded einsum in the input dtype).
- ``torch-packed-gemm``: one GEMM of a query against every packed document token,
  ``S[T, Lq] = docs[T, D] @ q[Lq, D]^T`` (cuBLAS / oneDNN, in the input dtype, so bf16 inputs get the
  bf16 GEMM), then a segment max per document and a sum over query tokens; looped per query when
  there are several. The segment max is whichever of ``scatter_reduce_(amax)`` and
  ``torch.segment_reduce`` is faster on this machine (timed once in ``prepare``; the row says which).
- ``torch-einsum-padded`` (GPU): padded documents + mask, ``einsum`` then masked ``amax`` and sum.
- Peers, when installed: maxsim-cpu (``maxsim_scores_variable``), PyLate (``colbert_scores``, its torch
  backend, on padded tensors), FlagEmbedding (``M3Embedder.colbert_score`` per pair, rescaled from its
  mean to a sum for the check), sentence-transformers (``util.maxsim`` / ``maxsim_pairwise`` on lists),
  flash-maxsim (``flash_maxsim_rerank`` on packed docs, per query), late-interaction-kernels
  (``maxsim_varlen`` / ``score_pairs_packed`` on the packed tokens).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from .. import _dispatch, ops, reference
from .cases import Inputs
from .impls import Impl, NoModel, Prepared, Skip, as_f32_cpu, query_index, require

_NEG_INF = float("-inf")


def _dispatch_name(device: torch.device) -> str:
    return _dispatch.resolve("maxsim", device).name


def _topk_values(r: Any) -> torch.Tensor:
    return as_f32_cpu(r[0])


# ----------------------------------------------------------------------------- fusedscore and baselines
def _fusedscore(inp: Inputs) -> Prepared:
    q, d, case = inp.q, inp.d, inp.case
    backend = _dispatch_name(d.device)
    if case.mode == "topk":
        return Prepared(lambda: ops.maxsim_topk(q, d, case.k), _topk_values, backend=backend)
    mode, groups = ("pairs", inp.groups) if inp.groups is not None else ("all", None)
    return Prepared(lambda: ops.maxsim(q, d, mode=mode, groups=groups), as_f32_cpu, backend=backend)


def _reference(inp: Inputs) -> Prepared:
    if inp.case.mode == "topk":
        raise Skip("the reference has no top-k variant (fusedscore.maxsim_topk is checked against maxsim_ref in tests)")
    qi = query_index(inp) if inp.groups is not None else None
    q, d = inp.q, inp.d
    return Prepared(lambda: reference.maxsim_ref(q, d, query_index=qi, upcast=False), as_f32_cpu,
                    note="maxsim_ref(upcast=False): padded einsum in the input dtype")


def _token_doc_index(lengths: torch.Tensor, device: torch.device) -> torch.Tensor:
    """[T] int64: the document (0-based within the block) each packed token belongs to."""
    return torch.repeat_interleave(torch.arange(lengths.numel(), device=device), lengths.to(device))


def _segmax_scatter(s: torch.Tensor, tok_doc: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    out = torch.full((lengths.numel(), s.shape[1]), _NEG_INF, dtype=s.dtype, device=s.device)
    return out.scatter_reduce_(0, tok_doc[:, None].expand(-1, s.shape[1]), s, "amax")


def _segmax_segment(s: torch.Tensor, tok_doc: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return torch.segment_reduce(s, "max", lengths=lengths, axis=0)


_SEGMAX = {"scatter_reduce": _segmax_scatter, "segment_reduce": _segmax_segment}


def _pick_segmax(s: torch.Tensor, tok_doc: torch.Tensor, lengths: torch.Tensor) -> str:
    """The faster segment-max formulation on this device for this block (median of 3 runs each)."""
    best, best_t = "scatter_reduce", float("inf")
    for name, f in _SEGMAX.items():
        ts = []
        for _ in range(3):
            if s.is_cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            f(s, tok_doc, lengths)
            if s.is_cuda:
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
        t = sorted(ts)[1]
        if t < best_t:
            best, best_t = name, t
    return best


def _packed_gemm(inp: Inputs) -> Prepared:
    q, d, case = inp.q, inp.d, inp.case
    dev = d.device
    if case.mode == "topk":
        return _packed_gemm_topk(inp)
    blocks: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (query, tokens, tok_doc, lengths)
    if inp.groups is not None:
        for b in range(len(q)):
            n0, n1 = int(inp.groups[b]), int(inp.groups[b + 1])
            t0, t1 = int(d.offsets[n0]), int(d.offsets[n1])
            lens = d.lengths[n0:n1]
            blocks.append((b, d.values[t0:t1], _token_doc_index(lens, dev), lens))
    else:
        tok_doc = _token_doc_index(d.lengths, dev)
        blocks = [(b, d.values, tok_doc, d.lengths) for b in range(len(q))]
    qs = [q[b] for b in range(len(q))]
    _, vals, tok, lens = blocks[0]
    seg_name = _pick_segmax(vals @ qs[0].T, tok, lens)
    segmax = _SEGMAX[seg_name]

    def run() -> Any:
        outs = [segmax(v @ qs[b].T, t, ln).float().sum(1) for b, v, t, ln in blocks]
        return torch.cat(outs) if inp.groups is not None else torch.stack(outs)

    note = f"GEMM in {case.dtype}, segment max by {seg_name}" + (", looped per query" if len(q) > 1 else "")
    return Prepared(run, as_f32_cpu, note=note)


TOPK_BLOCK_BYTES = {"cuda": 2 << 30, "cpu": 256 << 20}  # similarities per block of the top-k baseline


def _packed_gemm_topk(inp: Inputs) -> Prepared:
    """All queries at once against blocks of packed doc tokens (a few GiB of scores per block), keeping the
    best k per query across blocks."""
    q, d, k = inp.q, inp.d, inp.case.k
    if int(q.lengths.min()) != int(q.lengths.max()):
        raise Skip("the packed-GEMM top-k baseline needs equal query lengths")
    B, Lq = len(q), int(q.lengths[0])
    budget = TOPK_BLOCK_BYTES["cuda" if d.device.type == "cuda" else "cpu"]
    tok_per_block = max(int(d.lengths.max()), budget // (B * Lq * d.values.element_size()))
    off = d.offsets.cpu()
    starts = [0]  # document boundaries so each block holds about tok_per_block tokens
    while starts[-1] < len(d):
        nxt = int(torch.searchsorted(off, off[starts[-1]] + tok_per_block, right=True)) - 1
        starts.append(min(len(d), max(nxt, starts[-1] + 1)))
    blocks = []
    for s, e in zip(starts[:-1], starts[1:]):
        lens = d.lengths[s:e]
        blocks.append((s, d.values[int(off[s]): int(off[e])], _token_doc_index(lens, d.device), lens))
    qall = q.values  # [B * Lq, D]
    seg_name = _pick_segmax(blocks[0][1] @ qall.T, blocks[0][2], blocks[0][3])
    segmax = _SEGMAX[seg_name]

    def run() -> Any:
        best_v = torch.empty(B, 0, device=d.device)
        best_i = torch.empty(B, 0, dtype=torch.int64, device=d.device)
        for s, v, t, ln in blocks:
            sc = segmax(v @ qall.T, t, ln).float().view(-1, B, Lq).sum(2).T  # [B, n_block]
            bv, bi = torch.topk(sc, min(k, sc.shape[1]), dim=1)
            best_v, best_i = torch.cat([best_v, bv], 1), torch.cat([best_i, bi + s], 1)
            if best_v.shape[1] > k:
                best_v, pos = torch.topk(best_v, k, dim=1)
                best_i = torch.gather(best_i, 1, pos)
        return best_v, best_i

    note = f"{len(blocks)} blocks of ~{tok_per_block} tokens, all queries per GEMM, segment max by {seg_name}"
    return Prepared(run, _topk_values, note=note)


def _padded(inp: Inputs) -> tuple[torch.Tensor, torch.Tensor]:
    return inp.cached("d_padded", lambda: inp.d.to_padded())


def _q_padded(inp: Inputs) -> torch.Tensor:
    return inp.cached("q_padded", lambda: inp.q.to_padded()[0])


def _chunks(n: int, per_item_bytes: int, budget: int) -> list[tuple[int, int]]:
    step = max(1, budget // max(1, per_item_bytes))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _einsum_padded(inp: Inputs) -> Prepared:
    if inp.case.mode == "topk":
        raise Skip("no top-k variant")
    dp, dm = _padded(inp)
    qp = _q_padded(inp)
    B, Lq, _ = qp.shape
    N, L, _ = dp.shape
    budget = 2 << 30
    esz = dp.element_size()
    if inp.groups is None:
        parts = _chunks(N, B * Lq * L * esz, budget)

        def run() -> Any:
            out = []
            for s, e in parts:
                sim = torch.einsum("qid,njd->qnij", qp, dp[s:e])
                out.append(sim.masked_fill_(~dm[None, s:e, None, :], _NEG_INF).amax(-1).float().sum(-1))
            return torch.cat(out, 1)
    else:
        C = inp.case.n_docs
        dp4, dm4 = dp.view(B, C, L, -1), dm.view(B, C, L)
        parts = _chunks(B, C * Lq * L * esz, budget)

        def run() -> Any:
            out = []
            for s, e in parts:
                sim = torch.einsum("bid,bcjd->bcij", qp[s:e], dp4[s:e])
                out.append(sim.masked_fill_(~dm4[s:e, :, None, :], _NEG_INF).amax(-1).float().sum(-1).reshape(-1))
            return torch.cat(out)

    return Prepared(run, as_f32_cpu, note="padded to the longest doc, chunked to 2 GiB of similarities")


# ----------------------------------------------------------------------------- peers
def _fp32_only(inp: Inputs, who: str) -> None:
    if inp.case.dtype != "fp32":
        raise Skip(f"{who} takes fp32 numpy arrays only, case is {inp.case.dtype}")


def _no_topk(inp: Inputs, who: str) -> None:
    if inp.case.mode == "topk":
        raise Skip(f"{who} has no exact all-pairs top-k")


def _maxsim_cpu(inp: Inputs) -> Prepared:
    _no_topk(inp, "maxsim-cpu")
    _fp32_only(inp, "maxsim-cpu")
    mc = require("maxsim_cpu", "maxsim-cpu")
    docs = inp.cached("d_numpy_list", lambda: [t.numpy() for t in inp.d.to_list()])
    qs = [inp.q[b].numpy() for b in range(len(inp.q))]
    f = mc.maxsim_scores_variable
    if inp.groups is None:
        def run() -> Any:
            return torch.stack([torch.from_numpy(f(qb, docs)) for qb in qs])
    else:
        g = [int(x) for x in inp.groups]

        def run() -> Any:
            return torch.cat([torch.from_numpy(f(qb, docs[g[b]:g[b + 1]])) for b, qb in enumerate(qs)])

    return Prepared(run, as_f32_cpu, note="maxsim_scores_variable on a list of numpy arrays, per query")


def _pylate(inp: Inputs) -> Prepared:
    _no_topk(inp, "pylate")
    colbert = require("pylate.scores", "pylate")
    dp, dm = _padded(inp)
    dmf = inp.cached("d_mask_float", lambda: dm.to(dp.dtype))
    qp = _q_padded(inp)
    B, Lq, _ = qp.shape
    N, L, _ = dp.shape
    f = colbert.colbert_scores
    budget = (2 << 30) if dp.is_cuda else (512 << 20)
    if inp.groups is None:
        parts = _chunks(N, B * Lq * L * dp.element_size(), budget)

        def run() -> Any:
            return torch.cat([f(qp, dp[s:e], documents_mask=dmf[s:e], backend="torch") for s, e in parts], 1)

        note = "colbert_scores(backend='torch') on padded tensors" + (f", {len(parts)} doc chunks" if len(parts) > 1 else "")
    else:
        g = [int(x) for x in inp.groups]

        def run() -> Any:
            return torch.cat([f(qp[b:b + 1], dp[g[b]:g[b + 1]], documents_mask=dmf[g[b]:g[b + 1]], backend="torch")[0]
                              for b in range(B)])

        note = "colbert_scores(backend='torch') per query on its padded candidates"
    return Prepared(run, as_f32_cpu, note=note)


def _flagembedding(inp: Inputs) -> Prepared:
    _no_topk(inp, "FlagEmbedding")
    _fp32_only(inp, "FlagEmbedding colbert_score")
    m3 = require("FlagEmbedding.inference.embedder.encoder_only.m3", "FlagEmbedding")
    score = m3.M3Embedder.colbert_score.__get__(NoModel())
    docs = inp.cached("d_numpy_list", lambda: [t.numpy() for t in inp.d.to_list()])
    qs = [inp.q[b].numpy() for b in range(len(inp.q))]
    lq = inp.q.lengths.double()
    if inp.groups is None:
        def run() -> Any:
            return torch.tensor([[float(score(qb, p)) for p in docs] for qb in qs])

        def to_scores(r: Any) -> torch.Tensor:
            return (r.double() * lq[:, None]).float()  # its mean over query tokens, back to a sum
    else:
        qi = [int(x) for x in query_index(inp)]

        def run() -> Any:
            return torch.tensor([float(score(qs[b], docs[n])) for n, b in enumerate(qi)])

        def to_scores(r: Any) -> torch.Tensor:
            return (r.double() * lq[torch.tensor(qi)]).float()

    return Prepared(run, to_scores, note="M3Embedder.colbert_score per (query, doc) pair (mean over query tokens)")


def _sentence_transformers(inp: Inputs) -> Prepared:
    _no_topk(inp, "sentence-transformers")
    util = require("sentence_transformers.util", "sentence-transformers")
    docs = inp.cached("d_list", lambda: inp.d.to_list())
    qs = [inp.q[b] for b in range(len(inp.q))]
    if inp.groups is None:
        return Prepared(lambda: util.maxsim(qs, docs), as_f32_cpu, note="util.maxsim on lists of [L, D] tensors")
    qrep = [qs[int(b)] for b in query_index(inp)]
    return Prepared(lambda: util.maxsim_pairwise(qrep, docs), as_f32_cpu,
                    note="util.maxsim_pairwise on lists of [L, D] tensors")


def _flash_maxsim(inp: Inputs) -> Prepared:
    _no_topk(inp, "flash-maxsim")
    if inp.case.dtype != "fp16":
        raise Skip(f"flash-maxsim computes in fp16 (it would cast {inp.case.dtype} inputs on every call)")
    fm = require("flash_maxsim", "flash-maxsim")
    q, d = inp.q, inp.d
    qs = [q[b] for b in range(len(q))]
    if inp.groups is None:
        cu, mx = d.offsets.to(torch.int32), d.max_length
        calls = [(qb, d.values, cu, mx) for qb in qs]
    else:
        calls = []
        for b, qb in enumerate(qs):
            n0, n1 = int(inp.groups[b]), int(inp.groups[b + 1])
            o = d.offsets[n0:n1 + 1]
            calls.append((qb, d.values[int(o[0]): int(o[-1])], (o - o[0]).to(torch.int32),
                          int(d.lengths[n0:n1].max())))

    def run() -> Any:
        outs = [fm.flash_maxsim_rerank(*c) for c in calls]
        return torch.stack(outs) if inp.groups is None else torch.cat(outs)

    return Prepared(run, as_f32_cpu, note="flash_maxsim_rerank on packed docs, one launch per query")


def _lik(inp: Inputs) -> Prepared:
    """Its packed (ragged) entry points, which take our layout as it is: ``maxsim_varlen`` for all-pairs,
    ``score_pairs_packed`` for (query, candidate) pairs."""
    _no_topk(inp, "late-interaction-kernels")
    lik = require("late_interaction_kernels", "late-interaction-kernels")
    q, d = inp.q, inp.d
    cq, cd = q.offsets.to(torch.int32), d.offsets.to(torch.int32)
    mq, md = q.max_length, d.max_length
    if inp.groups is None:
        def run() -> Any:
            with torch.no_grad():
                return lik.maxsim_varlen(q.values, d.values, cq, cd, mq, md)

        return Prepared(run, as_f32_cpu, note="maxsim_varlen on the packed tokens")
    pq = query_index(inp).to(torch.int32)
    pd = torch.arange(len(d), dtype=torch.int32, device=d.device)
    from late_interaction_kernels.score_pairs import score_pairs_packed

    def run_pairs() -> Any:
        with torch.no_grad():
            return score_pairs_packed(q.values, d.values, cq, cd, pq, pd, max_seqlen_q=mq, max_seqlen_d=md)

    return Prepared(run_pairs, as_f32_cpu, note="score_pairs_packed on the packed tokens")


def fallback_limit(op: str, reference_limits: dict[str, int]) -> Callable[[str], int | None]:
    """fusedscore's pair limit: none, unless the dispatch falls back to the reference (no native build),
    where fusedscore is the reference and runs on the same prefix as the reference row."""
    def limit(dev_kind: str) -> int | None:
        return reference_limits.get(dev_kind) if _dispatch.resolve(op, torch.device(dev_kind)).name == "reference" else None

    return limit


_REF_LIMITS = {"cpu": 20_000, "cuda": 300_000}
_SLOW_CPU = {"cpu": 20_000}
IMPLS: list[Impl] = [
    Impl("fusedscore", "fusedscore", "maxsim", _fusedscore, max_pairs=fallback_limit("maxsim", _REF_LIMITS)),
    Impl("torch-reference", "baseline", "maxsim", _reference, max_pairs=_REF_LIMITS),
    Impl("torch-packed-gemm", "baseline", "maxsim", _packed_gemm),
    Impl("torch-einsum-padded", "baseline", "maxsim", _einsum_padded, devices=("cuda",)),
    Impl("maxsim-cpu", "peer", "maxsim", _maxsim_cpu, devices=("cpu",)),
    Impl("pylate", "peer", "maxsim", _pylate, max_pairs=_SLOW_CPU),
    Impl("flagembedding", "peer", "maxsim", _flagembedding, devices=("cpu",), max_pairs={"cpu": 2_000}),
    Impl("sentence-transformers", "peer", "maxsim", _sentence_transformers, max_pairs=_SLOW_CPU),
    Impl("flash-maxsim", "peer", "maxsim", _flash_maxsim, devices=("cuda",)),
    Impl("late-interaction-kernels", "peer", "maxsim", _lik, devices=("cuda",)),
]
# the top-k workload (its prepare functions branch on case.mode); the other rows have no exact top-k
IMPLS += [Impl("fusedscore", "fusedscore", "maxsim_topk", _fusedscore, max_pairs=fallback_limit("maxsim", _REF_LIMITS)),
          Impl("torch-packed-gemm", "baseline", "maxsim_topk", _packed_gemm)]

__all__ = ["IMPLS"]
