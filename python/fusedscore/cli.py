"""The ``fusedscore`` command line: ``bench``, ``report``, ``rerank``, ``eval``.

Each subcommand lives beside the code it drives and registers itself here through ``register(subparsers)``;
this module only assembles them, so importing the CLI stays cheap. It also holds what every subcommand shares:
``quiet_transformers`` (transformers' own output while models load) and ``stderr_is_terminal``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from typing import Iterator

__all__ = ["build_parser", "main", "quiet_transformers", "stderr_is_terminal"]

# module -> it provides register(subparsers) adding one or more subcommands
_SUBCOMMAND_MODULES = ("fusedscore.bench.cli", "fusedscore.cli_rerank", "fusedscore.evaluate")


def stderr_is_terminal() -> bool:
    """Whether progress bars may draw: stderr is a terminal (tqdm's ``disable=None`` rule). In a log file or a
    pipe every redraw would be kept as a line of its own."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


@contextlib.contextmanager
def quiet_transformers(quiet: bool) -> Iterator[None]:
    """transformers' (and huggingface_hub's) own output while a command loads models, restored afterwards.

    Their progress bars ("Loading weights", "Writing model shards") are off under ``quiet`` and whenever
    stderr is not a terminal, because transformers draws them on any stream; under ``quiet`` their logging
    is also cut to errors (no info lines, no load reports). Without transformers installed it does nothing.
    """
    bars_off = quiet or not stderr_is_terminal()
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # no transformers: the commands that need it say so, and nothing draws those bars
        yield
        return
    was_on, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    if bars_off and was_on:
        hf_logging.disable_progress_bar()
    if quiet:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_off and was_on:
            hf_logging.enable_progress_bar()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusedscore", description="Fused scoring kernels for retrieval reranking.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real import error inside the module: surface it
                raise
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C is the user's choice, not a crash: no traceback; 128 + SIGINT as shells do
        print(f"fusedscore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
