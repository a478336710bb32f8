"""Backend selection: explicit choices, unavailable backends, backend_info, device decisions."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch

import fusedscore as fs
from fusedscore import _dispatch
from fusedscore.containers import MultiVectorList, MultiVectors

from _tol import ATOL, RTOL, key_for
from conftest import backend_params, naive_maxsim

# whether the C++ extension is installed: a file on disk, found without importing it (dispatch imports it)
NATIVE_INSTALLED = importlib.util.find_spec("fusedscore._native") is not None


def _inputs():
    q = fs.MultiVectors.from_list([torch.randn(2, 4)])
    d = fs.MultiVectors.from_list([torch.randn(3, 4), torch.randn(1, 4)])
    return q, d


def test_unknown_backend_lists_the_registered_ones():
    q, d = _inputs()
    with pytest.raises(RuntimeError, match=r"backend must be one of \(triton, native, reference\), got 'fast'"):
        fs.maxsim(q, d, backend="fast")


def test_env_variable_forces_a_backend(monkeypatch):
    """The reference backend runs (a spy sees the call) and gives the hand-computed scores."""
    q = fs.MultiVectors.from_list([torch.tensor([[1.0, 0.0], [0.0, 2.0]])])
    d = fs.MultiVectors.from_list([torch.tensor([[3.0, 1.0], [-1.0, 4.0]]), torch.tensor([[0.5, -0.5]])])
    monkeypatch.setenv("FUSEDSCORE_BACKEND", "reference")
    assert _dispatch.resolve("maxsim", torch.device("cpu")).name == "reference"
    calls = []
    real = _dispatch._ref_maxsim
    monkeypatch.setattr(_dispatch, "_TABLE", {**_dispatch._TABLE, "maxsim": tuple(
        _dispatch.Impl(i.name, (lambda *a, **k: calls.append(1) or real(*a, **k)) if i.name == "reference" else i.fn)
        for i in _dispatch._TABLE["maxsim"])})
    # query token 1: max(3, -1) = 3; token 2: max(2, 8) = 8 -> 11. Document 2: max(0.5) + max(-1) = -0.5
    assert fs.maxsim(q, d).tolist() == [[11.0, -0.5]] and calls == [1]


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


def test_auto_selection_on_cpu_prefers_native_when_installed(monkeypatch):
    """Against whether the extension is installed (a file on disk), not what dispatch itself reports."""
    monkeypatch.delenv("FUSEDSCORE_BACKEND", raising=False)
    monkeypatch.setattr(_dispatch, "_WARNED_FALLBACK", True)  # a build without it warns once: not this test's point
    name = _dispatch.resolve("maxsim", torch.device("cpu")).name
    assert name == ("native" if NATIVE_INSTALLED else "reference")


def test_backend_info_fields():
    info = fs.backend_info()
    assert info["native"] is NATIVE_INSTALLED
    assert (info["reason"] is None) == NATIVE_INSTALLED
    assert info["cuda"] is torch.cuda.is_available()
    assert info["torch"] == torch.__version__ and info["torch_threads"] == torch.get_num_threads()
    if NATIVE_INSTALLED:
        assert info["simd"] in info["simd_levels"]


# ----------------------------------------------------------------------------- warmup
def test_warmup_is_a_no_op_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_dispatch, "_triton_module", lambda: pytest.fail("imported triton without CUDA"))
    assert fs.warmup() == 0


@pytest.mark.parametrize("backend, device", backend_params("triton"))
def test_warmup_launches_run(backend, device):
    from fusedscore import kernels as K

    # per reduce: all-pairs with 1, 2 and 4 queries, paired, paired by doc_index; then sparse all-pairs and paired
    assert K.compile_buckets(device, (torch.float16,), (16,), (4,), (torch.float32,)) == 2 * 5 + 2


# ----------------------------------------------------------------------------- device decisions (issue 12)
def test_list_documents_stay_unpacked_only_on_the_host(monkeypatch):
    """_dispatch decides which document lists native reads in place: host items (CPU tensors, numpy arrays) stay
    a MultiVectorList; items on any other device are packed for the backend that runs there."""
    host = [torch.randn(2, 4), torch.randn(3, 4).numpy()]
    assert isinstance(_dispatch.maxsim_docs(host, "maxsim"), MultiVectorList)
    assert _dispatch.reads_in_place(host) and not _dispatch.reads_in_place(host, torch.device("cuda"))
    meta = [torch.empty(2, 4, device="meta")]
    assert not _dispatch.reads_in_place(meta)
    packed = []
    monkeypatch.setattr(MultiVectors, "coerce", classmethod(lambda cls, x, where, arg: packed.append(x) or "packed"))
    assert _dispatch.maxsim_docs(meta, "maxsim") == "packed" and packed == [meta]
    # a list on another device never reaches native: dispatch runs it on CPU inputs only
    with pytest.raises(RuntimeError, match="backend 'native' is unavailable: native runs on CPU tensors, got meta"):
        _dispatch.resolve("maxsim", MultiVectorList(meta, "maxsim", "docs").device, "native")


def test_no_core_module_chooses_by_device_type():
    """STYLE 0.3: backend choice lives in _dispatch; nowhere else checks devices (containers chose which lists
    stay unpacked, _check asked CUDA for free memory). A same-device check (q.device != d.device) is no choice."""
    pat = re.compile(r"\.type\s*[!=]=|\.is_cuda\b|torch\.cuda\.")
    for name in ("containers", "ops", "_check", "_csr", "_blocks", "muvera", "retrieval", "reference"):
        src = (Path(fs.__file__).parent / f"{name}.py").read_text()
        hit = pat.search(src)
        assert hit is None, f"fusedscore/{name}.py checks a device type: {hit.group()!r}"


# ----------------------------------------------------------------------------- FUSEDSCORE_BACKEND (issue 11, item 2)
def _vec(text: str, n: int, salt: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(sum(map(ord, salt + text)))
    return torch.nn.functional.normalize(torch.randn(n, 8, generator=g), dim=-1)


def _lex(text: str) -> dict[int, float]:
    return {sum(map(ord, w)) % 50: 0.1 + len(w) / 10 for w in text.split()}


class DenseEncoder:
    """The encoders' contract (Reranker picks the kind by class name), deterministic."""

    def encode(self, texts, batch_size=32, normalize=None):
        return torch.stack([_vec(t, 1, "dense")[0] for t in texts])


