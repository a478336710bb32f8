"""Drop-in functions against the peers themselves (PyLate, sentence-transformers, FlagEmbedding where it
imports) or, where a peer needs a model, against its formulas written out here from its source."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from _tol import ATOL, ENCODER_RTOL, PEER_ATOL, REGROUPED_RTOL, RTOL, assert_scores_close, key_for
from fusedscore import MultiVectors, SparseVectors, compat
from fusedscore import reference as fs_ref

FP32 = RTOL[key_for(torch.float32)]

DIM = 8
VOCAB = 40


def _flag_m3():
    """FlagEmbedding's M3Embedder class, or skip when the peer (or a package it imports, e.g. `datasets`) is not
    installed. Any other failure of its import is a failure here: CI installs the peer to run these tests."""
    try:
        from FlagEmbedding.inference.embedder.encoder_only.m3 import M3Embedder
    except ModuleNotFoundError as e:
        pytest.skip(f"FlagEmbedding does not import: {e!r}")
    return M3Embedder


def _vecs(text: str, n: int, salt: str, nonneg: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32((salt + text).encode()))
    v = torch.randn(n, DIM, generator=g)
    return torch.nn.functional.normalize(v.abs() if nonneg else v, dim=-1)


def _lex(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for w in text.lower().split():
        k = str(zlib.crc32(w.encode()) % VOCAB)
        out[k] = max(out.get(k, 0.0), float(np.float32(0.1 + len(w) / 10)))
    return out


class BGEM3:
    """The encoders' contract with deterministic outputs; counts the texts it encodes."""

    def __init__(self, nonneg=True):
        self.encoded: list[str] = []
        self.max_lengths: list[int] = []
        self.nonneg = nonneg

    def _colbert(self, t):
        return _vecs(t, max(1, len(t.split())), "c", self.nonneg)

    def encode(self, texts, batch_size=32, max_length=8192, return_dense=True, return_sparse=False,
               return_colbert_vecs=False, as_containers=False):
        self.encoded += list(texts)
        self.max_lengths.append(max_length)
        return {"dense_vecs": torch.stack([_vecs(t, 1, "d", self.nonneg)[0] for t in texts]),
                "lexical_weights": SparseVectors.from_dicts([_lex(t) for t in texts], vocab_size=VOCAB),
                "colbert_vecs": MultiVectors.from_list([self._colbert(t) for t in texts])}


def _flag_formulas(model: BGEM3, pairs, w):
    """FlagEmbedding 1.4.2 compute_score_single_device on padded batches, written out (temperature 1):
    dense q.p; sparse = dot of vocab-sized max-scattered weights; colbert = einsum over zero-padded
    vectors, max over passage tokens, sum / number of query colbert vectors."""
    qd = torch.stack([_vecs(q, 1, "d", model.nonneg)[0] for q, _ in pairs]).double()
    pd = torch.stack([_vecs(p, 1, "d", model.nonneg)[0] for _, p in pairs]).double()
    dense = (qd * pd).sum(-1)

    def vocab_vec(t):
        v = torch.zeros(VOCAB, dtype=torch.float64)
        for k, x in _lex(t).items():
            v[int(k)] = x
        return v
    sparse = torch.stack([(vocab_vec(q) * vocab_vec(p)).sum() for q, p in pairs])
    qc = torch.nn.utils.rnn.pad_sequence([model._colbert(q).double() for q, _ in pairs], batch_first=True)
    pc = torch.nn.utils.rnn.pad_sequence([model._colbert(p).double() for _, p in pairs], batch_first=True)
    qlen = torch.tensor([len(model._colbert(q)) for q, _ in pairs], dtype=torch.float64)
    tok = torch.einsum("bin,bjn->bij", qc, pc)
    colbert = tok.max(-1).values.sum(1) / qlen
    return {"dense": dense, "sparse": sparse, "colbert": colbert,
            "sparse+dense": (sparse * w[1] + dense * w[0]) / (w[1] + w[0]),
            "colbert+sparse+dense": (colbert * w[2] + sparse * w[1] + dense * w[0]) / sum(w)}


PAIRS = [("what is the capital", "paris is the capital of france"), ("fox", "the quick brown fox"),
         ("what is the capital", "berlin"), ("fox", "the quick brown fox"), ("late models", "late interaction")]


