"""Render a results document (``runner.run``) as text tables for the terminal or as markdown.

One table per workload: implementation, median time with p20-p80, GFLOP/s, GB/s, fraction of the
roofline floor, and fusedscore's speedup over that row (their time / our time; > 1 means fusedscore is
faster), plus whether the row's scores agree with fusedscore's. The header names the device and the
measured machine rates. MUVERA recall cases (``muvera_recall``) get a table of Recall@k per FDE setting
and candidate count, with the recall random candidates would reach. ``render_markdown`` is what
``fusedscore report RESULTS.json`` prints.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["header_lines", "case_table", "recall_table_lines", "roofline_note", "render_text", "render_markdown",
           "rows_table"]

_COLS = ("impl", "backend", "median ms", "p20-p80 ms", "GFLOP/s", "GB/s", "% roofline", "fusedscore speedup",
         "agrees", "note")


def _fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def header_lines(doc: dict[str, Any]) -> list[str]:
    dev, m, env, th = doc["device"], doc["machine"], doc.get("env", {}), doc.get("threads", {})
    rates = ", ".join(f"{k} matmul {v:.0f} GFLOP/s" for k, v in m["matmul_gflops"].items())
    native = env.get("native")
    simd = env.get("simd")
    backend = "native" + (f" ({simd})" if simd else "") if native else f"reference fallback ({env.get('reason')})"
    git = doc.get("git", {})
    sha = (git.get("sha") or "unknown") + ("+dirty" if git.get("dirty") else "")
    lines = [f"device: {dev['name']}" + (f" | CPU {dev['cpu']}, {dev['cpus_usable']} usable cores" if dev.get("gpu") else ""),
             f"machine: {rates}; copy {m['copy_gbps']:.1f} GB/s (measured in this run)",
             f"threads: torch {th.get('torch_threads')}, OMP_NUM_THREADS={th.get('OMP_NUM_THREADS')} | "
             f"fusedscore CPU backend: {backend}",
             f"git {sha} | {doc.get('date')} | quick={doc.get('options', {}).get('quick')}"]
    return lines


def roofline_note(doc: dict[str, Any]) -> str:
    """What the roofline's matmul rate is, said plainly: over 100% of it is possible and is not an error."""
    dev = doc.get("device", {})
    note = "the matmul rate is torch.mm's, measured in this run, not the hardware peak (above 100% is possible)"
    if dev.get("kind") == "cpu" and "AMD" in str(dev.get("cpu", "")) and "avx512f" in dev.get("cpu_flags", []):
        note += ("; on this AMD CPU torch's fp32 GEMM (MKL) takes its AVX2 path, so fusedscore's AVX-512 kernels "
                 "can run above it")
    return note


def _cells(r: dict[str, Any]) -> list[str]:
    if r["status"] != "ok":
        return [r["impl"], "-", "-", "-", "-", "-", "-", "-", "-", f"{r['status']}: {r['note']}"]
    chk = r.get("check")
    agrees = "-" if chk is None else ("yes" if chk["ok"] else f"NO ({chk.get('max_abs_diff') or chk.get('why')})")
    sp = r.get("fusedscore_speedup")
    speed = "1 (ours)" if r["kind"] == "fusedscore" else ("-" if sp is None else f"{sp:.2f}x")
    note = r.get("note", "")
    if r.get("warnings"):
        note = (note + "; " if note else "") + "warned: " + " | ".join(r["warnings"])
    return [r["impl"], r.get("backend") or "-", _fmt_ms(r.get("median_ms")),
            f"{_fmt_ms(r.get('p20_ms'))}-{_fmt_ms(r.get('p80_ms'))}", _fmt(r.get("gflops"), ".1f"),
            _fmt(r.get("gbps"), ".2f"), _fmt(100 * r["roofline_frac"] if r.get("roofline_frac") else None, ".1f"),
            speed, agrees, note]


def _case_title(c: dict[str, Any]) -> str:
    work = f"{c['flops'] / 1e9:.3g} GFLOP, " if c.get("flops") else ""
    return f"{c['name']} -- {c['describe']} ({work}{c['bytes'] / 1e6:.3g} MB; roofline floor {c['roofline_ms']:.3g} ms)"


