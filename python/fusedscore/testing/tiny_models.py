"""Builders of tiny random-weight models, one per community format, for encoder and rerank tests.

Every builder writes a complete local model directory (``save_pretrained`` plus the format's extra
files) and returns its path. Models are tiny (hidden 32, 2 layers, 2 heads, a ~200-token vocabulary
trained offline on :data:`CORPUS`), so building one takes well under a second and a forward pass is
microseconds. Weights come from ``torch.manual_seed(seed)``: the same seed gives the same directory.

Nothing here imports a peer library (sentence-transformers, pylate, FlagEmbedding): the formats are
written by hand, so the builders work in any environment where ``transformers`` and ``tokenizers``
import, and the peers can then be used to *check* that the directories are what they claim to be.

Stable API (shared with other test modules; keep signatures):

- :func:`bert_tokenizer`, :func:`xlmr_tokenizer`: small fast tokenizers (BERT WordPiece / XLM-R-like).
- :func:`build_bgem3`: FlagEmbedding BGE-M3 layout (XLM-RoBERTa + ``colbert_linear.pt`` + ``sparse_linear.pt``).
- :func:`build_colbert`: PyLate layout (sentence-transformers modules: Transformer + Dense, pylate config).
- :func:`build_splade`: ``BertForMaskedLM`` directory, optionally in sentence-transformers SparseEncoder format.
- :func:`build_dense`: sentence-transformers bi-encoder (Transformer + Pooling [+ Normalize]).
- :func:`build_cross_encoder`: ``BertForSequenceClassification`` directory (sentence-transformers CrossEncoder).
- :func:`build_colbert_from_dense`, :func:`build_cross_encoder_from_dense`: the same two formats on the trained
  backbone of a real bi-encoder (all-MiniLM-L6-v2), for benchmarks with real shapes and cost.
- :data:`TEXTS`: mixed-length sample texts (empty string, punctuation, one long text) for parity tests.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

HIDDEN = 32
LAYERS = 2
HEADS = 2
MAX_POSITIONS = 128  # small on purpose: texts longer than this exercise truncation
INIT_STD = 0.2  # larger than the usual 0.02 so that outputs of untrained models depend visibly on the input

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food, and a woman is playing the violin!",
    "Late interaction models score every query token against every document token.",
    "Learned sparse retrieval expands queries with related terms: eating, food, men, eat.",
    "What is the capital of France? Paris is the capital and largest city of France.",
    "Dense bi-encoders pool token vectors into one vector; cross-encoders read both texts together.",
    "Scientists found that 42 percent of cells (in vitro) responded to the treatment.",
    "BM25 ranks documents by term frequency, inverse document frequency and length normalisation.",
]

#: Sample texts for parity tests: mixed lengths, an empty string, punctuation-only, unknown words,
#: and one text longer than MAX_POSITIONS tokens (truncated).
TEXTS = [
    "A man is eating food.",
    "",
    "What is the capital of France?",
    "?!...",
    "Late interaction models score every query token against every document token, " * 2,
    "zebra xylophone quartz",
    " ".join(CORPUS) * 2,
    "Dense bi-encoders pool token vectors.",
]


def _train(model, pre_tokenizer, normalizer, trainer):
    from tokenizers import Tokenizer

    tok = Tokenizer(model)
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.train_from_iterator(CORPUS + [" ".join(string.punctuation)], trainer=trainer)
    return tok


def bert_tokenizer(*, extra_tokens: tuple[str, ...] = ()):
    """A BERT-style uncased WordPiece fast tokenizer (~200 tokens, every ASCII punctuation mark in vocab).

    Special tokens ``[PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4``; template ``[CLS] a [SEP] (b [SEP])``
    with token type ids. ``extra_tokens`` are added as added tokens (e.g. PyLate's ``"[Q] "``).
    Returns a ``transformers.PreTrainedTokenizerFast``.
    """
    from tokenizers import models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials,
                                        initial_alphabet=list(string.punctuation))
    tok = _train(models.WordPiece(unk_token="[UNK]"), pre_tokenizers.BertPreTokenizer(),
                 normalizers.BertNormalizer(lowercase=True), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    from tokenizers import decoders
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_POSITIONS,
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    if extra_tokens:
        fast.add_tokens(list(extra_tokens))
    return fast


def xlmr_tokenizer():
    """An XLM-RoBERTa-style Unigram fast tokenizer (~200 tokens).

    Special tokens ``<s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4``; template ``<s> a </s>`` (pairs
    ``<s> a </s></s> b </s>``); no token type ids, as XLM-R. Returns a ``PreTrainedTokenizerFast``.
    """
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(vocab_size=200, special_tokens=specials, unk_token="<unk>",
                                      initial_alphabet=list(string.punctuation))
    tok = _train(models.Unigram(), pre_tokenizers.Metaspace(), normalizers.NFKC(), trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
    tok.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>",
                                   sep_token="</s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                                   model_max_length=MAX_POSITIONS - 2, model_input_names=["input_ids", "attention_mask"])


def _bert_config(vocab_size: int, **kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      intermediate_size=2 * HIDDEN, max_position_embeddings=MAX_POSITIONS, pad_token_id=0,
                      initializer_range=INIT_STD, **kw)


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def _st_transformer_files(out: Path, max_seq_length: int, transformer_task: str | None = None) -> None:
    cfg = {"max_seq_length": max_seq_length, "do_lower_case": False}
    if transformer_task is not None:
        cfg["transformer_task"] = transformer_task
    _write_json(out / "sentence_bert_config.json", cfg)


def build_bgem3(out: str | Path, *, seed: int = 0, colbert_dim: int | None = None) -> Path:
    """FlagEmbedding BGE-M3 layout: ``XLMRobertaModel`` + ``colbert_linear.pt`` ([D_c, H] + bias) +
    ``sparse_linear.pt`` ([1, H] + bias), xlmr tokenizer. ``colbert_dim`` defaults to the hidden size."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out = Path(out)
    torch.manual_seed(seed)
    tok = xlmr_tokenizer()
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                           intermediate_size=2 * HIDDEN, max_position_embeddings=MAX_POSITIONS, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                           initializer_range=INIT_STD)
    model = XLMRobertaModel(cfg).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    colbert = torch.nn.Linear(HIDDEN, colbert_dim or HIDDEN)
    sparse = torch.nn.Linear(HIDDEN, 1)
    torch.save(colbert.state_dict(), out / "colbert_linear.pt")
    torch.save(sparse.state_dict(), out / "sparse_linear.pt")
    return out


def build_colbert(out: str | Path, *, seed: int = 0, dim: int = 16, query_length: int = 12,
                  document_length: int = 40, attend_to_expansion_tokens: bool = False,
                  do_query_expansion: bool = True, query_prefix: str = "[Q] ", document_prefix: str = "[D] ") -> Path:
    """PyLate layout: modules.json (Transformer at the root, ``1_Dense`` projection to ``dim``, no bias),
    ``config_sentence_transformers.json`` with pylate's keys (prefixes, lengths, skiplist = punctuation,
    ``attend_to_expansion_tokens``). The prefix tokens are added tokens and the embedding matrix already
    covers them, as in a checkpoint saved by pylate (so loading never resizes embeddings)."""
    from transformers import BertModel

    out = Path(out)
    torch.manual_seed(seed)
    tok = bert_tokenizer(extra_tokens=tuple(p for p in (query_prefix, document_prefix) if p))
    model = BertModel(_bert_config(len(tok))).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    _st_transformer_files(out, max_seq_length=MAX_POSITIONS)
    linear = torch.nn.Linear(HIDDEN, dim, bias=False)
    _write_colbert_head(out, linear.weight.detach().contiguous(), dict(
        query_prefix=query_prefix, document_prefix=document_prefix, query_length=query_length,
        document_length=document_length, attend_to_expansion_tokens=attend_to_expansion_tokens,
        do_query_expansion=do_query_expansion))
    return out


def _write_colbert_head(out: Path, weight: torch.Tensor, settings: dict) -> None:
    """PyLate's files beside a Transformer directory: ``1_Dense`` (a [dim, hidden] projection, no bias),
    modules.json and config_sentence_transformers.json (prefixes, lengths, expansion, punctuation skiplist)."""
    from safetensors.torch import save_file

    dim, hidden = weight.shape
    (out / "1_Dense").mkdir(exist_ok=True)
    save_file({"linear.weight": weight}, out / "1_Dense" / "model.safetensors")
    _write_json(out / "1_Dense" / "config.json", {"in_features": hidden, "out_features": dim, "bias": False,
                                                  "activation_function": "torch.nn.modules.linear.Identity",
                                                  "use_residual": False})
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ])
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": {}, "default_prompt_name": None, "similarity_fn_name": "MaxSim",
        **settings, "skiplist_words": list(string.punctuation),
    })


