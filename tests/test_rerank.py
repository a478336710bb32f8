"""Reranker: ranking format and order, one kernel call per batch, memory chunking, fusion rules, bad input.

Models here are small deterministic stubs with the encoders' contract (class names as in
fusedscore.encoders), so the API is tested without transformers; expected scores are computed in the
tests with plain float64 formulas. Tests with the real tiny models run when fusedscore.encoders exists.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _tol import ENCODER_RTOL, PEER_ATOL, REGROUPED_RTOL, RTOL, assert_scores_close, key_for
from fusedscore import MultiVectors, SparseVectors
from fusedscore.reranker import Reranker, score_embeddings

import fusedscore.scoring as scoring  # the kernel calls of every scoring path go through it

FP32 = RTOL[key_for(torch.float32)]

DIM = 8
VOCAB = 50


def _vecs(text: str, n: int, salt: str = "") -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32((salt + text).encode()))
    return torch.nn.functional.normalize(torch.randn(n, DIM, generator=g), dim=-1)


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _lex(text: str) -> dict[int, float]:
    """Term id = crc32(word) % VOCAB, weight = 0.1 + len(word) / 10, max-merged (BGE-M3's rule)."""
    out: dict[int, float] = {}
    for w in text.lower().split():
        i = zlib.crc32(w.encode()) % VOCAB
        out[i] = max(out.get(i, 0.0), 0.1 + len(w) / 10)
    return out


class ColBERT:
    def __init__(self):
        self.calls = []

    def encode(self, texts, is_query, batch_size=32, as_containers=False):
        self.calls.append((list(texts), is_query))
        items = [_vecs(t, _tokens(t), "q" if is_query else "d") for t in texts]
        return MultiVectors.from_list(items, dim=DIM) if as_containers else [x.numpy() for x in items]


class Splade:
    def encode(self, texts, batch_size=32, is_query=False):
        return SparseVectors.from_dicts([_lex(t) for t in texts], vocab_size=VOCAB)


class DenseEncoder:
    def encode(self, texts, batch_size=32, normalize=None):
        return torch.stack([_vecs(t, 1, "dense")[0] for t in texts]) if texts else torch.zeros(0, DIM)


class BGEM3:
    def __init__(self):
        self.encoded = []

    def encode(self, texts, batch_size=32, max_length=8192, return_dense=True, return_sparse=False,
               return_colbert_vecs=False, as_containers=False):
        self.encoded += list(texts)
        out = {"dense_vecs": torch.stack([_vecs(t, 1, "dense")[0] for t in texts]),
               "lexical_weights": SparseVectors.from_dicts([_lex(t) for t in texts], vocab_size=VOCAB),
               "colbert_vecs": MultiVectors.from_list([_vecs(t, _tokens(t)) for t in texts], dim=DIM)}
        return out


class CrossEncoder:
    def __init__(self, num_labels=1, nan_for=None, two_d=False):
        self.num_labels, self.nan_for, self.two_d = num_labels, nan_for, two_d

    def predict(self, pairs, batch_size=32, activation=None):
        s = np.array([len(set(q.split()) & set(d.split())) - 0.01 * len(d) for q, d in pairs], dtype=np.float32)
        if self.nan_for is not None:
            s[[d == self.nan_for for _, d in pairs]] = np.nan
        return np.stack([s, s], 1) if self.two_d else s


# ----------------------------------------------------------------------------- oracles (float64)
def maxsim64(q: str, d: str, reduce: str = "sum", salt_q="q", salt_d="d") -> float:
    sim = _vecs(q, _tokens(q), salt_q).double() @ _vecs(d, _tokens(d), salt_d).double().T
    m = sim.max(1).values
    return float(m.sum() if reduce == "sum" else m.mean())


def sparse64(q: str, d: str) -> float:
    a, b = _lex(q), _lex(d)
    return float(sum(np.float64(np.float32(w)) * np.float64(np.float32(b[k])) for k, w in a.items() if k in b))


def dense64(q: str, d: str) -> float:
    return float(_vecs(q, 1, "dense").double()[0] @ _vecs(d, 1, "dense").double()[0])


QUERIES = ["the quick fox", "capital of france", "late interaction models"]
DOCS = [["the fox jumps", "a lazy dog", "quick quick fox runs fast", "nothing here"],
        ["paris is the capital of france", "france"],
        ["models score every token", "late models", "interaction", "dense pooling", "late interaction models win"]]


def _check_ranked(res, expected_scores, top_k=None):
    n = len(expected_scores)
    assert [r["corpus_id"] for r in res] == sorted(range(n), key=lambda i: -expected_scores[i])[:top_k]
    got = torch.tensor([r["score"] for r in res], dtype=torch.float64)
    ref = torch.tensor([expected_scores[r["corpus_id"]] for r in res], dtype=torch.float64)
    assert_scores_close(got, ref, ref.abs() + 1, key_for(torch.float32))
    assert all(isinstance(r["corpus_id"], int) and isinstance(r["score"], float) for r in res)


# ----------------------------------------------------------------------------- ranking
def test_rank_colbert_format_order_and_scores():
    r = Reranker(ColBERT())
    res = r.rank(QUERIES[0], DOCS[0], return_documents=True)
    _check_ranked(res, [maxsim64(QUERIES[0], d) for d in DOCS[0]])
    assert [x["text"] for x in res] == [DOCS[0][x["corpus_id"]] for x in res]
    assert set(res[0]) == {"corpus_id", "score", "text"}
    assert set(r.rank(QUERIES[0], DOCS[0])[0]) == {"corpus_id", "score"}


@pytest.mark.parametrize("model, oracle", [
    (Splade(), sparse64), (DenseEncoder(), dense64),
    (CrossEncoder(), lambda q, d: len(set(q.split()) & set(d.split())) - 0.01 * len(d))])
def test_rerank_batch_each_model_kind(model, oracle):
    res = Reranker(model).rerank_batch(QUERIES, DOCS, top_k=3)
    for q, docs, got in zip(QUERIES, DOCS, res):
        _check_ranked(got, [oracle(q, d) for d in docs], top_k=3)


def test_rerank_batch_is_one_kernel_call_and_encodes_each_text_once(monkeypatch):
    calls = []
    real = scoring.maxsim
    monkeypatch.setattr(scoring, "maxsim", lambda *a, **k: calls.append(k) or real(*a, **k))
    model = ColBERT()
    docs = [DOCS[0] + [DOCS[0][0]], DOCS[1], DOCS[2]]  # a duplicate candidate
    res = Reranker(model).rerank_batch(QUERIES, docs)
    assert len(calls) == 1 and calls[0]["mode"] == "pairs"
    doc_calls = [c for c, is_q in model.calls if not is_q]
    assert len(doc_calls) == 1 and len(doc_calls[0]) == len(set(sum(docs, [])))
    for q, d, got in zip(QUERIES, docs, res):
        _check_ranked(got, [maxsim64(q, x) for x in d])
        assert got == Reranker(ColBERT()).rank(q, d)  # batching never changes a query's ranking


def test_memory_budget_chunks_give_the_same_results(monkeypatch):
    calls = []
    real = scoring.maxsim
    monkeypatch.setattr(scoring, "maxsim", lambda *a, **k: calls.append(1) or real(*a, **k))
    full = Reranker(ColBERT()).rerank_batch(QUERIES, DOCS)
    n_full = len(calls)
    small = Reranker(ColBERT(), max_memory=64).rerank_batch(QUERIES, DOCS)  # one query per chunk
    assert n_full == 1 and len(calls) - n_full == len(QUERIES)
    assert small == full


@pytest.mark.parametrize("max_memory", [1, 200, 1 << 30])
def test_score_embeddings_chunked_equals_oracle(max_memory):
    g = torch.Generator().manual_seed(0)
    lens_q, lens_d, groups = [3, 1, 4], [2, 5, 1, 3, 4, 2], [0, 2, 2, 6]
    q = MultiVectors.from_list([torch.randn(n, DIM, generator=g) for n in lens_q])
    d = MultiVectors.from_list([torch.randn(n, DIM, generator=g) for n in lens_d])
    got = score_embeddings(q, d, groups=groups, max_memory=max_memory)
    qi = [0, 0, 2, 2, 2, 2]
    ref = torch.tensor([float((q[b].double() @ d[n].double().T).max(1).values.sum()) for n, b in enumerate(qi)])
    mag = torch.tensor([float((q[b].double().abs() @ d[n].double().abs().T).max(1).values.sum()) for n, b in enumerate(qi)])
    assert got.dtype == torch.float32
    assert_scores_close(got, ref, mag, key_for(torch.float32))


def test_score_embeddings_sparse_and_dense():
    qs = SparseVectors.from_dicts([{1: 2.0, 3: 1.0}, {2: 1.0}], vocab_size=5)
    ds = SparseVectors.from_dicts([{1: 0.5}, {3: 4.0, 1: 1.0}, {2: 3.0}], vocab_size=5)
    assert score_embeddings(qs, ds, groups=[0, 2, 3]).tolist() == [1.0, 6.0, 3.0]
    qd, dd = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 4.0], [0.0, -1.0]])
    assert score_embeddings(qd, dd, groups=[0, 2]).tolist() == [11.0, -2.0]
    with pytest.raises(ValueError, match="groups must be given when len\\(queries\\)=1 != len\\(docs\\)=2"):
        score_embeddings(qd, dd)
    with pytest.raises(TypeError, match="docs must be the same representation as queries"):
        score_embeddings(qd, ds, groups=[0, 3])