def _text_table(header: Sequence[str], rows: list[list[str]], max_note: int = 70) -> list[str]:
    rows = [[*r[:-1], r[-1] if len(r[-1]) <= max_note else r[-1][: max_note - 3] + "..."] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _md_table(header: Sequence[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return out


def case_table(case: dict[str, Any], rows: list[dict[str, Any]], markdown: bool = False) -> list[str]:
    cells = [_cells(r) for r in rows]
    if markdown:
        return [f"### {case['name']}", "", _case_title(case).split(" -- ", 1)[1], "", *_md_table(_COLS, cells), ""]
    return [_case_title(case), *_text_table(_COLS, cells), ""]


def rows_table(title: str, rows: list[dict[str, Any]], markdown: bool = False) -> list[str]:
    """A generic table of dict rows (the encoder and end-to-end rerank benchmarks)."""
    if not rows:
        return [f"{title}: no rows", ""]
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    cells = [[(f"{r[k]:.4g}" if isinstance(r.get(k), float) else str(r.get(k, "-"))) for k in keys] for r in rows]
    if markdown:
        return [f"### {title}", "", *_md_table(keys, cells), ""]
    return [title, *_text_table(keys, cells, max_note=10**6), ""]


def _fde_defaults() -> dict[str, Any]:
    import inspect

    from ..muvera import FDE

    return {k: v.default for k, v in inspect.signature(FDE).parameters.items()
            if k in ("k_sim", "dim_proj", "r_reps", "fill_empty")}


def _setting(row: dict[str, Any], defaults: dict[str, Any]) -> str:
    """A row's label: the FDE parameters that differ from the defaults ("r_reps=1"), or "defaults"."""
    moved = [f"{k}={row[k]}" for k, v in defaults.items() if k in row and row[k] != v]
    return ", ".join(moved) or "defaults"


def recall_table_lines(entry: dict[str, Any], markdown: bool = False) -> list[str]:
    """One MUVERA recall case: a row per FDE setting, a recall column per candidate count, then the
    recall of random candidates (``c / N``) for scale."""
    title = f"{entry['name']} -- {entry['describe']}"
    head = [f"### {entry['name']}", "", entry["describe"], ""] if markdown else [title]
    if entry.get("error"):
        return [*head, f"ERROR: {entry['error']}", ""]
    rows = entry.get("rows") or []
    if not rows:
        return [*head, "no rows", ""]
    defaults = _fde_defaults()
    keys = list(rows[0])
    header = ["setting", *keys]
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    cells = [[_setting(r, defaults), *(fmt(r.get(k, "-")) for k in keys)] for r in rows]
    rnd = entry.get("random", {})
    cells.append(["random candidates", *(fmt(rnd[k]) if k in rnd else "-" for k in keys)])
    k = entry.get("k")
    note = (f"Recall@{k} = mean over queries of |exact MaxSim top-{k} in the FDE top-c| / {k} (columns "
            f"recall@{k}/c<c>); encode_s = encoding the corpus and the queries.")
    table = _md_table(header, cells) if markdown else _text_table(header, cells, max_note=10**6)
    return [*head, *table, "", note, ""]


def _by_case(doc: dict[str, Any]) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    return [(c, [r for r in doc["results"] if r["case"] == c["name"]]) for c in doc["cases"]]


def _extras(doc: dict[str, Any], markdown: bool) -> list[str]:
    out: list[str] = []
    for key, title in (("encoders", "encoders (end-to-end encode throughput)"), ("rerank", "rerank (end-to-end)")):
        if key in doc:
            out += rows_table(title, doc[key], markdown)
    for n in doc.get("notes", []):
        out.append(("- note: " if markdown else "NOTE: ") + n)
    for e in doc.get("errors", []):
        out.append(("- error: " if markdown else "ERROR: ") + e)
    return out


def render_text(doc: dict[str, Any]) -> str:
    lines = header_lines(doc) + [""]
    for case, rows in _by_case(doc):
        lines += case_table(case, rows)
    for entry in doc.get("muvera_recall", []):
        lines += recall_table_lines(entry)
    return "\n".join(lines + _extras(doc, False))


def render_markdown(doc: dict[str, Any]) -> str:
    """The markdown report of a recorded run: header, one table per workload, extras, errors."""
    lines = ["# fusedscore bench", ""] + [f"- {h}" for h in header_lines(doc)] + [
        "", "Speedup = the row's median time / fusedscore's (> 1: fusedscore is faster). "
        "% roofline = max(flops / matmul rate, bytes / copy bandwidth) / time; " + roofline_note(doc) + ".", ""]
    for case, rows in _by_case(doc):
        lines += case_table(case, rows, markdown=True)
    for entry in doc.get("muvera_recall", []):
        lines += recall_table_lines(entry, markdown=True)
    return "\n".join(lines + _extras(doc, True)).rstrip() + "\n"
