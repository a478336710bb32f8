"""Retrieval evaluation on real data: ``fusedscore eval`` and its Python core.

Modes (one table row each), over a BEIR or TREC-DL directory (``fusedscore.eval_data``):

- ``dense``: one vector per text (``DenseEncoder`` or BGE-M3 dense), exact dot-product top-``depth`` over the
  whole corpus, in blocks (``retrieval.blocked_topk``).
- ``sparse``: learned sparse (``Splade`` or BGE-M3 lexical weights), ``sparse_dot`` top-``depth`` in blocks.
- ``muvera``: multi-vector (``ColBERT``, BGE-M3 colbert, or an encoder with ``encode_tokens``): MUVERA FDE
  top-``candidates``, exact MaxSim rerank, top-``depth`` (``retrieval.FDEIndex``).
- ``colbert``: exact MaxSim over the whole corpus (``maxsim_topk``): MUVERA's ceiling; costly.
- ``hybrid``: the union of the dense and sparse top-``depth`` lists, both signals scored exactly on every
  document of the union, fused by RRF (``k=60``) or by a weighted sum of per-query normalised scores.
- ``rerank``: the top-``rerank_depth`` of a first stage (a run file, a run shipped with the data, or another
  mode) rescored with ``fusedscore.reranker.Reranker``.
- ``run``: a run file evaluated as it is.

Measures (through ``ir-measures``, i.e. trec_eval's definitions): nDCG@10 with the graded judgements as
given, MRR@10 and Recall@100 with "relevant" = grade >= ``rel_level`` (1 for BEIR, 2 for TREC-DL
passages). The mean runs over every judged query of the split: a query the run does not answer scores 0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ._blocks import topk_over_blocks
from .cli import quiet_transformers, stderr_is_terminal
from .containers import MultiVectors, SparseVectors
from .eval_data import DataError, Dataset, Run, load_dataset, read_run, write_run
from .muvera import FDE
from ._budget import resolve
from .ops import dense_dot, hybrid, maxsim_topk, reciprocal_rank_fusion, sparse_dot
from .retrieval import FDEIndex, blocked_topk
from .scoring import KIND_SIGNALS, as_rep, encode_signals, model_kind

__all__ = ["MODES", "MEASURES", "EvalError", "EvalOptions", "Evaluator", "compute_metrics", "encode", "format_table",
           "register", "main"]

MODES = ("dense", "sparse", "hybrid", "muvera", "colbert", "rerank", "run")
MEASURES = ("nDCG@10", "MRR@10", "R@100")
_ROLE = {"dense": "dense", "sparse": "sparse", "muvera": "multi", "colbert": "multi", "rerank": "rerank"}
_CACHE_ATTRS = ("query_length", "document_length", "query_prefix", "document_prefix", "do_query_expansion",
                "attend_to_expansion_tokens", "skiplist", "do_lower_case")
_FLOOR = -1e30  # stands in for -inf scores (an empty document) in a run: trec_eval needs finite numbers


class EvalError(ValueError):
    """A bad evaluation request (a mode without its model, an unknown run): the CLI prints it and exits 2."""


# ---------------------------------------------------------------------------- metrics
def _import_ir_measures() -> Any:
    """``import ir_measures`` (the eval extra), or a RuntimeError saying how to install it."""
    try:
        import ir_measures
    except ImportError as e:
        raise RuntimeError("eval: the metrics need ir-measures: pip install 'fusedscore[eval]' "
                           f"(or pip install ir-measures), got {e!r}") from None
    return ir_measures


def compute_metrics(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], *,
                    rel_level: int = 1, per_query: bool = False) -> dict[str, Any]:
    """nDCG@10, MRR@10 and Recall@100 of ``run`` against ``qrels``, averaged over the judged queries.

    Args:
        qrels: qid -> {docid: grade}.  run: qid -> {docid: score} (higher is better; order by score).
        rel_level: minimum grade counted relevant by MRR and Recall (nDCG uses the grades as gains).
        per_query: also return ``"per_query": {measure: {qid: value}}``.
    Returns:
        {"nDCG@10": float, "MRR@10": float, "R@100": float} (+ "per_query").
    Raises:
        RuntimeError: ir-measures is not installed (``pip install 'fusedscore[eval]'``).
        ValueError: a NaN score in the run.
    """
    ir_measures = _import_ir_measures()
    measures = {ir_measures.nDCG @ 10: "nDCG@10", ir_measures.RR(rel=rel_level) @ 10: "MRR@10",
                ir_measures.R(rel=rel_level) @ 100: "R@100"}
    clean: dict[str, dict[str, float]] = {}
    for qid, docs in run.items():
        if qid not in qrels or not docs:
            continue
        row = {}
        for did, s in docs.items():
            s = float(s)
            if math.isnan(s):
                raise ValueError(f"eval: run scores must not be NaN, got NaN for query {qid!r} document {did!r}")
            row[str(did)] = max(s, _FLOOR) if s != math.inf else 1e30
        clean[str(qid)] = row
    values: dict[str, dict[str, float]] = {name: {} for name in measures.values()}
    if clean:
        judged = {q: {d: int(g) for d, g in rel.items()} for q, rel in qrels.items() if q in clean}
        for m in ir_measures.iter_calc(list(measures), judged, clean):
            values[measures[m.measure]][m.query_id] = float(m.value)
    n = max(1, len(qrels))
    out: dict[str, Any] = {name: sum(v.get(q, 0.0) for q in qrels) / n for name, v in values.items()}
    if per_query:
        out["per_query"] = {name: {q: v.get(q, 0.0) for q in qrels} for name, v in values.items()}
    return out


# ---------------------------------------------------------------------------- encoders -> containers
_ROLE_SIGNAL = {"dense": "dense", "sparse": "sparse", "multi": "colbert"}
_ROLE_NEEDS = {"dense": "the dense mode needs a dense model (DenseEncoder or BGEM3)",
               "sparse": "the sparse mode needs a sparse model (Splade or BGEM3)",
               "multi": "the muvera/colbert modes need a multi-vector model (ColBERT, BGEM3, or one with encode_tokens)"}


def encode(model: Any, role: str, texts: list[str], *, is_query: bool, batch_size: int = 32) -> Any:
    """Encode ``texts`` into the container a role scores: dense -> Tensor [N, D] float, sparse ->
    SparseVectors, multi -> MultiVectors. Encoders follow ``fusedscore.encoders``' contract (the kind of a
    model is ``scoring.model_kind``'s, as for a Reranker); a model without a ColBERT head gives token vectors
    through ``encode_tokens(texts, batch_size=...)``.

    Raises:
        EvalError: the model cannot produce that representation.  TypeError: the encoder returned another type.
    """
    signal = _ROLE_SIGNAL.get(role)
    if signal is None:
        raise ValueError(f"eval: role must be dense, sparse or multi, got {role!r}")
    kind = model_kind(model)
    if signal in KIND_SIGNALS.get(kind, ()):
        return encode_signals(model, kind, texts, is_query=is_query, batch_size=batch_size, signals=[signal],
                              where="eval")[signal]
    if role == "multi" and callable(getattr(model, "encode_tokens", None)):
        out = as_rep(model.encode_tokens(texts, batch_size=batch_size), "eval", "encode_tokens")
        if not isinstance(out, MultiVectors):
            raise TypeError(f"eval: {type(model).__name__}.encode_tokens must give MultiVectors, got "
                            f"{type(out).__name__}")
        return out
    raise EvalError(f"eval: {_ROLE_NEEDS[role]}, got {type(model).__name__}")


def _cat(parts: list[Any]) -> Any:
    """Concatenate per-chunk encodings of one kind, in order."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts, 0)
    starts = [0]
    for p in parts[:-1]:
        starts.append(starts[-1] + (p.num_tokens if isinstance(p, MultiVectors) else p.nnz))
    offsets = torch.cat([parts[0].offsets[:1]] + [p.offsets[1:] + s for p, s in zip(parts, starts)])
    if isinstance(parts[0], MultiVectors):
        return MultiVectors(torch.cat([p.values for p in parts]), offsets, check_finite=False)
    return SparseVectors(torch.cat([p.indices for p in parts]), torch.cat([p.values for p in parts]), offsets,
                         parts[0].vocab_size, check_finite=False)


