"""Encoder behaviour without peers: input order, batching, truncation counts, bad input, format detection.

Expected values come from first principles (a direct transformers forward pass on one text, the
tokenizer's own lengths), never from the encoder under test run another way.
"""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pytest
import torch

from fusedscore import MultiVectors, SparseVectors, encoders
from fusedscore.testing import tiny_models as T
from _tol import ATOL, RTOL, key_for

pytestmark = pytest.mark.encoders


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


def test_sorted_batches_cut_where_padding_costs_more_than_a_call():
    from itertools import combinations

    from fusedscore.encoders._base import sorted_batches

    def cost(batches, lengths, c):
        return sum(len(b) * lengths[b].max() + c for b in batches)

    rng = np.random.default_rng(0)
    for trial in range(30):
        n, bs, c = int(rng.integers(1, 9)), int(rng.integers(1, 5)), float(rng.choice([0.5, 4.0, 64.0]))
        lengths = rng.integers(1, 60, size=n)
        got = sorted_batches(lengths, bs, c)
        flat = np.concatenate(got)
        assert sorted(flat.tolist()) == list(range(n)) and all(1 <= len(b) <= bs for b in got)
        assert flat.tolist() == np.argsort(-lengths, kind="stable").tolist()  # longest first, stable
        # brute force over every way to cut the sorted order into runs of at most bs: the DP is optimal
        order = np.argsort(-lengths, kind="stable")
        best = min(cost([order[a:b] for a, b in zip((0, *cut), (*cut, n))], lengths, c)
                   for k in range(n) for cut in combinations(range(1, n), k)
                   if all(b - a <= bs for a, b in zip((0, *cut), (*cut, n))))
        assert cost(got, lengths, c) == pytest.approx(best), (trial, lengths, bs, c)
    same = np.full(10, 7)
    assert sorted(len(b) for b in sorted_batches(same, 4, 64.0)) == [2, 4, 4]  # equal lengths: no extra call
    assert [len(b) for b in sorted_batches(np.arange(10), 4)] == [4, 4, 2]  # None: full batches
    # one long text among short ones: it gets its own forward call instead of padding 31 others to 500
    mixed = np.array([500] + [10] * 31)
    assert [len(b) for b in sorted_batches(mixed, 32, 64.0)] == [1, 31]
    assert sorted_batches(np.zeros(0, dtype=np.int64), 4, 64.0) == []


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
    assert m.last_truncated == 1 and m._limit(10_000, "max_length", "test") == T.MAX_POSITIONS


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


def _copy_without(src, dst, *names):
    shutil.copytree(src, dst)
    for n in names:
        p = dst / n
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return dst


def _listing(d) -> str:
    return ", ".join(sorted(p.name for p in d.iterdir()))


def test_missing_tokenizer_files_raise_instead_of_an_empty_tokenizer(dirs, tmp_path):
    # transformers 5 loads a directory without tokenizer files as a 5-token tokenizer: every word [UNK]
    d = _copy_without(dirs["dense"], tmp_path / "dense_no_tok", "tokenizer.json", "tokenizer_config.json")
    msg = (f"DenseEncoder.from_pretrained: {str(d)!r} must contain tokenizer files (tokenizer.json, or a vocabulary: "
           f"vocab.txt, vocab.json + merges.txt or a sentencepiece *.model), got {_listing(d)}")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        encoders.load(d)
    # tokenizer_config.json alone names a class but holds no vocabulary: the same error
    c = _copy_without(dirs["bgem3"], tmp_path / "bgem3_cfg_only_tok", "tokenizer.json")
    with pytest.raises(ValueError, match=f"^BGEM3.from_pretrained: {re.escape(repr(str(c)))} must contain tokenizer files"):
        encoders.BGEM3.from_pretrained(c)


def test_tokenizer_larger_than_the_embedding_table_raises(dirs, tmp_path):
    d = _copy_without(dirs["cross"], tmp_path / "cross_small_vocab")
    cfg = json.loads((d / "config.json").read_text())
    n = cfg["vocab_size"]
    cfg["vocab_size"] = n - 10
    (d / "config.json").write_text(json.dumps(cfg))
    msg = (f"CrossEncoder.from_pretrained: the tokenizer of {str(d)!r} must fit the model's embedding table "
           f"(config.json vocab_size={n - 10}), got {n} tokens; ids past it cannot be embedded")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        encoders.load(d)


