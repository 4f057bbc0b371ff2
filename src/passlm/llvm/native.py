"""In-process LLVM: parse IR once, clone it per trial, run a pipeline, count, print.

A thin object layer over :mod:`passlm.llvm.capi`. A crash inside LLVM takes the whole process
down with it, so untrusted pass lists run here only inside :mod:`passlm.llvm.pool` workers.
"""

from __future__ import annotations

import ctypes
from ctypes import byref, c_void_p

from passlm.errors import InvalidIR
from passlm.llvm import capi
from passlm.llvm.capi import VERIFIER_RETURN_STATUS, LLVMLib

# Re-parse a module (in a fresh context) after this many clones: LLVM uniques constants and
# types per context and never frees them, so a long search would otherwise grow without bound.
CLONES_PER_CONTEXT = 2000


class NativeModule:
    """One parsed, verified module in its own LLVM context."""

    def __init__(self, lib: LLVMLib, ir: str, name: str = "input") -> None:
        self.lib = lib
        self.ir = ir
        self.name = name
        self.ctx = None
        self.mod = None
        self.clones = 0
        self._parse()

    def _parse(self) -> None:
        lib = self.lib
        ctx = lib.LLVMContextCreate()
        data = self.ir.encode("utf-8")
        buf = lib.LLVMCreateMemoryBufferWithMemoryRangeCopy(data, len(data), self.name.encode())
        mod, msg = capi.Ref(), c_void_p()
        if lib.LLVMParseIRInContext(ctx, buf, byref(mod), byref(msg)):  # takes ownership of buf
            text = lib.take_message(msg.value)
            lib.LLVMContextDispose(ctx)
            raise InvalidIR(_one_line(text) or "IR does not parse")
        msg = c_void_p()
        if lib.LLVMVerifyModule(mod, VERIFIER_RETURN_STATUS, byref(msg)):
            text = lib.take_message(msg.value)
            lib.LLVMDisposeModule(mod)
            lib.LLVMContextDispose(ctx)
            raise InvalidIR("IR does not verify: " + (_one_line(text) or "broken module"))
        lib.take_message(msg.value)
        self.ctx, self.mod = ctx, mod

    def dispose(self) -> None:
        """Free the module and its context."""
        if self.mod is not None:
            self.lib.LLVMDisposeModule(self.mod)
            self.lib.LLVMContextDispose(self.ctx)
            self.mod = self.ctx = None

    def clone(self) -> int:
        """A fresh copy of the module (an ``LLVMModuleRef``) to run passes on."""
        if self.clones >= CLONES_PER_CONTEXT:
            self.dispose()
            self._parse()
            self.clones = 0
        self.clones += 1
        return self.lib.LLVMCloneModule(self.mod)

    def triple(self) -> str:
        """The module's target triple ('' if it has none)."""
        return (self.lib.LLVMGetTarget(self.mod) or b"").decode()


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def count_module(lib: LLVMLib, mod: int) -> int:
    """Instructions in all defined functions of ``mod`` (``instcount``'s total)."""
    total = 0
    fn = lib.LLVMGetFirstFunction(mod)
    while fn:
        bb = lib.LLVMGetFirstBasicBlock(fn)
        while bb:
            inst = lib.LLVMGetFirstInstruction(bb)
            while inst:
                total += 1
                inst = lib.LLVMGetNextInstruction(inst)
            bb = lib.LLVMGetNextBasicBlock(bb)
        fn = lib.LLVMGetNextFunction(fn)
    return total


def print_module(lib: LLVMLib, mod: int) -> str:
    """The module as IR text."""
    return lib.take_message(lib.LLVMPrintModuleToString(mod))


def module_bitcode(lib: LLVMLib, mod: int) -> bytes:
    """The module as bitcode."""
    buf = lib.LLVMWriteBitcodeToMemoryBuffer(mod)
    try:
        return ctypes.string_at(lib.LLVMGetBufferStart(buf), lib.LLVMGetBufferSize(buf))
    finally:
        lib.LLVMDisposeMemoryBuffer(buf)


class TargetMachines:
    """Target machines by triple, created once, as ``opt`` creates them (generic CPU)."""

    def __init__(self, lib: LLVMLib) -> None:
        self.lib = lib
        self._cache: dict[str, int | None] = {}

    def get(self, triple: str) -> int | None:
        """The target machine for ``triple``; None when the module has no (known) triple."""
        if triple not in self._cache:
            self._cache[triple] = self._create(triple) if triple else None
        return self._cache[triple]

    def _create(self, triple: str) -> int | None:
        lib = self.lib
        target, msg = capi.Ref(), c_void_p()
        if lib.LLVMGetTargetFromTriple(triple.encode(), byref(target), byref(msg)):
            lib.take_message(msg.value)
            return None  # like opt: no target machine, default TTI
        return lib.LLVMCreateTargetMachine(
            target,
            triple.encode(),
            b"",
            b"",
            capi.CODEGEN_LEVEL_DEFAULT,
            capi.RELOC_DEFAULT,
            capi.CODE_MODEL_DEFAULT,
        )


def run_pipeline(lib: LLVMLib, mod: int, pipeline: str, tm: int | None) -> str:
    """Run a new-pass-manager pipeline on ``mod`` in place; returns '' or LLVM's error."""
    if not pipeline:
        return ""
    opts = lib.LLVMCreatePassBuilderOptions()
    try:
        return lib.take_error(lib.LLVMRunPasses(mod, pipeline.encode(), tm, opts))
    finally:
        lib.LLVMDisposePassBuilderOptions(opts)


def verify_error(lib: LLVMLib, mod: int) -> str:
    """'' if ``mod`` verifies, else the verifier's first message."""
    msg = c_void_p()
    broken = lib.LLVMVerifyModule(mod, VERIFIER_RETURN_STATUS, byref(msg))
    text = lib.take_message(msg.value)
    return ("output does not verify: " + (_one_line(text) or "broken module")) if broken else ""
