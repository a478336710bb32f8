"""fusedscore: fused scoring kernels for retrieval reranking.

Dense vectors, learned-sparse term weights and multi-vector (ColBERT MaxSim) scores on CPU (C++,
OpenMP, SIMD) and GPU (Triton), with a plain-torch reference for each kernel.
"""

from . import reference
from ._dispatch import backend_info
from .containers import MultiVectors, SparseVectors
from .muvera import FDE
from .ops import (dense_dot, hybrid, maxsim, maxsim_topk, reciprocal_rank_fusion, sparse_dot, topk)
from .retrieval import FDEIndex, retrieve
from .reranker import Reranker, score_embeddings
# `fusedscore.rerank` is PyLate's rank.rerank drop-in (a function); the Reranker class lives in fusedscore.reranker
from .compat import (colbert_score, compute_lexical_matching_score, compute_score, rerank, similarity,
                     similarity_pairwise)

__version__ = "0.1.0"


def warmup(**kwargs) -> int:
    """Compile the common GPU kernel buckets ahead of time (``fusedscore.kernels.warmup``; keyword
    arguments pass through), so the first call on CUDA pays no compile.

    Returns:
        The number of warm-up launches; 0 without CUDA, where it is a no-op (nothing to compile, and
        triton is not even imported).
    """
    import torch

    if not torch.cuda.is_available():
        return 0
    from . import kernels

    return kernels.warmup(**kwargs)


__all__ = [
    "MultiVectors", "SparseVectors", "backend_info", "dense_dot", "hybrid", "maxsim", "maxsim_topk",
    "reciprocal_rank_fusion", "reference", "sparse_dot", "topk", "__version__",
    "FDE", "FDEIndex", "retrieve", "warmup",
    "Reranker", "score_embeddings", "colbert_score", "compute_lexical_matching_score", "compute_score", "rerank",
    "similarity", "similarity_pairwise",
]
