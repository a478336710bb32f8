"""`fusedscore eval`: metric plumbing on hand-computable runs, data/run parsing errors, every mode on a tiny
BEIR directory with stub encoders whose rankings are worked out by hand, and the CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from _tol import METRIC_ROUNDING, assert_scores_close, key_for
from fusedscore import MultiVectors, SparseVectors
from fusedscore.cli import main as cli_main
from fusedscore.eval_data import DataError, load_dataset, read_run, write_run
from fusedscore.evaluate import EvalError, EvalOptions, Evaluator, compute_metrics, encode, format_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# ir-measures (the eval extra) computes the metrics: only the tests that score a run need it, and they skip
# only when it is not installed. The rest (data files, modes, caching, the CLI's errors) run without it.
needs_ir_measures = pytest.mark.skipif(importlib.util.find_spec("ir_measures") is None,
                                       reason="the eval extra (ir-measures) is not installed")


# ---------------------------------------------------------------------------- metrics by hand
@needs_ir_measures
def test_perfect_run_scores_one():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 1}}
    run = {"q1": {"a": 3.0, "x": 1.0}, "q2": {"c": 2.0, "b": 1.5, "y": 0.1}}
    m = compute_metrics(qrels, run)
    assert m["nDCG@10"] == pytest.approx(1.0) and m["MRR@10"] == pytest.approx(1.0) and m["R@100"] == pytest.approx(1.0)


@needs_ir_measures
def test_known_ranks_give_known_mrr_and_ndcg():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    # q1: the relevant doc at rank 3; q2: at rank 2. Dict order is deliberately not the score order.
    run = {"q1": {"a": 1.0, "x": 3.0, "y": 2.0}, "q2": {"b": 0.5, "z": 0.9}}
    m = compute_metrics(qrels, run, per_query=True)
    assert m["MRR@10"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m["nDCG@10"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(3)) / 2)
    assert m["per_query"]["MRR@10"] == pytest.approx({"q1": 1 / 3, "q2": 1 / 2})


@needs_ir_measures
def test_graded_ndcg_uses_grades_as_gains_and_rel_level_for_binary_measures():
    qrels = {"q": {"a": 2, "b": 1, "c": 1}}
    run = {"q": {"b": 3.0, "a": 2.0, "x": 1.0}}  # c never retrieved
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    m = compute_metrics(qrels, run)
    assert m["nDCG@10"] == pytest.approx(dcg / idcg)
    assert m["MRR@10"] == pytest.approx(1.0) and m["R@100"] == pytest.approx(2 / 3)
    m2 = compute_metrics(qrels, run, rel_level=2)  # only "a" is relevant now
    assert m2["MRR@10"] == pytest.approx(1 / 2) and m2["R@100"] == pytest.approx(1.0)


@needs_ir_measures
def test_unanswered_query_counts_zero_and_nan_is_rejected():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    assert compute_metrics(qrels, {"q1": {"a": 1.0}})["nDCG@10"] == pytest.approx(0.5)
    assert compute_metrics(qrels, {})["MRR@10"] == 0.0
    m = compute_metrics(qrels, {"q1": {"a": float("-inf"), "x": 0.0}, "q2": {"b": 1.0}})  # -inf ranks last
    assert m["MRR@10"] == pytest.approx((1 / 2 + 1) / 2)
    with pytest.raises(ValueError, match="eval: run scores must not be NaN, got NaN for query 'q1' document 'a'"):
        compute_metrics(qrels, {"q1": {"a": float("nan")}})


# ---------------------------------------------------------------------------- a tiny BEIR directory
VOCAB = ["alpha", "beta", "gamma", "delta", "zeta", "eta"]
CORPUS = [  # d4's title is joined before its text (the BEIR convention)
    {"_id": "d1", "text": "alpha alpha alpha"},
    {"_id": "d2", "text": "alpha beta"},
    {"_id": "d3", "title": "", "text": "beta beta"},
    {"_id": "d4", "title": "zeta", "text": "gamma"},
    {"_id": "d5", "text": "delta"},
    {"_id": "d6", "text": "eta delta"},
]
QUERIES = [{"_id": "q1", "text": "alpha"}, {"_id": "q2", "text": "beta"}, {"_id": "q3", "text": "zeta"},
           {"_id": "q9", "text": "unjudged"}]
QRELS = [("q1", "d2", 1), ("q2", "d2", 1), ("q3", "d4", 1)]
# Worked by hand. Dense = raw word counts: q1 -> d1 (3) > d2 (1); q2 -> d3 (2) > d2 (1); q3 -> d4 (1).
DENSE_MRR = (1 / 2 + 1 / 2 + 1) / 3
# Sparse stub weighs a document's word by 1/count: q1 -> d2 (1) > d1 (1/3); q2 -> d2 (1) > d3 (1/2); q3 -> d4.
SPARSE_MRR = 1.0


def _write_beir(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels))
    return root


def _counts(text: str) -> list[float]:
    return [float(text.split().count(w)) for w in VOCAB]


class DenseStub:
    """A dense encoder by the encoders' contract: raw word counts."""

    def encode(self, texts, batch_size=32):
        return torch.tensor([_counts(t) for t in texts]).reshape(len(texts), len(VOCAB))


