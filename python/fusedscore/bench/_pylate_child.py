"""pylate in a child interpreter, shared by ``bench.encoders`` (colbert_encode) and ``bench.rerank`` (colbert_e2e).

pylate 1.6 pins sentence-transformers 5.3 and cannot load models under 6, so its rows run in a child process
with ``$FUSEDSCORE_PYLATE_ST_PATH`` (a folder holding sentence-transformers 5.3, e.g. ``pip install --target``)
first on ``sys.path``. The two benchmarks talk to their child differently (one timed call at a time, or one
timed run); what they share lives here.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any

ST_PATH_ENV = "FUSEDSCORE_PYLATE_ST_PATH"


def child_env(st_path: str) -> dict[str, str]:
    """The child's environment: ``st_path`` first on PYTHONPATH, the rest inherited."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (st_path, os.environ.get("PYTHONPATH")) if p))


def child_setup(threads: int) -> dict[str, Any]:
    """In the child: the parent's torch thread count, the peer's own warnings and logs silenced (they are not
    ours to report), pylate imported. Returns {"torch", "models", "rank", "versions"}."""
    import torch

    torch.set_num_threads(int(threads))
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    import pylate
    import sentence_transformers
    from pylate import models, rank

    return {"torch": torch, "models": models, "rank": rank,
            "versions": {"pylate": pylate.__version__, "sentence_transformers": sentence_transformers.__version__}}
