"""Optimize a user's file: per-function counts and the optimized module.

Every function is split out and counted before and after ``-Oz`` (the baseline). With
proposals (a model's pass list per function), each proposal is compiled too and kept where it
beats ``-Oz`` (the paper's "-Oz backup": one extra compile per function, never worse than
``-Oz``). The module written out is still optimized as a whole with ``-Oz``: writing each
function with its own list needs the per-function modules linked back, which the optimize
issue adds.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def optimize_ir(
    ir: str,
    toolchain: Toolchain,
    compiler: Compiler,
    proposals: Sequence[PassList | None] | None = None,
    *,
    modules: dict[str, str] | None = None,
    strategy: str = "oz",
) -> ModuleReport:
    """Optimize IR text and report per function; ``proposals`` are in ``modules`` order."""
    modules = modules if modules is not None else split_functions(ir, toolchain)
    proposals = list(proposals) if proposals is not None else [None] * len(modules)
    if len(proposals) != len(modules):
        raise ValueError(f"{len(proposals)} proposals for {len(modules)} functions")
    tasks = [Task(m, p) for m in modules.values() for p in (NO_PASSES, OZ)]
    extra = {i: len(tasks) + k for k, i in enumerate(i for i, p in enumerate(proposals) if p)}
    tasks += [Task(m, p) for m, p in zip(modules.values(), proposals, strict=True) if p]
    tasks += [Task(ir, NO_PASSES), Task(ir, OZ, want_ir=True)]
    results = compiler.run_tasks(tasks)
    functions = []
    for i, name in enumerate(modules):
        o0 = _checked(results[2 * i], f"function {name}")
        oz = _checked(results[2 * i + 1], f"-Oz on function {name}")
        passes, count = str(OZ), oz
        if i in extra:
            r = results[extra[i]]
            if r.ok and r.count is not None and r.count < oz:
                passes, count = str(proposals[i]), r.count
        functions.append(FunctionReport(name, o0, oz, passes, count, compiles=int(i in extra)))
    whole = results[-1]
    return ModuleReport(
        functions=tuple(functions),
        o0_count=_checked(results[-2], "input module"),
        count=_checked(whole, "-Oz on the input module"),
        optimized_ir=whole.ir or "",
        strategy=strategy,
    )