@pytest.mark.parametrize("weights", [None, [0.4, 0.2, 0.4]])
def test_compute_score_matches_flagembedding_formulas(weights):
    m = BGEM3()
    got = compat.compute_score(m, PAIRS, weights_for_different_modes=weights)
    exp = _flag_formulas(m, PAIRS, weights or [1.0, 1.0, 1.0])
    assert list(got) == ["colbert", "sparse", "dense", "sparse+dense", "colbert+sparse+dense"]
    for k, v in got.items():
        assert isinstance(v, list) and all(isinstance(x, float) for x in v)
        assert_scores_close(torch.tensor(v), exp[k], exp[k].abs() + 1, key_for(torch.float32))
    # each distinct text once: 3 distinct queries, 4 distinct passages; FlagEmbedding's 512-token default
    assert sorted(m.encoded) == sorted({q for q, _ in PAIRS} | {p for _, p in PAIRS})
    assert m.max_lengths == [512, 512]


def test_compute_score_chunks_pairs_within_max_memory():
    """A budget too small for every passage at once: pairs are scored a few at a time (grouped by query), and
    the scores are the same as in one chunk, in input order."""
    whole = compat.compute_score(BGEM3(), PAIRS)
    m = BGEM3()
    chunked = compat.compute_score(m, PAIRS, batch_size=2, max_memory=1)
    assert chunked == whole
    assert len(m.max_lengths) == 2 * 3  # three chunks of <= 2 pairs (one query each), two encode calls per chunk


def test_compute_score_single_pair_empty_and_bad_weights():
    m = BGEM3()
    one = compat.compute_score(m, ("fox", "the fox"), max_query_length=8, max_passage_length=64)
    assert all(isinstance(v, float) for v in one.values()) and m.max_lengths == [8, 64]
    assert compat.compute_score(m, []) == []
    with pytest.raises(ValueError, match="weights_for_different_modes must be \\[w_dense, w_sparse, w_colbert\\]"):
        compat.compute_score(m, PAIRS, weights_for_different_modes=[1.0, 1.0])
    with pytest.raises(ValueError, match="sentence_pairs\\[1\\] must be a \\(query, passage\\) pair of str"):
        compat.compute_score(m, [("a", "b"), ("a",)])


def test_colbert_padding_never_wins_documented_difference():
    # a query token whose every real similarity is negative: FlagEmbedding's zero padding would give it 0
    m = BGEM3(nonneg=False)
    pairs = [("a b c d e f", "x"), ("a b c d e f", "x y z w v u t s")]
    got = compat.compute_score(m, pairs)["colbert"]
    qv = m._colbert("a b c d e f").double()
    exp = [float((qv @ m._colbert(p).double().T).max(1).values.mean()) for _, p in pairs]
    assert np.allclose(got, exp, rtol=FP32, atol=ATOL)


def test_compute_lexical_matching_score_formula_and_peer():
    lw1 = [{"1": np.float32(0.5), "7": np.float32(0.25)}, {}, {"tok": 2.0}]
    lw2 = [{"7": np.float32(2.0), "1": np.float32(1.0)}, {"tok": 0.5, "3": 1.0}]

    def peer_formula(a, b):  # FlagEmbedding's loop, verbatim semantics
        return sum(w * b[t] for t, w in a.items() if t in b)
    got = compat.compute_lexical_matching_score(lw1, lw2)
    exp = np.array([[peer_formula(a, b) for b in lw2] for a in lw1], dtype=np.float64)
    assert got.shape == (3, 2) and got.dtype == np.float32
    assert np.allclose(got, exp, rtol=REGROUPED_RTOL, atol=0)
    s = compat.compute_lexical_matching_score(lw1[0], lw2[0])
    assert isinstance(s, float) and s == pytest.approx(1.0)
    assert compat.compute_lexical_matching_score([], lw2).shape == (0,)
    with pytest.raises(ValueError, match="must be two dicts or two lists of dicts, got dict and list"):
        compat.compute_lexical_matching_score(lw1[0], lw2)
    M3 = _flag_m3()
    peer = M3.compute_lexical_matching_score(None, lw1, lw2)
    assert np.allclose(got, peer, rtol=REGROUPED_RTOL)


