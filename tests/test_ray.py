"""Ray Data integration (issue 7): ``RerankPredictor`` on real Ray batches, ``rerank_dataset`` and
``fusedscore rerank --ray`` on a local 2-CPU cluster, each checked row for row against the single-process
``Reranker`` on the same tiny model. One cluster for the module: Ray takes seconds to start on 2 cores."""

from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from fusedscore.testing import tiny_models as T  # noqa: E402
from _tol import ATOL, RTOL, key_for  # noqa: E402
from fusedscore import cli  # noqa: E402
from fusedscore.integrations.ray import RerankPredictor, rerank_dataset  # noqa: E402
from fusedscore.reranker import Reranker  # noqa: E402

pytestmark = [
    pytest.mark.encoders,
    # Ray Data's DataContext assigns its own deprecated fields while it constructs itself (ray 2.60 warns on
    # every DataContext.get_current() in a fresh process): not ours to fix, and nothing we set
    pytest.mark.filterwarnings("ignore:`use_push_based_shuffle` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`use_polars` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`use_arrow_tensor_v2` is deprecated:DeprecationWarning"),
]

TOP_K = 4


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    ctx.enable_progress_bars = False  # progress bars redraw on stderr: noise in test logs
    yield
    ctx.enable_progress_bars = bars
    ray.shutdown()


@pytest.fixture(scope="module")
def colbert_dir(tmp_path_factory):
    return str(T.build_colbert(tmp_path_factory.mktemp("ray") / "colbert"))


@pytest.fixture(scope="module")
def local(colbert_dir):
    return Reranker(colbert_dir)


@pytest.fixture(scope="module")
def predictor(colbert_dir):
    return RerankPredictor(colbert_dir, top_k=TOP_K, batch_size=3)


def _rows(form: str, n: int = 6, k: int = 5) -> list[dict]:
    """n queries with k candidates each (equal lengths on purpose: a results column of equal-length lists
    must stay a 1-D object array), drawn from the tiny models' mixed texts (empty, long, punctuation)."""
    texts = T.TEXTS
    rows = []
    for i in range(n):
        docs = [texts[(i + j) % len(texts)] for j in range(1, k + 1)]
        cands = docs if form == "texts" else [{"doc_id": f"d{(i + j) % len(texts)}", "text": d}
                                              for j, d in enumerate(docs, 1)]
        rows.append({"qid": f"q{i}", "query": texts[i % len(texts)], "lang": "en", "candidates": cands})
    return rows


def _expected(reranker: Reranker, rows: list[dict], top_k: int | None) -> dict[str, list[dict]]:
    """qid -> the single-process ranking, with the ids the row form uses."""
    texts = [[c if isinstance(c, str) else c["text"] for c in r["candidates"]] for r in rows]
    ranked = reranker.rerank_batch([r["query"] for r in rows], texts, top_k=top_k)
    out = {}
    for r, res in zip(rows, ranked):
        by_text = isinstance(r["candidates"][0], str) if r["candidates"] else True
        out[r["qid"]] = [{"corpus_id": x["corpus_id"]} if by_text else {"doc_id": r["candidates"][x["corpus_id"]]["doc_id"]}
                         for x in res]
        for o, x in zip(out[r["qid"]], res):
            o["score"] = x["score"]
    return out


def _assert_same_ranking(got: list[dict], want: list[dict], where: str) -> None:
    ids = [{k: v for k, v in x.items() if k != "score"} for x in got]
    assert ids == [{k: v for k, v in x.items() if k != "score"} for x in want], where
    def scores(res: list[dict]) -> torch.Tensor:  # None is how JSON output writes -inf
        return torch.tensor([float("-inf") if x["score"] is None else x["score"] for x in res], dtype=torch.float64)

    g, w = scores(got), scores(want)
    assert torch.equal(torch.isinf(g), torch.isinf(w)), f"{where}: {g} vs {w}"
    fin = torch.isfinite(w)
    bad = (g[fin] - w[fin]).abs() > RTOL[key_for(torch.float32)] * w[fin].abs() + ATOL
    assert not bad.any(), f"{where}: scores {g.tolist()} vs single-process {w.tolist()}"