def _save_rep(rep: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(rep, torch.Tensor):
        obj = {"kind": "dense", "values": rep.cpu()}
    elif isinstance(rep, MultiVectors):
        obj = {"kind": "multi", "values": rep.values.cpu(), "offsets": rep.offsets.cpu()}
    else:
        obj = {"kind": "sparse", "indices": rep.indices.cpu(), "values": rep.values.cpu(), "offsets": rep.offsets.cpu(),
               "vocab_size": rep.vocab_size}
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)  # a crash mid-write never leaves a truncated cache file under the real name


def _load_rep(path: Path, device: Any = None) -> Any:
    obj = torch.load(path, weights_only=True, map_location=device)  # saved from the CPU: back to the encoder's device
    if obj["kind"] == "dense":
        return obj["values"]
    if obj["kind"] == "multi":
        return MultiVectors(obj["values"], obj["offsets"], check_finite=False)
    return SparseVectors(obj["indices"], obj["values"], obj["offsets"], int(obj["vocab_size"]), check_finite=False)


# ---------------------------------------------------------------------------- the evaluator
@dataclass
class EvalOptions:
    """Settings of an evaluation (all have CLI flags of the same name)."""
    depth: int = 100                 # results per query kept from a first stage
    candidates: int = 200            # muvera: FDE candidates rescored exactly per query
    fusion: str = "rrf"              # hybrid: "rrf" or "weighted"
    weights: tuple[float, float] = (1.0, 1.0)  # hybrid: (dense, sparse)
    normalize: str = "minmax"        # hybrid weighted: per-query normalisation
    rrf_k: int = 60
    first_stage: str | None = None   # rerank: a mode, a run shipped with the data, or a run file
    rerank_depth: int = 100
    rerank_mode: str | None = None   # Reranker mode (e.g. "colbert" for a BGE-M3 model)
    reduce: str = "sum"              # MaxSim reduction of muvera/colbert ("mean" for BGE-M3)
    batch_size: int = 32
    chunk: int = 512                 # texts per encode call (the progress bar's step)
    max_memory: int | None = None
    fde: dict = field(default_factory=dict)  # FDE keyword arguments (k_sim, dim_proj, r_reps, seed)
    cache: str | None = None         # directory of saved encodings (keyed by model, role, side and texts)
    quiet: bool = False


