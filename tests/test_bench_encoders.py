"""``fusedscore bench --encoders`` (``fusedscore.bench.encoders``) on tiny random models: the rows, the output
comparison, the ColBERT case without a pylate that loads, and the ``peers`` hook."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusedscore.bench import encoders as E
from fusedscore.testing import tiny_models as T

pytestmark = pytest.mark.encoders


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_bench")
    return {"colbert": T.build_colbert(root / "colbert"), "splade": T.build_splade(root / "splade"),
            "dense": T.build_dense(root / "dense", pooling="max"), "cross": T.build_cross_encoder(root / "cross")}


def test_bench_encoders_rows(dirs):
    texts = E.mixed_texts(50)
    assert texts == E.mixed_texts(50) and len({len(t.split()) for t in texts}) > 10  # seeded and mixed-length
    rows = E.run(model_dir=str(dirs["dense"]), n_texts=6, batch_size=4, budget_s=0.05)
    assert rows[0]["impl"] == "fusedscore" and rows[0]["name"] == "dense_encode"
    for r in rows:
        assert {"name", "impl", "median_s", "p20_s", "p80_s", "texts_per_s", "ratio_vs_peer"} <= set(r)
        assert r["p20_s"] <= r["median_s"] <= r["p80_s"] and r["texts_per_s"] > 0
    if len(rows) == 2:  # sentence-transformers installed: its row is the reference
        assert rows[1]["ratio_vs_peer"] == 1.0
        assert rows[0]["ratio_vs_peer"] == pytest.approx(rows[0]["texts_per_s"] / rows[1]["texts_per_s"])
    cross = E.run(model_dir=str(dirs["cross"]), n_texts=6, batch_size=4, budget_s=0.05)
    assert cross[0]["name"] == "cross_predict" and cross[0]["n_texts"] == 6 and cross[0]["status"] == "ok"
    if len(cross) == 2:  # ST's CrossEncoder on the same pairs, raw logits on both sides
        assert cross[0]["max_abs_diff"] <= cross[0]["agree_tol"] == 1e-4 and cross[0]["outputs_agree"] is True
    with pytest.raises(ValueError, match=r"encoders.detect_format: cannot tell the format of .*1_Pooling"):
        E.run(model_dir=str(dirs["dense"] / "1_Pooling"), n_texts=2)


def test_bench_cli_only_encoders_skips_the_kernel_cases(dirs, tmp_path, capsys):
    from fusedscore.bench import cli

    out = tmp_path / "enc.json"
    rc = cli.main(["--only", "encoders", "--encoder-model", str(dirs["splade"]), "--budget", "0.01", "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.read_text())
    assert "results" not in doc and [r["name"] for r in doc["encoders"]][0] == "splade_encode"
    assert "splade_encode" in capsys.readouterr().out
    assert cli.main(["--only", "encoders", "--record"]) == 2  # needs the kernel cases
    assert "do not go with --only" in capsys.readouterr().err


def test_bench_output_comparison_catches_wrong_results():
    a = [np.zeros((3, 4), np.float32), np.ones((2, 4), np.float32)]
    assert E._compare("colbert", a, [x.copy() for x in a]) == 0.0
    assert E._compare("colbert", a, [a[0], np.ones((3, 4), np.float32)]) == float("inf")  # a token too many
    assert E._compare("colbert", a, [a[0], a[1] + 1e-3]) == pytest.approx(1e-3, rel=1e-3)
    lex = {"dense_vecs": np.zeros((1, 2)), "colbert_vecs": [np.zeros((1, 2))]}
    assert E._compare("bgem3", {**lex, "lexical_weights": [{"5": 0.5}]}, {**lex, "lexical_weights": [{"6": 0.25}]}) == 0.5
    assert E._compare("cross", np.array([0.5, 1.0]), np.array([0.5, 1.25])) == 0.25
    pairs = E.mixed_pairs(20)
    assert pairs == E.mixed_pairs(20) and all(isinstance(q, str) and isinstance(d, str) for q, d in pairs)


def test_colbert_without_a_pylate_that_loads_times_fusedscore_alone(dirs, monkeypatch):
    # pylate 1.6 under sentence-transformers 6 imports but fails to load models; the case was one skipped row
    # (no fusedscore timing) unless a side folder for a child interpreter was set up, which only CI has
    def cannot_load(path, texts, device, batch_size):
        raise KeyError("word_embedding_dimension")

    monkeypatch.setattr(E, "pylate_encode_call", cannot_load)
    rows = E.run(model_dir=str(dirs["colbert"]), n_texts=4, budget_s=0.01)
    assert [(r["impl"], r["status"]) for r in rows] == [("fusedscore", "ok")]
    assert rows[0]["note"].startswith("no peer: pylate cannot load the model with sentence-transformers ")
    assert "KeyError('word_embedding_dimension')" in rows[0]["note"] and rows[0]["ratio_vs_peer"] is None


def test_colbert_case_times_pylate_in_this_interpreter(dirs, monkeypatch):
    # a stand-in for pylate's encode (fusedscore's own vectors, shifted by 1e-3): the case times it as the peer
    # and its comparison column sees the shift
    from fusedscore.encoders import ColBERT

    model = ColBERT.from_pretrained(str(dirs["colbert"]), device="cpu")
    calls = []

    def fake_pylate(path, texts, device, batch_size):
        def call():
            calls.append(len(texts))
            return [v + 1e-3 for v in model.encode(texts, is_query=False, batch_size=batch_size)]
        return call

    monkeypatch.setattr(E, "pylate_encode_call", fake_pylate)
    rows = E.run(model_dir=str(dirs["colbert"]), n_texts=5, budget_s=0.0)
    assert [r["impl"] for r in rows] == ["fusedscore", "pylate"] and len(calls) == 1 + rows[1]["runs"]
    assert rows[0]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2) and rows[0]["outputs_agree"] is False
    assert rows[1]["ratio_vs_peer"] == 1.0 and rows[1]["runs"] >= 3


def test_peers_hook_replaces_a_kinds_peer_and_its_failure_is_an_error_row(dirs):
    class Broken:
        name, note = "other", ""

        def first(self):
            raise E.PeerError("other", "other: the peer died")

        def time_once(self):
            raise AssertionError("never timed")

        def close(self):
            closed.append(True)

    closed = []
    rows = E.run(model_dir=str(dirs["dense"]), n_texts=4, budget_s=0.01, peers={"dense": lambda *a: Broken()})
    assert rows == [E._row("dense_encode", "other", "error", note="other: the peer died", model="dense",
                           batch_size=32, n_texts=4, device="cpu")]
    assert closed == [True]
    why = E.run(model_dir=str(dirs["dense"]), n_texts=4, budget_s=0.01, peers={"dense": lambda *a: "no peer: test"})
    assert [r["impl"] for r in why] == ["fusedscore"] and why[0]["note"] == "no peer: test"