class SparseStub:
    """A sparse encoder: queries weigh words by count, documents by 1/count."""

    def encode(self, texts, batch_size=32, is_query=False):
        rows = [{i: (c if is_query else 1.0 / c) for i, c in enumerate(_counts(t)) if c} for t in texts]
        return SparseVectors.from_dicts(rows, vocab_size=len(VOCAB))


class TokenStub:
    """A multi-vector encoder through encode_tokens: one one-hot vector per known word."""

    def encode_tokens(self, texts, batch_size=32):
        eye = torch.eye(len(VOCAB))
        return MultiVectors.from_list([eye[[VOCAB.index(w) for w in t.split() if w in VOCAB]] for t in texts],
                                      dim=len(VOCAB))


@pytest.fixture
def beir(tmp_path):
    return _write_beir(tmp_path / "tiny")


def _evaluator(data_dir, **opt):
    data = load_dataset(data_dir)
    models = {"dense": DenseStub(), "sparse": SparseStub(), "multi": TokenStub(), "rerank": DenseStub()}
    return Evaluator(data, models, EvalOptions(quiet=True, **opt))


def test_load_beir_keeps_judged_queries_and_joins_titles(beir):
    data = load_dataset(beir)
    assert data.format == "beir" and data.rel_level == 1
    assert list(data.queries) == ["q1", "q2", "q3"]  # q9 is not judged
    assert data.corpus["d4"] == "zeta gamma" and data.corpus["d3"] == "beta beta"
    assert data.qrels == {"q1": {"d2": 1}, "q2": {"d2": 1}, "q3": {"d4": 1}}
    assert list(data.subset(2).queries) == ["q1", "q2"] and len(data.subset(2).corpus) == 6
    # a corpus subset keeps the first documents plus every judged one, in file order
    assert list(data.subset(max_docs=1).corpus) == ["d1", "d2", "d4"]
    assert list(data.subset(max_queries=1, max_docs=1).corpus) == ["d1", "d2"]


@needs_ir_measures
def test_dense_and_sparse_modes_give_the_hand_worked_mrr(beir):
    ev = _evaluator(beir)
    rows = {r["mode"]: r for r in ev.evaluate(["dense", "sparse"])}
    assert rows["dense"]["MRR@10"] == pytest.approx(DENSE_MRR, abs=METRIC_ROUNDING)
    assert rows["dense"]["nDCG@10"] == pytest.approx((2 / math.log2(3) + 1) / 3, abs=METRIC_ROUNDING)
    assert rows["sparse"]["MRR@10"] == pytest.approx(SPARSE_MRR, abs=METRIC_ROUNDING)
    assert rows["dense"]["R@100"] == pytest.approx(1.0) and rows["dense"]["queries"] == 3
    assert ev.run("dense")["q2"]["d3"] == pytest.approx(2.0)  # the run holds the model's scores


