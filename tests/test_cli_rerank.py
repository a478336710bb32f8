"""``fusedscore rerank``: both input forms, ranked output, the summary line, bad lines (bad JSON, bad UTF-8,
missing fields) and failing models that stop the run only after every earlier line was scored and
written, and argument/model errors reported as one message with exit status 2."""

from __future__ import annotations

import json
import os
import re
import sys
import types
import zlib
from pathlib import Path

import pytest
import torch

from _tol import ATOL, RTOL, key_for
from fusedscore import MultiVectors, cli
from fusedscore.rows import BadLine, iter_rows, parse_row, rerank_rows
from fusedscore.reranker import Reranker

# fp32 scores, relative to the expected one: the stub's exact matches (a word against itself) sum terms of
# exactly 1, so the score is its own magnitude bound (_tol's rule); a real model is checked against itself
FP32 = RTOL[key_for(torch.float32)]


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


class Failing(ColBERT):
    """Raises ``error`` when asked to encode a text containing "boom"."""

    def __init__(self, error):
        self.error = error

    def encode(self, texts, is_query, batch_size=32, as_containers=False):
        if any("boom" in t for t in texts):
            raise self.error
        return super().encode(texts, is_query, batch_size, as_containers)


class Truncating(ColBERT):
    """Reports texts of more than 2 words as truncated, per call, like the real encoders' ``last_truncated``."""

    def encode(self, texts, is_query, batch_size=32, as_containers=False):
        self.last_truncated = sum(len(t.split()) > 2 for t in texts)
        return super().encode(texts, is_query, batch_size, as_containers)


class CrossEncoder:
    """A multi-label cross-encoder stub (the class name is what Reranker recognises)."""

    num_labels, label_index = 3, None

    def predict(self, pairs, batch_size=32):
        return [float(len(d)) for _, d in pairs]


def _use_model(monkeypatch, model, fmt="colbert"):
    """Make ``fusedscore.encoders`` load ``model`` (detected as ``fmt``) without transformers."""
    mod = types.ModuleType("fusedscore.encoders")
    mod.load = lambda path, device=None, **kw: model
    mod.detect_format = lambda path: fmt
    monkeypatch.setitem(sys.modules, "fusedscore.encoders", mod)


@pytest.fixture
def fake_model(monkeypatch, tmp_path):
    _use_model(monkeypatch, ColBERT())
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
    assert rows[0]["results"][0]["score"] == pytest.approx(_score("red fox", "red fox"), rel=FP32, abs=ATOL)
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
                                      ('{"query": "a", "documents": ["b"], "w": 1e999}', "bad JSON \\(1e999"),
                                      # json's parser recurses per bracket: RecursionError, not JSONDecodeError
                                      ("[" * 100_000, "bad JSON \\(nested too deeply\\)")])
def test_cli_bad_line_keeps_the_lines_before(fake_model, tmp_path, capsys, bad, why, per_batch):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0]), "", json.dumps(ROWS_B[0]), bad, json.dumps(ROWS_A[0])])
    out = str(tmp_path / "out.jsonl")
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--queries-per-batch", per_batch,
                   "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert re.search(f"in.jsonl:4: {why}", err), err
    assert len(_read(out)) == 2  # lines 1 and 3 were scored and written before the error