def test_missing_or_corrupt_weights_name_the_file(dirs, tmp_path):
    d = _copy_without(dirs["splade"], tmp_path / "splade_no_weights", "model.safetensors")
    msg = (f"Splade.from_pretrained: {str(d)!r} must contain the model weights of a transformers AutoModelForMaskedLM "
           f"checkpoint (model.safetensors or pytorch_model.bin), got {_listing(d)}")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(msg)}$"):
        encoders.load(d)
    c = _copy_without(dirs["splade"], tmp_path / "splade_bad_weights")
    (c / "model.safetensors").write_bytes(b"not safetensors")
    msg = (f"Splade.from_pretrained: {str(c / 'model.safetensors')!r} must hold the weights of a transformers "
           "AutoModelForMaskedLM checkpoint, got an unreadable file (SafetensorError: ")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}.+\\)$"):
        encoders.load(c)


@pytest.mark.parametrize("head", ["colbert_linear.pt", "sparse_linear.pt"])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_bgem3_head_file_names_it(dirs, tmp_path, head, damage):
    d = _copy_without(dirs["bgem3"], tmp_path / f"bgem3_{damage}")
    data = (d / head).read_bytes()
    (d / head).write_bytes(b"not a torch file" if damage == "garbage" else data[: len(data) // 2])
    why = ("UnpicklingError: not a torch.save file of tensors" if damage == "garbage" else
           "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory")
    msg = (f"BGEM3.from_pretrained: {str(d / head)!r} must be a torch.save'd Linear state dict (FlagEmbedding's "
           f"BGE-M3 layout), got an unreadable file ({why})")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        encoders.load(d)


def test_missing_dense_module_names_the_format(dirs, tmp_path):
    d = _copy_without(dirs["colbert"], tmp_path / "colbert_no_dense", "1_Dense")
    msg = (f"ColBERT.from_pretrained: modules.json lists a Dense module at '1_Dense', so {str(d / '1_Dense')!r} must "
           "be a directory with config.json and model.safetensors (PyLate layout), but it is missing")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(msg)}$"):
        encoders.load(d)
    w = _copy_without(dirs["colbert"], tmp_path / "colbert_no_dense_weights", "1_Dense/model.safetensors")
    msg = (f"ColBERT.from_pretrained: Dense module {str(w / '1_Dense')!r} must contain model.safetensors or "
           "pytorch_model.bin (PyLate layout), found neither")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(msg)}$"):
        encoders.load(w)
    c = _copy_without(dirs["colbert"], tmp_path / "colbert_bad_dense_weights")
    (c / "1_Dense" / "model.safetensors").write_bytes(b"xx")
    msg = (f"ColBERT.from_pretrained: {str(c / '1_Dense' / 'model.safetensors')!r} must hold the Dense module's "
           "weights (PyLate layout), got an unreadable file (SafetensorError: Error while deserializing header: ")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}"):
        encoders.load(c)
    n = _copy_without(dirs["colbert"], tmp_path / "colbert_narrow_dense")
    cfg = json.loads((n / "1_Dense" / "config.json").read_text())
    cfg["in_features"] = 8
    (n / "1_Dense" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"^ColBERT.from_pretrained: Dense weight linear.weight must have shape "
                                         r"\(16, 8\) to match its config.json \(in_features=8, out_features=16\), "
                                         r"got \(16, 32\)$"):
        encoders.load(n)
    from safetensors.torch import save_file

    save_file({"linear.weight": torch.zeros(16, 8)}, n / "1_Dense" / "model.safetensors")
    with pytest.raises(ValueError, match=r"^ColBERT.from_pretrained: Dense module 0 must take 32 input features "
                                         r"\(the previous module's output\), got in_features=8$"):
        encoders.load(n)


