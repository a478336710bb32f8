"""Encoder behaviour without peers: input order, batching, truncation counts, bad input, format detection.

Expected values come from first principles (a direct transformers forward pass on one text, the
tokenizer's own lengths), never from the encoder under test run another way.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from fusedscore.testing import tiny_models as T
from _tol import ATOL, RTOL, key_for

pytestmark = pytest.mark.encoders

encoders = pytest.importorskip("fusedscore.encoders", reason="fusedscore.encoders needs transformers")
from fusedscore import MultiVectors, SparseVectors  # noqa: E402

TOL = RTOL[key_for(torch.float32)] + ATOL


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_behaviour")
    return {
        "bgem3": T.build_bgem3(root / "bgem3"),
        "colbert": T.build_colbert(root / "colbert"),
        "splade": T.build_splade(root / "splade"),
        "splade_st": T.build_splade(root / "splade_st", st_format=True),
        "dense": T.build_dense(root / "dense", pooling="max"),
        "cross": T.build_cross_encoder(root / "cross"),
        "cross3": T.build_cross_encoder(root / "cross3", num_labels=3),
    }


@pytest.fixture(scope="module")
def models(dirs):
    return {k: encoders.load(v, device="cpu") for k, v in dirs.items()}


def test_load_detects_every_format(dirs, models):
    expect = {"bgem3": "BGEM3", "colbert": "ColBERT", "splade": "Splade", "splade_st": "Splade",
              "dense": "DenseEncoder", "cross": "CrossEncoder", "cross3": "CrossEncoder"}
    for k, cls in expect.items():
        assert type(models[k]).__name__ == cls, k
        assert models[k].device == torch.device("cpu") and models[k].tokenizer is not None


def test_dense_matches_direct_forward(dirs, models):
    """Max pooling + normalisation computed by hand from one unpadded forward pass per text."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(dirs["dense"]))
    model = AutoModel.from_pretrained(str(dirs["dense"])).eval()
    got = models["dense"].encode(T.TEXTS, batch_size=3)
    for i, text in enumerate(T.TEXTS):
        enc = tok(text, truncation=True, max_length=64, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0]
        ref = torch.nn.functional.normalize(h.max(0).values, dim=0)
        assert torch.allclose(got[i], ref, atol=TOL, rtol=0), i


@pytest.mark.parametrize("batch_size", [1, 2, 3, 64])
def test_results_in_input_order_whatever_the_batching(models, batch_size):
    texts = list(reversed(T.TEXTS)) + T.TEXTS[:3]
    one = [models["dense"].encode([t])[0] for t in texts]
    got = models["dense"].encode(texts, batch_size=batch_size)
    for i in range(len(texts)):
        assert torch.allclose(got[i], one[i], atol=TOL, rtol=0), i
    cv = models["colbert"].encode(texts, is_query=False, batch_size=batch_size)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(cv[i], models["colbert"].encode([t], is_query=False)[0], atol=TOL, rtol=0)


def test_truncation_is_counted_and_logged(models, caplog):
    m = models["dense"]
    long = "word " * 500
    n_tokens = len(m.tokenizer(long)["input_ids"])
    assert n_tokens > 64
    with caplog.at_level(logging.WARNING, logger="fusedscore.encoders"):
        m.encode(["short", long, long], max_length=16)
    assert m.last_truncated == 2
    assert "truncated 2 of 3 texts to 16 tokens" in caplog.text
    m.encode(["short"])
    assert m.last_truncated == 0
    # a limit above the model's is capped at it, not passed through to overflow the position table
    m.encode([long], max_length=10_000)
    assert m.last_truncated == 1 and m._limit(10_000, "max_length") == T.MAX_POSITIONS


def test_bgem3_truncation_and_lengths(models):
    m = models["bgem3"]
    out = m.encode(T.TEXTS, max_length=20, return_dense=False, return_colbert_vecs=True)
    lens = [len(m.tokenizer(t)["input_ids"]) for t in T.TEXTS]
    assert m.last_truncated == sum(n > 20 for n in lens)
    assert [v.shape[0] for v in out["colbert_vecs"]] == [min(n, 20) - 1 for n in lens]
    assert out["dense_vecs"] is None and out["lexical_weights"] is None


