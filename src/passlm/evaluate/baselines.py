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
from collections import Counter
from collections.abc import Sequence

import numpy as np

from passlm.llvm.ir import ir_features
from passlm.llvm.passes import PassList, parse_pass_list
from passlm.search.features import log_counts
from passlm.search.outcomes import rank_popular
from passlm.search.space import random_list


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
        self.lists, counts = rank_popular(lists, allows)
        self.wins = {str(p): counts[p] for p in self.lists}

    def __len__(self) -> int:
        return len(self.lists)

    def propose(self, n: int) -> list[PassList]:
        """The ``n`` most popular lists."""
        return self.lists[: max(0, n)]


class Retrieval:
    """Nearest training functions by IR features; their best lists are the proposals."""

    def __init__(self, irs: Sequence[str], lists: Sequence[str]) -> None:
        if len(irs) != len(lists):
            raise ValueError(f"{len(irs)} functions but {len(lists)} lists")
        feats = [ir_features(ir) for ir in irs]
        self.vocab = sorted({k for f in feats for k in f})
        self.lists = [parse_pass_list(p) for p in lists]
        self.matrix = self._vectors(feats)

    def _vectors(self, feats: Sequence[Counter[str]]) -> np.ndarray:
        m = log_counts(feats, self.vocab)
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
