"""End-to-end reranking and the scoring step alone: fusedscore against each peer, same model, same inputs.

Every case reranks ``n_candidates`` (100) candidates for each of ``n_queries`` queries. Cases (a case runs
only when its peer imports; otherwise its row says why):

- ``cross_e2e``: ``Reranker(CrossEncoder).rerank_batch`` vs sentence-transformers ``CrossEncoder.rank`` per
  query, on a tiny random-weight cross-encoder directory.
- ``colbert_e2e``: ``Reranker(ColBERT).rerank_batch`` vs encode (the same fusedscore encoder: pylate 1.6 cannot
  load models under sentence-transformers 6) + ``pylate.rank.rerank``.
- ``bgem3_e2e``: ``fusedscore.compute_score`` vs FlagEmbedding ``BGEM3FlagModel.compute_score`` (pairs), tiny model.
- ``colbert_scoring``: the scoring step alone on precomputed embeddings of realistic shape (Lq=32, Ld 100-300
  ragged, D=128, fp32): ``fusedscore.rerank`` (PyLate's signature) vs ``pylate.rank.rerank``.
- ``bgem3_scoring``: FlagEmbedding's scoring step (dense, sparse over the vocabulary, colbert on padded
  batches, as its ``compute_score_single_device`` does per batch) vs ``score_embeddings`` for the three
  modes, BGE-M3 shapes (D=1024, V=250002, Lq=32, Ld 64-200), 2 queries (the peer is slow).

Rows: ``name, impl, median_s, p20_s, p80_s, pairs_per_s, ratio`` (``ratio`` = the peer's median over this
row's median: > 1 means faster than the peer; 1.0 on the peer's row), plus ``model``, ``n_queries``,
``n_candidates``, ``device``, ``note``.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .timing import measure

__all__ = ["run"]


def _texts(n: int, seed: int, words: tuple[int, int]) -> list[str]:
    from .encoders import mixed_texts

    rng = np.random.default_rng(seed)
    base = mixed_texts(n, seed)
    return [" ".join(t.split()[: int(rng.integers(*words))]) for t in base]


def _rows(name: str, impls: list[tuple[str, Callable[[], Any]]], pairs: int, device: str, budget_s: float,
          **extra: Any) -> list[dict[str, Any]]:
    rows = []
    for impl, fn in impls:
        t = measure(fn, device, repeats=5, budget_s=budget_s, min_runs=3)
        rows.append({"name": name, "impl": impl, "median_s": t.median, "p20_s": t.p20, "p80_s": t.p80,
                     "pairs_per_s": pairs / t.median, **extra, "device": device})
    peer = rows[-1]["median_s"] if len(rows) > 1 else None
    for r in rows:
        r["ratio"] = peer / r["median_s"] if peer else None
    return rows


def _skipped(name: str, why: str, device: str) -> list[dict[str, Any]]:
    return [{"name": name, "impl": "-", "median_s": None, "ratio": None, "device": device, "note": f"skipped: {why}"}]


def _tiny(kind: str, root: Path) -> Path:
    """A tiny random-weight model directory (fusedscore.testing builds it offline)."""
    from ..testing import tiny_models

    return tiny_models.build(kind, root)


def _cross_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int):
    from ..encoders import CrossEncoder
    from ..reranker import Reranker

    path = str(_tiny("cross", root))
    ours = Reranker(CrossEncoder.from_pretrained(path, device=device))
    impls = [("fusedscore", lambda: ours.rerank_batch(queries, cands, batch_size=64))]
    try:
        from sentence_transformers import CrossEncoder as STCrossEncoder
    except ImportError as e:
        return _rows("cross_e2e", impls, pairs, device, budget, model="tiny-random", note=f"no peer: {e}")
    peer = STCrossEncoder(path, device=device)
    impls.append(("sentence-transformers", lambda: [peer.rank(q, c, batch_size=64) for q, c in zip(queries, cands)]))
    return _rows("cross_e2e", impls, pairs, device, budget, model="tiny-random")


def _colbert_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int):
    from ..encoders import ColBERT
    from ..reranker import Reranker

    model = ColBERT.from_pretrained(str(_tiny("colbert", root)), device=device)
    ours = Reranker(model)
    impls = [("fusedscore", lambda: ours.rerank_batch(queries, cands, batch_size=64))]
    try:
        from pylate import rank
    except ImportError as e:
        return _rows("colbert_e2e", impls, pairs, device, budget, model="tiny-random", note=f"no peer: {e}")

    def peer():
        qe = model.encode(queries, is_query=True, batch_size=64)
        flat = model.encode([d for c in cands for d in c], is_query=False, batch_size=64)
        de, s = [], 0
        for c in cands:
            de.append(flat[s: s + len(c)])
            s += len(c)
        return rank.rerank([list(range(len(c))) for c in cands], qe, de)
    impls.append(("pylate", peer))
    return _rows("colbert_e2e", impls, pairs, device, budget, model="tiny-random",
                 note="both encode with fusedscore.encoders.ColBERT (pylate 1.6 cannot load models under ST 6)")


def _flag_m3() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's own import-time deprecations are not ours to report
        from FlagEmbedding import BGEM3FlagModel
    return BGEM3FlagModel


def _bgem3_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int):
    from ..compat import compute_score
    from ..encoders import BGEM3

    path = str(_tiny("bgem3", root))
    model = BGEM3.from_pretrained(path, device=device)
    sp = [(q, d) for q, c in zip(queries, cands) for d in c]
    impls = [("fusedscore", lambda: compute_score(model, sp, batch_size=64, max_passage_length=120))]
    try:
        peer = _flag_m3()(path, use_fp16=device.startswith("cuda"), devices=device)
    except ImportError as e:
        return _rows("bgem3_e2e", impls, pairs, device, budget, model="tiny-random", note=f"no peer: {e}")
    impls.append(("FlagEmbedding", lambda: peer.compute_score(sp, batch_size=64, max_passage_length=120)))
    return _rows("bgem3_e2e", impls, pairs, device, budget, model="tiny-random")


def _ragged(n: int, lo: int, hi: int, dim: int, g: torch.Generator, device: str) -> list[torch.Tensor]:
    lens = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return [torch.nn.functional.normalize(torch.randn(L, dim, generator=g), dim=-1).to(device) for L in lens]


def _colbert_scoring(nq: int, nc: int, device: str, budget: float):
    from ..compat import rerank as fs_rerank

    g = torch.Generator().manual_seed(0)
    qs = [x for x in _ragged(nq, 32, 32, 128, g, device)]
    docs = [_ragged(nc, 100, 300, 128, g, device) for _ in range(nq)]
    ids = [list(range(nc)) for _ in range(nq)]
    from ..containers import MultiVectors
    from ..reranker import score_embeddings

    qmv = MultiVectors.from_list(qs)
    dmv = MultiVectors.from_list([d for ds in docs for d in ds])
    groups = torch.arange(0, nq * nc + 1, nc)
    impls = [("fusedscore (containers)", lambda: score_embeddings(qmv, dmv, groups=groups)),
             ("fusedscore", lambda: fs_rerank(ids, qs, docs))]
    try:
        from pylate import rank
    except ImportError as e:
        return _rows("colbert_scoring", impls, nq * nc, device, budget, model="Lq32-Ld100..300-D128", note=f"no peer: {e}")
    impls.append(("pylate", lambda: rank.rerank(ids, qs, docs)))
    return _rows("colbert_scoring", impls, nq * nc, device, budget, model="Lq32-Ld100..300-D128",
                 note="fusedscore: lists of [L, D] in, packed each call, sorted lists out (PyLate's contract); "
                      "(containers): the paired kernel on prebuilt MultiVectors, scores only")


def _bgem3_scoring(nq: int, nc: int, device: str, budget: float, batch: int = 16):
    from ..containers import MultiVectors, SparseVectors
    from ..reranker import score_embeddings

    g = torch.Generator().manual_seed(1)
    V, D = 250002, 1024
    n = nq * nc
    qd = torch.nn.functional.normalize(torch.randn(nq, D, generator=g), dim=-1).to(device)
    pd = torch.nn.functional.normalize(torch.randn(n, D, generator=g), dim=-1).to(device)
    qc, pc = _ragged(nq, 32, 32, D, g, device), _ragged(n, 64, 200, D, g, device)

    def lex(k: int) -> SparseVectors:
        ids = torch.randint(0, V, (k * 60,), generator=g)
        return SparseVectors(ids, torch.rand(k * 60, generator=g), torch.arange(0, k * 60 + 1, 60), V).to(device)
    qs, ps = lex(nq), lex(n)
    groups = torch.arange(0, n + 1, nc)
    qmv, pmv = MultiVectors.from_list(qc), MultiVectors.from_list(pc)

    def ours():
        return (score_embeddings(qd, pd, groups=groups), score_embeddings(qs, ps, groups=groups),
                score_embeddings(qmv, pmv, groups=groups, reduce="mean"))
    qi = torch.arange(n) // nc
    qs_dense, ps_dense = qs.to_dense(), None

    def peer():
        # FlagEmbedding compute_score_single_device, scoring part, per batch of pairs: [b, b] products,
        # the diagonal kept; sparse as vocab-sized rows; colbert on zero-padded vectors.
        out = []
        for s in range(0, n, batch):
            idx = torch.arange(s, min(n, s + batch))
            qb = qi[idx]
            d = (qd[qb] @ pd[idx].T).diagonal()
            sp = (qs_dense[qb] @ ps.select(idx).to_dense().T).diagonal()
            qp = torch.nn.utils.rnn.pad_sequence([qc[int(b)] for b in qb], batch_first=True)
            pp = torch.nn.utils.rnn.pad_sequence([pc[int(i)] for i in idx], batch_first=True)
            tok = torch.einsum("qin,pjn->qipj", qp, pp)
            c = (tok.max(-1).values.sum(1) / qp.shape[1]).diagonal()
            out.append((d, sp, c))
        return out
    del ps_dense
    return _rows("bgem3_scoring", [("fusedscore", ours), ("FlagEmbedding-formulas", peer)], n, device, budget,
                 model="D1024-V250002-Lq32-Ld64..200",
                 note=f"peer = FlagEmbedding's scoring code path (batch {batch}) re-run on the same tensors")


def run(device: str = "cpu", quick: bool = False, n_queries: int | None = None, n_candidates: int = 100,
        budget_s: float | None = None) -> list[dict[str, Any]]:
    """Time end-to-end reranking and the scoring step (see the module doc for cases and row keys).

    Args:
        device: "cpu" or "cuda[:i]" (models and tensors go there).
        quick: 4 queries (else 16) and a shorter time budget per implementation.
        n_queries: override the number of queries.  n_candidates: candidates per query (100).
    """
    nq = n_queries or (4 if quick else 16)
    budget = budget_s if budget_s is not None else (2.0 if quick else 6.0)
    queries = _texts(nq, 7, (4, 16))
    cands = [_texts(n_candidates, 100 + i, (20, 120)) for i in range(nq)]
    pairs = nq * n_candidates
    quiet = [logging.getLogger(n) for n in ("fusedscore.encoders", "sentence_transformers", "FlagEmbedding",
                                            "transformers")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.ERROR)
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, fn in (("cross_e2e", _cross_e2e), ("colbert_e2e", _colbert_e2e), ("bgem3_e2e", _bgem3_e2e)):
                try:
                    rows += fn(root, queries, cands, device, budget, pairs)
                except ImportError as e:  # fusedscore.encoders or the test builders missing: say so, go on
                    rows += _skipped(name, repr(e), device)
        rows += _colbert_scoring(nq, n_candidates, device, budget)
        # the peer's in-batch all-pairs colbert costs ~3 GFLOP per 16 pairs at D=1024: keep it to 2 queries
        rows += _bgem3_scoring(min(nq, 2), n_candidates, device, budget)
        for r in rows:
            r.setdefault("n_queries", nq)
            r.setdefault("n_candidates", n_candidates)
        return rows
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)
