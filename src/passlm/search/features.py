"""IR features: what a function's text says about it in counts (opcodes, blocks, calls, size).

The retrieval baseline and the guided search both compare functions by these counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_ASSIGNED = re.compile(r"^(?:%[-\w.$\"]+|%\d+)\s*=\s*(?:(?:tail|musttail|notail)\s+)?([a-z]+)")
_UNASSIGNED = re.compile(r"^(?:(?:tail|musttail|notail)\s+)?([a-z]+)\b")
_LABEL = re.compile(r'^(?:[-\w.$]+|"[^"]*"):')


def ir_features(ir: str) -> Counter[str]:
    """Counts describing a function's IR: opcodes, basic blocks, calls, arguments, size."""
    feats: Counter[str] = Counter()
    in_body = False
    for raw in ir.splitlines():
        line = raw.strip()
        if not in_body:
            if line.startswith("define ") and line.endswith("{"):
                in_body = True
                feats["args"] += line.count(", ") + (0 if "()" in line else 1)
            elif line.startswith("@"):
                feats["globals"] += 1
            elif line.startswith("declare "):
                feats["declared"] += 1
            continue
        if line == "}":
            in_body = False
            continue
        if not line or line.startswith(";"):
            continue
        if _LABEL.match(line):
            feats["blocks"] += 1
            continue
        m = _ASSIGNED.match(line) or _UNASSIGNED.match(line)
        if m:
            feats[f"op:{m.group(1)}"] += 1
            feats["instructions"] += 1
    feats["blocks"] += 1  # the entry block has no label in normalized IR
    return feats


def log_counts(feats: Sequence[Counter[str]], keys: Sequence[str]) -> np.ndarray:
    """``log1p`` of each counter's values in the columns ``keys`` (others dropped), float32."""
    rows = [[f.get(k, 0) for k in keys] for f in feats]
    return np.log1p(np.array(rows, dtype=np.float32).reshape(len(feats), len(keys)))
