"""The outcome table: what each of the training split's popular best lists does to every training
function, next to that function's IR features. It is what the guided search
(:mod:`passlm.search.guided`) reads to decide which list to compile next.

One row per training function: its -Oz count, the count after each list (null where the compile
failed), and its IR feature counts (:func:`passlm.llvm.ir.ir_features`) in the column
order of ``feature_keys``. The lists are the training split's most frequent best lists, -Oz and
deny-listed ones left out (:class:`passlm.evaluate.baselines.PopularLists`' order, which is also
the guided search's tie-break). Building it compiles every list on every training function;
the compiles go through a result store so that a killed build resumes where it stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from passlm import __version__
from passlm.errors import InputError
from passlm.llvm.backend import Compiler, Result, Task
from passlm.llvm.ir import ir_features
from passlm.llvm.passes import OZ, PassList, parse_pass_list
from passlm.search.features import log_counts
from passlm.search.store import Trial, TrialStore
from passlm.search.tuned import read_tuned
from passlm.tables import read_rows, write_rows

KIND = "outcomes"
SHIPPED = Path(__file__).with_name("default_outcomes.parquet")
SCHEMA = pa.schema(
    [
        ("hash", pa.string()),
        ("oz_count", pa.int32()),
        ("counts", pa.list_(pa.int32())),  # one per list; null: the compile failed
        ("features", pa.list_(pa.int32())),  # ir_features counts in feature_keys order
    ]
)


@dataclass(frozen=True)
class OutcomeRow:
    """One training function: -Oz, every list's count, its IR feature counts."""

    hash: str
    oz_count: int
    counts: list[int | None]
    features: list[int]


@dataclass(frozen=True)
class OutcomeTable:
    """The rows, the lists they were compiled with, the feature names, and provenance."""

    lists: tuple[PassList, ...]
    feature_keys: tuple[str, ...]
    rows: tuple[OutcomeRow, ...]
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        for r in self.rows:
            if len(r.counts) != len(self.lists) or len(r.features) != len(self.feature_keys):
                raise ValueError(
                    f"row {r.hash}: {len(r.counts)} counts and {len(r.features)} features for "
                    f"{len(self.lists)} lists and {len(self.feature_keys)} feature names"
                )

    def savings(self) -> np.ndarray:
        """Relative saving of every list on every row, ``(oz - count) / oz``; -1 for a failed
        compile (and the floor for a list that more than doubles the function)."""
        oz = np.array([max(r.oz_count, 1) for r in self.rows], dtype=np.float32)
        counts = np.array(
            [[np.nan if c is None else c for c in r.counts] for r in self.rows], dtype=np.float32
        ).reshape(len(self.rows), len(self.lists))
        out = (oz[:, None] - counts) / oz[:, None]
        return np.nan_to_num(np.maximum(out, -1.0), nan=-1.0).astype(np.float32)

    def feature_matrix(self) -> np.ndarray:
        """Log-scaled feature counts, ``(rows, features)``."""
        raw = np.array([r.features for r in self.rows], dtype=np.float32)
        return np.log1p(raw.reshape(len(self.rows), len(self.feature_keys)))

    def vector(self, ir: str) -> np.ndarray:
        """``ir``'s log-scaled features in this table's columns (names it lacks are dropped)."""
        return log_counts([ir_features(ir)], self.feature_keys)[0]


def coverage_order(savings: np.ndarray) -> list[int]:
    """Column indices of ``savings`` (rows x lists, relative savings) in greedy coverage order:
    each next list is the one with the largest total *marginal* saving over the rows, measured
    against the best of the lists before it there (ties: the lower index). A list that only wins
    where an earlier one already wins comes late, however often it wins."""
    rows, lists = savings.shape
    covered = np.zeros(rows, dtype=np.float32)
    order: list[int] = []
    left = np.ones(lists, dtype=bool)
    for _ in range(lists):
        gain = np.maximum(savings - covered[:, None], 0.0).sum(axis=0)
        gain[~left] = -1.0
        j = int(np.argmax(gain))
        order.append(j)
        left[j] = False
        covered = np.maximum(covered, savings[:, j])
    return order


def canonical_winners(table: OutcomeTable) -> dict[str, tuple[PassList, int]]:
    """Per training function of ``table`` where a list beats -Oz: the one list that answers it,
    (list, count). Of the lists that reach its lowest count, the first in the table's
    :func:`coverage_order`: lists that do the same thing to a function share one label, the one
    that covers the most functions, so that a model ranking lists by probability learns
    distinct behaviours rather than spellings of one."""
    from passlm.data.dataset import winning_lists

    order = coverage_order(table.savings())
    out = {}
    for r in table.rows:
        # the lists in coverage order: the first that reaches the lowest count answers
        won = winning_lists(r.oz_count, [(table.lists[j], r.counts[j]) for j in order], 1)
        if won:
            out[r.hash] = won[0]
    return out


