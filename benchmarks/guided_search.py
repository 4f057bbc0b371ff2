"""The guided search's own arithmetic: writing only the gainful rows vs the whole matrix.

Each pick of ``guided-N`` weighs every list's marginal saving over every training function of
the outcome table (17,018 x 60 on the shipped one). Only the rows where some list beats -Oz can
hold a positive marginal saving; :class:`passlm.search.guided.GuidedSearch` writes those rows
of a matrix kept at 0 elsewhere, which is the same matrix, so the same sums and the same picks.
Here both are run on the same functions, side by side in one run, through one compile cache
warmed beforehand (so neither pays for compiles, and both read the same results): seconds of
the search per function, and whether every pick agreed.

    .venv/bin/python benchmarks/guided_search.py [--tuned data/tuned.parquet] [--split test]
        [--functions 500] [--n 10] [-o FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from passlm.evaluate.testset import load_test_set
from passlm.files import atomic_write
from passlm.llvm.cache import CachedCompiler
from passlm.llvm.denylist import load_denylist
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.optimize.strategies import guided_search
from passlm.search.guided import GuidedSearch

console = Console(width=110)


class WholeMatrix(GuidedSearch):
    """The search as it was: the whole marginal-saving matrix computed for every pick."""

    def _gain(self, weights, covered, marginal):
        whole = np.zeros(len(self.savings), dtype=np.float32)
        whole[self.gainful] = covered
        return weights @ np.maximum(self.savings - whole[:, None], 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--functions", type=int, default=500)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    tc = default_toolchain()
    deny = load_denylist()
    rows_only = guided_search()
    whole = WholeMatrix(rows_only.table, rows_only.params)
    seconds = {"gainful rows": 0.0, "whole matrix": 0.0}
    same = 0
    with WorkerPool(tc, workers=args.workers) as pool:
        test = load_test_set(
            [args.tuned], splits=[args.split], toolchain=tc, compiler=pool, limit=args.functions
        )
        irs = [f.ir for f in test.functions]
        cache = CachedCompiler(pool)
        for k in range(0, len(irs), args.chunk):
            chunk = irs[k : k + args.chunk]
            rows_only.run(chunk, args.n, cache, allows=deny.allows)  # compiles, remembered
            picks = {}
            # each first on every other chunk, so a change in the machine's speed falls alike
            order = [("gainful rows", rows_only), ("whole matrix", whole)]
            for name, search in order if (k // args.chunk) % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                picks[name] = search.run(chunk, args.n, cache, allows=deny.allows)
                seconds[name] += time.perf_counter() - start
            same += sum(a == b for a, b in zip(*picks.values(), strict=True))
    ms = {name: 1000 * s / len(irs) for name, s in seconds.items()}
    table = Table(
        title=f"guided-{args.n} on {len(irs)} {args.split} functions "
        f"({len(rows_only.gainful):,} of {len(rows_only.savings):,} training rows gainful)"
    )
    for col in ("search", "ms per function", "vs whole matrix", "same picks"):
        table.add_column(col, justify="left" if col == "search" else "right")
    for name, value in ms.items():
        ratio = ms["whole matrix"] / value
        table.add_row(name, f"{value:.1f}", f"{ratio:.1f}x", f"{same}/{len(irs)}")
    console.print(table)
    if args.output is not None:
        report = {
            "what": __doc__.splitlines()[0],
            "tuned": str(args.tuned),
            "split": args.split,
            "functions": len(irs),
            "n": args.n,
            "training_rows": len(rows_only.savings),
            "gainful_rows": len(rows_only.gainful),
            "ms_per_function": {k: round(v, 2) for k, v in ms.items()},
            "speedup": round(ms["whole matrix"] / ms["gainful rows"], 2),
            "same_picks": same,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
