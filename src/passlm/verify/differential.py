"""Build a program at -O0 and with per-function pass lists, run both, compare.

The oracle is the program's own -O0 behaviour: standard output and exit status (or the signal
that killed it). A program whose -O0 build does not finish within the time limit has no oracle.
Csmith programs are free of undefined behaviour and print a checksum of their global state,
so any difference they show is a miscompilation (by LLVM, or by passlm's split and link).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from passlm.errors import CommandFailed, CommandTimeout, InputError, InvalidIR
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.ir import defined_functions, split_functions
from passlm.llvm.link import link_functions
from passlm.llvm.passes import PassList
from passlm.llvm.toolchain import Toolchain
from passlm.process import kill_group, run_command

RUN_TIMEOUT = 10.0
BUILD_TIMEOUT = 120.0
RUNNERS = ("native", "lli")
OUTPUT_LIMIT = 1 << 20  # bytes of stdout compared; a runaway printer must not fill memory
OUTPUT_FILE_LIMIT = 64 << 20  # bytes a program may write at all
PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Verdict.outcome values
SAME = "same"
DIFFERENT = "different"
COMPILE_FAILED = "compile-failed"  # a pass list crashed or was rejected: nothing to run
NO_ORACLE = "no-oracle"  # the -O0 build itself times out or cannot be built


@dataclass(frozen=True)
class Execution:
    """How one run of a program ended."""

    status: str  # "exit", "signal" or "timeout"
    code: int | None  # exit status or signal number
    stdout: str
    seconds: float

    def same_as(self, other: Execution) -> bool:
        """Identical observable behaviour: how it ended and what it printed."""
        return (self.status, self.code, self.stdout) == (other.status, other.code, other.stdout)

    def describe(self) -> str:
        """'exit 0, 1 line: checksum = 1A2B' — short enough for a table cell."""
        if self.status == "timeout":
            return f"timeout after {self.seconds:.1f}s"
        how = f"exit {self.code}" if self.status == "exit" else _signal_name(self.code or 0)
        lines = self.stdout.splitlines()
        last = lines[-1][:60] if lines else ""
        return f"{how}, {len(lines)} line(s)" + (f": {last}" if last else "")


def _signal_name(number: int) -> str:
    try:
        return f"killed by {signal.Signals(number).name}"
    except ValueError:
        return f"killed by signal {number}"


def build_executable(ir: str, toolchain: Toolchain, exe: Path) -> None:
    """Code-generate IR at -O0 (no further optimization) and link it into ``exe``."""
    try:
        run_command(
            [toolchain.clang, "-O0", "-w", "-x", "ir", "-", "-o", str(exe), "-lm"],
            input=ir.encode("utf-8"),
            timeout=BUILD_TIMEOUT,
        )
    except CommandFailed as exc:
        raise InvalidIR(f"cannot build an executable: {exc.detail}") from None


def _limit_output() -> None:
    """In the child: a program that prints without end is stopped (SIGXFSZ), not the disk;
    and it dies with its parent, even one killed by SIGKILL (no orphan left spinning)."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_FILE_LIMIT, OUTPUT_FILE_LIMIT))
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent cleans up
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_program(args: list[str], *, timeout: float = RUN_TIMEOUT) -> Execution:
    """Run a program with no input; kill its process group past ``timeout`` seconds."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_limit_output,
        )  # fmt: skip
        try:
            code = proc.wait(timeout=timeout)
            status = "exit" if code >= 0 else "signal"
            code = code if code >= 0 else -code
        except subprocess.TimeoutExpired:
            status, code = "timeout", None
        except BaseException:
            kill_group(proc)
            raise
        kill_group(proc)
        out.seek(0)
        text = out.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")
    return Execution(status, code, text, time.perf_counter() - start)


def execute(
    ir: str, toolchain: Toolchain, *, runner: str = "native", timeout: float = RUN_TIMEOUT
) -> Execution:
    """Run a whole module: native -O0 code generation, or LLVM's interpreter/JIT ``lli``."""
    if runner not in RUNNERS:
        raise InputError(f"unknown runner {runner!r} (expected one of {', '.join(RUNNERS)})")
    with tempfile.TemporaryDirectory(prefix="passlm-run-") as tmp:
        if runner == "lli":
            path = Path(tmp) / "program.ll"
            path.write_text(ir, encoding="utf-8")
            return run_program([toolchain.lli, "-O0", str(path)], timeout=timeout)
        exe = Path(tmp) / "program"
        build_executable(ir, toolchain, exe)
        return run_program([str(exe)], timeout=timeout)