class Evaluator:
    """Runs modes over one dataset, caching encodings so modes share them (hybrid reuses dense and sparse).

    Args:
        data: the dataset.
        models: role -> encoder, roles "dense", "sparse", "multi", "rerank" (absent roles: modes needing
            them raise).
        options: EvalOptions.
        run_file: a run for "run"/"rerank" (path, or the name of a run shipped with the data).
    """

    def __init__(self, data: Dataset, models: Mapping[str, Any] | None = None, options: EvalOptions | None = None,
                 run_file: str | None = None):
        self.data, self.models, self.opt = data, dict(models or {}), options or EvalOptions()
        self.run_file = run_file
        self.doc_ids = list(data.corpus)
        self.qids = list(data.queries)
        self._reps: dict[tuple[str, str], Any] = {}
        self._runs: dict[str, Run] = {}
        self._index: FDEIndex | None = None
        self.encode_seconds: dict[str, float] = {}

    # ------------------------------------------------------------------ helpers
    def _progress(self, it: Any, desc: str, total: int | None = None) -> Any:
        from tqdm.auto import tqdm

        # disable=None: drawn only on a terminal; in a log every redraw would stay as a line of its own
        return tqdm(it, desc=desc, total=total, disable=self.opt.quiet or None, leave=False, file=sys.stderr)

    def _model(self, role: str, mode: str) -> Any:
        m = self.models.get(role)
        if m is None:
            flag = {"multi": "--multi-model"}.get(role, f"--{role}-model")
            raise EvalError(f"eval: mode {mode!r} needs a model: pass --model or {flag}")
        return m

    def rep(self, role: str, side: str, mode: str) -> Any:
        """Encodings of the queries or the corpus for a role, computed once."""
        key = (role, side)
        if key not in self._reps:
            model = self._model(role, mode)
            texts = [self.data.queries[q] for q in self.qids] if side == "queries" else \
                [self.data.corpus[d] for d in self.doc_ids]
            step = max(1, self.opt.chunk)
            t0 = time.perf_counter()
            parts, hits = [], 0
            for s in self._progress(range(0, max(1, len(texts)), step), f"encode {role} {side}",
                                    total=max(1, math.ceil(len(texts) / step))):
                chunk = texts[s:s + step]
                path = self._cache_path(model, role, side, chunk)  # per chunk: an interrupted run resumes
                if path is not None and path.is_file():
                    parts.append(_load_rep(path, getattr(model, "device", None)))
                    hits += 1
                    continue
                parts.append(encode(model, role, chunk, is_query=side == "queries", batch_size=self.opt.batch_size))
                if path is not None:
                    _save_rep(parts[-1], path)
            if hits < len(parts):  # seconds spent encoding (all-cached encodings are not timed)
                self.encode_seconds[f"{role}/{side}"] = round(time.perf_counter() - t0, 3)
            self._reps[key] = _cat(parts)
        return self._reps[key]

    def _cache_path(self, model: Any, role: str, side: str, texts: list[str]) -> Path | None:
        """Where the encodings of ``texts`` (one chunk) by ``model`` for ``role`` are cached (None: no cache).
        The key covers the model's repr (path, device, dtype, max_length), the role, the side and every text."""
        if not self.opt.cache:
            return None
        import hashlib

        h = hashlib.sha1(f"{type(model).__name__}|{model!r}|{role}|{side}|".encode())
        # settings the repr leaves out but the encodings depend on (ColBERT's lengths come from --max-length)
        h.update(repr([(a, getattr(model, a)) for a in _CACHE_ATTRS if hasattr(model, a)]).encode())
        for t in texts:
            h.update(t.encode("utf-8") + b"\0")
        return Path(self.opt.cache) / f"{role}-{side}-{h.hexdigest()[:16]}.pt"

    def _to_run(self, scores: torch.Tensor, idx: torch.Tensor) -> Run:
        s, i = scores.float().cpu().tolist(), idx.cpu().tolist()
        return {q: {self.doc_ids[d]: v for v, d in zip(s[b], i[b])} for b, q in enumerate(self.qids)}

    def _blocked(self, score_block: Callable[[int, int], torch.Tensor], n: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k over documents scored in blocks ``score_block(s, e) -> [B, e - s]``."""
        return topk_over_blocks(lambda s, e: score_block(s, e).cpu(), n, len(self.qids), k,
                                resolve(self.opt.max_memory, "eval", "cpu"),  # the blocks are moved to the CPU
                                blocks=lambda starts: self._progress(starts, "score blocks", total=len(starts)))

    # ------------------------------------------------------------------ modes
    def run(self, mode: str) -> Run:
        """The run of one mode (cached)."""
        if mode not in MODES:
            raise EvalError(f"eval: mode must be one of {MODES}, got {mode!r}")
        if mode not in self._runs:
            self._runs[mode] = getattr(self, f"_run_{mode}")()
        return self._runs[mode]

    def _run_dense(self) -> Run:
        q, d = self.rep("dense", "queries", "dense"), self.rep("dense", "corpus", "dense")
        return self._to_run(*blocked_topk(q, d.to(q.dtype), self.opt.depth, max_memory=self.opt.max_memory))

    def _run_sparse(self) -> Run:
        q, d = self.rep("sparse", "queries", "sparse"), self.rep("sparse", "corpus", "sparse")
        sel = lambda s, e: d.select(torch.arange(s, e))  # noqa: E731
        return self._to_run(*self._blocked(lambda s, e: sparse_dot(q, sel(s, e)), len(d), self.opt.depth))

    def _run_colbert(self) -> Run:
        q, d = self.rep("multi", "queries", "colbert"), self.rep("multi", "corpus", "colbert")
        return self._to_run(*maxsim_topk(q, d, self.opt.depth, reduce=self.opt.reduce, max_memory=self.opt.max_memory))

    def _run_muvera(self) -> Run:
        q = self.rep("multi", "queries", "muvera")
        if self._index is None:
            d = self.rep("multi", "corpus", "muvera")
            t0 = time.perf_counter()
            self._index = FDEIndex(FDE(d.dim, **self.opt.fde), d,
                                   show_progress=not self.opt.quiet and stderr_is_terminal())
            self.encode_seconds["fde/corpus"] = round(time.perf_counter() - t0, 3)
        return self._to_run(*self._index.search(q, self.opt.depth, candidates=max(self.opt.candidates, self.opt.depth),
                                                reduce=self.opt.reduce, max_memory=self.opt.max_memory))

    def _run_hybrid(self) -> Run:
        o = self.opt
        if o.fusion not in ("rrf", "weighted"):
            raise EvalError(f"eval: fusion must be 'rrf' or 'weighted', got {o.fusion!r}")
        first = [self.run("dense"), self.run("sparse")]
        pos = {d: i for i, d in enumerate(self.doc_ids)}
        lists = [sorted(set(first[0].get(q, {})) | set(first[1].get(q, {})), key=pos.__getitem__) for q in self.qids]
        counts = [len(x) for x in lists]
        flat = torch.tensor([pos[d] for x in lists for d in x], dtype=torch.int64)
        groups = torch.tensor([0] + counts, dtype=torch.int64).cumsum(0)
        qd, dd = self.rep("dense", "queries", "hybrid"), self.rep("dense", "corpus", "hybrid")
        qs, ds = self.rep("sparse", "queries", "hybrid"), self.rep("sparse", "corpus", "hybrid")
        sig = [dense_dot(qd, dd[flat].to(qd.dtype), mode="pairs", groups=groups).cpu(),
               sparse_dot(qs, ds.select(flat), mode="pairs", groups=groups).cpu()]
        width = max(counts, default=0)
        mask = torch.arange(width)[None, :] < torch.tensor(counts)[:, None]
        padded = []
        for s in sig:  # [B, width] with -inf padding ("missing" for both fusions)
            p = torch.full((len(counts), width), float("-inf"))
            p[mask] = s
            padded.append(p)
        if o.fusion == "rrf":
            fused = reciprocal_rank_fusion(padded, k=o.rrf_k, weights=list(o.weights))
        else:
            fused = hybrid(padded, list(o.weights), normalize=o.normalize)
        vals = fused[mask].tolist()
        run: Run = {}
        s = 0
        for q, x in zip(self.qids, lists):
            ranked = sorted(zip(x, vals[s:s + len(x)]), key=lambda t: -t[1])[: o.depth]
            run[q] = dict(ranked)
            s += len(x)
        return run

    def _run_source(self) -> str | None:
        """The run evaluated by mode "run": --run, else --first-stage when it is not a mode, else the data's
        only shipped run."""
        src = self.run_file or (self.opt.first_stage if self.opt.first_stage not in MODES else None)
        if src is None and len(self.data.runs) == 1:
            src = next(iter(self.data.runs))
        return src

    def _first_stage_run(self) -> tuple[str, Run]:
        src = self.opt.first_stage or self._run_source()
        if src is None:
            raise EvalError("eval: mode 'rerank' needs a first stage: --run FILE, --first-stage MODE"
                            + (f" or one of the data's runs {sorted(self.data.runs)}" if self.data.runs else ""))
        if src in MODES:
            if src in ("rerank", "run"):
                raise EvalError(f"eval: first_stage must be a first-stage mode or a run, got {src!r}")
            return src, self.run(src)
        return self._load_run(src)

    def _load_run(self, src: str | None) -> tuple[str, Run]:
        if src is None:
            raise EvalError("eval: mode 'run' needs --run FILE (or the name of a run shipped with the data)")
        path = self.data.runs.get(src, Path(src))
        if not Path(path).is_file():
            known = f"; the data ships {sorted(self.data.runs)}" if self.data.runs else ""
            raise FileNotFoundError(f"eval: run must be a file or a run name, got {src!r}{known}")
        name = src if src in self.data.runs else Path(path).stem
        return name, read_run(path)

    def _run_run(self) -> Run:
        return self._load_run(self._run_source())[1]

    def _run_rerank(self) -> Run:
        from .reranker import Reranker

        name, first = self._first_stage_run()
        self.first_stage_name = name
        model = self._model("rerank", "rerank")
        rr = Reranker(model, mode=self.opt.rerank_mode, max_memory=self.opt.max_memory)
        cands = []
        for q in self.qids:
            docs = sorted(first.get(q, {}).items(), key=lambda t: -t[1])[: self.opt.rerank_depth]
            for d, _ in docs:
                if d not in self.data.corpus:
                    raise DataError(f"eval: first stage {name!r} ranks document {d!r} for query {q!r}, which is not in "
                                    f"the corpus")
            cands.append([d for d, _ in docs])
        run: Run = {}
        step = 8  # queries per rerank_batch call: one kernel call per signal each, a progress step
        for s in self._progress(range(0, len(self.qids), step), f"rerank {name}", total=math.ceil(len(self.qids) / step)):
            qs = self.qids[s:s + step]
            res = rr.rerank_batch([self.data.queries[q] for q in qs],
                                  [[self.data.corpus[d] for d in c] for c in cands[s:s + step]],
                                  batch_size=self.opt.batch_size)
            for q, c, ranked in zip(qs, cands[s:s + step], res):
                run[q] = {c[r["corpus_id"]]: float(r["score"]) for r in ranked}
        return run

    # ------------------------------------------------------------------ rows
    def row_name(self, mode: str) -> str:
        if mode == "hybrid":
            return f"hybrid-{self.opt.fusion}"
        if mode == "rerank":
            return f"rerank({getattr(self, 'first_stage_name', self.opt.first_stage or self.run_file)})"
        if mode == "run":
            src = self._run_source()
            return f"run({src if src in self.data.runs else Path(str(src)).stem})"
        return mode

    def evaluate(self, modes: Sequence[str]) -> list[dict[str, Any]]:
        """One row per mode: mode, nDCG@10, MRR@10, R@100, queries, seconds (wall time of the mode, with the
        encodings it was first to need)."""
        rows = []
        for mode in modes:
            t0 = time.perf_counter()
            run = self.run(mode)
            secs = time.perf_counter() - t0
            m = compute_metrics(self.data.qrels, run, rel_level=self.data.rel_level)
            rows.append({"mode": self.row_name(mode), **{k: round(m[k], 4) for k in MEASURES},
                         "queries": len(self.qids), "seconds": round(secs, 2)})
        return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of ``Evaluator.evaluate`` rows."""
    cols = ["mode", *MEASURES, "queries", "seconds"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for r in rows:
        cells = [str(r["mode"])] + [f"{r[c]:.4f}" for c in MEASURES] + [str(r["queries"]), f"{r['seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
_KIND_MODES = {"dense": ["dense"], "splade": ["sparse"], "colbert": ["muvera"], "bgem3": ["dense", "sparse", "hybrid", "muvera"],
               "cross": ["rerank"]}


def _parse_modes(values: Sequence[str] | None) -> list[str]:
    modes = [m.strip() for v in (values or []) for m in v.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            raise EvalError(f"eval: --mode must be among {MODES}, got {m!r}")
    return list(dict.fromkeys(modes))


def _parse_kv(text: str, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        k, sep, v = part.partition("=")
        if not sep:
            raise EvalError(f"eval: {where} must be key=value pairs, got {part!r}")
        low = v.strip().lower()
        out[k.strip()] = None if low == "none" else {"true": True, "false": False}[low] if low in ("true", "false") \
            else int(v) if v.strip().lstrip("-").isdigit() else v.strip()
    return out


def register(subparsers: Any) -> None:
    """Add the ``eval`` subcommand to the ``fusedscore`` CLI."""
    p = subparsers.add_parser(
        "eval", help="retrieval quality (nDCG@10, MRR@10, R@100) on a BEIR or TREC-DL directory",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="BEIR (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or TREC-DL directory")
    p.add_argument("--model", help="model directory used for every role not given below")
    p.add_argument("--dense-model", help="model for dense/hybrid")
    p.add_argument("--sparse-model", help="model for sparse/hybrid")
    p.add_argument("--multi-model", help="multi-vector model for muvera/colbert (ColBERT, BGE-M3; a "
                   "sentence-transformers bi-encoder is used through its token vectors)")
    p.add_argument("--rerank-model", help="model for rerank (a cross-encoder, ColBERT, ... see Reranker)")
    p.add_argument("--mode", action="append", help=f"comma-separated, repeatable: {', '.join(MODES)}; one row each")
    p.add_argument("--run", help="a run file (TREC or JSONL) or a run shipped with the data (e.g. bm25)")
    p.add_argument("--first-stage", help="rerank: a mode, a run file, or a shipped run (default: --run)")
    p.add_argument("--split", default="test")
    p.add_argument("--depth", type=int, default=100, help="results per query of a first stage (default 100)")
    p.add_argument("--candidates", type=int, default=200, help="muvera: FDE candidates rescored exactly (default 200)")
    p.add_argument("--fde", default="", help="muvera FDE settings, e.g. k_sim=4,dim_proj=16,r_reps=20,seed=0")
    p.add_argument("--reduce", choices=("sum", "mean"), default="sum", help="MaxSim reduction (mean for BGE-M3)")
    p.add_argument("--fusion", choices=("rrf", "weighted"), default="rrf", help="hybrid fusion (default rrf)")
    p.add_argument("--weights", default="1,1", help="hybrid weights dense,sparse (default 1,1)")
    p.add_argument("--normalize", choices=("none", "minmax", "zscore", "sigmoid"), default="minmax",
                   help="hybrid weighted: per-query normalisation (default minmax)")
    p.add_argument("--rerank-depth", type=int, default=100, help="rerank: candidates per query (default 100)")
    p.add_argument("--rerank-mode", help="Reranker mode, e.g. colbert or dense+sparse for BGE-M3")
    p.add_argument("--max-queries", type=int, help="evaluate the first N judged queries only (the corpus stays whole)")
    p.add_argument("--max-docs", type=int, help="a corpus subset: the first N documents plus every judged one "
                   "(scores come out higher than on the whole corpus: report them as a subset)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, help="encoder truncation length (default: the model's)")
    p.add_argument("--device", help="cpu, cuda, ... (default: the encoders' choice)")
    p.add_argument("--max-memory", type=int, help="bytes of scores/tokens held at once (default 1 GiB)")
    p.add_argument("--cache", help="directory to save encodings in and reuse them from (keyed by model and texts)")
    p.add_argument("--output", help="write the results as JSON here")
    p.add_argument("--save-runs", help="write each mode's run as a TREC run file into this directory")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (not even transformers' while models load) and no transformers info "
                        "messages")
    p.set_defaults(func=main)


def _load_models(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    paths = {role: getattr(args, f"{role}_model") or args.model for role in ("dense", "sparse", "multi", "rerank")}
    paths = {r: p for r, p in paths.items() if p}
    if not paths:
        return {}, {}
    from .encoders import ColBERT, load  # transformers is heavy: import only when a model is asked for

    kw = {k: v for k, v in (("device", args.device), ("max_length", args.max_length)) if v is not None}
    loaded: dict[Path, Any] = {}  # one load per directory, however many roles or spellings name it
    for p in paths.values():
        if not Path(p).is_dir():
            raise FileNotFoundError(f"eval: model must be a model directory, got {p!r}")
        key = Path(p).resolve()
        if key not in loaded:
            loaded[key] = load(p, **kw)
    models = {r: loaded[Path(p).resolve()] for r, p in paths.items()}
    if "multi" in models and model_kind(models["multi"]) == "dense":  # a bi-encoder: its token vectors
        models["multi"] = ColBERT.from_dense_encoder(models["multi"])
    return models, paths


def main(args: argparse.Namespace) -> int:
    """``fusedscore eval``: print the table, write JSON / runs when asked. Exit 2 on a bad request or file."""
    try:
        with quiet_transformers(args.quiet):
            return _main(args)
    except (DataError, EvalError, FileNotFoundError) as e:
        print(f"fusedscore eval: error: {e}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    modes = _parse_modes(args.mode)
    weights = tuple(float(w) for w in args.weights.split(","))
    if len(weights) != 2:
        raise EvalError(f"eval: --weights must be two numbers dense,sparse, got {args.weights!r}")
    opt = EvalOptions(depth=args.depth, candidates=args.candidates, fusion=args.fusion, weights=weights,
                      normalize=args.normalize, first_stage=args.first_stage, rerank_depth=args.rerank_depth,
                      rerank_mode=args.rerank_mode, reduce=args.reduce, batch_size=args.batch_size,
                      max_memory=args.max_memory, fde=_parse_kv(args.fde, "--fde"), cache=args.cache,
                      quiet=args.quiet)
    full = load_dataset(args.data, args.split)
    data = full.subset(args.max_queries, args.max_docs)
    corpus_subset = len(data.corpus) < len(full.corpus)
    models, paths = _load_models(args)
    if not modes:
        if args.model:
            modes = ["run", "rerank"] if args.run else _KIND_MODES.get(model_kind(models["dense"]), ["dense"])
        elif args.run:
            modes = ["run"]
        else:
            raise EvalError("eval: nothing to evaluate: pass --mode with --model, or --run")
    try:
        _import_ir_measures()  # every row is scored through it: say so before the modes encode (hours)
    except RuntimeError as e:
        raise EvalError(str(e)) from None
    ev = Evaluator(data, models, opt, run_file=args.run)
    t0 = time.perf_counter()
    rows = ev.evaluate(modes)
    table = format_table(rows)
    subset = f" (a subset of the {len(full.corpus)}: --max-docs)" if corpus_subset else ""
    print(f"{data.name} ({data.format}, split {args.split}): {len(data.queries)} queries, {len(data.corpus)} "
          f"documents{subset}")
    print(table)
    if args.output:
        from ._dispatch import backend_info

        out = {"data": str(args.data), "format": data.format, "split": args.split, "queries": len(data.queries),
               "documents": len(data.corpus), "corpus_subset": corpus_subset, "rel_level": data.rel_level, "measures": list(MEASURES), "rows": rows,
               "models": paths, "options": asdict(opt), "encode_seconds": ev.encode_seconds,
               "total_seconds": round(time.perf_counter() - t0, 2), "backend": backend_info()}
        Path(args.output).write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    if args.save_runs:
        d = Path(args.save_runs)
        d.mkdir(parents=True, exist_ok=True)
        for mode, row in zip(modes, rows):
            write_run(ev.run(mode), d / f"{row['mode']}.trec", tag=row["mode"])
    return 0