@needs_ir_measures
@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_with_one_signal_weighted_out_is_that_signal(beir, fusion):
    for weights, want in (((1.0, 0.0), DENSE_MRR), ((0.0, 1.0), SPARSE_MRR)):
        row = _evaluator(beir, fusion=fusion, weights=weights).evaluate(["hybrid"])[0]
        assert row["mode"] == f"hybrid-{fusion}"
        assert row["MRR@10"] == pytest.approx(want, abs=METRIC_ROUNDING), weights


def test_muvera_with_every_candidate_equals_exact_colbert(beir):
    ev = _evaluator(beir, candidates=6)
    mu, ex = ev.run("muvera"), ev.run("colbert")
    assert mu.keys() == ex.keys()
    for q in ex:
        assert mu[q].keys() == ex[q].keys()
        got, ref = torch.tensor([mu[q][d] for d in ex[q]]), torch.tensor(list(ex[q].values()))
        # one-hot token vectors are >= 0: MaxSim of their absolute values is the score itself
        assert_scores_close(got, ref, ref.abs(), key_for(torch.float32))
    assert max(ex["q3"], key=ex["q3"].get) == "d4" and ex["q3"]["d4"] == pytest.approx(1.0)


@needs_ir_measures
def test_run_and_rerank_modes(beir, tmp_path):
    # a TREC run that ranks every document in reverse corpus order
    run_file = tmp_path / "first.trec"
    write_run({q: {f"d{i}": float(i) for i in range(1, 7)} for q in ("q1", "q2", "q3")}, run_file)
    ev = _evaluator(beir)
    ev.run_file = str(run_file)
    rows = {r["mode"]: r for r in ev.evaluate(["run", "rerank"])}
    # reversed run: q1's d2 at rank 5, q2's d2 at rank 5, q3's d4 at rank 3
    assert rows["run(first)"]["MRR@10"] == pytest.approx((1 / 5 + 1 / 5 + 1 / 3) / 3, abs=METRIC_ROUNDING)
    # rerank with the dense stub over all documents reproduces the dense ranking
    assert rows["rerank(first)"]["MRR@10"] == pytest.approx(DENSE_MRR, abs=METRIC_ROUNDING)
    # a first stage can also be another mode
    ev2 = _evaluator(beir, first_stage="sparse", rerank_depth=2)
    row = ev2.evaluate(["rerank"])[0]
    assert row["mode"] == "rerank(sparse)"
    # sparse top-2 then dense order: q1 {d2, d1} -> d1, d2; q2 {d2, d3} -> d3, d2; q3 d4 first
    assert row["MRR@10"] == pytest.approx(DENSE_MRR, abs=METRIC_ROUNDING)


class LateStub:
    """A multi-vector encoder with ColBERT's encode contract (no encoder class name): one-hot word vectors."""

    def encode(self, texts, is_query, batch_size=32, as_containers=False):
        return TokenStub().encode_tokens(texts, batch_size=batch_size)


def test_encode_tells_model_kinds_as_the_reranker_does():
    # evaluate had its own rule (class names only, anything else "other"): a ColBERT-like stub was refused for
    # the multi role, and a dense-only model for the sparse role failed inside encode on is_query
    texts = ["alpha beta", "gamma"]
    got = encode(LateStub(), "multi", texts, is_query=True)
    ref = TokenStub().encode_tokens(texts)
    assert torch.equal(got.offsets, ref.offsets) and torch.equal(got.values, ref.values)
    with pytest.raises(EvalError, match="^eval: the sparse mode needs a sparse model \\(Splade or BGEM3\\), got DenseStub$"):
        encode(DenseStub(), "sparse", texts, is_query=True)
    with pytest.raises(EvalError, match="^eval: the dense mode needs a dense model .*, got TokenStub$"):
        encode(TokenStub(), "dense", texts, is_query=True)


def test_mode_errors(beir):
    ev = Evaluator(load_dataset(beir), {}, EvalOptions(quiet=True))
    with pytest.raises(EvalError, match="eval: mode 'dense' needs a model: pass --model or --dense-model"):
        ev.run("dense")
    with pytest.raises(EvalError, match="eval: mode must be one of"):
        ev.run("bm25")
    with pytest.raises(EvalError, match="eval: mode 'rerank' needs a first stage"):
        ev.run("rerank")
    ev = Evaluator(load_dataset(beir), {"multi": DenseStub()}, EvalOptions(quiet=True))
    with pytest.raises(EvalError, match="eval: the muvera/colbert modes need a multi-vector model"):
        ev.run("muvera")


