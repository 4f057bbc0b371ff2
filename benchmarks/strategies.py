"""Inference strategies against -Oz, the autotuner and random search at equal compiles.

On the held-out functions of the tuned data set (default: the held-out code base), the model
proposes lists by priority sampling once per function (its first k samples are exactly what
``sample-k`` would draw, so one run gives every k); each unique candidate is compiled once.
Rows: predict (greedy, 0 extra compiles, may lose to -Oz; a second row with the margin
``passlm model calibrate`` stored with the model, or ``--margin``), oz-backup,
sample-3/10/30, random search with the same number of compiles per function (random lists
from the autotuner's space, best kept with -Oz), the most popular lists of the training split
at the same compiles (what a model that ignores its input would propose), and the autotuner's
best lists. Columns as the paper's Tables III/IV; each share of the autotuner's gain has its
95% bootstrap interval over the functions in square brackets, and each strategy is compared
with the baselines at its compiles paired over the same functions (``comparisons``: the
difference of shares with its interval, and the functions where each is ahead). The
computation is :mod:`passlm.evaluate.compare`, the same as ``passlm eval``'s.

``--guided 1,3,10,30`` adds ``guided-k`` rows: no model, the shipped outcome table of the
training split, each list picked after compiling the ones before (:mod:`passlm.search.guided`).

``--feedback-model DIR --feedback 1,3`` adds ``feedback-K`` rows of a model fine-tuned on the
feedback task (``passlm dataset feedback``, ``passlm train --init``), each with its own random
search and popular lists, and with plain sampling of ``--model`` at equal compiles: its first
samples (those of the widest ``--samples``), as many per function as the loop compiled there.

    .venv/bin/python benchmarks/strategies.py [--tuned data/tuned.parquet] [--split heldout]
        [--model DIR] [--margin model|NATS] [--samples 3,10,30] [--guided 1,3,10,30]
        [--feedback-model DIR --feedback 1,3] [--limit N] [-o reports/strategies.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from passlm.evaluate.baselines import PopularLists
from passlm.evaluate.compare import (
    AUTOTUNER,
    matched_comparisons,
    model_methods,
    with_matched_baselines,
)
from passlm.evaluate.metrics import fraction_interval, stored_interval
from passlm.evaluate.report import share_text
from passlm.evaluate.testset import load_test_set, read_training
from passlm.files import atomic_write
from passlm.llvm.cache import CachedCompiler
from passlm.llvm.denylist import load_denylist
from passlm.llvm.pool import WorkerPool
from passlm.llvm.toolchain import default_toolchain
from passlm.model import default_model_dir, load
from passlm.optimize.calibrate import parse_margin

console = Console(width=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuned", type=Path, default=Path("data/tuned.parquet"))
    parser.add_argument("--split", default="heldout")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--samples", default="3,10,30")
    parser.add_argument("--guided", default="", help="guided-k rows, e.g. 1,3,10,30")
    parser.add_argument("--feedback-model", type=Path, default=None)
    parser.add_argument("--feedback", default="1,3")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--margin", default="model", help="predict's margin: nats, off, or model (the stored one)"
    )
    parser.add_argument("-o", "--output", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    strategies = ["predict", "oz-backup", *(f"sample-{k}" for k in args.samples.split(","))]
    strategies += [f"guided-{k}" for k in args.guided.split(",") if k]

    tc = default_toolchain()
    model_dir = args.model or default_model_dir()
    model, tok = load(model_dir)
    margin = parse_margin(args.margin, model_dir)
    with WorkerPool(tc, workers=args.workers) as pool:
        compiler = CachedCompiler(pool)  # what guided-N and feedback-K compile, compiled once
        test = load_test_set(
            [args.tuned], splits=[args.split], toolchain=tc, compiler=pool, limit=args.limit
        )
        fns = test.functions
        console.print(
            f"{len(fns)} {args.split} functions of {args.tuned}; model {model_dir}; LLVM "
            f"{tc.version}; {args.threads} torch threads, {args.workers} compile workers"
        )
        deny = load_denylist()
        methods = model_methods(
            model, tok, fns, strategies, denylist=deny, compiler=compiler, margin=margin
        )
        if args.feedback_model is not None:
            tuned, tuned_tok = load(args.feedback_model)
            loops = [f"feedback-{k}" for k in args.feedback.split(",")]
            methods += [
                dataclasses.replace(m, name=f"{m.name} (fine-tuned)")
                for m in model_methods(
                    tuned, tuned_tok, fns, loops, denylist=deny, compiler=compiler
                )
            ]
        training = read_training(args.tuned)  # the tuned file's training split
        popular = PopularLists(training.lists, deny.allows)
        # feedback-K against --model's own samples: its widest sample-N run, whose first k
        # lists per function are sample-k's
        widest = max((m for m in methods if m.name.startswith("sample-")), default=None,
                     key=lambda m: max(map(len, m.candidates), default=0))  # fmt: skip
        ordered, costs = with_matched_baselines(
            fns, methods, compiler, seed=args.seed, popular=popular,
            samples=widest.candidates if widest is not None else None,
        )  # fmt: skip

    oz = [f.oz_count for f in fns]
    reference = ordered[-1].row(oz, 0.0)["overall"]  # the autotuner
    table = Table(title=f"strategies on {len(fns)} {args.split} functions vs -Oz")
    for col in ("method", "extra compiles", "improved", "regressed", "saved", "lost",
                "overall", "of autotuner", "seconds"):  # fmt: skip
        table.add_column(col, justify="left" if col == "method" else "right")
    report = {
        "functions": len(fns),
        "split": args.split,
        "model": str(model_dir),
        "feedback_model": None if args.feedback_model is None else str(args.feedback_model),
        "rows": {},
    }
    tuner = ordered[-1].counts
    for r in ordered:
        row = r.row(oz, reference)
        frac = row["fraction_of_autotuner"]
        # how much of the share is which functions the split holds (as passlm eval's reports)
        ci = None if frac is None else fraction_interval(oz, r.counts, tuner, seed=args.seed)
        row["fraction_interval"] = stored_interval(ci)
        spent = row["extra_compiles"]
        table.add_row(
            r.name,
            "-" if spent is None else f"{spent:,} ({spent / len(fns):.1f}/fn)",
            str(row["improved"]),
            str(row["regressed"]),
            str(row["saved"]),
            str(row["lost"]),
            f"{100 * row['overall']:+.2f}%",
            share_text(row),
            "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
        )
        report["rows"][r.name] = row
    console.print(table)
    # paired over the functions: is a strategy ahead of a baseline at its compiles, or level?
    counts = {r.name: r.counts for r in ordered if r.name != AUTOTUNER}
    report["comparisons"] = matched_comparisons(counts, oz, tuner, seed=args.seed)
    pairs = Table(title="each strategy against the baselines at its compiles, paired")
    for col in ("method", "baseline", "difference", "95% interval", "ahead", "behind"):
        pairs.add_column(col, justify="left" if col in ("method", "baseline") else "right")
    for c in report["comparisons"]:
        lo, hi = c["interval"] or (None, None)
        pairs.add_row(
            c["method"],
            c["baseline"].split(" (")[0],
            f"{100 * c['difference']:+.1f}",
            "-" if lo is None else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]",
            str(c["ahead"]),
            str(c["behind"]),
        )
    console.print(pairs)
    report["timing"] = costs
    console.print(
        f"{report['timing']['compiles']:,} compiles in {report['timing']['compile_seconds']:.1f}s;"
        f" the {AUTOTUNER} row is the tuned file's best lists"
    )
    if args.output:
        atomic_write(args.output, json.dumps(report, indent=1) + "\n")
        console.print(f"wrote {args.output}")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
