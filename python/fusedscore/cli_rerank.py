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
(one kernel call each) and written as soon as they are scored. Errors:

- a bad line (bad JSON, invalid UTF-8, a lone surrogate escape such as ``"\\ud800"``, a missing or mistyped
  field) stops the run with ``<file>:<line>: <why>`` after every line before it has been scored and written:
  exit status 2;
- scoring that fails (the model raised) stops it with ``<file>:<first>-<last>: scoring failed: <why>``
  naming the lines of the failing batch, every batch before it written: exit status 1;
- a bad argument or a model that cannot be used (not loadable, ``--weights`` that do not fit its signals,
  a multi-label cross-encoder without ``--label-index``) is reported before any line is read: exit status 2;
  so is an ``--output`` that cannot be written (no such directory, a directory, no permission), checked
  before the model loads;
- an output that fails while it is written (a full disk) stops the run with one line naming it: exit status 2;
- Ctrl-C stops it with one line: exit status 130.

After any of these the output file holds exactly the queries the message counts, whole lines in input order.

The summary line on stdout counts queries, pairs, pairs/s and the inputs the encoders truncated to the
model's length limit.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from .rows import BadLine, SetupError, iter_rows, load_model, score_lines

__all__ = ["register", "run", "parse_weights"]

_PROG = "fusedscore rerank"


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def parse_weights(text: str | None) -> list[float] | None:
    """``--weights`` "0.4,0.2,0.4" -> [0.4, 0.2, 0.4] (None -> None). Raises ValueError naming the flag."""
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise ValueError(f"--weights must be comma-separated numbers, one per signal (e.g. 0.4,0.2,0.4), "
                         f"got {text!r}") from None


def _check_args(args: argparse.Namespace) -> str | None:
    """The first argument error, as a message (None: none). Checked before a model or a line is read."""
    if not os.path.isdir(args.model):
        return f"--model must be a model directory, got {args.model!r}"
    if not os.path.isfile(args.input):
        return f"--input must be a JSONL file, got {args.input!r}"
    if os.path.exists(args.output) and os.path.samefile(args.input, args.output):  # "w" would truncate the input
        return f"--output must not be the --input file, got {args.output!r}"
    for flag, v in (("--top-k", args.top_k), ("--batch-size", args.batch_size),
                    ("--queries-per-batch", args.queries_per_batch), ("--max-memory", args.max_memory),
                    ("--concurrency", args.concurrency)):
        if v is not None and v <= 0:
            return f"{flag} must be > 0, got {v}"
    if args.label_index is not None and args.label_index < 0:
        return f"--label-index must be >= 0, got {args.label_index}"
    if args.max_length is not None and args.max_length < 2:  # the encoders' own floor: room for [CLS] and [SEP]
        return f"--max-length must be >= 2 (tokens, special tokens included), got {args.max_length}"
    for flag, v, low in (("--num-cpus", args.num_cpus, "> 0"), ("--num-gpus", args.num_gpus, ">= 0")):
        if v is not None and (not math.isfinite(v) or v < 0 or (v == 0 and low == "> 0")):
            return f"{flag} must be a number {low}, got {v:g}"
    if args.ray is None:
        for flag, v in (("--concurrency", args.concurrency), ("--num-cpus", args.num_cpus),
                        ("--num-gpus", args.num_gpus)):
            if v is not None:
                return f"{flag} must come with --ray (it sizes the Ray workers), got {flag} {v:g} without it"
    try:
        parse_weights(args.weights)
    except ValueError as e:
        return str(e)
    return _check_output(args.output)  # last: it touches the filesystem, and only when all else is right


