"""Compilers: run a pass list on IR and report the instruction count and the optimized IR.

Three implementations share the :class:`Compiler` interface:

* :class:`InProcessCompiler` — libLLVM through ctypes, in this process: parse once, clone per
  trial. Fastest, but an LLVM crash kills the caller, so use it only on trusted lists or inside
  a worker (:mod:`passlm.llvm.pool`).
* :class:`SubprocessCompiler` — one ``opt`` process per trial: slow, isolated, the reference.
* :class:`passlm.llvm.pool.WorkerPool` — in-process compilers in worker processes, with
  timeouts and crash recovery. The default for anything that searches.

All three return normalized IR (:func:`passlm.llvm.ir.normalize`) and count instructions the
same way, so their results are interchangeable.
"""

from __future__ import annotations

import hashlib
import re
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from passlm.errors import CommandFailed, CommandTimeout, InvalidIR
from passlm.llvm import capi, native
from passlm.llvm.ir import count_instructions, normalize, parse_error
from passlm.llvm.passes import PassList, parse_pass_list
from passlm.llvm.toolchain import Toolchain
from passlm.process import run_command

DEFAULT_TIMEOUT = 60.0

# Result.error_kind values
LLVM_ERROR = "llvm"  # LLVM rejected the pipeline or produced IR that does not verify
CRASH = "crash"  # the compile killed its process (abort, segfault, out of memory)
TIMEOUT = "timeout"  # the compile ran past its time limit
INVALID_IR = "invalid-ir"  # the input IR itself does not parse or verify
INTERNAL = "internal"  # a bug in passlm itself while handling the compile


@dataclass(frozen=True)
class Task:
    """One compile: run ``passes`` on ``ir`` (``want_ir``: also return the optimized IR)."""

    ir: str
    passes: PassList
    want_ir: bool = False


