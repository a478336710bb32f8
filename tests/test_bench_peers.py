"""``benchmarks/peers/pylate_child.py``: the bench's pylate rows in a child interpreter (repo-only, not shipped).

The failure paths run everywhere: a side folder whose ``pylate`` fails on import stands in for a broken
sentence-transformers 5.3 folder. The real child runs where ``FUSEDSCORE_PYLATE_ST_PATH`` names a folder holding
sentence-transformers 5.3 (CI sets it, with pylate 1.6 installed); there its rows must come from pylate's
own encoder and agree with fusedscore's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "peers"))

import pylate_child  # noqa: E402

from fusedscore.bench import encoders, rerank  # noqa: E402
from fusedscore.testing import tiny_models as T  # noqa: E402

pytestmark = [pytest.mark.encoders, pytest.mark.peers]


@pytest.fixture(scope="module")
def colbert_dir(tmp_path_factory):
    return str(T.build_colbert(tmp_path_factory.mktemp("tiny_peers") / "colbert"))


@pytest.fixture
def broken_st_path(tmp_path):
    (tmp_path / "pylate").mkdir()
    (tmp_path / "pylate" / "__init__.py").write_text('raise ImportError("a broken side folder")\n')
    return str(tmp_path)


def _st_path() -> str:
    path = os.environ.get(pylate_child.ST_PATH_ENV)
    if not path:
        pytest.skip(f"{pylate_child.ST_PATH_ENV} (a folder with sentence-transformers 5.3, pylate's pin) is not set")
    return path


def test_a_failing_encode_child_is_an_error_row(colbert_dir, broken_st_path):
    rows = encoders.run(model_dir=colbert_dir, n_texts=4, budget_s=0.01,
                        peers={"colbert": pylate_child.encode_peer(broken_st_path)})
    assert [(r["impl"], r["status"]) for r in rows] == [("pylate", "error")]
    note = rows[0]["note"]
    assert note.startswith(f"colbert_encode: the pylate child interpreter ({pylate_child.ST_PATH_ENV}) exited with "
                           "code 1:\n") and "ImportError: a broken side folder" in note, note


def test_a_failing_rerank_child_names_its_exit_code(broken_st_path):
    with pytest.raises(RuntimeError, match=r"(?s)colbert_e2e: the pylate child interpreter .* failed with exit code 1"
                                           r":\n.*ImportError: a broken side folder"):
        rerank.run(quick=True, n_queries=1, n_candidates=2, budget_s=0.0, cases=["colbert_e2e"],
                   peers={"colbert_e2e": pylate_child.rerank_peer(broken_st_path)})


def test_command_needs_the_side_folder(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(pylate_child.ST_PATH_ENV, raising=False)
    assert pylate_child.main([]) == 2
    assert pylate_child.main(["--st-path", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "must be a folder holding sentence-transformers 5.3, got None" in err and "missing'" in err


def test_encode_child_returns_pylates_vectors(colbert_dir):
    rows = encoders.run(model_dir=colbert_dir, n_texts=12, batch_size=5, budget_s=0.01,
                        peers={"colbert": pylate_child.encode_peer(_st_path())})
    assert [r["impl"] for r in rows] == ["fusedscore", "pylate"], rows
    assert all(r["status"] == "ok" and r["runs"] >= 3 for r in rows)
    assert rows[0]["max_abs_diff"] <= encoders.AGREE_TOL["cpu"] and rows[0]["outputs_agree"] is True
    assert rows[1]["note"].startswith("pylate 1.6") and rows[1]["note"].endswith("in a child interpreter")
    assert rows[1]["ratio_vs_peer"] == 1.0


def test_rerank_child_times_pylates_own_encoder():
    rows = rerank.run(quick=True, n_queries=2, n_candidates=8, budget_s=0.0, cases=["colbert_e2e"],
                      peers={"colbert_e2e": pylate_child.rerank_peer(_st_path())})
    assert [r["impl"] for r in rows] == ["fusedscore", "pylate"], rows
    assert "child interpreter" in rows[1]["note"] and rows[1]["ratio"] == 1.0
    for r in rows:
        assert r["runs"] >= 3 and r["scores_agree"], r