@pytest.mark.parametrize("per_batch", ["1", "64"])
def test_cli_invalid_utf8_is_a_bad_line_and_keeps_the_lines_before(fake_model, tmp_path, capsys, per_batch):
    # the file used to be read in text mode: a UnicodeDecodeError traceback, no line number, 0 lines written
    ok = json.dumps(ROWS_A[0]).encode()
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"\n".join([ok, ok, b'{"query": "caf\xe9", "documents": []}', ok]) + b"\n")
    out = str(tmp_path / "out.jsonl")
    rc = cli.main(["rerank", "--model", fake_model, "--input", str(inp), "--output", out, "--queries-per-batch",
                   per_batch, "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2
    assert "in.jsonl:3: must be UTF-8, got the byte 0xe9 at column 15 (2 queries before it were written" in captured.err
    assert len(_read(out)) == 2 and "2 queries, 6 pairs in" in captured.out


def test_iter_rows_read_error_names_its_line():
    def lines():
        yield '{"query": "a", "documents": []}'
        yield ""
        raise OSError(5, "Input/output error")

    rows = iter_rows(lines())
    assert next(rows)[0] == 1
    with pytest.raises(BadLine, match=r"line 3: cannot be read \(OSError: \[Errno 5\] Input/output error\)"):
        next(rows)


def test_cli_pending_batches_are_bounded_and_written_in_order(monkeypatch, fake_model, tmp_path, capsys):
    # the Ray scorer's shape: batches are handed over and collected later, oldest first
    from fusedscore import cli_rerank

    seen = {"out": 0, "max_out": 0}

    class Deferred(cli_rerank._LocalScorer):
        max_in_flight = 2

        def submit(self, rows):
            seen["out"] += 1
            seen["max_out"] = max(seen["max_out"], seen["out"])
            return rows

        def result(self, handle):
            seen["out"] -= 1
            return super().result(handle)

    monkeypatch.setattr(cli_rerank, "_LocalScorer", Deferred)
    rows = [{"qid": i, "query": "red fox", "documents": ["fox", "red fox"]} for i in range(9)]
    inp = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
    out = str(tmp_path / "out.jsonl")
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--queries-per-batch", "2",
                     "--no-progress"]) == 0
    assert [r["qid"] for r in _read(out)] == list(range(9))
    assert seen == {"out": 0, "max_out": 3}  # max_in_flight left out after each hand-over, never the whole file


def _boom_input(tmp_path):
    rows = [ROWS_A[0], ROWS_B[0], {"query": "boom", "documents": ["a"]}, ROWS_A[0], ROWS_A[0]]
    return _write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])


