"""Train/validation/test assignment by source file, and which copy of a duplicate to keep.

A file's split depends only on (seed, source, file), so adding a code base never moves the
files of another, and every function of a file lands in the same split: no function of a test
file is seen in training. The holdout code bases go entirely to ``heldout``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

TRAIN, VAL, TEST, HELDOUT = "train", "val", "test", "heldout"
SPLITS = (TRAIN, VAL, TEST, HELDOUT)
# When one function text occurs in several files, the copy in the earliest split is kept:
# train first, so no evaluation function also exists in training.
PRIORITY = {name: i for i, name in enumerate(SPLITS)}


@dataclass(frozen=True)
class SplitRatios:
    """Fractions of source files per split (the holdout code base aside)."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"split ratio {name}={value} is not in [0, 1]")
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"split ratios must sum to 1, got {self.train}+{self.val}+{self.test}")


def _unit(seed: int, source: str, file: str) -> float:
    """A stable pseudo-random number in [0, 1) for a (seed, source, file)."""
    digest = hashlib.sha256(f"{seed}\0{source}\0{file}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(
    source: str, file: str, *, seed: int, ratios: SplitRatios, holdout: Collection[str] = ()
) -> str:
    """The split of every function of ``file`` in ``source`` (``holdout``: source names)."""
    if isinstance(holdout, str):
        raise TypeError("holdout is a collection of source names, not one string")
    if source in holdout:
        return HELDOUT
    u = _unit(seed, source, file)
    if u < ratios.train:
        return TRAIN
    if u < ratios.train + ratios.val:
        return VAL
    return TEST
