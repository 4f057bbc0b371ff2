"""Optimize every source and IR file under a directory, resumably.

Each input ``DIR/a/b.c`` gives ``OUT/a/b.c.ll`` (the optimized module) and ``OUT/a/b.c.json``
(its per-function report), both written atomically, the report last: a file counts as done
when its report exists, so an interrupted or crashed batch resumes where it stopped and never
leaves a partial output. A file that cannot be optimized (does not compile, no functions) is
recorded in the summary and the batch goes on; the next run tries it again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from passlm.errors import InputError, PasslmError
from passlm.files import atomic_write
from passlm.llvm.ir import BITCODE_SUFFIXES, C_SUFFIXES, CXX_SUFFIXES, IR_SUFFIXES
from passlm.optimize.pipeline import ModuleReport

INPUT_SUFFIXES = C_SUFFIXES | CXX_SUFFIXES | IR_SUFFIXES | BITCODE_SUFFIXES
SUMMARY = "summary.json"


def find_inputs(root: Path, out: Path | None = None) -> list[Path]:
    """Input files under ``root`` in a stable order, skipping anything inside ``out``."""
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    skip = out.resolve() if out is not None else None
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in INPUT_SUFFIXES:
            continue
        if skip is not None and skip in path.resolve().parents:
            continue
        files.append(path)
    if not files:
        raise InputError(f"{root}: no .c, .cc, .cpp, .ll or .bc files")
    return files


def report_record(
    report: ModuleReport, source: str, provenance: dict | None = None, sizes: tuple = ()
) -> dict:
    """A module report as JSON-ready data (functions, totals, what was written, provenance)."""
    functions = [asdict(f) for f in report.functions]
    oz = sum(f.oz_count for f in report.functions)
    chosen = sum(f.count for f in report.functions)
    return {
        "source": source,
        "strategy": report.strategy,
        "functions": functions,
        "functions_oz": oz,
        "functions_chosen": chosen,
        "compiles": sum(f.compiles for f in report.functions),
        "module_o0": report.o0_count,
        "module_oz": report.oz_module_count,
        "module_per_function": report.linked_count,
        "module_written": report.count,
        "written": report.output_kind,
        "text_bytes": sizes[0] if sizes else None,
        "text_bytes_oz": sizes[1] if sizes else None,
    } | (provenance or {})


@dataclass
class BatchResult:
    """Totals over a batch."""

    files: int = 0
    done_before: int = 0  # reports found from an earlier run
    optimized: int = 0
    failed: int = 0
    functions_oz: int = 0
    functions_chosen: int = 0
    module_oz: int = 0
    module_written: int = 0
    text_bytes: int = 0
    text_bytes_oz: int = 0

    def add(self, record: dict) -> None:
        """Count one file's report."""
        self.functions_oz += record["functions_oz"]
        self.functions_chosen += record["functions_chosen"]
        self.module_oz += record["module_oz"]
        self.module_written += record["module_written"]
        self.text_bytes += record.get("text_bytes") or 0
        self.text_bytes_oz += record.get("text_bytes_oz") or 0


def run_batch(
    files: Iterable[Path],
    root: Path,
    out: Path,
    optimize_one: Callable[[Path], ModuleReport],
    *,
    on_file: Callable[[Path, dict | None, str | None], None] | None = None,
    provenance: dict | None = None,
    measure: Callable[[ModuleReport], tuple[int, int]] | None = None,
) -> tuple[BatchResult, dict[str, str]]:
    """Optimize each file not done yet; returns totals and {file: error} of the failures.

    ``provenance`` (versions, model, command) goes into every report and the summary;
    ``measure`` gives the ``.text`` bytes of the written module and of whole-module ``-Oz``.
    """
    result, failures = BatchResult(), {}
    for path in files:
        rel = path.relative_to(root)
        module_path = out / f"{rel}.ll"
        report_path = out / f"{rel}.json"
        result.files += 1
        if report_path.is_file() and module_path.is_file():
            try:
                record = json.loads(report_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                record = None  # written atomically, so only a hand-edited file gets here
            if record is not None:
                result.done_before += 1
                result.add(record)
                if on_file is not None:
                    on_file(path, record, None)
                continue
        try:
            report = optimize_one(path)
        except PasslmError as exc:
            failures[str(rel)] = str(exc)
            result.failed += 1
            if on_file is not None:
                on_file(path, None, str(exc))
            continue
        sizes = measure(report) if measure is not None else ()
        record = report_record(report, str(rel), provenance, sizes)
        module_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(module_path, report.optimized_ir)
        atomic_write(report_path, json.dumps(record, indent=1) + "\n")  # last: marks it done
        result.optimized += 1
        result.add(record)
        if on_file is not None:
            on_file(path, record, None)
    summary = asdict(result) | {"failures": failures} | (provenance or {})
    atomic_write(out / SUMMARY, json.dumps(summary, indent=1) + "\n")
    return result, failures
