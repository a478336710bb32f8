"""The pylate rows of the bench where pylate cannot load models: pylate in a child interpreter.

pylate 1.6 pins sentence-transformers 5.3 and cannot load models under 6.x, which this repository's CI and
development environments use. This script runs the shipped harness's ColBERT cases, ``colbert_encode``
(``fusedscore.bench.encoders``) and ``colbert_e2e`` (``fusedscore.bench.rerank``), with their pylate peer in a
child interpreter whose ``sys.path`` starts with a folder holding sentence-transformers 5.3. The rows and their
keys are the shipped ones (the harness's ``peers`` hook swaps the peer; the calls timed are the same
``pylate_encode_call`` / ``pylate_rerank_call``). From a checkout, with the package installed:

    pip install --no-deps --target .st53 sentence-transformers==5.3.0
    FUSEDSCORE_PYLATE_ST_PATH=$PWD/.st53 python benchmarks/peers/pylate_child.py [--quick] [--out rows.json]

The child runs this same file: ``--child encode SPEC`` is driven one call at a time over stdin, so its timed
rounds alternate with fusedscore's as the in-process peers' do; ``--child rerank SPEC OUT`` times its whole
run there with the harness's ``time_call`` and writes the timing and scores as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ST_PATH_ENV = "FUSEDSCORE_PYLATE_ST_PATH"
_HERE = str(Path(__file__).resolve())

__all__ = ["ST_PATH_ENV", "EncodeChild", "encode_peer", "rerank_peer", "run", "main"]


def _child_env(st_path: str) -> dict[str, str]:
    """The child's environment: ``st_path`` first on PYTHONPATH, the rest inherited."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (st_path, os.environ.get("PYTHONPATH")) if p))


def _stderr_tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-15:])


# ----------------------------------------------------------------------------- parent side
class EncodeChild:
    """``colbert_encode``'s peer (a ``fusedscore.bench.encoders.PeerImpl``): pylate's encode in a child
    interpreter, one call per command. Replies start with ``@@`` because libraries may print to stdout."""

    def __init__(self, path: str, texts: list[str], device: str, batch_size: int, st_path: str, root: Path):
        import torch

        self.name, self.root = "pylate", root
        spec = root / "pylate_spec.json"
        spec.write_text(json.dumps({"model": path, "texts": texts, "batch_size": batch_size, "device": device,
                                    "threads": torch.get_num_threads()}))
        self.err = open(root / "pylate_stderr.txt", "w+")
        self.proc = subprocess.Popen([sys.executable, _HERE, "--child", "encode", str(spec)], env=_child_env(st_path),
                                     text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        try:
            self.note = self._reply("@@ready")[len("@@ready "):] + " in a child interpreter"
        except Exception:
            self.close()
            raise

    def _reply(self, prefix: str) -> str:
        from fusedscore.bench.encoders import PeerError

        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line.strip()
        self.proc.wait()
        self.err.seek(0)
        raise PeerError("pylate", f"colbert_encode: the pylate child interpreter ({ST_PATH_ENV}) exited with code "
                                  f"{self.proc.returncode}:\n{_stderr_tail(self.err.read())}")

    def _send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def first(self) -> list[np.ndarray]:
        out = self.root / "pylate_out.npz"
        self._send(f"save {out}")
        self._reply("@@saved")
        with np.load(out) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]

    def time_once(self) -> float:
        self._send("run")
        return float(self._reply("@@t ").split()[1])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.err):
            f.close()


def encode_peer(st_path: str) -> Any:
    """A ``fusedscore.bench.encoders.PeerFactory`` for ``peers={"colbert": ...}``."""
    def make(path: str, inputs: list[str], device: str, batch_size: int, limit: int | None, root: Path) -> EncodeChild:
        return EncodeChild(path, inputs, device, batch_size, st_path, root)
    return make


def rerank_peer(st_path: str) -> Any:
    """A ``fusedscore.bench.rerank.ColbertPeer`` for ``peers={"colbert_e2e": ...}``: the child times pylate's
    rerank with the harness's ``time_call`` and returns (impl, note); a failed child raises RuntimeError."""
    def make(path: Path, queries: list[str], cands: list[list[str]], device: str, budget: float,
             root: Path) -> tuple[tuple[str, Any, Any], str]:
        import torch

        from fusedscore.bench.timing import Timing

        spec, out = root / "pylate_spec.json", root / "pylate_out.json"
        spec.write_text(json.dumps({"model": str(path), "queries": queries, "cands": cands, "device": device,
                                    "budget_s": budget, "threads": torch.get_num_threads()}))
        res = subprocess.run([sys.executable, _HERE, "--child", "rerank", str(spec), str(out)],
                             env=_child_env(st_path), text=True, capture_output=True)
        if res.returncode != 0:
            raise RuntimeError(f"colbert_e2e: the pylate child interpreter ({ST_PATH_ENV}={st_path!r}) failed with "
                               f"exit code {res.returncode}:\n{_stderr_tail(res.stderr)}")
        r = json.loads(out.read_text())
        v = r["versions"]
        note = (f"pylate {v['pylate']} with sentence-transformers {v['sentence_transformers']} in a child "
                f"interpreter ({r['threads']} threads): its own encoder, timed there with the same measure()")
        return ("pylate", Timing(r["median"], r["p20"], r["p80"], r["runs"], r["best"]), r["scores"]), note
    return make


