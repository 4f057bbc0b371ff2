"""The paper's metrics, as plain arithmetic on instruction counts and texts.

Everything is relative to ``-Oz`` (DESIGN.md, "Evaluation"): a method's **overall improvement**
is ``(Σ count(-Oz) − Σ count(method)) / Σ count(-Oz)`` over the same functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


def best_of(oz_count: int, counts: Sequence[int | None]) -> int:
    """What a strategy keeps of its compiled candidates: the lowest of ``-Oz``'s count and
    theirs, the lists that failed (None) skipped (``-Oz`` is always a candidate)."""
    return min([oz_count, *(c for c in counts if c is not None)])


def gain_share(
    oz_counts: Sequence[int], counts: Sequence[int], reference_counts: Sequence[int]
) -> float | None:
    """A method's share of the reference's (the autotuner's) gain over ``-Oz`` on the same
    functions, ``Σ(-Oz − method) / Σ(-Oz − reference)``; None where the reference gains nothing."""
    if not len(oz_counts) == len(counts) == len(reference_counts):
        raise ValueError("oz_counts, counts and reference_counts differ in length")
    oz = sum(oz_counts)
    return fraction_of(oz - sum(counts), oz - sum(reference_counts))


@dataclass(frozen=True)
class Paired:
    """A method against a baseline on the same functions."""

    interval: tuple[float, float] | None  # of share(method) − share(baseline), paired bootstrap
    ahead: int  # functions where the method leaves fewer instructions than the baseline
    behind: int  # and more


def paired(
    oz_counts: Sequence[int],
    counts: Sequence[int],
    baseline_counts: Sequence[int],
    reference_counts: Sequence[int],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> Paired:
    """``counts`` against ``baseline_counts``: the 95% interval of the difference of their shares
    of the reference's gain (``fraction_interval`` with ``minus``: the same resampled functions
    for both), and the functions where each is ahead. Resampling follows the order of the
    functions, so two callers that list them alike get the same interval."""
    if len(baseline_counts) != len(counts):
        raise ValueError("baseline_counts and counts differ in length")
    pairs = list(zip(counts, baseline_counts, strict=True))
    interval = fraction_interval(
        oz_counts, counts, reference_counts, minus=baseline_counts, resamples=resamples, seed=seed
    )
    return Paired(
        interval=interval,
        ahead=sum(c < b for c, b in pairs),
        behind=sum(c > b for c, b in pairs),
    )


def share_points(
    oz_counts: Sequence[int],
    counts: Sequence[int],
    reference_counts: Sequence[int],
    baselines: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """A method's share of the reference's gain in percent points as the benchmarks store it:
    ``share`` and its ``interval`` (to 0.01 points), ``improved`` (functions below ``-Oz``),
    and per baseline ``vs NAME`` (the paired interval of the difference), ``ahead of NAME``
    and ``behind NAME``."""
    share = gain_share(oz_counts, counts, reference_counts)
    out: dict[str, Any] = {
        "share": None if share is None else round(100 * share, 2),
        "interval": _points(fraction_interval(oz_counts, counts, reference_counts)),
        "improved": improvement(oz_counts, counts).improved,
    }
    for name, base in (baselines or {}).items():
        against = paired(oz_counts, counts, base, reference_counts)
        out[f"vs {name}"] = _points(against.interval)
        out[f"ahead of {name}"] = against.ahead
        out[f"behind {name}"] = against.behind
    return out


def _points(interval: tuple[float, float] | None) -> list[float] | None:
    """An interval of a share in percent points, rounded as ``stored_interval`` rounds it."""
    stored = stored_interval(interval)
    return None if stored is None else [round(100 * v, 2) for v in stored]