def _check_output(path: str) -> str | None:
    """Why ``path`` cannot be the output (None: it can), found before a model loads or a line is read.

    The output is really opened to find out: permission bits do not tell (root writes past them, a read-only
    mount refuses everyone). An existing file is opened for appending, so nothing in it changes; a new one is
    created and removed again, so a run that stops before its first line leaves no file behind."""
    if os.path.isdir(path):
        return f"--output must be a file, got {path!r} (a directory)"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"--output must be a file in an existing directory, got {path!r} (no directory {parent!r})"
    try:
        if os.path.exists(path):
            open(path, "ab").close()
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.unlink(path)
    except OSError as e:
        return f"--output must be a file this user can write, got {path!r} ({type(e).__name__}: {e.strerror})"
    return None


def _open_output(path: str) -> Any:
    """The output file, binary: the writer counts the bytes of whole lines, to cut a failed write back to them."""
    return open(path, "wb")


def _local_reranker(args: argparse.Namespace) -> Any:
    """The Reranker of a local run; SetupError (a message for the user) when the model or options cannot work."""
    from .reranker import Reranker

    if str(args.device or "").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():  # else: an AssertionError from deep inside model.to()
            raise SetupError(f"--device must be a device torch can use, got {args.device!r} with no CUDA GPU visible")
    try:
        model = load_model(args.model, device=args.device, label_index=args.label_index, max_length=args.max_length)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        raise SetupError(f"--model {args.model!r} cannot be used: {e}") from e
    n = getattr(model, "num_labels", None)
    if n is not None and n != 1 and getattr(model, "label_index", None) is None:
        raise SetupError(f"--label-index must be given for a cross-encoder with num_labels={n} (which logit column "
                         f"is the relevance score?), got none")
    try:
        return Reranker(model, weights=parse_weights(args.weights), device=args.device, **_reranker_options(args))
    except (ValueError, TypeError) as e:  # --mode, --weights that do not fit this model's signals
        raise SetupError(str(e)) from e


class _LocalScorer:
    """Scores in this process. The interface the driver loop uses (``integrations.ray.RayScorer`` has it too):
    ``submit(rows) -> handle``, ``result(handle) -> (lines, truncated)``, ``describe(error)``, ``close()``,
    ``max_in_flight`` batches left pending after a submit and ``reported``, the error types shown as a message
    alone. ``submit`` only queues, so that a failure is raised by ``result``, where it is tied to its lines."""

    max_in_flight = 0
    reported: tuple[type[BaseException], ...] = (ValueError, TypeError, RuntimeError, OSError, MemoryError)

    def __init__(self, reranker: Any, *, top_k: int | None, batch_size: int, return_documents: bool):
        self.reranker = reranker
        self.options = dict(top_k=top_k, batch_size=batch_size, return_documents=return_documents)

    def submit(self, rows: list[dict[str, Any]]) -> Any:
        return rows

    def result(self, handle: Any) -> tuple[list[str], int]:
        return score_lines(self.reranker, handle, **self.options)

    def describe(self, e: BaseException) -> str:
        return f"{type(e).__name__}: {e}"

    def close(self) -> None:
        pass


@dataclass
class _Pending:
    first: int  # line numbers of the batch's first and last rows
    last: int
    rows: int
    pairs: int
    handle: Any


class _ScoringFailed(Exception):
    def __init__(self, pending: _Pending, error: BaseException):
        super().__init__(f"lines {pending.first}-{pending.last}: {error}")
        self.pending, self.error = pending, error


