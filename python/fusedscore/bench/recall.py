"""MUVERA recall harness: how many of the exact MaxSim top-k an FDE's candidate list holds.

A quality check for the benchmark (``fusedscore bench --cases muvera``, ``runner.run_recall``), not a library
function: it scores the whole synthetic set exactly (``maxsim_topk``) and builds an ``FDEIndex`` per setting.
It lives here, above ``muvera`` and ``retrieval``, because it uses both (in ``muvera`` it tied the two into an
import cycle).
"""

from __future__ import annotations

import time
from typing import Sequence

from .._dispatch import synchronize
from ..containers import MultiVectors
from ..muvera import FDE, clustered_data
from ..ops import maxsim_topk
from ..retrieval import FDEIndex

__all__ = ["recall_table", "format_recall_table"]


def recall_table(settings: Sequence[dict] | None = None, *, queries: MultiVectors | None = None,
                 docs: MultiVectors | None = None, k: int = 10, candidates: Sequence[int] = (20, 100),
                 reduce: str = "sum", seed: int = 0) -> list[dict]:
    """Recall@k of FDE candidates against the exact MaxSim top-k, for several FDE settings.

    Args:
        settings: dicts of ``FDE`` keyword arguments (``dim`` is taken from the data); default: a sweep
            around the defaults.
        queries, docs: MultiVectors; default ``clustered_data(seed=seed)``.
        k: size of the exact top-k (ground truth from ``fusedscore.maxsim_topk``).
        candidates: FDE top-``c`` list sizes to score, one column each.
    Returns:
        one dict per setting: the FDE parameters, ``output_dim``, ``recall@k/c<C>`` per candidate count
        (mean over queries of |exact top-k in FDE top-C| / k), ``encode_s`` (encoding both sides).
    """
    if queries is None or docs is None:
        queries, docs = clustered_data(seed=seed)
    if settings is None:
        settings = [dict(k_sim=ks, dim_proj=dp, r_reps=rr) for ks, dp, rr in
                    [(3, 8, 10), (4, 8, 10), (4, 16, 10), (4, 16, 20), (5, 16, 20), (5, 32, 20)]]
    kk = min(k, len(docs))
    _, exact = maxsim_topk(queries, docs, kk, reduce=reduce)
    rows = []
    for st in settings:
        fde = FDE(docs.dim, **st)
        t0 = time.perf_counter()
        index = FDEIndex(fde, docs)
        qf = fde.encode_queries(queries)
        synchronize(qf.device)  # GPU kernels run asynchronously: wait for them before reading the clock
        enc_s = time.perf_counter() - t0
        row = {"k_sim": fde.k_sim, "dim_proj": fde.dim_proj, "r_reps": fde.r_reps, "fill_empty": fde.fill_empty,
               "output_dim": fde.output_dim}
        for c in candidates:
            _, cand = index.candidates_from_fde(qf, c)
            hit = (cand[:, :, None] == exact[:, None, :]).any(1).float().sum(1) / kk
            row[f"recall@{k}/c{c}"] = round(float(hit.mean()), 4)
        row["encode_s"] = round(enc_s, 4)
        rows.append(row)
    return rows


def format_recall_table(rows: Sequence[dict]) -> str:
    """Markdown table of ``recall_table`` rows."""
    if not rows:
        return ""
    cols = list(rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