def rank_popular(
    best_lists: Sequence[str], allows: Callable[[PassList], bool] | None = None
) -> tuple[list[PassList], Counter[PassList]]:
    """Best lists by how many functions they won, most first (ties by name), -Oz and the lists
    ``allows`` refuses left out; and the win counts."""
    wins = Counter(parse_pass_list(p) for p in best_lists)
    ranked = sorted((p for p in wins if p != OZ), key=lambda p: (-wins[p], str(p)))
    return [p for p in ranked if allows is None or allows(p)], wins


def default_outcomes_path() -> Path:
    """The outcome table shipped with passlm (built from the committed tuned data)."""
    return SHIPPED


def write_outcomes(path: str | Path, table: OutcomeTable) -> None:
    """Write ``table`` as a zstd Parquet artifact (atomically)."""
    meta = {
        **table.meta,
        "lists": [str(p) for p in table.lists],
        "feature_keys": list(table.feature_keys),
    }
    write_rows(path, table.rows, SCHEMA, KIND, meta)


def read_outcomes(path: str | Path) -> OutcomeTable:
    """Read an outcome table; a clear error for anything else."""
    rows, meta = read_rows(path, KIND, OutcomeRow)
    try:
        lists = tuple(parse_pass_list(p) for p in meta["lists"])
        keys = tuple(str(k) for k in meta["feature_keys"])
        return OutcomeTable(lists, keys, tuple(rows), meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a valid passlm outcomes file ({exc})") from None


def build_outcomes(
    functions: Sequence[tuple[str, str]],
    lists: Sequence[PassList],
    compiler: Compiler,
    store: TrialStore,
    meta: dict[str, Any],
    *,
    chunk: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> OutcomeTable:
    """Compile -Oz and every list on every ``(hash, ir)`` function, through ``store``.

    Compiles already in the store are not run again, and each chunk's results are committed
    before the next starts, so an interrupted build loses at most one chunk.
    """
    if not functions:
        raise InputError("no training functions to build an outcome table from")
    if not lists:
        raise InputError("no pass lists to build an outcome table from")
    wanted = [OZ, *lists]
    texts = [str(p) for p in wanted]
    rows: list[OutcomeRow] = []
    feats: list[Counter[str]] = []
    for start in range(0, len(functions), chunk):
        part = functions[start : start + chunk]
        known = [store.lookup(h, texts) for h, _ in part]
        tasks = [
            (i, t, Task(ir, p))
            for i, (_, ir) in enumerate(part)
            for t, p in zip(texts, wanted, strict=True)
            if t not in known[i]
        ]
        results: list[Result] = compiler.run_tasks([task for _, _, task in tasks])
        new = []
        for (i, text, _), r in zip(tasks, results, strict=True):
            trial = Trial(r.count if r.ok else None, r.error_kind, r.error, r.seconds)
            known[i][text] = trial
            new.append((part[i][0], text, trial))
        store.add(new)
        for (h, ir), found in zip(part, known, strict=True):
            oz = found[texts[0]]
            if oz.count is None:  # -Oz itself failed: nothing to measure the lists against
                continue
            feats.append(ir_features(ir))
            counts = [found[t].count for t in texts[1:]]
            rows.append(OutcomeRow(h, oz.count, counts, []))
        if progress is not None:
            progress(min(start + chunk, len(functions)), len(functions))
    keys = tuple(sorted({k for f in feats for k in f}))
    rows = [
        OutcomeRow(r.hash, r.oz_count, r.counts, [f.get(k, 0) for k in keys])
        for r, f in zip(rows, feats, strict=True)
    ]
    return OutcomeTable(tuple(lists), keys, tuple(rows), meta)


def outcomes_from_tuned(
    tuned: str | Path,
    compiler: Compiler,
    store: TrialStore,
    *,
    lists: int = 60,
    split: str = "train",
    allows: Callable[[PassList], bool] | None = None,
    command: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> OutcomeTable:
    """The outcome table of a tuned data set's ``split``: its ``lists`` most popular best lists
    (deny-listed ones left out) compiled on each of its functions."""
    rows, meta = read_tuned(tuned)
    chosen = [r for r in rows if r.split == split]
    if not chosen:
        raise InputError(f"{tuned}: no functions in split {split!r}")
    popular, wins = rank_popular([r.best_passes for r in chosen], allows)
    popular = popular[:lists]
    about = {
        "passlm_version": __version__,
        "llvm_version": meta.get("llvm_version"),
        "tuned": str(tuned),
        "tuned_command": meta.get("command"),
        "split": split,
        "wins": [wins[p] for p in popular],
        "command": command,
    }
    return build_outcomes(
        [(r.hash, r.ir) for r in chosen], popular, compiler, store, about, progress=progress
    )
