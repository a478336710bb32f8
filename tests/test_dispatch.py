"""Backend selection: explicit choices, unavailable backends, backend_info."""

from __future__ import annotations

import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch


def _inputs():
    q = fs.MultiVectors.from_list([torch.randn(2, 4)])
    d = fs.MultiVectors.from_list([torch.randn(3, 4), torch.randn(1, 4)])
    return q, d


def test_unknown_backend_lists_the_registered_ones():
    q, d = _inputs()
    with pytest.raises(RuntimeError, match=r"backend must be one of \(triton, native, reference\), got 'fast'"):
        fs.maxsim(q, d, backend="fast")


def test_env_variable_forces_a_backend(monkeypatch):
    q, d = _inputs()
    monkeypatch.setenv("FUSEDSCORE_BACKEND", "reference")
    assert _dispatch.resolve("maxsim", torch.device("cpu")).name == "reference"
    assert torch.allclose(fs.maxsim(q, d), fs.reference.maxsim_ref(q, d))


def test_triton_on_cpu_without_interpreter_is_an_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q, d = _inputs()
    with pytest.raises(RuntimeError, match="backend 'triton' is unavailable: triton runs on CUDA tensors"):
        fs.maxsim(q, d, backend="triton")


def test_native_missing_is_reported_at_call_time(monkeypatch):
    monkeypatch.setattr(_dispatch, "_NATIVE", None)
    monkeypatch.setattr(_dispatch, "_NATIVE_ERR", ImportError("simulated"))
    q, d = _inputs()
    with pytest.raises(RuntimeError, match="fusedscore._native did not load .*simulated.*reinstall"):
        fs.maxsim(q, d, backend="native")
    info = fs.backend_info()
    assert info["native"] is False and "simulated" in info["reason"]


def test_auto_fallback_warns_once(monkeypatch):
    monkeypatch.setattr(_dispatch, "_NATIVE", None)
    monkeypatch.setattr(_dispatch, "_NATIVE_ERR", ImportError("simulated"))
    monkeypatch.setattr(_dispatch, "_WARNED_FALLBACK", False)
    monkeypatch.delenv("FUSEDSCORE_BACKEND", raising=False)
    q, d = _inputs()
    with pytest.warns(RuntimeWarning, match=r"fusedscore: maxsim falls back to the slower 'reference' backend: "
                                            r"the C\+\+ extension fusedscore._native did not load .*simulated"):
        fs.maxsim(q, d)
    fs.maxsim(q, d)  # second call: no warning (filterwarnings=error would fail the test)


def test_cuda_without_triton_warns_and_falls_back(monkeypatch):
    """resolve only looks at the device type, so a CUDA device object needs no GPU here."""
    monkeypatch.setattr(_dispatch, "_TRITON_TRIED", True)
    monkeypatch.setattr(_dispatch, "_TRITON_MOD", None)
    monkeypatch.setattr(_dispatch, "_TRITON_ERR", ImportError("no triton here"))
    monkeypatch.setattr(_dispatch, "_WARNED_FALLBACK", False)
    monkeypatch.delenv("FUSEDSCORE_BACKEND", raising=False)
    cuda = torch.device("cuda")
    with pytest.warns(RuntimeWarning, match=r"maxsim falls back to the slower 'reference' backend: "
                                            r"fusedscore.kernels did not load .*no triton here"):
        assert _dispatch.resolve("maxsim", cuda).name == "reference"
    # dense scores on CUDA without the kernels package: torch in fp32 (never a 16-bit rounded product)
    assert _dispatch.resolve("dense_dot", cuda).name == "torch"


@pytest.mark.skipif(_dispatch._triton_module() is None, reason="triton does not import")
def test_dense_dot_on_cuda_goes_to_the_kernels_package(monkeypatch):
    monkeypatch.delenv("FUSEDSCORE_BACKEND", raising=False)
    assert _dispatch.resolve("dense_dot", torch.device("cuda")).name == "triton"
    assert _dispatch.resolve("dense_dot", torch.device("cpu")).name == "torch"


def test_auto_selection_on_cpu_prefers_native_when_loaded(monkeypatch):
    monkeypatch.delenv("FUSEDSCORE_BACKEND", raising=False)
    name = _dispatch.resolve("maxsim", torch.device("cpu")).name
    assert name == ("native" if fs.backend_info()["native"] else "reference")


def test_backend_info_fields():
    info = fs.backend_info()
    for key in ("native", "reason", "cuda", "torch"):
        assert key in info
