"""Encoders: load a local model directory in its community's format and produce fusedscore containers.

- ``BGEM3``: FlagEmbedding's BGE-M3 layout (dense, lexical weights, multi-vectors in one pass).
- ``ColBERT``: PyLate / sentence-transformers layout (prefixes, query expansion, punctuation skiplist).
- ``Splade``: masked-LM head, log(1 + relu(logits)) max-pooled; also sentence-transformers SparseEncoder.
- ``DenseEncoder``: sentence-transformers bi-encoder (Pooling, Dense, Normalize modules).
- ``CrossEncoder``: sequence classification with the model's activation (sentence-transformers' rules).
- ``load(path)``: detect the format of a directory and return the matching encoder.

Importing this package imports transformers (seconds); ``import fusedscore`` alone does not.
"""

from typing import Any

from ._base import EncoderBase
from ._formats import detect_format
from .bgem3 import BGEM3
from .colbert import ColBERT
from .cross import CrossEncoder
from .dense import DenseEncoder
from .splade import Splade

__all__ = ["BGEM3", "ColBERT", "CrossEncoder", "DenseEncoder", "Splade", "detect_format", "load"]

# detect_format's answer -> the class that loads it (here, above the classes: they import _formats)
_CLASSES = {"bgem3": BGEM3, "colbert": ColBERT, "splade": Splade, "dense": DenseEncoder, "cross": CrossEncoder}


def load(path: Any, **kw: Any) -> EncoderBase:
    """Load a local model directory with the encoder its format calls for (see ``detect_format``).

    Keyword arguments go to that class's ``from_pretrained`` (device, dtype, max_length, ...).
    """
    return _CLASSES[detect_format(path)].from_pretrained(path, **kw)
