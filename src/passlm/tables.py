"""Parquet files that describe themselves: one table plus passlm metadata, written atomically.

Every artifact (corpus, tuned results, data set) is a Parquet file whose file-level metadata
key ``passlm`` holds a JSON object with at least ``kind``, ``passlm_version`` and
``llvm_version``, so results from different LLVM versions are never mixed by accident.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from passlm import __version__
from passlm.errors import InputError
from passlm.files import atomic_write

META_KEY = b"passlm"
T = TypeVar("T")


def write_rows(
    path: str | Path, rows: Sequence[Any], schema: pa.Schema, kind: str, meta: dict[str, Any]
) -> None:
    """Write dataclass ``rows`` as a zstd-compressed Parquet file of ``kind`` with ``meta``.

    The file appears whole or not at all (:func:`passlm.files.atomic_write`).
    """
    columns = {name: [getattr(r, name) for r in rows] for name in schema.names}
    table = pa.table(columns, schema=schema)
    full = {"passlm_version": __version__, **meta, "kind": kind}
    table = table.replace_schema_metadata({META_KEY: json.dumps(full, sort_keys=True).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", compression_level=9)
    atomic_write(path, buf.getvalue())


def artifact_kind(path: str | Path) -> str:
    """Which passlm artifact a Parquet file is (``corpus``, ``tuned``, ``dataset``, ...)."""
    return str(_meta(Path(path), "artifact").get("kind", "unknown"))


def read_meta(path: str | Path, kind: str) -> dict[str, Any]:
    """The passlm metadata of a Parquet file, checking that it is an artifact of ``kind``."""
    path = Path(path)
    meta = _meta(path, kind)
    if meta.get("kind") != kind:
        found = meta.get("kind", "unknown")
        raise InputError(f"{path}: expected a passlm {kind} file, found a {found} file")
    return meta


def _meta(path: Path, kind: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a Parquet file ({first})") from None
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(f"{path}: not a passlm {kind} (no passlm metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise InputError(f"{path}: corrupt passlm metadata") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: corrupt passlm metadata (not an object)")
    return meta


def read_rows(path: str | Path, kind: str, row_type: type[T]) -> tuple[list[T], dict[str, Any]]:
    """Rows of a Parquet artifact of ``kind`` as ``row_type`` dataclasses, and its metadata."""
    meta = read_meta(path, kind)
    names = [f.name for f in fields(row_type)]  # type: ignore[arg-type]
    try:
        table = pq.read_table(path, columns=names)
    except (pa.ArrowException, KeyError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: not a valid passlm {kind} file ({first})") from None
    data = table.to_pydict()
    try:
        rows = [row_type(*values) for values in zip(*(data[n] for n in names), strict=True)]
    except ValueError as exc:
        raise InputError(f"{path}: not a valid passlm {kind} file: {exc}") from None
    return rows, meta