# ----------------------------------------------------------------------------- the predictor on Ray's batches
@pytest.mark.parametrize("batch_format", ["numpy", "pandas"])
@pytest.mark.parametrize("form", ["objects", "texts"])  # candidates as {doc_id, text} / as plain strings
def test_predictor_on_ray_batches(cluster, predictor, local, batch_format, form):
    rows = _rows(form)
    # take_batch gives the exact batch types map_batches hands a UDF (Arrow-backed columns, object arrays)
    batch = ray.data.from_items(rows).take_batch(len(rows), batch_format=batch_format)
    out = predictor(batch)
    want = _expected(local, rows, TOP_K)
    if batch_format == "pandas":
        assert type(out).__name__ == "DataFrame" and list(out.columns) == ["qid", "query", "lang", "results"]
        recs = out.to_dict("records")
    else:
        assert isinstance(out, dict) and sorted(out) == ["lang", "qid", "query", "results"]
        assert all(v.shape == (len(rows),) for v in out.values())
        recs = [{k: out[k][i] for k in out} for i in range(len(rows))]
    for r, o in zip(rows, recs):
        assert o["qid"] == r["qid"] and o["query"] == r["query"] and o["lang"] == "en"
        _assert_same_ranking(o["results"], want[r["qid"]], r["qid"])


def test_predictor_errors(predictor):
    batch = {"qid": np.array(["a", "b"], dtype=object), "query": np.array(["x", 7], dtype=object),
             "candidates": np.empty(2, dtype=object)}
    batch["candidates"][0], batch["candidates"][1] = ["d"], ["e"]
    with pytest.raises(ValueError, match=r"RerankPredictor: row qid='b': 'query' must be a string, got int"):
        predictor(batch)
    with pytest.raises(ValueError, match=r"RerankPredictor: batch must have the columns 'query' and one of "
                                         r"'candidates' or 'documents', got \['qid', 'query'\]"):
        predictor({"qid": batch["qid"], "query": batch["query"]})
    with pytest.raises(TypeError, match=r"RerankPredictor: batch must be a dict of numpy arrays or a pandas "
                                        r"DataFrame .*, got list"):
        predictor([{"query": "x", "candidates": []}])
    with pytest.raises(ValueError, match=r"RerankPredictor: top_k must be > 0, got 0"):
        RerankPredictor("unused", top_k=0)


@pytest.mark.parametrize("kwargs, err, match", [
    ({"concurrency": 0}, ValueError, r"rerank_dataset: concurrency must be None, an int > 0 or a \(min, max\) "
                                     r"tuple with 0 < min <= max, got 0"),
    ({"concurrency": (3, 1)}, ValueError, r"concurrency must be .*, got \(3, 1\)"),
    ({"batch_format": "pyarrow"}, ValueError, r"batch_format must be one of \('numpy', 'pandas'\), got 'pyarrow'"),
    ({"num_gpus": -1}, ValueError, r"rerank_dataset: num_gpus must be a number >= 0, got -1"),
    ({"queries_per_batch": 0}, ValueError, r"rerank_dataset: queries_per_batch must be > 0, got 0"),
])
def test_rerank_dataset_argument_errors(cluster, kwargs, err, match):
    with pytest.raises(err, match=match):
        rerank_dataset(ray.data.from_items([{"query": "q", "candidates": ["d"]}]), "unused", **kwargs)
    with pytest.raises(TypeError, match=r"rerank_dataset: ds must be a ray.data.Dataset, got list"):
        rerank_dataset([], "unused")


def test_missing_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when it is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(RuntimeError, match=r'ray\[data\] must be installed \(pip install "fusedscore\[ray\]"\)'):
        rerank_dataset(object(), "unused")
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"query": "q", "documents": ["d"]}\n')
    rc = cli.main(["rerank", "--model", str(tmp_path), "--input", str(inp), "--output", str(tmp_path / "o.jsonl"),
                   "--ray", "--no-progress"])
    assert rc == 2 and 'pip install "fusedscore[ray]"' in capsys.readouterr().err