def build_splade(out: str | Path, *, seed: int = 0, st_format: bool = False) -> Path:
    """``BertForMaskedLM`` (tied embeddings) + bert tokenizer. With ``st_format`` also modules.json
    (MLMTransformer + SpladePooling max/relu), the sentence-transformers ``SparseEncoder`` layout."""
    from transformers import BertForMaskedLM

    out = Path(out)
    torch.manual_seed(seed)
    tok = bert_tokenizer()
    model = BertForMaskedLM(_bert_config(len(tok))).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if st_format:
        _st_transformer_files(out, max_seq_length=MAX_POSITIONS, transformer_task="fill-mask")
        _write_json(out / "1_SpladePooling" / "config.json",
                    {"pooling_strategy": "max", "activation_function": "relu", "embedding_dimension": len(tok)})
        _write_json(out / "modules.json", [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling",
             "type": "sentence_transformers.sparse_encoder.models.SpladePooling"},
        ])
        _write_json(out / "config_sentence_transformers.json",
                    {"model_type": "SparseEncoder", "prompts": {"query": "", "document": ""},
                     "default_prompt_name": None, "similarity_fn_name": "dot"})
    return out


def build_dense(out: str | Path, *, seed: int = 0, pooling: str = "mean", normalize: bool = True,
                max_seq_length: int = 64) -> Path:
    """sentence-transformers bi-encoder: ``BertModel`` + ``1_Pooling`` (``pooling`` in cls|mean|max|
    mean_sqrt_len_tokens|lasttoken, legacy ``pooling_mode_*`` keys as real checkpoints have them) and,
    with ``normalize``, a ``Normalize`` module. ``max_seq_length`` goes to sentence_bert_config.json."""
    from transformers import BertModel

    out = Path(out)
    torch.manual_seed(seed)
    tok = bert_tokenizer()
    model = BertModel(_bert_config(len(tok))).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    _st_transformer_files(out, max_seq_length=max_seq_length)
    modes = ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken"]
    key = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens", "lasttoken": "lasttoken",
           "mean_sqrt_len_tokens": "mean_sqrt_len_tokens", "weightedmean": "weightedmean_tokens"}[pooling]
    pool = {"word_embedding_dimension": HIDDEN, **{f"pooling_mode_{m}": m == key for m in modes},
            "include_prompt": True}
    _write_json(out / "1_Pooling" / "config.json", pool)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    _write_json(out / "modules.json", modules)
    _write_json(out / "config_sentence_transformers.json",
                {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"})
    return out


def build_cross_encoder(out: str | Path, *, seed: int = 0, num_labels: int = 1, activation: str | None = None) -> Path:
    """``BertForSequenceClassification`` with ``num_labels`` outputs; ``activation`` (a dotted torch class
    path such as ``"torch.nn.modules.linear.Identity"``) is stored where sentence-transformers reads it
    (``config.sentence_transformers.activation_fn``); None stores nothing (the default applies)."""
    from transformers import BertForSequenceClassification

    out = Path(out)
    torch.manual_seed(seed)
    tok = bert_tokenizer()
    cfg = _bert_config(len(tok), num_labels=num_labels)
    if activation is not None:
        cfg.sentence_transformers = {"activation_fn": activation}
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


# ----------------------------------------------------------------------------- formats on real weights
_ST_ONLY = {"modules.json", "config_sentence_transformers.json", "README.md", ".gitattributes", "data_config.json"}


def _link_transformer(src: Path, out: Path) -> Path:
    """Link (copy where links are refused) the files of ``src``'s Transformer module into ``out``: the
    weights are large, and the new directory only adds files beside them. Returns the module's directory."""
    import os
    import shutil

    mods = json.loads((src / "modules.json").read_text()) if (src / "modules.json").is_file() else []
    tpath = next((m.get("path", "") for m in mods if m.get("type", "").endswith("Transformer")), "")
    tdir = src / tpath
    out.mkdir(parents=True, exist_ok=True)
    for f in tdir.iterdir():
        if f.is_file() and f.name not in _ST_ONLY:
            try:
                os.symlink(f.resolve(), out / f.name)
            except OSError:
                shutil.copy2(f, out / f.name)
    return tdir


def build_colbert_from_dense(src: str | Path, out: str | Path, *, dim: int | None = 128, seed: int = 0,
                             query_length: int = 32, document_length: int = 180,
                             query_prefix: str = "[unused0]", document_prefix: str = "[unused1]") -> Path:
    """A PyLate-layout ColBERT directory on the *trained* backbone of a sentence-transformers BERT bi-encoder
    ``src`` (e.g. all-MiniLM-L6-v2, see ASSETS.md): its Transformer files linked, plus a seeded random
    ``1_Dense`` projection to ``dim`` (no bias) and pylate's config. The prefixes are BERT vocabulary entries
    (``[unused0]``/``[unused1]``, as answerdotai's answerai-colbert-small uses), so neither pylate nor
    fusedscore adds tokens or resizes the embedding table. Real shapes and cost for benchmarks; the vectors
    carry no trained late-interaction quality. ``dim=None``: the identity (the backbone's own token vectors)."""

    src, out = Path(src), Path(out)
    _link_transformer(src, out)
    hidden = int(json.loads((out / "config.json").read_text())["hidden_size"])
    if dim is None:
        weight = torch.eye(hidden)
    else:
        torch.manual_seed(seed)
        weight = torch.nn.Linear(hidden, dim, bias=False).weight.detach().contiguous()
    _write_colbert_head(out, weight, dict(
        query_prefix=query_prefix, document_prefix=document_prefix, query_length=query_length,
        document_length=document_length, attend_to_expansion_tokens=False, do_query_expansion=True))
    return out


def build_cross_encoder_from_dense(src: str | Path, out: str | Path, *, seed: int = 0) -> Path:
    """A ``BertForSequenceClassification`` directory (one label) on the trained encoder of a sentence-transformers
    BERT bi-encoder ``src``, with a seeded random pooler and classifier: real shapes and cost for benchmarks,
    scores with no trained meaning. The weights are written (the classifier has to be saved with them)."""
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    src, out = Path(src), Path(out)
    tdir = _link_transformer(src, out)
    # the bi-encoder's own weights and config are replaced; its max_seq_length (256) is not a cross-encoder's
    for f in ("model.safetensors", "pytorch_model.bin", "config.json", "sentence_bert_config.json"):
        if (out / f).is_symlink() or (out / f).is_file():
            (out / f).unlink()
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized: classifier.*" is the point here, not a problem
    try:
        model = BertForSequenceClassification.from_pretrained(str(tdir), num_labels=1, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    torch.manual_seed(seed)  # pooler and classifier: seeded, whatever from_pretrained drew before
    for mod in (model.bert.pooler.dense, model.classifier):
        torch.nn.init.normal_(mod.weight, std=0.02)
        torch.nn.init.zeros_(mod.bias)
    model.eval().save_pretrained(out)
    return out


BUILDERS = {"dense": build_dense, "splade": build_splade, "bgem3": build_bgem3, "colbert": build_colbert,
            "cross": build_cross_encoder}


def build(kind: str, root: Path) -> Path:
    """Build the tiny model of ``kind`` (a key of BUILDERS) under ``root / kind`` and return its directory."""
    return BUILDERS[kind](Path(root) / kind)
