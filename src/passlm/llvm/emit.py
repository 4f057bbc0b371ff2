"""Turn IR text into the other output forms, and measure object code size.

``.text`` size is passlm's second metric (the instruction count is the first): the module is
code-generated with ``llc-19`` (its default -O2 code generation, the same for every module
compared) into an object file and ``llvm-size-19`` reports the ``.text`` section.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from passlm.errors import CommandFailed, InputError, InvalidIR
from passlm.llvm.ir import parse_error
from passlm.llvm.toolchain import Toolchain
from passlm.process import run_command

EMIT_KINDS = ("ll", "bc", "obj")
TIMEOUT = 300.0


def object_code(ir: str, toolchain: Toolchain) -> bytes:
    """The module as a relocatable object file for its target triple."""
    with tempfile.TemporaryDirectory(prefix="passlm-emit-") as tmp:
        out = Path(tmp) / "module.o"
        try:
            run_command(
                [toolchain.llc, "-filetype=obj", "-o", str(out), "-"],
                input=ir.encode("utf-8"),
                timeout=TIMEOUT,
            )
        except CommandFailed as exc:
            raise InvalidIR(f"code generation failed: {parse_error(exc.stderr)}") from None
        return out.read_bytes()


def bitcode(ir: str, toolchain: Toolchain) -> bytes:
    """The module as LLVM bitcode."""
    try:
        return run_command(
            [toolchain.llvm_as, "-o", "-", "-"], input=ir.encode("utf-8"), timeout=TIMEOUT
        ).stdout
    except CommandFailed as exc:
        raise InvalidIR(f"cannot write bitcode: {parse_error(exc.stderr)}") from None


def text_size(ir: str, toolchain: Toolchain) -> int:
    """Bytes in the ``.text`` section(s) of the module's object code."""
    with tempfile.TemporaryDirectory(prefix="passlm-size-") as tmp:
        obj = Path(tmp) / "module.o"
        obj.write_bytes(object_code(ir, toolchain))
        out = run_command([toolchain.llvm_size, "-A", str(obj)], timeout=60).text
    total = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".text") and parts[1].isdigit():
            total += int(parts[1])
    return total


def emit(ir: str, kind: str, toolchain: Toolchain) -> str | bytes:
    """``ir`` as text (``ll``), bitcode (``bc``) or an object file (``obj``)."""
    if kind == "ll":
        return ir
    if kind == "bc":
        return bitcode(ir, toolchain)
    if kind == "obj":
        return object_code(ir, toolchain)
    raise InputError(f"--emit: expected one of {', '.join(EMIT_KINDS)}, not {kind!r}")