# ----------------------------------------------------------------------------- model kinds
class LateStub(ColBERT):
    """A ColBERT by inheritance, under another name."""


def _dense_named_colbert():
    class DenseEncoder(ColBERT):  # the nearest encoder name in the MRO decides: dense
        pass
    return DenseEncoder()


class LateDuck:  # no encoder name: encode's parameters tell the kind
    def encode(self, texts, is_query, batch_size=32, as_containers=False): ...


class SparseDuck:
    def encode(self, texts, batch_size=32, is_query=False): ...


class DenseDuck:
    def encode(self, texts, batch_size=32): ...


class M3Duck:
    def encode(self, texts, batch_size=32, return_colbert_vecs=False): ...


class PairDuck:
    def predict(self, pairs, batch_size=32): ...


@pytest.mark.parametrize("model, kind", [
    (ColBERT(), "colbert"), (Splade(), "splade"), (DenseEncoder(), "dense"), (BGEM3(), "bgem3"),
    (CrossEncoder(), "cross"), (LateStub(), "colbert"), (_dense_named_colbert(), "dense"), (LateDuck(), "colbert"),
    (SparseDuck(), "splade"), (DenseDuck(), "dense"), (M3Duck(), "bgem3"), (PairDuck(), "cross"), (object(), None)],
    ids=lambda x: x if isinstance(x, str) or x is None else type(x).__name__)
