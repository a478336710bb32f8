"""``fusedscore bench`` and ``fusedscore report``; ``python -m fusedscore.bench`` is ``fusedscore bench``.

    fusedscore bench --quick                  # the kernel benchmark on synthetic data, 1-2 minutes on 2 cores
    fusedscore bench                          # the full CPU workloads (under ~10 minutes): MaxSim rerank of
                                              # 1 x 1000 docs (fp32, bf16), paired 16 x 100, all-pairs 64 x 2000,
                                              # SPLADE- and BGE-M3-like sparse dot, 100 x 10,000 docs
    fusedscore bench --device cuda            # the GPU workloads (fp16 MaxSim paired, rerank and top-k over 1M
                                              # docs; sparse dot over 100,000 docs)
    fusedscore bench --plot figs/             # + the throughput-vs-length / vs-batch series, and PNGs
    fusedscore bench --cases muvera           # only the MUVERA recall check (Recall@k per FDE setting)
    fusedscore bench --record                 # write benchmarks/results/<date>-<device>-<sha>.json
    fusedscore report RESULTS.json            # markdown tables of a recorded run
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["register", "main", "record_path"]


def _add_bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (~1-2 minutes on 2 cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="run the CPU or the GPU workloads")
    p.add_argument("--cases", action="append", metavar="SUBSTR",
                   help="only cases whose name contains SUBSTR (repeatable)")
    p.add_argument("--impls", metavar="A,B", help="only these implementations (fusedscore always runs)")
    p.add_argument("--sweep", action="store_true",
                   help="also run the doc-length and batch-size series (implied by --plot; short with --quick)")
    p.add_argument("--out", metavar="PATH", help="write the results JSON here")
    p.add_argument("--record", action="store_true",
                   help="write the results JSON to benchmarks/results/<date>-<device>-<sha>[-quick].json")
    p.add_argument("--plot", metavar="DIR",
                   help="write PNG figures here (matplotlib; implies --sweep): throughput vs doc length and vs batch "
                        "size, and a bar chart per case")
    p.add_argument("--quiet", action="store_true",
                   help="no progress bars (also transformers' while models load) and no tables (for scripts)")
    p.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N) before running (the native kernels follow OMP_NUM_THREADS)")
    p.add_argument("--budget", type=float, metavar="S", help="seconds of timed runs per implementation and case")
    p.add_argument("--list", action="store_true", help="list the cases and implementations, run nothing")
    p.add_argument("--encoders", action="store_true", help="also run the encoder throughput benchmark")
    p.add_argument("--encoder-model", metavar="DIR", help="model directory for --encoders")
    p.add_argument("--rerank", action="store_true", help="also run the end-to-end rerank benchmark")
    p.add_argument("--only", choices=("encoders", "rerank"),
                   help="run only this end-to-end benchmark, no kernel cases (--cases then filters its cases)")


def register(subparsers: Any) -> None:
    """Add ``bench`` and ``report`` to the ``fusedscore`` command line."""
    b = subparsers.add_parser("bench", help="benchmark the kernels against baselines and installed peers",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_bench_args(b)
    b.set_defaults(func=bench_command)
    r = subparsers.add_parser("report", help="render a recorded bench run (JSON) as markdown")
    r.add_argument("results", help="a JSON file written by fusedscore bench --out/--record")
    r.add_argument("--out", metavar="PATH", help="write the markdown here instead of stdout")
    r.add_argument("--plot", metavar="DIR", help="also write the run's PNG figures here")
    r.set_defaults(func=report_command)


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def record_path(doc: dict[str, Any], root: str | Path | None = None) -> Path:
    """``<root>/benchmarks/results/<date>-<device>-<sha>[-quick].json``; root = the git checkout, else cwd."""
    dev = doc["device"]
    name = _slug(dev["gpu"]) if dev.get("gpu") else f"cpu-{_slug(dev['cpu'])}-{dev['cpus_usable']}c"
    sha = doc.get("git", {}).get("sha") or "nogit"
    suffix = "-quick" if doc.get("options", {}).get("quick") else ""
    base = Path(root) if root is not None else Path(doc.get("git", {}).get("toplevel") or Path.cwd())
    return base / "benchmarks" / "results" / f"{doc['date'][:10]}-{name}-{sha}{suffix}.json"


def _write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str, allow_nan=False) + "\n")


def _extra(module: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the ``encoders`` or ``rerank`` benchmark's ``run`` with the keyword arguments it takes."""
    run = importlib.import_module(f".{module}", __package__).run
    params = inspect.signature(run).parameters
    return run(**{k: v for k, v in kwargs.items() if k in params})


def bench_command(args: argparse.Namespace) -> int:
    from ..cli import quiet_transformers

    # the model benchmarks load and save models: transformers' bars ("Loading weights", "Writing model shards")
    # and messages follow --quiet and the terminal like ours
    with quiet_transformers(args.quiet):
        return _bench(args)