class _WriteFailed(Exception):
    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _run_job(args: argparse.Namespace, total: int, make_scorer: Callable[[], Any], on: str) -> int:
    """Read, validate, score (``make_scorer()``, started at the first valid batch) and write in input order."""
    from tqdm import tqdm

    n_queries = n_pairs = n_truncated = 0
    good_bytes = 0  # the output's length up to the last batch written whole
    scorer: Any = None
    queue: deque[_Pending] = deque()
    batch: list[tuple[int, dict[str, Any]]] = []
    bad: BadLine | None = None
    write_error: OSError | None = None
    status, reraise, interrupted = 0, None, False
    t0 = time.perf_counter()
    try:
        fout = _open_output(args.output)
    except OSError as e:  # checked before the model loaded; this is a change since (removed directory, full quota)
        print(f"{_PROG}: error: --output {args.output!r} could not be written ({type(e).__name__}: {e})",
              file=sys.stderr)
        return 2
    with open(args.input, "rb") as fin, \
            tqdm(total=total, unit="query", desc="rerank", disable=args.no_progress or None, file=sys.stderr) as bar:

        def submit() -> None:
            nonlocal scorer
            if not batch:
                return
            if scorer is None:  # no worker starts for a file whose first line is bad
                scorer = make_scorer()
            rows = [r for _, r in batch]
            queue.append(_Pending(batch[0][0], batch[-1][0], len(rows), sum(len(r["_texts"]) for r in rows),
                                  scorer.submit(rows)))
            batch.clear()

        def drain(keep: int) -> None:
            nonlocal n_queries, n_pairs, n_truncated, good_bytes
            while len(queue) > keep:
                p = queue.popleft()  # oldest first: the output is in input order and always a prefix of it
                try:
                    lines, truncated = scorer.result(p.handle)
                except Exception as e:
                    raise _ScoringFailed(p, e) from e
                data = "".join(s + "\n" for s in lines).encode("utf-8")
                try:
                    fout.write(data)
                    fout.flush()
                except OSError as e:
                    raise _WriteFailed(e) from e
                good_bytes += len(data)
                n_queries, n_pairs, n_truncated = n_queries + p.rows, n_pairs + p.pairs, n_truncated + truncated
                bar.update(p.rows)

        try:
            try:
                for lineno, row in iter_rows(fin):
                    batch.append((lineno, row))
                    if len(batch) >= args.queries_per_batch:
                        submit()
                        drain(scorer.max_in_flight)
            except BadLine as e:
                bad = e
            except (SetupError, _ScoringFailed, _WriteFailed):
                raise
            except Exception:  # not a bad line but a bug: the lines read before it are still scored and written
                submit()
                drain(0)
                raise
            submit()  # everything before the end (or the bad line) is scored and written
            drain(0)
        except SetupError as e:
            print(f"{_PROG}: error: {e}", file=sys.stderr)
            status = 2
        except _ScoringFailed as f:
            p = f.pending
            span = f"{p.first}" if p.first == p.last else f"{p.first}-{p.last}"
            print(f"{_PROG}: error: {args.input}:{span}: scoring failed: {scorer.describe(f.error)} ({n_queries} "
                  f"queries before them were written to {args.output})", file=sys.stderr)
            status = 1
            if not isinstance(f.error, scorer.reported):  # a bug, not a model error: keep its traceback
                reraise = f.error
        except _WriteFailed as w:
            write_error = w.error
        except KeyboardInterrupt:  # Ctrl-C: the user's choice, not a crash (no traceback)
            interrupted = True
        finally:
            try:
                if scorer is not None:
                    scorer.close()
            finally:
                try:
                    fout.close()  # after a failed write it retries the buffered rest and fails again
                except OSError as e:
                    write_error = write_error or e
    if write_error is not None or interrupted:
        _cut(args.output, good_bytes)
    if interrupted:
        print(f"{_PROG}: interrupted; the first {n_queries} queries were written to {args.output}", file=sys.stderr)
        return 130
    if write_error is not None:
        print(f"{_PROG}: error: --output {args.output!r} could not be written ({type(write_error).__name__}: "
              f"{write_error}; the first {n_queries} queries were written)", file=sys.stderr)
        status, bad = 2, None  # the lines after the failure were never written: a bad line among them is moot
    if bad is not None:
        print(f"{_PROG}: error: {args.input}:{bad.lineno}: {bad.why} ({n_queries} queries before it were "
              f"written to {args.output})", file=sys.stderr)
        status = status or 2
    dt = time.perf_counter() - t0
    print(f"{_PROG}: {n_queries} queries, {n_pairs} pairs in {dt:.2f} s ({n_pairs / dt if dt > 0 else 0.0:.1f} "
          f"pairs/s, {n_truncated} inputs truncated){on} -> {args.output}")
    if reraise is not None:
        raise reraise
    return status


