"""A result store: (IR hash, pass list, LLVM version) -> instruction count or error.

Backed by SQLite so that an interrupted search loses nothing it committed and a re-run compiles
nothing twice: every batch of results is committed in one transaction, and every compile is
looked up here first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from passlm.errors import InputError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    ir_hash TEXT NOT NULL,
    passes TEXT NOT NULL,
    llvm TEXT NOT NULL,
    count INTEGER,          -- NULL when the compile failed
    error_kind TEXT,        -- llvm | crash | timeout | invalid-ir, NULL on success
    error TEXT,
    seconds REAL NOT NULL,  -- compile time, so time budgets replay identically on resume
    PRIMARY KEY (ir_hash, passes, llvm)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Trial:
    """One stored compile: the count, or the kind of error it ended in."""

    count: int | None
    error_kind: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the compile succeeded."""
        return self.error_kind is None


class TrialStore:
    """Trials of one LLVM version in a SQLite file (``:memory:`` for a throw-away store)."""

    def __init__(self, path: str | Path, llvm_version: str) -> None:
        self.path = str(path)
        self.llvm = llvm_version
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: not a passlm result store ({exc})") from None

    def lookup(self, ir_hash: str, passes: Iterable[str]) -> dict[str, Trial]:
        """The stored trials among ``passes`` (pass-list strings) for one IR."""
        wanted = list(dict.fromkeys(passes))
        found: dict[str, Trial] = {}
        for start in range(0, len(wanted), 500):  # SQLite bounds the number of parameters
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT passes, count, error_kind, error, seconds FROM trials "
                f"WHERE ir_hash = ? AND llvm = ? AND passes IN ({marks})",
                [ir_hash, self.llvm, *part],
            )
            for passes_text, *fields in rows:
                found[passes_text] = Trial(*fields)
        return found

    def all_for(self, ir_hash: str) -> dict[str, Trial]:
        """Every stored trial of one IR."""
        rows = self.db.execute(
            "SELECT passes, count, error_kind, error, seconds FROM trials "
            "WHERE ir_hash = ? AND llvm = ?",
            (ir_hash, self.llvm),
        )
        return {p: Trial(*fields) for p, *fields in rows}

    def add(self, rows: Sequence[tuple[str, str, Trial]]) -> None:
        """Store ``(ir_hash, passes, trial)`` rows in one transaction."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(h, p, self.llvm, t.count, t.error_kind, t.error, t.seconds) for h, p, t in rows],
            )

    def __len__(self) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM trials WHERE llvm = ?", (self.llvm,)
        ).fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        self.db.close()
