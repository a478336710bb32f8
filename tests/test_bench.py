"""The benchmark harness: a tiny in-process run, its JSON document, the ratio maths, the report, the CLI.

No timing assertions: only that the numbers the harness derives follow from the times it measured.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers.utils import logging as hf_logging

from fusedscore import MultiVectors
from fusedscore.bench import cli as bench_cli
from fusedscore.bench import runner
from fusedscore.bench.cases import Case, Inputs, RecallCase
from fusedscore.bench.impls import Impl, Prepared
from fusedscore.bench.runner import all_impls
from fusedscore.bench.machine import roofline_s, work
from fusedscore.bench.report import render_markdown, render_text
from fusedscore.bench.timing import Timing, _quantile, measure

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="the bench extra (matplotlib) is not installed")

# fixed machine rates: the roofline numbers below then follow from the case alone
RATES = {"matmul_gflops": {"fp32": 100.0, "bf16": 400.0}, "copy_gbps": 10.0, "matmul_n": 0, "copy_bytes": 0}

TINY = [  # test-only workloads: every op and mode, a few milliseconds each
    Case("t/maxsim-all", "maxsim", "all", 3, 7, "fp32", lq=4, ld=(1, 6), dim=8, repeats=3, seed=1),
    Case("t/maxsim-pairs", "maxsim", "pairs", 2, 3, "fp32", lq=5, ld=(2, 9), dim=16, repeats=3, seed=2),
    Case("t/maxsim-bf16", "maxsim", "all", 1, 6, "bf16", lq=3, ld=(1, 4), dim=8, repeats=3, seed=3),
    Case("t/topk", "maxsim_topk", "topk", 2, 9, "fp32", lq=3, ld=(1, 5), dim=8, k=3, repeats=3, seed=4),
    Case("t/sparse", "sparse_dot", "all", 3, 8, "fp32", vocab=40, q_nnz=4, d_nnz=6, repeats=3, seed=5),
]
FAST = {"fusedscore", "torch-reference", "torch-packed-gemm"}
# a MUVERA recall case of a few milliseconds: two settings, two candidate counts below N = 40
TINY_RECALL = RecallCase("muvera/recall-t", 40, 6, ({"k_sim": 2, "dim_proj": 4, "r_reps": 1},
                                                   {"k_sim": 2, "dim_proj": 4, "r_reps": 4, "fill_empty": False}),
                         (5, 20), k=5, dim=8, n_clusters=6)
TINY_SWEEP = [Case(f"t/sweep-len-{L}", "maxsim", "all", 1, 4, "fp32", lq=3, ld=(L, L), dim=8, repeats=3,
                   sweep={"axis": "doc_len", "value": L}) for L in (2, 4)]
TINY_SWEEP += [Case(f"t/sweep-batch-{b}", "maxsim", "pairs", b, 3, "fp32", lq=3, ld=(2, 5), dim=8, repeats=3,
                    sweep={"axis": "batch", "value": b}) for b in (1, 2)]


def _fast_impls() -> list[Impl]:
    return [i for i in all_impls() if i.name in FAST]


@pytest.fixture(scope="module")
def doc():
    return runner.run(TINY, impls=_fast_impls(), rates=RATES, budget_s=0.01, progress=False)


def _rows(doc, case):
    return {r["impl"]: r for r in doc["results"] if r["case"] == case}


def test_document_fields(doc):
    for key in ("schema", "date", "git", "device", "env", "versions", "threads", "options", "machine", "cases",
                "results", "muvera_recall", "errors", "notes"):
        assert key in doc, key
    # the compiled extension is there exactly when the document says so, and says why not when it is not
    assert doc["env"]["native"] is (importlib.util.find_spec("fusedscore._native") is not None)
    assert doc["env"]["native"] or doc["env"]["reason"]
    assert doc["threads"]["torch_threads"] == torch.get_num_threads()
    assert doc["device"]["kind"] == "cpu" and doc["device"]["cpu"]
    assert doc["versions"]["torch"] == torch.__version__
    assert [c["name"] for c in doc["cases"]] == [c.name for c in TINY]
    assert doc["errors"] == []
    json.dumps(doc, allow_nan=False)  # what --out writes: strict JSON, no NaN/Infinity


def test_every_fast_impl_ran_and_agrees(doc):
    for case in TINY:
        rows = _rows(doc, case.name)
        assert rows["fusedscore"]["status"] == "ok", rows["fusedscore"]
        for name, r in rows.items():
            if r["status"] == "skipped":  # the reference has no top-k
                assert case.op == "maxsim_topk" and name == "torch-reference", r
                continue
            assert r["status"] == "ok", r
            assert r["p20_ms"] <= r["median_ms"] <= r["p80_ms"]
            assert (r["gflops"] is None) == (case.op == "sparse_dot"), r  # sparse dot counts bytes, no FLOPs
            if name != "fusedscore":
                assert r["check"]["ok"], (case.name, name, r["check"])


def _hand_inputs(mode: str) -> Inputs:
    """2 queries of 2 and 3 tokens, 3 documents of 1, 4 and 2 tokens, D = 4, fp32: the numbers below are
    worked by hand from these lengths. "pairs": query 0 scores documents 0 and 1, query 1 document 2."""
    g = torch.Generator().manual_seed(0)
    q = MultiVectors.from_list([torch.randn(n, 4, generator=g) for n in (2, 3)], dim=4)
    d = MultiVectors.from_list([torch.randn(n, 4, generator=g) for n in (1, 4, 2)], dim=4)
    case = Case(f"t/hand-{mode}", "maxsim", mode, 2, 3 if mode == "all" else 2, "fp32", dim=4, repeats=3)
    return Inputs(case, q, d, torch.tensor([0, 2, 3]) if mode == "pairs" else None)


def test_work_model_counts_unpadded_flops():
    # all pairs: 2 * D * (2 + 3 query tokens) * (1 + 4 + 2 doc tokens) = 2 * 4 * 5 * 7 (padded: 2 * 4 * 6 * 12)
    # bytes: fp32 tokens (5 + 7) * 4 dims * 4 = 192, int64 offsets (3 + 4) * 8 = 56, the [2, 3] fp32 scores 24
    assert work(_hand_inputs("all")) == {"flops": 280.0, "bytes": 272.0}
    # pairs: 2 * D * (2*1 + 2*4 + 3*2) = 128; 3 scores written
    assert work(_hand_inputs("pairs")) == {"flops": 128.0, "bytes": 260.0}
    # the floor binds on whichever rate is slower: 272 B at 10 GB/s (27.2 ns) over 280 FLOP at 100 GFLOP/s
    assert roofline_s({"flops": 280.0, "bytes": 272.0}, RATES, "fp32", "cpu") == pytest.approx(2.72e-8)
    assert roofline_s({"flops": 1e12, "bytes": 1e9}, RATES, "fp32", "cpu") == pytest.approx(10.0)
    # bf16 is bound by its own matmul where that is faster, by fp32's where the CPU has no bf16 math (widening
    # to fp32 is always possible): an AVX2-only CPU measured bf16 matmul at ~0.3 GFLOP/s
    flops_only = {"flops": 1e12, "bytes": 0.0}
    assert roofline_s(flops_only, RATES, "bf16", "cpu") == pytest.approx(2.5)
    slow_bf16 = dict(RATES, matmul_gflops={"fp32": 100.0, "bf16": 0.3})
    assert roofline_s(flops_only, slow_bf16, "bf16", "cpu") == pytest.approx(10.0)


def test_ratio_and_throughput_of_known_times(monkeypatch):
    """Rows derived from times fixed here (fusedscore 2 ms, the reference 8 ms) on the hand-worked workload:
    280 FLOP, 272 bytes, a roofline of 27.2 ns."""
    inp = _hand_inputs("all")
    times = iter([Timing(2e-3, 1e-3, 3e-3, 3, 1e-3), Timing(8e-3, 6e-3, 9e-3, 3, 5e-3)])
    monkeypatch.setattr(runner, "make_inputs", lambda case: inp)

    def measure(fn, *args, **kwargs):
        fn()  # the timed call whose scores the agreement check reads
        return next(times)

    monkeypatch.setattr(runner, "measure", measure)
    impls = [i for i in _fast_impls() if i.op == "maxsim" and i.name in ("fusedscore", "torch-reference")]
    d = runner.run([inp.case], impls=impls, rates=RATES, budget_s=0.01, progress=False)
    (c,) = d["cases"]
    assert (c["flops"], c["bytes"]) == (280.0, 272.0) and c["roofline_ms"] == pytest.approx(2.72e-5)
    ours, ref = _rows(d, inp.case.name)["fusedscore"], _rows(d, inp.case.name)["torch-reference"]
    assert (ours["median_ms"], ours["p20_ms"], ours["p80_ms"]) == pytest.approx((2.0, 1.0, 3.0))
    # 280 FLOP in 2 ms = 1.4e-4 GFLOP/s; 272 B in 2 ms = 1.36e-4 GB/s; 27.2 ns of 2 ms = 1.36e-5 of the roofline
    assert (ours["gflops"], ours["gbps"], ours["roofline_frac"]) == pytest.approx((1.4e-4, 1.36e-4, 1.36e-5))
    assert (ref["gflops"], ref["gbps"], ref["roofline_frac"]) == pytest.approx((3.5e-5, 3.4e-5, 3.4e-6))
    assert ref["fusedscore_speedup"] == pytest.approx(4.0) and "fusedscore_speedup" not in ours


def test_slow_impl_runs_on_a_prefix_and_is_scaled():
    case = Case("t/prefix", "maxsim", "all", 6, 5, "fp32", lq=3, ld=(1, 4), dim=8, repeats=3, seed=9)
    ref = next(i for i in all_impls() if i.name == "torch-reference" and i.op == "maxsim")
    capped = Impl("capped-reference", "baseline", "maxsim", ref.prepare, max_pairs={"cpu": 10})
    fused = next(i for i in all_impls() if i.name == "fusedscore" and i.op == "maxsim")
    d = runner.run([case], impls=[fused, capped], rates=RATES, budget_s=0.01, progress=False)
    r = _rows(d, case.name)["capped-reference"]
    assert r["extrapolated_from"] == {"pairs": 10, "of": 30}  # 2 of 6 queries x 5 docs
    assert r["check"]["ok"]  # compared with the matching slice of fusedscore's [6, 5] scores
    assert "scaled x3" in r["note"]


def test_topk_baseline_merges_blocks(monkeypatch):
    """The packed-GEMM top-k baseline over many document blocks keeps the same best k as fusedscore."""
    from fusedscore.bench import maxsim as bench_maxsim

    case = Case("t/topk-blocks", "maxsim_topk", "topk", 3, 40, "fp32", lq=4, ld=(2, 9), dim=8, k=5, repeats=3,
                seed=6)
    monkeypatch.setitem(bench_maxsim.TOPK_BLOCK_BYTES, "cpu", 3 * 4 * 4 * 20)  # ~20 tokens per block
    d = runner.run([case], impls=[i for i in _fast_impls() if i.op == "maxsim_topk"], rates=RATES, budget_s=0.01,
                   progress=False)
    r = _rows(d, case.name)["torch-packed-gemm"]
    assert r["status"] == "ok" and r["check"]["ok"], r
    assert int(r["note"].split()[0]) > 5  # it really ran in several blocks


def test_fusedscore_on_the_reference_fallback_runs_on_a_prefix(monkeypatch):
    """Without the native build fusedscore is the slow reference: it then runs on the reference's prefix,
    and rows on longer or shorter prefixes are checked against it on the common part."""
    from fusedscore.bench.maxsim import fallback_limit

    monkeypatch.setenv("FUSEDSCORE_BACKEND", "reference")
    case = Case("t/fallback", "maxsim", "all", 6, 5, "fp32", lq=3, ld=(1, 4), dim=8, repeats=3, seed=8)
    by_name = {i.name: i for i in all_impls() if i.op == "maxsim"}
    fused = Impl("fusedscore", "fusedscore", "maxsim", by_name["fusedscore"].prepare,
                 max_pairs=fallback_limit("maxsim", {"cpu": 10}))
    longer = Impl("ref-20", "baseline", "maxsim", by_name["torch-reference"].prepare, max_pairs={"cpu": 20})
    shorter = Impl("ref-5", "baseline", "maxsim", by_name["torch-reference"].prepare, max_pairs={"cpu": 5})
    d = runner.run([case], impls=[fused, longer, shorter], rates=RATES, budget_s=0.01, progress=False)
    rows = _rows(d, case.name)
    assert rows["fusedscore"]["backend"] == "reference"
    assert rows["fusedscore"]["extrapolated_from"] == {"pairs": 10, "of": 30}
    assert rows["ref-20"]["extrapolated_from"]["pairs"] == 20 and rows["ref-20"]["check"]["ok"]
    assert rows["ref-5"]["extrapolated_from"]["pairs"] == 5 and rows["ref-5"]["check"]["ok"]
    monkeypatch.delenv("FUSEDSCORE_BACKEND")
    if fusedscore_native():
        assert fallback_limit("maxsim", {"cpu": 10})("cpu") is None  # native: always the full case


def fusedscore_native() -> bool:
    import fusedscore

    return bool(fusedscore.backend_info()["native"])


def test_disagreeing_impl_is_flagged():
    case = TINY[0]

    def wrong(inp):
        return Prepared(lambda: torch.zeros(len(inp.q), len(inp.d)), lambda x: x)

    fused = next(i for i in all_impls() if i.name == "fusedscore" and i.op == "maxsim")
    d = runner.run([case], impls=[fused, Impl("zeros", "baseline", "maxsim", wrong)], rates=RATES, budget_s=0.01,
                   progress=False)
    assert _rows(d, case.name)["zeros"]["check"]["ok"] is False
    assert "NO" in render_text(d)


def test_impl_whose_timed_runs_differ_is_flagged():
    """Only the first call is right (a cache keyed on the wrong thing, an async return...): the check reads
    a timed run too, so the row cannot pass on its warm-up alone."""
    case = TINY[0]
    ref = next(i for i in all_impls() if i.name == "torch-reference" and i.op == "maxsim")

    def first_only(inp):
        good = ref.prepare(inp)
        calls = []

        def fn():
            calls.append(1)
            return good.fn() if len(calls) == 1 else torch.zeros(len(inp.q), len(inp.d))

        return Prepared(fn, good.to_scores)

    fused = next(i for i in all_impls() if i.name == "fusedscore" and i.op == "maxsim")
    d = runner.run([case], impls=[fused, Impl("first-only", "baseline", "maxsim", first_only)], rates=RATES,
                   budget_s=0.01, progress=False)
    chk = _rows(d, case.name)["first-only"]["check"]
    assert chk["ok"] is False and "timed run" in chk["why"]


def test_failing_impl_is_reported_not_raised():
    def broken(inp):
        raise KeyError("boom")

    fused = next(i for i in all_impls() if i.name == "fusedscore" and i.op == "maxsim")
    d = runner.run([TINY[0]], impls=[fused, Impl("broken", "peer", "maxsim", broken)], rates=RATES, budget_s=0.01,
                   progress=False)
    r = _rows(d, TINY[0].name)["broken"]
    assert r["status"] == "error" and "KeyError" in r["note"]
    assert d["errors"] == []  # only a failing fusedscore row fails the run


def test_busy_machine_is_noted(monkeypatch):
    """Rates re-measured after the cases that moved by > 25% put a note in the document."""
    seen = iter([RATES, {**RATES, "matmul_gflops": {"fp32": 50.0, "bf16": 400.0}}])
    monkeypatch.setattr(runner, "measure_rates", lambda device, quick=False: next(seen))
    fused = [i for i in _fast_impls() if i.name == "fusedscore"]
    d = runner.run([TINY[0]], impls=fused, budget_s=0.01, progress=False)
    assert d["machine_end"]["matmul_gflops"]["fp32"] == 50.0
    assert len(d["notes"]) == 1 and "fp32 matmul GFLOP/s 100 -> 50" in d["notes"][0]
    assert "NOTE: the machine's rates changed" in render_text(d)


def test_agreement_rules():
    exp = torch.tensor([[1.0, float("-inf"), 3.0]])
    assert runner.agreement(exp.clone(), exp, "fp32")["ok"]
    assert not runner.agreement(exp + 0.1, exp, "fp32")["ok"]
    assert not runner.agreement(torch.zeros(1, 3), exp, "fp32")["ok"]  # -inf became finite
    assert not runner.agreement(exp[:, :2], exp, "fp32")["ok"]  # shape


def test_quantile_matches_numpy():
    xs = sorted([0.3, 0.1, 0.7, 0.2, 0.9, 0.4])
    for q in (0.2, 0.5, 0.8):
        assert _quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))
    t = measure(lambda: sum(range(100)), repeats=5, budget_s=10.0)
    assert t.runs == 5 and t.p20 <= t.median <= t.p80


def test_report_renders(doc, tmp_path, capsys):
    md = render_markdown(doc)
    for c in TINY:
        assert f"### {c.name}" in md
    r = _rows(doc, TINY[0].name)["torch-reference"]
    assert f"{r['fusedscore_speedup']:.2f}x" in md
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    from fusedscore.cli import main

    assert main(["report", str(path)]) == 0
    assert "### t/maxsim-all" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main(["report", str(bad)]) == 2
    assert "must be a fusedscore bench JSON" in capsys.readouterr().err


def test_record_path_names_date_device_sha(tmp_path):
    doc = {"date": "2025-01-02T03:04:05+00:00", "device": {"cpu": "AMD EPYC 7B13 64-Core Processor", "cpus_usable": 2},
           "git": {"sha": "0123abcdef"}, "options": {"quick": True}}
    assert bench_cli.record_path(doc, root=tmp_path) == \
        tmp_path / "benchmarks" / "results" / "2025-01-02-cpu-amd-epyc-7b13-64-core-processor-2c-0123abcdef-quick.json"
    doc = dict(doc, git={"sha": None}, options={"quick": False},  # a wheel: no commit to name
               device={"cpu": "x", "cpus_usable": 1, "gpu": "NVIDIA H100 80GB HBM3"})
    assert bench_cli.record_path(doc, root=tmp_path).name == "2025-01-02-nvidia-h100-80gb-hbm3-nogit.json"


def _tiny_cli(monkeypatch) -> None:
    from fusedscore.bench import cases as C

    monkeypatch.setattr(C, "default_cases", lambda device="cpu", quick=False: TINY[:2])
    monkeypatch.setattr(C, "recall_cases", lambda device="cpu", quick=False: [TINY_RECALL])
    monkeypatch.setattr(C, "sweep_cases", lambda device="cpu", quick=False: TINY_SWEEP)
    monkeypatch.setattr(runner, "measure_rates", lambda device, quick=False: RATES)


def test_cli_bench_writes_json(tmp_path, monkeypatch, capsys):
    _tiny_cli(monkeypatch)
    out = tmp_path / "r.json"
    from fusedscore.cli import main

    assert main(["bench", "--quick", "--quiet", "--budget", "0.01", "--impls", "torch-reference", "--out", str(out)]) == 0
    assert capsys.readouterr() == ("", "")  # --quiet: no bar, no table, no "wrote" line
    d = json.loads(out.read_text())
    assert {r["impl"] for r in d["results"]} == {"fusedscore", "torch-reference"}
    assert d["options"]["quick"] is True and d["options"]["sweep"] is False
    assert [e["name"] for e in d["muvera_recall"]] == [TINY_RECALL.name]  # the recall check is in the default run
    assert main(["report", str(out)]) == 0
    md = capsys.readouterr().out
    assert f"### {TINY_RECALL.name}" in md and "| random candidates |" in md
    assert main(["bench", "--impls", "no-such-impl"]) == 2
    assert "must name known implementations" in capsys.readouterr().err
    # --cases picks the recall check alone (no kernel case left): it still makes a full document
    assert main(["bench", "--quiet", "--cases", "muvera", "--out", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["cases"] == [] and len(d["muvera_recall"]) == 1 and d["machine"] == RATES


def test_recall_case_rows_and_report():
    d = runner.run([TINY_RECALL], rates=RATES, progress=False)
    assert d["errors"] == [] and d["cases"] == [] and d["results"] == []
    (e,) = d["muvera_recall"]
    assert e["data"]["n_docs"] == 40 and e["data"]["tokens"]["docs"] > 40
    assert e["random"] == {"recall@5/c5": 0.125, "recall@5/c20": 0.5}  # c / N
    assert [(r["r_reps"], r["fill_empty"], r["output_dim"]) for r in e["rows"]] == [(1, True, 16), (4, False, 64)]
    for r in e["rows"]:
        assert 0.0 <= r["recall@5/c5"] <= r["recall@5/c20"] <= 1.0  # the top-20 holds the top-5: no slack
    json.dumps(d, allow_nan=False)
    md = render_markdown(d)
    assert f"### {TINY_RECALL.name}" in md
    assert "| setting | k_sim | dim_proj | r_reps | fill_empty | output_dim | recall@5/c5 | recall@5/c20 |" in md
    assert "| k_sim=2, dim_proj=4, r_reps=1 |" in md and "| k_sim=2, dim_proj=4, r_reps=4, fill_empty=False |" in md
    assert "| random candidates | - | - | - | - | - | 0.125 | 0.5 | - |" in md
    assert "random candidates" in render_text(d)


def test_failing_recall_case_is_reported():
    bad = RecallCase("muvera/recall-bad", 10, 2, ({"k_sim": 13},), (5,), k=3, dim=4, n_clusters=3)
    d = runner.run([bad], rates=RATES, progress=False)
    (e,) = d["muvera_recall"]
    assert e["rows"] == [] and "k_sim must be in [0, 12]" in e["error"]
    assert d["errors"] == [f"muvera/recall-bad: fusedscore failed: {e['error']}"]
    assert "ERROR: ValueError: FDE: k_sim must be in" in render_text(d)


@pytest.mark.parametrize("argv", [["--only", "encoders"], ["--only", "rerank"]])
def test_quiet_model_benchmarks_load_with_transformers_quiet(monkeypatch, argv):
    # --only ran the model benchmarks outside the switch: "Loading weights" bars and messages under --quiet
    import logging

    seen = []

    def extra(module, kwargs):
        seen.append((hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()))
        return []

    monkeypatch.setattr(bench_cli, "_extra", extra)
    from fusedscore.cli import main

    assert main(["bench", *argv, "--quiet"]) == 0
    assert seen == [(False, logging.ERROR)]
    assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() != logging.ERROR  # restored


def test_extra_benchmarks_get_the_options_they_take(monkeypatch):
    # --only rerank --cases X: the rerank benchmark takes `cases` too (it ran every case)
    from fusedscore.bench import rerank

    got = []
    monkeypatch.setattr(rerank, "run", lambda device, cases: got.append((device, cases)) or [])
    assert bench_cli._extra("rerank", {"device": "cpu", "cases": ["cross"], "model_dir": "m"}) == []
    assert got == [("cpu", ["cross"])]


def test_the_package_ships_no_repo_only_benchmark():
    # the Ray benchmark and pylate's child interpreter live in benchmarks/ (a checkout), not in the package
    import fusedscore.bench as bench

    root = Path(bench.__file__).parent
    assert not (root / "ray_bench.py").exists() and not (root / "_pylate_child.py").exists()
    # no module starts another interpreter (runner's subprocess runs git only)
    found = [p.name for p in root.glob("*.py") if "FUSEDSCORE_PYLATE_ST_PATH" in p.read_text()
             or "sys.executable" in p.read_text()]
    assert found == []


@needs_matplotlib
def test_plots_written(doc, tmp_path):
    from fusedscore.bench.plots import plot

    d = runner.run(TINY_SWEEP, impls=_fast_impls(), rates=RATES, budget_s=0.01, progress=False)
    paths = plot(d, tmp_path)
    assert {tmp_path / "throughput_vs_doc_len.png", tmp_path / "throughput_vs_batch.png"} <= set(paths)
    assert all(p.stat().st_size > 1000 and p.suffix == ".png" for p in paths)
    assert math.isfinite(d["results"][0]["median_ms"])


@needs_matplotlib
def test_cli_plot_runs_the_sweep(tmp_path, monkeypatch, capsys):
    """--plot without --sweep still draws throughput vs doc length and vs batch size (it implies the sweep)."""
    _tiny_cli(monkeypatch)
    from fusedscore.cli import main

    out = tmp_path / "r.json"
    assert main(["bench", "--quick", "--quiet", "--budget", "0.01", "--impls", "torch-reference", "--out", str(out),
                 "--plot", str(tmp_path / "figs")]) == 0
    assert capsys.readouterr() == ("", "")
    for name in ("throughput_vs_doc_len.png", "throughput_vs_batch.png", "case_t_maxsim-all.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 1000, name
    d = json.loads(out.read_text())
    assert d["options"]["sweep"] is True and {c["name"] for c in d["cases"]} >= {c.name for c in TINY_SWEEP}


@pytest.mark.peers
def test_peer_adapters_agree_with_fusedscore():
    """Every installed peer, on small but realistic shapes (so PyLate's zero-padding semantics agree):
    its row runs and its scores match fusedscore's. A peer that is not installed is a skipped row."""
    cases = [Case("p/all", "maxsim", "all", 2, 6, "fp32", lq=8, ld=(16, 40), dim=32, repeats=3, seed=21),
             Case("p/pairs", "maxsim", "pairs", 2, 4, "fp32", lq=8, ld=(16, 40), dim=32, repeats=3, seed=22),
             Case("p/sparse", "sparse_dot", "all", 3, 10, "fp32", vocab=200, q_nnz=8, d_nnz=20, repeats=3, seed=23)]
    d = runner.run(cases, rates=RATES, budget_s=0.01, progress=False)
    for r in d["results"]:
        if r["status"] == "skipped":
            assert "not installed" in r["note"] or "all-pairs only" in r["note"], r
            continue
        assert r["status"] == "ok", r
        if r["impl"] != "fusedscore":
            assert r["check"]["ok"], r
