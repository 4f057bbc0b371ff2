"""Writing output files so that a crash, Ctrl-C or full disk never leaves a partial file."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
from pathlib import Path

from passlm.errors import InputError


def check_output_file(path: str | Path, *, parent_may_be_missing: bool = False) -> Path:
    """An output file's directory; a clear error where the file could never be written: a
    directory in its place, or (unless the caller creates it) no such directory. Commands
    check it before their work."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file path")
    if parent_may_be_missing:
        return path.parent if str(path.parent) else Path(".")
    return _existing_parent(path)


def _existing_parent(path: Path) -> Path:
    """The directory ``path`` would be written in; an error where there is none."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{parent}: no such directory")
    return parent


def check_output_dir(path: str | Path) -> Path:
    """An output directory's path, refused (a clear error) where a file is in its place: it
    would be replaced, or the command would fail after its work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory")
    return path


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename."""
    path = Path(path)
    parent = check_output_file(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644 & ~_umask())  # mkstemp makes 0600; outputs are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_jsonl_gz(path: str | Path) -> list:
    """The records of a gzipped JSON-lines file; an error naming it if it is not one."""
    try:
        return [json.loads(line) for line in gzip.decompress(Path(path).read_bytes()).splitlines()]
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"{path}: not a gzipped JSON-lines file ({exc})") from None


def write_jsonl_gz(path: str | Path, records: list) -> None:
    """``records`` as a gzipped JSON-lines file, byte-for-byte repeatable, written atomically."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write(path, gzip.compress(text.encode(), mtime=0))


def atomic_write_files(out_dir: str | Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write several files into ``out_dir`` so that a crash or Ctrl-C leaves either all of
    them or none (a new directory), or at worst a few renames apart (an existing one).

    Every file is written into a staging directory beside ``out_dir`` first; a new
    ``out_dir`` is that directory renamed, an existing one gets each file moved in.
    """
    out_dir = check_output_dir(out_dir)
    parent = _existing_parent(out_dir)
    stage = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        os.chmod(stage, 0o777 & ~_umask())
        for name, data in files.items():
            atomic_write(stage / name, data)
        if not out_dir.exists():
            os.rename(stage, out_dir)
        else:
            for name in files:
                os.replace(stage / name, out_dir / name)
            stage.rmdir()
    except BaseException:
        for leftover in stage.glob("*") if stage.is_dir() else ():
            with contextlib.suppress(OSError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            stage.rmdir()
        raise
    return [out_dir / name for name in files]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_filename(name: str) -> str:
    """A function name as a file name: unsafe characters become ``_``, length is bounded."""
    cleaned = "".join(c if c.isalnum() or c in "._-$" else "_" for c in name).lstrip(".")
    return (cleaned or "_")[:200]
