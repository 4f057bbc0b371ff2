"""Pass lists that LLVM 19 is known to get wrong; the strategies and the data set skip them.

Each entry comes from a finding of ``passlm verify`` (a miscompile or crash with its
reproducer) or from the autotuner (a list whose result changes from run to run). An entry
matches a list exactly (``"list"``) or matches every list that runs a given pass (``"pass"``).
The shipped list lives next to this module (``denylist.json``); another file can be named by
``PASSLM_DENYLIST``.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from passlm.errors import InputError, PasslmError
from passlm.llvm.passes import PassList, parse_pass_list

SHIPPED = Path(__file__).with_name("denylist.json")
MATCHES = ("list", "pass")
KINDS = ("miscompile", "crash", "hang", "nondeterministic")


@dataclass(frozen=True)
class Entry:
    """One denied list (or pass) and why."""

    passes: PassList
    match: str  # "list" or "pass"
    kind: str  # one of KINDS
    reason: str
    reproducer: str = ""

    def matches(self, passes: PassList) -> bool:
        """Does ``passes`` fall under this entry?"""
        if self.match == "list":
            return tuple(passes) == tuple(self.passes)
        return any(p in passes.passes for p in self.passes)


@dataclass(frozen=True)
class DenyList:
    """The entries of one deny-list file for one LLVM version."""

    llvm: str
    entries: tuple[Entry, ...]

    def find(self, passes: PassList) -> Entry | None:
        """The first entry that denies ``passes``, or None when it may be used."""
        return next((e for e in self.entries if e.matches(passes)), None)

    @property
    def banned_passes(self) -> frozenset[str]:
        """Passes no list may run at all (the ``"pass"`` entries): never worth decoding."""
        return frozenset(name for e in self.entries if e.match == "pass" for name in e.passes)

    def allows(self, passes: PassList) -> bool:
        """True when no entry denies ``passes``."""
        return self.find(passes) is None


def parse_denylist(text: str, *, name: str = "deny list") -> DenyList:
    """Read a deny list from its JSON text; errors name the file and the bad entry."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}: not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
        raise InputError(f"{name}: expected an object with an 'entries' list")
    entries = []
    for i, item in enumerate(raw["entries"]):
        where = f"{name}: entry {i + 1}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object")
        match, kind = item.get("match", "list"), item.get("kind", "miscompile")
        if match not in MATCHES:
            raise InputError(f"{where}: match must be one of {', '.join(MATCHES)}, not {match!r}")
        if kind not in KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        try:
            passes = parse_pass_list(item.get("passes", ""))
        except PasslmError as exc:
            raise InputError(f"{where}: {exc}") from None
        entries.append(
            Entry(passes, match, kind, str(item.get("reason", "")), str(item.get("reproducer", "")))
        )
    return DenyList(str(raw.get("llvm", "")), tuple(entries))


def load_denylist(path: str | Path | None = None) -> DenyList:
    """The deny list at ``path``, else ``$PASSLM_DENYLIST``, else the shipped one."""
    chosen = Path(path or os.environ.get("PASSLM_DENYLIST") or SHIPPED)
    return _load(str(chosen.resolve()) if chosen.exists() else str(chosen))


@functools.lru_cache(maxsize=8)
def _load(path: str) -> DenyList:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the deny list: {exc.strerror}") from None
    return parse_denylist(text, name=path)
