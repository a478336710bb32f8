"""Helpers for tests and benchmarks that need models without a model hub (shipped, so an installed
``fusedscore bench --encoders/--rerank`` can build them too)."""