def test_cli_scoring_failure_names_the_lines_and_keeps_earlier_batches(monkeypatch, fake_model, tmp_path, capsys):
    _use_model(monkeypatch, Failing(RuntimeError("the model ran out of memory")))
    out = str(tmp_path / "out.jsonl")
    rc = cli.main(["rerank", "--model", fake_model, "--input", _boom_input(tmp_path), "--output", out,
                   "--queries-per-batch", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1
    assert ("in.jsonl:3-4: scoring failed: RuntimeError: the model ran out of memory (2 queries before them were "
            "written to") in captured.err
    assert "Traceback" not in captured.err
    assert [r.get("qid") for r in _read(out)] == [None, "q7"] and "2 queries, 5 pairs in" in captured.out


def test_cli_unexpected_scoring_error_keeps_earlier_batches_and_its_traceback(monkeypatch, fake_model, tmp_path,
                                                                               capsys):
    _use_model(monkeypatch, Failing(KeyError("a bug")))
    out = str(tmp_path / "out.jsonl")
    with pytest.raises(KeyError, match="a bug"):  # not a model error: the traceback is kept for the bug report
        cli.main(["rerank", "--model", fake_model, "--input", _boom_input(tmp_path), "--output", out,
                  "--queries-per-batch", "2", "--no-progress"])
    assert "in.jsonl:3-4: scoring failed: KeyError: 'a bug'" in capsys.readouterr().err
    assert len(_read(out)) == 2


@pytest.mark.parametrize("extra, match", [
    (["--batch-size", "0"], "--batch-size must be > 0, got 0"),
    (["--queries-per-batch", "0"], "--queries-per-batch must be > 0, got 0"),
    (["--max-memory", "-1"], "--max-memory must be > 0, got -1"),
    (["--weights", "0.5,x"], "--weights must be comma-separated numbers, one per signal .*, got '0.5,x'"),
    (["--weights", "1,2"], r"Reranker: weights must have one entry per signal \['colbert'\], got 2"),
    (["--mode", "dense"], r"Reranker: mode must be one of \['colbert'\] for a ColBERT, got 'dense'"),
    (["--label-index", "-1"], "--label-index must be >= 0, got -1"),
    (["--label-index", "1"], "label_index must be None for a colbert model .*, got 1"),
    (["--concurrency", "2"], "--concurrency must come with --ray .*, got --concurrency 2 without it"),
    (["--num-gpus", "1"], "--num-gpus must come with --ray"),
    (["--ray", "--num-cpus", "0"], "--num-cpus must be a number > 0, got 0"),
    (["--ray", "--num-gpus", "nan"], "--num-gpus must be a number >= 0, got nan"),
    (["--ray", "--concurrency", "0"], "--concurrency must be > 0, got 0"),
])
def test_cli_argument_and_model_errors_are_one_message(fake_model, tmp_path, capsys, extra, match):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    out = tmp_path / "out.jsonl"
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(f"fusedscore rerank: error: .*{match}", err), err
    assert "Traceback" not in err and not out.exists()  # nothing was written, not even an empty file


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_cli_cuda_without_a_gpu(fake_model, tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", str(tmp_path / "o"),
                     "--device", "cuda"]) == 2
    assert "--device must be a device torch can use, got 'cuda' with no CUDA GPU visible" in capsys.readouterr().err


def test_cli_multi_label_cross_encoder_needs_label_index(monkeypatch, fake_model, tmp_path, capsys):
    _use_model(monkeypatch, CrossEncoder(), fmt="cross")
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", str(tmp_path / "o")]) == 2
    assert ("--label-index must be given for a cross-encoder with num_labels=3 (which logit column is the "
            "relevance score?), got none") in capsys.readouterr().err


def test_cli_summary_counts_truncated_inputs_and_quiet(monkeypatch, fake_model, tmp_path, capsys):
    _use_model(monkeypatch, Truncating())
    rows = [{"query": "a b c", "documents": ["x y z w", "x", "x y z w"]}, {"query": "a", "documents": ["p q r"]}]
    inp = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
    out = str(tmp_path / "out.jsonl")
    # one batch per row: 2 (query + its one distinct long doc) + 1 (the doc) truncated inputs in all
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--quiet",
                     "--queries-per-batch", "1"]) == 0
    captured = capsys.readouterr()
    assert "2 queries, 4 pairs in" in captured.out and "pairs/s, 3 inputs truncated) -> " in captured.out
    assert captured.err == ""  # --quiet: no progress bar


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
    assert out[0]["results"] == [{"corpus_id": 1, "score": pytest.approx(1.0, rel=FP32, abs=ATOL), "text": "a"},
                                 {"corpus_id": 0, "score": None, "text": ""}]
    assert out[1]["results"][0]["doc_id"] == 3
    json.dumps(out, allow_nan=False)  # valid JSON: no Infinity or NaN


class _FakeRay:
    """Just enough of the ``ray`` module for ``RayScorer``'s setup: a joined cluster of 4 CPUs and 2 GPUs whose
    actors record how they were started."""

    exceptions = types.SimpleNamespace(RayError=RuntimeError)

    def __init__(self):
        self.actors = []

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 4.0, "GPU": 2.0}

    def remote(self, cls):
        started = self.actors

        class Actor:
            def options(self, **opts):
                self.opts = opts
                return self

            def remote(self, *args):
                started.append(types.SimpleNamespace(args=args, opts=self.opts,
                                                     ready=types.SimpleNamespace(remote=object)))
                return started[-1]

        return Actor()

    def kill(self, actor):
        pass


