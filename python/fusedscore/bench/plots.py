"""PNG figures of a results document (matplotlib, headless).

- ``throughput_vs_doc_len.png`` / ``throughput_vs_batch.png`` (from ``--sweep`` cases): GFLOP/s of every
  implementation against document length (one-query rerank, fixed Ld) and against the number of queries
  (paired, 100 candidates each), with the machine's roofline for each point drawn dashed (the
  throughput a kernel at ``max(flops / matmul rate, bytes / bandwidth)`` would reach) and the measured
  matmul rate as a horizontal line.
- ``case_<name>.png`` for each other workload: a bar per implementation (GFLOP/s, or GB/s for sparse
  cases, which have no FLOP model) with the roofline drawn as a line.
Rows run on a prefix and scaled (``extrapolated_from``) are hatched / dotted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .machine import matmul_key

__all__ = ["plot"]

_AXES = {"doc_len": ("document length (tokens)", "throughput_vs_doc_len.png"),
         "batch": ("queries per batch (100 candidates each)", "throughput_vs_batch.png")}


def _plt():
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError(f"bench: --plot needs matplotlib ({e}); pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _ok_rows(doc: dict[str, Any], case: str) -> list[dict[str, Any]]:
    return [r for r in doc["results"] if r["case"] == case and r["status"] == "ok"]


def _sweep_figure(plt: Any, doc: dict[str, Any], axis: str, out: Path) -> Path | None:
    cases = sorted((c for c in doc["cases"] if c.get("sweep", {}).get("axis") == axis), key=lambda c: c["sweep"]["value"])
    if not cases:
        return None
    label, fname = _AXES[axis]
    series: dict[str, list[tuple[float, float, bool]]] = {}
    for c in cases:
        for r in _ok_rows(doc, c["name"]):
            if r.get("gflops"):
                series.setdefault(r["impl"], []).append((c["sweep"]["value"], r["gflops"], "extrapolated_from" in r))
    fig, ax = plt.subplots(figsize=(8, 5))
    for impl, pts in series.items():
        xs, ys, ex = zip(*pts)
        style = "-" if impl == "fusedscore" else "--" if not any(ex) else ":"
        ax.plot(xs, ys, style, marker="o", lw=2.5 if impl == "fusedscore" else 1.3, label=impl)
    xs = [c["sweep"]["value"] for c in cases]
    roof = [c["flops"] / (c["roofline_ms"] / 1e3) / 1e9 for c in cases]
    ax.plot(xs, roof, "k--", lw=1, label="roofline (min of matmul rate, bandwidth x intensity)")
    dev, m = doc["device"], doc["machine"]
    key = matmul_key(cases[0]["dtype"], doc["options"].get("device", "cpu"))
    peak = m["matmul_gflops"].get(key)
    if peak:
        ax.axhline(peak, color="grey", lw=0.8, ls=":", label=f"measured {key} matmul {peak:.0f} GFLOP/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])  # the measured points, labelled as numbers, not powers of 2
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("GFLOP/s (useful MaxSim FLOPs)")
    ax.set_title(f"MaxSim throughput, {cases[0]['dtype']} -- {dev['name']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    path = out / fname
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _case_figure(plt: Any, doc: dict[str, Any], case: dict[str, Any], out: Path) -> Path | None:
    rows = _ok_rows(doc, case["name"])
    if not rows:
        return None
    use_flops = bool(case.get("flops"))
    vals = [(r["gflops"] if use_flops else r["gbps"]) or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows)), 4.5))
    colors = ["tab:red" if r["kind"] == "fusedscore" else "tab:blue" if r["kind"] == "baseline" else "tab:green"
              for r in rows]
    bars = ax.bar(range(len(rows)), vals, color=colors)
    for b, r in zip(bars, rows):
        if "extrapolated_from" in r:
            b.set_hatch("//")
    roof_s = case["roofline_ms"] / 1e3
    roof = (case["flops"] if use_flops else case["bytes"]) / roof_s / 1e9
    ax.axhline(roof, color="k", ls="--", lw=1, label=f"roofline floor ({roof:.0f})")
    ax.set_xticks(range(len(rows)), [r["impl"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s" if use_flops else "GB/s (bytes model)")
    ax.set_title(f"{case['name']} -- {doc['device']['name']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    path = out / f"case_{_slug(case['name'])}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(doc: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write the figures for ``doc`` into ``out_dir`` (created); returns the paths written."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [p for axis in _AXES if (p := _sweep_figure(plt, doc, axis, out)) is not None]
    for case in doc["cases"]:
        if not case.get("sweep"):
            p = _case_figure(plt, doc, case, out)
            if p is not None:
                paths.append(p)
    return paths
