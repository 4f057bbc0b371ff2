"""ctypes bindings to the part of libLLVM's C API that passlm uses.

Only :mod:`passlm.llvm.backend` calls these. The library is loaded lazily, once per process,
from the path the :class:`~passlm.llvm.toolchain.Toolchain` found.
"""

from __future__ import annotations

import ctypes
import functools
from ctypes import POINTER, byref, c_bool, c_char_p, c_int, c_size_t, c_void_p

from passlm.errors import ToolNotFound

Ref = c_void_p  # every LLVM*Ref is an opaque pointer

# enum values from llvm-c/Analysis.h and llvm-c/TargetMachine.h
VERIFIER_RETURN_STATUS = 2
CODEGEN_LEVEL_DEFAULT = 2
RELOC_DEFAULT = 0
CODE_MODEL_DEFAULT = 0

_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "LLVMContextCreate": (Ref, []),
    "LLVMContextDispose": (None, [Ref]),
    "LLVMCreateMemoryBufferWithMemoryRangeCopy": (Ref, [c_char_p, c_size_t, c_char_p]),
    "LLVMParseIRInContext": (c_bool, [Ref, Ref, POINTER(Ref), POINTER(c_void_p)]),
    "LLVMVerifyModule": (c_bool, [Ref, c_int, POINTER(c_void_p)]),
    "LLVMCloneModule": (Ref, [Ref]),
    "LLVMDisposeModule": (None, [Ref]),
    "LLVMPrintModuleToString": (c_void_p, [Ref]),
    "LLVMDisposeMessage": (None, [c_void_p]),
    "LLVMGetTarget": (c_char_p, [Ref]),
    "LLVMGetFirstFunction": (Ref, [Ref]),
    "LLVMGetNextFunction": (Ref, [Ref]),
    "LLVMIsDeclaration": (c_bool, [Ref]),
    "LLVMGetFirstBasicBlock": (Ref, [Ref]),
    "LLVMGetNextBasicBlock": (Ref, [Ref]),
    "LLVMGetFirstInstruction": (Ref, [Ref]),
    "LLVMGetNextInstruction": (Ref, [Ref]),
    "LLVMGetValueName2": (c_void_p, [Ref, POINTER(c_size_t)]),
    "LLVMStripModuleDebugInfo": (c_bool, [Ref]),
    "LLVMWriteBitcodeToMemoryBuffer": (Ref, [Ref]),
    "LLVMGetBufferStart": (c_void_p, [Ref]),
    "LLVMGetBufferSize": (c_size_t, [Ref]),
    "LLVMDisposeMemoryBuffer": (None, [Ref]),
    "LLVMCreatePassBuilderOptions": (Ref, []),
    "LLVMDisposePassBuilderOptions": (None, [Ref]),
    "LLVMPassBuilderOptionsSetVerifyEach": (None, [Ref, c_bool]),
    "LLVMRunPasses": (Ref, [Ref, c_char_p, Ref, Ref]),
    "LLVMGetErrorMessage": (c_void_p, [Ref]),
    "LLVMDisposeErrorMessage": (None, [c_void_p]),
    "LLVMGetTargetFromTriple": (c_bool, [c_char_p, POINTER(Ref), POINTER(c_void_p)]),
    "LLVMCreateTargetMachine": (Ref, [Ref, c_char_p, c_char_p, c_char_p, c_int, c_int, c_int]),
    "LLVMDisposeTargetMachine": (None, [Ref]),
}

# Target initialisers exported by libLLVM (the LLVMInitializeAll* helpers are header-only).
_TARGETS = ("X86", "AArch64", "ARM", "RISCV", "PowerPC", "SystemZ", "Mips", "WebAssembly")


class LLVMLib:
    """A loaded libLLVM with typed entry points (``lib.LLVMContextCreate()``...)."""

    def __init__(self, path: str) -> None:
        try:
            self._dll = ctypes.CDLL(path)
        except OSError as exc:
            raise ToolNotFound(f"cannot load libLLVM from {path}: {exc}") from None
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self._dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        for target in _TARGETS:
            for part in ("TargetInfo", "Target", "TargetMC"):
                init = getattr(self._dll, f"LLVMInitialize{target}{part}", None)
                if init is not None:
                    init.restype = None
                    init()

    def take_message(self, ptr: int | None) -> str:
        """Copy an LLVM-owned C string and free it."""
        if not ptr:
            return ""
        text = ctypes.string_at(ptr).decode("utf-8", errors="replace")
        self.LLVMDisposeMessage(ptr)
        return text

    def take_error(self, err: int | None) -> str:
        """Consume an ``LLVMErrorRef`` and return its message ('' for success)."""
        if not err:
            return ""
        msg_ptr = self.LLVMGetErrorMessage(err)
        text = ctypes.string_at(msg_ptr).decode("utf-8", errors="replace")
        self.LLVMDisposeErrorMessage(msg_ptr)
        return text

    def value_name(self, value: int) -> str:
        """The name of a function or other global value."""
        size = c_size_t()
        ptr = self.LLVMGetValueName2(value, byref(size))
        return ctypes.string_at(ptr, size.value).decode("utf-8", errors="replace") if ptr else ""


@functools.cache
def load(path: str) -> LLVMLib:
    """Load libLLVM from ``path`` once per process."""
    return LLVMLib(path)
