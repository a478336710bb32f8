"""PNG figures of a results document (matplotlib, headless).

- ``throughput_vs_doc_len.png`` / ``throughput_vs_batch.png`` (from the sweep cases, which ``--plot``
  runs): GFLOP/s of every implementation, one line per implementation and backend (fusedscore's
  dispatch choice, each baseline, each installed peer), against document length (one-query rerank,
  fixed Ld) and against the number of queries (paired, 100 candidates each), with the machine's
  roofline for each point drawn dashed (the throughput a kernel at ``max(flops / matmul rate, bytes /
  bandwidth)`` would reach) and the measured matmul rate as a horizontal line.
- ``case_<name>.png`` for each other workload: a bar per implementation (GFLOP/s, or GB/s for sparse
  cases, which have no FLOP model) with the roofline drawn as a line.
Rows run on a prefix and scaled (``extrapolated_from``) are hatched / hollow markers. The roofline's
matmul rate is torch.mm's, measured in the same run, not the hardware peak: a caption under each
figure says so (and why fusedscore can run above it, where that is known: ``report.roofline_note``).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from .machine import matmul_key
from .report import roofline_note

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


def _best_rates(doc: dict[str, Any], key: str) -> tuple[float | None, float]:
    """(matmul GFLOP/s for ``key``, copy GB/s): the higher of the measurements before and after the cases."""
    ms = [m for m in (doc["machine"], doc.get("machine_end")) if m]
    peaks = [m["matmul_gflops"][key] for m in ms if m["matmul_gflops"].get(key)]
    return (max(peaks) if peaks else None), max(m["copy_gbps"] for m in ms)


def _caption(fig: Any, doc: dict[str, Any]) -> None:
    """Lay the figure out, leaving room under the axes for the note on what the roofline's rate is."""
    note = roofline_note(doc)
    text = textwrap.fill(note[0].upper() + note[1:] + ".", int(fig.get_figwidth() * 17))  # ~17 chars/inch at 7 pt
    lines = text.count("\n") + 1
    fig.tight_layout(rect=(0, (0.14 * lines + 0.1) / fig.get_figheight(), 1, 1))  # 7 pt lines are ~0.14 inch
    fig.text(0.01, 0.01, text, fontsize=7, color="dimgrey", va="bottom", ha="left")


def _sweep_figure(plt: Any, doc: dict[str, Any], axis: str, out: Path) -> Path | None:
    cases = sorted((c for c in doc["cases"] if c.get("sweep", {}).get("axis") == axis), key=lambda c: c["sweep"]["value"])
    if not cases:
        return None
    xlabel, fname = _AXES[axis]
    # one line per (implementation, backend): fusedscore's rows name the backend its dispatch picked
    series: dict[tuple[str, str], list[tuple[float, float, bool]]] = {}
    for c in cases:
        for r in _ok_rows(doc, c["name"]):
            if r.get("gflops"):
                name = r["impl"] + (f" [{r['backend']}]" if r.get("backend") else "")
                series.setdefault((name, r["kind"]), []).append((c["sweep"]["value"], r["gflops"],
                                                                  "extrapolated_from" in r))
    fig, ax = plt.subplots(figsize=(11, 5.6))
    styles = {"fusedscore": ("-", 2.5), "baseline": ("--", 1.3), "peer": ("-.", 1.3)}
    for (name, kind), pts in series.items():
        xs, ys, ex = zip(*pts)
        ls, lw = styles.get(kind, ("-.", 1.3))
        label = name + ("" if kind == "fusedscore" else f" ({kind})") + (", prefix scaled" if any(ex) else "")
        line, = ax.plot(xs, ys, ls, lw=lw, label=label)
        # hollow markers where the row ran on a prefix of the case and was scaled up
        for x, y, e in pts:
            ax.plot([x], [y], "o", color=line.get_color(), mfc="white" if e else line.get_color())
    xs = [c["sweep"]["value"] for c in cases]
    key = matmul_key(cases[0]["dtype"], doc["options"].get("device", "cpu"))
    peak, bw = _best_rates(doc, key)
    # min(matmul rate, bandwidth x FLOP/byte) from the best rates of the run: a busy moment while one of the
    # two measurements ran must not lower the line (the tables' % roofline use the rates measured first)
    roof = [min(peak, bw * c["flops"] / c["bytes"]) if peak else c["flops"] / (c["roofline_ms"] / 1e3) / 1e9
            for c in cases]
    ax.plot(xs, roof, "k--", lw=1, label="roofline: min(matmul rate, copy GB/s x FLOP/byte)")
    if peak:
        ax.axhline(peak, color="grey", lw=0.8, ls=":",
                   label=f"torch.mm {key} rate, best measured in this run: {peak:.0f} GFLOP/s\n(not the hardware peak)")
    dev = doc["device"]
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])  # the measured points, labelled as numbers, not powers of 2
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GFLOP/s (useful MaxSim FLOPs)")
    ax.set_title(f"MaxSim throughput, {cases[0]['dtype']} -- {dev['name']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # outside: no line hidden
    path = out / fname
    _caption(fig, doc)
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
    peak, bw = _best_rates(doc, matmul_key(case["dtype"], doc["options"].get("device", "cpu")))
    if use_flops and peak:
        roof = min(peak, bw * case["flops"] / case["bytes"])
    elif use_flops:
        roof = case["flops"] / (case["roofline_ms"] / 1e3) / 1e9
    else:  # no FLOP model: the bytes bound is the copy bandwidth itself
        roof = bw
    ax.axhline(roof, color="k", ls="--", lw=1, label=f"roofline from the best measured rates ({roof:.0f})")
    ax.set_xticks(range(len(rows)), [r["impl"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s" if use_flops else "GB/s (bytes model)")
    ax.set_title(f"{case['name']} -- {doc['device']['name']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    path = out / f"case_{_slug(case['name'])}.png"
    _caption(fig, doc)
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
