"""Batch reranking on Ray Data: the local ``Reranker``, mapped over a dataset of (query, candidates) rows.

    import ray
    from fusedscore.integrations.ray import rerank_dataset

    ray.init()                                    # or ray.init(address="auto") on a running cluster
    ds = ray.data.read_json("/shared/queries.jsonl")  # rows {"qid", "query", "candidates": [...]}
    ranked = rerank_dataset(ds, "/shared/models/colbert", concurrency=4, num_gpus=1, top_k=100)
    ranked.write_parquet("/shared/ranked")

Rows (one per query), in either form:

- ``{"qid": ..., "query": str, "candidates": [{"doc_id": ..., "text": str}, ...]}`` ->
  ``{"qid": ..., "query": ..., "results": [{"doc_id": ..., "score": float}, ...]}``
- ``{"qid": ..., "query": str, "candidates": [str, ...]}`` (or the column ``documents``) ->
  ``{..., "results": [{"corpus_id": int, "score": float}, ...]}`` (``corpus_id`` indexes the list)

Every column except ``candidates`` / ``documents`` passes through unchanged; ``results`` is sorted best
first and cut to ``top_k``; a score of ``-inf`` (a document with no scoreable token) is ``None``.

Scoring is ``fusedscore.rows.rerank_rows`` on a ``fusedscore.Reranker``: exactly the code path of the
local API and of ``fusedscore rerank`` (one ``rerank_batch`` call per batch of rows); this module only
converts batches and wires ``map_batches``. Each Ray actor loads the model once, in ``__init__``.
``model_dir`` must be readable on every node (a shared filesystem), and fusedscore installed there.

``fusedscore rerank --ray`` uses Ray's actors directly (``RayScorer``): the driver streams the local input
file to them in bounded batches, so line numbers, the stop at a bad line and the input order of the
output are the local run's.

Ray is an optional dependency (``pip install "fusedscore[ray]"``), imported on first use only.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import numpy as np

from ..rows import BadLine, SetupError, load_model, parse_row, rerank_rows, score_lines

__all__ = ["RerankPredictor", "rerank_dataset", "RayScorer", "import_ray"]

_LIST_COLUMNS = ("candidates", "documents")
_BATCH_FORMATS = ("numpy", "pandas")


def import_ray() -> Any:
    """``import ray`` (with Ray Data), or a RuntimeError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships in the ray[data] extra
    except ImportError as e:
        raise RuntimeError(f'fusedscore.integrations.ray: ray[data] must be installed (pip install "fusedscore[ray]"), '
                           f"got ImportError: {e}") from e
    return ray


def _assigned_gpus() -> list[Any]:
    """GPU ids Ray gave this worker (Ray sets CUDA_VISIBLE_DEVICES to them), [] outside a Ray worker."""
    try:
        import ray
    except ImportError:
        return []
    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