def test_model_kind_by_nearest_encoder_name_then_by_signature(model, kind):
    assert scoring.model_kind(model) == kind


def test_reranker_refuses_a_representation_its_signal_does_not_score():
    class DenseEncoder:  # token vectors [N, 2, D] under the dense signal: MaxSim would score them silently
        def encode(self, texts, batch_size=32):
            return torch.stack([_vecs(t, 2, "dense") for t in texts])

    with pytest.raises(TypeError, match="^Reranker.rank: DenseEncoder must give Tensor for the dense signal, got "
                                        "MultiVectors"):
        Reranker(DenseEncoder()).rank("q", ["a", "b"])


# ----------------------------------------------------------------------------- bad input
def test_empty_documents_and_large_top_k_and_duplicates():
    r = Reranker(ColBERT())
    assert r.rank("q", []) == []
    assert r.rerank_batch(["a", "b"], [[], ["x"]])[0] == []
    assert len(r.rank("q", ["a", "b"], top_k=10)) == 2
    res = r.rank("the fox", ["the fox", "dog", "the fox"])
    assert sorted(x["corpus_id"] for x in res) == [0, 1, 2]
    dup = [x for x in res if x["corpus_id"] in (0, 2)]
    assert dup[0]["score"] == dup[1]["score"] and [x["corpus_id"] for x in dup] == [0, 2]  # ties keep input order


@pytest.mark.parametrize("fusion", ["weighted", "rrf"])
def test_fused_signals_with_no_candidates(fusion):
    # several signals (a BGE-M3 mix) and no pair at all: [] per query, not a crash in the fusion
    r = Reranker(BGEM3(), fusion=fusion, normalize="minmax" if fusion == "weighted" else "none")
    assert r.rank("q", []) == []
    assert r.rerank_batch([], []) == []
    assert r.rerank_batch(["a", "b"], [[], []]) == [[], []]
    flat, groups = r.score(["a"], [[]])
    assert flat.numel() == 0 and groups == [0, 0]


