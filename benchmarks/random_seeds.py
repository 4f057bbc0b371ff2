"""Model strategies against random search at their budget over many seeds, not one.

``passlm eval`` and ``benchmarks/strategies.py`` draw random search once (seed 0) per budget.
Where a strategy spends few compiles (``oz-backup`` compiles only where the greedy list is not
``-Oz``), one lucky random list decides that row. Here each strategy's lists are compiled
once, then random search with exactly its compiles per function is drawn with ``--seeds``
seeds; per strategy: its improvement over ``-Oz``, random search's mean, median and range over
the seeds, and on how many seeds the strategy is ahead.

With a margin (``--margin``; by default the one ``passlm model calibrate`` stored with the
model), ``oz-backup`` gets a second row: its compiles only where ``predict``'s margin keeps
the greedy list. It separates the lists the model is sure of from the rest; ``passlm optimize
--strategy oz-backup`` compiles the greedy list wherever it is not ``-Oz``, the first row.

    .venv/bin/python benchmarks/random_seeds.py [--tuned data/tuned.parquet] [--split test]
        [--strategies oz-backup,sample-1] [--seeds 20] [--model DIR] [--margin model|NATS|off]
        [-o reports/....json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from passlm.evaluate.compare import Method, model_methods, random_matched, run_methods
from passlm.evaluate.metrics import improvement
from passlm.evaluate.testset import load_test_set
from passlm.files import atomic_write
from passlm.llvm.denylist import load_denylist
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.optimize.calibrate import parse_margin
from passlm.optimize.strategies import OZ_BACKUP, PREDICT

console = Console(width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--strategies", default="oz-backup,sample-1")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--margin", default="model", help="model (stored), off, or nats")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    tc = default_toolchain()
    model_dir = args.model or default_model_dir()
    model, tok = load(model_dir)
    margin = parse_margin(args.margin, model_dir)
    with WorkerPool(tc, workers=args.workers) as pool:
        fns = load_test_set(
            [args.tuned], splits=[args.split], toolchain=tc, compiler=pool, limit=args.limit
        ).functions
        gated = margin is not None and OZ_BACKUP in names
        asked = [*names, PREDICT] if gated and PREDICT not in names else names
        methods = model_methods(
            model, tok, fns, asked, denylist=load_denylist(), compiler=pool, margin=margin
        )
        if gated:  # predict (margin m)'s lists, compiled and checked against -Oz
            sure = next(m for m in methods if m.name == f"predict (margin {margin:g})")
            at = next(i for i, m in enumerate(methods) if m.name == OZ_BACKUP) + 1
            methods.insert(
                at, Method(f"oz-backup (margin {margin:g})", sure.group, sure.candidates)
            )
        results, _ = run_methods(fns, methods, pool)
        oz = [f.oz_count for f in fns]
        rows = []
        for r in results[:-1]:  # the last is the autotuner
            if r.as_is or r.compiles is None:
                continue
            drawn, _ = run_methods(
                fns, [random_matched(fns, r, seed=s) for s in range(args.seeds)], pool
            )
            randoms = [100 * improvement(oz, d.counts).overall for d in drawn[:-1]]
            mine = 100 * improvement(oz, r.counts).overall
            rows.append(
                {
                    "strategy": r.name,
                    "extra_compiles": sum(r.compiles),
                    "overall_pct": mine,
                    "random_pct": randoms,
                    "ahead_on": sum(mine > v for v in randoms),
                }
            )
    table = Table(title=f"{len(fns)} {args.split} functions: random search over {args.seeds} seeds")
    for col in ("strategy", "extra compiles", "overall", "random mean", "random median",
                "random range", "ahead on"):  # fmt: skip
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for row in rows:
        v = row["random_pct"]
        table.add_row(
            row["strategy"], f"{row['extra_compiles']:,}", f"{row['overall_pct']:+.3f}%",
            f"{statistics.mean(v):+.3f}%", f"{statistics.median(v):+.3f}%",
            f"{min(v):+.3f}% to {max(v):+.3f}%", f"{row['ahead_on']} of {len(v)}",
        )  # fmt: skip
    console.print(table)
    if args.output:
        report = {
            "split": args.split, "functions": len(fns), "model": str(model_dir),
            "margin": margin, "rows": rows,
        }  # fmt: skip
        atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
