"""The paper's metrics, as plain arithmetic on instruction counts and texts.

Everything is relative to ``-Oz`` (DESIGN.md, "Evaluation"): a method's **overall improvement**
is ``(Σ count(-Oz) − Σ count(method)) / Σ count(-Oz)`` over the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Improvement:
    """A method's counts against ``-Oz`` on a set of functions."""

    functions: int
    improved: int  # fewer instructions than -Oz
    regressed: int  # more instructions than -Oz
    saved: int  # instructions saved on the improved functions
    lost: int  # instructions added on the regressed functions
    oz_total: int
    total: int

    @property
    def overall(self) -> float:
        """(Σ -Oz − Σ method) / Σ -Oz; positive is better than -Oz."""
        return (self.oz_total - self.total) / self.oz_total if self.oz_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overall": self.overall}


def improvement(oz_counts: Sequence[int], counts: Sequence[int]) -> Improvement:
    """Compare per-function ``counts`` with the ``-Oz`` counts of the same functions."""
    if len(oz_counts) != len(counts):
        raise ValueError(f"{len(oz_counts)} -Oz counts but {len(counts)} counts")
    diffs = [oz - c for oz, c in zip(oz_counts, counts, strict=True)]
    return Improvement(
        functions=len(diffs),
        improved=sum(d > 0 for d in diffs),
        regressed=sum(d < 0 for d in diffs),
        saved=sum(d for d in diffs if d > 0),
        lost=-sum(d for d in diffs if d < 0),
        oz_total=sum(oz_counts),
        total=sum(counts),
    )


def fraction_of(gain: float, reference: float) -> float | None:
    """``gain`` as a fraction of ``reference`` (the autotuner's); None if it found nothing."""
    return gain / reference if reference > 0 else None


def mape(predicted: Sequence[int | None], true: Sequence[int]) -> tuple[float | None, int]:
    """Mean absolute percentage error of the predictions that exist, and how many exist."""
    pairs = [(p, t) for p, t in zip(predicted, true, strict=True) if p is not None and t > 0]
    if not pairs:
        return None, 0
    return 100.0 * sum(abs(p - t) / t for p, t in pairs) / len(pairs), len(pairs)


def bleu(hypothesis: str, reference: str) -> float:
    """Sentence BLEU in [0, 1] of generated IR against the compiler's IR (sacrebleu, 13a)."""
    import sacrebleu

    return sacrebleu.sentence_bleu(hypothesis, [reference]).score / 100.0


def percent(part: int, whole: int) -> float | None:
    """``100 * part / whole``; None for an empty whole."""
    return 100.0 * part / whole if whole else None


def fraction_interval(
    oz_counts: Sequence[int],
    counts: Sequence[int],
    reference_counts: Sequence[int],
    *,
    minus: Sequence[int] | None = None,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """A percentile bootstrap interval of the fraction of the reference's gain over ``-Oz``
    (``Σ(-Oz − method) / Σ(-Oz − reference)``), resampling functions with replacement, the
    method and the reference together (a paired bootstrap: the sampling noise is which
    functions the test set happens to hold). With ``minus``, the interval of the difference
    between this share and ``minus``'s, drawn on the same functions (is a method ahead of a
    baseline, or level with it?). None where the reference gains nothing."""
    import numpy as np

    if not len(oz_counts) == len(counts) == len(reference_counts):
        raise ValueError("oz_counts, counts and reference_counts differ in length")
    if minus is not None and len(minus) != len(counts):
        raise ValueError("minus and counts differ in length")
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    oz = np.asarray(oz_counts, dtype=np.int64)
    gain = oz - np.asarray(counts, dtype=np.int64)
    if minus is not None:
        gain = gain - (oz - np.asarray(minus, dtype=np.int64))
    ref = oz - np.asarray(reference_counts, dtype=np.int64)
    if ref.sum() <= 0:
        return None
    rng = np.random.default_rng(seed)
    # resampled a block at a time: 2,000 resamples of 20,000 functions would be 320 MB at once
    per_block = max(1, 4_000_000 // len(oz))
    fractions = []
    for start in range(0, resamples, per_block):
        picks = rng.integers(0, len(oz), size=(min(per_block, resamples - start), len(oz)))
        g, r = gain[picks].sum(axis=1), ref[picks].sum(axis=1)
        fractions.append(np.where(r > 0, g / np.where(r > 0, r, 1), np.nan))
    values = np.concatenate(fractions)
    values = values[~np.isnan(values)]
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def stored_interval(interval: tuple[float, float] | None) -> list[float] | None:
    """An interval as reports store it in JSON: a list rounded to four decimals (a share to
    0.01 points), or None."""
    return None if interval is None else [round(v, 4) for v in interval]
