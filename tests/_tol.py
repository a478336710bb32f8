"""The only place tolerances live. Tighten when you can; never loosen one inside a test.

Error of a reduction grows with the sum of |terms|, so tolerances are relative to a magnitude bound
``mag`` = the same op applied to |inputs| (e.g. ``maxsim_ref(|q|, |d|)``), not to the score itself.
"""

from __future__ import annotations

import torch

# unit roundoff: the largest relative error of one rounding to the format (round to nearest) in its normal range;
# below it the error is absolute, at most half the smallest subnormal (SUBNORMAL)
ROUNDING = {torch.float32: 2**-24, torch.float16: 2**-11, torch.bfloat16: 2**-8}
SUBNORMAL = {torch.float32: 2**-149, torch.float16: 2**-24, torch.bfloat16: 2**-133}

RTOL = {  # (input dtype, compute path) -> rtol against the magnitude bound
    (torch.float32, "ieee"): 1e-5,
    (torch.float32, "tf32"): 2e-3,
    (torch.float16, "fp32acc"): 1e-4,
    (torch.bfloat16, "fp32acc"): 1e-4,
    # fp32 accumulation, then the score rounded once to the 16-bit input dtype (cuBLAS without an fp32 output,
    # kernels/dense.py): one rounding to the format on top of the fp32acc bound
    (torch.float16, "out16"): ROUNDING[torch.float16] + 1e-4,
    (torch.bfloat16, "out16"): ROUNDING[torch.bfloat16] + 1e-4,
}
ATOL = 1e-6  # absolute floor for scores whose magnitude bound is ~0


def key_for(dtype: torch.dtype, path: str | None = None) -> tuple[torch.dtype, str]:
    if path is None:
        path = "ieee" if dtype == torch.float32 else "fp32acc"
    return (dtype, path)


def mismatch_report(got: torch.Tensor, ref: torch.Tensor, bad: torch.Tensor) -> str:
    idx = bad.nonzero()[:5].tolist()
    rows = [f"  at {tuple(i)}: got {got[tuple(i)].item()!r}, ref {ref[tuple(i)].item()!r}" for i in idx]
    return f"{int(bad.sum())} of {bad.numel()} scores differ:\n" + "\n".join(rows)


def assert_scores_close(got: torch.Tensor, ref: torch.Tensor, mag: torch.Tensor, key: tuple[torch.dtype, str]) -> None:
    """Equal where both are -inf (empty docs); elsewhere |got - ref| <= RTOL[key] * mag + ATOL."""
    got, ref, mag = got.double().cpu(), ref.double().cpu(), mag.double().cpu()
    assert got.shape == ref.shape, f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"
    assert not torch.isnan(got).any(), mismatch_report(got, ref, torch.isnan(got))
    inf_mismatch = torch.isinf(got) != torch.isinf(ref)
    assert not inf_mismatch.any(), mismatch_report(got, ref, inf_mismatch)
    fin = torch.isfinite(ref)
    bad = fin & ((got - ref).abs() > RTOL[key] * mag.abs() + ATOL)
    assert not bad.any(), mismatch_report(got, ref, bad)

# ``fusedscore eval`` rows hold each metric rounded to 4 decimals (``Evaluator.evaluate``): a row's value is
# within half a unit of that last place of the exact metric. Not a numerical tolerance: the rows' resolution.
METRIC_ROUNDING = 5e-5

# Agreement with a peer library computing the same fp32 scores in another order (padded einsums, numpy, per-pair
# loops): relative RTOL[fp32], and near-zero scores differ by more than ATOL in absolute terms.
PEER_ATOL = 1e-5
# Scores derived from a transformer forward run in another batch composition (padding, batch size) or by the
# peer's own forward: the embeddings differ in their last ~4 significant digits.
ENCODER_RTOL = 1e-4
# The same fp32 reduction regrouped (chunked against one call, a drop-in against the model method it wraps): a
# few roundings apart, far inside RTOL[fp32].
REGROUPED_RTOL = 1e-6