def test_ray_scorer_takes_keywords_not_the_cli_namespace():
    from fusedscore.integrations.ray import RayScorer
    from fusedscore.rows import SetupError

    ray = _FakeRay()
    RayScorer(ray, "/models/m", n_batches=5, device="cuda:1", quiet=True, top_k=3, weights=[0.5, 0.5]).close()
    # one CPU and (cuda) one GPU per worker by default: min(4 // 1, 2 // 1) = 2 workers, fewer than the 5 batches
    assert [a.opts for a in ray.actors] == [{"num_cpus": 1, "num_gpus": 1, "max_restarts": 3, "max_task_retries": 3}] * 2
    # Ray masks a worker's GPUs to its own: cuda:1 on the driver is cuda there; the rest reaches RerankPredictor
    assert ray.actors[0].args == ("/models/m", {"top_k": 3, "weights": [0.5, 0.5], "device": "cuda"}, True)
    ray = _FakeRay()
    RayScorer(ray, "m", n_batches=1, concurrency=3).close()  # no more workers than batches
    assert [a.opts for a in ray.actors] == [{"num_cpus": 1, "max_restarts": 3, "max_task_retries": 3}]
    with pytest.raises(SetupError, match="--ray: the cluster must fit one worker of --num-cpus 8 --num-gpus 0, "
                                         "got 4 CPUs and 2 GPUs"):
        RayScorer(_FakeRay(), "m", n_batches=1, num_cpus=8)


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
    st_ce = pytest.importorskip("sentence_transformers").CrossEncoder
    from fusedscore.testing.tiny_models import TEXTS, build_cross_encoder

    path = str(build_cross_encoder(tmp_path / "ce"))
    inp = _write(tmp_path / "in.jsonl", [json.dumps({"query": TEXTS[0], "documents": TEXTS[1:]})])
    out = str(tmp_path / "out.jsonl")
    assert cli.main(["rerank", "--model", path, "--input", inp, "--output", out, "--no-progress"]) == 0
    got = _read(out)[0]["results"]
    peer = st_ce(path, device="cpu").rank(TEXTS[0], TEXTS[1:])
    assert [x["corpus_id"] for x in got] == [x["corpus_id"] for x in peer]


@pytest.mark.encoders
def test_cli_label_index_with_a_real_multi_label_cross_encoder(tmp_path, capsys):
    from fusedscore.encoders import CrossEncoder as FSCrossEncoder
    from fusedscore.testing.tiny_models import TEXTS, build_cross_encoder

    path = str(build_cross_encoder(tmp_path / "ce3", num_labels=3))
    inp = _write(tmp_path / "in.jsonl", [json.dumps({"query": TEXTS[0], "documents": TEXTS[1:]})])
    out = str(tmp_path / "out.jsonl")
    args = ["rerank", "--model", path, "--input", inp, "--output", out, "--no-progress"]
    assert cli.main(args) == 2  # which of the 3 logits is relevance: the user says, never a guess
    assert "--label-index must be given for a cross-encoder with num_labels=3" in capsys.readouterr().err
    assert cli.main([*args, "--label-index", "3"]) == 2
    assert "label_index must be an int in [0, 3), got 3" in capsys.readouterr().err
    assert cli.main([*args, "--label-index", "2"]) == 0
    ce = FSCrossEncoder.from_pretrained(path, device="cpu", label_index=2)
    scores = ce.predict([[TEXTS[0], d] for d in TEXTS[1:]])
    got = _read(out)[0]["results"]
    assert [x["corpus_id"] for x in got] == sorted(range(len(scores)), key=lambda i: -scores[i])
    assert [x["score"] for x in got] == pytest.approx(sorted(scores.tolist(), reverse=True), rel=FP32, abs=ATOL)


# ---------------------------------------------------------------------------- --max-length, output, interrupts
def _recording_loader(monkeypatch, model=None):
    """``fusedscore.encoders.load`` replaced by a stub that records each call's keyword arguments."""
    calls = []

    def load(path, device=None, **kw):
        calls.append(kw)
        return model if model is not None else ColBERT()

    mod = types.ModuleType("fusedscore.encoders")
    mod.load, mod.detect_format = load, lambda path: "colbert"
    monkeypatch.setitem(sys.modules, "fusedscore.encoders", mod)
    return calls


