"""What the compile cache saves ``passlm optimize``: compiles run and seconds, with and without.

``guided-N`` compiles -Oz and each pick while it searches, ``feedback-K`` compiles each answer to
write its feedback; ``passlm optimize`` then compiles -Oz and every candidate to choose among
them. With :class:`passlm.llvm.cache.CachedCompiler` around the pool (one per input file, as the
command does) the second time is answered from memory. For each strategy, on the same inputs,
in one run, alternating function by function: the strategy's proposals and the optimize
pipeline once through the plain pool and once through a fresh cache over it; the compiles the
pool ran, the seconds, and a check that both gave the same report (the chosen lists, counts and
output IR). ``sample-N`` (nothing compiled while proposing) is the control.

    .venv/bin/python benchmarks/compile_reuse.py [--tuned data/tuned.parquet] [--split test]
        [--functions 60] [--strategies guided-10,feedback-3,sample-10] [-o FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from passlm.evaluate.testset import load_test_set
from passlm.files import atomic_write
from passlm.llvm.backend import Compiler, Result
from passlm.llvm.cache import CachedCompiler
from passlm.llvm.denylist import load_denylist
from passlm.llvm.ir import split_functions
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.optimize.pipeline import optimize_ir
from passlm.optimize.strategies import parse_strategy, propose

console = Console(width=110)


class Counting(Compiler):
    """The pool, counting the tasks it is given."""

    def __init__(self, inner: Compiler) -> None:
        self.inner, self.version, self.tasks = inner, inner.version, 0

    def run_tasks(self, tasks) -> list[Result]:
        self.tasks += len(tasks)
        return self.inner.run_tasks(tasks)


def optimize_once(ir, modules, spec, model, tok, deny, tc, compiler):
    """``passlm optimize``'s work on one input: the proposals, then the pipeline."""
    irs = list(modules.values())
    lists = propose(model, tok, irs, spec, denylist=deny, compiler=compiler)
    return optimize_ir(ir, tc, compiler, lists, modules=modules, strategy=spec.name, denylist=deny)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--functions", type=int, default=60)
    parser.add_argument("--strategies", default="guided-10,feedback-3,sample-10")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tc = default_toolchain()
    model_dir = default_model_dir()
    model, tok = load(model_dir)
    deny = load_denylist()
    specs = [parse_strategy(s) for s in args.strategies.split(",")]
    rows: dict[str, dict] = {}
    with WorkerPool(tc, workers=args.workers) as pool:
        test = load_test_set(
            [args.tuned], splits=[args.split], toolchain=tc, compiler=pool, limit=args.functions
        )
        inputs = [(f.ir, split_functions(f.ir, tc)) for f in test.functions]
        console.print(
            f"{len(inputs)} {args.split} functions of {args.tuned}, each its own input file; "
            f"model {model_dir.name}; LLVM {tc.version}; {args.workers} compile workers"
        )
        optimize_once(*inputs[0], specs[0], model, tok, deny, tc, pool)  # warm the workers
        for spec in specs:
            plain_tasks = cached_tasks = 0
            plain_s: list[float] = []
            cached_s: list[float] = []
            same = 0
            for k, (ir, modules) in enumerate(inputs):
                # each arm first on every other input: the workers' parsed-module cache, warm
                # for whichever runs second, favours neither
                for arm in ("plain", "cached") if k % 2 == 0 else ("cached", "plain"):
                    counting = Counting(pool)
                    compiler = (
                        counting if arm == "plain" else CachedCompiler(counting, always_ir=True)
                    )
                    start = time.perf_counter()
                    report = optimize_once(ir, modules, spec, model, tok, deny, tc, compiler)
                    seconds = time.perf_counter() - start
                    if arm == "plain":
                        plain, plain_tasks = report, plain_tasks + counting.tasks
                        plain_s.append(seconds)
                    else:
                        cached, cached_tasks = report, cached_tasks + counting.tasks
                        cached_s.append(seconds)
                same += cached == plain
            rows[spec.name] = {
                "compiles_plain": plain_tasks,
                "compiles_cached": cached_tasks,
                "compiles_ratio": round(plain_tasks / cached_tasks, 3),
                "seconds_plain": round(sum(plain_s), 2),
                "seconds_cached": round(sum(cached_s), 2),
                "seconds_ratio": round(sum(plain_s) / sum(cached_s), 3),
                "median_ms_plain": round(1000 * statistics.median(plain_s), 1),
                "median_ms_cached": round(1000 * statistics.median(cached_s), 1),
                "same_report": same,
                "inputs": len(inputs),
            }
    table = Table(title=f"passlm optimize on {len(inputs)} functions: plain pool vs cached")
    for col in ("strategy", "compiles", "cached", "ratio", "seconds", "cached s", "ratio",
                "same report"):  # fmt: skip
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, r in rows.items():
        table.add_row(
            name, f"{r['compiles_plain']:,}", f"{r['compiles_cached']:,}",
            f"{r['compiles_ratio']:.2f}x", f"{r['seconds_plain']:.1f}",
            f"{r['seconds_cached']:.1f}", f"{r['seconds_ratio']:.2f}x",
            f"{r['same_report']}/{r['inputs']}",
        )  # fmt: skip
    console.print(table)
    if args.output is not None:
        report = {
            "what": __doc__.splitlines()[0],
            "tuned": str(args.tuned),
            "split": args.split,
            "model": os.path.relpath(model_dir),
            "llvm_version": tc.version,
            "workers": args.workers,
            "rows": rows,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
