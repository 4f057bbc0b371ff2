"""Optimize a user's file: per-function counts and the optimized module.

Until a model is trained the only strategy is ``-Oz``: every function is split out and counted
before and after ``-Oz`` (the baseline a model must beat), and the whole module is optimized
with ``-Oz``. The model-guided strategies replace the per-function choice later.
"""

from __future__ import annotations

from dataclasses import dataclass

from passlm.errors import InvalidIR
from passlm.llvm.backend import Compiler, Result, Task
from passlm.llvm.ir import split_functions
from passlm.llvm.passes import PassList, parse_pass_list
from passlm.llvm.toolchain import Toolchain

NO_PASSES = PassList(())
OZ = parse_pass_list("-Oz")


@dataclass(frozen=True)
class FunctionReport:
    """One function: its unoptimized and -Oz counts, the list chosen and its count."""

    name: str
    o0_count: int
    oz_count: int
    passes: str
    count: int
    compiles: int  # compiles spent beyond -Oz itself


@dataclass(frozen=True)
class ModuleReport:
    """The per-function reports and the optimized whole module."""

    functions: tuple[FunctionReport, ...]
    o0_count: int  # whole module, unoptimized
    count: int  # whole module, optimized
    optimized_ir: str
    strategy: str


def _checked(result: Result, what: str) -> int:
    if not result.ok or result.count is None:
        raise InvalidIR(f"{what}: {result.error}")
    return result.count


def optimize_ir(ir: str, toolchain: Toolchain, compiler: Compiler) -> ModuleReport:
    """Optimize IR text with the ``-Oz`` strategy and report per function."""
    modules = split_functions(ir, toolchain)
    tasks = [Task(m, p) for m in modules.values() for p in (NO_PASSES, OZ)]
    tasks += [Task(ir, NO_PASSES), Task(ir, OZ, want_ir=True)]
    results = compiler.run_tasks(tasks)
    functions = []
    for i, name in enumerate(modules):
        o0 = _checked(results[2 * i], f"function {name}")
        oz = _checked(results[2 * i + 1], f"-Oz on function {name}")
        functions.append(FunctionReport(name, o0, oz, str(OZ), oz, compiles=0))
    whole = results[-1]
    return ModuleReport(
        functions=tuple(functions),
        o0_count=_checked(results[-2], "input module"),
        count=_checked(whole, "-Oz on the input module"),
        optimized_ir=whole.ir or "",
        strategy="oz",
    )
