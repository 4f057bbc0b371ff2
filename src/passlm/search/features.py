"""IR features as vectors: :func:`passlm.llvm.ir.ir_features` counts, log-scaled in columns.

The retrieval baseline and the guided search both compare functions by these counts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def log_counts(feats: Sequence[Counter[str]], keys: Sequence[str]) -> np.ndarray:
    """``log1p`` of each counter's values in the columns ``keys`` (others dropped), float32."""
    rows = [[f.get(k, 0) for k in keys] for f in feats]
    return np.log1p(np.array(rows, dtype=np.float32).reshape(len(feats), len(keys)))