def test_missing_pooling_config_names_the_format(dirs, tmp_path):
    d = _copy_without(dirs["dense"], tmp_path / "dense_no_pooling", "1_Pooling")
    msg = (f"DenseEncoder.from_pretrained: modules.json lists a Pooling module at '1_Pooling', so "
           f"{str(d / '1_Pooling' / 'config.json')!r} must exist (sentence-transformers layout: the pooling mode, "
           "e.g. pooling_mode_mean_tokens), but it is missing")
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(msg)}$"):
        encoders.load(d)
    j = _copy_without(dirs["dense"], tmp_path / "dense_bad_modules")
    (j / "modules.json").write_text("{not json")
    msg = (f"encoders: {str(j / 'modules.json')!r} must be a JSON file, got unparseable content "
           "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        encoders.load(j)


def test_single_string_gives_single_results(models):
    t = T.TEXTS[0]
    d = models["dense"].encode(t)
    assert d.shape == (models["dense"].dim,)
    assert torch.equal(d, models["dense"].encode([t])[0])
    q = models["colbert"].encode(t, is_query=True)
    assert isinstance(q, np.ndarray) and q.shape == (models["colbert"].query_length, models["colbert"].dim)
    np.testing.assert_array_equal(q, models["colbert"].encode([t], is_query=True)[0])
    mv = models["colbert"].encode(t, is_query=False, as_containers=True)
    assert isinstance(mv, MultiVectors) and len(mv) == 1
    sv = models["splade"].encode(t)
    assert isinstance(sv, SparseVectors) and len(sv) == 1
    assert sv.to_dicts() == models["splade"].encode([t]).to_dicts()
    kw = dict(return_sparse=True, return_colbert_vecs=True)
    one, many = models["bgem3"].encode(t, **kw), models["bgem3"].encode([t], **kw)
    assert one["dense_vecs"].shape == (32,) and isinstance(one["lexical_weights"], dict)
    np.testing.assert_array_equal(one["dense_vecs"], many["dense_vecs"][0])
    assert one["lexical_weights"] == many["lexical_weights"][0]
    np.testing.assert_array_equal(one["colbert_vecs"], many["colbert_vecs"][0])
    assert models["bgem3"].encode(t, return_dense=False, return_sparse=True)["dense_vecs"] is None
    cont = models["bgem3"].encode(t, as_containers=True, **kw)  # containers hold rows: one row, never unwrapped
    assert cont["dense_vecs"].shape == (1, 32) and len(cont["lexical_weights"]) == 1 and len(cont["colbert_vecs"]) == 1
    s = models["cross"].predict(("a man", "eats food"))
    assert isinstance(s, np.float32) and s == models["cross"].predict([("a man", "eats food")])[0]


def test_bad_arguments_raise(models):
    with pytest.raises(TypeError, match=r"DenseEncoder.encode: texts must be a str or a list of str, got bytes"):
        models["dense"].encode(b"a text")
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


def test_unavailable_cuda_device_fails_at_construction(dirs, models):
    """Issue 11: device="cuda" without a GPU failed late, with torch's AssertionError at the first forward.
    One index past the visible GPUs is unavailable on every machine (cuda:0 where there is none)."""
    dev = f"cuda:{torch.cuda.device_count()}"
    msg = rf"device must be an available device, got '{dev}' but (CUDA is not available|only \d+ CUDA device)"
    with pytest.raises(RuntimeError, match=r"^DenseEncoder.from_pretrained: " + msg):
        encoders.DenseEncoder.from_pretrained(dirs["dense"], device=dev)
    with pytest.raises(RuntimeError, match=r"^ColBERT.from_pretrained: " + msg):
        encoders.load(dirs["colbert"], device=dev)
    with pytest.raises(RuntimeError, match=r"^Splade.to: " + msg):
        models["splade"].to(dev)
    assert models["splade"].device == torch.device("cpu")


def test_progress_bar_is_drawn_only_on_a_terminal(models, capsys, monkeypatch):
    """Issue 11: with show_progress_bar=True a bar went into logs and pipes too (stderr not a terminal)."""
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    m = models["dense"]
    m.encode(T.TEXTS, show_progress_bar=True)
    assert capsys.readouterr().err == ""  # pytest's capture is not a terminal
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    m.encode(T.TEXTS, show_progress_bar=True)
    assert "DenseEncoder encode" in term.getvalue()
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    m.encode(T.TEXTS, show_progress_bar=False)
    m.encode(T.TEXTS)  # the default (show_progress_bar attribute False)
    assert quiet.getvalue() == ""


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


# ----------------------------------------------------------------------------- very long texts (issue 11)
# Each text is far past the first character cap, and each defeats a naive cut differently.
LONG_TEXTS = [
    "word " * 1000,
    " " * 60_000 + "tail words after a whitespace run " * 40,  # the first cap holds no token at all
    "food " * 300 + "q" * 30_000 + " end",  # the cut lands inside a word: [UNK] whole, pieces when cut
    "x" * 70_000,  # one word: no safe cut exists, the whole text goes to the tokenizer
    "Eating,food!! <mask> [SEP] caf\u00e9 " * 200,  # punctuation, special-token text, accents
    "a" + "\u0301" * 20_000 + " after " * 10,  # combining marks across the cut
]


def _reference_ids(tokenizer, texts, max_length, pairs=None):
    """transformers' own tokenisation of the whole texts: the ground truth for the capped one."""
    kw = dict(truncation=True if pairs is None else "longest_first", max_length=max_length)
    enc = tokenizer(texts, **kw) if pairs is None else tokenizer(texts, pairs, **kw)
    return enc["input_ids"]


@pytest.mark.parametrize("name", ["dense", "bgem3"])
@pytest.mark.parametrize("max_length", [5, 16, 64])
def test_long_texts_give_the_tokens_of_the_whole_text(models, name, max_length):
    m = models[name]
    tok = m._tokenize(LONG_TEXTS + ["short text"], max_length)
    assert tok.ids == _reference_ids(m.tokenizer, LONG_TEXTS + ["short text"], max_length)
    assert tok.truncated == sum(len(ids) > max_length for ids in m.tokenizer(LONG_TEXTS + ["short text"])["input_ids"])


@pytest.mark.parametrize("max_length", [9, 16, 33, 64])  # odd and even budgets: longest_first splits differently
def test_long_pairs_give_the_tokens_of_the_whole_pair(models, max_length):
    """Every pair with a text past the cap: the kept tokens and which text gets the odd one match the uncut
    pair. (The reference tokenises whole pairs, whose overflow windows multiply: the texts stay at a few
    thousand characters, and two long texts only meet at the largest limit.)"""
    m = models["cross"]
    short, mid = "a man is eating food", "late interaction models " * 4
    firsts, seconds = [], []
    for long in LONG_TEXTS:
        firsts += [long, short, long, mid]
        seconds += [short, long, mid, long]
    if max_length >= 64:  # both texts long: the one with more characters also has more tokens here
        a, b = "late interaction models " * 180, "word " * 900
        firsts += [a, b, a]
        seconds += [b, a, a]
    tok = m._tokenize(firsts, max_length, pairs=seconds)
    assert tok.ids == _reference_ids(m.tokenizer, firsts, max_length, pairs=seconds)


def _peak_rss_growth(fn) -> int:
    """Bytes the process's peak resident memory grows by while ``fn`` runs (Linux: VmHWM, reset first)."""
    def hwm() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the peak to the current resident size
        base = hwm()
    except (OSError, StopIteration) as e:
        pytest.skip(f"needs Linux /proc peak-memory reset: {e!r}")
    fn()
    return hwm() - base


def test_a_huge_text_takes_memory_bounded_by_the_limit_not_its_length(models):
    """Issue 11: a 50 MB line took 11 GB (the tokenizer reads all of it before truncating, ~220 B a char).
    8 MB of text took ~1.8 GB before the cap; now the tokenizer sees a few thousand characters."""
    m = models["dense"]
    text = "word " * 1_600_000
    ref = m.encode(["word " * 200])  # same first 64 tokens
    out = {}
    grew = _peak_rss_growth(lambda: out.setdefault("v", m.encode([text])))
    assert grew < 128 << 20, f"peak RSS grew by {grew >> 20} MiB for an {len(text) >> 20} MiB text"
    assert torch.allclose(out["v"], ref, atol=TOL, rtol=0) and m.last_truncated == 1
