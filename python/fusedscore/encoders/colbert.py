"""ColBERT in PyLate's layout (sentence-transformers modules: Transformer + Dense projection(s)).

Semantics of ``pylate.models.ColBERT.encode`` (pylate 1.6 with sentence-transformers 5.3):

- Tokenise with ``max_length = length - 1`` (``query_length`` / ``document_length``), then insert the
  prefix token id (``[Q] `` / ``[D] ``, an added token) right after the first token, attention 1.
- Queries with ``do_query_expansion`` are padded to ``query_length`` with the mask token; those expansion
  tokens get attention 0 unless ``attend_to_expansion_tokens``, and are *kept* in the output (every one of
  the ``query_length`` rows is returned). Without expansion queries keep their real tokens only.
- Documents keep real tokens that are not in the skiplist (``skiplist_words``, default every ASCII
  punctuation mark, mapped with ``convert_tokens_to_ids``: a word missing from the vocabulary maps to the
  unknown-token id, so unknown tokens are skipped too, as in PyLate).
- Each kept token vector goes through the Dense layers and is L2-normalised.
- PyLate pads every batch with the mask token (it sets ``pad_token_id = mask_token_id``); so do we.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..containers import MultiVectors
from ._base import (EncoderBase, Tokenized, check_batch_size, check_model_dir, check_texts, load_hf, read_json,
                    resolve_device)
from ._formats import check_dense_chain, load_dense_layers, st_modules, st_transformer_config, transformer_dir

__all__ = ["ColBERT"]

_DEFAULTS = {"query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 32, "document_length": 180,
             "attend_to_expansion_tokens": False, "do_query_expansion": True}


class ColBERT(EncoderBase):
    """Late-interaction encoder in PyLate's format.

    Attributes (besides ``EncoderBase``'s): ``query_prefix``, ``document_prefix``, ``query_length``,
    ``document_length``, ``do_query_expansion``, ``attend_to_expansion_tokens``, ``skiplist`` (token ids),
    ``dense_layers``, ``dim`` (output vector size).
    """

    where = "ColBERT"

    def __init__(self, model, tokenizer, dense_layers, cfg: dict[str, Any], do_lower_case: bool = False, **kw):
        super().__init__(model, tokenizer, **kw)
        self.dense_layers = torch.nn.ModuleList(dense_layers).to(self.device).eval()
        self.do_lower_case = do_lower_case
        c = {**_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
        self.query_prefix, self.document_prefix = c["query_prefix"], c["document_prefix"]
        self.query_length, self.document_length = int(c["query_length"]), int(c["document_length"])
        self.do_query_expansion = bool(c["do_query_expansion"])
        self.attend_to_expansion_tokens = bool(c["attend_to_expansion_tokens"]) and self.do_query_expansion
        words = c.get("skiplist_words")
        self.skiplist_words = list(string.punctuation) if words is None else list(words)
        self.skiplist = sorted({i for i in tokenizer.convert_tokens_to_ids(self.skiplist_words) if i is not None})
        self.query_prefix_id = self._prefix_id(self.query_prefix, "query_prefix")
        self.document_prefix_id = self._prefix_id(self.document_prefix, "document_prefix")
        pad = tokenizer.mask_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
        if pad is None:
            raise ValueError(f"ColBERT: the tokenizer of {str(self.path)!r} must have a mask, eos or pad token for "
                             "query expansion, got none")
        self.pad_id = int(pad)
        self.dim = int(dense_layers[-1].linear.out_features) if dense_layers else int(model.config.hidden_size)
        for name, n in (("query_length", self.query_length), ("document_length", self.document_length)):
            if self.model_max_length is not None and n > self.model_max_length:
                raise ValueError(f"ColBERT: {name} must be <= the model's limit {self.model_max_length}, got {n}")

    def _prefix_id(self, prefix: str, arg: str) -> int | None:
        if not prefix:
            return None
        vocab = self.tokenizer.get_vocab()
        if prefix not in vocab:
            raise ValueError(f"ColBERT: {arg} {prefix!r} must be a token of the tokenizer (PyLate saves it as an added "
                             f"token), but {str(self.path)!r} does not have it")
        return int(vocab[prefix])

    @classmethod
    def from_pretrained(cls, path: Any, *, device: Any = None, dtype: Any = None, max_length: int | None = None,
                        **overrides: Any) -> "ColBERT":
        """Load a PyLate directory.

        Args:
            path: directory with modules.json (Transformer + Dense modules) and config_sentence_transformers.json.
            device, dtype: as ``BGEM3.from_pretrained``.
            max_length: an upper bound on both query_length and document_length (None: as configured).
            overrides: query_prefix, document_prefix, query_length, document_length, do_query_expansion,
                attend_to_expansion_tokens, skiplist_words (override the config file, as PyLate's kwargs).
        Raises:
            FileNotFoundError: path or a module file missing.  ValueError: not a PyLate directory.
        """
        where = "ColBERT.from_pretrained"
        resolve_device(device, where)  # before loading weights: a missing GPU fails fast
        p = check_model_dir(path, where) if not (Path(path) / "modules.json").is_file() else Path(path)
        mods = st_modules(p)
        if not mods:
            raise FileNotFoundError(f"{where}: {str(p)!r} must contain modules.json (PyLate / sentence-transformers "
                                    "layout), but modules.json is missing")
        bad = set(overrides) - set(_DEFAULTS) - {"skiplist_words"}
        if bad:
            raise TypeError(f"{where}: unknown keyword arguments {sorted(bad)}")
        tdir = transformer_dir(p, mods, where)
        model, tokenizer = load_hf(tdir, "AutoModel", where)
        dense = load_dense_layers(p, mods, where, "PyLate layout")
        check_dense_chain(dense, int(model.config.hidden_size), where)
        st_cfg = read_json(p / "config_sentence_transformers.json", {})
        cfg = {k: st_cfg.get(k) for k in (*_DEFAULTS, "skiplist_words")}
        cfg.update(overrides)
        if max_length is not None:
            for k, dflt in (("query_length", _DEFAULTS["query_length"]),
                            ("document_length", _DEFAULTS["document_length"])):
                cfg[k] = min(int(cfg[k] if cfg.get(k) is not None else dflt), int(max_length))
        lower = bool(st_transformer_config(tdir).get("do_lower_case", False))
        return cls(model, tokenizer, dense, cfg, do_lower_case=lower, path=p, device=device, dtype=dtype,
                   max_length=None)

    @classmethod
    def from_dense_encoder(cls, dense: Any) -> "ColBERT":
        """A stand-in late-interaction model over a sentence-transformers bi-encoder's token vectors: a
        ColBERT sharing the ``DenseEncoder``'s transformer, tokenizer and Dense modules (not a second load of
        its directory), without prefixes or query expansion; queries keep up to 64 tokens, documents the
        bi-encoder's own limit (256 when it has none). ``fusedscore eval --multi-model`` builds one.

        Raises:
            ValueError: a Dense module does not take the previous output's width.
        """
        limit = int(getattr(dense, "max_length", None) or 256)
        layers = list(dense.dense_layers)
        check_dense_chain(layers, int(dense.model.config.hidden_size), "ColBERT.from_dense_encoder")
        cfg = {"query_prefix": "", "document_prefix": "", "do_query_expansion": False, "query_length": min(64, limit),
               "document_length": limit}
        return cls(dense.model, dense.tokenizer, layers, cfg, do_lower_case=dense.do_lower_case, path=dense.path,
                   device=dense.device, dtype=dense.dtype, max_length=None)

    def to(self, device: Any) -> "ColBERT":
        super().to(device)
        self.dense_layers.to(self.device)
        return self

    def _features(self, tok: Tokenized, idx: np.ndarray, prefix_id: int | None, width: int | None
                  ) -> dict[str, torch.Tensor]:
        """Pad with the mask token, insert the prefix after the first token; ``width`` fixes the length."""
        extra = 1 if prefix_id is not None else 0
        rows = [tok.ids[i] for i in idx]
        L = (max(len(r) for r in rows) + extra) if width is None else width
        ids = np.full((len(rows), L), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), L), dtype=np.int64)
        for b, r in enumerate(rows):
            if extra:
                ids[b, 0] = r[0]
                ids[b, 1] = prefix_id
                ids[b, 2:len(r) + 1] = r[1:]
            else:
                ids[b, :len(r)] = r
            mask[b, :len(r) + extra] = 1
        out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if "token_type_ids" in getattr(self.tokenizer, "model_input_names", ()):
            out["token_type_ids"] = torch.zeros_like(out["input_ids"])
        return {k: v.to(self.device, non_blocking=True) for k, v in out.items()}

    @torch.inference_mode()
    def encode(self, texts: list[str] | str, *, is_query: bool, batch_size: int = 32, as_containers: bool = False,
               show_progress_bar: bool | None = None) -> list[np.ndarray] | np.ndarray | MultiVectors:
        """Token vectors per text, as ``pylate.models.ColBERT.encode``.

        Args:
            texts: N strings, or one str: then one np float32 [L, dim] comes back (as pylate), or with
                ``as_containers`` a one-row MultiVectors. An empty document keeps ``[CLS] [D] [SEP]``
                (3 vectors, fewer if in the skiplist).
            is_query: queries (prefix ``[Q] ``, expansion to ``query_length``) or documents (prefix ``[D] ``,
                skiplist, up to ``document_length`` tokens). ``last_truncated`` counts texts cut at that length.
        Returns:
            list of N np float32 [L_i, dim] (unit rows), or a MultiVectors (float32, on ``device``).
        """
        where = "ColBERT.encode"
        if not isinstance(is_query, bool):
            raise TypeError(f"{where}: is_query must be a bool, got {type(is_query).__name__}")
        texts, single = check_texts(texts, where)
        batch_size = check_batch_size(batch_size, where)
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        length = self.query_length if is_query else self.document_length
        prefix_id = self.query_prefix_id if is_query else self.document_prefix_id
        tok = self._tokenize(texts, length - 1 if prefix_id is not None else length)
        self._report(tok, length)
        expand = is_query and self.do_query_expansion
        skip = torch.tensor(self.skiplist, dtype=torch.int64, device=self.device)
        out: list[Any] = [None] * len(texts)
        # padded widths: expanded queries all take query_length; otherwise the tokens plus the prefix
        widths = np.full(len(texts), length) if expand else tok.lengths + (prefix_id is not None)
        batches = self._batches(widths, batch_size)
        for idx in self._progress(batches, show_progress_bar, "ColBERT encode"):
            feats = self._features(tok, idx, prefix_id, length if expand else None)
            real = feats["attention_mask"].bool()
            if expand and self.attend_to_expansion_tokens:
                feats["attention_mask"] = torch.ones_like(feats["attention_mask"])
            with self._autocast():
                h = self.model(**feats, return_dict=True).last_hidden_state
                for layer in self.dense_layers:
                    h = layer(h)
            h = h.float()
            if expand:
                keep = torch.ones_like(real)
            elif is_query:
                keep = real
            else:
                keep = real & ~torch.isin(feats["input_ids"], skip)
            # a few ops per batch, not per text: each per-text op is a thread-pool round trip, which on busy
            # cores costs milliseconds (400 texts: 1.8-3.6 s per-text vs 0.16 s batched on 2 shared cores);
            # the split pieces are views of the batch's kept rows
            rows = F.normalize(h[keep], p=2, dim=1)
            for i, t in zip(idx.tolist(), torch.split(rows, keep.sum(1).tolist())):
                out[i] = t
        if as_containers:
            if not out:
                return MultiVectors(torch.empty(0, self.dim, device=self.device),
                                    torch.zeros(1, dtype=torch.int64, device=self.device))
            return MultiVectors.from_list(out, dim=self.dim)
        arrays = [t.cpu().numpy() for t in out]
        return arrays[0] if single else arrays