# ----------------------------------------------------------------------------- on the cluster
def test_rerank_dataset_matches_single_process(cluster, colbert_dir, local):
    rows = _rows("objects", n=7)
    # 2 actors, 2 rows per call: several batches on several workers, each with its own model copy
    ds = rerank_dataset(ray.data.from_items(rows), colbert_dir, top_k=TOP_K, concurrency=2, queries_per_batch=2)
    got = ds.take_all()
    want = _expected(local, rows, TOP_K)
    assert sorted(r["qid"] for r in got) == sorted(want)
    for o in got:
        assert set(o) == {"qid", "query", "lang", "results"}
        _assert_same_ranking(o["results"], want[o["qid"]], o["qid"])


def test_cli_ray_writes_what_the_local_run_writes(cluster, tmp_path, capsys):
    model = str(T.build_bgem3(tmp_path / "bgem3"))  # BGE-M3: the three-signal fusion path, run by both
    lines = [json.dumps(r) for r in _rows("objects", n=5)]
    lines[2] = json.dumps({"query": T.TEXTS[3], "documents": T.TEXTS[:4], "tag": [1, 2]})  # the other input form
    lines.insert(4, "")  # blank lines are skipped by both
    lines.append('{"query": 3, "documents": []}')  # a bad line: both stop there with status 2
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    outs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "--concurrency", "2", "--num-cpus", "1"])):
        outs[name] = tmp_path / f"{name}.jsonl"
        rc = cli.main(["rerank", "--model", model, "--input", str(inp), "--output", str(outs[name]), "--top-k", "3",
                       "--queries-per-batch", "2", "--no-progress", *extra])
        captured = capsys.readouterr()
        assert rc == 2, captured.err
        assert f"in.jsonl:{len(lines)}: 'query' must be a string, got int (5 queries before it" in captured.err
        assert "5 queries, 24 pairs in" in captured.out
    local_rows = [json.loads(x) for x in outs["local"].read_text().splitlines()]
    ray_rows = [json.loads(x) for x in outs["ray"].read_text().splitlines()]
    assert len(ray_rows) == len(local_rows) == 5
    for lo, ro in zip(local_rows, ray_rows):  # same order, same fields, same rankings
        assert {k: v for k, v in ro.items() if k != "results"} == {k: v for k, v in lo.items() if k != "results"}
        _assert_same_ranking(ro["results"], lo["results"], str(lo.get("qid")))


def test_cli_ray_streams_in_order_and_stops_at_a_bad_byte(cluster, colbert_dir, tmp_path, capsys):
    # one worker, one row per batch: 2 batches in flight at most while the driver reads on; the invalid
    # UTF-8 on line 6 stops it there as locally, every line before it scored and written in input order
    after = b'{"query": "never read", "documents": []}'
    lines = [json.dumps(r).encode() for r in _rows("objects", n=5)] + [b'{"query": "\xff"}', after]
    inp = tmp_path / "in.jsonl"
    inp.write_bytes(b"\n".join(lines) + b"\n")
    outs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "--concurrency", "1"])):
        outs[name] = tmp_path / f"{name}.jsonl"
        rc = cli.main(["rerank", "--model", colbert_dir, "--input", str(inp), "--output", str(outs[name]),
                       "--queries-per-batch", "1", "--no-progress", *extra])
        captured = capsys.readouterr()
        assert rc == 2, captured.err
        assert "in.jsonl:6: must be UTF-8, got the byte 0xff at column 12 (5 queries before it" in captured.err
    assert b"never read" not in outs["ray"].read_bytes()
    assert outs["ray"].read_text() == outs["local"].read_text()  # the same code writes both, byte for byte