def test_colbert_score_formula_and_peer():
    g = torch.Generator().manual_seed(1)
    q, p = torch.randn(5, DIM, generator=g).numpy(), torch.randn(7, DIM, generator=g).numpy()
    got = compat.colbert_score(q, p)
    exp = (torch.from_numpy(q).double() @ torch.from_numpy(p).double().T).max(-1).values.sum() / 5
    mag = (torch.from_numpy(np.abs(q)).double() @ torch.from_numpy(np.abs(p)).double().T).max(-1).values.sum() / 5
    assert isinstance(got, torch.Tensor) and got.dim() == 0 and got.dtype == torch.float32
    assert_scores_close(got.reshape(1), exp.reshape(1), mag.reshape(1), key_for(torch.float32))
    with pytest.raises(ValueError, match="p_reps must have shape \\[Ld, D\\], got \\(8,\\)"):
        compat.colbert_score(q, p[0])
    M3 = _flag_m3()
    assert float(got) == pytest.approx(float(M3.colbert_score(None, q, p)), rel=FP32)


# ----------------------------------------------------------------------------- PyLate
def _pylate_inputs(seed, nonneg=True, ids_str=False):
    g = torch.Generator().manual_seed(seed)
    f = (lambda t: t.abs()) if nonneg else (lambda t: t)
    qs = [f(torch.randn(6, DIM, generator=g)).numpy() for _ in range(3)]
    counts = [4, 1, 3]
    docs = [[f(torch.randn(int(torch.randint(1, 9, (1,), generator=g)), DIM, generator=g)).numpy()
             for _ in range(c)] for c in counts]
    ids = [[f"d{b}-{i}" if ids_str else 10 * b + i for i in range(c)] for b, c in enumerate(counts)]
    return ids, qs, docs


@pytest.mark.peers
@pytest.mark.parametrize("ids_str", [False, True])
def test_rerank_matches_pylate(ids_str):
    pylate_rank = pytest.importorskip("pylate.rank")
    ids, qs, docs = _pylate_inputs(0, ids_str=ids_str)
    got = compat.rerank(ids, qs, docs)
    peer = pylate_rank.rerank(ids, qs, docs)
    assert [[x["id"] for x in r] for r in got] == [[x["id"] for x in r] for r in peer]
    for r, p in zip(got, peer):
        assert np.allclose([x["score"] for x in r], [x["score"] for x in p], rtol=FP32, atol=PEER_ATOL)
    # padded [K, L, D] per query and a [B, Lq, D] query array: same results
    padded = [np.stack([np.pad(d, ((0, 8 - len(d)), (0, 0))) for d in ds]) for ds in docs]
    got2 = compat.rerank(ids, np.stack(qs), padded)
    peer2 = pylate_rank.rerank(ids, np.stack(qs), padded)
    assert [[x["id"] for x in r] for r in got2] == [[x["id"] for x in r] for r in peer2]


def test_rerank_top_k_empty_and_mismatch():
    ids, qs, docs = _pylate_inputs(1)
    got = compat.rerank(ids, qs, docs, top_k=2)
    assert [len(r) for r in got] == [2, 1, 2]
    assert compat.rerank([[]], qs[:1], [[]]) == [[]]
    with pytest.raises(ValueError, match="must have one entry per query, got 2, 3 and 3"):
        compat.rerank(ids[:2], qs, docs)
    with pytest.raises(ValueError, match="documents_embeddings\\[0\\] must have one embedding per id \\(4\\), got 3"):
        compat.rerank(ids, qs, [docs[0][:3]] + docs[1:])
    with pytest.raises(ValueError, match="top_k must be > 0, got 0"):
        compat.rerank(ids, qs, docs, top_k=0)


def test_rerank_names_a_non_finite_document_by_query_and_position():
    """PyLate's lists are scored in place, never scanned ahead: a NaN still raises, naming [query][document]."""
    ids, qs, docs = _pylate_inputs(1)
    bad = [list(ds) for ds in docs]
    bad[2][1] = np.array(bad[2][1], dtype=np.float32, copy=True)
    bad[2][1][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"rerank: documents_embeddings\[2\]\[1\] must be finite \(no NaN or Inf\)"):
        compat.rerank(ids, qs, bad)


# ----------------------------------------------------------------------------- sentence-transformers
def _st_util():
    return pytest.importorskip("sentence_transformers.util")


@pytest.mark.peers
@pytest.mark.parametrize("fn, peer_all, peer_pairs", [("maxsim", "maxsim", "maxsim_pairwise"),
                                                     ("meanmaxsim", "mean_maxsim", "mean_maxsim_pairwise")])
