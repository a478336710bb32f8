"""The build: the native module is present where CI demands it, reports its SIMD levels, and honours
FUSEDSCORE_SIMD (an unavailable or unknown level falls back and says so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fusedscore as fs
from fusedscore import _dispatch

NATIVE = _dispatch.native_module()
needs_native = pytest.mark.skipif(NATIVE is None, reason=f"native extension not built: {_dispatch._NATIVE_ERR!r}")
ORDER = ["scalar", "avx2", "avx512", "avx512bf16"]


@pytest.mark.skipif(os.environ.get("FUSEDSCORE_REQUIRE_NATIVE") != "1", reason="FUSEDSCORE_REQUIRE_NATIVE is not 1")
def test_native_is_required_and_present():
    info = fs.backend_info()
    assert info["native"], f"fusedscore._native did not load: {info['reason']}"


@needs_native
def test_info_fields():
    info = NATIVE.info()
    assert set(info) >= {"simd", "simd_levels", "simd_note", "openmp", "threads", "f16c", "avx512bf16", "compiler"}
    assert info["simd_levels"][0] == "scalar"
    assert info["simd_levels"] == [lvl for lvl in ORDER if lvl in info["simd_levels"]]  # lowest first
    assert info["simd"] in info["simd_levels"]
    assert isinstance(info["openmp"], bool) and isinstance(info["threads"], int) and info["threads"] >= 1
    assert isinstance(info["compiler"], str) and info["compiler"]
    if "avx512bf16" in info["simd_levels"]:
        assert info["avx512bf16"] is True
    assert fs.backend_info()["simd"] == info["simd"]


@needs_native
def test_set_simd_round_trip_and_errors():
    levels = NATIVE.info()["simd_levels"]
    prev = NATIVE.set_simd("scalar")
    try:
        assert NATIVE.info()["simd"] == "scalar"
        assert NATIVE.set_simd(levels[-1]) == "scalar"
        with pytest.raises(ValueError, match=r"set_simd: level must be one of 'scalar', 'avx2', 'avx512', 'avx512bf16', got 'sse9'"):
            NATIVE.set_simd("sse9")
        for missing in (lvl for lvl in ORDER if lvl not in levels):
            with pytest.raises(ValueError, match=r"set_simd: level must be one available on this CPU/build"):
                NATIVE.set_simd(missing)
    finally:
        NATIVE.set_simd(prev)


def _info_with_env(value: str) -> dict:
    # load the extension file alone (the module needs neither torch nor the package): a fast fresh process
    code = ("import importlib.util as u, json, sys; s = u.spec_from_file_location('_native', sys.argv[1]); "
            "m = u.module_from_spec(s); s.loader.exec_module(m); print(json.dumps(m.info()))")
    env = dict(os.environ, FUSEDSCORE_SIMD=value)
    res = subprocess.run([sys.executable, "-c", code, NATIVE.__file__], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@needs_native
def test_env_forces_each_level_or_falls_back_below():
    levels = NATIVE.info()["simd_levels"]
    for want in ORDER:
        info = _info_with_env(want)
        best_below = [lvl for lvl in levels if ORDER.index(lvl) <= ORDER.index(want)][-1]
        assert info["simd"] == best_below
        if want in levels:
            assert info["simd_note"] is None
        else:
            assert info["simd_note"] == f"FUSEDSCORE_SIMD={want} is unavailable on this CPU/build; using {best_below}"


@needs_native
def test_env_unknown_level_is_reported():
    info = _info_with_env("fastest")
    assert info["simd"] == NATIVE.info()["simd_levels"][-1]
    assert info["simd_note"].startswith("FUSEDSCORE_SIMD=fastest is not one of scalar, avx2, avx512, avx512bf16")


PEERS = ("FlagEmbedding", "pylate.rank", "sentence_transformers", "maxsim_cpu")


@pytest.mark.skipif(os.environ.get("FUSEDSCORE_REQUIRE_PEERS") != "1", reason="FUSEDSCORE_REQUIRE_PEERS is not 1")
@pytest.mark.parametrize("name", PEERS)
def test_peer_imports_where_ci_requires_it(name):
    # the parity tests skip a peer that does not import; in CI that skip would hide a broken peer environment
    # (FlagEmbedding 1.4.2 stopped importing under transformers 5.24, and its parity tests went quiet)
    import importlib
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the peers' own import-time deprecations are not ours
        importlib.import_module(name)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_checkout_root_offers_no_top_level_kernels_module():
    # `python -m pytest` and `python -m fusedscore` put the working directory first on sys.path. A `kernels/`
    # package at the root of a checkout shadowed PyPI's `kernels`, which transformers >= 5.25 imports, and broke
    # every model load run from the root. Whatever `kernels` resolves to from the root must not be ours.
    # (a venv inside the checkout, as CI's, may hold PyPI's kernels: that one is found through site-packages)
    code = ("import importlib.util as u, os; s = u.find_spec('kernels'); "
            "print(os.path.dirname(os.path.dirname(s.origin)) if s and s.origin else "
            "os.path.dirname(next(iter(s.submodule_search_locations))) if s else '')")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    found_in = res.stdout.strip()
    assert not found_in or os.path.realpath(found_in) != os.path.realpath(REPO), \
        f"`import kernels` from {REPO} finds the checkout's own kernels/"
    import fusedscore.kernels  # noqa: F401  the Triton kernels ship inside the package instead

    assert fusedscore.kernels.__name__ == "fusedscore.kernels"
