"""What every ``fusedscore`` subcommand shares: help text about the product, transformers kept quiet under
``--quiet`` and bar-free off a terminal, Ctrl-C as one line and exit status 130."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from transformers.utils import logging as hf_logging

from fusedscore import cli


@pytest.mark.parametrize("argv", [["bench", "--help"], ["report", "--help"], ["rerank", "--help"], ["eval", "--help"],
                                  ["--help"]])
def test_help_speaks_of_the_product_not_the_tracker(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fusedscore")
    assert not re.search(r"\bissues?\b", out, re.IGNORECASE), out  # "the workloads of issue 2" meant nothing to users


def test_python_m_bench_help_speaks_of_the_product(capsys):
    from fusedscore.bench import cli as bench_cli

    with pytest.raises(SystemExit):
        bench_cli.main(["--help"])
    assert not re.search(r"\bissues?\b", capsys.readouterr().out, re.IGNORECASE)


def _tty(monkeypatch, on: bool) -> None:
    stream = io.StringIO()
    stream.isatty = lambda: on
    monkeypatch.setattr(sys, "stderr", stream)


def test_quiet_transformers_turns_off_bars_and_info_logging(monkeypatch):
    _tty(monkeypatch, True)
    assert hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    with cli.quiet_transformers(False):  # a terminal, not quiet: transformers as configured
        assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == verbosity
    hf_logging.set_verbosity_info()
    try:
        with cli.quiet_transformers(True):
            assert not hf_logging.is_progress_bar_enabled()
            assert hf_logging.get_verbosity() == logging.ERROR
        assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == logging.INFO  # restored
    finally:
        hf_logging.set_verbosity(verbosity)


def test_transformers_bars_only_on_a_terminal(monkeypatch):
    _tty(monkeypatch, False)
    with cli.quiet_transformers(False):  # a log file: no bar frames, but messages as configured
        assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() != logging.ERROR
    assert hf_logging.is_progress_bar_enabled()


def test_ctrl_c_is_one_line_and_130(monkeypatch, capsys):
    from fusedscore.bench import cli as bench_cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench_cli, "report_command", interrupted)
    try:
        rc = cli.main(["report", "x.json"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a traceback")
    assert rc == 130 and capsys.readouterr().err == "fusedscore report: interrupted\n"


# ---------------------------------------------------------------------------- real commands, tiny models
def _run(argv: list[str], cwd) -> subprocess.CompletedProcess:
    """``python -m fusedscore ARGV`` with stderr a pipe (not a terminal), as in a log or CI."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSFORMERS_", "HF_"))}
    return subprocess.run([sys.executable, "-m", "fusedscore", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.encoders
@pytest.mark.parametrize("quiet", [True, False])
@pytest.mark.parametrize("command", [
    "rerank",
    pytest.param("eval", marks=pytest.mark.skipif(importlib.util.find_spec("ir_measures") is None,
                                                  reason="the eval extra (ir-measures) is not installed")),
])
def test_rerank_and_eval_write_no_bars_to_a_log(tmp_path, command, quiet):
    from fusedscore.testing import tiny_models as tm

    model = str(tm.build_dense(tmp_path / "dense"))
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"query": tm.TEXTS[0], "documents": tm.CORPUS}) + "\n")  # short: none truncated
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n"
                                               for i, t in enumerate(tm.CORPUS)))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": tm.TEXTS[0]}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq\td0\t1\n")
    argv = {"rerank": ["rerank", "--model", model, "--input", str(inp), "--output", str(tmp_path / "out.jsonl")],
            "eval": ["eval", "--data", str(data), "--model", model, "--mode", "dense,muvera"]}[command]
    p = _run([*argv, *(["--quiet"] if quiet else [])], tmp_path)
    assert p.returncode == 0, p.stderr
    # transformers drew "Loading weights" on any stream, and eval's own bars ignored that stderr was a pipe
    assert "Loading weights" not in p.stderr and "it/s" not in p.stderr and "\r" not in p.stderr, p.stderr
    if quiet:
        assert p.stderr == "", p.stderr
