"""Optimize a user's module: every function with its own pass list, linked back together.

Every function is split out and counted unoptimized and at ``-Oz`` (the baseline). The
strategy's candidate lists for the function (:mod:`passlm.optimize.strategies`) are compiled
too and the fewest instructions kept, ``-Oz`` included, so the result is never worse than
``-Oz``; only ``predict`` uses its one list as it is. Deny-listed lists are skipped. The chosen
per-function modules are linked back into one module (:mod:`passlm.llvm.link`). A whole-module
``-Oz`` can do what no per-function list can (inline across functions, delete unused internal
ones), so it is compiled as well and written instead when it is smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from passlm.errors import InvalidIR
from passlm.llvm.backend import Compiler, Result, Task
from passlm.llvm.denylist import DenyList
from passlm.llvm.ir import count_instructions, split_functions
from passlm.llvm.link import link_functions
from passlm.llvm.passes import OZ, PassList, parse_pass_list
from passlm.llvm.toolchain import Toolchain

NO_PASSES = PassList(())

PER_FUNCTION = "per-function lists"
WHOLE_MODULE_OZ = "whole-module -Oz"


@dataclass(frozen=True)
class FunctionReport:
    """One function: its unoptimized and -Oz counts, the list chosen and its count."""

    name: str
    o0_count: int
    oz_count: int
    passes: str
    count: int
    compiles: int  # compiles spent beyond -Oz itself
    note: str = ""  # why a proposal was not used, when it was not


@dataclass(frozen=True)
class ModuleReport:
    """The per-function reports and the optimized module written out."""

    functions: tuple[FunctionReport, ...]
    o0_count: int  # whole module, unoptimized
    oz_module_count: int  # whole module at -Oz
    linked_count: int  # per-function choices linked into one module
    count: int  # the module written out
    optimized_ir: str
    output_kind: str  # PER_FUNCTION or WHOLE_MODULE_OZ
    linked_ir: str
    oz_module_ir: str  # the whole module at -Oz, the baseline of the object size
    strategy: str

    def lists(self) -> dict[str, PassList]:
        """The pass list chosen for each function."""
        return {f.name: parse_pass_list(f.passes) for f in self.functions}


def _checked(result: Result, what: str) -> int:
    if not result.ok or result.count is None:
        raise InvalidIR(f"{what}: {result.error}")
    return result.count


Proposal = PassList | Sequence[PassList] | None


def _candidates(proposal: Proposal, denylist: DenyList | None) -> tuple[list[PassList], str]:
    """The lists worth compiling for one function (never -Oz itself) and a note on the rest."""
    if proposal is None or (not isinstance(proposal, PassList) and not proposal):
        return [], "no proposal (too long for the model, or no valid list)"
    lists = [proposal] if isinstance(proposal, PassList) else list(proposal)
    keep, denied, seen = [], [], set()
    for passes in lists:
        if passes.passes in seen or tuple(passes) == tuple(OZ):
            continue
        seen.add(passes.passes)
        entry = denylist.find(passes) if denylist is not None else None
        if entry is not None:
            denied.append(f"{passes} ({entry.kind}: {entry.passes})")
        else:
            keep.append(passes)
    return keep, f"denied: {', '.join(denied)}" if denied else ""


def optimize_ir(
    ir: str,
    toolchain: Toolchain,
    compiler: Compiler,
    proposals: Sequence[Proposal] | None = None,
    *,
    modules: dict[str, str] | None = None,
    strategy: str = "oz",
    denylist: DenyList | None = None,
    predict: bool = False,
) -> ModuleReport:
    """Optimize IR text and report per function; ``proposals`` are in ``modules`` order.

    Each proposal is one list or several candidates (best first). The candidates and ``-Oz``
    are compiled and the fewest instructions kept (ties: ``-Oz``, then the earlier candidate).
    With ``predict`` the first candidate is used even where ``-Oz`` is better.
    """
    modules = modules if modules is not None else split_functions(ir, toolchain)
    if proposals is None:
        usable: list[tuple[list[PassList], str]] = [([], "")] * len(modules)
    else:
        if len(proposals) != len(modules):
            raise ValueError(f"{len(proposals)} proposals for {len(modules)} functions")
        usable = [_candidates(p, denylist) for p in proposals]
    tasks = [Task(m, p, want_ir=p is OZ) for m in modules.values() for p in (NO_PASSES, OZ)]
    slots: list[list[int]] = []
    for module, (lists, _) in zip(modules.values(), usable, strict=True):
        slots.append(list(range(len(tasks), len(tasks) + len(lists))))
        tasks += [Task(module, passes, want_ir=True) for passes in lists]
    tasks += [Task(ir, NO_PASSES), Task(ir, OZ, want_ir=True)]
    results = compiler.run_tasks(tasks)
    functions, chosen_ir = [], {}
    for i, name in enumerate(modules):
        o0 = _checked(results[2 * i], f"function {name}")
        oz_result = results[2 * i + 1]
        oz = _checked(oz_result, f"-Oz on function {name}")
        passes, count, text = str(OZ), oz, oz_result.ir or ""
        lists, note = usable[i]
        failed = []
        for k, (candidate, slot) in enumerate(zip(lists, slots[i], strict=True)):
            r = results[slot]
            if not r.ok or r.count is None or r.ir is None:
                failed.append(f"{candidate} ({r.error_kind})")
                continue
            if (predict and k == 0) or r.count < count:
                passes, count, text = str(candidate), r.count, r.ir
            if predict:
                break
        if failed:
            note = "; ".join([*filter(None, [note]), f"failed to compile: {', '.join(failed)}"])
        spent = len(lists) - (1 if predict and lists else 0)
        chosen_ir[name] = text
        functions.append(FunctionReport(name, o0, oz, passes, count, compiles=spent, note=note))
    linked = link_functions(ir, chosen_ir, toolchain)
    linked_count = count_instructions(linked)
    whole = results[-1]
    oz_module = _checked(whole, "-Oz on the input module")
    per_function = predict or linked_count <= oz_module  # predict: the prediction, as asked
    return ModuleReport(
        functions=tuple(functions),
        o0_count=_checked(results[-2], "input module"),
        oz_module_count=oz_module,
        linked_count=linked_count,
        count=linked_count if per_function else oz_module,
        optimized_ir=linked if per_function else whole.ir or "",
        output_kind=PER_FUNCTION if per_function else WHOLE_MODULE_OZ,
        linked_ir=linked,
        oz_module_ir=whole.ir or "",
        strategy=strategy,
    )
