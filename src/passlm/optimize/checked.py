"""``optimize --verify``: run what optimize is about to write against the program at -O0.

On a mismatch a reproducer is written (``passlm-mismatch-NAME/``: the input, the optimized
module, the lists, expected and actual output) and whole-module ``-Oz`` is offered instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from passlm.errors import PasslmError
from passlm.files import atomic_write, safe_filename
from passlm.llvm.toolchain import Toolchain
from passlm.optimize.pipeline import WHOLE_MODULE_OZ, ModuleReport
from passlm.verify.differential import NO_ORACLE, Program


@dataclass
class Verified:
    """The verdict on an optimized module, and what to write instead when it is wrong."""

    ok: bool
    outcome: str
    reference_text: str = ""
    detail: str = ""
    reproducer: str = ""
    fallback_ir: str = ""


def verify_optimized(
    ir: str,
    toolchain: Toolchain,
    modules: dict[str, str],
    report: ModuleReport,
    source: Path,
) -> Verified:
    """Differential test of what optimize is about to write; a reproducer on mismatch."""
    program = Program(ir, toolchain, name=str(source), modules=modules)
    verdict = program.compare(report.optimized_ir)
    if verdict.outcome == NO_ORACLE:
        return Verified(True, "not checked: the -O0 program does not finish in time")
    ref = verdict.reference.describe()
    if verdict.ok:
        return Verified(True, "same output and exit status as -O0", ref)
    out = Path(f"passlm-mismatch-{safe_filename(source.stem)}")
    out.mkdir(exist_ok=True)
    atomic_write(out / "program.ll", ir)
    atomic_write(out / "optimized.ll", report.optimized_ir)
    lists = {name: str(p) for name, p in report.lists().items()}
    atomic_write(out / "lists.json", json.dumps(lists, indent=1) + "\n")
    atomic_write(out / "expected.txt", verdict.reference.stdout)
    atomic_write(out / "actual.txt", verdict.candidate.stdout)
    if report.output_kind == WHOLE_MODULE_OZ:
        raise PasslmError(
            f"{source}: -Oz itself changes the program's behaviour (LLVM bug?); "
            f"reproducer in {out}; nothing written"
        )
    detail = f"-O0: {ref}; optimized: {verdict.candidate.describe()}"
    return Verified(False, "different", ref, detail, str(out), report.oz_module_ir)