@dataclass(frozen=True)
class Verdict:
    """The result of one differential test."""

    outcome: str  # SAME, DIFFERENT, COMPILE_FAILED or NO_ORACLE
    reference: Execution | None
    candidate: Execution | None = None
    failures: dict[str, str] = field(default_factory=dict)  # function -> compile error
    linked_ir: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the program behaved differently."""
        return self.outcome != DIFFERENT


class Program:
    """A runnable module, split into one module per function, with its -O0 run as the oracle."""

    def __init__(
        self,
        ir: str,
        toolchain: Toolchain,
        *,
        name: str = "program",
        runner: str = "native",
        timeout: float = RUN_TIMEOUT,
        modules: dict[str, str] | None = None,
    ) -> None:
        if "main" not in defined_functions(ir):
            raise InputError(f"{name}: defines no main function, so there is nothing to run")
        self.ir = ir
        self.name = name
        self.toolchain = toolchain
        self.runner = runner
        self.timeout = timeout
        self.modules = modules if modules is not None else split_functions(ir, toolchain)
        self.builds = 0  # optimized versions built and run so far

    @functools.cached_property
    def reference(self) -> Execution | None:
        """The -O0 run, or None when there is no oracle (it times out or does not build)."""
        try:
            run = execute(self.ir, self.toolchain, runner=self.runner, timeout=self.timeout)
        except (InvalidIR, CommandTimeout):
            return None
        return None if run.status == "timeout" else run

    def optimized(
        self, lists: Mapping[str, PassList | None], compiler: Compiler
    ) -> tuple[str, dict[str, str]]:
        """The module with each function optimized by its list (None: left unoptimized).

        Returns the linked IR and the functions whose compile failed (error message each);
        those stay unoptimized so the rest of the program can still be tested.
        """
        unknown = set(lists) - set(self.modules)
        if unknown:
            raise InputError(f"{self.name}: no function named {', '.join(sorted(unknown))}")
        chosen = [(n, p) for n, p in lists.items() if p is not None and len(p)]
        results = compiler.run_tasks([Task(self.modules[n], p, want_ir=True) for n, p in chosen])
        parts = dict(self.modules)
        failures = {}
        for (name, _), result in zip(chosen, results, strict=True):
            if result.ok and result.ir is not None:
                parts[name] = result.ir
            else:
                failures[name] = f"{result.error_kind}: {result.error}"
        return link_functions(self.ir, parts, self.toolchain), failures

    def compare(self, optimized_ir: str) -> Verdict:
        """Run an already optimized version of the module and compare with the -O0 run."""
        reference = self.reference
        if reference is None:
            return Verdict(NO_ORACLE, None)
        self.builds += 1
        run = execute(optimized_ir, self.toolchain, runner=self.runner, timeout=self.timeout * 3)
        return Verdict(SAME if run.same_as(reference) else DIFFERENT, reference, run)

    def check(self, lists: Mapping[str, PassList | None], compiler: Compiler) -> Verdict:
        """Build with ``lists``, run, and compare with the -O0 run."""
        reference = self.reference
        if reference is None:
            return Verdict(NO_ORACLE, None)
        linked, failures = self.optimized(lists, compiler)
        if failures and len(failures) == sum(p is not None and len(p) > 0 for p in lists.values()):
            return Verdict(COMPILE_FAILED, reference, failures=failures, linked_ir=linked)
        return dataclasses.replace(self.compare(linked), failures=failures, linked_ir=linked)


def same_list_everywhere(program: Program, passes: PassList) -> dict[str, PassList | None]:
    """Every function of ``program`` gets ``passes``."""
    return {name: passes for name in program.modules}
