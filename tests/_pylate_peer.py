"""Encode texts with pylate's ColBERT in a separate interpreter (used by test_encoders_parity).

pylate 1.6 pins sentence-transformers 5.3 and cannot load models under 6.x, which the other parity tests
use; the test runs this script with a path holding sentence-transformers 5.3 first on PYTHONPATH.
Usage: python _pylate_peer.py MODEL_DIR OUT.npz IS_QUERY(0|1) < texts.json
"""

import json
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")  # a peer in its own process: its deprecation notices are not ours to fail on

from pylate import models  # noqa: E402

model_dir, out, is_query = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
texts = json.load(sys.stdin)
embs = models.ColBERT(model_dir, device="cpu").encode(texts, is_query=is_query, batch_size=3)
if isinstance(texts, str):  # one text: pylate returns one [L, dim] array; keep it whole, as a list of one
    embs = [embs]
np.savez(out, *[np.asarray(e, dtype=np.float32) for e in embs])
