"""The corpus on disk: one Parquet file, one row per unique function, metadata under ``passlm``.

Columns: ``hash`` (``ir.content_hash`` of the module), ``ir`` (normalized one-function module),
``function``, ``source`` (``pypi:lz4==4.4.5``, ``csmith``, ``dir:NAME``), ``file`` (relative to
the source root), ``split`` (train/val/test/heldout), ``instcount`` (int32), ``chars`` (int32).
Rows are sorted by (split, source, file, function). The file-level key ``passlm`` holds JSON
metadata: versions, IR recipe, command, recipe, seed, splits, holdout, limits, summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from passlm.corpus.splits import SPLITS
from passlm.errors import InputError
from passlm.tables import read_meta, read_rows, write_rows

KIND = "corpus"
SCHEMA = pa.schema(
    [
        ("hash", pa.string()),
        ("ir", pa.string()),
        ("function", pa.string()),
        ("source", pa.string()),
        ("file", pa.string()),
        ("split", pa.string()),
        ("instcount", pa.int32()),
        ("chars", pa.int32()),
    ]
)


@dataclass(frozen=True)
class CorpusFunction:
    """One row of the corpus."""

    hash: str
    ir: str
    function: str
    source: str
    file: str
    split: str
    instcount: int
    chars: int

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} is not one of {', '.join(SPLITS)}")

    def sort_key(self) -> tuple[str, str, str, str]:
        """The corpus row order: (split, source, file, function)."""
        return (self.split, self.source, self.file, self.function)


def write_corpus(rows: Iterable[CorpusFunction], path: str | Path, meta: dict[str, Any]) -> None:
    """Write rows (sorted here) and metadata as zstd Parquet, atomically."""
    write_rows(path, sorted(rows, key=CorpusFunction.sort_key), SCHEMA, KIND, meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``passlm`` metadata of a corpus file, without reading its rows."""
    return read_meta(path, KIND)


def read_corpus(path: str | Path) -> tuple[list[CorpusFunction], dict[str, Any]]:
    """All rows and the metadata of a corpus file."""
    return read_rows(path, KIND, CorpusFunction)


def prepare_output(path: str | Path) -> Path:
    """Check an output path before a long build: create its directory, refuse a directory."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a .parquet file path")
    if path.suffix != ".parquet":
        raise InputError(f"{path}: expected a .parquet file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path.parent}: cannot create directory ({exc.strerror})") from None
    return path
