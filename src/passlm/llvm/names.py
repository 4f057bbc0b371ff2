"""Anonymized names: a function's IR with its globals, callees and struct types renumbered.

The corpus IR numbers its local values already (clang discards value names), but a function
still carries the names of the module's globals, the functions it calls and its struct types.
A tokenizer learns the training code bases' names as whole tokens and splits every other name
into pieces: on the held-out and unseen code bases such names are 22-23% of a prompt's tokens,
against 5-7.5% on val and test (``reports/model/anonymized_names``). A model trained on
anonymized prompts reads every code base's names alike: each is replaced by one numbered in
order of first use in the function's unoptimized IR (``@g0``, ``%struct.T0``).

Kept as they are: ``llvm.*`` intrinsics and the library functions LLVM recognizes by name
(``library_names.txt``, from LLVM's ``TargetLibraryInfo.def``), because passes treat them by
name (``memcpy``, ``printf``...). Only what the model reads and writes is renamed: the compiler
always runs on the function's own IR, so counts never change.

A comdat takes the new name of the global it is named after (renamed IR must still parse); an
``@`` inside a string constant, an attribute or a comment is text and stays as it is.

A :class:`Renaming` is taken from the unoptimized IR and applied to every other text about the
same function (its -Oz output, its optimized IR), so that a name means the same in all of them;
a name only those texts have is numbered after the unoptimized IR's, anew in each text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LIBRARY_FILE = Path(__file__).with_name("library_names.txt")

# Names kept are the model's "what it reads" contract: names.py and the data sets must agree.
NAMES_KEPT, NAMES_ANONYMIZED = "kept", "anonymized"
NAMES_KINDS = (NAMES_KEPT, NAMES_ANONYMIZED)

_GLOBAL = re.compile(r'@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._][-a-zA-Z$._0-9]*)')
_TYPE = re.compile(
    r'%("(?:struct|union|class)\.(?:[^"\\]|\\.)*"|(?:struct|union|class)\.[-a-zA-Z$._0-9]+)'
)
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_BARE = r"[-a-zA-Z$._0-9]+"
# One token at a time, left to right, so that a quote or an @ inside a string constant, an
# attribute or a comment is never read as a name, and a quoted name's closing quote is never
# read as the start of a string. Unquoted local values (%0, %5) are not matched at all.
_TOKEN = re.compile(
    rf"(?:;[^\n]*|{_QUOTED}|[@$](?:{_QUOTED}|{_BARE})|%(?:{_QUOTED}|(?:struct|union|class)\.{_BARE}))"
)


@functools.cache
def library_names() -> frozenset[str]:
    """The library functions LLVM 19 recognizes by name (kept by every renaming)."""
    lines = LIBRARY_FILE.read_text().splitlines()
    return frozenset(n for n in lines if n and not n.startswith("#"))


@dataclass(frozen=True)
class Renaming:
    """New names for one function's globals (``@name`` -> ``g<i>``) and struct types
    (``%struct.name`` -> ``struct.T<i>``), keys as they are spelled in the IR."""

    globals: Mapping[str, str] = field(default_factory=dict)
    types: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, ir: str) -> Renaming:
        """The renaming of ``ir``'s names, numbered in order of first use."""
        globals_: dict[str, str] = {}
        types: dict[str, str] = {}
        _rename(ir, globals_, types)
        return cls(globals_, types)

    def apply(self, ir: str) -> str:
        """``ir`` with this renaming's names replaced; names it lacks are numbered after its
        own, in order of first use in ``ir``."""
        return _rename(ir, dict(self.globals), dict(self.types))


def _rename(ir: str, globals_: dict[str, str], types: dict[str, str]) -> str:
    """``ir`` renamed with ``globals_`` and ``types``, which gain its new names."""
    keep = library_names()

    def global_name(m: re.Match) -> str:
        bare = m.group(1).strip('"')
        if bare in keep or bare.startswith("llvm."):
            return m.group(0)
        return "@" + globals_.setdefault(m.group(1), f"g{len(globals_)}")

    def type_name(m: re.Match) -> str:
        kind = m.group(1).strip('"').split(".", 1)[0]
        return "%" + types.setdefault(m.group(1), f"{kind}.T{len(types)}")

    def token(m: re.Match) -> str:
        text = m.group(0)
        if text[0] == "@" and not text[1].isdigit():  # @0 is a numbered (unnamed) global
            return global_name(_GLOBAL.match(text))
        if text[0] == "%" and (found := _TYPE.fullmatch(text)):
            return type_name(found)
        return text  # a comment, a string, a quoted local value; comdats come after

    def comdat(m: re.Match) -> str:
        # a comdat is named after the global it belongs to (implicitly, `comdat` alone), so it
        # takes that global's new name; IR that renamed one but not the other does not parse
        text = m.group(0)
        return "$" + globals_[text[1:]] if text[0] == "$" and text[1:] in globals_ else text

    if _plain(ir):  # the common case, and 2.5x faster: every @ and % here is a name
        out = _TYPE.sub(type_name, _GLOBAL.sub(global_name, ir))
    else:
        out = _TOKEN.sub(token, ir)
    return _TOKEN.sub(comdat, out) if "$" in out else out


def _plain(ir: str) -> bool:
    """Whether ``ir`` has no comment and no quoted text with ``@``, ``%`` or ``$`` in it (LLVM
    escapes a quote inside quotes as ``\\22``, so every other piece between quotes is inside)."""
    return ";" not in ir and not any(c in part for part in ir.split('"')[1::2] for c in "@%$")


def renamer(ir: str, anonymized: bool) -> Callable[[str], str]:
    """What every text about the function ``ir`` goes through: its :class:`Renaming` when
    ``anonymized``, else nothing."""
    return Renaming.of(ir).apply if anonymized else str


def anonymize(ir: str) -> str:
    """``ir`` with its global and struct-type names renumbered in order of first use."""
    return Renaming.of(ir).apply(ir)
