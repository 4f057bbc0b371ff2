"""Guided search: which list to compile next, given what the lists compiled so far did.

The outcome table (:mod:`passlm.search.outcomes`) holds, for every training function, what each
popular list saved relative to -Oz. For a new function the search keeps a weight per training
function and spends its budget one compile at a time:

1. start from IR similarity: weight ``exp(beta * (cos - 1))`` of the cosine similarity of the
   two functions' standardized log feature counts (``beta`` 0: every training function alike);
2. pick the list with the largest weighted mean *marginal* saving on the training functions,
   each measured against the best of the lists already picked there (so a list that only wins
   where an earlier pick already won is worth little: the picks cover different functions);
3. compile it on the function, and multiply each training function's weight by
   ``exp(-|its saving - the saving seen| / h)``: training functions on which the lists compiled
   so far behaved as they did here count more for the next pick.

It is deterministic (ties go to the more popular list) and needs no model. -Oz is compiled
first and is not counted, as for every strategy. On the splits of the committed tuned data it
recovers far more of the autotuner's gain per compile than the model's samples (README,
"Optimize"); ``h`` and ``beta`` were chosen on the validation split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from passlm.llvm.backend import Compiler, Task
from passlm.llvm.passes import OZ, PassList
from passlm.search.outcomes import OutcomeTable


@dataclass(frozen=True)
class GuidedParams:
    """How the search weighs training functions."""

    h: float = 0.03  # outcome kernel width, in relative saving (0.03: 3% of the -Oz count)
    beta: float = 10.0  # IR-similarity sharpness; 0 ignores the IR

    def __post_init__(self) -> None:
        if not self.h > 0:
            raise ValueError(f"h must be positive, got {self.h}")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


class GuidedSearch:
    """The search over one outcome table (read once, reused for every function)."""

    def __init__(self, table: OutcomeTable, params: GuidedParams | None = None) -> None:
        self.table = table
        self.params = params or GuidedParams()
        self.lists = list(table.lists)
        self.savings = table.savings()  # (train, lists)
        # training functions where some list beats -Oz: elsewhere a marginal saving is never
        # above 0, so the search updates only these rows of its (train, lists) matrix
        self.gainful = np.flatnonzero((self.savings > 0).any(axis=1))
        self.gainful_savings = self.savings[self.gainful]
        feats = table.feature_matrix()
        self.mean = feats.mean(0) if len(feats) else feats.sum(0)
        self.std = (feats.std(0) if len(feats) else feats.sum(0)) + 1e-3
        self.unit = self._unit(feats)

    def _unit(self, feats: np.ndarray) -> np.ndarray:
        z = (feats - self.mean) / self.std
        return z / (np.linalg.norm(z, axis=-1, keepdims=True) + 1e-9)

    def __len__(self) -> int:
        return len(self.lists)

    def _gain(self, weights: np.ndarray, covered: np.ndarray, marginal: np.ndarray) -> np.ndarray:
        """Each list's weighted marginal saving, given the best saving so far on the gainful
        rows (``covered``). ``marginal`` is the whole (train, lists) matrix of marginal savings,
        0 outside the gainful rows for good: it is the same matrix as computed whole, so the
        same sum, but only those rows are written (``benchmarks/guided_search.py``)."""
        marginal[self.gainful] = np.maximum(self.gainful_savings - covered[:, None], 0.0)
        return weights @ marginal

    def run(
        self,
        irs: Sequence[str],
        n: int,
        compiler: Compiler,
        *,
        allows: Callable[[PassList], bool] | None = None,
    ) -> list[list[PassList]]:
        """Per function, the lists compiled, in the order picked (at most ``n``, fewer when the
        table has fewer; none where -Oz itself fails, or ``allows`` refuses every list).

        All functions advance together, one compile each per round, in one batch per round
        (so a pool spreads them).
        """
        usable = np.array([allows is None or allows(p) for p in self.lists], dtype=bool)
        picked: list[list[PassList]] = [[] for _ in irs]
        if not usable.any() or not len(self.savings):
            return picked
        oz_counts = [r.count if r.ok else None for r in compiler.run_tasks(
            [Task(ir, OZ) for ir in irs])]  # fmt: skip
        live = [i for i, oz in enumerate(oz_counts) if oz is not None]
        if not live:
            return picked
        unit = self._unit(np.stack([self.table.vector(irs[i]) for i in live]))
        weights = np.exp(self.params.beta * (unit @ self.unit.T - 1.0)).astype(np.float32)
        # the best saving of the lists picked so far, on the gainful rows
        covered = np.zeros((len(live), len(self.gainful)), dtype=np.float32)
        marginal = np.zeros_like(self.savings)
        banned = np.tile(~usable, (len(live), 1))
        for _ in range(min(n, int(usable.sum()))):
            choice = []
            for row in range(len(live)):
                gain = self._gain(weights[row], covered[row], marginal)
                gain[banned[row]] = -1.0
                choice.append(int(np.argmax(gain)))  # first maximum: the more popular list
            results = compiler.run_tasks(
                [Task(irs[i], self.lists[j]) for i, j in zip(live, choice, strict=True)]
            )
            for row, (i, j, r) in enumerate(zip(live, choice, results, strict=True)):
                picked[i].append(self.lists[j])
                banned[row, j] = True
                oz = max(int(oz_counts[i]), 1)  # type: ignore[arg-type]
                seen = max((oz - r.count) / oz, -1.0) if r.ok and r.count is not None else -1.0
                w = weights[row] * np.exp(-np.abs(self.savings[:, j] - seen) / self.params.h)
                top = w.max()
                # every training function disagreeing: keep the previous weights, not zeros
                weights[row] = w / top if top > 0 else weights[row]
                covered[row] = np.maximum(covered[row], self.gainful_savings[:, j])
        return picked