def test_cli_max_length_reaches_the_encoder(monkeypatch, fake_model, tmp_path):
    calls = _recording_loader(monkeypatch)
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    args = ["rerank", "--model", fake_model, "--input", inp, "--output", str(tmp_path / "o.jsonl"), "--quiet"]
    assert cli.main([*args, "--max-length", "7"]) == 0 and calls[-1].get("max_length") == 7
    assert cli.main(args) == 0 and calls[-1].get("max_length") is None  # the model's own limit


def test_cli_max_length_must_leave_room_for_a_token(fake_model, tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", str(tmp_path / "o"),
                     "--max-length", "1"]) == 2
    assert "fusedscore rerank: error: --max-length must be >= 2" in capsys.readouterr().err


def _unwritable_dir(tmp_path) -> str:
    d = tmp_path / "ro"
    d.mkdir(mode=0o500)
    if not os.access(d, os.W_OK):
        return str(d)
    if os.path.isdir("/sys"):  # root writes anywhere a mode forbids, but not into sysfs
        try:
            os.close(os.open("/sys/fusedscore-probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        except OSError:
            return "/sys"
        os.unlink("/sys/fusedscore-probe")
    pytest.skip("no directory this user cannot write into")


@pytest.mark.parametrize("where, match", [("missing", r"--output must be a file in an existing directory, got "),
                                          ("dir", r"--output must be a file, got .* \(a directory\)"),
                                          ("ro", r"--output must be a file this user can write, got .*\(")])
def test_cli_output_problems_are_found_before_the_model_loads(monkeypatch, fake_model, tmp_path, capsys, where,
                                                               match):
    # found only once the model had loaded and the file was opened: an OSError traceback
    calls = _recording_loader(monkeypatch)
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    out = {"missing": str(tmp_path / "no" / "such" / "o.jsonl"), "dir": str(tmp_path),
           "ro": os.path.join(_unwritable_dir(tmp_path), "o.jsonl")}[where]
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and calls == [], err  # the model never loaded
    assert re.fullmatch(f"fusedscore rerank: error: {match}.*\n", err), err
    assert not os.path.isfile(out)


def test_cli_checking_the_output_leaves_no_file_behind(fake_model, tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])])
    out = tmp_path / "o.jsonl"
    assert cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", str(out), "--top-k", "0"]) == 2
    assert not out.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_cli_full_disk_is_one_line_naming_the_output(fake_model, tmp_path, capsys):
    inp = _write(tmp_path / "in.jsonl", [json.dumps(ROWS_A[0])] * 3)
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", "/dev/full", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("fusedscore rerank: error: --output '/dev/full' could not be written (OSError: [Errno 28] ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_write_error_mid_run_leaves_the_written_prefix(monkeypatch, fake_model, tmp_path, capsys):
    from fusedscore import cli_rerank

    real_open = cli_rerank._open_output

    class FillsUp:
        """The second batch finds the disk full after half its bytes went out."""

        def __init__(self, path):
            self.f, self.n = real_open(path), 0

        def write(self, data):
            self.n += 1
            if self.n == 2:
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                raise OSError(28, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(cli_rerank, "_open_output", FillsUp)
    rows = [{"qid": i, "query": "red fox", "documents": ["fox", "red fox"]} for i in range(6)]
    inp = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
    out = tmp_path / "out.jsonl"
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", str(out), "--queries-per-batch", "2",
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"--output {str(out)!r} could not be written (OSError: [Errno 28] No space left on device; the first 2 " \
           "queries were written)" in err
    assert [r["qid"] for r in _read(out)] == [0, 1]  # the half-written batch is cut off: whole lines only


@pytest.mark.parametrize("per_batch", ["1", "64"])
@pytest.mark.parametrize("bad, where", [('{"query": "a\\ud800", "documents": ["b"]}', "query"),
                                        ('{"query": "a", "documents": ["b", "\\udfff c"]}', r"documents\[1\]"),
                                        ('{"qid": 1, "query": "a", "candidates": [{"doc_id": "\\ud83d", "text": "b"}]}',
                                         r"candidates\[0\]\.doc_id"),
                                        ('{"query": "a", "documents": [], "meta": {"n": ["\\ud800"]}}',
                                         r"meta\.n\[0\]"),
                                        ('{"query": "a", "documents": [], "\\ud800": 1}', "a field name")])
def test_cli_lone_surrogate_is_a_bad_line(fake_model, tmp_path, capsys, bad, where, per_batch):
    # JSON's "\ud800" escape decodes to half a UTF-16 pair, which UTF-8 cannot hold: a UnicodeEncodeError
    # traceback once the output was written
    ok = json.dumps(ROWS_A[0])
    pair = '{"query": "\\ud83d\\ude00", "documents": ["\\ud83d\\ude00"]}'  # an escaped pair is a real character
    inp = _write(tmp_path / "in.jsonl", [ok, pair, bad, ok])
    out = str(tmp_path / "out.jsonl")
    rc = cli.main(["rerank", "--model", fake_model, "--input", inp, "--output", out, "--queries-per-batch",
                   per_batch, "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    assert re.search(f"in.jsonl:3: {where} must be valid Unicode text, got a lone surrogate \\\\u[0-9a-f]{{4}}", err), err
    assert [r["query"] for r in _read(out)] == ["red fox", "\U0001F600"]


def test_cli_ctrl_c_exits_130_leaving_the_written_prefix(monkeypatch, fake_model, tmp_path, capsys):
    _use_model(monkeypatch, Failing(KeyboardInterrupt()))
    out = str(tmp_path / "out.jsonl")
    try:
        rc = cli.main(["rerank", "--model", fake_model, "--input", _boom_input(tmp_path), "--output", out,
                       "--queries-per-batch", "2", "--no-progress"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended fusedscore rerank with a traceback")
    captured = capsys.readouterr()
    assert rc == 130
    assert captured.err == f"fusedscore rerank: interrupted; the first 2 queries were written to {out}\n"
    assert [r.get("qid") for r in _read(out)] == [None, "q7"]


@pytest.mark.encoders
def test_cli_sigint_in_a_real_run(tmp_path):
    import signal
    import subprocess
    import time

    from fusedscore.testing.tiny_models import CORPUS, build_cross_encoder

    path = str(build_cross_encoder(tmp_path / "ce"))
    n = 20_000  # minutes of scoring on 2 cores: the run is certainly mid-way when the signal comes
    inp = _write(tmp_path / "in.jsonl", [json.dumps({"qid": i, "query": CORPUS[i % len(CORPUS)], "documents": CORPUS})
                                         for i in range(n)])
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "fusedscore", "rerank", "--model", path, "--input", inp,
                             "--output", str(out), "--queries-per-batch", "4", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while (not out.exists() or out.read_text().count("\n") < 8) and time.monotonic() < deadline \
                and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert re.fullmatch(f"fusedscore rerank: interrupted; the first \\d+ queries were written to {re.escape(str(out))}\n",
                        err), err
    qids = [r["qid"] for r in _read(out)]
    assert 8 <= len(qids) < n and qids == list(range(len(qids)))  # whole lines, in input order
    assert f"the first {len(qids)} queries" in err


@pytest.mark.encoders
def test_cli_max_length_truncates_a_real_model(tmp_path, capsys):
    from fusedscore.testing.tiny_models import build_cross_encoder

    path = str(build_cross_encoder(tmp_path / "ce"))
    inp = _write(tmp_path / "in.jsonl", [json.dumps({"query": "a short query", "documents": ["one two three four "
                                                                                           "five six seven eight"]})])
    args = ["rerank", "--model", path, "--input", inp, "--output", str(tmp_path / "o.jsonl"), "--quiet"]
    assert cli.main(args) == 0
    assert "0 inputs truncated" in capsys.readouterr().out
    assert cli.main([*args, "--max-length", "6"]) == 0
    assert "1 inputs truncated" in capsys.readouterr().out  # the (query, document) pair cut at 6 tokens
