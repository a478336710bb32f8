"""Integrations with distributed engines that run fusedscore's scorer past one machine.

- ``fusedscore.integrations.ray``: Ray Data batch reranking (``RerankPredictor`` for ``map_batches``,
  ``rerank_dataset``, and the ``fusedscore rerank --ray`` runner). Needs the ``ray`` extra:
  ``pip install "fusedscore[ray]"``.

Nothing is imported here: each integration imports its engine lazily, on first use, so
``import fusedscore`` never pulls in (or requires) Ray.
"""

__all__: list[str] = []
