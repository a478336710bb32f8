"""Shared encoder machinery: device and precision, tokenisation with a truncation count, length-sorted batches.

Every encoder runs the same loop:

1. tokenise all texts at once with the fast tokenizer (Rust, parallel), truncating to an explicit
   ``max_length`` (``_tokenize.TextTokenizer``: safe from many threads, and a very long text is cut to a
   prefix that keeps every token the truncation keeps); the number of truncated texts is counted from the
   tokenizer's overflow and reported (``last_truncated``, per thread, and one log record on the
   ``fusedscore.encoders`` logger), never silent;
2. sort texts by token count (longest first) and cut batches of at most ``batch_size``, so a batch pads
   to its own longest text (on the CPU a batch is also split where its padding would cost more than a
   forward call: ``sorted_batches``);
3. run each batch under ``torch.inference_mode`` (and fp16/bf16 autocast on CUDA; attention is SDPA);
4. scatter results back to input order.

Device placement of a *model* is chosen here (``resolve_device``); which *kernel* scores the outputs is
decided in ``fusedscore._dispatch`` as everywhere else.

Threads: an encoder may be called from many threads at once. A call keeps its state in local variables;
the shared parts are the model and heads (read-only under ``inference_mode``), the tokenizer (a private
copy used under a lock) and ``last_truncated`` (one value per thread). ``to()`` and attribute changes are
configuration, not to be made while other threads encode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ._tokenize import TextTokenizer, Tokenized

log = logging.getLogger("fusedscore.encoders")

_HALF = {torch.float16, torch.bfloat16}
_UNLIMITED = 10**8  # tokenizers store "no limit" as a huge model_max_length (1e30)
# A CPU forward call's fixed cost (Python and op dispatch: ~0.3 ms for 2 layers, 1-3 ms for 6) in tokens of
# work: ~3-30 tokens of all-MiniLM-L6-v2 (~0.3 ms a token on one core), ~200 of a 2-layer hidden-32 model.
# 64 keeps either within a few percent of its best cut on mixed-length texts, and wrong guesses cost little.
CPU_FORWARD_TOKENS = 64


def resolve_device(device: Any, where: str = "encoders") -> torch.device:
    """None -> ``cuda`` when available, else ``cpu``; strings and torch.device pass through.

    Raises:
        ValueError: not a device.  RuntimeError: a CUDA device without CUDA (no GPU, no driver, or a
            CPU-only torch), or a GPU index past the devices present: said here rather than as an
            AssertionError from torch at the first forward call.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"{where}: device must be a torch device or string like 'cpu'/'cuda:0', got {device!r}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise RuntimeError(f"{where}: device must be an available device, got {str(dev)!r} but CUDA is not "
                               f"available (torch {torch.__version__}, {build}: no GPU or driver visible); "
                               "use device='cpu' or leave device unset")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RuntimeError(f"{where}: device must be an available device, got {str(dev)!r} but only "
                               f"{torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def resolve_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    """Compute dtype: None -> fp16 on CUDA (autocast), fp32 on CPU. fp16/bf16 on CPU is refused: CPU
    autocast is slower than fp32 for these small encoders and changes numerics for nothing."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        dtype = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
                 "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}.get(dtype, dtype)
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"encoders: dtype must be float32, float16 or bfloat16, got {dtype!r}")
    if dtype in _HALF and device.type != "cuda":
        raise ValueError(f"encoders: dtype {dtype} needs a CUDA device (autocast), got device {device}; use float32 on CPU")
    return dtype