def test_empty_list_gives_empty_results_of_the_right_type(models):
    b = models["bgem3"].encode([], return_sparse=True, return_colbert_vecs=True)
    assert b["dense_vecs"].shape == (0, 32) and b["lexical_weights"] == [] and b["colbert_vecs"] == []
    c = models["bgem3"].encode([], return_sparse=True, return_colbert_vecs=True, as_containers=True)
    assert c["dense_vecs"].shape == (0, 32) and len(c["lexical_weights"]) == 0 and len(c["colbert_vecs"]) == 0
    assert isinstance(c["colbert_vecs"], MultiVectors) and c["colbert_vecs"].dim == 32
    assert models["colbert"].encode([], is_query=True) == []
    mv = models["colbert"].encode([], is_query=False, as_containers=True)
    assert isinstance(mv, MultiVectors) and len(mv) == 0 and mv.dim == models["colbert"].dim
    sv = models["splade"].encode([])
    assert isinstance(sv, SparseVectors) and len(sv) == 0 and sv.vocab_size == models["splade"].vocab_size
    assert models["dense"].encode([]).shape == (0, models["dense"].dim)
    p = models["cross"].predict([])
    assert p.shape == (0,) and p.dtype == np.float32


def test_empty_string_encodes_special_tokens_only(models):
    b = models["bgem3"].encode([""], return_sparse=True, return_colbert_vecs=True)
    assert b["lexical_weights"] == [{}] and b["colbert_vecs"][0].shape == (1, 32)  # only </s>
    assert models["colbert"].encode([""], is_query=False)[0].shape == (3, models["colbert"].dim)
    assert models["colbert"].encode([""], is_query=True)[0].shape == (models["colbert"].query_length,
                                                                      models["colbert"].dim)
    assert torch.isfinite(models["dense"].encode([""])).all()


def test_splade_weights_are_log1p_relu_max_of_logits(dirs, models):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(dirs["splade"]))
    mlm = AutoModelForMaskedLM.from_pretrained(str(dirs["splade"])).eval()
    got = models["splade"].encode(T.TEXTS[:4], batch_size=3)
    for i, t in enumerate(T.TEXTS[:4]):
        with torch.no_grad():
            logits = mlm(**tok(t, return_tensors="pt")).logits[0]
        ref = torch.log1p(torch.relu(logits)).max(0).values
        assert torch.allclose(got.to_dense()[i], ref, atol=TOL, rtol=0), i
    assert bool((got.values > 0).all())
    terms = models["splade"].decode(got, top_k=3)
    assert len(terms) == 4 and all(len(r) == 3 for r in terms)
    assert all(r[0][1] >= r[1][1] >= r[2][1] for r in terms)


def test_bgem3_lexical_weights_drop_special_tokens(models):
    m = models["bgem3"]
    out = m.encode(T.TEXTS, return_dense=False, return_sparse=True, as_containers=True)["lexical_weights"]
    special = {m.tokenizer.cls_token_id, m.tokenizer.eos_token_id, m.tokenizer.pad_token_id, m.tokenizer.unk_token_id}
    assert not set(out.indices.tolist()) & special
    assert bool((out.values > 0).all())


def test_cross_encoder_multi_label_needs_label_index(dirs, models):
    m = models["cross3"]
    pairs = [("a man", "eats food"), ("paris", "france")]
    with pytest.raises(ValueError, match=r"CrossEncoder.predict: label_index must be given for a model with num_labels=3"):
        m.predict(pairs)
    raw = m.predict(pairs, label_index=2)
    assert raw.shape == (2,)
    m1 = encoders.CrossEncoder.from_pretrained(dirs["cross3"], device="cpu", label_index=2)
    np.testing.assert_array_equal(m1.predict(pairs), raw)
    with pytest.raises(ValueError, match=r"label_index must be an int in \[0, 3\), got 3"):
        m.predict(pairs, label_index=3)
    with pytest.raises(ValueError, match=r"pairs\[0\] must be a \(str, str\) pair"):
        m.predict([("only one",)], label_index=0)


