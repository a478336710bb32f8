"""The implementations a benchmark times, and the contract they follow.

An ``Impl`` turns a case's ``Inputs`` into a ready-to-call closure (``prepare``). Preparation converts the
inputs into the format the implementation's users hold (padded tensors, lists of numpy arrays, dicts,
scipy matrices, an inverted index) and is not timed: only the scoring call is. ``prepare`` raises
``Skip`` with a reason when the implementation is not installed or does not apply (a peer missing, an
op or mode it lacks, a dtype it does not take): the reason is printed and recorded, never hidden.

Slow implementations (Python loops, the padded reference) declare ``max_pairs``; on a larger workload
they run on a prefix of it (the first queries, or the first documents of a one-query rerank) and their
time is scaled up by the ratio of scored pairs, which the result row records as ``extrapolated_from``.

The implementations live in per-op modules (``bench/maxsim.py``, ``bench/sparse_dot.py``), which import this
contract; ``runner.all_impls`` collects them (the runner sits above both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .. import _dispatch, ops
from .cases import Inputs

__all__ = ["Impl", "NoModel", "Prepared", "Skip", "as_f32_cpu", "query_index", "require", "public_op", "reference_op"]


class Skip(Exception):
    """This implementation does not run on this case; the message says why."""


@dataclass
class Prepared:
    """A closure to time, and how to read its result as fp32 scores comparable with fusedscore's.

    Attributes:
        fn: no-argument call doing the scoring.
        to_scores: maps fn's return value to a float32 CPU tensor shaped like fusedscore's output on the
            same inputs (for the agreement check). None: no check (e.g. a top-k result).
        note: anything a reader must know about this row (formulation, conversions, backend picked).
        backend: the backend that ran (fusedscore's dispatch choice), if known.
    """

    fn: Callable[[], Any]
    to_scores: Callable[[Any], torch.Tensor] | None = None
    note: str = ""
    backend: str | None = None


@dataclass(frozen=True)
class Impl:
    """One implementation of one op.

    Attributes:
        name: row label ("fusedscore", "torch-packed-gemm", "maxsim-cpu", ...).
        kind: "fusedscore" (ours), "baseline" (plain torch / scipy), or "peer" (another library).
        op: the op it implements ("maxsim", "maxsim_topk", "sparse_dot").
        prepare: Inputs -> Prepared, or raises Skip.
        devices: where it runs.
        max_pairs: the most scored pairs it is run on, per device kind ("cpu", "cuda"); absent: always
            the full case. Or a function of the device kind, for a limit known only at run time.
    """

    name: str
    kind: str
    op: str
    prepare: Callable[[Inputs], Prepared]
    devices: tuple[str, ...] = ("cpu", "cuda")
    max_pairs: dict[str, int] | Callable[[str], int | None] = field(default_factory=dict)

    def limit(self, dev_kind: str) -> int | None:
        return self.max_pairs(dev_kind) if callable(self.max_pairs) else self.max_pairs.get(dev_kind)


def as_f32_cpu(x: Any) -> torch.Tensor:
    """Scores of any peer (numpy array, list of floats, tensor) as a float32 CPU tensor."""
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu()
    return torch.as_tensor(x).float()


def query_index(inp: Inputs) -> torch.Tensor:
    """[N] int64: the query of each document of a paired case (its ``groups`` expanded)."""
    n_q = inp.q.shape[0] if isinstance(inp.q, torch.Tensor) else len(inp.q)
    n_d = inp.d.shape[0] if isinstance(inp.d, torch.Tensor) else len(inp.d)
    return ops.groups_to_query_index(inp.groups, n_q, n_d, "bench").to(inp.d.device)


def require(module: str, pip_name: str) -> Any:
    """Import a peer's module for a row, or Skip that row saying how to install the peer."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Skip(f"{pip_name} not installed ({e}); pip install {pip_name}") from None


class NoModel:
    """Stands in for ``self`` when a peer's scoring method is called unbound: FlagEmbedding's colbert_score and
    compute_lexical_matching_score never read their instance."""


def public_op(op: str, fn: Callable[..., torch.Tensor]) -> Callable[[Inputs], Prepared]:
    """``prepare`` of fusedscore's row for a pairwise op (``fn(q, d, mode=, groups=)``, e.g. ``ops.sparse_dot``):
    the public call with the default dispatch, whose backend the row records."""
    def prepare(inp: Inputs) -> Prepared:
        q, d = inp.q, inp.d
        backend = _dispatch.resolve(op, d.device).name
        mode, groups = ("pairs", inp.groups) if inp.groups is not None else ("all", None)
        return Prepared(lambda: fn(q, d, mode=mode, groups=groups), as_f32_cpu, backend=backend)
    return prepare


def reference_op(ref: Callable[..., torch.Tensor], note: str) -> Callable[[Inputs], Prepared]:
    """``prepare`` of the baseline row: the op's reference (``ref(q, d, query_index=, upcast=False)``), the
    function the tests check against."""
    def prepare(inp: Inputs) -> Prepared:
        qi = query_index(inp) if inp.groups is not None else None
        q, d = inp.q, inp.d
        return Prepared(lambda: ref(q, d, query_index=qi, upcast=False), as_f32_cpu, note=note)
    return prepare