@dataclass(frozen=True)
class Result:
    """What one compile produced: a count and optionally IR, or an error."""

    count: int | None
    ir: str | None = None
    error: str | None = None
    error_kind: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the compile succeeded."""
        return self.error is None

    @classmethod
    def failure(cls, kind: str, message: str, seconds: float = 0.0) -> Result:
        """A failed compile of the given kind."""
        return cls(count=None, error=message, error_kind=kind, seconds=seconds)


def as_pass_list(passes: PassList | str | Sequence[str]) -> PassList:
    """Accept a :class:`PassList`, a pass-list string or a sequence of pass names."""
    return passes if isinstance(passes, PassList) else parse_pass_list(passes)


def raise_invalid(result: Result) -> Result:
    """Turn an invalid-input result into :class:`InvalidIR`; pass others through."""
    if result.error_kind == INVALID_IR:
        raise InvalidIR(result.error or "invalid IR")
    return result


class Compiler(ABC):
    """Runs pass lists on IR. Subclasses implement :meth:`run_tasks`."""

    version: str  # the LLVM version, recorded with every result

    @abstractmethod
    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        """Run every task; one result each, in order. Never raises for a bad pass list."""

    def run(
        self, ir: str, passes: PassList | str | Sequence[str], *, want_ir: bool = True
    ) -> Result:
        """Run one pass list on ``ir``. Raises :class:`InvalidIR` if ``ir`` is not valid."""
        return raise_invalid(self.run_tasks([Task(ir, as_pass_list(passes), want_ir)])[0])

    def run_many(
        self, ir: str, pass_lists: Iterable[PassList | str], *, want_ir: bool = False
    ) -> list[Result]:
        """Run many pass lists on the same IR (the search's inner loop)."""
        results = self.run_tasks([Task(ir, as_pass_list(p), want_ir) for p in pass_lists])
        return [raise_invalid(r) for r in results]

    def run_grid(
        self, irs: Sequence[str], pass_lists: Sequence[PassList], *, want_ir: bool = False
    ) -> list[list[Result]]:
        """Every list on every IR in one batch (so a pool spreads it over its workers): per IR,
        one result per list in order. Failures stay results (``ok`` False), nothing raises."""
        results = self.run_tasks([Task(ir, p, want_ir) for ir in irs for p in pass_lists])
        n = len(pass_lists)
        return [results[i * n : (i + 1) * n] for i in range(len(irs))]

    def count(self, ir: str) -> int:
        """Instruction count of ``ir`` as it is (no passes)."""
        result = self.run(ir, PassList(()), want_ir=False)
        if not result.ok:
            raise InvalidIR(result.error or "cannot count instructions")
        return result.count  # type: ignore[return-value]

    def close(self) -> None:  # noqa: B027  (a compiler without resources needs no close)
        """Release resources (worker processes, LLVM contexts)."""

    def __enter__(self) -> Compiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessCompiler(Compiler):
    """libLLVM's C API in this process; parsed modules are cached and cloned per trial."""

    def __init__(self, toolchain: Toolchain, *, cache_size: int = 32) -> None:
        self.version = toolchain.version
        self.lib = capi.load(toolchain.libllvm)
        self.machines = native.TargetMachines(self.lib)
        self.cache_size = cache_size
        self._modules: OrderedDict[str, native.NativeModule] = OrderedDict()

    def module(self, ir: str) -> native.NativeModule:
        """The parsed module for ``ir`` (parsed on first use, then cached). May raise InvalidIR."""
        key = hashlib.sha1(ir.encode("utf-8")).hexdigest()
        found = self._modules.get(key)
        if found is not None:
            self._modules.move_to_end(key)
            return found
        parsed = native.NativeModule(self.lib, ir)
        self._modules[key] = parsed
        while len(self._modules) > self.cache_size:
            self._modules.popitem(last=False)[1].dispose()
        return parsed

    def run_task(self, task: Task) -> Result:
        """Run one task."""
        start = time.perf_counter()
        try:
            parsed = self.module(task.ir)
        except InvalidIR as exc:
            return Result.failure(INVALID_IR, str(exc))
        lib = self.lib
        mod = parsed.clone()
        try:
            error = native.run_pipeline(
                lib, mod, task.passes.pipeline(), self.machines.get(parsed.triple())
            )
            if not error:
                error = native.verify_error(lib, mod)
            if error:
                return Result.failure(LLVM_ERROR, error, time.perf_counter() - start)
            count = native.count_module(lib, mod)
            text = normalize(native.print_module(lib, mod)) if task.want_ir else None
        finally:
            lib.LLVMDisposeModule(mod)
        return Result(count=count, ir=text, seconds=time.perf_counter() - start)

    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        return [self.run_task(t) for t in tasks]

    def close(self) -> None:
        while self._modules:
            self._modules.popitem()[1].dispose()


_INPUT_ERROR = re.compile(r"<stdin>:\d+:\d+: error")


class SubprocessCompiler(Compiler):
    """One ``opt`` process per compile: the slow, isolated reference implementation."""

    def __init__(self, toolchain: Toolchain, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.version = toolchain.version
        self.opt = toolchain.opt
        self.timeout = timeout

    def run_task(self, task: Task) -> Result:
        """Run one task with ``opt``."""
        start = time.perf_counter()
        pipeline = task.passes.pipeline()
        args = [self.opt, "-S", "-o", "-", "-"]
        if pipeline:
            args.insert(1, f"-passes={pipeline}")
        try:
            out = run_command(args, input=task.ir.encode("utf-8"), timeout=self.timeout)
        except CommandTimeout as exc:
            return Result.failure(TIMEOUT, str(exc), time.perf_counter() - start)
        except CommandFailed as exc:
            elapsed = time.perf_counter() - start
            if _INPUT_ERROR.search(exc.stderr):
                return Result.failure(INVALID_IR, parse_error(exc.stderr), elapsed)
            if "LLVM ERROR" in exc.stderr or "Stack dump" in exc.stderr or "killed by" in str(exc):
                return Result.failure(CRASH, f"opt crashed: {exc.detail}", elapsed)
            return Result.failure(LLVM_ERROR, parse_error(exc.stderr) or exc.detail, elapsed)
        text = out.text
        return Result(
            count=count_instructions(text),
            ir=normalize(text) if task.want_ir else None,
            seconds=time.perf_counter() - start,
        )

    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        return [self.run_task(t) for t in tasks]