def check_model_dir(path: Any, where: str) -> Path:
    """An existing directory holding ``config.json``; raises FileNotFoundError / ValueError naming what is missing."""
    p = Path(os.fspath(path)).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{where}: path must be an existing local model directory, got {str(p)!r} (not found)")
    if not p.is_dir():
        raise ValueError(f"{where}: path must be a model directory, got a file {str(p)!r}")
    if not (p / "config.json").is_file():
        raise ValueError(f"{where}: {str(p)!r} is not a transformers model directory: config.json is missing")
    return p


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed file, or ``default`` when it does not exist; a file that is not JSON raises ValueError."""
    if not path.is_file():
        return default
    try:
        with open(path, encoding="utf8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"encoders: {str(path)!r} must be a JSON file, got unparseable content ({e})") from e


def position_limit(config: Any) -> int | None:
    """Longest input the position table allows: RoBERTa-style models (positions offset by padding_idx + 1,
    e.g. XLM-R's 514 -> 512) lose pad_token_id + 1 positions."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0:
        return None
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl", "mpnet"):
        n -= (getattr(config, "pad_token_id", 1) or 0) + 1
    return n


def model_limit(tokenizer: Any, config: Any) -> int | None:
    """min(tokenizer.model_max_length, position limit), ignoring a tokenizer's "unlimited" sentinel."""
    lims = [position_limit(config)]
    tm = getattr(tokenizer, "model_max_length", None)
    if isinstance(tm, int) and 0 < tm < _UNLIMITED:
        lims.append(tm)
    lims = [x for x in lims if x is not None]
    return min(lims) if lims else None


def check_texts(texts: Any, where: str) -> tuple[list[str], bool]:
    """(texts as a list, whether a single str was given). A single str is one text, as the peers
    (sentence-transformers, pylate, FlagEmbedding) take it; each encoder then returns one result."""
    if isinstance(texts, str):
        return [texts], True
    if isinstance(texts, bytes) or texts is None:
        raise TypeError(f"{where}: texts must be a str or a list of str, got {type(texts).__name__}")
    if not isinstance(texts, Sequence):
        texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{where}: texts[{i}] must be str, got {type(t).__name__}")
    return list(texts), False


def check_batch_size(batch_size: Any, where: str) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"{where}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def sorted_batches(lengths: np.ndarray, batch_size: int, overhead_tokens: float | None = None) -> list[np.ndarray]:
    """Indices of texts, longest first (stable), cut into consecutive batches of at most ``batch_size``.

    ``overhead_tokens`` None: every batch but the last holds ``batch_size`` texts. A number ``c``: the cut
    minimises (padded tokens + ``c`` per batch) over the sorted order, exactly (a dynamic programme,
    O(N * batch_size)), so a batch whose texts differ widely in length is split where its padding would
    cost more than one more forward call; texts of equal lengths never get an extra call.
    """
    order = np.argsort(-lengths, kind="stable")
    n = len(order)
    if overhead_tokens is None or n <= 1:
        return [order[s:s + batch_size] for s in range(0, n, batch_size)]
    ls = lengths[order].astype(np.float64)
    best = np.zeros(n + 1)
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        j = np.arange(max(0, i - batch_size), i)  # batch = sorted[j:i]; its width is ls[j], the longest
        cost = best[j] + (i - j) * ls[j] + overhead_tokens
        k = int(np.argmin(cost))
        best[i], start[i] = cost[k], j[k]
    cuts, i = [], n
    while i > 0:
        cuts.append((int(start[i]), i))
        i = int(start[i])
    return [order[a:b] for a, b in reversed(cuts)]


def pad_batch(tok: Tokenized, idx: np.ndarray, pad_id: int, device: torch.device, *,
              width: int | None = None) -> dict[str, torch.Tensor]:
    """Right-pad the texts ``idx`` to the batch's longest (or ``width``): input_ids, attention_mask
    [B, L] int64, plus token_type_ids when the tokenisation kept them."""
    rows = [tok.ids[i] for i in idx]
    L = max(len(r) for r in rows) if width is None else width
    ids = np.full((len(rows), L), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), L), dtype=np.int64)
    types = np.zeros((len(rows), L), dtype=np.int64) if tok.type_ids is not None else None
    for b, (i, r) in enumerate(zip(idx, rows)):
        ids[b, :len(r)] = r
        mask[b, :len(r)] = 1
        if types is not None:
            types[b, :len(r)] = tok.type_ids[i]
    out = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        out["token_type_ids"] = torch.from_numpy(types)
    return {k: v.to(device, non_blocking=True) for k, v in out.items()}


