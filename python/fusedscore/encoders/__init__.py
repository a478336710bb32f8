"""Encoders: load a local model directory in its community's format and produce fusedscore containers.

- ``BGEM3``: FlagEmbedding's BGE-M3 layout (dense, lexical weights, multi-vectors in one pass).
- ``ColBERT``: PyLate / sentence-transformers layout (prefixes, query expansion, punctuation skiplist).
- ``Splade``: masked-LM head, log(1 + relu(logits)) max-pooled; also sentence-transformers SparseEncoder.
- ``DenseEncoder``: sentence-transformers bi-encoder (Pooling, Dense, Normalize modules).
- ``CrossEncoder``: sequence classification with the model's activation (sentence-transformers' rules).
- ``load(path)``: detect the format of a directory and return the matching encoder.

Importing this package imports transformers (seconds); ``import fusedscore`` alone does not.
"""

from .bgem3 import BGEM3
from .colbert import ColBERT
from .cross import CrossEncoder
from .dense import DenseEncoder
from ._formats import detect_format, load
from .splade import Splade

__all__ = ["BGEM3", "ColBERT", "CrossEncoder", "DenseEncoder", "Splade", "detect_format", "load"]