def _cut(path: str, size: int) -> None:
    """Cut a regular output file back to ``size`` bytes: the whole lines of the batches counted as written, not
    half a batch a full disk or Ctrl-C left behind. A device or pipe has nothing to cut; a cut that fails
    leaves the file as it is, and the error already reported stands."""
    if not os.path.isfile(path):
        return
    try:
        os.truncate(path, size)
    except OSError as e:
        print(f"{_PROG}: warning: --output {path!r} could not be cut back to its whole lines ({e}); its last line "
              f"may be partial", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """``fusedscore rerank``: check the arguments and the output, load the model, run the job."""
    from .cli import quiet_transformers

    msg = _check_args(args)
    if msg is not None:
        print(f"{_PROG}: error: {msg}", file=sys.stderr)
        return 2
    with quiet_transformers(args.no_progress):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    total = _count_lines(args.input)
    if args.ray is not None:  # the same job on a Ray cluster
        from .integrations.ray import RayScorer, import_ray

        try:
            ray = import_ray()
        except RuntimeError as e:
            print(f"{_PROG}: error: --ray: {e}", file=sys.stderr)
            return 2
        n_batches = -(-total // args.queries_per_batch)
        return _run_job(args, total, lambda: RayScorer(
            ray, args.model, n_batches=n_batches, address=args.ray or None, device=args.device,
            concurrency=args.concurrency, num_cpus=args.num_cpus, num_gpus=args.num_gpus, quiet=args.no_progress,
            weights=parse_weights(args.weights), label_index=args.label_index, max_length=args.max_length,
            **_reranker_options(args), **_output_options(args)), " on Ray")
    try:
        reranker = _local_reranker(args)
    except SetupError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 2
    return _run_job(args, total, lambda: _LocalScorer(reranker, **_output_options(args)), "")


def _reranker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Reranker`` keywords the flags set (``--weights`` aside: parsed where it is checked)."""
    return dict(mode=args.mode, normalize=args.normalize, fusion=args.fusion, max_memory=args.max_memory)


def _output_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``rows.score_lines`` keywords the flags set."""
    return dict(top_k=args.top_k, batch_size=args.batch_size, return_documents=args.return_documents)


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
    p.add_argument("--max-length", type=int, default=None,
                   help="encoder truncation length (default: the model's)")
    p.add_argument("--max-memory", type=int, default=None, help="bytes of embeddings per scoring chunk")
    p.add_argument("--label-index", type=int, default=None,
                   help="the logit column a multi-label cross-encoder (num_labels > 1) ranks by")
    p.add_argument("--return-documents", action="store_true", help="include each document's text in the results")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true",
                   help="no progress bars (not even transformers' while the model loads) and no transformers "
                        "info messages")
    g = p.add_argument_group("Ray", "run the job on a Ray cluster; needs pip install \"fusedscore[ray]\"")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster at ADDRESS (e.g. auto, ray://head:10001), or on a new local one when "
                        "ADDRESS is omitted")
    g.add_argument("--concurrency", type=int, default=None, metavar="N",
                   help="Ray workers, each with its own copy of the model (default: as many as the cluster's "
                        "CPUs and GPUs fit, at most one per batch)")
    g.add_argument("--num-cpus", type=float, default=None, metavar="C",
                   help="CPUs per Ray worker, also its torch threads (default 1)")
    g.add_argument("--num-gpus", type=float, default=None, metavar="G",
                   help="GPUs per Ray worker; fractions share a GPU (default: 1 with --device cuda, else 0)")
    p.set_defaults(func=run)