def test_similarity_multivector_matches_sentence_transformers(fn, peer_all, peer_pairs):
    util = _st_util()
    g = torch.Generator().manual_seed(2)
    a = [torch.randn(n, DIM, generator=g) for n in (3, 1, 5)]
    b = [torch.randn(n, DIM, generator=g) for n in (2, 4, 6)]
    got = compat.similarity(a, b, fn)
    assert got.shape == (3, 3) and got.dtype == torch.float32
    assert torch.allclose(got, getattr(util, peer_all)(a, b), rtol=FP32, atol=PEER_ATOL)
    gp = compat.similarity_pairwise(a, b, fn)
    assert gp.shape == (3,) and torch.allclose(gp, getattr(util, peer_pairs)(a, b), rtol=FP32, atol=PEER_ATOL)
    # padded with masks, and a single 2-D item
    pa = torch.nn.utils.rnn.pad_sequence(a, batch_first=True)
    ma = torch.nn.utils.rnn.pad_sequence([torch.ones(len(x)) for x in a], batch_first=True)
    assert torch.allclose(compat.similarity(pa, b, fn, a_mask=ma), getattr(util, peer_all)(pa, b, a_mask=ma),
                          rtol=FP32, atol=PEER_ATOL)
    assert compat.similarity(a[0], b, fn).shape == (1, 3)


@pytest.mark.peers
@pytest.mark.parametrize("fn, peer_all, peer_pairs", [("dot", "dot_score", "pairwise_dot_score"),
                                                     ("cosine", "cos_sim", "pairwise_cos_sim")])
def test_similarity_dense_matches_sentence_transformers(fn, peer_all, peer_pairs):
    util = _st_util()
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(4, 33, generator=g), torch.randn(4, 33, generator=g)
    assert torch.allclose(compat.similarity(a, b, fn), getattr(util, peer_all)(a, b), rtol=FP32, atol=PEER_ATOL)
    assert torch.allclose(compat.similarity_pairwise(a, b, fn), getattr(util, peer_pairs)(a, b), rtol=FP32, atol=PEER_ATOL)
    assert compat.similarity(a[0].numpy().astype(np.float64), b, fn).shape == (1, 4)  # float64 -> float32


def test_similarity_sparse_dot_and_errors():
    a = SparseVectors.from_dicts([{1: 2.0}, {2: 1.0}], vocab_size=4)
    b = SparseVectors.from_dicts([{1: 3.0, 2: 1.0}], vocab_size=4)
    assert compat.similarity(a, b, "dot").tolist() == [[6.0], [1.0]]
    with pytest.raises(ValueError, match="fn must be one of"):
        compat.similarity(a, b, "l2")
    with pytest.raises(ValueError, match="b must hold as many items as a \\(2\\), got 1"):
        compat.similarity_pairwise([torch.ones(1, 2)] * 2, [torch.ones(1, 2)])
    with pytest.raises(TypeError, match="sparse inputs must both be sparse and use fn='dot'"):
        compat.similarity(a, b, "cosine")
    assert compat.similarity([], [torch.ones(2, 3)]).shape == (0, 1)


def test_similarity_picks_the_function_from_the_shapes():
    """sentence-transformers users pass [N, D] embeddings, one vector per text: the result is [N, M] cosine
    (SentenceTransformer.similarity's default), never a [1, 1] MaxSim of two token sets. [N, L, D] batches, lists
    of [L, D] and MultiVectors are multi-vector (MaxSim); an explicit fn is always honoured."""
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(3, 384, generator=g), torch.randn(20, 384, generator=g)
    cos = torch.nn.functional.normalize(a.double(), dim=1) @ torch.nn.functional.normalize(b.double(), dim=1).T
    got = compat.similarity(a, b)
    assert got.shape == (3, 20) and torch.allclose(got.double(), cos, rtol=FP32, atol=ATOL)
    assert torch.allclose(compat.similarity(a.numpy(), b[:3].numpy()).double(), cos[:, :3], rtol=FP32, atol=ATOL)
    assert torch.allclose(compat.similarity(a[1], b).double(), cos[1:2], rtol=FP32, atol=ATOL)  # one [D] vector
    pair = compat.similarity_pairwise(a, b[:3])
    assert pair.shape == (3,) and torch.allclose(pair.double(), cos.diagonal(), rtol=FP32, atol=ATOL)
    # multi-vector inputs: MaxSim, as before
    qs = [torch.randn(n, DIM, generator=g) for n in (3, 1)]
    ds = [torch.randn(n, DIM, generator=g) for n in (2, 4, 6)]
    ref = fs_ref.maxsim_ref(MultiVectors.from_list(qs), MultiVectors.from_list(ds))
    assert torch.allclose(compat.similarity(qs, ds), ref, rtol=FP32, atol=ATOL)
    padded = torch.nn.utils.rnn.pad_sequence(ds, batch_first=True)
    lens = torch.tensor([2, 4, 6])
    mask = torch.arange(6)[None, :] < lens[:, None]
    assert torch.allclose(compat.similarity(qs, padded, b_mask=mask), ref, rtol=FP32, atol=ATOL)
    assert torch.allclose(compat.similarity(qs[0], ds), ref[:1], rtol=FP32, atol=ATOL)  # one [L, D] set vs a list
    assert torch.allclose(compat.similarity_pairwise(qs, ds[:2]), ref[[0, 1], [0, 1]], rtol=FP32, atol=ATOL)
    # explicit fn: a 2-D input is then one token set, as documented
    assert compat.similarity(a, b, "maxsim").shape == (1, 1)
    sa = SparseVectors.from_dicts([{1: 2.0}, {2: 1.0}], vocab_size=4)
    assert compat.similarity(sa, SparseVectors.from_dicts([{1: 3.0}], vocab_size=4)).tolist() == [[6.0], [0.0]]
    assert compat.similarity([], b).shape == (0, 20)