def test_cli_ray_workers_get_max_length(cluster, colbert_dir, tmp_path, capsys):
    # the workers loaded the model at its full length whatever --max-length said
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in _rows("objects", n=4)))
    rows, truncated = {}, {}
    for name, extra in (("local", []), ("ray", ["--ray", "--concurrency", "1"])):
        out = tmp_path / f"{name}.jsonl"
        assert cli.main(["rerank", "--model", colbert_dir, "--input", str(inp), "--output", str(out),
                         "--max-length", "6", "--no-progress", *extra]) == 0
        truncated[name] = int(re.search(r"(\d+) inputs truncated", capsys.readouterr().out).group(1))
        rows[name] = [json.loads(x) for x in out.read_text().splitlines()]
    assert truncated["ray"] == truncated["local"] > 0
    for r, lo in zip(rows["ray"], rows["local"]):  # scores within fp32 tolerance: 1 worker thread vs 2 locally
        _assert_same_ranking(r["results"], lo["results"], lo["qid"])


@pytest.mark.parametrize("extra, match", [
    # the model loads on the workers only: its error comes back from there as one message
    (["--weights", "1,2"], r"--ray: a worker could not set up the model: ValueError: Reranker: weights must have "
                           r"one entry per signal \['colbert'\], got 2"),
    (["--label-index", "0"], r"--ray: a worker could not set up the model: ValueError: load_model: label_index "
                             r"must be None for a colbert model"),
    # 2 CPUs, no GPU: no worker of one GPU fits, and without --concurrency nothing would ever start
    (["--num-gpus", "1"], r"--ray: the cluster must fit one worker of --num-cpus 1 --num-gpus 1, got 2 CPUs and "
                          r"0 GPUs"),
])
def test_cli_ray_setup_errors_are_one_message(cluster, colbert_dir, tmp_path, capsys, extra, match):
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(r) for r in _rows("objects", n=2)) + "\n")
    out = tmp_path / "out.jsonl"
    rc = cli.main(["rerank", "--model", colbert_dir, "--input", str(inp), "--output", str(out), "--ray",
                   "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(f"fusedscore rerank: error: {match}", err), err
    assert "Traceback" not in err and out.read_text() == ""
    assert _cpus_free_again(2)  # its workers were killed: the cluster is free for the next job


def _cpus_free_again(n: int, timeout_s: float = 10.0) -> bool:
    """ray.kill is asynchronous: the killed actors' CPUs come back a moment later."""
    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0) < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _ray_bench():
    """benchmarks/ray_bench.py: a repo-only script (not in the package), imported from the checkout."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "ray_bench.py"
    spec = importlib.util.spec_from_file_location("ray_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ray_bench_record_path_is_in_the_checkouts_results():
    bench = _ray_bench()
    dev = {"kind": "cpu", "cpu": "AMD EPYC", "cpus_usable": 2}
    assert bench.record_path(dev, "2026-12-01T10:00:00+00:00") == bench.RESULTS / "2026-12-01-cpu-amd-epyc-2c-ray.json"
    assert bench.RESULTS.parent.name == "results" and (bench.RESULTS.parent / "README.md").is_file()
    assert bench.record_path({"gpu": "NVIDIA H100 80GB HBM3"}, "2026-12-02").name == "2026-12-02-nvidia-h100-80gb-hbm3-ray.json"


def test_ray_bench_rows(cluster, colbert_dir):
    ray_bench = _ray_bench()

    rows = ray_bench.run(model_dir=colbert_dir, rows=4, candidates=3, queries_per_batch=2, workers=1)
    assert [r["impl"] for r in rows] == ["single-process", "ray"]
    for r in rows:
        assert r["rows"] == 4 and r["pairs"] == 12 and r["wall_s"] > 0
        assert r["rows_per_s"] == pytest.approx(4 / r["wall_s"])
    assert rows[1]["workers"] == 1 and rows[1]["cluster_start_s"] is None  # joined the running cluster
    assert rows[1]["ratio_vs_single"] == pytest.approx(rows[0]["wall_s"] / rows[1]["wall_s"])
