"""Smoke test of ``fusedscore bench --rerank`` (``fusedscore.bench.rerank.run``) on tiny shapes.

One quick run (2 queries x 8 candidates, tiny random models, no time budget: warm-up + 3 timed calls per
implementation); then, per case, every row must carry a ratio and scores that agree with the peer's. A
case whose peer is not installed skips with its row's reason; a case the runner skipped (an ImportError in
fusedscore itself, e.g. ``fusedscore.encoders``) fails. pylate in a child interpreter (repo-only) is tested
in test_bench_peers.py.
"""

from __future__ import annotations

import math

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


def test_cases_choose_the_cases_that_run():
    # `fusedscore bench --only rerank --cases X` passed its filter to a run() that had none: every case ran
    rows = rerank.run(quick=True, n_queries=1, n_candidates=3, budget_s=0.0, cases=["colbert_scoring"])
    assert {r["name"] for r in rows} == {"colbert_scoring"}


def test_colbert_e2e_without_a_pylate_that_loads_times_fusedscore_alone(monkeypatch):
    # pylate 1.6 under sentence-transformers 6 imports but cannot load models: the row says so (it timed
    # pylate's rank.rerank on fusedscore's encodings and called that the peer)
    def cannot_load(path, queries, cands, device, batch_size=64):
        raise KeyError("word_embedding_dimension")

    monkeypatch.setattr(rerank, "pylate_rerank_call", cannot_load)
    rows = rerank.run(quick=True, n_queries=1, n_candidates=3, budget_s=0.0, cases=["colbert_e2e"])
    assert [r["impl"] for r in rows] == ["fusedscore"] and rows[0]["ratio"] is None
    assert rows[0]["note"].startswith("no peer: pylate cannot load the model with sentence-transformers ")


def test_colbert_e2e_peer_runs_in_this_interpreter(monkeypatch):
    # a stand-in for pylate (fusedscore's own reranker, ids renamed as pylate's): timed as the peer, scores agree
    from fusedscore.encoders import ColBERT
    from fusedscore.reranker import Reranker

    def as_pylate(path, queries, cands, device, batch_size=64):
        ours = Reranker(ColBERT.from_pretrained(str(path), device=device))

        def call():
            return [[{"id": r["corpus_id"], "score": r["score"]} for r in lst]
                    for lst in ours.rerank_batch(queries, cands, batch_size=batch_size)]
        return call, lambda out: rerank.scores_by_id(out, "id")

    monkeypatch.setattr(rerank, "pylate_rerank_call", as_pylate)
    rows = rerank.run(quick=True, n_queries=2, n_candidates=4, budget_s=0.0, cases=["colbert_e2e"])
    assert [r["impl"] for r in rows] == ["fusedscore", "pylate"] and rows[1]["ratio"] == 1.0
    assert rows[0]["scores_agree"] and rows[0]["max_abs_diff"] <= rerank.SCORE_ATOL
