"""Put per-function modules back together: each function optimized with its own pass list.

:func:`~passlm.llvm.ir.split_functions` gives every defined function a module of its own
(``llvm-extract``: the other functions and the globals become hidden external declarations).
Linking those modules back needs the globals' definitions, which a *shell* of the original
module provides (every function body deleted, the globals kept and made hidden external too).
After ``llvm-link``, ``internalize`` restores local linkage to every symbol that was local in
the original, so the result has the original's interface and can be linked into a program.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from passlm.errors import CommandFailed, InvalidIR
from passlm.llvm.ir import parse_error
from passlm.llvm.toolchain import Toolchain
from passlm.process import run_command

LINK_TIMEOUT = 120.0

_NAME = r'@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)'
_DEFINE = re.compile(r"^define\s+([^@]*)" + _NAME)
_GLOBAL = re.compile(r"^" + _NAME + r"\s*=\s*(.*)$")
_LOCAL_LINKAGE = ("internal", "private")
_DECLARATION_LINKAGE = ("external", "extern_weak")


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name


def public_symbols(ir: str) -> list[str]:
    """Names of the symbols ``ir`` defines with non-local linkage (its interface), in order."""
    names = []
    for raw in ir.splitlines():
        line = raw.strip()
        if m := _DEFINE.match(line):
            words = m.group(1).split()
            if not words or words[0] not in _LOCAL_LINKAGE:
                names.append(_unquote(m.group(2)))
        elif m := _GLOBAL.match(line):
            words = m.group(2).split()
            if words and words[0] in _LOCAL_LINKAGE + _DECLARATION_LINKAGE:
                continue
            if not _unquote(m.group(1)).startswith("llvm."):
                names.append(_unquote(m.group(1)))
    return names


def _run(args: list[str], what: str, *, input: bytes | None = None) -> str:
    try:
        return run_command(args, input=input, timeout=LINK_TIMEOUT).text
    except CommandFailed as exc:
        raise InvalidIR(f"{what}: {parse_error(exc.stderr) or exc.detail}") from None


def shell_module(ir: str, toolchain: Toolchain) -> str:
    """``ir`` without any function body: the globals' definitions and every declaration."""
    return _run(
        [toolchain.llvm_extract, "--delete", "--rfunc=.*", "-S", "-o", "-", "-"],
        "cannot separate the globals of the module",
        input=ir.encode("utf-8"),
    )


def link_functions(ir: str, functions: Mapping[str, str], toolchain: Toolchain) -> str:
    """One module from the original ``ir`` and a module per defined function.

    ``functions`` maps each function name to a module that defines it (typically the output of
    a pass list run on that function's split module). Raises :class:`InvalidIR` naming the
    problem when the parts do not link or the result does not verify.
    """
    public = public_symbols(ir)
    with tempfile.TemporaryDirectory(prefix="passlm-link-") as tmp:
        d = Path(tmp)
        parts = [d / "shell.ll"]
        parts[0].write_text(shell_module(ir, toolchain), encoding="utf-8")
        for i, text in enumerate(functions.values()):
            parts.append(d / f"f{i}.ll")
            parts[-1].write_text(text, encoding="utf-8")
        linked = d / "linked.bc"
        _run(
            [toolchain.llvm_link, *map(str, parts), "-o", str(linked)],
            "the optimized functions do not link back into one module",
        )
        api = d / "public.txt"
        api.write_text("".join(f"{name}\n" for name in public), encoding="utf-8")
        return _run(
            [
                toolchain.opt,
                "-passes=internalize,verify",
                f"-internalize-public-api-file={api}",
                "-S",
                "-o",
                "-",
                "-",
            ],
            "the linked module does not verify",
            input=linked.read_bytes(),  # from stdin: no temporary path in the ModuleID line
        )
