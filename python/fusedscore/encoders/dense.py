"""Dense bi-encoder in sentence-transformers' layout: Transformer -> Pooling [-> Dense]* [-> Normalize].

Pooling modes (``1_Pooling/config.json``, new ``pooling_mode`` key or legacy ``pooling_mode_*`` flags;
several modes concatenate in sentence-transformers' order): cls, max, mean, mean_sqrt_len_tokens,
weightedmean, lasttoken. Right padding is assumed (encoder models). The truncation limit is
``max_seq_length`` from sentence_bert_config.json, else the tokenizer's / position table's limit.
Prompts from config_sentence_transformers.json are not applied: put an instruction prefix in the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ._base import EncoderBase, check_batch_size, check_texts, load_hf, pad_batch, read_json, resolve_device
from ._formats import check_dense_chain, load_dense_layers, st_modules, st_transformer_config, transformer_dir

__all__ = ["DenseEncoder"]

_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
           "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
           "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


def pooling_modes(cfg: dict[str, Any], where: str) -> tuple[str, ...]:
    """The pooling modes of a Pooling config, in sentence-transformers' concatenation order."""
    if "pooling_mode" in cfg:
        pm = cfg["pooling_mode"]
        modes = (pm,) if isinstance(pm, str) else tuple(pm)
    else:
        modes = tuple(m for k, m in _LEGACY.items() if cfg.get(k))
    if not modes or any(m not in _MODES for m in modes):
        raise ValueError(f"{where}: pooling_mode must be one or more of {_MODES}, got {modes}")
    return modes


def pool(h: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """[B, L, H] token vectors, [B, L] 0/1 mask (right-padded) -> [B, H * len(modes)] fp32."""
    h = h.float()
    m = mask[:, :, None].to(h.dtype)
    lengths = m.sum(1)
    outs = []
    for mode in modes:
        if mode == "cls":
            outs.append(h[:, 0])
        elif mode == "max":
            outs.append(h.masked_fill(m == 0, float("-inf")).amax(1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            s = (h * m).sum(1)
            den = torch.clamp(lengths, min=1e-9)
            outs.append(s / (den if mode == "mean" else torch.sqrt(den)))
        elif mode == "weightedmean":
            wts = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)[None, :, None] * m
            outs.append((h * wts).sum(1) / torch.clamp(wts.sum(1), min=1e-9))
        else:  # lasttoken: the last real token of each row
            last = (lengths.squeeze(1).long() - 1).clamp(min=0)
            outs.append(h[torch.arange(h.shape[0], device=h.device), last])
    return torch.cat(outs, dim=-1)


class DenseEncoder(EncoderBase):
    """One vector per text. Attributes: ``pooling_modes``, ``dense_layers``, ``normalize`` (a Normalize
    module is listed), ``dim`` (output size)."""

    where = "DenseEncoder"

    def __init__(self, model, tokenizer, *, modes: tuple[str, ...], dense_layers: list, normalize: bool,
                 do_lower_case: bool = False, **kw):
        super().__init__(model, tokenizer, **kw)
        self.pooling_modes = modes
        self.dense_layers = torch.nn.ModuleList(dense_layers).to(self.device).eval()
        self.normalize = normalize
        self.do_lower_case = do_lower_case
        self.dim = (int(dense_layers[-1].linear.out_features) if dense_layers
                    else int(model.config.hidden_size) * len(modes))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.type_ids = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    @classmethod
    def from_pretrained(cls, path: Any, *, device: Any = None, dtype: Any = None, max_length: int | None = None
                        ) -> "DenseEncoder":
        """Load a sentence-transformers directory (modules.json with Transformer and Pooling modules).

        Raises:
            FileNotFoundError: path, modules.json or a module's config missing.  ValueError: bad format.
        """
        where = "DenseEncoder.from_pretrained"
        resolve_device(device, where)  # before loading weights: a missing GPU fails fast
        p = Path(path).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"{where}: path must be an existing local model directory, got {str(p)!r}")
        mods = st_modules(p)
        if not mods:
            raise FileNotFoundError(f"{where}: {str(p)!r} must contain modules.json (sentence-transformers layout), "
                                    "but modules.json is missing")
        tdir = transformer_dir(p, mods, where)
        pool_mod = [m for m in mods if m.get("type", "").rsplit(".", 1)[-1] == "Pooling"]
        if not pool_mod:
            raise ValueError(f"{where}: {str(p / 'modules.json')!r} must list a Pooling module")
        pcfg_path = p / pool_mod[0].get("path", "") / "config.json"
        pcfg = read_json(pcfg_path)
        if pcfg is None:
            raise FileNotFoundError(f"{where}: modules.json lists a Pooling module at {pool_mod[0].get('path', '')!r}, so "
                                    f"{str(pcfg_path)!r} must exist (sentence-transformers layout: the pooling "
                                    "mode, e.g. pooling_mode_mean_tokens), but it is missing")
        modes = pooling_modes(pcfg, where)
        normalize = any(m.get("type", "").endswith("Normalize") for m in mods)
        dense = load_dense_layers(p, mods, where)
        model, tokenizer = load_hf(tdir, "AutoModel", where)
        check_dense_chain(dense, int(model.config.hidden_size) * len(modes), where)
        tcfg = st_transformer_config(tdir)
        if max_length is None and tcfg.get("max_seq_length") is not None:
            max_length = int(tcfg["max_seq_length"])
        return cls(model, tokenizer, modes=modes, dense_layers=dense, normalize=normalize,
                   do_lower_case=bool(tcfg.get("do_lower_case", False)), path=p, device=device, dtype=dtype,
                   max_length=max_length)

    def to(self, device: Any) -> "DenseEncoder":
        super().to(device)
        self.dense_layers.to(self.device)
        return self

    @torch.inference_mode()
    def encode(self, texts: list[str] | str, *, batch_size: int = 32, normalize: bool | None = None,
               max_length: int | None = None, show_progress_bar: bool | None = None) -> torch.Tensor:
        """Embed texts.

        Args:
            texts: N strings (an empty string encodes ``[CLS] [SEP]``, as the peer), or one str.
            normalize: L2-normalise; None -> as the model's modules say (a Normalize module).
            max_length: truncation limit, capped at the model's; None -> ``self.max_length``.
        Returns:
            torch float32 [N, dim] on ``device`` (``[0, dim]`` for no texts); [dim] for one str, as
            ``SentenceTransformer.encode``.
        """
        where = "DenseEncoder.encode"
        texts, single = check_texts(texts, where)
        batch_size = check_batch_size(batch_size, where)
        if self.do_lower_case:
            texts = [t.lower() for t in texts]
        limit = self._limit(max_length, "max_length", where)
        tok = self._tokenize(texts, limit, type_ids=self.type_ids)
        self._report(tok, limit)
        out = torch.empty(len(texts), self.dim, dtype=torch.float32, device=self.device)
        batches = self._batches(tok.lengths, batch_size)
        for idx in self._progress(batches, show_progress_bar, "DenseEncoder encode"):
            feats = pad_batch(tok, idx, self.pad_id, self.device)
            with self._autocast():
                h = self.model(**feats, return_dict=True).last_hidden_state
            v = pool(h, feats["attention_mask"], self.pooling_modes)
            for layer in self.dense_layers:
                v = layer(v)
            out[torch.from_numpy(idx).to(self.device)] = v.float()
        if self.normalize if normalize is None else normalize:
            out = F.normalize(out, p=2, dim=1)
        return out[0] if single else out