def _py(x: Any) -> Any:
    """Arrow/NumPy-backed values (object arrays, numpy scalars) -> plain Python lists, dicts and scalars."""
    if isinstance(x, np.ndarray):
        return x.item() if x.ndim == 0 else [_py(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {k: _py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_py(v) for v in x]
    return x


def _object_array(items: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``items`` (np.array would turn equal-length lists into a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    for i, x in enumerate(items):
        out[i] = x
    return out


class RerankPredictor:
    """Callable class for ``ray.data.Dataset.map_batches``: reranks a batch of rows with a ``Reranker``.

    The model is loaded once per actor, here; each call scores its batch with one ``rerank_batch``.
    Usable without Ray too (call it on a batch), which is how its conversions are tested.

    Args:
        model_dir: local model directory (any format ``fusedscore.encoders.load`` reads), readable by the worker.
        mode, weights, normalize, fusion, max_memory, **reranker_kwargs: as ``fusedscore.Reranker``.
        top_k: keep the best ``top_k`` per query (default: all).
        label_index: the logit column a multi-label cross-encoder ranks by (``rows.load_model``).
        max_length: the encoder's truncation length in tokens (default: the model's), as ``--max-length``.
        device: "cpu", "cuda", ... Default: "cuda" when Ray assigned this worker a GPU, else the model's default.
        batch_size: encoder batch size (texts per forward pass), as ``fusedscore rerank --batch-size``.
        return_documents: add each document's ``text`` to its result.
    Raises:
        ValueError, TypeError: from ``Reranker`` (bad mode, weights, ...) and ``check``-style argument errors.
    """

    def __init__(self, model_dir: str, *, mode: Any = None, top_k: int | None = None, device: Any = None,
                 batch_size: int = 32, weights: Any = None, normalize: str = "none", fusion: str = "weighted",
                 max_memory: int | None = None, return_documents: bool = False, label_index: int | None = None,
                 max_length: int | None = None, **reranker_kwargs: Any):
        from .. import _check as C
        from ..reranker import Reranker

        where = "RerankPredictor"
        self.top_k = None if top_k is None else C.check_k(top_k, where, "top_k")
        self.batch_size = C.check_k(batch_size, where, "batch_size")
        self.return_documents = bool(return_documents)
        if device is None and _assigned_gpus():
            device = "cuda"  # Ray masks CUDA_VISIBLE_DEVICES to this actor's GPU(s): cuda means cuda:0 of those
        self.device = device
        model = load_model(str(model_dir), device=device, label_index=label_index, max_length=max_length)
        self.reranker = Reranker(model, mode=mode, weights=weights, normalize=normalize, fusion=fusion,
                                 max_memory=max_memory, device=device, **reranker_kwargs)

    def rank_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rerank rows in the ``fusedscore rerank`` JSONL forms (``documents`` or ``candidates`` of
        ``{doc_id, text}``): ``rows.rerank_rows`` with this predictor's reranker and options."""
        return rerank_rows(self.reranker, rows, top_k=self.top_k, batch_size=self.batch_size,
                           return_documents=self.return_documents)

    def __call__(self, batch: Any) -> Any:
        """``{column: [n] values}`` (dict of numpy arrays, or a pandas DataFrame) -> the same format, with
        ``candidates`` / ``documents`` replaced by ``results``; other columns pass through unchanged."""
        where = "RerankPredictor"
        is_pandas = type(batch).__name__ == "DataFrame" and hasattr(batch, "columns")
        if not is_pandas and not isinstance(batch, dict):
            raise TypeError(f"{where}: batch must be a dict of numpy arrays or a pandas DataFrame "
                            f"(map_batches batch_format='numpy' or 'pandas'), got {type(batch).__name__}")
        columns = list(batch.columns) if is_pandas else list(batch)
        rows = _rows_of(batch, columns, is_pandas, where)
        results = [o["results"] for o in self.rank_rows(rows)]
        keep = [c for c in columns if c not in _LIST_COLUMNS]
        if is_pandas:
            import pandas as pd

            return batch[keep].assign(results=pd.Series(_object_array(results), index=batch.index, dtype=object))
        out = {c: batch[c] for c in keep}
        out["results"] = _object_array(results)
        return out


def _rows_of(batch: Any, columns: list[str], is_pandas: bool, where: str) -> list[dict[str, Any]]:
    """The batch's rows as validated ``rows`` rows: ``query`` plus ``documents`` (candidates given as
    strings) or ``candidates`` (``{doc_id, text}`` objects)."""
    have = [c for c in _LIST_COLUMNS if c in columns]
    if "query" not in columns or len(have) != 1:
        raise ValueError(f"{where}: batch must have the columns 'query' and one of 'candidates' or 'documents', "
                         f"got {columns}")
    col = have[0]

    def values(name: str) -> list[Any]:
        v = batch[name]
        return v.tolist() if is_pandas else list(v)

    queries, lists = values("query"), values(col)
    qids = values("qid") if "qid" in columns else [None] * len(queries)
    rows = []
    for i, (q, cands, qid) in enumerate(zip(queries, lists, qids)):
        cands, q = _py(cands), _py(q)
        is_texts = isinstance(cands, list) and all(isinstance(c, str) for c in cands)
        obj = {"query": q, "documents" if is_texts else "candidates": cands}
        try:
            rows.append(parse_row(obj, i + 1))
        except BadLine as e:
            name = f"qid={_py(qid)!r}" if "qid" in columns else f"{i} of the batch"
            raise ValueError(f"{where}: row {name}: {e.why}") from None
    return rows


# ----------------------------------------------------------------------------- the Dataset helper
def _compute_strategy(ray: Any, concurrency: Any, where: str) -> Any:
    """``concurrency`` (actors: n, or (min, max) autoscaling; None = 1 up to what the cluster fits) -> an
    ``ActorPoolStrategy`` (``map_batches(concurrency=)`` is deprecated since Ray 2.51; ``compute=`` works
    from Ray 2.9 on)."""
    pool = ray.data.ActorPoolStrategy
    if concurrency is None:
        return pool(min_size=1, max_size=None)
    if isinstance(concurrency, (int, np.integer)) and not isinstance(concurrency, bool) and concurrency > 0:
        return pool(size=int(concurrency))
    if (isinstance(concurrency, tuple) and len(concurrency) == 2
            and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in concurrency)
            and 0 < concurrency[0] <= concurrency[1]):
        return pool(min_size=int(concurrency[0]), max_size=int(concurrency[1]))
    raise ValueError(f"{where}: concurrency must be None, an int > 0 or a (min, max) tuple with 0 < min <= max, "
                     f"got {concurrency!r}")


def rerank_dataset(ds: Any, model_dir: str, *, mode: Any = None, top_k: int | None = None, device: Any = None,
                   batch_size: int = 32, queries_per_batch: int = 64, num_gpus: float = 0,
                   num_cpus: float | None = None, concurrency: Any = None, batch_format: str = "numpy",
                   return_documents: bool = False, **reranker_kwargs: Any) -> Any:
    """Rerank every row of a Ray Dataset with ``RerankPredictor`` actors (lazy: returns the mapped Dataset).

    Args:
        ds: a ``ray.data.Dataset`` of rows ``{"qid", "query", "candidates": [...]}`` (module docstring).
        model_dir: model directory readable on every worker node.
        mode, top_k, device, batch_size, return_documents, **reranker_kwargs: as ``RerankPredictor``
            (``batch_size`` is the encoder's, texts per forward pass).
        queries_per_batch: rows per ``map_batches`` call, i.e. per ``rerank_batch`` (``--queries-per-batch``).
        num_gpus: GPUs per actor (fractions share a GPU); > 0 puts the model on "cuda" unless ``device`` says.
        num_cpus: CPUs per actor (Ray's default 1; Ray sets the actor's OMP/torch threads to it).
        concurrency: number of actors: n, a (min, max) autoscaling range, or None (1 up to what fits).
        batch_format: "numpy" (dict of arrays) or "pandas": the format the predictor receives and returns.
    Returns:
        The Dataset of ranked rows (``results`` instead of ``candidates``). Row order follows Ray Data's
        ``preserve_order`` execution option; match rows by ``qid`` otherwise.
    Raises:
        RuntimeError: Ray Data is not installed.  ValueError, TypeError: bad arguments.
    """
    from .. import _check as C

    where = "rerank_dataset"
    ray = import_ray()
    if not isinstance(ds, ray.data.Dataset):
        raise TypeError(f"{where}: ds must be a ray.data.Dataset, got {type(ds).__name__}")
    if batch_format not in _BATCH_FORMATS:
        raise ValueError(f"{where}: batch_format must be one of {_BATCH_FORMATS}, got {batch_format!r}")
    queries_per_batch = C.check_k(queries_per_batch, where, "queries_per_batch")
    for name, v in (("num_gpus", num_gpus), ("num_cpus", num_cpus)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0):
            raise ValueError(f"{where}: {name} must be a number >= 0, got {v!r}")
    compute = _compute_strategy(ray, concurrency, where)
    remote_args: dict[str, Any] = {}
    if num_gpus:
        remote_args["num_gpus"] = num_gpus
    if num_cpus is not None:
        remote_args["num_cpus"] = num_cpus
    kwargs = dict(mode=mode, top_k=top_k, device=device, batch_size=batch_size, return_documents=return_documents,
                  **reranker_kwargs)
    return ds.map_batches(RerankPredictor, fn_constructor_args=(str(model_dir),), fn_constructor_kwargs=kwargs,
                          batch_size=queries_per_batch, batch_format=batch_format, compute=compute, **remote_args)


# ----------------------------------------------------------------------------- fusedscore rerank --ray
class _LineWorker:
    """Ray actor behind ``fusedscore rerank --ray``: a ``RerankPredictor`` turning validated rows into the
    output JSON lines, through ``rows.score_lines`` like the local run (so the files are identical)."""

    def __init__(self, model_dir: str, kwargs: dict[str, Any], quiet: bool = False):
        from ..cli import quiet_transformers

        try:
            # the worker's stderr is forwarded to the driver's: transformers' loading bars and, under --quiet,
            # its messages stay out of it as they do in a local run
            with quiet_transformers(quiet):
                self.predictor, self.error = RerankPredictor(model_dir, **kwargs), None
        except Exception as e:  # re-raised by ready(): Ray reports a raising __init__ only as an ActorDiedError
            self.predictor, self.error = None, e  # whose text holds the traceback, with no exception to show

    def ready(self) -> None:
        if self.error is not None:
            raise self.error

    def rank(self, rows: list[dict[str, Any]]) -> tuple[list[str], int]:
        p = self.predictor
        return score_lines(p.reranker, rows, top_k=p.top_k, batch_size=p.batch_size,
                           return_documents=p.return_documents)


class RayScorer:
    """The scorer of ``fusedscore rerank --ray`` (the interface of ``cli_rerank``'s local one).

    Args:
        ray: the ``ray`` module (``import_ray()``).
        model_dir: model directory readable on every worker node.
        n_batches: batches in the job: no more workers start than there are batches.
        address: the cluster to join (``ray.init(address=)``); None starts a new local one. Unused when this
            process already joined a cluster.
        device: as ``RerankPredictor``; "cuda:1" on the driver is "cuda" on a worker (Ray masks its GPUs).
        concurrency: workers (None: as many as the cluster's CPUs and GPUs fit).
        num_cpus: CPUs per worker (None: 1).  num_gpus: GPUs per worker (None: 1 on a cuda device, else 0).
        quiet: silence transformers' loading bars and messages in the workers (``--quiet``).
        **predictor_kwargs: the workers' ``RerankPredictor`` keywords (mode, top_k, batch_size, weights, ...).
    Raises:
        SetupError: no cluster at ``address``, or one that cannot fit a worker.

    The driver reads and validates the input as it goes (line numbers, the first bad line) and hands batches
    of rows to ``_LineWorker`` actors, waiting for the oldest whenever more than ``max_in_flight`` = 2 per
    worker are out (each worker has its next batch queued while it scores one): the driver holds a bounded
    window of the input, never the whole file, and the output is in input order. The input file stays on the driver
    (no shared filesystem needed for it). Ray Data's readers do not fit: ``read_text`` reads a whole file in
    one task and splits lines on U+2028 (valid inside JSON strings); ``read_json`` unifies column types
    across blocks and loses line numbers. Actors are restarted (and their batches retried) up to 3 times
    after a node or process failure; an exception raised by the model is not retried.
    """

    def __init__(self, ray: Any, model_dir: str, *, n_batches: int, address: str | None = None, device: Any = None,
                 concurrency: int | None = None, num_cpus: float | None = None, num_gpus: float | None = None,
                 quiet: bool = False, **predictor_kwargs: Any):
        self.ray = ray
        self.started = not ray.is_initialized()  # else: a cluster this process already joined, left running
        if self.started:
            try:
                ray.init(address=address)
            except (ConnectionError, RuntimeError, ValueError, OSError) as e:
                raise SetupError(f"--ray: a cluster must be reachable at {address or 'a new local cluster'!r}, "
                                 f"got {type(e).__name__}: {e}") from e
        self.workers: list[Any] = []
        try:
            cuda = str(device or "").startswith("cuda")
            num_gpus = num_gpus if num_gpus is not None else (1 if cuda else 0)
            num_cpus = num_cpus if num_cpus is not None else 1
            n = concurrency if concurrency is not None else self._fits(num_cpus, num_gpus)
            n = max(1, min(n, n_batches))  # more workers than batches would only load idle model copies
            opts: dict[str, Any] = {"num_cpus": num_cpus, "max_restarts": 3, "max_task_retries": 3}
            if num_gpus:
                opts["num_gpus"] = num_gpus
            # Ray masks CUDA_VISIBLE_DEVICES to the actor's GPU(s): cuda:1 on the driver is cuda there
            kwargs = dict(predictor_kwargs, device="cuda" if cuda else device)
            actor = ray.remote(_LineWorker).options(**opts)
            self.workers = [actor.remote(str(model_dir), kwargs, quiet) for _ in range(n)]
        except BaseException:
            self.close()
            raise
        self.load = [0] * len(self.workers)  # batches in flight per worker
        self.waiting = {w.ready.remote(): i for i, w in enumerate(self.workers)}  # still loading the model
        self.ready: list[int] = []
        self.max_in_flight = 2 * len(self.workers)
        self.reported = (ValueError, TypeError, RuntimeError, OSError, MemoryError, ray.exceptions.RayError)

    def _fits(self, num_cpus: float, num_gpus: float) -> int:
        res = self.ray.cluster_resources()
        cpus, gpus = res.get("CPU", 0), res.get("GPU", 0)
        n = int(cpus // num_cpus)
        if num_gpus:
            n = min(n, int(gpus // num_gpus))
        if n < 1:
            raise SetupError(f"--ray: the cluster must fit one worker of --num-cpus {num_cpus:g} --num-gpus "
                             f"{num_gpus:g}, got {cpus:g} CPUs and {gpus:g} GPUs; --concurrency N waits for them")
        return n

    def _poll(self) -> None:
        """Move the workers that finished loading to ``ready``; wait for one when none is ready yet (a worker
        the cluster cannot place yet gets no batch, so it holds nothing up).

        The first worker's setup error stops the job before any output (the model, ``--weights``, ...: every
        worker would fail the same way). A later worker's, once others score, is a node of its own (no model
        directory there, out of memory): it is dropped with a warning and the others go on.
        """
        if not self.waiting:
            return
        block = not self.ready
        done, _ = self.ray.wait(list(self.waiting), num_returns=1 if block else len(self.waiting),
                                timeout=None if block else 0)
        for ref in done:
            i = self.waiting.pop(ref)
            try:
                self.ray.get(ref)
            except Exception as e:
                if not self.ready:
                    raise SetupError(f"--ray: a worker could not set up the model: {self.describe(e)}") from e
                print(f"fusedscore rerank: warning: --ray: a worker could not set up the model, going on with "
                      f"{len(self.ready)}: {self.describe(e)}", file=sys.stderr)
                continue
            self.ready.append(i)

    def submit(self, rows: list[dict[str, Any]]) -> tuple[int, Any]:
        self._poll()
        i = min(self.ready, key=lambda j: self.load[j])
        self.load[i] += 1
        return i, self.workers[i].rank.remote(rows)

    def result(self, handle: tuple[int, Any]) -> tuple[list[str], int]:
        i, ref = handle
        try:
            return self.ray.get(ref)
        finally:
            self.load[i] -= 1

    def describe(self, e: BaseException) -> str:
        cause = getattr(e, "cause", None)  # RayTaskError: the worker's own exception, without Ray's traceback text
        if isinstance(cause, BaseException):
            return f"{type(cause).__name__}: {cause}"
        first = (str(e).strip().splitlines() or [""])[0]
        return f"{type(e).__name__}: {first}"

    def close(self) -> None:
        for w in self.workers:  # on a cluster left running, free their CPUs/GPUs now, not at driver exit
            self.ray.kill(w)
        self.workers = []
        if self.started:
            self.ray.shutdown()
