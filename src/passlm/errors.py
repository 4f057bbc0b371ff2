"""Typed, one-line errors.

Every error a user can cause derives from :class:`PasslmError`; the CLI prints its message on
one line and exits with status 2 instead of dumping a traceback.
"""

from __future__ import annotations


class PasslmError(Exception):
    """Base class of every error passlm reports to a user."""


class InputError(PasslmError):
    """An input file is missing, empty, unreadable or of an unsupported kind."""


class ToolNotFound(PasslmError):
    """A required LLVM tool or library is not installed (or is the wrong version)."""


class SourceCompileError(PasslmError):
    """clang could not compile a C/C++ source file."""


class InvalidIR(PasslmError):
    """LLVM IR text or bitcode that does not parse or verify."""


class UnknownPass(PasslmError):
    """A pass name that is not in the action space."""


class InvalidPassList(PasslmError):
    """A pass list that is malformed (empty, repeated O-level, bad syntax)."""


class CommandFailed(PasslmError):
    """A child process exited with a non-zero status or was killed by a signal."""

    def __init__(self, message: str, *, detail: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message  # the most informative line of stderr
        self.stderr = stderr


class CommandTimeout(PasslmError):
    """A child process ran past its time limit and was killed."""


class CompileTimeout(PasslmError):
    """A compile task ran past its time limit; its worker was replaced."""


class CompilerCrash(PasslmError):
    """A compile task killed its worker process (LLVM abort, segfault, OOM)."""
