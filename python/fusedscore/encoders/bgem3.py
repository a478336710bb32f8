"""BGE-M3 in FlagEmbedding's layout: one XLM-RoBERTa pass gives dense, lexical and multi-vector outputs.

Directory: a transformers XLM-RoBERTa model (``config.json``, weights, tokenizer) plus
``colbert_linear.pt`` (Linear(H, D_c) state dict) and ``sparse_linear.pt`` (Linear(H, 1)).

With ``h = last_hidden_state [B, L, H]`` and a right-padded batch (FlagEmbedding's
``EncoderOnlyEmbedderM3ModelForInference`` with ``normalize_embeddings=True``):

- dense  = normalize(h[:, 0])                                    -> [N, H]
- sparse = relu(sparse_linear(h)) per token; per text, max weight per token id over its tokens,
  zero weights and the cls/eos/pad/unk ids dropped                 -> {str(token_id): weight}
- colbert = normalize(colbert_linear(h[:, 1:])) over the text's real tokens (CLS excluded, the final
  ``</s>`` kept, as FlagEmbedding keeps ``tokens_num - 1`` rows)  -> [L_i - 1, D_c]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import compat
from ..containers import MultiVectors, SparseVectors
from ._base import (EncoderBase, check_batch_size, check_model_dir, check_texts, describe_error, load_hf, pad_batch,
                    resolve_device, unreadable)

__all__ = ["BGEM3"]

HEAD_FILES = ("colbert_linear.pt", "sparse_linear.pt")


def _load_linear(file: Path, hidden: int, where: str) -> torch.nn.Linear:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        if not unreadable(e):
            raise
        raise ValueError(f"{where}: {str(file)!r} must be a torch.save'd Linear state dict (FlagEmbedding's BGE-M3 "
                         f"layout), got an unreadable file ({describe_error(e)})") from e
    w = state.get("weight") if isinstance(state, dict) else None
    if w is None or w.dim() != 2 or w.shape[1] != hidden:
        got = tuple(w.shape) if isinstance(w, torch.Tensor) else sorted(state) if isinstance(state, dict) else type(state)
        raise ValueError(f"{where}: {file.name} must hold a Linear state dict with weight [out, {hidden}], got {got}")
    lin = torch.nn.Linear(hidden, w.shape[0], bias="bias" in state)
    lin.load_state_dict(state)
    return lin.float()


class BGEM3(EncoderBase):
    """BGE-M3 encoder (dense + lexical + multi-vector) in FlagEmbedding's directory layout.

    Attributes (besides ``EncoderBase``'s): ``colbert_linear``, ``sparse_linear`` (torch Linear heads),
    ``unused_token_ids`` (ids dropped from lexical weights), ``vocab_size`` (= len(tokenizer)).
    """

    where = "BGEM3"

    def __init__(self, model, tokenizer, colbert_linear, sparse_linear, **kw):
        super().__init__(model, tokenizer, **kw)
        self.colbert_linear = colbert_linear.to(self.device).eval()
        self.sparse_linear = sparse_linear.to(self.device).eval()
        self.unused_token_ids = sorted({t for t in (tokenizer.cls_token_id, tokenizer.eos_token_id,
                                                    tokenizer.pad_token_id, tokenizer.unk_token_id) if t is not None})
        self.vocab_size = len(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    @classmethod
    def from_pretrained(cls, path: Any, *, device: Any = None, dtype: Any = None, max_length: int | None = None
                        ) -> "BGEM3":
        """Load a local BGE-M3 directory.

        Args:
            path: directory with config.json, weights, tokenizer, colbert_linear.pt and sparse_linear.pt.
            device: None -> cuda if available else cpu.
            dtype: compute dtype; None -> fp16 autocast on CUDA, fp32 on CPU.
            max_length: default truncation limit (tokens); None -> the model's limit (8192 for BGE-M3).
        Raises:
            FileNotFoundError: path or a head file missing.  ValueError: not a model directory, bad head.
        """
        resolve_device(device, "BGEM3.from_pretrained")  # before loading weights: a missing GPU fails fast
        p = check_model_dir(path, "BGEM3.from_pretrained")
        for f in HEAD_FILES:
            if not (p / f).is_file():
                raise FileNotFoundError(f"BGEM3.from_pretrained: {str(p)!r} must contain {f} (FlagEmbedding's BGE-M3 "
                                        f"layout), but {f} is missing")
        model, tokenizer = load_hf(p, "AutoModel", "BGEM3.from_pretrained")
        hidden = model.config.hidden_size
        colbert = _load_linear(p / "colbert_linear.pt", hidden, "BGEM3.from_pretrained")
        sparse = _load_linear(p / "sparse_linear.pt", hidden, "BGEM3.from_pretrained")
        if sparse.out_features != 1:
            raise ValueError(f"BGEM3.from_pretrained: sparse_linear.pt must map to 1 output, got {sparse.out_features}")
        return cls(model, tokenizer, colbert, sparse, path=p, device=device, dtype=dtype, max_length=max_length)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def colbert_dim(self) -> int:
        return int(self.colbert_linear.out_features)

    def to(self, device: Any) -> "BGEM3":
        super().to(device)
        self.colbert_linear.to(self.device)
        self.sparse_linear.to(self.device)
        return self

    @torch.inference_mode()
    def encode(self, texts: list[str] | str, *, batch_size: int = 32, max_length: int | None = None,
               return_dense: bool = True, return_sparse: bool = False, return_colbert_vecs: bool = False,
               as_containers: bool = False, show_progress_bar: bool | None = None) -> dict[str, Any]:
        """Encode texts; FlagEmbedding's ``BGEM3FlagModel.encode`` output, or fusedscore containers.

        Args:
            texts: N strings. An empty string encodes as ``<s></s>`` (as the peer): a dense vector, no
                lexical weights, one colbert vector (the ``</s>`` token). One str gives single results, as
                FlagEmbedding: ``dense_vecs`` [H], ``lexical_weights`` one dict, ``colbert_vecs`` one
                [L - 1, D_c] array; with ``as_containers`` it gives one-row containers and dense [1, H].
            max_length: truncation limit in tokens, capped at the model's limit; None -> ``self.max_length``
                (from_pretrained's ``max_length``, else the model's limit: 8192 for BGE-M3, the value
                the API contract names; FlagEmbedding's own default is 512).
                ``self.last_truncated`` holds how many texts were cut.
            as_containers: False -> ``dense_vecs`` np float32 [N, H], ``lexical_weights`` list of
                {str(token_id): float}, ``colbert_vecs`` list of np float32 [L_i - 1, D_c]. True ->
                ``dense_vecs`` torch float32 [N, H] on ``device``, ``lexical_weights`` a SparseVectors
                (vocab_size = len(tokenizer)), ``colbert_vecs`` a MultiVectors (float32, on ``device``).
        Returns:
            {"dense_vecs", "lexical_weights", "colbert_vecs"}; a key not requested maps to None.
        """
        where = "BGEM3.encode"
        texts, single = check_texts(texts, where)
        batch_size = check_batch_size(batch_size, where)
        if not (return_dense or return_sparse or return_colbert_vecs):
            raise ValueError(f"{where}: at least one of return_dense, return_sparse, return_colbert_vecs must be True")
        limit = self._limit(max_length, "max_length", where)
        tok = self._tokenize(texts, limit)
        self._report(tok, limit)
        n = len(texts)
        dense = torch.empty(n, self.dim, dtype=torch.float32, device=self.device) if return_dense else None
        colbert: list[Any] = [None] * n
        sp_rows, sp_ids, sp_w = [], [], []
        unused = torch.tensor(self.unused_token_ids, dtype=torch.int64, device=self.device)
        batches = self._batches(tok.lengths, batch_size)
        for idx in self._progress(batches, show_progress_bar, "BGEM3 encode"):
            feats = pad_batch(tok, idx, self.pad_id, self.device)
            mask = feats["attention_mask"]
            with self._autocast():
                h = self.model(**feats, return_dict=True).last_hidden_state
                if return_sparse:
                    w = torch.relu(self.sparse_linear(h)).squeeze(-1).float()  # [B, L]
                if return_colbert_vecs:
                    cv = self.colbert_linear(h[:, 1:]).float()
            h = h.float()
            if return_dense:
                dense[torch.from_numpy(idx).to(self.device)] = F.normalize(h[:, 0], dim=-1)
            if return_sparse:
                ids = feats["input_ids"]
                keep = (w > 0) & (mask > 0) & ~torch.isin(ids, unused)
                rows = torch.from_numpy(idx).to(self.device)[:, None].expand_as(ids)
                sp_rows.append(rows[keep])
                sp_ids.append(ids[keep])
                sp_w.append(w[keep])
            if return_colbert_vecs:
                cv = F.normalize(cv * mask[:, 1:, None].to(cv.dtype), dim=-1)
                for b, i in enumerate(idx):
                    colbert[i] = cv[b, : int(tok.lengths[i]) - 1]
        out: dict[str, Any] = {"dense_vecs": None, "lexical_weights": None, "colbert_vecs": None}
        if return_dense:
            out["dense_vecs"] = dense if as_containers else dense.cpu().numpy()
        if return_sparse:
            sv = self._sparse(n, sp_rows, sp_ids, sp_w)
            out["lexical_weights"] = sv if as_containers else [{str(k): v for k, v in d.items()} for d in sv.to_dicts()]
        if return_colbert_vecs:
            if as_containers:
                out["colbert_vecs"] = MultiVectors.from_list(colbert, dim=self.colbert_dim) if n else \
                    MultiVectors(torch.empty(0, self.colbert_dim, device=self.device),
                                 torch.zeros(1, dtype=torch.int64, device=self.device))
            else:
                out["colbert_vecs"] = [c.cpu().numpy() for c in colbert]
        if single and not as_containers:  # FlagEmbedding unwraps every output of a single str
            out = {k: (None if v is None else v[0]) for k, v in out.items()}
        return out

    def _sparse(self, n: int, rows: list, ids: list, w: list) -> SparseVectors:
        """Token-level (row, id, weight) triples -> CSR in input order, repeated ids merged by max."""
        dev = self.device
        if rows:
            r, i, v = torch.cat(rows), torch.cat(ids), torch.cat(w)
            order = torch.argsort(r, stable=True)
            r, i, v = r[order], i[order], v[order]
            counts = torch.bincount(r, minlength=n)
        else:
            r = i = torch.zeros(0, dtype=torch.int64, device=dev)
            v = torch.zeros(0, dtype=torch.float32, device=dev)
            counts = torch.zeros(n, dtype=torch.int64, device=dev)
        offsets = torch.zeros(n + 1, dtype=torch.int64, device=dev)
        torch.cumsum(counts, 0, out=offsets[1:])
        return SparseVectors(i.to(torch.int32), v, offsets, self.vocab_size, merge="max")

    def convert_id_to_token(self, lexical_weights: Any) -> Any:
        """FlagEmbedding's helper: {str(id): w} (or a list of them) -> {token string: w}."""
        single = isinstance(lexical_weights, dict)
        rows = [lexical_weights] if single else lexical_weights
        out = [{self.tokenizer.decode([int(k)]): v for k, v in row.items()} for row in rows]
        return out[0] if single else out

    # ------------------------------------------------------------------ FlagEmbedding's scoring helpers
    def compute_score(self, sentence_pairs: Any, batch_size: int | None = None, max_query_length: int | None = None,
                      max_passage_length: int | None = None, weights_for_different_modes: Any = None,
                      max_memory: int | None = None) -> Any:
        """FlagEmbedding's ``BGEM3FlagModel.compute_score``: see ``fusedscore.compat.compute_score``."""
        return compat.compute_score(self, sentence_pairs, batch_size=batch_size, max_query_length=max_query_length,
                                    max_passage_length=max_passage_length,
                                    weights_for_different_modes=weights_for_different_modes, max_memory=max_memory)

    def compute_lexical_matching_score(self, lexical_weights_1: Any, lexical_weights_2: Any) -> Any:
        """FlagEmbedding's helper: see ``fusedscore.compat.compute_lexical_matching_score``."""
        return compat.compute_lexical_matching_score(lexical_weights_1, lexical_weights_2)

    def colbert_score(self, q_reps: Any, p_reps: Any) -> torch.Tensor:
        """FlagEmbedding's helper: see ``fusedscore.compat.colbert_score``."""
        return compat.colbert_score(q_reps, p_reps)