# ---------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("which,line,content,match", [
    ("corpus.jsonl", 3, '{"_id": "x", "text": "ok"}\n{"_id": "y", "text": "ok"}\n{"_id": "z", "text": \n',
     r"corpus.jsonl:3: bad JSON"),
    ("corpus.jsonl", 2, '{"_id": "x", "text": "ok"}\n{"_id": "y"}\n', r"corpus.jsonl:2: missing field 'text'"),
    ("corpus.jsonl", 2, '{"_id": "x", "text": "a"}\n{"_id": "x", "text": "b"}\n', r"corpus.jsonl:2: duplicate document id 'x'"),
    ("queries.jsonl", 2, '{"_id": "q1", "text": "a"}\n[1, 2]\n', r"queries.jsonl:2: must be a JSON object, got list"),
    ("qrels/test.tsv", 3, "query-id\tcorpus-id\tscore\nq1\td2\t1\nq1\td3\thigh\n", r"test.tsv:3: grade must be an integer"),
    ("qrels/test.tsv", 2, "query-id\tcorpus-id\tscore\nq1\td2\n", r"test.tsv:2: must have 3 \(qid docid grade\)"),
    ("qrels/test.tsv", 2, "query-id\tcorpus-id\tscore\nq7\td2\t1\n", r"test.tsv: judged query 'q7' has no text"),
])
def test_bad_data_files_name_the_line(beir, which, line, content, match):
    (beir / which).write_text(content)
    with pytest.raises(DataError, match=match):
        load_dataset(beir)


def test_bad_run_files_name_the_line(tmp_path):
    p = tmp_path / "r.trec"
    p.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2 1.0\n")
    with pytest.raises(DataError, match=r"r.trec:2: a TREC run line must have 6 fields .* got 5"):
        read_run(p)
    p.write_text("q1 Q0 d1 1 high t\n")
    with pytest.raises(DataError, match=r"r.trec:1: score must be a number, got 'high'"):
        read_run(p)
    j = tmp_path / "r.jsonl"
    j.write_text('{"qid": "q1", "candidates": [{"docid": "d1", "rank": 1}, {"docid": "d2", "rank": 2}]}\n{"qid": "q2"}\n')
    with pytest.raises(DataError, match=r"r.jsonl:2: missing field 'candidates'"):
        read_run(j)
    j.write_text('{"qid": "q1", "candidates": [{"docid": "d1", "rank": 1}, {"docid": 7, "rank": 2}]}\n')
    run = read_run(j)  # no scores: the rank order is kept; numeric ids become strings
    assert sorted(run["q1"], key=run["q1"].get, reverse=True) == ["d1", "7"]


def test_not_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="is neither a BEIR directory"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="eval: data must be a directory"):
        load_dataset(tmp_path / "missing")


@needs_ir_measures
def test_trec_dl_layout(tmp_path):
    d = tmp_path / "dl"
    d.mkdir()
    (d / "corpus.jsonl").write_text('{"_id": "p1", "text": "a"}\n{"_id": "p2", "text": "b"}\n')
    (d / "queries.tsv").write_text("1\tfirst query\n2\tsecond\n")
    (d / "qrels.txt").write_text("1 Q0 p1 3\n1 Q0 p2 1\n2 Q0 p2 2\n")
    (d / "bm25_top100.jsonl").write_text('{"qid": "1", "query": "first query", "candidates": [{"docid": "p2", "rank": 1, '
                                         '"score": 9.0}, {"docid": "p1", "rank": 2, "score": 8.0}]}\n')
    data = load_dataset(d)
    assert data.format == "trec-dl" and data.rel_level == 2 and set(data.runs) == {"bm25"}
    assert data.queries == {"1": "first query", "2": "second"}
    ev = Evaluator(data, {}, EvalOptions(quiet=True), run_file="bm25")
    row = ev.evaluate(["run"])[0]
    # q1: p2 (grade 1, not relevant at rel_level 2) then p1 -> RR 1/2; q2 unanswered -> 0
    assert row["mode"] == "run(bm25)" and row["MRR@10"] == pytest.approx(0.25, abs=METRIC_ROUNDING)


