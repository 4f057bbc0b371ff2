"""Autotuner: improvement over -Oz as the trial budget grows, and compiles per second.

On a fixed sample of corpus functions (default: 200 from the training split, seeded), runs the
autotuner at increasing search budgets (each with minimization and broadcast), once as plain
random search and once mixing in mutations of the best lists found so far (the default), and
prints side by side the overall improvement over -Oz, the share of functions improved, the
compiles spent and compiles/second on this machine. Each strategy has its own result store,
shared across its budgets: a larger budget reuses the compiles of the smaller ones, and
compiles/second counts only new compiles.

    .venv/bin/python benchmarks/autotune.py [--corpus data/corpus.parquet] [--budgets 100,1000]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from passlm.corpus.store import read_corpus
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.search.evaluator import Evaluator, Function
from passlm.search.store import TrialStore
from passlm.search.tuner import Autotuner, TuneConfig

console = Console(width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/corpus.parquet"))
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--split", default="train")
    parser.add_argument("--budgets", default="100,300,1000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    corpus, _ = read_corpus(args.corpus)
    pool_rows = [r for r in corpus if r.split == args.split]
    sample = sorted(
        random.Random(args.seed).sample(pool_rows, min(args.sample, len(pool_rows))),
        key=lambda r: r.hash,
    )
    functions = [Function(r.hash, r.ir) for r in sample]
    sizes = [r.instcount for r in sample]
    tc = default_toolchain()
    console.print(
        f"{len(functions)} {args.split} functions of {args.corpus} (seed {args.seed}; "
        f"instructions mean {sum(sizes) / len(sizes):.0f}, max {max(sizes)}), "
        f"LLVM {tc.version}, {args.workers} workers on {os.cpu_count()} cores"
    )
    table = Table(title="autotuner budget vs improvement over -Oz")
    for col in (
        "search",
        "trials/function",
        "compiles/function",
        "new compiles",
        "seconds",
        "compiles/s",
        "improved",
        "overall improvement",
    ):
        table.add_column(col, justify="right")
    strategies = {"random": 0.0, "random+mutation": TuneConfig().mutate_fraction}
    with WorkerPool(tc, workers=args.workers) as pool:
        for name, fraction in strategies.items():
            store = TrialStore(":memory:", tc.version)
            for budget in (int(b) for b in args.budgets.split(",")):
                evaluator = Evaluator(pool, store)
                config = TuneConfig(trials=budget, seed=args.seed, mutate_fraction=fraction)
                start = time.perf_counter()
                searches = Autotuner(evaluator, config).run(functions)
                seconds = time.perf_counter() - start
                oz = sum(s.oz_count for s in searches)
                best = sum(s.best_count for s in searches)
                improved = sum(s.best_count < s.oz_count for s in searches)
                table.add_row(
                    name,
                    str(budget),
                    f"{sum(len(s.tried) for s in searches) / len(searches):,.0f}",
                    f"{evaluator.compiled:,}",
                    f"{seconds:.0f}",
                    f"{evaluator.compiled / seconds:,.0f}",
                    f"{improved} ({100 * improved / len(searches):.1f}%)",
                    f"{100 * (oz - best) / oz:.2f}%",
                )
                console.print(f"{name} {budget}: done in {seconds:.0f}s")
    console.print(table)


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