def test_bad_directories_raise_clear_errors(dirs, tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=r"path must be an existing local model directory.*nope"):
        encoders.load(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"is not a transformers model directory: config.json is missing"):
        encoders.load(empty)
    broken = tmp_path / "bgem3_no_sparse"
    shutil.copytree(dirs["bgem3"], broken)
    (broken / "sparse_linear.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"bgem3_no_sparse.*must contain sparse_linear.pt"):
        encoders.BGEM3.from_pretrained(broken)
    with pytest.raises(FileNotFoundError, match=r"must contain modules.json"):
        encoders.ColBERT.from_pretrained(dirs["splade"])
    with pytest.raises(ValueError, match=r"must hold a masked-LM model"):
        encoders.Splade.from_pretrained(dirs["cross"])


def test_bad_arguments_raise(models):
    with pytest.raises(TypeError, match=r"texts must be a list of str, got a single str"):
        models["dense"].encode("a text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, got int"):
        models["dense"].encode(["a", 3])
    with pytest.raises(ValueError, match=r"batch_size must be a positive int, got 0"):
        models["splade"].encode(["a"], batch_size=0)
    with pytest.raises(TypeError, match=r"is_query must be a bool"):
        models["colbert"].encode(["a"], is_query="yes")
    with pytest.raises(ValueError, match=r"at least one of return_dense, return_sparse, return_colbert_vecs"):
        models["bgem3"].encode(["a"], return_dense=False)
    with pytest.raises(ValueError, match=r"max_length must be an int >= 2, got 1"):
        models["bgem3"].encode(["a"], max_length=1)
    with pytest.raises(ValueError, match=r"needs a CUDA device"):
        encoders.DenseEncoder.from_pretrained(models["dense"].path, device="cpu", dtype=torch.float16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_autocast_close_to_fp32(dirs, dtype):
    cpu = encoders.BGEM3.from_pretrained(dirs["bgem3"], device="cpu")
    gpu = encoders.BGEM3.from_pretrained(dirs["bgem3"], device="cuda", dtype=dtype)
    kw = dict(return_sparse=True, return_colbert_vecs=True, as_containers=True)
    a, b = cpu.encode(T.TEXTS, **kw), gpu.encode(T.TEXTS, **kw)
    assert b["dense_vecs"].device.type == "cuda" and b["colbert_vecs"].device.type == "cuda"
    assert b["dense_vecs"].dtype == torch.float32
    tol = 3e-2  # half-precision matmuls through 2 layers; a layout or ordering bug gives O(1) errors
    assert torch.allclose(b["dense_vecs"].cpu(), a["dense_vecs"], atol=tol)
    assert torch.allclose(b["colbert_vecs"].values.cpu(), a["colbert_vecs"].values, atol=tol)


def test_bench_encoders_rows(dirs):
    from fusedscore.bench.encoders import mixed_texts, run

    texts = mixed_texts(50)
    assert texts == mixed_texts(50) and len({len(t.split()) for t in texts}) > 10  # seeded and mixed-length
    rows = run(model_dir=str(dirs["dense"]), n_texts=6, batch_size=4, budget_s=0.05)
    assert rows[0]["impl"] == "fusedscore" and rows[0]["name"] == "dense_encode"
    for r in rows:
        assert {"name", "impl", "median_s", "p20_s", "p80_s", "texts_per_s", "ratio_vs_peer"} <= set(r)
        assert r["p20_s"] <= r["median_s"] <= r["p80_s"] and r["texts_per_s"] > 0
    if len(rows) == 2:  # sentence-transformers installed: its row is the reference
        assert rows[1]["ratio_vs_peer"] == 1.0
        assert rows[0]["ratio_vs_peer"] == pytest.approx(rows[0]["texts_per_s"] / rows[1]["texts_per_s"])
    with pytest.raises(ValueError, match=r"model_dir must be a dense, splade or bgem3 model, got a cross model"):
        run(model_dir=str(dirs["cross"]), n_texts=2)