def test_one_cross_encoder_under_two_labels_scores_both():
    # the same object twice (e.g. to weight it): both signals hold its scores, neither is silently "missing"
    ce = CrossEncoder()
    both = Reranker({"a": ce, "b": ce}).rank("the fox", ["the fox", "dog", "a fox"])
    one = Reranker(ce).rank("the fox", ["the fox", "dog", "a fox"])
    assert [x["corpus_id"] for x in both] == [x["corpus_id"] for x in one]
    assert [x["score"] for x in both] == pytest.approx([x["score"] for x in one], rel=REGROUPED_RTOL)


@pytest.mark.parametrize("top_k, exc, match", [(0, ValueError, "top_k must be > 0, got 0"),
                                               (-2, ValueError, "top_k must be > 0, got -2"),
                                               (1.5, TypeError, "top_k must be an int")])
def test_bad_top_k(top_k, exc, match):
    with pytest.raises(exc, match=match):
        Reranker(ColBERT()).rank("q", ["a"], top_k=top_k)


@pytest.mark.parametrize("call, where", [
    (lambda r: r.rank("q", ["a"], top_k=0), "Reranker.rank"),
    (lambda r: r.rank("q", ["a"], batch_size=0), "Reranker.rank"),
    (lambda r: r.rerank_batch(["q"], [["a"]], top_k=0), "Reranker.rerank_batch"),
    (lambda r: r.rerank_batch(["q"], [["a"]], batch_size=-1), "Reranker.rerank_batch"),
    (lambda r: r.score(["q"], [["a"]], batch_size=0), "Reranker.score"),
    (lambda r: r.score(["q", "r"], [["a"]]), "Reranker.score"),
    (lambda r: r.rerank_embeddings([torch.ones(1, DIM)], [torch.ones(1, DIM)], top_k=0), "Reranker.rerank_embeddings"),
], ids=["rank-top_k", "rank-batch_size", "rerank_batch-top_k", "rerank_batch-batch_size", "score-batch_size",
        "score-lists", "rerank_embeddings-top_k"])
def test_errors_name_the_method_called(call, where):
    """Issue 11: rank(top_k=0) used to say Reranker.rerank_batch; batch_size went unchecked to the encoder."""
    with pytest.raises(ValueError, match=f"^{where}: "):
        call(Reranker(ColBERT()))


def test_unavailable_cuda_device_fails_at_construction():
    """Issue 11: Reranker(device="cuda") without a GPU was accepted and failed late with an AssertionError."""
    dev = f"cuda:{torch.cuda.device_count()}"  # one past the visible GPUs: cuda:0 on a machine without any
    with pytest.raises(RuntimeError, match=rf"^Reranker: device must be an available device, got '{dev}'"):
        Reranker(ColBERT(), device=dev)


def test_bad_texts_and_options():
    r = Reranker(ColBERT())
    with pytest.raises(TypeError, match="^Reranker.rank: documents must be a list of str, got str"):
        r.rank("q", "not a list")
    with pytest.raises(TypeError, match="^Reranker.rank: documents\\[1\\] must be a str, got int"):
        r.rank("q", ["a", 3])
    with pytest.raises(TypeError, match="^Reranker.rank: query must be a str, got list"):
        r.rank(["q"], ["a"])
    with pytest.raises(TypeError, match="candidate_lists\\[0\\]\\[1\\] must be a str, got int"):
        r.rerank_batch(["q"], [["a", 3]])
    with pytest.raises(ValueError, match="candidate_lists must hold one list per query \\(2\\), got 1"):
        r.rerank_batch(["a", "b"], [["x"]])
    with pytest.raises(ValueError, match="mode must be one of \\['colbert'\\] for a ColBERT, got 'dense'"):
        Reranker(ColBERT(), mode="dense")
    with pytest.raises(ValueError, match="normalize must be one of"):
        Reranker(ColBERT(), normalize="l2")
    with pytest.raises(ValueError, match="weights must have one entry per signal"):
        Reranker(BGEM3(), weights=[1.0])
    with pytest.raises(TypeError, match="model_or_scorers must be a fusedscore encoder"):
        Reranker(object())


