"""The ``fusedscore`` command line: ``bench``, ``report``, ``rerank``, ``eval``.

Each subcommand lives beside the code it drives and registers itself here through ``register(subparsers)``;
this module only assembles them, so importing the CLI stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module -> it provides register(subparsers) adding one or more subcommands
_SUBCOMMAND_MODULES = ("fusedscore.bench.cli", "fusedscore.cli_rerank", "fusedscore.evaluate")


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
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
