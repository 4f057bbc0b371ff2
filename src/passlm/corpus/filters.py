"""The size filter: which one-function modules are too large or too small to keep."""

from __future__ import annotations

from dataclasses import dataclass

from passlm.llvm.ir import count_instructions, normalize

# drop reasons, in the order the summary lists them
TOO_LARGE_CHARS = "too_large_chars"
TOO_LARGE_INSTRUCTIONS = "too_large_instructions"
TOO_SMALL = "too_small"
EXTRACT_FAILED = "extract_failed"
DUPLICATE = "duplicate"
EXCLUDED = "in_excluded_corpus"  # already in a corpus the recipe excludes (the training one)
DROP_REASONS = (
    DUPLICATE,
    TOO_LARGE_CHARS,
    TOO_LARGE_INSTRUCTIONS,
    TOO_SMALL,
    EXTRACT_FAILED,
    EXCLUDED,
)

_HEADER_SLACK = 200  # characters extraction might remove from a definition line


@dataclass(frozen=True)
class SizeLimits:
    """Bounds on a kept module; every bound is recorded in the corpus metadata."""

    max_chars: int = 8000  # characters of normalized IR: bounds the model's prompt length
    max_instructions: int | None = None  # instructions in the module, None = no bound
    min_instructions: int = 0  # drop trivial functions below this many instructions

    def __post_init__(self) -> None:
        if self.max_chars <= 0:
            raise ValueError(f"max_chars must be positive, got {self.max_chars}")
        if self.max_instructions is not None and self.max_instructions <= 0:
            raise ValueError(f"max_instructions must be positive, got {self.max_instructions}")
        if self.min_instructions < 0:
            raise ValueError(f"min_instructions must be >= 0, got {self.min_instructions}")
        if self.max_instructions is not None and self.min_instructions > self.max_instructions:
            raise ValueError("min_instructions is larger than max_instructions")

    def reason(self, chars: int, instructions: int) -> str | None:
        """Why a module of this size is dropped, or None when it is kept."""
        if chars > self.max_chars:
            return TOO_LARGE_CHARS
        if self.max_instructions is not None and instructions > self.max_instructions:
            return TOO_LARGE_INSTRUCTIONS
        if instructions < self.min_instructions:
            return TOO_SMALL
        return None

    def reason_before_extract(self, body: str) -> str | None:
        """A drop decided from a function's definition text alone, before extracting it.

        Extraction adds declarations and globals around the body and may only rewrite its
        header (linkage), so a body already well over the limit (normalized, with
        :data:`_HEADER_SLACK` characters of margin) or with too many instructions stays so;
        this saves one ``llvm-extract`` per hopeless function. The exact check follows.
        """
        if len(normalize(body)) > self.max_chars + _HEADER_SLACK:
            return TOO_LARGE_CHARS
        if self.max_instructions is not None and count_instructions(body) > self.max_instructions:
            return TOO_LARGE_INSTRUCTIONS
        return None