def test_cross_encoder_num_labels_and_shape():
    with pytest.raises(ValueError, match="cross-encoder must have num_labels == 1 .* got num_labels=3"):
        Reranker(CrossEncoder(num_labels=3))
    picked = CrossEncoder(num_labels=3)
    picked.label_index = 1  # the encoders' choice of one label column: then ranking is well defined
    assert Reranker(picked).signal_keys == ["cross"]
    r = Reranker(CrossEncoder(num_labels=None, two_d=True))
    with pytest.raises(ValueError, match="must return one score per pair, shape \\[2\\], got \\(2, 2\\)"):
        r.rank("q", ["a", "b"])


def test_nan_scores_never_reach_the_output():
    r = Reranker(CrossEncoder(nan_for="bad"))
    with pytest.warns(RuntimeWarning, match="1 NaN score\\(s\\)"):
        res = r.rank("a b", ["a", "bad", "a b"])
    assert [x["corpus_id"] for x in res] == [2, 0, 1] and res[-1]["score"] == float("-inf")
    assert not any(np.isnan(x["score"]) for x in res)


# ----------------------------------------------------------------------------- fusion
def test_bgem3_weighted_mix_is_flagembedding_weighted_mean():
    w = [0.4, 0.2, 0.4]  # dense, sparse, colbert: FlagEmbedding's order
    r = Reranker(BGEM3(), mode="colbert+sparse+dense", weights=w)
    assert r.signal_keys == ["dense", "sparse", "colbert"]
    for q, docs in zip(QUERIES, DOCS):
        exp = [(w[0] * dense64(q, d) + w[1] * sparse64(q, d) + w[2] * maxsim64(q, d, "mean", "", "")) / sum(w)
               for d in docs]
        _check_ranked(r.rank(q, docs), exp)


def test_bgem3_single_mode_uses_mean_maxsim():
    r = Reranker(BGEM3(), mode="colbert")
    _check_ranked(r.rank(QUERIES[2], DOCS[2]), [maxsim64(QUERIES[2], d, "mean", "", "") for d in DOCS[2]])


@pytest.mark.parametrize("normalize", ["minmax", "zscore", "sigmoid", "none"])
def test_single_candidate_and_ties_do_not_collapse(normalize):
    r = Reranker({"a": DenseEncoder(), "b": Splade()}, normalize=normalize)
    (one,) = r.rank("fox", ["the fox"])
    expected = {"minmax": 1.0, "zscore": 0.0}.get(normalize)
    if expected is not None:
        assert one["score"] == expected
    assert np.isfinite(one["score"])
    tied = r.rank("fox", ["same text", "same text"])
    assert tied[0]["score"] == tied[1]["score"] and np.isfinite(tied[0]["score"])


def test_minmax_fusion_values_by_hand():
    q, docs = QUERIES[0], DOCS[0]
    r = Reranker({"dense": DenseEncoder(), "sparse": Splade()}, normalize="minmax", weights={"dense": 3, "sparse": 1})
    dn = np.array([dense64(q, d) for d in docs])
    sp = np.array([sparse64(q, d) for d in docs])
    mm = lambda x: (x - x.min()) / (x.max() - x.min())  # noqa: E731
    _check_ranked(r.rank(q, docs), list((3 * mm(dn) + mm(sp)) / 4))


def test_rrf_by_hand_and_default_k():
    scores = {"a": torch.tensor([3.0, 1.0, 2.0]), "b": torch.tensor([1.0, 2.0, 3.0])}
    r = Reranker.from_embeddings(mode=["dense", "sparse"], fusion="rrf")
    assert r.rrf_k == 60
    fused = r._fuse({"dense": scores["a"], "sparse": scores["b"]}, [0, 3], "t")
    exp = [1 / 61 + 1 / 63, 1 / 63 + 1 / 62, 1 / 62 + 1 / 61]
    assert torch.allclose(fused.double(), torch.tensor(exp, dtype=torch.float64), rtol=REGROUPED_RTOL)