def run(st_path: str, device: str = "cpu", quick: bool = False, budget_s: float | None = None,
        **sizes: Any) -> dict[str, list[dict[str, Any]]]:
    """The two ColBERT cases with pylate in the child: {"encoders": rows, "rerank": rows} (the shipped row keys).
    ``sizes``: ``n_texts``/``batch_size`` for the encode case, ``n_queries``/``n_candidates`` for rerank."""
    from fusedscore.bench import encoders, rerank

    enc = {k: sizes[k] for k in ("n_texts", "batch_size") if k in sizes}
    rr = {k: sizes[k] for k in ("n_queries", "n_candidates") if k in sizes}
    return {"encoders": encoders.run(device=device, quick=quick, budget_s=budget_s, cases=["colbert_encode"],
                                     peers={"colbert": encode_peer(st_path)}, **enc),
            "rerank": rerank.run(device=device, quick=quick, budget_s=budget_s, cases=["colbert_e2e"],
                                 peers={"colbert_e2e": rerank_peer(st_path)}, **rr)}


# ----------------------------------------------------------------------------- child side
def _child_setup(threads: int) -> dict[str, str]:
    """The parent's torch thread count; the peer's own warnings and logs silenced (not ours to report)."""
    import torch

    torch.set_num_threads(int(threads))
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import pylate
    import sentence_transformers

    return {"pylate": pylate.__version__, "sentence_transformers": sentence_transformers.__version__}


def _child_encode(spec_path: str) -> None:
    """Commands, one per stdin line: ``run`` (one timed encode; replies ``@@t SECONDS``), ``save PATH`` (encode,
    np.savez the arrays; replies ``@@saved``), ``quit``."""
    import torch

    from fusedscore.bench.encoders import pylate_encode_call

    spec = json.loads(Path(spec_path).read_text())
    v = _child_setup(spec["threads"])
    call = pylate_encode_call(spec["model"], spec["texts"], spec["device"], int(spec["batch_size"]))
    cuda = spec["device"].startswith("cuda")
    print(f"@@ready pylate {v['pylate']} with sentence-transformers {v['sentence_transformers']}, "
          f"{torch.get_num_threads()} threads", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            if cuda:
                torch.cuda.synchronize()
            s = time.perf_counter()
            call()
            if cuda:
                torch.cuda.synchronize()
            print(f"@@t {time.perf_counter() - s!r}", flush=True)
        elif cmd == "save":
            np.savez(arg, *[np.asarray(e, dtype=np.float32) for e in call()])
            print("@@saved", flush=True)
        else:
            return


def _child_rerank(spec_path: str, out_path: str) -> None:
    import torch

    from fusedscore.bench.rerank import pylate_rerank_call, time_call

    spec = json.loads(Path(spec_path).read_text())
    versions = _child_setup(spec["threads"])
    call, to_scores = pylate_rerank_call(spec["model"], spec["queries"], spec["cands"], spec["device"])
    t, out = time_call(call, spec["device"], float(spec["budget_s"]))
    Path(out_path).write_text(json.dumps({
        "median": t.median, "p20": t.p20, "p80": t.p80, "runs": t.runs, "best": t.best,
        "scores": np.asarray(to_scores(out), dtype=np.float64).tolist(), "threads": torch.get_num_threads(),
        "versions": versions}))


# ----------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        {"encode": _child_encode, "rerank": _child_rerank}[argv[1]](*argv[2:])
        return 0
    p = argparse.ArgumentParser(prog="python benchmarks/peers/pylate_child.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--st-path", default=os.environ.get(ST_PATH_ENV),
                   help=f"folder holding sentence-transformers 5.3 (default: ${ST_PATH_ENV})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="fewer texts and queries, shorter time budgets")
    p.add_argument("--budget", type=float, metavar="S", help="seconds of timed runs per implementation and case")
    p.add_argument("--out", metavar="PATH", help="write the rows as JSON here, with the environment")
    a = p.parse_args(argv)
    if not a.st_path or not Path(a.st_path).is_dir():
        print(f"pylate_child: --st-path (or ${ST_PATH_ENV}) must be a folder holding sentence-transformers 5.3, "
              f"got {a.st_path!r}", file=sys.stderr)
        return 2
    from fusedscore.bench.report import rows_table
    from fusedscore.bench.runner import git_info, versions
    from fusedscore.bench.timing import thread_info

    doc = run(a.st_path, device=a.device, quick=a.quick, budget_s=a.budget)
    for key, rows in doc.items():
        print("\n".join(rows_table(key, rows)))
    if a.out:
        Path(a.out).write_text(json.dumps({"git": git_info(), "versions": versions(), "threads": thread_info(),
                                           "options": {"argv": argv}, **doc}, indent=1, default=str) + "\n")
        print(f"wrote {a.out}")
    return 1 if any(r.get("status") == "error" for r in doc["encoders"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
