"""MaxSim of padded batches: masks and lengths on every backend (``MultiVectors.from_padded``), and the Triton
launcher that reads padded tensors without packing them (``kernels.maxsim_padded``), against ``reference.maxsim_ref``
on the unpadded tokens. Padding must never win a max, also when every real similarity is negative.
"""

from __future__ import annotations

import pytest
import torch

import fusedscore as fs
from fusedscore.containers import MultiVectors
from fusedscore.reference import maxsim_ref

from _tol import assert_scores_close, key_for
from conftest import DTYPES, abs_values, backend_params

TRITON = backend_params("triton")


def _check(got, q, d, dtype, query_index=None, reduce="sum"):
    ref = maxsim_ref(q, d, query_index=query_index, reduce=reduce)
    mag = maxsim_ref(abs_values(q), abs_values(d), query_index=query_index, reduce=reduce)
    assert got.dtype == torch.float32
    assert_scores_close(got, ref, mag, key_for(dtype))


@pytest.mark.parametrize("backend, device", backend_params("native", "reference", "triton"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_never_wins(backend, device, dtype):
    """Every real similarity is negative; padded positions (zeros, or huge values) would win a max if scored."""
    g = torch.Generator().manual_seed(11)
    q = torch.rand(3, 6, 16, generator=g) + 0.1  # positive
    d = -(torch.rand(4, 9, 16, generator=g) + 0.1)  # negative: every <q_i, d_j> < 0
    q_mask = torch.arange(6)[None, :] < torch.tensor([6, 2, 4])[:, None]
    d_mask = torch.rand(4, 9, generator=g) < 0.6
    d_mask[:, 0] = True
    d = torch.where(d_mask[..., None], d, torch.full_like(d, 1e4))  # huge positive padding
    qm = MultiVectors.from_padded(q.to(dtype), mask=q_mask).to(device)
    dm = MultiVectors.from_padded(d.to(dtype), mask=d_mask).to(device)
    got = fs.maxsim(qm, dm, backend=backend)
    assert bool((got < 0).all()), got
    q_list = [q[i, q_mask[i]].to(dtype) for i in range(3)]
    d_list = [d[j, d_mask[j]].to(dtype) for j in range(4)]
    _check(got.cpu(), MultiVectors.from_list(q_list), MultiVectors.from_list(d_list), dtype)


# ----------------------------------------------------------------------------- the padded Triton launcher
def _kernels():
    from fusedscore import kernels

    return kernels


@pytest.mark.parametrize("backend, device", TRITON)
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_padded_masks_and_lengths(backend, device, dtype):
    K = _kernels()
    gen = torch.Generator().manual_seed(13)
    qp = torch.rand(3, 20, 17, generator=gen).to(dtype).to(device)  # q >= 0, d <= 0: all sims negative
    dp = (-torch.rand(5, 70, 17, generator=gen)).to(dtype).to(device)
    qm = torch.rand(3, 20, generator=gen) > 0.3
    qm[1] = False  # an empty query
    qm[2, 0] = False  # a mask that is not a prefix
    dm = torch.rand(5, 70, generator=gen) > 0.5
    dm[2] = False  # an empty document
    qm, dm = qm.to(device), dm.to(device)
    q, d = MultiVectors.from_padded(qp, mask=qm), MultiVectors.from_padded(dp, mask=dm)
    qi = torch.tensor([2, 0, 0, 1, 2], device=device)
    for reduce in ("sum", "mean"):
        _check(K.maxsim_padded(qp, qm, dp, dm, reduce=reduce), q, d, dtype, reduce=reduce)
        _check(K.maxsim_padded(qp, qm, dp, dm, reduce=reduce, query_index=qi), q, d, dtype, qi, reduce)
    lens = torch.tensor([0, 70, 1, 64, 5], device=device)
    d = MultiVectors.from_padded(dp, lengths=lens)
    _check(K.maxsim_padded(qp, None, dp, d_lengths=lens), MultiVectors.from_padded(qp), d, dtype)


@pytest.mark.parametrize("backend, device", TRITON)
def test_triton_padded_errors(backend, device):
    K = _kernels()
    q, d = torch.zeros(2, 3, 4, device=device), torch.zeros(5, 6, 4, device=device)
    with pytest.raises(ValueError, match="maxsim_padded: pass d_mask or d_lengths, not both"):
        K.maxsim_padded(q, None, d, torch.ones(5, 6, dtype=torch.bool, device=device),
                        d_lengths=torch.ones(5, dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match=r"maxsim_padded: d must be C-contiguous \[N, L, D\]"):
        K.maxsim_padded(q, None, torch.zeros(6, 5, 4, device=device).transpose(0, 1))
    with pytest.raises(ValueError, match=r"maxsim_padded: d_mask must be a bool \[N, L\]=\(5, 6\) tensor"):
        K.maxsim_padded(q, None, d, torch.ones(5, 7, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="maxsim_padded: q and d must have shapes"):
        K.maxsim_padded(q, None, torch.zeros(5, 6, 3, device=device))
    # d_lengths > L read past the document (into the next one, or past the tensor: garbage scores on CPU, an
    # illegal address on the GPU); d_lengths < 0 silently scored -inf
    for lengths in ([1, 2, 3, 4, 7], [1, 2, -1, 4, 5]):
        with pytest.raises(ValueError, match=r"maxsim_padded: d_lengths must lie in \[0, L=6\]"):
            K.maxsim_padded(q, None, d, d_lengths=torch.tensor(lengths, device=device))