class BGEM3:
    def encode(self, texts, batch_size=32, max_length=8192, return_dense=True, return_sparse=False,
               return_colbert_vecs=False, as_containers=False):
        return {"dense_vecs": torch.stack([_vec(t, 1, "dense")[0] for t in texts]),
                "lexical_weights": fs.SparseVectors.from_dicts([_lex(t) for t in texts], vocab_size=50),
                "colbert_vecs": fs.MultiVectors.from_list([_vec(t, len(t.split()), "c") for t in texts])}


def _close(got, exp):
    """fp32 results against float64 expectations, at the fp32 tolerance of _tol."""
    got, exp = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(exp, dtype=torch.float64)
    rtol = RTOL[key_for(torch.float32)]
    assert got.shape == exp.shape and torch.allclose(got, exp, rtol=rtol, atol=ATOL), (got, exp)


def _env_backends():
    out = ["reference"]
    out += ["native"] if _dispatch.native_module() is not None else []
    out += ["triton"] if _dispatch._triton_module() is not None and _dispatch._interpret() else []
    return out


@pytest.mark.parametrize("env", _env_backends())
def test_every_op_and_public_path_runs_under_fusedscore_backend(env, monkeypatch):
    """The variable steers the ops that have that backend; the others (dense_dot has no native backend) keep
    auto-selection, so every dense path works under FUSEDSCORE_BACKEND=native. Expected values: plain formulas in
    float64 (MaxSim pair by pair, never the reference backend that FUSEDSCORE_BACKEND=reference runs)."""
    from fusedscore import compat
    from fusedscore.reranker import Reranker, score_embeddings

    monkeypatch.setenv("FUSEDSCORE_BACKEND", env)
    g = torch.Generator().manual_seed(0)
    qs = [torch.randn(3, 8, generator=g), torch.randn(2, 8, generator=g)]
    ds = [torch.randn(n, 8, generator=g) for n in (4, 1, 5)]
    q, d = fs.MultiVectors.from_list(qs), fs.MultiVectors.from_list(ds)
    ref = naive_maxsim(qs, ds)
    _close(fs.maxsim(q, d), ref)
    _close(fs.maxsim(qs, ds), ref)  # a list of documents: the row-address path under native
    _close(fs.maxsim(q, d, mode="pairs", groups=[0, 2, 3]), ref[[0, 0, 1], [0, 1, 2]])
    vals, idx = fs.maxsim_topk(q, d, 2)
    _close(vals, torch.topk(ref, 2, dim=1).values)
    assert torch.equal(idx, torch.topk(ref, 2, dim=1).indices)
    dq, dd = torch.randn(2, 8, generator=g), torch.randn(3, 8, generator=g)
    exact = dq.double() @ dd.double().T
    _close(fs.dense_dot(dq, dd), exact)
    _close(fs.dense_dot(dq[[0, 0, 1]], dd, mode="pairs"), exact[[0, 0, 1], [0, 1, 2]])
    sq, sd = [{1: 1.0, 7: 2.0}, {3: 0.5}], [{7: 1.0}, {3: 2.0, 1: 1.0}, {}]
    _close(fs.sparse_dot(sq, sd), [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    _close(fs.sparse_dot(fs.SparseVectors.from_dicts(sq, vocab_size=8), fs.SparseVectors.from_dicts(sd, vocab_size=8)),
           [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    # the public paths built on them
    cos = torch.nn.functional.normalize(dq.double(), dim=1) @ torch.nn.functional.normalize(dd.double(), dim=1).T
    _close(compat.similarity(dq, dd, "cosine"), cos)
    _close(compat.similarity(dq, dd, "dot"), exact)
    _close(compat.similarity(qs, ds, "maxsim"), ref)
    _close(compat.colbert_score(qs[0], ds[0]), naive_maxsim(qs[:1], ds[:1], reduce="mean")[0, 0])
    _close(compat.compute_lexical_matching_score(sq, sd), [[2.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    got = compat.rerank([[10, 11, 12]], [qs[0]], [ds])
    assert [r["id"] for r in got[0]] == [10 + int(i) for i in torch.argsort(ref[0], descending=True)]
    _close(score_embeddings(dq, dd, groups=[0, 2, 3]), exact[[0, 0, 1], [0, 1, 2]])
    texts = ["the quick fox", "a lazy dog", "fox and dog"]
    dense_q, dense_d = _vec("fox", 1, "dense")[0].double(), torch.stack([_vec(t, 1, "dense")[0] for t in texts]).double()
    got = Reranker(DenseEncoder()).rank("fox", texts)
    _close([r["score"] for r in sorted(got, key=lambda r: r["corpus_id"])], dense_d @ dense_q)
    for mode in ("dense", "sparse", "colbert"):
        assert len(Reranker(BGEM3(), mode=mode).rank("fox", texts)) == 3
    scores = compat.compute_score(BGEM3(), [("fox", t) for t in texts])
    _close(scores["dense"], dense_d @ dense_q)
    _, top = fs.retrieve(qs, ds, 2)  # FDE candidates (dense_dot) then exact MaxSim: every document a candidate here
    assert torch.equal(top, torch.topk(ref, 2, dim=1).indices)


def test_env_variable_naming_no_backend_is_an_error(monkeypatch):
    monkeypatch.setenv("FUSEDSCORE_BACKEND", "fast")
    with pytest.raises(RuntimeError, match=r"dense_dot: FUSEDSCORE_BACKEND must be one of \(triton, native, reference, "
                                           r"torch\), got 'fast'"):
        fs.dense_dot(torch.ones(1, 2), torch.ones(1, 2))


def test_explicit_backend_argument_stays_strict(monkeypatch):
    monkeypatch.delenv("FUSEDSCORE_BACKEND", raising=False)
    with pytest.raises(RuntimeError, match=r"dense_dot: backend must be one of \(triton, torch, reference\), got "
                                           r"'native'"):
        fs.dense_dot(torch.ones(1, 2), torch.ones(1, 2), backend="native")