@pytest.mark.encoders
@pytest.mark.peers
def test_compute_score_real_tiny_bgem3_matches_flagembedding(tmp_path):
    from fusedscore import encoders as enc
    M3 = _flag_m3()
    from fusedscore.testing.tiny_models import TEXTS, build_bgem3

    path = str(build_bgem3(tmp_path / "m3", colbert_dim=24))
    pairs = [(TEXTS[0], t) for t in TEXTS[1:]] + [(TEXTS[2], TEXTS[3]), (TEXTS[2], TEXTS[0])]
    w = [0.4, 0.2, 0.4]
    got = compat.compute_score(enc.BGEM3.from_pretrained(path, device="cpu"), pairs, weights_for_different_modes=w,
                               max_passage_length=64)
    peer = M3(path, use_fp16=False, devices="cpu", colbert_dim=24).compute_score(
        pairs, weights_for_different_modes=w, max_passage_length=64, batch_size=4)
    assert list(got) == list(peer)
    for k in peer:  # (seed 0: no zero pad of FlagEmbedding's wins a max here, so colbert agrees too)
        assert np.allclose(got[k], peer[k], rtol=FP32, atol=PEER_ATOL), k
    exp_c = []
    m = enc.BGEM3.from_pretrained(path, device="cpu")
    for q, p in pairs:
        qv = torch.from_numpy(m.encode([q], max_length=512, return_colbert_vecs=True)["colbert_vecs"][0]).double()
        pv = torch.from_numpy(m.encode([p], max_length=64, return_colbert_vecs=True)["colbert_vecs"][0]).double()
        exp_c.append(float((qv @ pv.T).max(1).values.mean()))
    assert np.allclose(got["colbert"], exp_c, rtol=ENCODER_RTOL, atol=PEER_ATOL)


@pytest.mark.encoders
def test_bgem3_methods_delegate_to_compat(tmp_path):
    from fusedscore import encoders as enc
    from fusedscore.testing.tiny_models import TEXTS, build_bgem3

    m = enc.BGEM3.from_pretrained(str(build_bgem3(tmp_path / "m3")), device="cpu")
    pairs = [(TEXTS[0], TEXTS[2]), (TEXTS[5], TEXTS[0])]
    got, exp = m.compute_score(pairs, max_passage_length=64), compat.compute_score(m, pairs, max_passage_length=64)
    assert list(got) == list(exp)
    for k in exp:
        ref = torch.tensor(exp[k], dtype=torch.float64)
        assert_scores_close(torch.tensor(got[k], dtype=torch.float64), ref, ref.abs() + 1, key_for(torch.float32))
    out = m.encode(TEXTS[:3], return_sparse=True, return_colbert_vecs=True)
    lw, cv = out["lexical_weights"], out["colbert_vecs"]
    assert np.array_equal(m.compute_lexical_matching_score(lw, lw), compat.compute_lexical_matching_score(lw, lw))
    assert float(m.colbert_score(cv[0], cv[2])) == pytest.approx(float(compat.colbert_score(cv[0], cv[2])), rel=REGROUPED_RTOL)
