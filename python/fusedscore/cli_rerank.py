"""``fusedscore rerank``: rerank JSONL files of (query, candidates) with a local model, streaming.

Input, one JSON object per line (blank lines are skipped), in either form:

- ``{"query": "...", "documents": ["...", ...]}``
- ``{"qid": ..., "query": "...", "candidates": [{"doc_id": ..., "text": "..."}, ...]}``

Output, one line per input line, in input order, every other input field passed through:

- ``{"query": ..., "results": [{"corpus_id": i, "score": s}, ...]}`` (``corpus_id`` indexes ``documents``;
  ``"text"`` too with ``--return-documents``)
- ``{"qid": ..., "query": ..., "results": [{"doc_id": ..., "score": s}, ...]}``

Results are sorted best first and cut to ``--top-k``. A score of ``-inf`` (a document with no scoreable
token) is written as ``null``: JSON has no infinity. Rows are scored in batches of ``--queries-per-batch``
(one kernel call each) and written as soon as they are scored; a bad line (bad JSON, a missing or
mistyped field) stops the run with ``<file>:<line>: <why>`` after every line before it has been scored
and written, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Iterator

__all__ = ["register", "run", "rerank_rows", "parse_row", "iter_rows", "BadLine"]


class BadLine(ValueError):
    """A line of the input that cannot be reranked: ``lineno`` (1-based) and ``why``."""

    def __init__(self, lineno: int, why: str):
        super().__init__(f"line {lineno}: {why}")
        self.lineno, self.why = lineno, why


def parse_row(obj: Any, lineno: int = 0) -> dict[str, Any]:
    """Validate one input object. Returns it with ``_texts`` (the candidate texts) and ``_ids`` (the doc ids, or
    None for the ``documents`` form) added. Raises ``BadLine`` naming the field and the problem."""
    if not isinstance(obj, dict):
        raise BadLine(lineno, f"a line must be a JSON object, got {type(obj).__name__}")
    if "query" not in obj:
        raise BadLine(lineno, "missing field 'query'")
    if not isinstance(obj["query"], str):
        raise BadLine(lineno, f"'query' must be a string, got {type(obj['query']).__name__}")
    has_docs, has_cands = "documents" in obj, "candidates" in obj
    if has_docs == has_cands:
        raise BadLine(lineno, "needs exactly one of the fields 'documents' (list of strings) or 'candidates' "
                              "(list of {doc_id, text})" + (", got both" if has_docs else ", got neither"))
    row = dict(obj)
    if has_docs:
        docs = obj["documents"]
        if not isinstance(docs, list):
            raise BadLine(lineno, f"'documents' must be a list of strings, got {type(docs).__name__}")
        for i, d in enumerate(docs):
            if not isinstance(d, str):
                raise BadLine(lineno, f"documents[{i}] must be a string, got {type(d).__name__}")
        row["_texts"], row["_ids"] = docs, None
        return row
    cands = obj["candidates"]
    if not isinstance(cands, list):
        raise BadLine(lineno, f"'candidates' must be a list of {{doc_id, text}} objects, got {type(cands).__name__}")
    texts, ids = [], []
    for i, c in enumerate(cands):
        if not isinstance(c, dict):
            raise BadLine(lineno, f"candidates[{i}] must be an object {{doc_id, text}}, got {type(c).__name__}")
        for field in ("doc_id", "text"):
            if field not in c:
                raise BadLine(lineno, f"candidates[{i}] is missing field '{field}'")
        if not isinstance(c["text"], str):
            raise BadLine(lineno, f"candidates[{i}].text must be a string, got {type(c['text']).__name__}")
        texts.append(c["text"])
        ids.append(c["doc_id"])
    row["_texts"], row["_ids"] = texts, ids
    return row


def _score_value(s: float) -> float | None:
    return s if math.isfinite(s) else None


def rerank_rows(reranker: Any, rows: list[dict[str, Any]], *, top_k: int | None = None, batch_size: int = 32,
                return_documents: bool = False) -> list[dict[str, Any]]:
    """Rerank a batch of input rows (dicts in either input form) with one ``rerank_batch`` call.

    This is the unit of work a distributed runner maps over batches of rows.
    Returns the output rows, in order.  Raises ``BadLine`` (lineno = position in ``rows``, 1-based) for a bad row.
    """
    parsed = [r if "_texts" in r else parse_row(r, i + 1) for i, r in enumerate(rows)]
    ranked = reranker.rerank_batch([r["query"] for r in parsed], [r["_texts"] for r in parsed], top_k=top_k,
                                   batch_size=batch_size)
    out = []
    for r, res in zip(parsed, ranked):
        o = {k: v for k, v in r.items() if k not in ("documents", "candidates", "_texts", "_ids")}
        if r["_ids"] is None:
            o["results"] = [dict({"corpus_id": x["corpus_id"], "score": _score_value(x["score"])},
                                 **({"text": r["_texts"][x["corpus_id"]]} if return_documents else {}))
                            for x in res]
        else:
            o["results"] = [dict({"doc_id": r["_ids"][x["corpus_id"]], "score": _score_value(x["score"])},
                                 **({"text": r["_texts"][x["corpus_id"]]} if return_documents else {}))
                            for x in res]
        out.append(o)
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(f"{text} is out of the float range")
    return x


def iter_rows(lines: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(lineno, validated row) for each non-blank line; raises ``BadLine`` at the first bad one."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as e:
            raise BadLine(lineno, f"bad JSON ({e.msg} at column {e.colno})") from None
        except ValueError as e:  # NaN / Infinity: Python reads them, the output (strict JSON) could not hold them
            raise BadLine(lineno, f"bad JSON ({e})") from None
        yield lineno, parse_row(obj, lineno)


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .reranker import Reranker

    prog = "fusedscore rerank"
    if not os.path.isdir(args.model):
        print(f"{prog}: error: --model must be a model directory, got {args.model!r}", file=sys.stderr)
        return 2
    if not os.path.isfile(args.input):
        print(f"{prog}: error: --input must be a JSONL file, got {args.input!r}", file=sys.stderr)
        return 2
    if os.path.exists(args.output) and os.path.samefile(args.input, args.output):  # "w" would truncate the input
        print(f"{prog}: error: --output must not be the --input file, got {args.output!r}", file=sys.stderr)
        return 2
    if args.top_k is not None and args.top_k <= 0:
        print(f"{prog}: error: --top-k must be > 0, got {args.top_k}", file=sys.stderr)
        return 2
    if getattr(args, "ray", None) is not None:  # the same job on a Ray cluster (issue 7)
        from .integrations.ray import run_cli

        return run_cli(args)
    from .encoders import load

    model = load(args.model, device=args.device)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    reranker = Reranker(model, mode=args.mode, weights=weights, normalize=args.normalize, fusion=args.fusion,
                        max_memory=args.max_memory, device=args.device)
    total = _count_lines(args.input)
    n_queries = n_pairs = 0
    t0 = time.perf_counter()
    status = 0
    with open(args.input, encoding="utf-8") as fin, open(args.output, "w", encoding="utf-8") as fout, \
            tqdm(total=total, unit="query", desc="rerank", disable=args.no_progress or None, file=sys.stderr) as bar:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal n_queries, n_pairs
            if not batch:
                return
            for o in rerank_rows(reranker, batch, top_k=args.top_k, batch_size=args.batch_size,
                                 return_documents=args.return_documents):
                fout.write(json.dumps(o, ensure_ascii=False, allow_nan=False) + "\n")
            fout.flush()
            n_queries += len(batch)
            n_pairs += sum(len(r["_texts"]) for r in batch)
            bar.update(len(batch))
            batch.clear()

        try:
            for _, row in iter_rows(fin):
                batch.append(row)
                if len(batch) >= args.queries_per_batch:
                    flush()
        except BadLine as e:
            flush()  # everything before the bad line is scored and written first
            print(f"{prog}: error: {args.input}:{e.lineno}: {e.why} ({n_queries} queries before it were "
                  f"written to {args.output})", file=sys.stderr)
            status = 2
        else:
            flush()
    dt = time.perf_counter() - t0
    print(f"{prog}: {n_queries} queries, {n_pairs} pairs in {dt:.2f} s ({n_pairs / dt if dt > 0 else 0.0:.1f} pairs/s)"
          f" -> {args.output}")
    return status


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("rerank", help="rerank a JSONL file of queries and candidates with a local model",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="local model directory (any format fusedscore.encoders.load reads)")
    p.add_argument("--input", required=True, help="input JSONL")
    p.add_argument("--output", required=True, help="output JSONL (overwritten)")
    p.add_argument("--top-k", type=int, default=None, help="keep the best K per query (default: all)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: the model's)")
    p.add_argument("--batch-size", type=int, default=32, help="encoder batch size (texts per forward pass)")
    p.add_argument("--queries-per-batch", type=int, default=64,
                   help="input rows scored together, one kernel call per signal (default 64)")
    p.add_argument("--mode", default=None, help="signals: dense, sparse, colbert, cross or a '+' mix (BGE-M3)")
    p.add_argument("--weights", default=None, help="comma-separated weight per signal, e.g. 0.4,0.2,0.4")
    p.add_argument("--normalize", default="none", choices=["none", "minmax", "zscore", "sigmoid"])
    p.add_argument("--fusion", default="weighted", choices=["weighted", "rrf"])
    p.add_argument("--max-memory", type=int, default=None, help="bytes of embeddings per scoring chunk")
    p.add_argument("--return-documents", action="store_true", help="include each document's text in the results")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster at ADDRESS (e.g. auto, ray://head:10001), or on a new local one when "
                        "ADDRESS is omitted; needs pip install \"fusedscore[ray]\"")
    p.set_defaults(func=run)
