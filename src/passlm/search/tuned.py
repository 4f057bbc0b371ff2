"""The tuned data set: per function, the best pass list, its counts and its optimized IR."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from passlm.tables import read_rows, write_rows

KIND = "tuned"

SCHEMA = pa.schema(
    [
        ("hash", pa.string()),
        ("function", pa.string()),
        ("source", pa.string()),
        ("file", pa.string()),
        ("split", pa.string()),
        ("ir", pa.string()),  # normalized unoptimized module
        ("o0_count", pa.int32()),
        ("oz_count", pa.int32()),
        ("best_passes", pa.string()),  # e.g. "-reg2mem -instcombine -Os"
        ("best_count", pa.int32()),
        ("optimized_ir", pa.string()),  # normalized output of best_passes
        ("trials", pa.int32()),  # unique pass lists compiled for this function
        ("errors", pa.int32()),  # of which failed (crash, timeout, LLVM error)
        ("error_kinds", pa.string()),  # e.g. "crash:1,llvm:2"
    ]
)


@dataclass(frozen=True)
class TunedFunction:
    """One row of the tuned data set."""

    hash: str
    function: str
    source: str
    file: str
    split: str
    ir: str
    o0_count: int
    oz_count: int
    best_passes: str
    best_count: int
    optimized_ir: str
    trials: int
    errors: int
    error_kinds: str

    @property
    def improvement(self) -> float:
        """Fraction of -Oz's instructions this function's best list saves (negative: worse)."""
        return (self.oz_count - self.best_count) / self.oz_count if self.oz_count else 0.0


def write_tuned(path: str | Path, rows: list[TunedFunction], meta: dict[str, Any]) -> None:
    """Write the tuned data set atomically."""
    write_rows(path, rows, SCHEMA, KIND, meta)


def read_tuned(path: str | Path) -> tuple[list[TunedFunction], dict[str, Any]]:
    """Read a tuned data set and its metadata."""
    return read_rows(path, KIND, TunedFunction)
