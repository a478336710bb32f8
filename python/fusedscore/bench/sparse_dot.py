"""Learned-sparse dot-product implementations timed by the benchmark (op ``sparse_dot``).

- ``fusedscore``: ``fusedscore.sparse_dot`` with the default dispatch.
- ``torch-reference``: ``fusedscore.reference.sparse_dot_ref(upcast=False)`` (dense rows, a matmul; it pays
  ``V`` floats per document, so it runs on a prefix of the documents and is scaled).
- ``scipy-csr``: ``q_csr @ d_csr.T`` with the transpose built once as CSR (the inverted index, a
  ``[V, N]`` CSR), then ``.toarray()`` so every row returns the same dense ``[B, N]`` scores.
- ``torch-sparse`` (GPU): ``torch.sparse.mm`` of CSR queries by the CSR inverted index (cuSPARSE), densified.
- Peers: sentence-transformers' sparse similarity (``SparseEncoder.similarity`` with its default "dot"
  resolves to ``util.dot_score``: ``torch.mm`` of sparse COO tensors, densified) on the COO tensors
  ``SparseEncoder.encode`` returns; FlagEmbedding's ``compute_lexical_matching_score`` on lists of
  ``{str(token_id): weight}`` dicts (its ``lexical_weights`` format).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import ops, reference
from .cases import Inputs
from .impls import Impl, NoModel, Prepared, Skip, as_f32_cpu, public_op, query_index, reference_op, require
from .maxsim import fallback_limit


_fusedscore = public_op("sparse_dot", ops.sparse_dot)
_reference = reference_op(reference.sparse_dot_ref, "sparse_dot_ref(upcast=False): dense rows, matmul")


def _all_pairs_only(inp: Inputs, who: str) -> None:
    if inp.groups is not None:
        raise Skip(f"{who}: all-pairs only in this harness")


def _scipy(inp: Inputs) -> Prepared:
    _all_pairs_only(inp, "scipy-csr")
    if inp.d.device.type != "cpu":
        raise Skip("scipy runs on CPU")
    sp = require("scipy.sparse", "scipy")

    def csr(x: Any) -> Any:
        return sp.csr_matrix((x.values.numpy(), x.indices.numpy(), x.offsets.numpy()), shape=(len(x), x.vocab_size))

    qc = csr(inp.q)
    inv = csr(inp.d).T.tocsr()  # [V, N]: the inverted index, built once
    return Prepared(lambda: (qc @ inv).toarray(), as_f32_cpu, note="q_csr @ (d_csr.T as CSR), then .toarray()")


def _coo(x: Any) -> torch.Tensor:
    rows = torch.repeat_interleave(torch.arange(len(x), device=x.device), x.lengths)
    idx = torch.stack([rows, x.indices.to(torch.int64)])
    return torch.sparse_coo_tensor(idx, x.values, (len(x), x.vocab_size)).coalesce()


def _torch_sparse(inp: Inputs) -> Prepared:
    _all_pairs_only(inp, "torch-sparse")
    q, d = inp.q, inp.d
    qc = torch.sparse_csr_tensor(q.offsets, q.indices.to(torch.int64), q.values, (len(q), q.vocab_size))
    inv = _coo(d).t().coalesce().to_sparse_csr()  # [V, N] CSR
    return Prepared(lambda: torch.sparse.mm(qc, inv).to_dense(), as_f32_cpu,
                    note="torch.sparse.mm(CSR queries, CSR inverted index), densified")


def _sentence_transformers(inp: Inputs) -> Prepared:
    _all_pairs_only(inp, "sentence-transformers")
    st_sim = require("sentence_transformers.util.similarity", "sentence-transformers")
    dot = st_sim.SimilarityFunction.to_similarity_fn("dot")  # what SparseEncoder.similarity calls
    qc = inp.cached("q_coo", lambda: _coo(inp.q))
    dc = inp.cached("d_coo", lambda: _coo(inp.d))
    return Prepared(lambda: dot(qc, dc), as_f32_cpu,
                    note=f"SparseEncoder's similarity fn ({dot.__name__}) on sparse COO tensors")


def _flagembedding(inp: Inputs) -> Prepared:
    m3 = require("FlagEmbedding.inference.embedder.encoder_only.m3", "FlagEmbedding")
    score = m3.M3Embedder.compute_lexical_matching_score.__get__(NoModel())

    def dicts(x: Any) -> list[dict[str, float]]:
        return [{str(k): v for k, v in row.items()} for row in x.to_dicts()]

    qd = dicts(inp.q)
    dd = inp.cached("d_str_dicts", lambda: dicts(inp.d))
    if inp.groups is None:
        return Prepared(lambda: score(qd, dd), as_f32_cpu, note="compute_lexical_matching_score on lists of dicts")
    qi = [int(x) for x in query_index(inp)]
    return Prepared(lambda: torch.tensor([float(score(qd[b], dd[n])) for n, b in enumerate(qi)]), as_f32_cpu,
                    note="compute_lexical_matching_score per (query, doc) pair")


_REF_LIMITS = {"cpu": 20_000, "cuda": 10_000_000}
IMPLS: list[Impl] = [
    Impl("fusedscore", "fusedscore", "sparse_dot", _fusedscore, max_pairs=fallback_limit("sparse_dot", _REF_LIMITS)),
    Impl("torch-reference", "baseline", "sparse_dot", _reference, max_pairs=_REF_LIMITS),
    Impl("scipy-csr", "baseline", "sparse_dot", _scipy, devices=("cpu",)),
    Impl("torch-sparse", "baseline", "sparse_dot", _torch_sparse, devices=("cuda",)),
    Impl("sentence-transformers", "peer", "sparse_dot", _sentence_transformers),
    Impl("flagembedding", "peer", "sparse_dot", _flagembedding, devices=("cpu",), max_pairs={"cpu": 50_000}),
]

__all__ = ["IMPLS"]
