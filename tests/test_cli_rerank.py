"""``fusedscore rerank``: both input forms, ranked output, the summary line, and bad lines that stop the
run only after every earlier line was scored and written."""

from __future__ import annotations

import json
import re
import sys
import types
import zlib
from pathlib import Path

import pytest
import torch

from fusedscore import MultiVectors, cli
from fusedscore.cli_rerank import BadLine, parse_row, rerank_rows
from fusedscore.reranker import Reranker


class ColBERT:
    """Deterministic stub: one unit vector per word (an empty text has no token and scores -inf)."""

    def encode(self, texts, is_query, batch_size=32, as_containers=False):
        items = []
        for t in texts:
            vs = [torch.nn.functional.normalize(torch.randn(4, generator=torch.Generator().manual_seed(
                zlib.crc32(w.encode()))), dim=0) for w in t.split()]
            items.append(torch.stack(vs) if vs else torch.zeros(0, 4))
        return MultiVectors.from_list(items, dim=4)


def _score(q: str, d: str) -> float:
    """Oracle: same word -> similarity 1, so the score is the count of query words present in d (when d
    has no other closer vector); used only to check the order on texts built for it."""
    return float(sum(w in d.split() for w in q.split()))


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    mod = types.ModuleType("fusedscore.encoders")
    mod.load = lambda path, device=None: ColBERT()
    monkeypatch.setitem(sys.modules, "fusedscore.encoders", mod)
    d = tmp_path / "model"
    d.mkdir()
    return str(d)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _read(path):
    with open(path) as f:
        return [json.loads(x) for x in f]


ROWS_A = [{"query": "red fox", "documents": ["blue sky", "red fox", "fox"]},
          {"query": "sky", "documents": []}]
ROWS_B = [{"qid": "q7", "query": "red fox", "candidates": [{"doc_id": "x", "text": "fox"},
                                                           {"doc_id": 5, "text": "red fox"}], "extra": 1}]


def test_cli_both_forms_top_k_and_summary(fake_model, tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in ROWS_A + ROWS_B] + [""])
    out = str(tmp_path / "out.jsonl")
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--top-k", "2", "--no-progress"])
    assert rc == 0
    rows = _read(out)
    assert [r.get("qid") for r in rows] == [None, None, "q7"] and rows[2]["extra"] == 1
    assert [x["corpus_id"] for x in rows[0]["results"]] == [1, 2] and rows[1]["results"] == []
    assert [x["doc_id"] for x in rows[2]["results"]] == [5, "x"]
    assert rows[0]["results"][0]["score"] == pytest.approx(_score("red fox", "red fox"), rel=1e-5)
    assert "documents" not in rows[0] and "candidates" not in rows[2]
    summary = capsys.readouterr().out
    assert "3 queries, 5 pairs in" in summary and "pairs/s" in summary


@pytest.mark.parametrize("per_batch", ["1", "64"])
@pytest.mark.parametrize("bad, why", [("{not json", "bad JSON"), ('{"documents": ["a"]}', "missing field 'query'"),
                                      ('{"query": "a", "candidates": [{"text": "b"}]}',
                                       "candidates\\[0\\] is missing field 'doc_id'"),
                                      ('{"query": "a", "documents": "b"}', "'documents' must be a list of strings"),
                                      # Python's json reads these, but the output (allow_nan=False) cannot hold them
                                      ('{"query": "a", "documents": ["b"], "meta": NaN}', "bad JSON \\(NaN"),
                                      ('{"query": "a", "documents": ["b"], "w": -Infinity}', "bad JSON \\(-Infinity"),
                                      ('{"query": "a", "documents": ["b"], "w": 1e999}', "bad JSON \\(1e999")])
def test_cli_bad_line_keeps_the_lines_before(fake_model, tmp_path, capsys, bad, why, per_batch):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0]), "", json.dumps(ROWS_B[0]), bad, json.dumps(ROWS_A[0])])
    out = str(tmp_path / "out.jsonl")
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--queries-per-batch", per_batch,
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert re.search(f"in.jsonl:4: {why}", err), err
    assert len(_read(out)) == 2  # lines 1 and 3 were scored and written before the error


def test_cli_bad_arguments(fake_model, tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    assert cli.main(["rerank", "--model", str(tmp_path / "nope"), "--input", inp, "--output", "o"]) == 2
    assert "--model must be a model directory" in capsys.readouterr().err
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", "o", "--top-k", "0"]) == 2
    assert "--top-k must be > 0, got 0" in capsys.readouterr().err


def test_cli_output_over_its_input_is_refused(fake_model, tmp_path, capsys):
    # opening --output for writing truncated the input before a line was read: 0 queries, input gone, exit 0
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    before = Path(inp).read_text()
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", inp, "--no-progress"]) == 2
    assert "--output must not be the --input file" in capsys.readouterr().err
    assert Path(inp).read_text() == before


def test_rerank_rows_is_reusable_and_writes_null_for_minus_inf():
    rows = [{"query": "a", "documents": ["", "a"]}, {"qid": 1, "query": "b", "candidates": [{"doc_id": 3, "text": "b"}]}]
    out = rerank_rows(Reranker(ColBERT()), rows, return_documents=True)
    assert out[0]["results"] == [{"corpus_id": 1, "score": pytest.approx(1.0, rel=1e-5), "text": "a"},
                                 {"corpus_id": 0, "score": None, "text": ""}]
    assert out[1]["results"][0]["doc_id"] == 3
    json.dumps(out, allow_nan=False)  # valid JSON: no Infinity or NaN


def test_parse_row_errors():
    with pytest.raises(BadLine, match="line 3: needs exactly one of the fields .*got both"):
        parse_row({"query": "a", "documents": [], "candidates": []}, 3)
    with pytest.raises(BadLine, match="line 1: a line must be a JSON object, got list"):
        parse_row([1], 1)
    with pytest.raises(BadLine, match="'query' must be a string, got int"):
        parse_row({"query": 1, "documents": []})
    with pytest.raises(BadLine, match="candidates\\[0\\].text must be a string, got NoneType"):
        parse_row({"query": "a", "candidates": [{"doc_id": 1, "text": None}]})


@pytest.mark.encoders
def test_cli_with_a_real_tiny_cross_encoder(tmp_path, capsys):
    pytest.importorskip("fusedscore.encoders")
    st_ce = pytest.importorskip("sentence_transformers").CrossEncoder
    from fusedscore.testing.tiny_models import TEXTS, build_cross_encoder

    path = str(build_cross_encoder(tmp_path / "ce"))
    inp = _write(tmp_path / "in.jsonl", [json.dumps({"query": TEXTS[0], "documents": TEXTS[1:]})])
    out = str(tmp_path / "out.jsonl")
    assert cli.main(["rerank", "--model", path, "--input", inp, "--output", out, "--no-progress"]) == 0
    got = _read(out)[0]["results"]
    peer = st_ce(path, device="cpu").rank(TEXTS[0], TEXTS[1:])
    assert [x["corpus_id"] for x in got] == [x["corpus_id"] for x in peer]
