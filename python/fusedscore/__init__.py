"""fusedscore: fused scoring kernels for retrieval reranking.

Dense vectors, learned-sparse term weights and multi-vector (ColBERT MaxSim) scores on CPU (C++,
OpenMP, SIMD) and GPU (Triton), with a plain-torch reference for each kernel.
"""

from . import reference
from ._dispatch import backend_info, warmup
from .containers import MultiVectors, SparseVectors
from .muvera import FDE
from .ops import (dense_dot, hybrid, maxsim, maxsim_topk, reciprocal_rank_fusion, sparse_dot, topk)
from .retrieval import FDEIndex, retrieve
from .scoring import score_embeddings
from .reranker import Reranker
# `fusedscore.rerank` is PyLate's rank.rerank drop-in (a function); the Reranker class lives in fusedscore.reranker
from .compat import (colbert_score, compute_lexical_matching_score, compute_score, rerank, similarity,
                     similarity_pairwise)

__version__ = "0.1.0"

__all__ = [
    "MultiVectors", "SparseVectors", "backend_info", "dense_dot", "hybrid", "maxsim", "maxsim_topk",
    "reciprocal_rank_fusion", "reference", "sparse_dot", "topk", "__version__",
    "FDE", "FDEIndex", "retrieve", "warmup",
    "Reranker", "score_embeddings", "colbert_score", "compute_lexical_matching_score", "compute_score", "rerank",
    "similarity", "similarity_pairwise",
]
