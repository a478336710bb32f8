"""Cross-encoder: ``AutoModelForSequenceClassification`` on (query, document) pairs.

The activation follows sentence-transformers 6's ``CrossEncoder``: the dotted torch class stored in
``config.sentence_transformers["activation_fn"]`` (or the legacy ``sbert_ce_default_activation_function``),
else ``Sigmoid`` for one label and ``Identity`` for more. Only known activation classes load (Sigmoid,
Identity, Tanh, ReLU, Softmax, ...: ``_formats.activation_module``); any other path is a ValueError, because
the peers import and call whatever a config file names. Pairs are truncated together to the limit with
the ``longest_first`` rule (tokens are dropped from the longer of the two texts first).

Multi-label models (``num_labels > 1``): ``predict`` returns one column, ``label_index``, which must be
given (at load time or per call); without it ``predict`` raises ValueError, because no single score is
right for every such model (e.g. NLI heads order their labels differently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ._base import EncoderBase, check_batch_size, check_model_dir, load_hf, pad_batch, resolve_device
from ._formats import activation_module

__all__ = ["CrossEncoder"]


def _activation_from_config(config: Any, num_labels: int, file: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation ``file`` (config.json) names, from the known torch classes only (``activation_module``)."""
    where = "CrossEncoder.from_pretrained"
    st = getattr(config, "sentence_transformers", None)
    if isinstance(st, dict) and st.get("activation_fn"):
        return activation_module(st["activation_fn"], where, file, "sentence_transformers.activation_fn")
    legacy = getattr(config, "sbert_ce_default_activation_function", None)
    if legacy:
        return activation_module(legacy, where, file, "sbert_ce_default_activation_function")
    return torch.nn.Sigmoid() if num_labels == 1 else torch.nn.Identity()


class CrossEncoder(EncoderBase):
    """Pair scorer. Attributes: ``num_labels``, ``activation`` (callable on the fp32 logits),
    ``label_index`` (the column ``predict`` returns for multi-label models, or None)."""

    where = "CrossEncoder"

    def __init__(self, model, tokenizer, *, label_index: int | None = None, **kw):
        super().__init__(model, tokenizer, **kw)
        self.num_labels = int(model.config.num_labels)
        self.activation = _activation_from_config(model.config, self.num_labels, Path(self.path) / "config.json")
        self.label_index = self._check_label(label_index)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.type_ids = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    def _check_label(self, label_index: Any) -> int | None:
        if label_index is None:
            return None
        if isinstance(label_index, bool) or not isinstance(label_index, int) or not 0 <= label_index < self.num_labels:
            raise ValueError(f"CrossEncoder: label_index must be an int in [0, {self.num_labels}), got {label_index!r}")
        return label_index

    @classmethod
    def from_pretrained(cls, path: Any, *, device: Any = None, dtype: Any = None, max_length: int | None = None,
                        label_index: int | None = None) -> "CrossEncoder":
        """Load a ``*ForSequenceClassification`` directory.

        Args:
            label_index: the logit column scored for multi-label models (see the module doc).
        Raises:
            FileNotFoundError: path missing.  ValueError: not a model directory.
        """
        resolve_device(device, "CrossEncoder.from_pretrained")  # before loading weights: a missing GPU fails fast
        p = check_model_dir(path, "CrossEncoder.from_pretrained")
        model, tokenizer = load_hf(Path(p), "AutoModelForSequenceClassification", "CrossEncoder.from_pretrained")
        return cls(model, tokenizer, label_index=label_index, path=p, device=device, dtype=dtype,
                   max_length=max_length)

    @torch.inference_mode()
    def predict(self, pairs: Sequence[Sequence[str]] | Sequence[str], *, batch_size: int = 32,
                activation: Callable[[torch.Tensor], torch.Tensor] | None = None, label_index: int | None = None,
                max_length: int | None = None, show_progress_bar: bool | None = None) -> np.ndarray | np.float32:
        """Score (query, document) pairs.

        Args:
            pairs: N pairs of strings, or one pair ``(query, document)``: then one np.float32 comes back,
                as sentence-transformers' ``CrossEncoder.predict``.
            activation: applied to the fp32 logits; None -> the model's (see the module doc). Pass
                ``torch.nn.Identity()`` for raw logits.
            label_index: overrides the load-time column for multi-label models.
            max_length: pair truncation limit (tokens), capped at the model's; None -> ``self.max_length``.
        Returns:
            np float32 [N] (empty for no pairs); a np.float32 scalar for one pair.
        Raises:
            ValueError: num_labels > 1 and no label_index; a pair that is not two strings.
        """
        where = "CrossEncoder.predict"
        batch_size = check_batch_size(batch_size, where)
        if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
            raise TypeError(f"{where}: pairs must be a list of (query, document) pairs, got {type(pairs).__name__}")
        single = len(pairs) == 2 and all(isinstance(t, str) for t in pairs)
        if single:
            pairs = [tuple(pairs)]
        for i, pr in enumerate(pairs):
            if isinstance(pr, str) or len(pr) != 2 or not all(isinstance(t, str) for t in pr):
                raise ValueError(f"{where}: pairs[{i}] must be a (str, str) pair, got {pr!r}")
        col = self._check_label(label_index) if label_index is not None else self.label_index
        if self.num_labels != 1 and col is None:
            raise ValueError(f"{where}: label_index must be given for a model with num_labels={self.num_labels} "
                             "(which logit column is the relevance score?), got None")
        act = self.activation if activation is None else activation
        limit = self._limit(max_length, "max_length", where)
        tok = self._tokenize([p[0] for p in pairs], limit, pairs=[p[1] for p in pairs], type_ids=self.type_ids)
        self._report(tok, limit)
        out = torch.empty(len(pairs), dtype=torch.float32)
        batches = self._batches(tok.lengths, batch_size)
        for idx in self._progress(batches, show_progress_bar, "CrossEncoder predict"):
            feats = pad_batch(tok, idx, self.pad_id, self.device)
            with self._autocast():
                logits = self.model(**feats, return_dict=True).logits
            s = act(logits.float())
            s = s[:, 0] if self.num_labels == 1 else s[:, col]
            out[torch.from_numpy(idx)] = s.cpu()
        return out.numpy()[0] if single else out.numpy()
