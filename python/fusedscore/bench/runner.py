"""Run cases against implementations and collect one results document (a JSON-able dict).

For each case: build the inputs once, time fusedscore first, then every other implementation on the
same inputs; check that each agrees with fusedscore's scores; derive GFLOP/s, GB/s, the fraction of
the machine's roofline floor and fusedscore's speedup over the row (``their time / our time``).

Document layout (``schema`` 1)::

    {"schema", "date", "git": {"sha", "dirty"}, "device": describe_device(), "env": backend_info(),
     "versions": {...}, "threads": {...}, "options": {...}, "machine": measure_rates(),
     "cases": [{"name", "op", "mode", "device", "dtype", "describe", "shapes", "sweep", "flops", "bytes",
                "roofline_ms"}],
     "results": [{"case", "impl", "kind", "status": "ok"|"skipped"|"error", "note", "backend",
                  "median_ms", "p20_ms", "p80_ms", "runs", "gflops", "gbps", "roofline_frac",
                  "fusedscore_speedup", "extrapolated_from", "check", "warnings"}],
     "muvera_recall": [{"name", "op", "describe", "device", "k", "candidates", "data": {...}, "random": {...},
                       "rows": recall.recall_table() rows, "seconds"}],
     "errors": [...], "notes": [...], "machine_end": measure_rates() again after the cases}

A ``RecallCase`` (MUVERA recall, a quality check) times nothing: its entry goes to ``muvera_recall``, with
the recall random candidates would reach (``c / N``) under ``random`` for scale.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata as md
import platform
import subprocess
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .._dispatch import backend_info
from .cases import Case, Inputs, RecallCase, make_inputs
from . import dense_dot, maxsim, sparse_dot
from .impls import Impl, Skip
from .machine import describe_device, measure_rates, roofline_s, work
from .timing import measure, thread_info

__all__ = ["run", "run_recall", "all_impls", "git_info", "versions", "agreement"]

SCHEMA = 1
_DISTS = ("fusedscore", "torch", "numpy", "scipy", "triton", "transformers", "maxsim-cpu", "pylate", "FlagEmbedding",
          "sentence-transformers", "flash-maxsim", "late-interaction-kernels", "matplotlib")


def all_impls() -> list[Impl]:
    """Every implementation the harness can time, per op, fusedscore first."""
    return [*maxsim.IMPLS, *sparse_dot.IMPLS, *dense_dot.IMPLS]


def git_info() -> dict[str, Any]:
    """The commit of the checkout this package runs from (None when it is not one, e.g. a wheel)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=10", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        return {"sha": sha, "dirty": dirty, "toplevel": top}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None, "toplevel": None}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _DISTS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def agreement(got: torch.Tensor, expected: torch.Tensor, dtype: str) -> dict[str, Any]:
    """Does a row's output match fusedscore's? A harness sanity check (wrong inputs, wrong semantics),
    not a numerics test: tolerance 1e-3 (fp32) or 3e-2 (fp16/bf16) of the largest |score|."""
    got, expected = got.double().cpu(), expected.double().cpu()
    if tuple(got.shape) != tuple(expected.shape):
        return {"ok": False, "max_abs_diff": None,
                "why": f"shape {tuple(got.shape)} != fusedscore's {tuple(expected.shape)}"}
    fin = torch.isfinite(expected)
    if bool((torch.isfinite(got) != fin).any()):
        return {"ok": False, "max_abs_diff": None, "why": "non-finite scores where fusedscore's are finite (or back)"}
    if not bool(fin.any()):
        return {"ok": True, "max_abs_diff": 0.0}
    diff = float((got[fin] - expected[fin]).abs().max())
    scale = max(1.0, float(expected[fin].abs().max()))
    tol = (1e-3 if dtype == "fp32" else 3e-2) * scale
    return {"ok": diff <= tol, "max_abs_diff": diff, "tol": tol}


def _case_entry(case: Case, inp: Inputs, w: dict[str, float], roof: float) -> dict[str, Any]:
    entry = dataclasses.asdict(case)
    entry.update(describe=case.describe(), n_pairs=inp.n_pairs, flops=w["flops"], bytes=w["bytes"],
                 roofline_ms=roof * 1e3)
    if case.op != "sparse_dot":
        entry["tokens"] = {"queries": inp.q.num_tokens, "docs": inp.d.num_tokens}
    else:
        entry["nnz"] = {"queries": inp.q.nnz, "docs": inp.d.nnz}
    return entry


Slicer = Callable[[torch.Tensor], torch.Tensor]


def _compare(scores: torch.Tensor, n_pairs: int, slicer: Slicer, exp: tuple[torch.Tensor, int, Slicer],
             dtype: str) -> dict[str, Any]:
    """Agreement on the common prefix: both results are prefixes of the case's full result (``Inputs.head``),
    so the shorter one's slicer cuts the longer one down to it."""
    exp_scores, exp_pairs, exp_slicer = exp
    if n_pairs >= exp_pairs:
        return agreement(exp_slicer(scores), exp_scores, dtype)
    return agreement(scores, slicer(exp_scores), dtype)