def test_missing_from_one_signal_takes_the_worst_score():
    # colbert: the second doc is empty (-inf, missing); dense: plain scores. Rule: missing -> the query's
    # worst normalised score in that signal; missing everywhere -> -inf.
    r = Reranker.from_embeddings(mode=["colbert", "dense"], normalize="minmax")
    q = {"colbert": [torch.ones(1, 2)], "dense": torch.tensor([[1.0, 0.0]])}
    d = {"colbert": [torch.tensor([[1.0, 0.0]]), torch.zeros(0, 2), torch.tensor([[2.0, 2.0]])],
         "dense": torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]])}
    (res,) = r.rerank_embeddings(q, d, groups=[0, 3])
    by_id = {x["corpus_id"]: x["score"] for x in res}
    # colbert minmax over {1, 4}: doc0 0, doc2 1, doc1 missing -> 0; dense minmax: 0, 1, 0.5
    assert by_id == pytest.approx({0: 0.0, 1: 0.5, 2: 0.75})


def test_rerank_embeddings_single_signal_matches_pylate_style_sum():
    g = torch.Generator().manual_seed(3)
    q = [torch.randn(2, DIM, generator=g)]
    d = [torch.randn(n, DIM, generator=g) for n in (3, 1, 2)]
    (res,) = Reranker.from_embeddings("colbert").rerank_embeddings(q, d, groups=[0, 3], top_k=2)
    exp = [float((q[0].double() @ x.double().T).max(1).values.sum()) for x in d]
    _check_ranked(res, exp, top_k=2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=5), st.integers(1, 7), st.integers(0, 2**16))
def test_rerank_embeddings_property_topk_is_sorted_oracle(sizes, k, seed):
    g = torch.Generator().manual_seed(seed)
    q = [torch.randn(int(torch.randint(1, 4, (1,), generator=g)), 4, generator=g) for _ in sizes]
    d = [torch.randn(int(torch.randint(1, 4, (1,), generator=g)), 4, generator=g) for _ in range(sum(sizes))]
    groups = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    res = Reranker.from_embeddings("colbert").rerank_embeddings(q, d, groups=groups, top_k=k)
    for b, got in enumerate(res):
        exp = [float((q[b].double() @ d[n].double().T).max(1).values.sum()) for n in range(groups[b], groups[b + 1])]
        assert len(got) == min(k, sizes[b])
        top = sorted(exp, reverse=True)[:k]
        assert np.allclose([x["score"] for x in got], top, rtol=FP32, atol=PEER_ATOL)


# ----------------------------------------------------------------------------- real tiny models
@pytest.mark.encoders
def test_real_cross_encoder_matches_sentence_transformers_rank(tmp_path):
    from fusedscore import encoders as enc
    st_ce = pytest.importorskip("sentence_transformers").CrossEncoder
    from fusedscore.testing.tiny_models import TEXTS, build_cross_encoder

    path = build_cross_encoder(tmp_path / "ce")
    ours = Reranker(enc.CrossEncoder.from_pretrained(str(path))).rank(TEXTS[0], TEXTS[1:], top_k=5)
    peer = st_ce(str(path), device="cpu").rank(TEXTS[0], TEXTS[1:], top_k=5)
    assert [x["corpus_id"] for x in ours] == [x["corpus_id"] for x in peer]
    assert np.allclose([x["score"] for x in ours], [x["score"] for x in peer], rtol=ENCODER_RTOL, atol=PEER_ATOL)


@pytest.mark.encoders
def test_real_colbert_matches_pylate_scoring(tmp_path):
    """pylate 1.6 cannot load models under sentence-transformers 6, so its scoring step (rank.rerank) runs on
    our encoder's embeddings, one document per call (pylate zero-pads documents, and a zero pad may win
    the max for random weights: the documented difference)."""
    from fusedscore import encoders as enc
    rank = pytest.importorskip("pylate.rank")
    from fusedscore.testing.tiny_models import TEXTS, build_colbert

    model = enc.ColBERT.from_pretrained(str(build_colbert(tmp_path / "colbert")))
    docs = TEXTS[1:]
    ours = Reranker(model).rank(TEXTS[0], docs)
    qe = model.encode([TEXTS[0]], is_query=True)
    de = model.encode(docs, is_query=False)
    peer = [rank.rerank([[i]], qe, [[d]])[0][0]["score"] for i, d in enumerate(de)]
    _check_ranked(ours, peer)