class EncoderBase:
    """Common state of every encoder.

    Attributes:
        model: the transformers module (eval mode, on ``device``, fp32 weights).
        tokenizer: the fast tokenizer loaded from the directory. Encoding uses a private copy of its Rust
            backend made at load (``_tokenize``), so changes to this object afterwards do not apply.
        device: torch.device the model runs on.
        dtype: compute dtype: fp32, or fp16/bf16 autocast on CUDA.
        max_length: default truncation limit in tokens (special tokens included), at most the model's limit.
        last_truncated: how many texts the last call *of the calling thread* truncated (one value per
            thread, so concurrent calls never see each other's count).
        show_progress_bar: default for the per-call ``show_progress_bar`` (off in library calls). A bar is
            drawn only when stderr is a terminal, so logs and pipes never get one.
        path: the directory it was loaded from.
    """

    where = "encoder"

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, path: Path, device: Any, dtype: Any,
                 max_length: int | None):
        self.device = resolve_device(device, self.where)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self._tokenize = TextTokenizer(tokenizer)
        self.path = path
        self.model_max_length = model_limit(tokenizer, getattr(model, "config", None))
        self.max_length = self.model_max_length
        if max_length is not None:
            self.max_length = self._limit(max_length, "max_length", self.where)
        self._calls = threading.local()
        self.show_progress_bar = False

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(path={str(self.path)!r}, device={self.device}, dtype={self.dtype}, "
                f"max_length={self.max_length})")

    @property
    def last_truncated(self) -> int:
        return getattr(self._calls, "truncated", 0)

    def _limit(self, max_length: Any, arg: str, where: str) -> int | None:
        """Validate a requested limit and cap it at the model's own (documented: never silently past it)."""
        if max_length is None:
            return self.max_length
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 2:
            raise ValueError(f"{where}: {arg} must be an int >= 2, got {max_length!r}")
        m = int(max_length)
        return m if self.model_max_length is None else min(m, self.model_max_length)

    def _report(self, tok: Tokenized, limit: int | None) -> None:
        self._calls.truncated = tok.truncated
        if tok.truncated:
            log.warning("%s: truncated %d of %d texts to %s tokens", self.where, tok.truncated, len(tok.ids), limit)

    def _batches(self, lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """Length-sorted batches of at most ``batch_size`` texts (``lengths``: padded width per text). On the
        CPU a batch is split where its padding costs more than a forward call (``CPU_FORWARD_TOKENS``); on
        CUDA batches stay full, because there per-token work is cheap and kernel launches are not."""
        return sorted_batches(lengths, batch_size, CPU_FORWARD_TOKENS if self.device.type == "cpu" else None)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda" and self.dtype in _HALF:
            return torch.autocast("cuda", dtype=self.dtype)
        return contextlib.nullcontext()

    def _progress(self, batches: list[np.ndarray], show: bool | None, desc: str):
        """``show`` False (or None with ``show_progress_bar`` False) silences the bar; True draws it when
        stderr is a terminal (tqdm's ``disable=None``), never into a log file or pipe."""
        show = self.show_progress_bar if show is None else show
        if not show:
            return batches
        from tqdm.auto import tqdm

        return tqdm(batches, desc=desc, disable=None)

    def to(self, device: Any) -> "EncoderBase":
        """Move the model (and future outputs) to ``device``; returns self. Moving to the CPU drops fp16/bf16
        autocast (fp32 there); moving to CUDA keeps the current dtype."""
        self.device = resolve_device(device, f"{self.where}.to")
        self.dtype = resolve_dtype(None if self.dtype in _HALF and self.device.type != "cuda" else self.dtype,
                                   self.device)
        self.model.to(self.device)
        return self


# Files that carry a tokenizer's vocabulary. Without one, transformers 5 does not fail: it builds a
# tokenizer of the special tokens alone, every word becomes [UNK] and encodes return garbage silently.
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model", "spiece.model",
               "tokenizer.model", "tekken.json")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def unreadable(e: BaseException) -> bool:
    """True for the errors a corrupt or truncated weights file raises (safetensors, torch.load's pickle
    and zip readers), so that callers re-raise those, and only those, naming the file."""
    import pickle

    from safetensors import SafetensorError

    if isinstance(e, (SafetensorError, pickle.UnpicklingError, EOFError, OSError)):
        return True
    return isinstance(e, RuntimeError) and "PytorchStreamReader" in str(e)


def describe_error(e: BaseException) -> str:
    """``Type: first sentence`` of an exception, at most 200 characters (torch.load's messages run to pages)."""
    first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]
    if first.startswith("Weights only load failed"):  # its advice (weights_only=False) runs untrusted code
        first = "not a torch.save file of tensors"
    return f"{type(e).__name__}: {first[:200]}"


def _listing(path: Path) -> str:
    names = sorted(p.name for p in path.iterdir())
    return ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "") if names else "nothing"


def load_hf(path: Path, cls_name: str, where: str, **kw: Any) -> tuple[torch.nn.Module, Any]:
    """(model, fast tokenizer) with SDPA attention; ``cls_name`` is a transformers Auto class name.

    Raises:
        ValueError: config.json not JSON; no tokenizer vocabulary file; the tokenizer has more tokens than
            the model's embedding table (ids past ``vocab_size``); a weights file that cannot be read.
        FileNotFoundError: no weights file.
    """
    import transformers

    cfg = read_json(path / "config.json", {})
    if not any((path / f).is_file() for f in VOCAB_FILES) and not any(path.glob("*.model")):
        raise ValueError(f"{where}: {str(path)!r} must contain tokenizer files (tokenizer.json, or a vocabulary: "
                         f"vocab.txt, vocab.json + merges.txt or a sentencepiece *.model), got {_listing(path)}")
    weights = [f for f in WEIGHT_FILES if (path / f).is_file()]
    if not weights:
        raise FileNotFoundError(f"{where}: {str(path)!r} must contain the model weights of a transformers "
                                f"{cls_name} checkpoint (model.safetensors or pytorch_model.bin), got {_listing(path)}")
    auto = getattr(transformers, cls_name)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise ValueError(f"{where}: the tokenizer files of {str(path)!r} must load with transformers' AutoTokenizer, "
                         f"got {describe_error(e)}") from e
    vocab = cfg.get("vocab_size") if isinstance(cfg, dict) else None
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise ValueError(f"{where}: the tokenizer of {str(path)!r} must fit the model's embedding table "
                         f"(config.json vocab_size={vocab}), got {len(tokenizer)} tokens; ids past it cannot be embedded")
    kw.setdefault("dtype", torch.float32)  # transformers 5 defaults to the checkpoint dtype; we keep fp32 weights
    try:
        try:
            model = auto.from_pretrained(str(path), attn_implementation="sdpa", **kw)
        except (ValueError, ImportError) as e:
            if "sdpa" not in str(e).lower():
                raise
            log.info("%s: %s has no SDPA attention, using its default attention (%s)", where, path, e)
            model = auto.from_pretrained(str(path), **kw)
    except Exception as e:
        if not unreadable(e):
            raise
        raise ValueError(f"{where}: {str(path / weights[0])!r} must hold the weights of a transformers {cls_name} "
                         f"checkpoint, got an unreadable file ({describe_error(e)})") from e
    return model, tokenizer