def _run_impl(impl: Impl, inp: Inputs, dev_kind: str, expected: tuple[torch.Tensor, int, Slicer] | None,
              w: dict[str, float], roof: float, budget_s: float, slow_scale: float
              ) -> tuple[dict[str, Any], tuple[torch.Tensor, int, Slicer] | None]:
    """Time one implementation; returns (row, (its fp32 CPU scores, pairs it scored, its prefix slicer) or None)."""
    case = inp.case
    row: dict[str, Any] = {"case": case.name, "impl": impl.name, "kind": impl.kind, "status": "ok", "note": ""}
    scores = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded into the row and printed; never dropped
        try:
            limit = impl.limit(dev_kind)
            limit = max(1, int(limit * slow_scale)) if limit else None
            sub, slicer = inp.head(limit) if limit else (inp, lambda t: t)
            prep = impl.prepare(sub)
            out = prep.fn()  # the warm-up call; the agreement check reads its result and the last timed one
            if case.device.startswith("cuda"):
                torch.cuda.synchronize()
            last: list[Any] = [None]

            def timed() -> None:
                last[0] = prep.fn()

            t = measure(timed, case.device, repeats=case.repeats, budget_s=budget_s, warmup=False)
            if prep.to_scores is not None:
                scores = prep.to_scores(out)
                last_scores = prep.to_scores(last[0])
            out = last = None  # free the results before the next implementation runs
        except Skip as e:
            row.update(status="skipped", note=str(e))
            return row, None
        except Exception as e:  # a failing row is reported in the table and in the JSON, not hidden
            row.update(status="error", note=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            return row, None
    msgs = sorted({f"{w_.category.__name__}: {w_.message}" for w_ in caught})
    if msgs:
        row["warnings"] = msgs
    row["note"] = prep.note
    row["backend"] = prep.backend
    if sub is not inp:
        scale = inp.n_pairs / sub.n_pairs
        t = t.scaled(scale)
        row["extrapolated_from"] = {"pairs": sub.n_pairs, "of": inp.n_pairs}
        row["note"] = (f"timed on {sub.n_pairs} of {inp.n_pairs} pairs, scaled x{scale:.3g}; " + row["note"]).rstrip("; ")
    row.update(median_ms=t.median * 1e3, p20_ms=t.p20 * 1e3, p80_ms=t.p80 * 1e3, runs=t.runs,
               gflops=(w["flops"] / t.median / 1e9) if w["flops"] else None, gbps=w["bytes"] / t.median / 1e9,
               roofline_frac=roof / t.median)
    if scores is None:
        return row, None
    if expected is not None:
        first = _compare(scores, sub.n_pairs, slicer, expected, case.dtype)
        timed_run = _compare(last_scores, sub.n_pairs, slicer, expected, case.dtype)
        row["check"] = first if not first["ok"] or timed_run["ok"] else {**timed_run, "why": "a timed run differs"}
    else:  # fusedscore itself (or nothing to compare with): timed runs match the first
        again = agreement(last_scores, scores, case.dtype)
        if not again["ok"]:
            row["check"] = {**again, "why": "a timed run's scores differ from the first run's"}
    return row, (scores, sub.n_pairs, slicer)


def run_recall(case: RecallCase) -> dict[str, Any]:
    """The entry of one MUVERA recall case (see the module docstring); a failure is recorded in it."""
    from ..muvera import clustered_data
    from .recall import recall_table

    entry: dict[str, Any] = {"name": case.name, "op": case.op, "describe": case.describe(), "device": case.device,
                             "k": case.k, "candidates": list(case.candidates)}
    t0 = time.perf_counter()
    try:
        queries, docs = clustered_data(n_docs=case.n_docs, n_queries=case.n_queries, dim=case.dim,
                                       n_clusters=case.n_clusters, seed=case.seed)
        entry["data"] = {"generator": "fusedscore.muvera.clustered_data", "n_docs": case.n_docs,
                         "n_queries": case.n_queries, "dim": case.dim, "n_clusters": case.n_clusters, "seed": case.seed,
                         "tokens": {"queries": queries.num_tokens, "docs": docs.num_tokens}}
        n = len(docs)
        entry["random"] = {f"recall@{case.k}/c{c}": round(min(c, n) / n, 4) for c in case.candidates}
        entry["rows"] = recall_table(list(case.settings), queries=queries.to(case.device), docs=docs.to(case.device),
                                     k=case.k, candidates=case.candidates)
    except Exception as e:  # reported in the table and the JSON (and fails the run), never hidden
        entry.update(rows=[], error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
    entry["seconds"] = round(time.perf_counter() - t0, 3)
    return entry


def _impls_for(case: Case, impls: list[Impl], names: set[str] | None) -> list[Impl]:
    dev_kind = "cuda" if case.device.startswith("cuda") else "cpu"
    chosen = [i for i in impls if i.op == case.op and dev_kind in i.devices]
    if names is not None:
        chosen = [i for i in chosen if i.name in names or i.kind == "fusedscore"]
    chosen.sort(key=lambda i: i.kind != "fusedscore")  # fusedscore first: the others are checked against it
    return chosen


def run(cases: Iterable[Case | RecallCase], *, impls: list[Impl] | None = None,
        impl_names: Iterable[str] | None = None, rates: dict[str, Any] | None = None, quick: bool = False,
        budget_s: float | None = None, progress: bool = True,
        on_case: Callable[[dict[str, Any], list[dict[str, Any]], dict[str, Any]], None] | None = None,
        options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every case; return the results document (see the module docstring).

    Args:
        cases: the workloads (``cases.default_cases()`` or a test list), and any ``RecallCase``. All on one device.
        impls: implementations to consider (default: all registered); each runs on cases of its op/device.
        impl_names: keep only these (fusedscore always runs: the ratios are relative to it).
        rates: machine rates (``machine.measure_rates``); measured here when None.
        quick: also shrinks the prefix that slow implementations (``Impl.max_pairs``) run on, to a quarter.
        budget_s: seconds of timed runs per implementation and case (default 0.5 quick, 2 full).
        progress: show a tqdm bar over cases.
        on_case: called after each case with (case entry, its rows, the document so far), e.g. to print.
            For a ``RecallCase`` the entry's ``op`` is "muvera_recall" and its rows are the recall rows.
    """
    cases = list(cases)
    if not cases:
        raise ValueError("bench: cases must hold at least one case, got 0")
    devices = {c.device for c in cases}
    if len(devices) != 1:
        raise ValueError(f"bench: cases must all be on one device, got {sorted(devices)}")
    device = devices.pop()
    budget = budget_s if budget_s is not None else (0.5 if quick else 2.0)
    impls = all_impls() if impls is None else impls
    names = set(impl_names) if impl_names is not None else None
    doc: dict[str, Any] = {
        "schema": SCHEMA, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(), "device": describe_device(device), "env": backend_info(), "versions": versions(),
        "threads": thread_info(), "options": {"quick": quick, "device": device, "budget_s": budget, **(options or {})},
        "machine": rates if rates is not None else measure_rates(device, quick), "cases": [], "results": [],
        "muvera_recall": [], "errors": [], "notes": [],
    }
    measured_here = rates is None
    dev_kind = "cuda" if device.startswith("cuda") else "cpu"
    from tqdm.auto import tqdm

    # disable=None: tqdm draws only on a terminal, so logs and CI output stay free of bar frames
    bar = tqdm(cases, desc="bench", unit="case", disable=True if not progress else None, leave=False)
    for case in bar:
        bar.set_postfix_str(case.name)
        if isinstance(case, RecallCase):
            entry = run_recall(case)
            doc["muvera_recall"].append(entry)
            if "error" in entry:
                doc["errors"].append(f"{case.name}: fusedscore failed: {entry['error']}")
            if on_case is not None:
                on_case(entry, entry["rows"], doc)
            continue
        inp = make_inputs(case)
        w = work(inp)
        roof = roofline_s(w, doc["machine"], case.dtype, device)
        entry = _case_entry(case, inp, w, roof)
        rows: list[dict[str, Any]] = []
        expected = None
        fused_ms = None
        for impl in _impls_for(case, impls, names):
            bar.set_postfix_str(f"{case.name}: {impl.name}")
            row, scores = _run_impl(impl, inp, dev_kind, expected, w, roof, budget, 0.25 if quick else 1.0)
            if impl.kind == "fusedscore":
                expected = scores
                fused_ms = row.get("median_ms")
                if row["status"] == "error":
                    doc["errors"].append(f"{case.name}: fusedscore failed: {row['note']}")
            elif fused_ms and row.get("median_ms"):
                row["fusedscore_speedup"] = row["median_ms"] / fused_ms
            rows.append(row)
        doc["cases"].append(entry)
        doc["results"].extend(rows)
        del inp
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        if on_case is not None:
            on_case(entry, rows, doc)
    bar.close()
    if measured_here:
        _recheck_rates(doc, device, quick)
    return doc


def _recheck_rates(doc: dict[str, Any], device: str, quick: bool) -> None:
    """Measure the machine again after the cases: rates that moved by more than 25% mean the machine was
    busy (other processes, thermal limits), and every roofline fraction of the run is then unreliable."""
    end = measure_rates(device, quick)
    doc["machine_end"] = end
    start = doc["machine"]
    pairs = [(f"{k} matmul GFLOP/s", start["matmul_gflops"][k], end["matmul_gflops"][k]) for k in start["matmul_gflops"]]
    pairs.append(("copy GB/s", start["copy_gbps"], end["copy_gbps"]))
    moved = [f"{name} {a:.0f} -> {b:.0f}" for name, a, b in pairs if max(a, b) > 1.25 * min(a, b)]
    if moved:
        doc["notes"].append("the machine's rates changed during the run (" + ", ".join(moved) + "): it was busy, "
                            "so times are noisy and % roofline is unreliable; ratios from one case are still "
                            "like for like")
