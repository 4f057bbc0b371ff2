"""What goes wrong in the IR a model writes: the error taxonomy of the paper's Table V.

Each generated module that fails to parse or verify is put in one class by the first error
LLVM 19 reports (the messages are LLVM's own: see tests/test_report.py for real ones).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

INCOMPLETE = "incomplete (no closing code block)"
# (class, pattern on LLVM's first error line), most specific first; the paper's names
TAXONOMY: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("type error", re.compile(r"defined with type|but expected '|type mismatch|invalid cast|"
                              r"invalid operand type|operands? must|must have .* type")),
    ("instruction forward referenced", re.compile(r"forward referenced")),
    ("undefined function", re.compile(r"use of undefined value '@|undefined function")),
    ("undefined value", re.compile(r"use of undefined (?:value|metadata|type)")),
    ("invalid redefinition", re.compile(r"redefinition|multiple definition|"
                                        r"expected to be numbered")),
    ("invalid value for constant", re.compile(r"constant invalid|constant must|"
                                              r"invalid (?:value|constant)")),
    ("index error", re.compile(r"ind(?:ex|ices)|out of range")),
    ("does not verify", re.compile(r"does not verify")),
    ("syntax error", re.compile(r"expected |syntax|invalid token|unterminated|lexer|unknown")),
)  # fmt: skip
OTHER = "other"
CLASSES = (*(name for name, _ in TAXONOMY), INCOMPLETE, OTHER)


def classify_error(message: str | None) -> str:
    """The Table V class of a generated module's first parse/verify error."""
    if not message:
        return OTHER
    if message.startswith("no complete <code> block"):
        return INCOMPLETE
    for name, pattern in TAXONOMY:
        if pattern.search(message):
            return name
    return OTHER


def taxonomy(errors: Iterable[str | None]) -> dict[str, int]:
    """Errors per class, in the table's order (classes with none left out)."""
    counts = Counter(classify_error(e) for e in errors)
    return {name: counts[name] for name in CLASSES if counts[name]}
