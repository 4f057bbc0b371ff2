"""Inference strategies against -Oz, the autotuner and random search at equal compiles.

On the held-out functions of the tuned data set (default: the held-out code base), the model
proposes lists by priority sampling once per function (its first k samples are exactly what
``sample-k`` would draw, so one run gives every k); each unique candidate is compiled once.
Rows: predict (greedy, 0 extra compiles, may lose to -Oz), oz-backup (= sample-1),
sample-3/10/30, random search with the same number of compiles (random lists from the
autotuner's space, best kept with -Oz), and the autotuner's best lists. Columns as the
paper's Tables III/IV.

    .venv/bin/python benchmarks/strategies.py [--tuned data/tuned.parquet] [--split heldout]
        [--model DIR] [--samples 1,3,10,30] [--limit N] [-o reports/strategies.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from passlm.evaluate.metrics import fraction_of, improvement
from passlm.llvm.backend import Task
from passlm.llvm.denylist import load_denylist
from passlm.llvm.passes import PassList, parse_pass_list
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.optimize.strategies import parse_strategy, propose
from passlm.search.space import random_list

console = Console(width=120)


def best_of(oz: int, counts: list[int | None]) -> int:
    """The fewest instructions among -Oz and the candidates that compiled."""
    return min([oz, *[c for c in counts if c is not None]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--samples", default="1,3,10,30")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    budgets = sorted(int(k) for k in args.samples.split(","))
    torch.set_num_threads(args.threads)

    rows = [r for r in pq.read_table(args.tuned).to_pylist() if r["split"] == args.split]
    rows = rows[: args.limit] if args.limit else rows
    oz = [r["oz_count"] for r in rows]
    tc = default_toolchain()
    model_dir = args.model or default_model_dir()
    model, tok = load(model_dir)
    deny = load_denylist()
    console.print(
        f"{len(rows)} {args.split} functions of {args.tuned}; model {model_dir}; LLVM "
        f"{tc.version}; {args.threads} torch threads, {args.workers} compile workers"
    )

    irs = [r["ir"] for r in rows]
    start = time.perf_counter()
    greedy = propose(model, tok, irs, parse_strategy("predict"), denylist=deny)
    predict_seconds = time.perf_counter() - start
    samples: list[list[PassList]] = []
    start = time.perf_counter()
    widest = parse_strategy(f"sample-{budgets[-1]}")
    with Progress(console=console) as progress:
        bar = progress.add_task("priority sampling", total=len(rows))
        for ir in irs:
            samples += propose(model, tok, [ir], widest, denylist=deny)
            progress.advance(bar)
    sample_seconds = time.perf_counter() - start

    rng = random.Random(args.seed)
    randoms = [[random_list(rng, 8) for _ in range(budgets[-1])] for _ in rows]
    predicted = [lists[0] if lists else None for lists in greedy]
    tasks, index = [], {}
    for i, r in enumerate(rows):
        wanted = [*samples[i], *randoms[i], *(p for p in [predicted[i]] if p is not None)]
        for passes in wanted:
            key = (i, passes.passes)
            if key not in index:
                index[key] = len(tasks)
                tasks.append(Task(r["ir"], passes))
    start = time.perf_counter()
    with WorkerPool(tc, workers=args.workers) as pool:
        results = pool.run_tasks(tasks)
    compile_seconds = time.perf_counter() - start

    def count(i: int, passes: PassList) -> int | None:
        r = results[index[(i, passes.passes)]]
        return r.count if r.ok else None

    oz_list = parse_pass_list("-Oz")
    methods: dict[str, tuple[list[int], int]] = {}
    predict_counts = []
    for i in range(len(rows)):
        p = predicted[i]
        c = count(i, p) if p is not None else None
        predict_counts.append(oz[i] if c is None else c)  # no usable list: -Oz
    methods["predict"] = (predict_counts, 0)
    for k in budgets:
        counts, spent = [], 0
        for i in range(len(rows)):
            cands = [p for p in samples[i][:k] if p.passes != oz_list.passes]
            spent += len(cands)
            counts.append(best_of(oz[i], [count(i, p) for p in cands]))
        name = "oz-backup (sample-1)" if k == 1 else f"sample-{k}"
        methods[name] = (counts, spent)
        # random search with exactly the compiles this strategy spent on each function
        rcounts = []
        for i in range(len(rows)):
            used = len([p for p in samples[i][:k] if p.passes != oz_list.passes])
            rcounts.append(best_of(oz[i], [count(i, p) for p in randoms[i][:used]]))
        methods[f"random search, {k}-sample budget"] = (rcounts, spent)
    methods["autotuner (best lists)"] = ([r["best_count"] for r in rows], -1)
    tuner = improvement(oz, methods["autotuner (best lists)"][0]).overall

    table = Table(title=f"strategies on {len(rows)} {args.split} functions vs -Oz")
    for col in ("method", "extra compiles", "improved", "regressed", "saved", "lost",
                "overall", "of autotuner"):  # fmt: skip
        table.add_column(col, justify="left" if col == "method" else "right")
    report = {"functions": len(rows), "split": args.split, "model": str(model_dir), "rows": {}}
    for name, (counts, spent) in methods.items():
        imp = improvement(oz, counts)
        frac = fraction_of(imp.overall, tuner)
        table.add_row(
            name,
            "-" if spent < 0 else f"{spent:,} ({spent / len(rows):.1f}/fn)",
            str(imp.improved),
            str(imp.regressed),
            str(imp.saved),
            str(imp.lost),
            f"{100 * imp.overall:+.2f}%",
            "-" if frac is None else f"{100 * frac:.1f}%",
        )
        report["rows"][name] = {
            "extra_compiles": spent,
            "improved": imp.improved,
            "regressed": imp.regressed,
            "saved": imp.saved,
            "lost": imp.lost,
            "overall": imp.overall,
            "fraction_of_autotuner": frac,
        }
    console.print(table)
    timing = {
        "predict_seconds": predict_seconds,
        "sampling_seconds": sample_seconds,
        "compile_seconds": compile_seconds,
        "compiles": len(tasks),
    }
    report["timing"] = timing
    console.print(
        f"greedy lists {predict_seconds:.1f}s, priority sampling ({budgets[-1]}) "
        f"{sample_seconds:.1f}s, {len(tasks):,} compiles {compile_seconds:.1f}s; feedback-K "
        f"needs a model fine-tuned on the feedback task (not shipped yet)"
    )
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