# ---------------------------------------------------------------------------- CLI
@needs_ir_measures
def test_cli_run_mode_table_and_json(beir, tmp_path, capsys):
    run_file = tmp_path / "perfect.trec"
    write_run({"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d2": 1.0}, "q3": {"d4": 1.0}}, run_file)
    out = tmp_path / "res.json"
    assert cli_main(["eval", "--data", str(beir), "--run", str(run_file), "--output", str(out), "--quiet",
                     "--save-runs", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    assert "| run(perfect) | 1.0000 | 1.0000 | 1.0000 | 3 |" in printed
    res = json.loads(out.read_text())
    assert res["rows"][0]["nDCG@10"] == 1.0 and res["queries"] == 3 and res["format"] == "beir"
    assert (tmp_path / "runs" / "run(perfect).trec").read_text().startswith("q1 Q0 d2 1 ")


def test_cli_without_ir_measures_says_how_to_install(beir, tmp_path, monkeypatch, capsys):
    # it raised a RuntimeError traceback from the first metric, once the first mode had run (hours of encoding)
    run_file = tmp_path / "perfect.trec"
    write_run({"q1": {"d2": 1.0}}, run_file)
    monkeypatch.setitem(sys.modules, "ir_measures", None)  # what `import ir_measures` sees when it is not installed
    assert cli_main(["eval", "--data", str(beir), "--run", str(run_file), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fusedscore eval: error: eval: the metrics need ir-measures: pip install "
                          "'fusedscore[eval]'") and "Traceback" not in err, err


def test_cli_bad_file_exits_2_naming_the_line(beir, capsys):
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "b"}\n{oops}\n')
    assert cli_main(["eval", "--data", str(beir), "--mode", "run", "--run", "x", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fusedscore eval: error:" in err and "queries.jsonl:3: bad JSON" in err


def test_cli_nothing_to_do_and_unknown_mode(beir, capsys):
    assert cli_main(["eval", "--data", str(beir)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert cli_main(["eval", "--data", str(beir), "--mode", "dense,bm42"]) == 2
    assert "--mode must be among" in capsys.readouterr().err


def test_format_table():
    t = format_table([{"mode": "dense", "nDCG@10": 0.5, "MRR@10": 0.25, "R@100": 1.0, "queries": 3, "seconds": 1.25}])
    assert t.splitlines()[2] == "| dense | 0.5000 | 0.2500 | 1.0000 | 3 | 1.2 |"


@needs_ir_measures
@pytest.mark.skipif(not (SHARED / "trec-dl" / "dl19" / "qrels.txt").is_file(), reason="shared TREC-DL data absent")
def test_trec_dl19_bm25_matches_the_published_ndcg():
    """The shipped BM25 run scored through the whole pipeline: 0.5058 is NIST's/the data README's figure."""
    data = load_dataset(SHARED / "trec-dl" / "dl19")
    row = Evaluator(data, {}, EvalOptions(quiet=True), run_file="bm25").evaluate(["run"])[0]
    assert row["nDCG@10"] == pytest.approx(0.5058, abs=METRIC_ROUNDING) and row["queries"] == 43


# ---------------------------------------------------------------------------- real encoders, tiny models
@needs_ir_measures
@pytest.mark.encoders
def test_cli_with_tiny_models_end_to_end(tmp_path, capsys):
    from fusedscore.testing import tiny_models as tm
    from fusedscore.encoders import DenseEncoder

    docs = [{"_id": f"c{i}", "text": t} for i, t in enumerate(tm.CORPUS)]
    queries = [{"_id": "a", "text": "capital of France"}, {"_id": "b", "text": "sparse retrieval terms"},
               {"_id": "c", "text": "fox and dog"}]
    qrels = [("a", "c4", 1), ("b", "c3", 1), ("c", "c0", 1), ("c", "c1", 1)]
    data = _write_beir(tmp_path / "beir", docs, queries, qrels)
    dense, splade = tm.build_dense(tmp_path / "dense"), tm.build_splade(tmp_path / "splade")
    colbert, cross = tm.build_colbert(tmp_path / "colbert"), tm.build_cross_encoder(tmp_path / "cross")
    out = tmp_path / "res.json"
    argv = ["eval", "--data", str(data), "--model", str(dense), "--sparse-model", str(splade), "--multi-model",
            str(colbert), "--rerank-model", str(cross), "--mode", "dense,sparse,hybrid,muvera,colbert",
            "--mode", "rerank", "--first-stage", "sparse", "--candidates", "8", "--output", str(out), "--quiet",
            "--cache", str(tmp_path / "cache")]
    assert cli_main(argv) == 0
    rows = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}
    assert list(rows) == ["dense", "sparse", "hybrid-rrf", "muvera", "colbert", "rerank(sparse)"]
    # the dense row against a brute-force ranking of the same encoder's vectors
    enc = DenseEncoder.from_pretrained(dense)
    qv, dv = enc.encode([q["text"] for q in queries]), enc.encode([d["text"] for d in docs])
    sc = (qv.double() @ dv.double().T).tolist()
    run = {q["_id"]: {d["_id"]: s for d, s in zip(docs, row)} for q, row in zip(queries, sc)}
    want = compute_metrics({q: {d: g for qq, d, g in qrels if qq == q} for q in "abc"}, run)
    for m in ("nDCG@10", "MRR@10", "R@100"):
        assert rows["dense"][m] == pytest.approx(want[m], abs=METRIC_ROUNDING), m
    # every document is a MUVERA candidate (8 >= 8 docs): the exact MaxSim ranking
    assert {m: rows["muvera"][m] for m in ("nDCG@10", "MRR@10")} == {m: rows["colbert"][m] for m in ("nDCG@10", "MRR@10")}
    assert any((tmp_path / "cache").glob("dense-corpus-*.pt"))
    # a second run reads the cached encodings and gives the same row
    assert cli_main(["eval", "--data", str(data), "--model", str(dense), "--mode", "dense", "--quiet", "--output",
                     str(out), "--cache", str(tmp_path / "cache")]) == 0
    again = json.loads(out.read_text())
    assert again["rows"][0]["nDCG@10"] == rows["dense"]["nDCG@10"] and again["encode_seconds"] == {}
    # a bi-encoder directory as --multi-model: its token vectors
    assert cli_main(["eval", "--data", str(data), "--multi-model", str(dense), "--mode", "muvera", "--quiet"]) == 0
    assert "| muvera |" in capsys.readouterr().out


@pytest.mark.encoders
def test_cache_key_covers_colbert_lengths(tmp_path):
    # ColBERT's query/document lengths (from --max-length) are not in its repr: the cache must still tell
    # encodings cut at 4 tokens from encodings cut at 40, or a later run silently reuses the short ones
    from fusedscore.testing import tiny_models as tm
    from fusedscore.encoders import ColBERT

    docs = [{"_id": f"c{i}", "text": t} for i, t in enumerate(tm.CORPUS)]
    data = load_dataset(_write_beir(tmp_path / "beir", docs, [{"_id": "a", "text": "fox"}], [("a", "c0", 1)]))
    path = tm.build_colbert(tmp_path / "colbert")
    cache = str(tmp_path / "cache")
    short = ColBERT.from_pretrained(path, device="cpu", max_length=4)
    long = ColBERT.from_pretrained(path, device="cpu", max_length=40)
    Evaluator(data, {"multi": short}, EvalOptions(quiet=True, cache=cache)).rep("multi", "corpus", "colbert")
    cached = Evaluator(data, {"multi": long}, EvalOptions(quiet=True, cache=cache)).rep("multi", "corpus", "colbert")
    fresh = Evaluator(data, {"multi": long}, EvalOptions(quiet=True)).rep("multi", "corpus", "colbert")
    assert cached.lengths.tolist() == fresh.lengths.tolist()
    assert max(fresh.lengths.tolist()) > 4


def test_fde_option_parses_booleans():
    # "--fde fill_empty=false" must turn the fill off: the string "False" is truthy and FDE took it as True
    from fusedscore.evaluate import _parse_kv
    from fusedscore.muvera import FDE

    kv = _parse_kv("fill_empty=False,k_sim=3,dim_proj=none", "--fde")
    assert kv == {"fill_empty": False, "k_sim": 3, "dim_proj": None}
    assert FDE(8, **kv).fill_empty is False
    assert _parse_kv("fill_empty=true", "--fde") == {"fill_empty": True}


def test_cached_encodings_come_back_on_the_encoders_device(beir, tmp_path):
    # encodings are saved from the CPU; a cache hit must put them back where the encoder puts fresh ones, or a
    # resumed GPU run mixes CPU (cached) and CUDA (fresh) chunks and queries. "meta" stands in for a GPU here.
    class Enc(DenseStub):
        device = torch.device("cpu")

        def __repr__(self):
            return "Enc()"

    cache = str(tmp_path / "cache")
    enc = Enc()
    Evaluator(load_dataset(beir), {"dense": enc}, EvalOptions(quiet=True, cache=cache, chunk=2)).rep("dense", "corpus", "dense")
    enc.device = torch.device("meta")
    got = Evaluator(load_dataset(beir), {"dense": enc}, EvalOptions(quiet=True, cache=cache, chunk=2)).rep("dense", "corpus", "dense")
    assert got.device.type == "meta" and tuple(got.shape) == (6, len(VOCAB))


@needs_ir_measures
def test_bars_draw_only_on_a_terminal(beir, capsys):
    # quiet=False in a log (stderr not a terminal): the bars drew every frame into it
    Evaluator(load_dataset(beir), {"dense": DenseStub(), "multi": TokenStub()},
              EvalOptions(chunk=2)).evaluate(["dense", "muvera"])
    assert capsys.readouterr().err == ""


@needs_ir_measures
@pytest.mark.encoders
def test_cli_loads_each_model_directory_once(tmp_path, monkeypatch):
    # a bi-encoder named for the muvera/colbert role was read twice: as itself, then again as a ColBERT
    import transformers

    from fusedscore.testing import tiny_models as tm
    from fusedscore.encoders import ColBERT

    docs = [{"_id": f"c{i}", "text": t} for i, t in enumerate(tm.CORPUS)]
    data = _write_beir(tmp_path / "beir", docs, [{"_id": "a", "text": "fox"}, {"_id": "b", "text": "capital"}],
                       [("a", "c0", 1), ("b", "c4", 1)])
    dense = tm.build_dense(tmp_path / "dense")
    loads = []
    real = transformers.AutoModel.from_pretrained
    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        lambda path, *a, **k: (loads.append(Path(path).resolve()), real(path, *a, **k))[1])
    out = tmp_path / "res.json"
    # the same directory for every role, spelled two ways
    assert cli_main(["eval", "--data", str(data), "--model", str(dense), "--multi-model", f"{tmp_path}/./dense/",
                     "--mode", "dense,colbert", "--quiet", "--output", str(out)]) == 0
    assert loads == [Path(dense).resolve()]
    # the token encoder on the shared weights encodes as a ColBERT loaded from the directory (the old way) does
    from fusedscore.encoders import DenseEncoder

    shared = ColBERT.from_dense_encoder(DenseEncoder.from_pretrained(dense, device="cpu"))
    own = ColBERT.from_pretrained(dense, device="cpu", query_prefix="", document_prefix="", do_query_expansion=False,
                                  query_length=shared.query_length, document_length=shared.document_length)
    for is_query in (True, False):
        a = shared.encode(tm.CORPUS, is_query=is_query, as_containers=True)
        b = own.encode(tm.CORPUS, is_query=is_query, as_containers=True)
        assert torch.equal(a.offsets, b.offsets) and torch.equal(a.values, b.values)
    got = {r["mode"]: r for r in json.loads(out.read_text())["rows"]}["colbert"]
    ref = Evaluator(load_dataset(data), {"multi": own}, EvalOptions(quiet=True)).evaluate(["colbert"])[0]
    assert {m: got[m] for m in ("nDCG@10", "MRR@10", "R@100")} == {m: ref[m] for m in ("nDCG@10", "MRR@10", "R@100")}