def _bench(args: argparse.Namespace) -> int:
    import torch

    from . import cases as C
    from .runner import all_impls
    from .report import case_table, header_lines, recall_table_lines, rows_table
    from .runner import run

    quiet = args.quiet
    say = (lambda s: None) if quiet else (lambda s: print(s, flush=True))  # noqa: E731
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench: --device cuda needs a CUDA GPU and a CUDA build of torch, got none", file=sys.stderr)
        return 2
    if getattr(args, "only", None):
        return _only_command(args, say)
    sweep = args.sweep or bool(args.plot)  # the throughput-vs-length / vs-batch figures need the series
    cases = [*C.default_cases(args.device, args.quick), *C.recall_cases(args.device, args.quick),
             *(C.sweep_cases(args.device, args.quick) if sweep else [])]
    if args.cases:
        cases = [c for c in cases if any(s in c.name for s in args.cases)]
    names = [n.strip() for n in args.impls.split(",")] if args.impls else None
    impls = all_impls()
    if names is not None:
        unknown = sorted(set(names) - {i.name for i in impls})
        if unknown:
            print(f"bench: --impls must name known implementations ({', '.join(sorted({i.name for i in impls}))}), "
                  f"got {', '.join(unknown)}", file=sys.stderr)
            return 2
    if args.list:
        for c in cases:
            print(f"{c.name:40s} {c.describe()}")
        dev = "cuda" if args.device == "cuda" else "cpu"
        print("implementations:", ", ".join(sorted({f"{i.name} ({i.op})" for i in impls if dev in i.devices})))
        return 0
    if not cases:
        print("bench: --cases matched no case (see --list)", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm

    started: list[bool] = []

    def on_case(entry: dict[str, Any], rows: list[dict[str, Any]], doc: dict[str, Any]) -> None:
        if quiet:
            return
        if not started:
            started.append(True)
            tqdm.write("\n".join(header_lines(doc)) + "\n")
            if not doc["env"].get("native") and args.device == "cpu":
                tqdm.write("NOTE: the C++ extension is not built, so the fusedscore rows time the slow reference "
                           "fallback; build it (pip install --no-build-isolation -e .) for real numbers.\n")
        lines = recall_table_lines(entry) if entry.get("op") == "muvera_recall" else case_table(entry, rows)
        tqdm.write("\n".join(lines))

    options = {"cases_filter": args.cases, "impls": names, "sweep": sweep, "argv": sys.argv[1:]}
    doc = run(cases, impls=impls, impl_names=names, quick=args.quick, budget_s=args.budget,
              progress=not quiet, on_case=on_case, options=options)
    common = {"device": args.device, "quick": args.quick, "budget_s": args.budget}
    for module, kwargs in (("encoders", {**common, "model_dir": args.encoder_model}), ("rerank", common)):
        if getattr(args, module):
            doc[module] = _extra(module, kwargs)
            say("\n".join(rows_table(module, doc[module])))
    for n in doc["notes"]:
        say(f"NOTE: {n}")
    for e in doc["errors"]:
        print(f"ERROR: {e}", file=sys.stderr)
    written = []
    if args.out:
        written.append(Path(args.out))
    if args.record:
        written.append(record_path(doc))
    for p in written:
        _write_json(doc, p)
        say(f"wrote {p}")
    if args.plot and not _plot(doc, args.plot, say):
        return 2
    return 1 if doc["errors"] else 0


def _only_command(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    """``--only encoders|rerank``: that benchmark alone; ``--out`` gets its rows with the environment."""
    from .report import rows_table
    from .runner import git_info, versions
    from .timing import thread_info

    if args.record or args.plot:
        print("bench: --record and --plot need the kernel cases, so they do not go with --only", file=sys.stderr)
        return 2
    kwargs = {"device": args.device, "quick": args.quick, "budget_s": args.budget, "cases": args.cases,
              "model_dir": args.encoder_model}
    rows = _extra(args.only, kwargs)
    say("\n".join(rows_table(args.only, rows)))
    if args.out:
        _write_json({"git": git_info(), "versions": versions(), "threads": thread_info(),
                     "options": {"argv": sys.argv[1:]}, args.only: rows}, Path(args.out))
        say(f"wrote {args.out}")
    return 1 if any(r.get("status") == "error" for r in rows) else 0


def report_command(args: argparse.Namespace) -> int:
    from .report import render_markdown

    path = Path(args.results)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        print(f"report: results must be a JSON file written by fusedscore bench, got {path} ({e})", file=sys.stderr)
        return 2
    if not isinstance(doc, dict) or "results" not in doc or "cases" not in doc:
        print(f"report: results must be a fusedscore bench JSON (with 'cases' and 'results'), got {path}",
              file=sys.stderr)
        return 2
    md = render_markdown(doc)
    if args.out:
        Path(args.out).write_text(md)
    else:
        sys.stdout.write(md)
    if args.plot and not _plot(doc, args.plot, lambda m: print(m, file=sys.stderr)):
        return 2
    return 0


def _plot(doc: dict[str, Any], out_dir: str, say: Callable[[str], None]) -> bool:
    from .plots import plot

    try:
        paths = plot(doc, out_dir)
    except RuntimeError as e:  # matplotlib missing: the JSON is written already, say how to get figures
        print(str(e), file=sys.stderr)
        return False
    if not any(c.get("sweep") for c in doc["cases"]):
        say("NOTE: this run has no sweep cases (--cases left them out, or it was recorded without --sweep): "
            "no throughput-vs-length / vs-batch figures")
    for p in paths:
        say(f"wrote {p}")
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m fusedscore.bench [bench options]``."""
    parser = argparse.ArgumentParser(prog="python -m fusedscore.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_bench_args(parser)
    return bench_command(parser.parse_args(argv))
