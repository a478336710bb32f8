"""Smoke test of ``fusedscore bench --rerank`` (``fusedscore.bench.rerank.run``) on tiny shapes.

One quick run (2 queries x 8 candidates, tiny random models, no time budget: warm-up + 3 timed calls per
implementation); then, per case, every row must carry a ratio and scores that agree with the peer's. A
case whose peer is not installed skips with its row's reason; a case the runner skipped (an ImportError in
fusedscore itself, e.g. ``fusedscore.encoders``) fails. With ``FUSEDSCORE_PYLATE_ST_PATH`` set (a
folder holding sentence-transformers 5.3, pylate 1.6's pin) the pylate row of ``colbert_e2e`` must come
from pylate's own encoder in the child interpreter.
"""

from __future__ import annotations

import math
import os

import pytest

pytestmark = [pytest.mark.encoders, pytest.mark.peers]

from fusedscore.bench import rerank

CASES = ["cross_e2e", "colbert_e2e", "bgem3_e2e", "colbert_scoring", "bgem3_scoring"]


@pytest.fixture(scope="module")
def rows():
    return rerank.run(quick=True, n_queries=2, n_candidates=8, budget_s=0.0)


@pytest.mark.parametrize("case", CASES)
def test_rerank_bench_case(rows, case):
    mine = [r for r in rows if r["name"] == case]
    assert mine, f"{case}: no row in {sorted({r['name'] for r in rows})}"
    note = mine[0].get("note") or ""
    if note.startswith("skipped"):  # the runner caught an ImportError of our own code (transformers is required)
        pytest.fail(f"{case}: {note}")
    if note.startswith("no peer"):
        pytest.skip(f"{case}: {note}")
    assert len(mine) >= 2, f"{case}: no peer row and no reason: {mine}"
    assert mine[-1]["ratio"] == 1.0 and mine[-1]["max_abs_diff"] == 0.0  # the peer's own row
    for r in mine:
        assert r["n_queries"] == 2 and r["n_candidates"] == 8
        assert r["runs"] >= 3 and 0 < r["p20_s"] <= r["median_s"] <= r["p80_s"], r
        assert isinstance(r["ratio"], float) and math.isfinite(r["ratio"]) and r["ratio"] > 0, r
        assert r["max_abs_diff"] is not None and r["scores_agree"], \
            f"{case}/{r['impl']}: scores differ from the peer's by {r['max_abs_diff']} (> {rerank.SCORE_ATOL})"


def test_colbert_e2e_times_pylates_own_encoder(rows):
    if not os.environ.get("FUSEDSCORE_PYLATE_ST_PATH"):
        pytest.skip("FUSEDSCORE_PYLATE_ST_PATH (sentence-transformers 5.3 for pylate 1.6) is not set")
    peer = [r for r in rows if r["name"] == "colbert_e2e"][-1]
    if peer["impl"] != "pylate":
        pytest.skip(f"colbert_e2e: {peer.get('note')}")
    assert "child interpreter" in peer["note"] and "FALLBACK" not in peer["note"], peer["note"]
