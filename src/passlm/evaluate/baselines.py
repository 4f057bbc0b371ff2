"""Baselines that propose pass lists without a language model.

* Random search: lists drawn from the autotuner's space, seeded per function, so a function's
  draws do not depend on which other functions are evaluated.
* Retrieval: the best lists of the ``k`` training functions nearest to the input, by cosine
  similarity of an IR feature vector (opcode histogram, plus block, call and size features, as
  log counts). It is the "nearest neighbour in the training set" heuristic the ML-compiler
  literature compares against: as cheap as the model at inference, but it cannot generalize.
* Popular lists: the lists that were most often the best on the training functions, the same
  ones for every input. A model that proposes lists without reading its input does this well,
  so a model has learned something about the code only where it beats this at equal compiles.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from passlm.llvm.passes import PassList, parse_pass_list
from passlm.search.space import random_list

_ASSIGNED = re.compile(r"^(?:%[-\w.$\"]+|%\d+)\s*=\s*(?:(?:tail|musttail|notail)\s+)?([a-z]+)")
_UNASSIGNED = re.compile(r"^(?:(?:tail|musttail|notail)\s+)?([a-z]+)\b")
_LABEL = re.compile(r'^(?:[-\w.$]+|"[^"]*"):')


def random_lists(
    function_hash: str, n: int, *, seed: int = 0, max_length: int = 8
) -> list[PassList]:
    """``n`` random lists for one function (deterministic in ``seed`` and the function)."""
    rng = random.Random(f"random-baseline:{seed}:{function_hash}")
    return [random_list(rng, max_length) for _ in range(n)]


class PopularLists:
    """The training set's best lists by how many functions they won, most first (ties by
    name); ``-Oz`` (compiled anyway) and lists ``allows`` refuses (the deny list) left out."""

    def __init__(self, lists: Sequence[str], allows=None) -> None:
        counts = Counter(parse_pass_list(p) for p in lists)
        oz = parse_pass_list("-Oz")
        ranked = sorted((p for p in counts if p != oz), key=lambda p: (-counts[p], str(p)))
        self.lists = [p for p in ranked if allows is None or allows(p)]
        self.wins = {str(p): counts[p] for p in self.lists}

    def __len__(self) -> int:
        return len(self.lists)

    def propose(self, n: int) -> list[PassList]:
        """The ``n`` most popular lists."""
        return self.lists[: max(0, n)]


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


class Retrieval:
    """Nearest training functions by IR features; their best lists are the proposals."""

    def __init__(self, irs: Sequence[str], lists: Sequence[str]) -> None:
        if len(irs) != len(lists):
            raise ValueError(f"{len(irs)} functions but {len(lists)} lists")
        feats = [ir_features(ir) for ir in irs]
        self.vocab = sorted({k for f in feats for k in f})
        self.index = {k: i for i, k in enumerate(self.vocab)}
        self.lists = [parse_pass_list(p) for p in lists]
        self.matrix = self._vectors(feats)

    def _vectors(self, feats: Sequence[Counter[str]]) -> np.ndarray:
        m = np.zeros((len(feats), len(self.vocab)), dtype=np.float32)
        for row, f in enumerate(feats):
            for k, v in f.items():
                col = self.index.get(k)
                if col is not None:
                    m[row, col] = np.log1p(v)
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return m / np.where(norms > 0, norms, 1.0)

    def __len__(self) -> int:
        return len(self.lists)

    def nearest(self, ir: str, k: int) -> list[int]:
        """Indices of the ``k`` most similar training functions, most similar first."""
        if not self.lists or k < 1:
            return []
        sims = self.matrix @ self._vectors([ir_features(ir)])[0]
        # ties (identical vectors) broken by index, so the result is deterministic
        order = np.lexsort((np.arange(len(sims)), -sims))
        return [int(i) for i in order[:k]]

    def propose(self, ir: str, k: int) -> list[PassList]:
        """The distinct best lists of the ``k`` nearest training functions, nearest first."""
        seen, out = set(), []
        for i in self.nearest(ir, k):
            passes = self.lists[i]
            if passes.passes not in seen:
                seen.add(passes.passes)
                out.append(passes)
        return out
